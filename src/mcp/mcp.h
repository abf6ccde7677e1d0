/* SPDX-License-Identifier: MIT */
/*
 * The MCP server: one transport-agnostic dispatcher for JSON-RPC messages, both protocol eras.
 * Tools are generated from rows of the operations table (core/ops.h) through the table in
 * mcp-tools.c; every call goes through ops_run() with interface "mcp", so authorization,
 * invisibility, audit and error kinds are the REST API's. The daemon serves it on /mcp of its
 * HTTP listeners (mcp_http_handle); `branchbox mcp` is a bridge (stdio or a local HTTP
 * listener) that forwards each message there with the caller's token.
 *
 * Eras: legacy (initialize, then a session: Mcp-Session-Id and MCP-Protocol-Version headers on
 * HTTP; versions 2025-11-25 back to 2024-11-05) and 2026-07-28 (server/discover, every request
 * carrying its protocol version and client capabilities in params._meta, a resultType in every
 * result, no sessions). A session only remembers the negotiated version: it never
 * authenticates; the bearer token is checked on every request, and a session is bound to the
 * token that opened it.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "core.h"
#include "principal.h"

#define MCP_MODERN_VERSION "2026-07-28"
#define MCP_LATEST_LEGACY "2025-11-25"
#define MCP_META_VERSION "io.modelcontextprotocol/protocolVersion"
#define MCP_META_CAPS "io.modelcontextprotocol/clientCapabilities"
#define MCP_MAX_MESSAGE (1u << 20)
/* Resource subscriptions a session (or one subscriptions/listen stream) may hold. */
#define MCP_MAX_SUBSCRIPTIONS 32

/* JSON-RPC and MCP error codes. */
enum {
	MCP_PARSE_ERROR = -32700,
	MCP_INVALID_REQUEST = -32600,
	MCP_METHOD_NOT_FOUND = -32601,
	MCP_INVALID_PARAMS = -32602,
	MCP_INTERNAL_ERROR = -32603,
	MCP_RESOURCE_NOT_FOUND = -32002,
	MCP_HEADER_MISMATCH = -32020,
	MCP_MISSING_CAPABILITY = -32021,
	MCP_UNSUPPORTED_VERSION = -32022,
	/* A bound of this server (streams, subscriptions, tasks) is reached: nothing is wrong
	 * with the request, it may succeed once something ends (HTTP 429 where a status is
	 * given). */
	MCP_LIMIT_REACHED = -32029,
};

typedef struct McpServer McpServer;

typedef struct McpServerOptions {
	Core *core;
	/* Host names (without port) allowed in Host and Origin besides the loopback ones;
	 * NULL-terminated, may be NULL. */
	char **allowed_hosts;
} McpServerOptions;

int mcp_server_new(const McpServerOptions *opts, McpServer **ret);
/* End the event streams, so the HTTP server can stop; before mcp_server_free(). */
void mcp_server_shutdown(McpServer *s);
void mcp_server_free(McpServer *s);

/* A server-to-client notification during a request (progress): the transport sends it before
 * the answer, or drops it. */
typedef void (*McpNotify)(json_t *notification, void *userdata);

typedef struct McpCall {
	const Principal *principal;
	const char *request_id;	    /* for the audit records */
	const char *request_digest; /* ditto */
	const char *version;	    /* the negotiated protocol version, or NULL */
	const char *session_id;	    /* the legacy era's session over HTTP, or NULL */
	McpNotify notify;
	void *notify_userdata;
	bool op_ran;	     /* set when an operation ran (it wrote its own audit records) */
	int cancel_fd;	     /* set by the dispatcher: this tools/call's own cancel */
	bool principal_kept; /* principal outlived its request (a task): OpCall.principal_kept */
	/* Set when the client cancelled the request (notifications/cancelled): the work was
	 * stopped and no answer is sent (*ret_reply is NULL). */
	bool cancelled;
} McpCall;

/*
 * One decoded message: a request gets *ret_reply (a JSON-RPC response object), a notification
 * or a response NULL. Never fails: every problem is a JSON-RPC error in the reply.
 * *ret_new_version is set (static string) when msg was an initialize that negotiated one.
 */
void mcp_dispatch(McpServer *s, McpCall *call, json_t *msg, json_t **ret_reply,
		  const char **ret_new_version);

/* Decode one message (a JSON object, no batch); on failure *ret_error holds the JSON-RPC
 * error response to send. Exactly one of *ret_msg and *ret_error is set. */
void mcp_decode(const char *data, size_t n, json_t **ret_msg, json_t **ret_error);

/* A JSON-RPC error response. data may be NULL (stolen otherwise). */
json_t *mcp_error(json_t *id, int code, const char *message, json_t *data);

/* Is this protocol version one we speak? */
bool mcp_version_supported(const char *v);
/* The supported versions, newest first, as a new JSON array. */
json_t *mcp_supported_versions(void);

/* ---- the 2026-07-28 era ---- */

/* Does msg speak the 2026-07-28 era (its _meta names a protocol version, or server/discover)? */
bool mcp_is_modern(json_t *msg);
/* The era's checks on a request: _meta keys, a version we speak, no removed method. NULL or
 * the error reply. */
json_t *mcp_modern_check(json_t *msg);
/* resultType (and ttlMs, cacheScope for lists and reads) on a reply of the era. */
void mcp_modern_result(json_t *reply, const char *method);
/* The HTTP status of a reply of the era: errors are not 200. */
unsigned mcp_modern_status(json_t *reply);
/* Over HTTP, the headers that mirror the body (MCP-Protocol-Version, Mcp-Method, Mcp-Name)
 * must be there and match: NULL or the error reply (status 400). */
json_t *mcp_modern_headers_check(json_t *msg, const char *version, const char *method,
				 const char *name);
/*
 * A tool argument its inputSchema mirrors into a header ("x-mcp-header": NAME, sent as
 * Mcp-Param-NAME): value is the header as received (NULL when absent), literal or
 * "=?base64?...?=" (strict Base64). NULL when it matches arguments[param], else the error reply.
 */
json_t *mcp_param_header_check(json_t *msg, const char *param, const char *value);
/* The value Mcp-Name mirrors for msg (params.name or params.uri), or NULL. */
const char *mcp_routing_name(json_t *msg);

/* ---- HTTP (the daemon's /mcp) ---- */

typedef struct McpHttpRequest {
	const char *method; /* POST, GET, DELETE */
	const char *body;
	size_t body_len;
	/* Headers, NULL when absent. */
	const char *host;
	const char *origin;
	const char *accept;
	const char *content_type;
	const char *session_id;
	const char *protocol_version;
	const char *mcp_method; /* Mcp-Method */
	const char *mcp_name;	/* Mcp-Name */
	McpCall call;
} McpHttpRequest;

/* A response body made while it is sent: a session's event stream or a subscriptions/listen
 * stream. read blocks until there is something to send; 0 at the end. */
typedef struct McpStream McpStream;
ssize_t mcp_stream_read(McpStream *st, char *buf, size_t max);
void mcp_stream_free(McpStream *st);

typedef struct McpHttpResponse {
	unsigned status;
	McpStream *stream;	  /* owned; the body instead of body when set */
	char *body;		  /* owned, may be NULL (202) */
	const char *content_type; /* static */
	char session_id[40];	  /* Mcp-Session-Id to send, or "" */
} McpHttpResponse;

/* Answer one HTTP exchange on /mcp for an authenticated principal. */
void mcp_http_handle(McpServer *s, McpHttpRequest *req, McpHttpResponse *resp);

/* Is this Host or Origin allowed: loopback names, or one of allowed (port ignored)? NULL
 * (absent) is allowed for Origin only, which non-browser clients do not send. */
bool mcp_host_allowed(const char *host, char **allowed);
bool mcp_origin_allowed(const char *origin, char **allowed);

/* ---- test fixtures (the bridge only) ---- */

/*
 * The tools, resources and prompts the conformance suite calls (test_*, test://). Served only
 * by the `branchbox mcp --test-fixtures` bridge process, never by the daemon. Returns true when
 * msg is one the fixtures answer (*ret_reply set, NULL for a notification). ask sends a
 * request to the client and waits for its response (sampling, elicitation); it returns the
 * response message or NULL.
 */
typedef json_t *(*McpAsk)(const char *method, json_t *params, void *userdata);
typedef struct McpFixtureContext {
	McpNotify notify;
	McpAsk ask;
	void *userdata;
	json_t *client_capabilities; /* borrowed, may be NULL */
} McpFixtureContext;

bool mcp_fixtures_handle(McpFixtureContext *ctx, json_t *msg, json_t **ret_reply);
/* Merge the fixtures into a daemon's answer to method (initialize, server/discover,
 * tools/list): capabilities and tools. */
void mcp_fixtures_merge(const char *method, json_t *result);
