/* SPDX-License-Identifier: MIT */
#include "http-client.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "build-config.h"
#include "file-util.h"
#include "parse.h"
#include "strbuf.h"

void http_target_done(HttpTarget *t)
{
	free(t->socket_path);
	free(t->host);
	free(t->token);
	free(t->describe);
	memset(t, 0, sizeof(*t));
}

void http_response_done(HttpResponse *r)
{
	free(r->content_type);
	free(r->mcp_session_id);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

int http_target_from_socket(const char *path, HttpTarget *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->socket_path = strdup(path);
	if (!ret->socket_path || asprintf(&ret->describe, "unix:%s", path) < 0) {
		http_target_done(ret);
		return -ENOMEM;
	}
	return 0;
}

int http_target_from_url(const char *url, HttpTarget *ret, BbxError *err)
{
	const char *p;
	char host[256];
	uint32_t port = 80;

	memset(ret, 0, sizeof(*ret));
	if (strncmp(url, "http://", 7))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "BRANCHBOX_URL %s: only http:// URLs are supported", url);
	p = url + 7;
	size_t n;
	const char *hend;
	if (*p == '[') {
		hend = strchr(p, ']');
		if (!hend)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "BRANCHBOX_URL %s: unterminated IPv6 address", url);
		n = (size_t)(hend - p - 1);
		if (n >= sizeof(host))
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "BRANCHBOX_URL %s: host too long", url);
		memcpy(host, p + 1, n);
		hend++;
	} else {
		hend = p + strcspn(p, ":/");
		n = (size_t)(hend - p);
		if (n == 0 || n >= sizeof(host))
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "BRANCHBOX_URL %s: missing host", url);
		memcpy(host, p, n);
	}
	host[n] = '\0';
	if (*hend == ':') {
		char portbuf[8];
		size_t pn = strcspn(hend + 1, "/");
		if (pn == 0 || pn >= sizeof(portbuf))
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "BRANCHBOX_URL %s: bad port", url);
		memcpy(portbuf, hend + 1, pn);
		portbuf[pn] = '\0';
		if (parse_uint32(portbuf, &port) < 0 || port == 0 || port > 65535)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "BRANCHBOX_URL %s: bad port '%s'", url, portbuf);
	}
	ret->host = strdup(host);
	ret->port = (uint16_t)port;
	ret->describe = strdup(url);
	if (!ret->host || !ret->describe) {
		http_target_done(ret);
		return -ENOMEM;
	}
	return 0;
}

static int connect_target(const HttpTarget *t, BbxError *err)
{
	int fd;

	if (t->socket_path) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		if (strlen(t->socket_path) >= sizeof(sa.sun_path))
			return bbx_error_set(err, -ENAMETOOLONG, BBX_INVALID,
					     "socket path %s too long", t->socket_path);
		memcpy(sa.sun_path, t->socket_path, strlen(t->socket_path) + 1);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			int r = -errno;
			close(fd);
			return r;
		}
		return fd;
	}

	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL, *a;
	char port[8];
	int r = -ECONNREFUSED;

	snprintf(port, sizeof(port), "%u", t->port);
	if (getaddrinfo(t->host, port, &hints, &ai) != 0)
		return bbx_error_set(err, -EHOSTUNREACH, BBX_UNAVAILABLE, "cannot resolve %s",
				     t->host);
	for (a = ai; a; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			freeaddrinfo(ai);
			return fd;
		}
		r = -errno;
		close(fd);
	}
	freeaddrinfo(ai);
	return r;
}

/* Buffered reader over the connection. */
typedef struct Reader {
	int fd;
	char buf[16384];
	size_t pos, len;
	size_t total; /* bytes read so far */
} Reader;

static int reader_fill(Reader *rd)
{
	if (rd->pos < rd->len)
		return 1;
	ssize_t k;
	do
		k = read(rd->fd, rd->buf, sizeof(rd->buf));
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return -errno;
	rd->pos = 0;
	rd->len = (size_t)k;
	rd->total += (size_t)k;
	return k > 0;
}

static int reader_line(Reader *rd, char *line, size_t size)
{
	size_t n = 0;
	for (;;) {
		int r = reader_fill(rd);
		if (r < 0)
			return r;
		if (r == 0)
			return n ? 0 : -EPIPE;
		char ch = rd->buf[rd->pos++];
		if (ch == '\n') {
			if (n && line[n - 1] == '\r')
				n--;
			line[n] = '\0';
			return 0;
		}
		if (n + 1 >= size)
			return -EMSGSIZE;
		line[n++] = ch;
	}
}

typedef struct Sink {
	HttpBodyCallback cb;
	void *userdata;
	StrBuf *sb;
} Sink;

static int sink_put(Sink *s, const char *data, size_t n)
{
	if (s->cb)
		return s->cb(data, n, s->userdata);
	if (s->sb->len + n > HTTP_CLIENT_MAX_RESPONSE)
		return -EFBIG;
	return strbuf_append(s->sb, data, n);
}

/* Copy exactly n bytes (or until EOF if n == SIZE_MAX) from the reader to the sink. */
static int reader_copy(Reader *rd, Sink *s, size_t n)
{
	while (n > 0) {
		int r = reader_fill(rd);
		if (r < 0)
			return r;
		if (r == 0)
			return n == SIZE_MAX ? 0 : -EPIPE;
		size_t k = rd->len - rd->pos;
		if (k > n)
			k = n;
		r = sink_put(s, rd->buf + rd->pos, k);
		if (r < 0)
			return r;
		rd->pos += k;
		if (n != SIZE_MAX)
			n -= k;
	}
	return 0;
}

/* "HTTP/1.1 200 OK": an HTTP/1.x version and a three-digit status from 100 to 599 (what
 * sscanf's %d would take includes signs, overflow and 0). */
static int parse_status_line(const char *line, int *ret)
{
	const char *p = line;

	if (strncmp(p, "HTTP/1.", 7) || !isdigit((unsigned char)p[7]) || p[8] != ' ')
		return -EPROTO;
	p += 9;
	if (!isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
	    !isdigit((unsigned char)p[2]) || (p[3] && p[3] != ' '))
		return -EPROTO;
	int status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	if (status < 100 || status > 599)
		return -EPROTO;
	*ret = status;
	return 0;
}

/* *ret_empty: the connection ended before the first byte of an answer (a kept connection the
 * other side had closed); *ret_reusable: the answer was delimited and the connection may carry
 * another request. */
static int response_read(int fd, HttpBodyCallback on_body, void *userdata, HttpResponse *ret,
			 bool *ret_empty, bool *ret_reusable, BbxError *err)
{
	_cleanup_strbuf_ StrBuf out = STRBUF_INIT;
	_cleanup_free_ Reader *rd = NULL;
	_cleanup_free_ char *ctype = NULL, *session = NULL;
	char line[8192] = "";
	int r;

	memset(ret, 0, sizeof(*ret));
	rd = calloc(1, sizeof(*rd));
	if (!rd)
		return -ENOMEM;
	rd->fd = fd;

	r = reader_line(rd, line, sizeof(line));
	int status = 0;
	*ret_empty = (r == -EPIPE || r == -ECONNRESET) && rd->total == 0;
	*ret_reusable = false;
	if (r < 0 || parse_status_line(line, &status) < 0)
		return bbx_error_set(err, r < 0 ? r : -EPROTO, BBX_UNAVAILABLE,
				     "malformed or missing HTTP status line");

	size_t content_length = SIZE_MAX;
	bool chunked = false, close_after = !strncmp(line, "HTTP/1.0", 8);
	for (;;) {
		r = reader_line(rd, line, sizeof(line));
		if (r < 0)
			goto fail;
		if (!line[0])
			break;
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		char *v = colon + 1;
		while (*v == ' ' || *v == '\t')
			v++;
		if (!strcasecmp(line, "Content-Length")) {
			uint64_t cl;
			if (parse_uint64(v, &cl) < 0 || cl > HTTP_CLIENT_MAX_RESPONSE) {
				r = -EPROTO;
				goto fail;
			}
			content_length = (size_t)cl;
		} else if (!strcasecmp(line, "Transfer-Encoding") && strcasestr(v, "chunked"))
			chunked = true;
		else if (!strcasecmp(line, "Content-Type")) {
			free(ctype);
			ctype = strdup(v);
		} else if (!strcasecmp(line, "Connection"))
			close_after = strcasestr(v, "close") != NULL;
		else if (!strcasecmp(line, "Mcp-Session-Id")) {
			free(session);
			session = strdup(v);
		}
	}

	Sink sink = { on_body, userdata, &out };
	if (chunked) {
		for (;;) {
			r = reader_line(rd, line, sizeof(line));
			if (r < 0)
				goto fail;
			char *endp;
			errno = 0;
			unsigned long long n = strtoull(line, &endp, 16);
			if (errno || endp == line || n > HTTP_CLIENT_MAX_RESPONSE) {
				r = -EPROTO;
				goto fail;
			}
			if (n == 0)
				break;
			r = reader_copy(rd, &sink, (size_t)n);
			if (r < 0)
				goto fail;
			r = reader_line(rd, line, sizeof(line));
			if (r < 0)
				goto fail;
		}
	} else {
		r = reader_copy(rd, &sink, content_length);
		if (r < 0)
			goto fail;
	}
	*ret_reusable = !close_after && (chunked || content_length != SIZE_MAX);
	ret->status = status;
	ret->content_type = TAKE_PTR(ctype);
	ret->mcp_session_id = TAKE_PTR(session);
	ret->body_len = out.len;
	ret->body = strbuf_detach(&out);
	return ret->body ? 0 : -ENOMEM;
fail:
	return bbx_error_set(err, r, BBX_UNAVAILABLE, "reading response: %s", strerror(-r));
}

int http_response_read(int fd, HttpBodyCallback on_body, void *userdata, HttpResponse *ret,
		       BbxError *err)
{
	bool empty, reusable;
	return response_read(fd, on_body, userdata, ret, &empty, &reusable, err);
}

static int request_text(const HttpTarget *t, const char *method, const char *path, const char *body,
			size_t body_len, bool keep, StrBuf *req)
{
	bool accept = t->headers && (!strncasecmp(t->headers, "Accept:", 7) ||
				     strcasestr(t->headers, "\nAccept:"));
	int r = strbuf_appendf(req,
			       "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: branchbox-cli/%s\r\n"
			       "%s%s%s",
			       method, path, t->host ? t->host : "localhost", BRANCHBOX_VERSION,
			       accept ? "" : "Accept: application/json\r\n",
			       keep ? "" : "Connection: close\r\n", t->headers ? t->headers : "");
	if (r >= 0 && t->token)
		r = strbuf_appendf(req, "Authorization: Bearer %s\r\n", t->token);
	if (r >= 0 && body)
		r = strbuf_appendf(req, "Content-Type: application/json\r\nContent-Length: %zu\r\n",
				   body_len);
	if (r >= 0)
		r = strbuf_puts(req, "\r\n");
	if (r >= 0 && body)
		r = strbuf_append(req, body, body_len);
	return r;
}

int http_request(const HttpTarget *t, const char *method, const char *path, const char *body,
		 size_t body_len, HttpBodyCallback on_body, void *userdata, HttpResponse *ret,
		 BbxError *err)
{
	_cleanup_strbuf_ StrBuf req = STRBUF_INIT;
	_cleanup_close_ int fd = -EBADF;
	int r;

	memset(ret, 0, sizeof(*ret));
	fd = connect_target(t, err);
	if (fd < 0)
		return fd;
	r = request_text(t, method, path, body, body_len, false, &req);
	if (r < 0)
		return r;
	r = write_all(fd, req.buf, req.len);
	if (r < 0)
		return bbx_error_set(err, r, BBX_UNAVAILABLE, "%s: sending request: %s",
				     t->describe, strerror(-r));

	r = http_response_read(fd, on_body, userdata, ret, err);
	if (r < 0)
		bbx_error_prefix(err, "%s", t->describe);
	return r;
}

void http_conn_close(HttpConn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

int http_request_keep(const HttpTarget *t, HttpConn *c, const char *method, const char *path,
		      const char *body, size_t body_len, HttpResponse *ret, BbxError *err)
{
	_cleanup_strbuf_ StrBuf req = STRBUF_INIT;
	int r;

	memset(ret, 0, sizeof(*ret));
	r = request_text(t, method, path, body, body_len, true, &req);
	if (r < 0)
		return r;
	for (int attempt = 0;; attempt++) {
		bool reused = c->fd >= 0, empty = false, reusable = false;
		BbxError e = BBX_ERROR_INIT;
		if (!reused) {
			c->fd = connect_target(t, err);
			if (c->fd < 0) {
				r = c->fd;
				c->fd = -1;
				return r;
			}
		}
		r = write_all(c->fd, req.buf, req.len);
		if (r >= 0)
			r = response_read(c->fd, NULL, NULL, ret, &empty, &reusable, &e);
		else
			empty = true;
		if (r >= 0 && reusable)
			return r;
		http_conn_close(c);
		if (r >= 0)
			return r;
		/* A kept connection the other side closed while idle (its timeout, a restart)
		 * fails before the first byte of an answer: nothing was done, go again once on a
		 * new one. */
		if (!reused || !empty || attempt > 0)
			return bbx_error_set(err, r, BBX_UNAVAILABLE, "%s: %s", t->describe,
					     bbx_error_isset(&e) ? e.message : strerror(-r));
	}
}
