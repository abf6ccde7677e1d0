/* SPDX-License-Identifier: MIT */
/*
 * A small HTTP/1.1 client for the CLI (and a future stdio MCP verb) to reach the daemon:
 * over the state dir's unix socket, or over TCP to a loopback or LAN address from
 * BRANCHBOX_URL (http only). One request per connection, or several on one kept connection
 * (http_request_keep). Bodies are bounded.
 * Thread-safe (no shared state).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define HTTP_CLIENT_MAX_RESPONSE (64u << 20)

typedef struct HttpTarget {
	char *socket_path; /* set for the unix socket */
	char *host;	   /* set for TCP */
	uint16_t port;
	char *token;	/* bearer token or NULL */
	char *describe; /* "unix:/var/lib/branchbox/branchbox.sock" or the URL, for messages */
	/* Extra request header lines ("Name: value\r\n"...), not owned; one with Accept
	 * replaces the default Accept. */
	const char *headers;
} HttpTarget;

typedef struct HttpResponse {
	int status;
	char *content_type;
	char *body; /* NUL-terminated */
	size_t body_len;
	char *mcp_session_id; /* the Mcp-Session-Id header, or NULL */
} HttpResponse;

/* Called for each piece of body as it arrives (streaming); return < 0 to stop. */
typedef int (*HttpBodyCallback)(const char *data, size_t n, void *userdata);

/* "http://127.0.0.1:7480" -> target (token set separately). -EINVAL with a message otherwise. */
int http_target_from_url(const char *url, HttpTarget *ret, BbxError *err);
int http_target_from_socket(const char *path, HttpTarget *ret);
void http_target_done(HttpTarget *t);
void http_response_done(HttpResponse *r);

/*
 * Send one request. -ECONNREFUSED/-ENOENT when nothing listens (the caller says "daemon not
 * running"). With on_body set, the body is streamed to it instead of collected.
 */
int http_request(const HttpTarget *t, const char *method, const char *path, const char *body,
		 size_t body_len, HttpBodyCallback on_body, void *userdata, HttpResponse *ret,
		 BbxError *err);
/* A connection kept open between requests (HTTP/1.1 keep-alive); fd -1 when there is none.
 * One request at a time on it. */
typedef struct HttpConn {
	int fd;
} HttpConn;

#define HTTP_CONN_INIT                                                                             \
	{                                                                                          \
		.fd = -1                                                                           \
	}

/*
 * Send one request on c (connecting when it has no connection) and leave the connection open
 * when the answer allows it. A kept connection the other side closed while idle is replaced
 * and the request sent again, once, when it failed before the first byte of an answer.
 */
int http_request_keep(const HttpTarget *t, HttpConn *c, const char *method, const char *path,
		      const char *body, size_t body_len, HttpResponse *ret, BbxError *err);
void http_conn_close(HttpConn *c);

/*
 * Read one response from fd up to its end (Content-Length, chunked, or EOF): the part of
 * http_request() that parses what the other side sends, exposed for tests and fuzzing.
 * -EPROTO for a malformed status line or header, -EFBIG over HTTP_CLIENT_MAX_RESPONSE,
 * -EPIPE when the answer is cut short, or a read error.
 */
int http_response_read(int fd, HttpBodyCallback on_body, void *userdata, HttpResponse *ret,
		       BbxError *err);
