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
#include "parse.h"
#include "strbuf.h"

#define PROXY_MAX_RESPONSE (32u << 20)

static const char *const forwarded_headers[] = { "Content-Type", "Accept", "Accept-Language",
						 "User-Agent", NULL };

static bool has_control(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return true;
	return false;
}

/*
 * The decoded path, encoded again for the upstream request line: a byte that is not
 * allowed in a path segment (space, '?', '#', '%', non-ASCII, ...) becomes %XX, so the
 * path the client meant is the only thing that reaches the preview's request line.
 */
static int append_path(StrBuf *sb, const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		int r;
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || strchr("-._~!$&'()*+,;=:@/", *p))
			r = strbuf_putc(sb, (char)*p);
		else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			r = strbuf_append(sb, e, 3);
		}
		if (r < 0)
			return r;
	}
	return 0;
}

int api_preview_host_rewrite(const char *domain, const char *host, const char *url, char *buf,
			     size_t size)
{
	char name[64];

	if (size)
		buf[0] = '\0';
	if (!domain || !*domain || !host)
		return 0;
	size_t hn = strcspn(host, ":"), dn = strlen(domain);
	/* "NAME.<domain>." is the same host written as an absolute DNS name. */
	if (hn > 0 && host[hn - 1] == '.')
		hn--;
	if (hn <= dn + 1 || host[hn - dn - 1] != '.' || strncasecmp(host + hn - dn, domain, dn))
		return 0;
	/* From here on the Host is a preview's: it is rewritten or refused, never handed to
	 * the API's own routes. Host names are case-insensitive, environment names lower case. */
	size_t nn = hn - dn - 1;
	if (nn >= sizeof(name))
		return -EINVAL;
	for (size_t i = 0; i < nn; i++)
		name[i] = host[i] >= 'A' && host[i] <= 'Z' ? (char)(host[i] - 'A' + 'a') : host[i];
	name[nn] = '\0';
	if (!name_is_valid(name))
		return -EINVAL;
	int k = snprintf(buf, size, "/preview/%s%s", name, url[0] == '/' ? url : "/");
	if (k < 0 || (size_t)k >= size) {
		/* Not a truncated path either: the caller must see nothing. */
		if (size)
			buf[0] = '\0';
		return -ENAMETOOLONG;
	}
	return 1;
}

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
	if (!query)
		return -ENOMEM;

	/*
	 * Nothing with a control character goes upstream: the dispatcher refused one in the
	 * path or query already; a forwarded header with one is refused here, before the
	 * preview is even connected, rather than dropped (a request smuggled into the
	 * preview's application must fail loudly, not half-succeed).
	 */
	for (const char *const *h = forwarded_headers; *h; h++) {
		size_t n = 0;
		const char *v = api_request_header_n(req, *h, &n);
		if (v && has_control(v, n))
			return api_reply_error(
				resp, 400, "invalid",
				"header %s: control characters (0x00-0x1f, 0x7f) are not allowed",
				*h);
	}

	r = environment_connect_app(req->core, name, &fd, &err);
	if (r < 0) {
		if (r == -ENOENT && err.kind == BBX_NOT_FOUND)
			return api_reply_not_found(resp, "environment", name);
		return api_reply_error(resp, 502, "bad_gateway", "%s", bbx_error_message(&err, r));
	}

	/* Any failed append stops here: a request cut short is never sent. */
	r = strbuf_appendf(&out, "%s ", req->method);
	if (r >= 0)
		r = append_path(&out, rest);
	if (r >= 0)
		r = strbuf_appendf(&out,
				   "%s HTTP/1.0\r\nHost: %s.preview\r\nX-Forwarded-Prefix: "
				   "/preview/%s\r\nConnection: close\r\n",
				   query, name, name);
	for (const char *const *h = forwarded_headers; r >= 0 && *h; h++) {
		const char *v = api_request_header(req, *h);
		if (v)
			r = strbuf_appendf(&out, "%s: %s\r\n", *h, v);
	}
	if (r >= 0 && req->body_len)
		r = strbuf_appendf(&out, "Content-Length: %zu\r\n", req->body_len);
	if (r >= 0)
		r = strbuf_puts(&out, "\r\n");
	if (r >= 0)
		r = strbuf_append(&out, req->body, req->body_len);
	if (r < 0)
		return r;
	r = write_all(fd, out.buf, out.len);
	if (r < 0)
		return api_reply_error(resp, 502, "bad_gateway", "sending to the preview: %s",
				       strerror(-r));

	char buf[16384];
	for (;;) {
		ssize_t k = read(fd, buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return api_reply_error(resp, 502, "bad_gateway",
					       "reading from the preview: %s", strerror(errno));
		if (k == 0)
			break;
		if (in.len + (size_t)k > PROXY_MAX_RESPONSE)
			return api_reply_error(resp, 502, "bad_gateway",
					       "the preview's answer is larger than %u bytes",
					       PROXY_MAX_RESPONSE);
		if (strbuf_append(&in, buf, (size_t)k) < 0)
			return -ENOMEM;
	}
	const char *head_end = in.buf ? strstr(in.buf, "\r\n\r\n") : NULL;
	int major, minor, status;
	if (!head_end || sscanf(in.buf, "HTTP/%d.%d %d", &major, &minor, &status) != 3 ||
	    status < 100 || status > 599)
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
