/* SPDX-License-Identifier: MIT */
/*
 * branchbox env files|cat|write|diff|config|services: an environment's files, code diff,
 * config and services, as a client of /v1/environments/NAME/{files,file,diff,config,services}.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "main.h"
#include "strbuf.h"

#define WRITE_MAX (1u << 20)

/* One handler serves six rows: an option another row declares reads as absent here. */
static bool declares(const CliArgs *a, const char *name)
{
	for (const CliOption *o = a->command->options; o && o->name; o++)
		if (!strcmp(o->name, name))
			return true;
	return false;
}

static const char *opt(const CliArgs *a, const char *name)
{
	return declares(a, name) ? cli_arg_value(a, name) : NULL;
}

static int parse_ll(const CliArgs *a, const char *name, long long *ret)
{
	const char *s = opt(a, name);
	char *end;
	*ret = -1;
	if (!s)
		return EXIT_OK;
	long long v = strtoll(s, &end, 10);
	if (!*s || *end || v < 0)
		return cli_usage_error(a->command->path, "--%s: a non-negative integer", name);
	*ret = v;
	return EXIT_OK;
}

/* "/v1/environments/NAME/TAIL?k=v&..." with each value escaped; NULL values left out. */
static char *url(const char *name, const char *tail, const char *const *kv, size_t n)
{
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
	_cleanup_free_ char *esc = cli_escape_segment(name);
	if (!esc || strbuf_appendf(&sb, "/v1/environments/%s/%s", esc, tail) < 0)
		return NULL;
	char sep = '?';
	for (size_t i = 0; i + 1 < n; i += 2) {
		if (!kv[i + 1])
			continue;
		_cleanup_free_ char *v = cli_escape_segment(kv[i + 1]);
		if (!v || strbuf_appendf(&sb, "%c%s=%s", sep, kv[i], v) < 0)
			return NULL;
		sep = '&';
	}
	return strbuf_detach(&sb);
}

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "-";
}

static int print_content(json_t *j)
{
	json_t *c = json_object_get(j, "content");
	if (!strcmp(str(j, "encoding"), "base64")) {
		/* Raw bytes to stdout: what the file holds. */
		const char *b64 = json_string_value(c);
		size_t n = json_string_length(c), k = 0;
		_cleanup_free_ unsigned char *bin = malloc(n / 4 * 3 + 3);
		if (!bin || sodium_base642bin(bin, n / 4 * 3 + 3, b64, n, NULL, &k, NULL,
					      sodium_base64_VARIANT_ORIGINAL) < 0)
			return EXIT_FAILURE_;
		fwrite(bin, 1, k, stdout);
		return EXIT_OK;
	}
	fwrite(json_string_value(c), 1, json_string_length(c), stdout);
	return EXIT_OK;
}

static json_t *read_stdin(const char *verb)
{
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
	char buf[8192];
	size_t k;
	while ((k = fread(buf, 1, sizeof(buf), stdin)) > 0) {
		if (sb.len + k > WRITE_MAX) {
			fprintf(stderr, "branchbox %s: standard input is over %u bytes\n", verb,
				WRITE_MAX);
			return NULL;
		}
		if (strbuf_append(&sb, buf, k) < 0)
			return NULL;
	}
	/* Text as it is; anything else (invalid UTF-8, NULs) as base64. */
	json_t *s = memchr(sb.buf ? sb.buf : "", '\0', sb.len)
			    ? NULL
			    : json_stringn(sb.buf ? sb.buf : "", sb.len);
	if (s)
		return json_pack("{s:o}", "content", s);
	size_t len = sodium_base64_encoded_len(sb.len, sodium_base64_VARIANT_ORIGINAL);
	_cleanup_free_ char *b = malloc(len);
	if (!b)
		return NULL;
	sodium_bin2base64(b, len, (const unsigned char *)sb.buf, sb.len,
			  sodium_base64_VARIANT_ORIGINAL);
	return json_pack("{s:s,s:s}", "content", b, "encoding", "base64");
}

int verb_env_files(const CliArgs *a)
{
	const char *verb = a->command->path;
	const char *cmd = cli_command_word(a->command);
	json_t *j = NULL;
	long long offset, limit, max_patch;
	int ret;
	if ((ret = parse_ll(a, "offset", &offset)) != EXIT_OK ||
	    (ret = parse_ll(a, "limit", &limit)) != EXIT_OK ||
	    (ret = parse_ll(a, "max-patch", &max_patch)) != EXIT_OK)
		return ret;
	const char *name = a->args[0];
	const char *arg = a->n_args > 1 ? a->args[1] : NULL;
	const char *root = opt(a, "root"), *mode = opt(a, "mode");
	const char *against = opt(a, "against");
	char off[24] = "", lim[24] = "", mp[24] = "";
	if (offset >= 0)
		snprintf(off, sizeof(off), "%lld", offset);
	if (limit >= 0)
		snprintf(lim, sizeof(lim), "%lld", limit);
	if (max_patch >= 0)
		snprintf(mp, sizeof(mp), "%lld", max_patch);

	_cleanup_free_ char *path = NULL;
	json_t *body = NULL;
	const char *method = "GET";
	if (!strcmp(cmd, "files")) {
		const char *kv[] = { "path", arg, "root", root, "limit", lim[0] ? lim : NULL };
		path = url(name, "files", kv, ELEMENTSOF(kv));
	} else if (!strcmp(cmd, "cat")) {
		const char *kv[] = { "path",   arg,
				     "root",   root,
				     "offset", off[0] ? off : NULL,
				     "limit",  lim[0] ? lim : NULL };
		path = url(name, "file", kv, ELEMENTSOF(kv));
	} else if (!strcmp(cmd, "write")) {
		body = read_stdin(verb);
		if (!body)
			return EXIT_FAILURE_;
		json_object_set_new(body, "path", json_string(arg));
		if (root)
			json_object_set_new(body, "root", json_string(root));
		if ((declares(a, "no-parents") && cli_arg_flag(a, "no-parents")))
			json_object_set_new(body, "parents", json_false());
		if (mode) {
			char *end;
			long m = strtol(mode, &end, 8);
			if (!*mode || *end || m < 0 || m > 0777) {
				json_decref(body);
				return cli_usage_error(verb, "--mode: octal permission bits, "
							     "like 0644");
			}
			json_object_set_new(body, "mode", json_integer(m));
		}
		method = "PUT";
		path = url(name, "file", NULL, 0);
	} else if (!strcmp(cmd, "diff")) {
		const char *kv[] = { "against", against, "max_patch", mp[0] ? mp : NULL };
		path = url(name, "diff", kv, ELEMENTSOF(kv));
	} else
		path = url(name, cmd, NULL, 0);
	ret = path ? cli_call(verb, a->state, method, path, body, &j) : EXIT_FAILURE_;
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	if (a->json || !strcmp(cmd, "config"))
		cli_print_json(!strcmp(cmd, "config") && !a->json ? json_object_get(j, "config")
								  : j);
	else if (!strcmp(cmd, "files")) {
		json_t *e;
		size_t i;
		json_array_foreach(json_object_get(j, "entries"), i, e) printf(
			"%-10s %04llo %12lld  %s\n", str(e, "type"),
			(long long)json_integer_value(json_object_get(e, "mode")),
			(long long)json_integer_value(json_object_get(e, "size")), str(e, "name"));
		if (json_is_true(json_object_get(j, "truncated")))
			fprintf(stderr, "(more entries: raise --limit)\n");
	} else if (!strcmp(cmd, "cat")) {
		ret = print_content(j);
		if (json_is_true(json_object_get(j, "truncated")))
			fprintf(stderr,
				"(truncated: %lld of %lld bytes; continue with --offset %lld)\n",
				(long long)json_integer_value(json_object_get(j, "bytes")),
				(long long)json_integer_value(json_object_get(j, "size")),
				(long long)(json_integer_value(json_object_get(j, "offset")) +
					    json_integer_value(json_object_get(j, "bytes"))));
	} else if (!strcmp(cmd, "write"))
		printf("%s %s (%lld bytes)\n",
		       json_is_true(json_object_get(j, "created")) ? "created" : "replaced",
		       str(j, "path"), (long long)json_integer_value(json_object_get(j, "bytes")));
	else if (!strcmp(cmd, "diff")) {
		json_t *f;
		size_t i;
		json_array_foreach(json_object_get(j, "files"), i, f)
			printf("%s %-50s +%lld -%lld%s\n", str(f, "status"), str(f, "path"),
			       (long long)json_integer_value(json_object_get(f, "additions")),
			       (long long)json_integer_value(json_object_get(f, "deletions")),
			       json_is_true(json_object_get(f, "binary")) ? " (binary)" : "");
		fputs(str(j, "patch"), stdout);
		if (json_is_true(json_object_get(j, "patch_truncated")))
			fprintf(stderr, "(patch truncated: raise --max-patch)\n");
	} else {
		json_t *s;
		size_t i;
		printf("%-16s %-12s %-10s %-10s %s\n", "NAME", "KIND", "TYPE", "VERSION", "STATE");
		json_array_foreach(json_object_get(j, "services"), i, s)
			printf("%-16s %-12s %-10s %-10s %s\n", str(s, "name"), "service",
			       str(s, "type"), str(s, "version"), str(s, "state"));
		json_array_foreach(json_object_get(j, "applications"), i, s)
			printf("%-16s %-12s %-10s %-10s %s\n", str(s, "name"), "application",
			       str(s, "type"), "-", str(s, "state"));
	}
	json_decref(j);
	return ret;
}
