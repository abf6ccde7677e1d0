/* SPDX-License-Identifier: MIT */
/*
 * MCP in the CLI: the daemon's /mcp handler (the glue between api and mcp, which sit side by
 * side), and `branchbox mcp`, a bridge for agents: newline-delimited JSON-RPC on stdin and
 * stdout (or Streamable HTTP on a loopback address with --http), each message forwarded to the
 * daemon's /mcp with BRANCHBOX_TOKEN. There is one dispatcher, the daemon's. Only MCP goes to
 * stdout; logs go to stderr. --test-fixtures adds the conformance suite's test_* tools and
 * test:// resources, served here in the bridge process and never by the daemon.
 *
 * One file of about 1300 lines: the stdio and HTTP bridges share the forwarding (on kept
 * connections to the daemon), session replay, progress relay and the relay of event streams
 * (resource subscriptions) below; the seams are the HTTP listener (run_http) and the
 * event-stream relays (SseRelay, listen_thread, http_proxy), the next part to move out.
 */
#include <errno.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "client.h"
#include "log.h"
#include "main.h"
#include "mcp.h"
#include "strbuf.h"

/* ---- the daemon's /mcp ---- */

static McpServer *daemon_mcp;

static ssize_t stream_read_mcp(void *stream, char *buf, size_t max)
{
	return mcp_stream_read(stream, buf, max);
}

static void stream_free_mcp(void *stream)
{
	mcp_stream_free(stream);
}

static int serve_mcp(ApiRequest *req, ApiResponse *resp)
{
	McpHttpRequest in = {
		.method = req->method,
		.body = req->body,
		.body_len = req->body_len,
		.host = api_request_header(req, "Host"),
		.origin = api_request_header(req, "Origin"),
		.accept = api_request_header(req, "Accept"),
		.content_type = api_request_header(req, "Content-Type"),
		.session_id = api_request_header(req, "Mcp-Session-Id"),
		.protocol_version = api_request_header(req, "MCP-Protocol-Version"),
		.mcp_method = api_request_header(req, "Mcp-Method"),
		.mcp_name = api_request_header(req, "Mcp-Name"),
		.call = { .principal = req->principal,
			  .request_id = req->request_id,
			  .request_digest = req->request_digest },
	};
	McpHttpResponse out;
	mcp_http_handle(daemon_mcp, &in, &out);
	req->audited = in.call.op_ran;
	resp->status = out.status;
	if (out.stream) {
		free(out.body);
		resp->stream = out.stream;
		resp->stream_read = stream_read_mcp;
		resp->stream_free = stream_free_mcp;
		resp->content_type = out.content_type;
		return 0;
	}
	resp->text = out.body ? out.body : strdup("");
	resp->content_type = out.content_type ? out.content_type : "application/json";
	snprintf(resp->mcp_session_id, sizeof(resp->mcp_session_id), "%s", out.session_id);
	if (out.status >= 400 && resp->text)
		snprintf(resp->reason, sizeof(resp->reason), "%.200s", resp->text);
	return 0;
}

int cli_mcp_serve_start(Core *core, char **allowed_hosts)
{
	McpServerOptions o = { .core = core, .allowed_hosts = allowed_hosts };
	int r = mcp_server_new(&o, &daemon_mcp);
	if (r < 0)
		return r;
	api_set_mcp_handler(serve_mcp);
	return 0;
}

void cli_mcp_serve_quiesce(void)
{
	mcp_server_shutdown(daemon_mcp);
}

void cli_mcp_serve_stop(void)
{
	api_set_mcp_handler(NULL);
	mcp_server_free(daemon_mcp);
	daemon_mcp = NULL;
}

/* ---- the bridge ---- */

#define MAX_WORKERS 64
#define ASK_TIMEOUT_SEC 60
#define MAX_IDLE_CONNS 8

typedef struct Pending {
	char id[32];
	json_t *response;
	bool used;
} Pending;

typedef struct InFlight {
	json_t *id;
	bool cancelled;
} InFlight;

typedef struct Bridge {
	HttpTarget target;
	bool fixtures;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char session[40];   /* the daemon's session for the legacy era */
	char version[16];   /* its negotiated version */
	json_t *initialize; /* the client's initialize, replayed when the daemon forgot the session */
	unsigned workers;
	unsigned next_ask;
	Pending pending[16];
	InFlight inflight[MAX_WORKERS];
	/* Kept connections to the daemon not in use: a message takes one (or opens one) and
	 * gives it back, so a message costs no connection setup. */
	int idle[MAX_IDLE_CONNS];
	unsigned n_idle;
	/* Legacy-era resource subscriptions made through the stdio bridge: the URIs, and the
	 * daemon session they are registered in (replayed into a new one after a restart). */
	json_t *subscribed;
	char subscribed_session[40];
	bool listening;		  /* the thread relaying the session's event stream runs */
	pthread_mutex_t out_lock; /* stdout */
} Bridge;

static bool header_safe(const char *s)
{
	if (!s || !*s || strlen(s) > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_'))
			return false;
	return true;
}

/* Forward one message to the daemon; each message it answers (notifications, then the
 * reply) goes to emit. session and version are the headers to send (NULL: none);
 * *ret_session gets a new session id. Returns 0 or a JSON-RPC error reply in *ret_error. */
typedef void (*Emit)(json_t *msg, void *userdata);

/* A value that may go into a header line: printable ASCII, bounded. */
static bool value_safe(const char *s)
{
	if (!s || !*s || strlen(s) > 1024)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p >= 0x7f)
			return false;
	return true;
}

static HttpConn conn_take(Bridge *b)
{
	HttpConn c = HTTP_CONN_INIT;
	pthread_mutex_lock(&b->lock);
	if (b->n_idle > 0)
		c.fd = b->idle[--b->n_idle];
	pthread_mutex_unlock(&b->lock);
	return c;
}

static void conn_give(Bridge *b, HttpConn *c)
{
	if (c->fd < 0)
		return;
	pthread_mutex_lock(&b->lock);
	if (b->n_idle < MAX_IDLE_CONNS) {
		b->idle[b->n_idle++] = c->fd;
		c->fd = -1;
	}
	pthread_mutex_unlock(&b->lock);
	http_conn_close(c);
}

static int forward(Bridge *b, json_t *msg, const char *session, const char *version, Emit emit,
		   void *userdata, char *ret_session, size_t ret_session_size, unsigned *ret_status)
{
	HttpTarget t = b->target;
	HttpResponse resp = { 0 };
	BbxError err = BBX_ERROR_INIT;
	StrBuf h = STRBUF_INIT;
	const char *method = json_string_value(json_object_get(msg, "method"));
	const char *name = mcp_routing_name(msg);
	_cleanup_free_ char *body = json_dumps(msg, JSON_COMPACT);
	if (!body)
		return -ENOMEM;
	(void)strbuf_puts(&h, "Accept: application/json, text/event-stream\r\n");
	if (header_safe(session))
		(void)strbuf_appendf(&h, "Mcp-Session-Id: %s\r\n", session);
	if (header_safe(version))
		(void)strbuf_appendf(&h, "MCP-Protocol-Version: %s\r\n", version);
	if (value_safe(method))
		(void)strbuf_appendf(&h, "Mcp-Method: %s\r\n", method);
	if (value_safe(name))
		(void)strbuf_appendf(&h, "Mcp-Name: %s\r\n", name);
	t.headers = strbuf_str(&h);
	HttpConn conn = conn_take(b);
	int r = http_request_keep(&t, &conn, "POST", "/mcp", body, strlen(body), &resp, &err);
	conn_give(b, &conn);
	strbuf_done(&h);
	if (r < 0) {
		log_error("mcp: %s: %s", t.describe, bbx_error_message(&err, r));
		return r;
	}
	if (ret_status)
		*ret_status = (unsigned)resp.status;
	if (ret_session && resp.mcp_session_id && header_safe(resp.mcp_session_id))
		snprintf(ret_session, ret_session_size, "%s", resp.mcp_session_id);
	if (resp.content_type && strcasestr(resp.content_type, "text/event-stream")) {
		char *save = NULL;
		for (char *line = strtok_r(resp.body, "\n", &save); line;
		     line = strtok_r(NULL, "\n", &save)) {
			if (strncmp(line, "data: ", 6))
				continue;
			json_t *m = json_loads(line + 6, 0, NULL);
			if (m)
				emit(m, userdata);
			json_decref(m);
		}
	} else if (resp.body_len > 0) {
		json_t *m = json_loadb(resp.body, resp.body_len, 0, NULL);
		if (json_is_object(m) &&
		    (json_object_get(m, "jsonrpc") || !json_object_get(m, "error")))
			emit(m, userdata);
		else if (resp.status == 401 || resp.status == 403 || resp.status >= 500 || !m) {
			json_decref(m);
			http_response_done(&resp);
			return -EPROTO;
		}
		json_decref(m);
	}
	http_response_done(&resp);
	return 0;
}

/* ---- stdio ---- */

static Bridge bridge;

static void write_out(json_t *msg)
{
	char *s = json_dumps(msg, JSON_COMPACT);
	if (!s)
		return;
	pthread_mutex_lock(&bridge.out_lock);
	fputs(s, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&bridge.out_lock);
	free(s);
}

static InFlight *inflight_find(json_t *id)
{
	for (size_t i = 0; i < MAX_WORKERS; i++)
		if (bridge.inflight[i].id && json_equal(bridge.inflight[i].id, id))
			return &bridge.inflight[i];
	return NULL;
}

static bool reply_cancelled(json_t *id)
{
	pthread_mutex_lock(&bridge.lock);
	InFlight *f = inflight_find(id);
	bool c = f && f->cancelled;
	pthread_mutex_unlock(&bridge.lock);
	return c;
}

typedef struct Work {
	json_t *msg;
	const char *method; /* in msg */
	json_t *id;	    /* in msg */
	json_t *reply;	    /* the daemon's answer, kept for the fixtures to merge */
	struct Work *next;  /* in the queue */
} Work;

static void stdio_notify(json_t *n, void *userdata)
{
	write_out(n);
}

static void emit_stdio(json_t *m, void *userdata)
{
	Work *w = userdata;
	if (json_object_get(m, "method")) { /* a notification (progress) */
		write_out(m);
		return;
	}
	json_decref(w->reply);
	w->reply = json_incref(m);
}

/* Send a request to the client with send(), wait for its response (delivered by deliver()). */
static json_t *ask_via(void (*send)(json_t *msg, void *userdata), void *userdata,
		       const char *method, json_t *params)
{
	char id[32];
	Pending *slot = NULL;
	pthread_mutex_lock(&bridge.lock);
	snprintf(id, sizeof(id), "bbx-%u", ++bridge.next_ask);
	for (size_t i = 0; i < ELEMENTSOF(bridge.pending); i++)
		if (!bridge.pending[i].used) {
			slot = &bridge.pending[i];
			*slot = (Pending){ .used = true };
			snprintf(slot->id, sizeof(slot->id), "%s", id);
			break;
		}
	pthread_mutex_unlock(&bridge.lock);
	if (!slot)
		return NULL;
	json_t *req = json_pack("{s:s,s:s,s:s,s:O}", "jsonrpc", "2.0", "id", id, "method", method,
				"params", params);
	send(req, userdata);
	json_decref(req);
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += ASK_TIMEOUT_SEC;
	pthread_mutex_lock(&bridge.lock);
	while (!slot->response)
		if (pthread_cond_timedwait(&bridge.cond, &bridge.lock, &deadline) == ETIMEDOUT)
			break;
	json_t *resp = slot->response;
	*slot = (Pending){ 0 };
	pthread_mutex_unlock(&bridge.lock);
	return resp;
}

static void send_stdout(json_t *msg, void *userdata)
{
	write_out(msg);
}

static json_t *stdio_ask(const char *method, json_t *params, void *userdata)
{
	return ask_via(send_stdout, NULL, method, params);
}

static void drop_reply(json_t *m, void *userdata)
{
}

/* Replay the client's initialize for a new daemon session; true with session set to it. */
static bool renew_session(char *session, size_t size)
{
	char fresh[40] = "";
	unsigned status = 0;
	pthread_mutex_lock(&bridge.lock);
	json_t *init = json_incref(bridge.initialize);
	pthread_mutex_unlock(&bridge.lock);
	if (!init)
		return false;
	int r = forward(&bridge, init, NULL, NULL, drop_reply, NULL, fresh, sizeof(fresh), &status);
	json_decref(init);
	if (r < 0 || status != 200 || !fresh[0])
		return false;
	pthread_mutex_lock(&bridge.lock);
	snprintf(bridge.session, sizeof(bridge.session), "%s", fresh);
	pthread_mutex_unlock(&bridge.lock);
	snprintf(session, size, "%s", fresh);
	return true;
}

/* A client's notifications/cancelled goes on to the daemon, which stops the work (the reply is
 * dropped here as well, cancel() saw to it). Sent with the session of the request it names. */
static void forward_cancel(Work *w)
{
	char session[40] = "", version[16] = "";
	json_t *meta = json_object_get(json_object_get(w->msg, "params"), "_meta");
	const char *modern = json_string_value(json_object_get(meta, MCP_META_VERSION));
	if (!modern) {
		pthread_mutex_lock(&bridge.lock);
		snprintf(session, sizeof(session), "%s", bridge.session);
		snprintf(version, sizeof(version), "%s", bridge.version);
		pthread_mutex_unlock(&bridge.lock);
	}
	(void)forward(&bridge, w->msg, session[0] ? session : NULL,
		      modern ? modern : (version[0] ? version : NULL), drop_reply, NULL, NULL, 0,
		      NULL);
}

/* Event-stream bytes from the daemon, split into messages for emit. */
typedef struct SseRelay {
	StrBuf line;
	void (*emit)(json_t *msg, void *userdata);
	void *userdata;
	bool (*stop)(void *userdata);
} SseRelay;

static int sse_relay(const char *data, size_t n, void *userdata)
{
	SseRelay *rl = userdata;
	if (rl->stop && rl->stop(rl->userdata))
		return -ECANCELED;
	for (size_t i = 0; i < n; i++) {
		if (data[i] != '\n') {
			if (rl->line.len >= MCP_MAX_MESSAGE + 16 ||
			    strbuf_putc(&rl->line, data[i]) < 0)
				return -EFBIG;
			continue;
		}
		const char *l = strbuf_str(&rl->line);
		if (!strncmp(l, "data: ", 6)) {
			json_t *m = json_loads(l + 6, 0, NULL);
			if (json_is_object(m))
				rl->emit(m, rl->userdata);
			json_decref(m);
		}
		strbuf_reset(&rl->line);
	}
	return 0;
}

static void emit_stdout(json_t *m, void *userdata)
{
	write_out(m);
}

/* Register the bridge's subscriptions in session (a new daemon session after a restart). */
static void resubscribe(const char *session, const char *version)
{
	pthread_mutex_lock(&bridge.lock);
	json_t *uris = json_deep_copy(bridge.subscribed);
	bool same = !strcmp(bridge.subscribed_session, session);
	pthread_mutex_unlock(&bridge.lock);
	size_t i;
	json_t *u;
	json_array_foreach(same ? NULL : uris, i, u)
	{
		json_t *m = json_pack("{s:s,s:s,s:s,s:{s:O}}", "jsonrpc", "2.0", "id", "bbx-resub",
				      "method", "resources/subscribe", "params", "uri", u);
		if (m)
			(void)forward(&bridge, m, session, version, drop_reply, NULL, NULL, 0,
				      NULL);
		json_decref(m);
	}
	json_decref(uris);
	pthread_mutex_lock(&bridge.lock);
	snprintf(bridge.subscribed_session, sizeof(bridge.subscribed_session), "%s", session);
	pthread_mutex_unlock(&bridge.lock);
}

/* The legacy session's event stream (resource updates) relayed to stdout while there are
 * subscriptions; reopened when it ends (a daemon restart: new session, subscriptions
 * registered again). */
static void *listen_thread(void *arg)
{
	for (;;) {
		char session[40], version[16], headers[256];
		pthread_mutex_lock(&bridge.lock);
		bool any = json_array_size(bridge.subscribed) > 0;
		if (!any)
			bridge.listening = false;
		snprintf(session, sizeof(session), "%s", bridge.session);
		snprintf(version, sizeof(version), "%s", bridge.version);
		pthread_mutex_unlock(&bridge.lock);
		if (!any)
			return NULL;
		if (!header_safe(session)) {
			sleep(1);
			continue;
		}
		resubscribe(session, version);
		snprintf(headers, sizeof(headers),
			 "Accept: text/event-stream\r\nMcp-Session-Id: %s\r\n%s%s%s", session,
			 header_safe(version) ? "MCP-Protocol-Version: " : "",
			 header_safe(version) ? version : "", header_safe(version) ? "\r\n" : "");
		HttpTarget t = bridge.target;
		t.headers = headers;
		HttpResponse resp = { 0 };
		SseRelay rl = { STRBUF_INIT, emit_stdout, NULL, NULL };
		int r = http_request(&t, "GET", "/mcp", NULL, 0, sse_relay, &rl, &resp, NULL);
		unsigned status = r < 0 ? 0 : (unsigned)resp.status;
		http_response_done(&resp);
		strbuf_done(&rl.line);
		if (status == 404)
			(void)renew_session(session, sizeof(session));
		else
			sleep(1);
	}
}

/* Note a subscription change the daemon accepted; start the relay for the first one. */
static void subscriptions_note(Work *w)
{
	const char *uri =
		json_string_value(json_object_get(json_object_get(w->msg, "params"), "uri"));
	bool sub = !strcmp(w->method, "resources/subscribe");
	if (!uri || !json_object_get(w->reply, "result"))
		return;
	pthread_mutex_lock(&bridge.lock);
	if (!bridge.subscribed)
		bridge.subscribed = json_array();
	size_t i;
	json_t *u;
	json_array_foreach(bridge.subscribed, i, u) if (!strcmp(json_string_value(u), uri)) break;
	if (sub && i == json_array_size(bridge.subscribed))
		json_array_append_new(bridge.subscribed, json_string(uri));
	else if (!sub && i < json_array_size(bridge.subscribed))
		json_array_remove(bridge.subscribed, i);
	snprintf(bridge.subscribed_session, sizeof(bridge.subscribed_session), "%s",
		 bridge.session);
	bool start = sub && !bridge.listening;
	if (start)
		bridge.listening = true;
	pthread_mutex_unlock(&bridge.lock);
	pthread_t th;
	if (start && pthread_create(&th, NULL, listen_thread, NULL) == 0)
		pthread_detach(th);
	else if (start) {
		pthread_mutex_lock(&bridge.lock);
		bridge.listening = false;
		pthread_mutex_unlock(&bridge.lock);
	}
}

static bool listen_cancelled(void *userdata)
{
	return reply_cancelled(((Work *)userdata)->id);
}

/* subscriptions/listen (2026-07-28) on stdio: the daemon's answer is an event stream,
 * relayed message by message until it ends or the client cancels the request. */
static void listen_stdio(Work *w, const char *version)
{
	char headers[256];
	_cleanup_free_ char *body = json_dumps(w->msg, JSON_COMPACT);
	snprintf(headers, sizeof(headers),
		 "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: "
		 "%s\r\nMcp-Method: subscriptions/listen\r\n",
		 header_safe(version) ? version : MCP_MODERN_VERSION);
	HttpTarget t = bridge.target;
	t.headers = headers;
	HttpResponse resp = { 0 };
	SseRelay rl = { STRBUF_INIT, emit_stdout, w, listen_cancelled };
	int r = body ? http_request(&t, "POST", "/mcp", body, strlen(body), sse_relay, &rl, &resp,
				    NULL)
		     : -ENOMEM;
	if (r >= 0 && resp.body_len > 0) {
		/* An error answered as plain JSON. */
		json_t *m = json_loadb(resp.body, resp.body_len, 0, NULL);
		if (json_is_object(m))
			write_out(m);
		json_decref(m);
	} else if (r < 0 && r != -ECANCELED) {
		json_t *e = mcp_error(w->id, MCP_INTERNAL_ERROR,
				      "the branchbox daemon could not be reached", NULL);
		write_out(e);
		json_decref(e);
	}
	http_response_done(&resp);
	strbuf_done(&rl.line);
}

static void handle(Work *w)
{
	const char *method = w->method;
	json_t *reply = NULL;
	McpFixtureContext fx = { .notify = stdio_notify, .ask = stdio_ask };

	if (bridge.fixtures && mcp_fixtures_handle(&fx, w->msg, &reply)) {
		if (reply && !reply_cancelled(w->id))
			write_out(reply);
		json_decref(reply);
		return;
	}
	if (!w->id) { /* notifications: only a cancel is for the daemon */
		if (!strcmp(method, "notifications/cancelled"))
			forward_cancel(w);
		return;
	}

	json_t *meta = json_object_get(json_object_get(w->msg, "params"), "_meta");
	const char *modern = json_string_value(json_object_get(meta, MCP_META_VERSION));
	bool initialize = !strcmp(method, "initialize");
	if (modern && !strcmp(method, "subscriptions/listen")) {
		listen_stdio(w, modern);
		return;
	}
	char session[40] = "", version[16] = "", new_session[40] = "";
	if (!modern && !initialize) {
		pthread_mutex_lock(&bridge.lock);
		snprintf(session, sizeof(session), "%s", bridge.session);
		snprintf(version, sizeof(version), "%s", bridge.version);
		pthread_mutex_unlock(&bridge.lock);
	}
	unsigned status = 0;
	int r = forward(&bridge, w->msg, session[0] ? session : NULL,
			modern ? modern : (version[0] ? version : NULL), emit_stdio, w, new_session,
			sizeof(new_session), &status);
	if (r >= 0 && status == 404 && session[0] && renew_session(session, sizeof(session))) {
		/* The daemon restarted (sessions live in its memory): the client's initialize was
		 * replayed for a new session; the message goes again, once. */
		json_decref(w->reply);
		w->reply = NULL;
		r = forward(&bridge, w->msg, session, version[0] ? version : NULL, emit_stdio, w,
			    new_session, sizeof(new_session), &status);
	}
	if (r < 0 || !w->reply) {
		json_decref(w->reply);
		w->reply = mcp_error(w->id, MCP_INTERNAL_ERROR,
				     r == -EPROTO || status == 401
					     ? "the branchbox daemon refused the request (check "
					       "BRANCHBOX_TOKEN)"
					     : "the branchbox daemon could not be reached",
				     NULL);
	}
	json_t *res = json_object_get(w->reply, "result");
	if (initialize && res) {
		pthread_mutex_lock(&bridge.lock);
		json_decref(bridge.initialize);
		bridge.initialize = json_incref(w->msg);
		snprintf(bridge.session, sizeof(bridge.session), "%s", new_session);
		snprintf(bridge.version, sizeof(bridge.version), "%s",
			 json_string_value(json_object_get(res, "protocolVersion"))
				 ? json_string_value(json_object_get(res, "protocolVersion"))
				 : "");
		pthread_mutex_unlock(&bridge.lock);
	}
	if (bridge.fixtures && res)
		mcp_fixtures_merge(method, res);
	if (!modern &&
	    (!strcmp(method, "resources/subscribe") || !strcmp(method, "resources/unsubscribe")))
		subscriptions_note(w);
	if (!reply_cancelled(w->id))
		write_out(w->reply);
}

static void *worker(void *arg)
{
	Work *w = arg;
	handle(w);
	pthread_mutex_lock(&bridge.lock);
	InFlight *f = w->id ? inflight_find(w->id) : NULL;
	if (f) {
		json_decref(f->id);
		*f = (InFlight){ 0 };
	}
	bridge.workers--;
	pthread_cond_broadcast(&bridge.cond);
	pthread_mutex_unlock(&bridge.lock);
	json_decref(w->reply);
	json_decref(w->msg);
	free(w);
	return NULL;
}

/* A response from the client to one of our requests (sampling, elicitation). */
static void deliver(json_t *msg)
{
	const char *id = json_string_value(json_object_get(msg, "id"));
	pthread_mutex_lock(&bridge.lock);
	for (size_t i = 0; id && i < ELEMENTSOF(bridge.pending); i++)
		if (bridge.pending[i].used && !strcmp(bridge.pending[i].id, id) &&
		    !bridge.pending[i].response) {
			bridge.pending[i].response = json_incref(msg);
			pthread_cond_broadcast(&bridge.cond);
		}
	pthread_mutex_unlock(&bridge.lock);
}

static void cancel(json_t *msg)
{
	json_t *id = json_object_get(json_object_get(msg, "params"), "requestId");
	pthread_mutex_lock(&bridge.lock);
	InFlight *f = id ? inflight_find(id) : NULL;
	if (f)
		f->cancelled = true;
	pthread_mutex_unlock(&bridge.lock);
}

/* Messages waiting for a thread, and the threads waiting for one: threads are kept between
 * messages (a new one only when every one is busy), so a message costs no thread start. */
static struct {
	Work *head, *tail;
	unsigned queued, idle, threads;
	pthread_cond_t cond;
} pool = { .cond = PTHREAD_COND_INITIALIZER };

static void *pool_thread(void *arg)
{
	for (;;) {
		pthread_mutex_lock(&bridge.lock);
		pool.idle++;
		while (!pool.head)
			pthread_cond_wait(&pool.cond, &bridge.lock);
		pool.idle--;
		Work *w = pool.head;
		pool.head = w->next;
		if (!pool.head)
			pool.tail = NULL;
		pool.queued--;
		pthread_mutex_unlock(&bridge.lock);
		worker(w);
	}
	return NULL;
}

static void submit(Work *w)
{
	pthread_mutex_lock(&bridge.lock);
	if (pool.tail)
		pool.tail->next = w;
	else
		pool.head = w;
	pool.tail = w;
	pool.queued++;
	bool spawn = pool.queued > pool.idle;
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&bridge.lock);
	pthread_t th;
	if (!spawn)
		return;
	if (pthread_create(&th, NULL, pool_thread, NULL) == 0) {
		pthread_detach(th);
		pthread_mutex_lock(&bridge.lock);
		pool.threads++;
		pthread_mutex_unlock(&bridge.lock);
		return;
	}
	/* No new thread: the message waits for a busy one, or runs here when there is none. */
	pthread_mutex_lock(&bridge.lock);
	Work *mine = pool.threads == 0 ? pool.head : NULL;
	if (mine) {
		pool.head = mine->next;
		if (!pool.head)
			pool.tail = NULL;
		pool.queued--;
	}
	pthread_mutex_unlock(&bridge.lock);
	if (mine)
		worker(mine);
}

static int run_stdio(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	while ((n = getline(&line, &cap, stdin)) >= 0) {
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (n == 0)
			continue;
		json_t *msg = NULL, *error = NULL;
		mcp_decode(line, (size_t)n, &msg, &error);
		if (error) {
			write_out(error);
			json_decref(error);
			continue;
		}
		const char *method = json_string_value(json_object_get(msg, "method"));
		if (!method) {
			deliver(msg);
			json_decref(msg);
			continue;
		}
		if (!strcmp(method, "notifications/cancelled"))
			cancel(msg); /* then forwarded below, for the daemon to stop the work */
		Work *w = calloc(1, sizeof(*w));
		if (!w) {
			json_decref(msg);
			continue;
		}
		*w = (Work){ .msg = msg, .method = method, .id = json_object_get(msg, "id") };
		pthread_mutex_lock(&bridge.lock);
		while (bridge.workers >= MAX_WORKERS)
			pthread_cond_wait(&bridge.cond, &bridge.lock);
		bridge.workers++;
		if (w->id)
			for (size_t i = 0; i < MAX_WORKERS; i++)
				if (!bridge.inflight[i].id) {
					bridge.inflight[i] = (InFlight){ .id = json_incref(w->id) };
					break;
				}
		pthread_mutex_unlock(&bridge.lock);
		/* An initialize is answered before anything else is sent on. */
		if (!strcmp(method, "initialize")) {
			worker(w);
			continue;
		}
		submit(w);
	}
	free(line);
	pthread_mutex_lock(&bridge.lock);
	while (bridge.workers > 0)
		pthread_cond_wait(&bridge.cond, &bridge.lock);
	pthread_mutex_unlock(&bridge.lock);
	return EXIT_OK;
}

/* ---- local Streamable HTTP ---- */

typedef struct HttpExchange {
	StrBuf body;
	bool too_large;
} HttpExchange;

typedef struct HttpCollect {
	StrBuf sse;
	unsigned notifications;
	json_t *reply;
} HttpCollect;

static void emit_http(json_t *m, void *userdata)
{
	HttpCollect *c = userdata;
	if (json_object_get(m, "method")) {
		char *t = json_dumps(m, JSON_COMPACT);
		if (t)
			(void)strbuf_appendf(&c->sse, "event: message\ndata: %s\n\n", t);
		free(t);
		c->notifications++;
		return;
	}
	json_decref(c->reply);
	c->reply = json_incref(m);
}

static void http_notify(json_t *n, void *userdata)
{
	emit_http(n, userdata);
}

/*
 * A fixture call over HTTP answered as an event stream while it runs, so a tool can send the
 * client requests (sampling, elicitation) and wait for the answers, which the client POSTs.
 */
typedef struct Stream {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	StrBuf buf;
	size_t sent;
	bool done;
	int refs;
	json_t *msg;
	bool modern;
} Stream;

static void stream_unref(Stream *st)
{
	pthread_mutex_lock(&st->lock);
	bool last = --st->refs == 0;
	pthread_mutex_unlock(&st->lock);
	if (!last)
		return;
	strbuf_done(&st->buf);
	json_decref(st->msg);
	pthread_mutex_destroy(&st->lock);
	pthread_cond_destroy(&st->cond);
	free(st);
}

static void stream_send(json_t *msg, void *userdata)
{
	Stream *st = userdata;
	char *t = json_dumps(msg, JSON_COMPACT);
	if (!t)
		return;
	pthread_mutex_lock(&st->lock);
	(void)strbuf_appendf(&st->buf, "event: message\ndata: %s\n\n", t);
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	free(t);
}

static json_t *stream_ask(const char *method, json_t *params, void *userdata)
{
	return ask_via(stream_send, userdata, method, params);
}

static void *stream_worker(void *arg)
{
	Stream *st = arg;
	json_t *reply = NULL;
	McpFixtureContext fx = { .notify = stream_send, .ask = stream_ask, .userdata = st };
	(void)mcp_fixtures_handle(&fx, st->msg, &reply);
	if (reply)
		stream_send(reply, st);
	json_decref(reply);
	pthread_mutex_lock(&st->lock);
	st->done = true;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	stream_unref(st);
	return NULL;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	Stream *st = cls;
	pthread_mutex_lock(&st->lock);
	while (st->sent == st->buf.len && !st->done)
		pthread_cond_wait(&st->cond, &st->lock);
	size_t n = st->buf.len - st->sent;
	if (n > max)
		n = max;
	memcpy(buf, st->buf.buf + st->sent, n);
	st->sent += n;
	bool end = n == 0 && st->done;
	pthread_mutex_unlock(&st->lock);
	return end ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void stream_free(void *cls)
{
	stream_unref(cls);
}

/* Which fixture tools talk back to the client while they run. */
static bool fixture_asks(json_t *msg)
{
	const char *method = json_string_value(json_object_get(msg, "method"));
	const char *name =
		json_string_value(json_object_get(json_object_get(msg, "params"), "name"));
	return method && !strcmp(method, "tools/call") && name &&
	       (strstr(name, "sampling") || strstr(name, "elicitation"));
}

static enum MHD_Result http_stream(struct MHD_Connection *c, json_t *msg)
{
	Stream *st = calloc(1, sizeof(*st));
	if (!st) {
		json_decref(msg);
		return MHD_NO;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	st->msg = msg;
	st->refs = 2; /* the worker and the response */
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096,
								   stream_read, st, stream_free);
	pthread_t th;
	if (!r || pthread_create(&th, NULL, stream_worker, st) != 0) {
		if (r)
			MHD_destroy_response(r);
		st->refs = 1;
		stream_unref(st);
		return MHD_NO;
	}
	pthread_detach(th);
	MHD_add_response_header(r, "Content-Type", "text/event-stream");
	MHD_add_response_header(r, "Cache-Control", "no-store");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * An event stream of the daemon's (a session's GET, a subscriptions/listen) relayed to the
 * client as it comes. The daemon's answer decides the kind: a stream starts with an event
 * stream line at once, anything else is a plain answer sent on whole with its status.
 */
typedef struct Proxy {
	Stream *st;
	char *body;
	char headers[512];
	const char *method;
	bool decided, is_stream;
	unsigned status;
	char *answer;
	int refs; /* the worker's and the handler's, under st->lock */
} Proxy;

/* Drop a share of p; the caller still holds its share of p->st. */
static void proxy_unref(Proxy *p)
{
	pthread_mutex_lock(&p->st->lock);
	bool last = --p->refs == 0;
	pthread_mutex_unlock(&p->st->lock);
	if (!last)
		return;
	free(p->answer);
	free(p->body);
	free(p);
}

static int proxy_body(const char *data, size_t n, void *userdata)
{
	Proxy *p = userdata;
	Stream *st = p->st;
	pthread_mutex_lock(&st->lock);
	if (!p->decided &&
	    (data[0] == ':' || !strncmp(data, "event:", 6) || !strncmp(data, "data:", 5))) {
		p->decided = p->is_stream = true;
		pthread_cond_broadcast(&st->cond);
	}
	bool gone = p->decided && st->refs < 2; /* the response is gone: the client left */
	int r = gone ? -ECANCELED : strbuf_append(&st->buf, data, n);
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	return r;
}

static void *proxy_worker(void *arg)
{
	Proxy *p = arg;
	Stream *st = p->st;
	HttpTarget t = bridge.target;
	HttpResponse resp = { 0 };
	t.headers = p->headers;
	int r = http_request(&t, p->method, "/mcp", p->body, p->body ? strlen(p->body) : 0,
			     proxy_body, p, &resp, NULL);
	pthread_mutex_lock(&st->lock);
	if (!p->decided) {
		p->decided = true;
		p->status = r < 0 ? 502 : (unsigned)resp.status;
		p->answer = r < 0 ? NULL : strbuf_detach(&st->buf);
	}
	st->done = true;
	pthread_cond_broadcast(&st->cond);
	pthread_mutex_unlock(&st->lock);
	http_response_done(&resp);
	proxy_unref(p);
	stream_unref(st);
	return NULL;
}

static enum MHD_Result http_send(struct MHD_Connection *c, unsigned status, const char *ctype,
				 char *body, const char *session);
static const char *hdr(struct MHD_Connection *c, const char *name);

static enum MHD_Result http_proxy(struct MHD_Connection *c, const char *method, json_t *msg)
{
	Proxy *p = calloc(1, sizeof(*p));
	Stream *st = calloc(1, sizeof(*st));
	const char *session = hdr(c, "Mcp-Session-Id"), *pv = hdr(c, "MCP-Protocol-Version");
	const char *mm = hdr(c, "Mcp-Method");
	if (!p || !st) {
		free(p);
		free(st);
		json_decref(msg);
		return MHD_NO;
	}
	pthread_mutex_init(&st->lock, NULL);
	pthread_cond_init(&st->cond, NULL);
	st->refs = 3; /* the worker, the response, this function */
	p->refs = 2;
	p->st = st;
	p->method = method;
	p->body = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	json_decref(msg);
	snprintf(p->headers, sizeof(p->headers), "Accept: %s\r\n%s%s%s%s%s%s%s%s%s",
		 msg ? "application/json, text/event-stream" : "text/event-stream",
		 header_safe(session) ? "Mcp-Session-Id: " : "",
		 header_safe(session) ? session : "", header_safe(session) ? "\r\n" : "",
		 header_safe(pv) ? "MCP-Protocol-Version: " : "", header_safe(pv) ? pv : "",
		 header_safe(pv) ? "\r\n" : "", value_safe(mm) ? "Mcp-Method: " : "",
		 value_safe(mm) ? mm : "", value_safe(mm) ? "\r\n" : "");
	pthread_t th;
	if (pthread_create(&th, NULL, proxy_worker, p) != 0) {
		p->refs = 1;
		proxy_unref(p);
		st->refs = 1;
		stream_unref(st);
		return http_send(c, 502, NULL, NULL, NULL);
	}
	pthread_mutex_lock(&st->lock);
	while (!p->decided)
		pthread_cond_wait(&st->cond, &st->lock);
	bool is_stream = p->is_stream;
	pthread_mutex_unlock(&st->lock);
	enum MHD_Result ret;
	if (is_stream) {
		pthread_detach(th);
		struct MHD_Response *r = MHD_create_response_from_callback(
			MHD_SIZE_UNKNOWN, 4096, stream_read, st, stream_free);
		if (r) {
			MHD_add_response_header(r, "Content-Type", "text/event-stream");
			MHD_add_response_header(r, "Cache-Control", "no-store");
			ret = MHD_queue_response(c, 200, r);
			MHD_destroy_response(r);
		} else {
			stream_unref(st);
			ret = MHD_NO;
		}
	} else {
		pthread_join(th, NULL);
		ret = http_send(c, p->status, "application/json", TAKE_PTR(p->answer), NULL);
		stream_unref(st); /* the response's share: there is no stream */
	}
	proxy_unref(p);
	stream_unref(st);
	return ret;
}

static enum MHD_Result http_send(struct MHD_Connection *c, unsigned status, const char *ctype,
				 char *body, const char *session)
{
	size_t n = body ? strlen(body) : 0;
	struct MHD_Response *r = MHD_create_response_from_buffer(
		n, body ? body : (char *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	if (ctype)
		MHD_add_response_header(r, "Content-Type", ctype);
	if (session && *session)
		MHD_add_response_header(r, "Mcp-Session-Id", session);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result http_error(struct MHD_Connection *c, unsigned status, json_t *id, int code,
				  const char *msg)
{
	json_t *e = mcp_error(id, code, msg, NULL);
	char *s = json_dumps(e, JSON_COMPACT);
	json_decref(e);
	return http_send(c, status, "application/json", s, NULL);
}

static const char *hdr(struct MHD_Connection *c, const char *name)
{
	return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static enum MHD_Result http_forward_raw(struct MHD_Connection *c, const char *method)
{
	/* DELETE: end the daemon's session. */
	HttpTarget t = bridge.target;
	HttpResponse resp = { 0 };
	BbxError err = BBX_ERROR_INIT;
	char headers[256];
	const char *session = hdr(c, "Mcp-Session-Id");
	snprintf(headers, sizeof(headers), "%s%s%s", header_safe(session) ? "Mcp-Session-Id: " : "",
		 header_safe(session) ? session : "", header_safe(session) ? "\r\n" : "");
	t.headers = headers;
	int r = http_request(&t, method, "/mcp", NULL, 0, NULL, NULL, &resp, &err);
	unsigned status = r < 0 ? 502 : (unsigned)resp.status;
	char *body = r < 0 ? NULL : TAKE_PTR(resp.body);
	http_response_done(&resp);
	return http_send(c, status, "application/json", body, NULL);
}

static enum MHD_Result on_http(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *upload_data,
			       size_t *upload_data_size, void **con_cls)
{
	HttpExchange *ex = *con_cls;
	if (!ex) {
		ex = calloc(1, sizeof(*ex));
		if (!ex)
			return MHD_NO;
		*con_cls = ex;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		if (ex->body.len + *upload_data_size > MCP_MAX_MESSAGE)
			ex->too_large = true;
		else if (strbuf_append(&ex->body, upload_data, *upload_data_size) < 0)
			return MHD_NO;
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/mcp"))
		return http_error(c, 404, NULL, MCP_INVALID_REQUEST,
				  "Not found: the endpoint is /mcp");
	if (!mcp_host_allowed(hdr(c, "Host"), NULL))
		return http_error(c, 403, NULL, MCP_INVALID_REQUEST, "Host not allowed");
	if (!mcp_origin_allowed(hdr(c, "Origin"), NULL))
		return http_error(c, 403, NULL, MCP_INVALID_REQUEST, "Origin not allowed");
	if (!strcmp(method, "DELETE"))
		return http_forward_raw(c, "DELETE");
	if (!strcmp(method, "GET"))
		return http_proxy(c, "GET", NULL);
	if (strcmp(method, "POST"))
		return http_error(c, 405, NULL, MCP_INVALID_REQUEST,
				  "Method not allowed: use POST");
	const char *ctype = hdr(c, "Content-Type");
	if (!ctype || !strcasestr(ctype, "application/json"))
		return http_error(c, 415, NULL, MCP_INVALID_REQUEST,
				  "Unsupported Media Type: Content-Type must be application/json");
	if (ex->too_large)
		return http_error(c, 413, NULL, MCP_INVALID_REQUEST, "message larger than 1 MiB");

	json_t *msg = NULL, *error = NULL;
	mcp_decode(strbuf_str(&ex->body), ex->body.len, &msg, &error);
	if (error) {
		char *s = json_dumps(error, JSON_COMPACT);
		json_decref(error);
		return http_send(c, 400, "application/json", s, NULL);
	}
	const char *m = json_string_value(json_object_get(msg, "method"));
	json_t *id = json_object_get(msg, "id");
	HttpCollect col = { STRBUF_INIT, 0, NULL };
	McpFixtureContext fx = { .notify = http_notify, .ask = NULL, .userdata = &col };
	char new_session[40] = "";
	unsigned status = 200;
	json_t *reply = NULL;
	const char *pv = hdr(c, "MCP-Protocol-Version");
	bool modern = (m && mcp_is_modern(msg)) || (pv && !strcmp(pv, MCP_MODERN_VERSION));
	json_t *herr =
		modern ? mcp_modern_headers_check(msg, pv, hdr(c, "Mcp-Method"), hdr(c, "Mcp-Name"))
		       : NULL;
	/* The one fixture tool that mirrors an argument into a header (x-mcp-header). */
	const char *tool = m && !strcmp(m, "tools/call") ? mcp_routing_name(msg) : NULL;
	if (!herr && modern && bridge.fixtures && tool && !strcmp(tool, "test_custom_headers"))
		herr = mcp_param_header_check(msg, "region", hdr(c, "Mcp-Param-Region"));
	if (herr) {
		json_decref(msg);
		char *s = json_dumps(herr, JSON_COMPACT);
		unsigned st = mcp_modern_status(herr);
		json_decref(herr);
		return http_send(c, st, "application/json", s, NULL);
	}
	if (!m) { /* a client's answer to one of our requests */
		deliver(msg);
		json_decref(msg);
		strbuf_done(&col.sse);
		return http_send(c, 202, NULL, NULL, NULL);
	}
	if (bridge.fixtures && fixture_asks(msg) && !modern)
		return http_stream(c, msg);
	if (modern && !strcmp(m, "subscriptions/listen"))
		return http_proxy(c, "POST", msg);
	if (bridge.fixtures && mcp_fixtures_handle(&fx, msg, &reply)) {
		col.reply = reply;
		status = modern ? mcp_modern_status(reply) : 200;
	} else {
		int r = forward(&bridge, msg, hdr(c, "Mcp-Session-Id"), pv, emit_http, &col,
				new_session, sizeof(new_session), &status);
		if (r < 0) {
			json_decref(msg);
			strbuf_done(&col.sse);
			return http_error(c, 502, id, MCP_INTERNAL_ERROR,
					  "the branchbox daemon could not be reached or refused "
					  "the token");
		}
		if (bridge.fixtures && m && json_object_get(col.reply, "result"))
			mcp_fixtures_merge(m, json_object_get(col.reply, "result"));
	}
	bool request = id != NULL;
	json_decref(msg);
	if (!col.reply && request && status == 200)
		/* A request the client cancelled: the daemon ended its stream without an answer. */
		return http_send(c, 200, "text/event-stream", strbuf_detach(&col.sse), new_session);
	if (!col.reply) {
		strbuf_done(&col.sse);
		return http_send(c, status == 200 ? 202 : status, NULL, NULL, new_session);
	}
	if (col.notifications > 0) {
		char *t = json_dumps(col.reply, JSON_COMPACT);
		(void)strbuf_appendf(&col.sse, "event: message\ndata: %s\n\n", t ? t : "null");
		free(t);
		json_decref(col.reply);
		return http_send(c, 200, "text/event-stream", strbuf_detach(&col.sse), new_session);
	}
	strbuf_done(&col.sse);
	char *s = json_dumps(col.reply, JSON_COMPACT);
	json_decref(col.reply);
	return http_send(c, status, "application/json", s, new_session);
}

static void on_http_done(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	HttpExchange *ex = *con_cls;
	if (!ex)
		return;
	strbuf_done(&ex->body);
	free(ex);
	*con_cls = NULL;
}

static int run_http(const char *addr)
{
	char host[64];
	unsigned port;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	const char *colon = strrchr(addr, ':');
	if (!colon || (size_t)(colon - addr) >= sizeof(host) ||
	    sscanf(colon + 1, "%u", &port) != 1 || port > 65535)
		return cli_usage_error("mcp", "--http %s: expected 127.0.0.1:PORT", addr);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - addr), addr);
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1 || (ntohl(sa.sin_addr.s_addr) >> 24) != 127)
		return cli_usage_error("mcp",
				       "--http %s: the bridge listens on loopback only "
				       "(127.x.x.x)",
				       addr);
	sa.sin_port = htons((uint16_t)port);
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL, 0,
		NULL, NULL, on_http, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
		MHD_OPTION_NOTIFY_COMPLETED, on_http_done, NULL, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)600, MHD_OPTION_END);
	if (!d) {
		log_error("mcp: could not listen on %s", addr);
		return EXIT_FAILURE_;
	}
	log_info("mcp: serving Streamable HTTP on http://%s/mcp", addr);
	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	int sig;
	sigwait(&mask, &sig);
	MHD_stop_daemon(d);
	return EXIT_OK;
}

int verb_mcp(const CliArgs *a)
{
	const char *http = cli_arg_value(a, "http");

	bridge.fixtures = cli_arg_flag(a, "test-fixtures");
	int r = cli_target("mcp", a->state, &bridge.target);
	if (r != EXIT_OK)
		return r;
	pthread_mutex_init(&bridge.lock, NULL);
	pthread_mutex_init(&bridge.out_lock, NULL);
	pthread_cond_init(&bridge.cond, NULL);
	signal(SIGPIPE, SIG_IGN);
	r = http ? run_http(http) : run_stdio();
	http_target_done(&bridge.target);
	return r;
}
