/* SPDX-License-Identifier: MIT */
/*
 * The preview proxy: /preview/NAME/REST is forwarded to NAME's web application by
 * connecting inside the environment's network namespace, so a preview's port is never
 * bound on the host. One request per connection (HTTP/1.0 upstream), bounded response.
 */
#include "api.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "environment.h"
#include "file-util.h"
#include "strbuf.h"

#define PROXY_MAX_RESPONSE (32u << 20)

static const char *const forwarded_headers[] = { "Content-Type", "Accept", "Accept-Language", "User-Agent", NULL };

int route_preview_proxy(ApiRequest *req, ApiResponse *resp)
{
	BbxError err = BBX_ERROR_INIT;
	const char *name = req->params[0];
	_cleanup_strbuf_ StrBuf out = STRBUF_INIT;
	_cleanup_strbuf_ StrBuf in = STRBUF_INIT;
	_cleanup_close_ int fd = -EBADF;
	int r;

	/* "/preview/NAME/rest" -> "/rest" */
	size_t prefix = strlen("/preview/") + strlen(name);
	const char *rest = req->path + prefix;
	if (!*rest)
		rest = "/";
	_cleanup_free_ char *query = api_request_query_string(req);

	r = environment_connect_app(req->core, name, &fd, &err);
	if (r < 0) {
		if (r == -ENOENT && !strcmp(err.kind, "not_found"))
			return api_reply_not_found(resp, "environment", name);
		return api_reply_error(resp, 502, "bad_gateway", "%s", bbx_error_message(&err, r));
	}

	(void)strbuf_appendf(&out, "%s %s%s HTTP/1.0\r\nHost: %s.preview\r\nX-Forwarded-Prefix: /preview/%s\r\nConnection: close\r\n",
			     req->method, rest, query ? query : "", name, name);
	for (const char *const *h = forwarded_headers; *h; h++) {
		const char *v = api_request_header(req, *h);
		if (v && !strpbrk(v, "\r\n"))
			(void)strbuf_appendf(&out, "%s: %s\r\n", *h, v);
	}
	if (req->body_len)
		(void)strbuf_appendf(&out, "Content-Length: %zu\r\n", req->body_len);
	(void)strbuf_puts(&out, "\r\n");
	(void)strbuf_append(&out, req->body, req->body_len);
	if (!out.buf)
		return -ENOMEM;
	r = write_all(fd, out.buf, out.len);
	if (r < 0)
		return api_reply_error(resp, 502, "bad_gateway", "sending to the preview: %s", strerror(-r));

	char buf[16384];
	for (;;) {
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return api_reply_error(resp, 502, "bad_gateway", "reading from the preview: %s", strerror(errno));
		if (k == 0)
			break;
		if (in.len + (size_t)k > PROXY_MAX_RESPONSE)
			return api_reply_error(resp, 502, "bad_gateway", "the preview's answer is larger than %u bytes", PROXY_MAX_RESPONSE);
		if (strbuf_append(&in, buf, (size_t)k) < 0)
			return -ENOMEM;
	}
	const char *head_end = in.buf ? strstr(in.buf, "\r\n\r\n") : NULL;
	int major, minor, status;
	if (!head_end || sscanf(in.buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3 || status < 100 || status > 599)
		return api_reply_error(resp, 502, "bad_gateway", "the preview did not answer HTTP");

	/* Content type of the upstream answer, if any. */
	static __thread char ctype[256];
	ctype[0] = '\0';
	for (const char *line = strstr(in.buf, "\r\n") + 2; line < head_end;) {
		const char *eol = strstr(line, "\r\n");
		if (!strncasecmp(line, "Content-Type:", 13)) {
			const char *v = line + 13;
			while (*v == ' ')
				v++;
			snprintf(ctype, sizeof(ctype), "%.*s", (int)(eol - v), v);
		}
		line = eol + 2;
	}
	size_t body_off = (size_t)(head_end + 4 - in.buf);
	size_t n = in.len - body_off;
	resp->raw = malloc(n + 1);
	if (!resp->raw)
		return -ENOMEM;
	memcpy(resp->raw, in.buf + body_off, n);
	resp->raw_len = n;
	resp->status = (unsigned)status;
	resp->content_type = ctype[0] ? ctype : "application/octet-stream";
	return 0;
}
