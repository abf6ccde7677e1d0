/* SPDX-License-Identifier: MIT */
/*
 * The daemon's HTTP interface (libmicrohttpd): REST under /v1, health, and later MCP,
 * the preview proxy and the dashboard. One ApiServer listens on the state dir's unix
 * socket (where uid 0 with no token is the bootstrap admin) and, optionally, on a TCP
 * address where only tokens count.
 *
 * Every request goes one way: parse (bounded) -> route -> authenticate -> authorize
 * (out-of-scope answers exactly like not found) -> handler -> audit -> answer. Everything
 * up to authorization is decided from the request line and headers alone, before any of
 * the body is read: a refused request is answered without the body being consumed. A
 * control character in the request target (raw or %-decoded) is refused with 400 before
 * routing. The handler of a route with side effects outside the database (ROUTE_INTENT)
 * records an intent (api_request_intent) before it acts and the dispatcher the outcome
 * after, under the same request id. If an audit record cannot be written, the request
 * fails with 500 and its result is not sent; if the intent cannot be written, nothing is
 * done.
 *
 * Threads: one per connection; handlers run concurrently and must be thread-safe.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "core.h"
#include "error.h"
#include "principal.h"

#define API_MAX_BODY (1u << 20)
#define API_MAX_URL 2048
#define API_MAX_PARAMS 4

typedef struct ApiServer ApiServer;

typedef struct ApiServerOptions {
	Core *core;
	const char *socket_path;    /* required */
	const char *listen;	    /* "127.0.0.1:7480" or NULL for the unix socket only */
	const char *preview_domain; /* "preview.example.com": Host NAME.<domain> goes to
					 * /preview/NAME/; NULL to disable */
} ApiServerOptions;

int api_server_new(const ApiServerOptions *opts, ApiServer **ret, BbxError *err);
/* Stops accepting, finishes running requests, closes the listeners. NULL-safe. */
void api_server_free(ApiServer *s);
/* The TCP port actually bound (useful with port 0), or 0. */
uint16_t api_server_port(ApiServer *s);

typedef struct ApiRequest {
	Core *core;
	const char *method;
	const char *path;
	const char *interface; /* "cli", "http", "mcp" */
	const char *request_id;
	const char *request_digest; /* hex SHA-256 of method, path and body, for the audit */
	const Principal *principal;
	const char *params[API_MAX_PARAMS]; /* values of {name} segments, in order */
	const char *body;		    /* NUL-terminated, may be "" */
	size_t body_len;
	void *connection;    /* for api_request_header()/api_request_query() */
	const char *action;  /* the route's audit action */
	const char *pattern; /* the route's path pattern (names of params) */
	/* Set by the handler when it appended its own audit record inside its transaction. */
	bool audited;
	/* Set by api_request_intent(). */
	bool intent_recorded;
	/* What the audit record names, set by the dispatcher (handlers may refine). */
	char resource[160];
} ApiRequest;

typedef struct ApiResponse {
	unsigned status;
	json_t *json; /* owned; serialized as the body */
	char *text;   /* owned; alternative raw body (text/plain) */
	char *raw;    /* owned; alternative binary body of raw_len bytes */
	size_t raw_len;
	const char *content_type;
	char reason[256];	 /* for the audit record when failed or denied */
	char mcp_session_id[40]; /* sent as Mcp-Session-Id when set (/mcp) */
	/* A body made while it is sent (an event stream), instead of the above: stream_read
	 * blocks for the next bytes and returns how many it put in buf, 0 at the end or < 0 to
	 * abort; stream_free runs once when the connection is done with it. */
	ssize_t (*stream_read)(void *stream, char *buf, size_t max);
	void (*stream_free)(void *stream);
	void *stream;
} ApiResponse;

const char *api_request_header(const ApiRequest *req, const char *name);
/* The value and its length, which counts bytes after an embedded NUL; NULL when absent. */
const char *api_request_header_n(const ApiRequest *req, const char *name, size_t *ret_len);
const char *api_request_query(const ApiRequest *req, const char *name);
/* The query string as the client sent it ("" or "?a=b&c"), re-encoded; caller frees. */
char *api_request_query_string(const ApiRequest *req);
/* A JSON string from bytes that may not be valid UTF-8 (bad bytes become U+FFFD). */
/*
 * For the handler of a ROUTE_INTENT route, right before it acts (after it has checked the
 * request and set req->resource): append and commit the intent record. < 0 when it could
 * not be written; resp then holds the 500 and the handler must return without acting. A
 * ROUTE_INTENT handler that succeeds without calling this is answered 500.
 */
int api_request_intent(ApiRequest *req, ApiResponse *resp);
/* Parse the body as a JSON object (depth and size bounded); 400 with a message otherwise. */
int api_request_json(const ApiRequest *req, ApiResponse *resp, json_t **ret);

/* Reply helpers: take ownership of json; always return 0 so handlers can "return api_...". */
int api_reply_json(ApiResponse *resp, unsigned status, json_t *json);
int api_reply_error(ApiResponse *resp, unsigned status, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The one not-found answer, used both for absent and for out-of-scope resources. */
int api_reply_not_found(ApiResponse *resp, const char *kind, const char *name);
/* Map a BbxError to an HTTP status and error body. */
int api_reply_bbx_error(ApiResponse *resp, int r, const BbxError *err);

typedef int (*ApiHandler)(ApiRequest *req, ApiResponse *resp);

enum {
	ROUTE_PUBLIC = 1u << 0,	   /* no authentication (health) */
	ROUTE_ROOT_ONLY = 1u << 1, /* only the bootstrap admin on the unix socket */
	ROUTE_INTENT = 1u << 2,	   /* acts outside the database (api_request_intent) */
};

typedef struct ApiRoute {
	const char *method;
	const char *pattern; /* "/v1/environments/{name}"; a final "*" matches any rest */
	const char *action;  /* audit action, e.g. "environment.get" */
	uint32_t verb;	     /* required Verb bit, 0 = any authenticated principal */
	int env_param;	     /* index of the {param} naming an environment, -1 if none */
	unsigned flags;
	ApiHandler handler; /* route_op for a row of the operations table */
} ApiRoute;

/* The route table (routes.c) and its lookup. */
extern const ApiRoute api_routes[];
extern const size_t api_n_routes;
/* Match method+path; fills params (pointers into buf). *ret_path_matched tells 404 from 405.
 * path is the decoded path without a query: every byte but '/' belongs to its segment. */
const ApiRoute *api_route_match(const char *method, const char *path, char *buf, size_t bufsize,
				const char *params[API_MAX_PARAMS], bool *ret_path_matched);

/* Ingress by name (routes-preview.c): for "Host: NAME.<domain>[.][:port]" write
 * "/preview/NAME<url>" into buf and return 1 (NAME lower-cased); 0 for a Host not under
 * domain (or domain NULL). A Host under domain is never left for the API's own routes:
 * -EINVAL when NAME is not a valid environment name, -ENAMETOOLONG when the path does not
 * fit in size. buf is "" unless 1 is returned. */
int api_preview_host_rewrite(const char *domain, const char *host, const char *url, char *buf,
			     size_t size);

/* Handlers, grouped by resource (routes-*.c). */
/* A route onto the operations table row named by its action (core/ops.h): the input is the
 * path's {params}, the query arguments the row's schema declares and the JSON body. */
int route_op(ApiRequest *req, ApiResponse *resp);
int route_healthz(ApiRequest *req, ApiResponse *resp);
int route_version(ApiRequest *req, ApiResponse *resp);
int route_preview_proxy(ApiRequest *req, ApiResponse *resp);
int route_routes_list(ApiRequest *req, ApiResponse *resp);
/*
 * /mcp: the MCP server lives in src/mcp, beside this layer, so the daemon hands its handler in
 * before serving (api_set_mcp_handler); until then /mcp answers 404. The handler sets
 * req->audited when the operations it ran wrote their own records.
 */
void api_set_mcp_handler(ApiHandler handler);
int route_mcp(ApiRequest *req, ApiResponse *resp);
