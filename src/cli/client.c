/* SPDX-License-Identifier: MIT */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "main.h"
#include "strbuf.h"

const char *cli_state_dir(const char *opt_state)
{
	if (opt_state && *opt_state)
		return opt_state;
	const char *e = getenv("BRANCHBOX_STATE");
	if (e && *e)
		return e;
	return DEFAULT_STATE_DIR;
}

int cli_target(const char *verb, const char *opt_state, HttpTarget *t)
{
	BbxError err = BBX_ERROR_INIT;
	const char *url = getenv("BRANCHBOX_URL");
	const char *token = getenv("BRANCHBOX_TOKEN");
	int r;

	if (url && *url && !(opt_state && *opt_state)) {
		r = http_target_from_url(url, t, &err);
		if (r < 0) {
			log_error("%s: %s", verb, bbx_error_message(&err, r));
			return EXIT_USAGE;
		}
	} else {
		char path[4096];
		snprintf(path, sizeof(path), "%s/branchbox.sock", cli_state_dir(opt_state));
		if (http_target_from_socket(path, t) < 0)
			return EXIT_FAILURE_;
	}
	if (token && *token) {
		t->token = strdup(token);
		if (!t->token)
			return EXIT_FAILURE_;
	}
	return EXIT_OK;
}

static int report_transport_error(const char *verb, const HttpTarget *t, int r, const BbxError *err)
{
	if (r == -ECONNREFUSED || r == -ENOENT) {
		log_error("%s: the branchbox daemon is not running at %s (start it with 'branchbox "
			  "serve --repo PATH%s')",
			  verb, t->describe, t->socket_path ? " --state DIR" : "");
		return EXIT_NO_DAEMON;
	}
	if (r == -EACCES) {
		log_error("%s: permission denied on %s (the local socket is for root; others set "
			  "BRANCHBOX_URL and BRANCHBOX_TOKEN)",
			  verb, t->describe);
		return EXIT_NO_DAEMON;
	}
	log_error("%s: %s: %s", verb, t->describe, bbx_error_message(err, r));
	return EXIT_NO_DAEMON;
}

static int report_http_error(const char *verb, HttpResponse *resp)
{
	json_t *j = resp->body_len ? json_loadb(resp->body, resp->body_len, 0, NULL) : NULL;
	const char *msg = NULL;
	json_t *e = j ? json_object_get(j, "error") : NULL;
	if (e)
		msg = json_string_value(json_object_get(e, "message"));
	if (msg)
		log_error("%s: %s", verb, msg);
	else
		log_error("%s: the daemon answered HTTP %d", verb, resp->status);
	json_decref(j);
	return EXIT_FAILURE_;
}

int cli_call(const char *verb, const char *opt_state, const char *method, const char *path,
	     json_t *body, json_t **ret_json)
{
	HttpTarget t = { 0 };
	HttpResponse resp = { 0 };
	BbxError err = BBX_ERROR_INIT;
	char *data = NULL;
	int ret;

	if (ret_json)
		*ret_json = NULL;
	ret = cli_target(verb, opt_state, &t);
	if (ret != EXIT_OK)
		goto out;
	if (body) {
		data = json_dumps(body, JSON_COMPACT);
		if (!data) {
			ret = EXIT_FAILURE_;
			goto out;
		}
	}
	int r = http_request(&t, method, path, data, data ? strlen(data) : 0, NULL, NULL, &resp,
			     &err);
	if (r < 0) {
		ret = report_transport_error(verb, &t, r, &err);
		goto out;
	}
	if (resp.status < 200 || resp.status >= 300) {
		ret = report_http_error(verb, &resp);
		goto out;
	}
	if (ret_json && resp.body_len) {
		json_error_t jerr;
		*ret_json = json_loadb(resp.body, resp.body_len, 0, &jerr);
		if (!*ret_json && resp.content_type && strstr(resp.content_type, "json")) {
			log_error("%s: malformed JSON from the daemon: %s", verb, jerr.text);
			ret = EXIT_FAILURE_;
			goto out;
		}
		if (!*ret_json)
			*ret_json = json_stringn(resp.body, resp.body_len);
	}
	ret = EXIT_OK;
out:
	free(data);
	http_response_done(&resp);
	http_target_done(&t);
	return ret;
}

int cli_call_stream(const char *verb, const char *opt_state, const char *method, const char *path,
		    json_t *body, HttpBodyCallback on_body, void *userdata, int *ret_status)
{
	HttpTarget t = { 0 };
	HttpResponse resp = { 0 };
	BbxError err = BBX_ERROR_INIT;
	char *data = NULL;
	int ret = cli_target(verb, opt_state, &t);

	if (ret != EXIT_OK)
		goto out;
	if (body && !(data = json_dumps(body, JSON_COMPACT))) {
		ret = EXIT_FAILURE_;
		goto out;
	}
	int r = http_request(&t, method, path, data, data ? strlen(data) : 0, on_body, userdata,
			     &resp, &err);
	if (r < 0) {
		ret = report_transport_error(verb, &t, r, &err);
		goto out;
	}
	if (ret_status)
		*ret_status = resp.status;
	ret = EXIT_OK;
out:
	free(data);
	http_response_done(&resp);
	http_target_done(&t);
	return ret;
}

char *cli_escape_segment(const char *s)
{
	StrBuf sb = STRBUF_INIT;
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int r;
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~')
			r = strbuf_putc(&sb, (char)*p);
		else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			r = strbuf_append(&sb, e, 3);
		}
		if (r < 0) {
			strbuf_done(&sb);
			return NULL;
		}
	}
	return strbuf_detach(&sb);
}

void cli_print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}
