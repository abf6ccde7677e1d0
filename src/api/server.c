/* SPDX-License-Identifier: MIT */
/*
 * Why this is one file of about 900 lines: it is the one place that speaks libmicrohttpd, a
 * single state machine around MHD's callbacks (admit, accumulate the body within its limits,
 * run the route, answer, audit on completion) plus its listeners. Routes live in routes*.c.
 * The seam, when a second transport (MCP) joins, is the reply/request helpers at the top
 * (api_reply_*, api_request_*) into server-request.c.
 */
#include "api.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "audit.h"
#include "environment.h"
#include "build-config.h"
#include "parse.h"
#include "policy.h"
#include "strbuf.h"

typedef struct Listener {
	ApiServer *server;
	RequestOrigin origin;
	struct MHD_Daemon *mhd;
} Listener;

struct ApiServer {
	Core *core;
	char *socket_path;
	char *preview_domain;
	Listener unix_listener;
	Listener tcp_listener;
	uint16_t port;
};

/* Per-request state across libmicrohttpd's access-handler calls. */
typedef struct Exchange {
	Listener *listener;
	StrBuf body;
	bool too_large;
	bool started;	  /* the access handler saw the headers */
	bool admitted;	  /* routed, authenticated and authorized from the headers alone */
	bool answered;	  /* by admit() or run(), and recorded there if it needs it */
	bool url_control; /* a control character in the target, raw or %-decoded */
	char url[256];	  /* as first seen, raw, truncated, for requests refused early */
	/* Decided when the headers arrived, before any of the body was read. */
	const ApiRoute *route;
	Principal principal;
	ApiRequest req;
	char request_id[33];
	char pathbuf[API_MAX_URL + 1];	 /* the {param} values of req.params */
	char rewritten[API_MAX_URL + 1]; /* "/preview/NAME/..." for a preview host, or "" */
} Exchange;

const char *api_request_header(const ApiRequest *req, const char *name)
{
	return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

const char *api_request_header_n(const ApiRequest *req, const char *name, size_t *ret_len)
{
	const char *v = NULL;
	size_t n = 0;

	if (MHD_lookup_connection_value_n(req->connection, MHD_HEADER_KIND, name, strlen(name), &v,
					  &n) != MHD_YES)
		return NULL;
	*ret_len = n;
	return v;
}

const char *api_request_query(const ApiRequest *req, const char *name)
{
	return MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, name);
}

int api_reply_json(ApiResponse *resp, unsigned status, json_t *json)
{
	json_decref(resp->json);
	resp->status = status;
	resp->json = json;
	return 0;
}

int api_reply_error(ApiResponse *resp, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(resp->reason, sizeof(resp->reason), "%s", msg);
	return api_reply_json(resp, status,
			      json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

int api_reply_not_found(ApiResponse *resp, const char *kind, const char *name)
{
	return api_reply_error(resp, 404, "not_found", "%s '%s' not found", kind, name);
}

int api_reply_bbx_error(ApiResponse *resp, int r, const BbxError *err)
{
	BbxErrorKind k = bbx_error_kind(err, r);
	return api_reply_error(resp, bbx_error_kind_http_status(k), bbx_error_kind_name(k), "%s",
			       bbx_error_message(err, r));
}

static enum MHD_Result add_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
				     const char *value)
{
	StrBuf *sb = cls;
	static const char hex[] = "0123456789ABCDEF";
	const char *parts[2] = { key, value };
	(void)strbuf_putc(sb, sb->len ? '&' : '?');
	for (int i = 0; i < 2 && parts[i]; i++) {
		if (i == 1)
			(void)strbuf_putc(sb, '=');
		for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++) {
			if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || strchr("-_.~", *p))
				(void)strbuf_putc(sb, (char)*p);
			else {
				char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };
				(void)strbuf_append(sb, e, 3);
			}
		}
	}
	return MHD_YES;
}

char *api_request_query_string(const ApiRequest *req)
{
	StrBuf sb = STRBUF_INIT;
	MHD_get_connection_values(req->connection, MHD_GET_ARGUMENT_KIND, add_query_arg, &sb);
	return strbuf_detach(&sb);
}

/* Reject pathological nesting before jansson recurses into it. */
static bool json_depth_ok(const char *s, size_t n, unsigned max)
{
	unsigned depth = 0;
	bool in_str = false, esc = false;

	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (in_str) {
			if (esc)
				esc = false;
			else if (ch == '\\')
				esc = true;
			else if (ch == '"')
				in_str = false;
			continue;
		}
		if (ch == '"')
			in_str = true;
		else if (ch == '{' || ch == '[') {
			if (++depth > max)
				return false;
		} else if ((ch == '}' || ch == ']') && depth > 0)
			depth--;
	}
	return true;
}

int api_request_json(const ApiRequest *req, ApiResponse *resp, json_t **ret)
{
	json_error_t jerr;

	if (req->body_len == 0)
		return api_reply_error(resp, 400, "invalid",
				       "request body: expected a JSON object"),
		       -EINVAL;
	if (!json_depth_ok(req->body, req->body_len, 32))
		return api_reply_error(resp, 400, "invalid",
				       "request body: JSON nested deeper than 32 levels"),
		       -EINVAL;
	json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		return api_reply_error(resp, 400, "invalid", "request body: line %d column %d: %s",
				       jerr.line, jerr.column, jerr.text),
		       -EINVAL;
	if (!json_is_object(j)) {
		json_decref(j);
		return api_reply_error(resp, 400, "invalid",
				       "request body: expected a JSON object"),
		       -EINVAL;
	}
	*ret = j;
	return 0;
}

static const char *origin_interface(RequestOrigin origin, struct MHD_Connection *c,
				    const char *path)
{
	if (!strncmp(path, "/mcp", 4) && (path[4] == '\0' || path[4] == '/' || path[4] == '?'))
		return "mcp";
	if (origin == ORIGIN_UNIX_SOCKET)
		return "cli";
	const char *ua = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "User-Agent");
	if (ua && !strncmp(ua, "branchbox-cli/", 14))
		return "cli";
	return "http";
}

static uid_t peer_uid(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return (uid_t)-1;
	return cred.uid;
}

/* "Bearer bbx_..." -> the token, NULL when absent; -EINVAL for any other shape. */
static int bearer_token(struct MHD_Connection *c, const char **ret)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	*ret = NULL;
	if (!h)
		return 0;
	if (strncasecmp(h, "Bearer ", 7))
		return -EINVAL;
	h += 7;
	while (*h == ' ')
		h++;
	*ret = h;
	return 0;
}

static void request_digest(const char *method, const char *path, const char *body, size_t n,
			   char hex[65])
{
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)method, strlen(method));
	crypto_hash_sha256_update(&st, (const unsigned char *)"\n", 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)path, strlen(path));
	crypto_hash_sha256_update(&st, (const unsigned char *)"\n", 1);
	crypto_hash_sha256_update(&st, (const unsigned char *)body, n);
	crypto_hash_sha256_final(&st, h);
	sodium_bin2hex(hex, 65, h, sizeof(h));
}

typedef struct StreamBody {
	ssize_t (*read)(void *stream, char *buf, size_t max);
	void (*free)(void *stream);
	void *stream;
} StreamBody;

static ssize_t stream_body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	StreamBody *b = cls;
	ssize_t n = b->read(b->stream, buf, max);
	return n > 0	? n
	       : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM
			: MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_body_free(void *cls)
{
	StreamBody *b = cls;
	b->free(b->stream);
	free(b);
}

static void stream_drop(ApiResponse *resp)
{
	if (resp->stream && resp->stream_free)
		resp->stream_free(resp->stream);
	resp->stream = NULL;
}

static enum MHD_Result send_response(struct MHD_Connection *c, ApiResponse *resp)
{
	char *body = NULL;
	size_t n = 0;
	const char *ctype = resp->content_type;
	struct MHD_Response *r;

	if (resp->stream && resp->status < 300) {
		StreamBody *b = malloc(sizeof(*b));
		if (!b)
			return MHD_NO;
		*b = (StreamBody){ resp->stream_read, resp->stream_free, TAKE_PTR(resp->stream) };
		r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_body_read, b,
						      stream_body_free);
		if (!r) {
			stream_body_free(b);
			return MHD_NO;
		}
		if (!ctype)
			ctype = "text/event-stream";
		goto headers;
	}
	stream_drop(resp);
	if (resp->raw) {
		body = TAKE_PTR(resp->raw);
		n = resp->raw_len;
		if (!ctype)
			ctype = "application/octet-stream";
	} else if (resp->text) {
		body = TAKE_PTR(resp->text);
		n = strlen(body);
		if (!ctype)
			ctype = "text/plain; charset=utf-8";
	} else {
		if (!resp->json)
			resp->json = json_object();
		body = json_dumps(resp->json, JSON_COMPACT | JSON_ENSURE_ASCII);
		if (!body)
			return MHD_NO;
		n = strlen(body);
		/* A trailing newline keeps shell users' prompts on their own line. */
		char *nb = realloc(body, n + 2);
		if (!nb) {
			free(body);
			return MHD_NO;
		}
		body = nb;
		body[n++] = '\n';
		body[n] = '\0';
		if (!ctype)
			ctype = "application/json";
	}
	r = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
headers:
	MHD_add_response_header(r, "Content-Type", ctype);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (resp->status == 401)
		MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
	if (resp->mcp_session_id[0])
		MHD_add_response_header(r, "Mcp-Session-Id", resp->mcp_session_id);
#if BRANCHBOX_BENCH_NOAUTH
	/* Whoever reads any answer of this build can tell that nothing was checked. */
	MHD_add_response_header(r, "X-Branchbox-Insecure", "no-auth");
#endif
	enum MHD_Result ret = MHD_queue_response(c, resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

/* Refused with 400 before routing: no control character reaches a handler, the preview's
 * upstream request line or the audit record, decoded or not. */
static bool byte_is_control(unsigned char ch)
{
	return ch < 0x20 || ch == 0x7f;
}

static int hex_value(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/* A control character in the raw request target or in what its %XX escapes decode to. */
static bool uri_has_control(const char *uri)
{
	for (const unsigned char *p = (const unsigned char *)uri; *p; p++) {
		unsigned char ch = *p;
		if (ch == '%' && hex_value(p[1]) >= 0 && hex_value(p[2]) >= 0) {
			ch = (unsigned char)(hex_value(p[1]) << 4 | hex_value(p[2]));
			p += 2;
		}
		if (byte_is_control(ch))
			return true;
	}
	return false;
}

/* The raw target with control bytes escaped, for the record of a request refused for them. */
static void uri_printable(const char *uri, char *buf, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (const unsigned char *p = (const unsigned char *)uri; *p && n + 4 < size; p++) {
		if (byte_is_control(*p)) {
			buf[n++] = '%';
			buf[n++] = hex[*p >> 4];
			buf[n++] = hex[*p & 15];
		} else
			buf[n++] = (char)*p;
	}
	buf[n] = '\0';
}

static int record(const ApiRequest *req, const char *resource, const char *action,
		  const char *decision, const char *reason, const char *outcome, BbxError *err)
{
	if (!resource)
		resource = req->resource[0] ? req->resource : req->path;
	AuditRecord rec = {
		.request_id = req->request_id,
		.principal = req->principal,
		.interface = req->interface,
		.action = action,
		.resource = resource,
		.decision = decision,
		.reason = reason && reason[0] ? reason : NULL,
		.request_digest = req->request_digest,
		.outcome = outcome,
	};
	return audit_append(req->core, &rec, NULL, err);
}

/* Drop a handler's raw or text answer, so an error replacing it is sent as JSON. */
static void reply_drop_body(ApiResponse *resp)
{
	free(resp->text);
	resp->text = NULL;
	free(resp->raw);
	resp->raw = NULL;
	resp->content_type = NULL;
	stream_drop(resp);
}

static void reply_audit_unavailable(ApiResponse *resp)
{
	reply_drop_body(resp);
	api_reply_error(
		resp, 500, "audit_unavailable",
		"the request could not be recorded in the audit log, so it was not performed");
}

/*
 * Everything that can be decided from the request line and the headers, before one byte
 * of the body is read: refusal of control characters, routing, authentication and
 * authorization. A request refused here is recorded and answered at once; libmicrohttpd
 * then closes the connection instead of reading the body, so an unauthenticated client
 * cannot make the daemon buffer anything. Sets ex->admitted, or fills resp.
 */
static void admit(Listener *l, struct MHD_Connection *c, const char *method, const char *url,
		  Exchange *ex, ApiResponse *resp)
{
	ApiServer *s = l->server;
	ApiRequest *req = &ex->req;
	BbxError err = BBX_ERROR_INIT;
	bool path_matched = false;
	unsigned char rid[16];

	randombytes_buf(rid, sizeof(rid));
	sodium_bin2hex(ex->request_id, sizeof(ex->request_id), rid, sizeof(rid));

	/* Ingress by name: "Host: NAME.<preview domain>" is the preview proxy for NAME; a
	 * Host under that domain which cannot be rewritten is refused below. */
	const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	int preview = api_preview_host_rewrite(s->preview_domain, host, url, ex->rewritten,
					       sizeof(ex->rewritten));
	if (preview > 0)
		url = ex->rewritten;
	*req = (ApiRequest){
		.core = s->core,
		.method = method,
		.path = url,
		.interface = origin_interface(l->origin, c, url),
		.request_id = ex->request_id,
		.principal = &ex->principal,
		.body = "",
		.connection = c,
	};

	static const char control_message[] = "request path or query: control characters "
					      "(0x00-0x1f, 0x7f) are not allowed, encoded or not";
	static const char preview_message[] = "no preview here: the Host does not name an "
					      "environment";

#if BRANCHBOX_BENCH_NOAUTH
	/* Bench-only build: no authentication, authorization or audit at all. */
	if (ex->url_control) {
		api_reply_error(resp, 400, "invalid", "%s", control_message);
		return;
	}
	if (preview < 0) {
		api_reply_error(resp, 404, "not_found", "%s", preview_message);
		return;
	}
	ex->route = api_route_match(method, url, ex->pathbuf, sizeof(ex->pathbuf), req->params,
				    &path_matched);
	ex->principal.kind = PRINCIPAL_ROOT;
	ex->principal.verbs = VERB_ALL;
	snprintf(ex->principal.name, sizeof(ex->principal.name), "root");
	if (ex->route) {
		req->action = ex->route->action;
		req->pattern = ex->route->pattern;
		ex->admitted = true;
	} else
		api_reply_error(resp, 404, "not_found", "no such route: %s %s", method, url);
	(void)err;
	return;
#endif

	const ApiRoute *route = NULL;
	if (ex->url_control)
		api_reply_error(resp, 400, "invalid", "%s", control_message);
	else if (preview == -ENAMETOOLONG || strlen(url) > API_MAX_URL)
		api_reply_error(resp, 414, "invalid", "request path longer than %u bytes",
				API_MAX_URL);
	else if (preview < 0)
		api_reply_error(resp, 404, "not_found", "%s", preview_message);
	else {
		route = api_route_match(method, url, ex->pathbuf, sizeof(ex->pathbuf), req->params,
					&path_matched);
		if (!route && path_matched)
			api_reply_error(resp, 405, "method_not_allowed", "%s is not allowed on %s",
					method, url);
		else if (!route)
			api_reply_error(resp, 404, "not_found", "no such route: %s %s", method,
					url);
	}
	if (route && (route->flags & ROUTE_PUBLIC)) {
		ex->route = route;
		req->action = route->action;
		req->pattern = route->pattern;
		ex->admitted = true;
		return;
	}

	const ApiRoute *matched = route;
	const char *bearer = NULL;
	if (route) {
		/* An Authorization header, even an empty one, means a token was meant: it never
		 * falls back to the root shortcut of the unix socket. */
		if (bearer_token(c, &bearer) < 0 || (bearer && !*bearer)) {
			api_reply_error(resp, 401, "unauthorized", "authentication required");
			snprintf(resp->reason, sizeof(resp->reason),
				 "malformed Authorization header");
			route = NULL;
		} else if (policy_authenticate(s->core, l->origin,
					       l->origin == ORIGIN_UNIX_SOCKET ? peer_uid(c)
									       : (uid_t)-1,
					       bearer, &ex->principal, &err) < 0) {
			/* No detail for the client; the reason goes to the audit record only. */
			api_reply_error(resp, 401, "unauthorized", "authentication required");
			snprintf(resp->reason, sizeof(resp->reason), "%s",
				 bbx_error_message(&err, -EACCES));
			route = NULL;
		} else if ((route->flags & ROUTE_ROOT_ONLY) &&
			   ex->principal.kind != PRINCIPAL_ROOT) {
			api_reply_error(resp, 403, "forbidden",
					"only the local administrator may do this");
			route = NULL;
		}
	}

	if (route) {
		const char *env = route->env_param >= 0 ? req->params[route->env_param] : NULL;
		if (env)
			snprintf(req->resource, sizeof(req->resource), "environment:%s", env);
		PolicyDecision d = policy_authorize(s->core, &ex->principal, route->verb, env);
		/* One code path for "absent" and "not yours": an environment that does not exist
		 * is answered here exactly like an invisible one, before any handler looks at the
		 * request, and 403 is left only for a verb on one the principal can see. */
		bool absent = false;
		if (d != POLICY_INVISIBLE && env && !environment_exists(s->core, env)) {
			d = POLICY_INVISIBLE;
			absent = true;
		}
		if (d == POLICY_INVISIBLE) {
			/* Exactly what the handler answers for an environment that does not exist. */
			api_reply_not_found(resp, "environment", env);
			/* The reason is for the audit record only; the client sees the same answer. */
			snprintf(resp->reason, sizeof(resp->reason),
				 absent ? "no such environment" : "out of scope");
		} else if (d == POLICY_FORBIDDEN) {
			api_reply_error(resp, 403, "forbidden", "this token may not %s",
					verb_to_string(route->verb) ? verb_to_string(route->verb)
								    : route->action);
		} else {
			ex->route = route;
			req->action = route->action;
			req->pattern = route->pattern;
			ex->admitted = true;
			return;
		}
	}

	/* Refused: the record carries what was known, the body was never read. */
	char digest[65], outcome[8], printable[sizeof(ex->url)];
	request_digest(method, url, "", 0, digest);
	req->request_digest = digest;
	snprintf(outcome, sizeof(outcome), "%u", resp->status);
	if (ex->url_control)
		uri_printable(ex->url, printable, sizeof(printable));
	if (record(req, ex->url_control ? printable : NULL, matched ? matched->action : "request",
		   "deny", resp->reason, outcome, NULL) < 0)
		reply_audit_unavailable(resp);
	req->request_digest = NULL;
}

int api_request_intent(ApiRequest *req, ApiResponse *resp)
{
#if !BRANCHBOX_BENCH_NOAUTH
	BbxError err = BBX_ERROR_INIT;
	if (record(req, NULL, req->action, "allow", NULL, AUDIT_OUTCOME_INTENT, &err) < 0) {
		reply_audit_unavailable(resp);
		return -EIO;
	}
#endif
	req->intent_recorded = true;
	return 0;
}

/*
 * The admitted request with its whole body: the handler, then its record. The handler of a
 * route with side effects outside the database (ROUTE_INTENT) records its intent through
 * api_request_intent() before it acts; the outcome record here follows under the same
 * request id.
 */
static void run(const char *method, const char *url, Exchange *ex, ApiResponse *resp)
{
	ApiRequest *req = &ex->req;
	const ApiRoute *route = ex->route;
	const char *decision = "allow";
	char digest[65], outcome[8];
	int r;

	req->method = method;
	req->path = ex->rewritten[0] ? ex->rewritten : url;
	req->body = strbuf_str(&ex->body);
	req->body_len = ex->body.len;
	request_digest(req->method, req->path, req->body, req->body_len, digest);
	req->request_digest = digest;

#if BRANCHBOX_BENCH_NOAUTH
	r = route->handler(req, resp);
	if (resp->status == 0)
		api_reply_error(resp, 500, "internal", "handler produced no answer");
	(void)decision;
	(void)outcome;
	return;
#endif

	if (ex->too_large) {
		api_reply_error(resp, 413, "too_large", "request body larger than %u bytes",
				API_MAX_BODY);
		decision = "deny";
	} else {
		r = route->handler(req, resp);
		if (r < 0 && resp->status == 0)
			api_reply_error(resp, 500, "internal", "%s", strerror(-r));
		/* A rule the handler enforces (minting wider than self) is a denial too. */
		if (resp->status == 401 || resp->status == 403)
			decision = "deny";
		if ((route->flags & ROUTE_INTENT) && !req->intent_recorded && resp->status > 0 &&
		    resp->status < 400) {
			/* A handler that acted without its intent on record is a bug: fail loudly.
			 */
			reply_drop_body(resp);
			api_reply_error(resp, 500, "internal", "%s ran without an intent record",
					route->action);
		}
	}
	if (resp->status == 0)
		api_reply_error(resp, 500, "internal", "handler produced no answer");

	if (!req->audited && !(route->flags & ROUTE_PUBLIC)) {
		snprintf(outcome, sizeof(outcome), "%u", resp->status);
		/* No record, no answer. */
		if (record(req, NULL, route->action, decision, resp->reason, outcome, NULL) < 0)
			reply_audit_unavailable(resp);
	}
}

static enum MHD_Result answer(struct MHD_Connection *c, ApiResponse *resp)
{
	enum MHD_Result ret = send_response(c, resp);
	stream_drop(resp);
	json_decref(resp->json);
	free(resp->text);
	free(resp->raw);
	return ret;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
				 const char *method, const char *version, const char *upload_data,
				 size_t *upload_data_size, void **con_cls)
{
	Listener *l = cls;
	Exchange *ex = *con_cls;

	if (!ex) {
		ex = calloc(1, sizeof(*ex));
		if (!ex)
			return MHD_NO;
		*con_cls = ex;
	}
	if (ex->answered) {
		/* Answered from the headers: whatever body follows is not ours to keep. */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!ex->started) {
		/* The headers are in, the body (if any) is not: decide now. */
		ApiResponse resp = { 0 };
		ex->started = true;
		admit(l, c, method, url, ex, &resp);
		if (ex->admitted)
			return MHD_YES;
		ex->answered = true;
		return answer(c, &resp);
	}
	if (*upload_data_size > 0) {
		if (!ex->too_large) {
			if (ex->body.len + *upload_data_size > API_MAX_BODY) {
				ex->too_large = true;
				strbuf_done(&ex->body);
			} else if (strbuf_append(&ex->body, upload_data, *upload_data_size) < 0)
				return MHD_NO;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}

	ApiResponse resp = { 0 };
	ex->answered = true;
	run(method, url, ex, &resp);
	return answer(c, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	Exchange *ex = *con_cls;
	if (!ex)
		return;
#if !BRANCHBOX_BENCH_NOAUTH
	if (!ex->answered && ex->listener) {
		/*
		 * libmicrohttpd answered this request itself (oversized or malformed headers, 431
		 * or 400) or the client left mid-headers or mid-body: the request was never
		 * answered by us, but it is still a request, so it gets its record, with the
		 * principal and action when they were already known.
		 */
		char request_id[33], printable[sizeof(ex->url)];
		unsigned char rid[16];
		Principal anon = { 0 };
		bool known = ex->admitted && ex->route;
		uri_printable(ex->url, printable, sizeof(printable));
		if (!ex->request_id[0]) {
			randombytes_buf(rid, sizeof(rid));
			sodium_bin2hex(request_id, sizeof(request_id), rid, sizeof(rid));
		} else
			snprintf(request_id, sizeof(request_id), "%s", ex->request_id);
		AuditRecord rec = {
			.request_id = request_id,
			.principal = known ? &ex->principal : &anon,
			.interface = ex->listener->origin == ORIGIN_UNIX_SOCKET ? "cli" : "http",
			.action = known ? ex->route->action : "request",
			.resource = known && ex->req.resource[0] ? ex->req.resource : printable,
			.decision = "deny",
			.reason = ex->started
					  ? "connection closed before the request body was complete"
				  : toe == MHD_REQUEST_TERMINATED_WITH_ERROR
					  ? "rejected by the HTTP layer (headers too large or "
					    "malformed)"
					  : "connection closed before the request was complete",
			.outcome = "rejected",
		};
		(void)audit_append(ex->listener->server->core, &rec, NULL, NULL);
	}
#endif
	strbuf_done(&ex->body);
	principal_done(&ex->principal);
	free(ex);
	*con_cls = NULL;
}

/* Called once the request line is read, before the headers: the earliest point of a request,
 * and the only one that sees the target before libmicrohttpd decodes it. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *c)
{
	Exchange *ex = calloc(1, sizeof(*ex));
	if (!ex)
		return NULL;
	ex->listener = cls;
	ex->url_control = uri && uri_has_control(uri);
	snprintf(ex->url, sizeof(ex->url), "%s", uri ? uri : "");
	return ex;
}

static int listener_start(Listener *l, int fd, BbxError *err, const char *what)
{
	l->mhd = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0,
		NULL, NULL, on_access, l, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED,
		on_completed, l, MHD_OPTION_URI_LOG_CALLBACK, on_uri, l,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)512, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		(unsigned)0, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024),
		MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1, MHD_OPTION_END);
	if (!l->mhd) {
		close(fd);
		return bbx_error_set(err, -EIO, BBX_INTERNAL, "%s: could not start the HTTP server",
				     what);
	}
	return 0;
}

static int unix_listen(const char *path, BbxError *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return bbx_error_set(err, -ENAMETOOLONG, BBX_INVALID, "socket path %s is too long",
				     path);
	memcpy(sa.sun_path, path, strlen(path) + 1);

	/* A live daemon answers on the socket; a stale file from a crash does not. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		return bbx_error_set(err, -EADDRINUSE, BBX_CONFLICT,
				     "another daemon is already serving %s", path);
	}
	close(fd);
	(void)unlink(path);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	mode_t old = umask(0077);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 128) < 0) {
		r = -errno;
		close(fd);
		return bbx_error_set(err, r, BBX_INTERNAL, "socket %s: %s", path, strerror(-r));
	}
	return fd;
}

static int tcp_listen(const char *spec, uint16_t *ret_port, BbxError *err)
{
	char host[256];
	const char *colon = strrchr(spec, ':');
	uint32_t port;
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST };
	struct addrinfo *ai = NULL;
	int fd, one = 1;

	if (!colon || (size_t)(colon - spec) >= sizeof(host) ||
	    parse_uint32(colon + 1, &port) < 0 || port > 65535)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "--listen %s: expected ADDRESS:PORT, e.g. 127.0.0.1:7480",
				     spec);
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "--listen %s: '%s' is not an IP address", spec, host);

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET)
		((struct sockaddr_in *)ai->ai_addr)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons((uint16_t)port);
	int r = bind(fd, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	if (r < 0 || listen(fd, 512) < 0) {
		r = -errno;
		close(fd);
		return bbx_error_set(err, r, BBX_INTERNAL, "--listen %s: %s", spec, strerror(-r));
	}
	struct sockaddr_storage ss = { 0 };
	socklen_t len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		*ret_port =
			ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						      : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

int api_server_new(const ApiServerOptions *opts, ApiServer **ret, BbxError *err)
{
	ApiServer *s = calloc(1, sizeof(*s));
	int fd, r;

	if (!s)
		return -ENOMEM;
	if (sodium_init() < 0) {
		free(s);
		return bbx_error_set(err, -EIO, BBX_INTERNAL, "libsodium failed to initialise");
	}
	s->core = opts->core;
	s->unix_listener = (Listener){ .server = s, .origin = ORIGIN_UNIX_SOCKET };
	s->tcp_listener = (Listener){ .server = s, .origin = ORIGIN_TCP };
	s->socket_path = strdup(opts->socket_path);
	s->preview_domain = opts->preview_domain ? strdup(opts->preview_domain) : NULL;
	if (!s->socket_path || (opts->preview_domain && !s->preview_domain)) {
		free(s->preview_domain);
		free(s);
		return -ENOMEM;
	}

	fd = unix_listen(opts->socket_path, err);
	if (fd < 0) {
		api_server_free(s);
		return fd;
	}
	r = listener_start(&s->unix_listener, fd, err, opts->socket_path);
	if (r < 0) {
		api_server_free(s);
		return r;
	}
	if (opts->listen) {
		fd = tcp_listen(opts->listen, &s->port, err);
		if (fd < 0) {
			api_server_free(s);
			return fd;
		}
		r = listener_start(&s->tcp_listener, fd, err, opts->listen);
		if (r < 0) {
			api_server_free(s);
			return r;
		}
	}
	*ret = s;
	return 0;
}

uint16_t api_server_port(ApiServer *s)
{
	return s->port;
}

void api_server_free(ApiServer *s)
{
	if (!s)
		return;
	if (s->tcp_listener.mhd)
		MHD_stop_daemon(s->tcp_listener.mhd);
	if (s->unix_listener.mhd) {
		MHD_stop_daemon(s->unix_listener.mhd);
		(void)unlink(s->socket_path);
	}
	free(s->socket_path);
	free(s->preview_domain);
	free(s);
}
