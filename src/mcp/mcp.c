/* SPDX-License-Identifier: MIT */
/*
 * The MCP dispatcher the daemon serves on /mcp: JSON-RPC decoding, both protocol eras
 * (initialize and sessions; 2026-07-28's server/discover and per-request _meta), the Host
 * and Origin allow-list, tools and resources over the operations table (every call through
 * ops_run(), interface "mcp"), progress and cancellation.
 *
 * One file of about 900 lines: it is one state machine per message (decode, era, session,
 * method, answer) whose parts all read the same McpCall; the tool table is mcp-tools.c, the
 * 2026-07-28 era's requestState and tasks mcp-mrtr.c and mcp-tasks.c (called from
 * tools_call() and mcp_dispatch()), the conformance fixtures mcp-fixtures*.c.
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>

#include "build-config.h"
#include "mcp-internal.h"
#include "mcp-tasks.h"
#include "strbuf.h"
#include "strv.h"

#define MAX_SESSIONS 1024
#define SESSION_IDLE_SEC (24 * 3600)
#define MAX_DEPTH 64

static const char *const versions[] = {
	MCP_MODERN_VERSION, MCP_LATEST_LEGACY, "2025-06-18", "2025-03-26", "2024-11-05",
};

typedef struct Session {
	char id[33];
	char owner[128]; /* kind:token id:name of the principal that opened it */
	const char *version;
	time_t last_used;
} Session;

struct McpServer {
	Core *core;
	McpSubs *subs;
	char **allowed_hosts;
	pthread_mutex_t lock;
	Session sessions[MAX_SESSIONS];
	McpTasks *tasks;       /* the tasks extension's tasks (2026-07-28 era) */
	McpInflight *inflight; /* tools/call requests running now (mcp-cancel.c) */
};

static void owner_of(const Principal *p, char *buf, size_t size);

int mcp_server_new(const McpServerOptions *opts, McpServer **ret)
{
	McpServer *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->core = opts->core;
	for (char **h = opts->allowed_hosts; h && *h; h++)
		if (strv_push(&s->allowed_hosts, *h) < 0) {
			mcp_server_free(s);
			return -ENOMEM;
		}
	pthread_mutex_init(&s->lock, NULL);
	s->tasks = mcp_tasks_new();
	if (!s->tasks) {
		mcp_server_free(s);
		return -ENOMEM;
	}
	int r = mcp_subs_new(s->core, &s->subs);
	if (r < 0) {
		mcp_server_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

void mcp_server_shutdown(McpServer *s)
{
	if (s)
		mcp_subs_shutdown(s->subs);
}

void mcp_server_free(McpServer *s)
{
	if (!s)
		return;
	mcp_tasks_free(s->tasks); /* waits for their threads, which use the core */
	mcp_subs_free(s->subs);
	strv_free(s->allowed_hosts);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

bool mcp_version_supported(const char *v)
{
	for (size_t i = 0; v && i < ELEMENTSOF(versions); i++)
		if (!strcmp(versions[i], v))
			return true;
	return false;
}

static const char *version_static(const char *v)
{
	for (size_t i = 0; v && i < ELEMENTSOF(versions); i++)
		if (!strcmp(versions[i], v))
			return versions[i];
	return NULL;
}

json_t *mcp_supported_versions(void)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < ELEMENTSOF(versions); i++)
		json_array_append_new(a, json_string(versions[i]));
	return a;
}

json_t *mcp_error(json_t *id, int code, const char *message, json_t *data)
{
	/* A message quoting the input (a parse error) may not be valid UTF-8. */
	json_t *m = message ? ops_json_string_lossy(message, strlen(message)) : NULL;
	json_t *e = json_pack("{s:i,s:o}", "code", code, "message", m ? m : json_string("error"));
	if (e && data)
		json_object_set_new(e, "data", data);
	else
		json_decref(data);
	return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error",
			 e);
}

static json_t *result(json_t *id, json_t *res)
{
	return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", res);
}

/* ---- decoding ---- */

/* Reject pathological nesting before jansson recurses into it. */
static bool depth_ok(const char *s, size_t n)
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
		} else if (ch == '"')
			in_str = true;
		else if (ch == '{' || ch == '[') {
			if (++depth > MAX_DEPTH)
				return false;
		} else if ((ch == '}' || ch == ']') && depth > 0)
			depth--;
	}
	return true;
}

static bool id_valid(json_t *id)
{
	return json_is_string(id) || json_is_integer(id);
}

void mcp_decode(const char *data, size_t n, json_t **ret_msg, json_t **ret_error)
{
	json_error_t je;
	*ret_msg = *ret_error = NULL;
	if (n > MCP_MAX_MESSAGE) {
		*ret_error =
			mcp_error(NULL, MCP_INVALID_REQUEST, "message larger than 1 MiB", NULL);
		return;
	}
	if (!depth_ok(data, n)) {
		*ret_error = mcp_error(NULL, MCP_PARSE_ERROR, "JSON nested too deeply", NULL);
		return;
	}
	json_t *j = json_loadb(data, n, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		char msg[256];
		snprintf(msg, sizeof(msg), "parse error: line %d column %d: %s", je.line, je.column,
			 je.text);
		*ret_error = mcp_error(NULL, MCP_PARSE_ERROR, msg, NULL);
		return;
	}
	if (json_is_array(j)) {
		json_decref(j);
		*ret_error =
			mcp_error(NULL, MCP_INVALID_REQUEST,
				  "JSON-RPC batches are not supported: send one message", NULL);
		return;
	}
	json_t *id = json_object_get(j, "id");
	const char *ver = json_string_value(json_object_get(j, "jsonrpc"));
	json_t *method = json_object_get(j, "method");
	json_t *params = json_object_get(j, "params");
	bool is_response = !method && (json_object_get(j, "result") || json_object_get(j, "error"));
	if (!json_is_object(j) || !ver || strcmp(ver, "2.0") || (id && !id_valid(id)) ||
	    (!is_response && !json_is_string(method)) ||
	    (params && !json_is_object(params) && !json_is_array(params))) {
		json_t *err = mcp_error(id_valid(id) ? id : NULL, MCP_INVALID_REQUEST,
					"invalid JSON-RPC 2.0 message", NULL);
		json_decref(j);
		*ret_error = err;
		return;
	}
	*ret_msg = j;
}

/* ---- methods ---- */

bool mcp_is_modern(json_t *msg)
{
	json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
	const char *method = json_string_value(json_object_get(msg, "method"));
	return json_object_get(meta, MCP_META_VERSION) != NULL ||
	       (method && !strcmp(method, "server/discover"));
}

/* Pushed: resource updates to subscribers (no listChanged). */
static json_t *capabilities(void)
{
	return json_pack("{s:{},s:{s:b},s:{}}", "tools", "resources", "subscribe", 1, "logging");
}

static json_t *server_info(void)
{
	return json_pack("{s:s,s:s,s:s}", "name", "branchbox", "title", "branchbox", "version",
			 BRANCHBOX_VERSION);
}

static const char instructions[] =
	"branchbox runs copy-on-write preview environments of one project. Create a preview "
	"for a branch (environment_create), run commands in it (environment_run), read its "
	"logs and budget, and destroy it when done. Production is never writable from here.";

static json_t *tools_list(const McpCall *call)
{
	json_t *tools = json_array();
	for (size_t i = 0; i < mcp_n_tools; i++) {
		if (!mcp_tool_offered(&mcp_tools[i], call->principal))
			continue;
		json_t *t = mcp_tool_describe(&mcp_tools[i]);
		if (t)
			json_array_append_new(tools, t);
	}
	return json_pack("{s:o}", "tools", tools);
}

static json_t *text_content(const char *text)
{
	return json_pack("[{s:s,s:s}]", "type", "text", "text", text);
}

/* Run op for call with in (stolen); the out object or NULL with err set. */
static int run_op(McpServer *s, McpCall *call, const char *name, json_t *in, json_t **out,
		  BbxError *err)
{
	const Op *op = ops_find(name);
	if (!op) {
		json_decref(in);
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "no operation %s", name);
	}
	OpCall oc = { .core = s->core,
		      .principal = call->principal,
		      .interface = "mcp",
		      .request_id = call->request_id,
		      .request_digest = call->request_digest,
		      .cancel_fd = call->cancel_fd,
		      .principal_kept = call->principal_kept };
	int r = ops_run(&oc, op, in, out, err);
	call->op_ran = true;
	json_decref(in);
	return r;
}

static void progress(McpCall *call, json_t *token, int done, int total, const char *message)
{
	if (!token || !call->notify)
		return;
	json_t *n = json_pack("{s:s,s:s,s:{s:O,s:i,s:i,s:s}}", "jsonrpc", "2.0", "method",
			      "notifications/progress", "params", "progressToken", token,
			      "progress", done, "total", total, "message", message);
	if (n)
		call->notify(n, call->notify_userdata);
	json_decref(n);
}

static json_t *tools_call(McpServer *s, McpCall *call, json_t *id, json_t *params, bool modern)
{
	const char *name = json_string_value(json_object_get(params, "name"));
	json_t *args = json_object_get(params, "arguments");
	json_t *token = json_object_get(json_object_get(params, "_meta"), "progressToken");
	const McpTool *t = mcp_tool_find(name);
	if (!name)
		return mcp_error(id, MCP_INVALID_PARAMS, "tools/call: 'name' must be a string",
				 NULL);
	if (!t || !ops_find(t->op)) {
		char msg[160];
		snprintf(msg, sizeof(msg), "Unknown tool: %.100s", name);
		return mcp_error(id, MCP_INVALID_PARAMS, msg, NULL);
	}
	if (args && !json_is_object(args))
		return mcp_error(id, MCP_INVALID_PARAMS,
				 "tools/call: 'arguments' must be an object", NULL);
	if (modern) {
		/* No tool here asks the client for input: a requestState is not one of ours. */
		char owner[128];
		owner_of(call->principal, owner, sizeof(owner));
		json_t *e = mcp_mrtr_check(id, params, owner, NULL);
		if (e)
			return e;
		/* A long operation the client lets us answer later runs as a task. */
		if (t->long_running && s && s->tasks && mcp_tasks_declared(params))
			return mcp_tool_task(s, s->tasks, call, t, id, args, owner);
	}
	json_t *res = mcp_tool_run(s, call, t, args, token, id);
	return res ? result(id, res) : NULL;
}

json_t *mcp_tool_run(McpServer *s, McpCall *call, const McpTool *t, json_t *args,
		     json_t *progress_token, json_t *id)
{
	BbxError err = BBX_ERROR_INIT;
	json_t *out = NULL;
	progress(call, progress_token, 0, 1, "started");
	/*
	 * A request (id set) registers, so a notifications/cancelled of its principal stops it; a
	 * task brings its own cancel fd (tasks/cancel).
	 */
	McpInflight *f = NULL;
	bool registered = false;
	if (id && call->cancel_fd <= 0) {
		int cfd = mcp_inflight_begin(&s->inflight, call, id, &f);
		call->cancel_fd = cfd > 0 ? cfd : 0;
		registered = true;
	}
	int r = run_op(s, call, t->op, args ? json_deep_copy(args) : json_object(), &out, &err);
	if (registered) {
		call->cancel_fd = 0;
		if (mcp_inflight_end(&s->inflight, f)) {
			/* Cancelled: the work was stopped (its audit record says so), no answer. */
			call->cancelled = true;
			json_decref(out);
			return NULL;
		}
	}
	progress(call, progress_token, 1, 1, "done");
	if (r < 0) {
		BbxErrorKind k = bbx_error_kind(&err, r);
		const char *msg = bbx_error_message(&err, r);
		return json_pack("{s:o,s:b,s:{s:{s:s,s:s}}}", "content", text_content(msg),
				 "isError", 1, "_meta", "io.branchbox/error", "code",
				 bbx_error_kind_name(k), "message", msg);
	}
	char *text = json_dumps(out, JSON_COMPACT);
	bool is_error = false;
	if (!strcmp(t->name, "environment_run")) {
		json_t *ec = json_object_get(out, "exit_code");
		is_error = (ec && json_integer_value(ec) != 0) ||
			   json_is_true(json_object_get(out, "timed_out"));
	}
	json_t *res = json_pack("{s:o,s:o,s:b}", "content", text_content(text ? text : "{}"),
				"structuredContent", out, "isError", is_error);
	free(text);
	return res;
}

#define ENV_URI MCP_ENV_URI
#define CONFIG_URI MCP_CONFIG_URI

static json_t *resources_list(McpServer *s, McpCall *call, json_t *id)
{
	BbxError err = BBX_ERROR_INIT;
	json_t *out = NULL, *list = json_array();
	/* Production's config: listed only to a principal that may read production. */
	const Op *config_op = ops_find("config.read");
	BbxError deny = BBX_ERROR_INIT;
	if (config_op && mcp_tool_offered(mcp_tool_find("config_read"), call->principal) &&
	    ops_authorize(s->core, call->principal, config_op, core_production_branch(s->core),
			  NULL, &deny) == 0)
		json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s}", "uri", CONFIG_URI,
						      "name", "config", "description",
						      "the project config production runs",
						      "mimeType", "application/json"));
	if (call->principal->verbs & VERB_ENV_READ) {
		int r = run_op(s, call, "environment.list", json_object(), &out, &err);
		if (r < 0) {
			json_decref(list);
			return mcp_error(id, MCP_INTERNAL_ERROR, bbx_error_message(&err, r), NULL);
		}
		size_t i;
		json_t *e;
		json_array_foreach(json_object_get(out, "environments"), i, e)
		{
			const char *n = json_string_value(json_object_get(e, "name"));
			if (!n)
				continue;
			char uri[256], desc[160];
			snprintf(uri, sizeof(uri), ENV_URI "%s", n);
			snprintf(desc, sizeof(desc), "status of environment %s", n);
			json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s}", "uri", uri,
							      "name", n, "description", desc,
							      "mimeType", "application/json"));
		}
		json_decref(out);
	}
	return result(id, json_pack("{s:o}", "resources", list));
}

static json_t *resources_read(McpServer *s, McpCall *call, json_t *id, json_t *params)
{
	const char *uri = json_string_value(json_object_get(params, "uri"));
	BbxError err = BBX_ERROR_INIT;
	json_t *out = NULL;
	int r;
	if (!uri)
		return mcp_error(id, MCP_INVALID_PARAMS, "resources/read: 'uri' must be a string",
				 NULL);
	if (!strncmp(uri, ENV_URI, strlen(ENV_URI)) && uri[strlen(ENV_URI)])
		r = run_op(s, call, "environment.get",
			   json_pack("{s:s}", "name", uri + strlen(ENV_URI)), &out, &err);
	else if (!strcmp(uri, CONFIG_URI) && ops_find("config.read"))
		r = run_op(s, call, "config.read",
			   json_pack("{s:s}", "name", core_production_branch(s->core)), &out, &err);
	else
		r = -ENOENT;
	if (r == -ENOENT || (r < 0 && bbx_error_kind(&err, r) == BBX_NOT_FOUND))
		return mcp_error(id, MCP_RESOURCE_NOT_FOUND, "Resource not found",
				 json_pack("{s:s}", "uri", uri));
	if (r < 0)
		return mcp_error(id, MCP_INVALID_PARAMS, bbx_error_message(&err, r), NULL);
	char *text = json_dumps(out, JSON_COMPACT);
	json_decref(out);
	json_t *res = json_pack("{s:[{s:s,s:s,s:s}]}", "contents", "uri", uri, "mimeType",
				"application/json", "text", text ? text : "{}");
	free(text);
	return result(id, res);
}

static const char *negotiate(json_t *params)
{
	const char *want = json_string_value(json_object_get(params, "protocolVersion"));
	const char *v = version_static(want);
	if (!v || !strcmp(v, MCP_MODERN_VERSION))
		return MCP_LATEST_LEGACY;
	return v;
}

void mcp_modern_result(json_t *reply, const char *method)
{
	json_t *res = json_object_get(reply, "result");
	json_t *code = json_object_get(json_object_get(reply, "error"), "code");
	/* The era answers a missing resource as invalid params (SEP-2164). */
	if (json_integer_value(code) == MCP_RESOURCE_NOT_FOUND)
		json_integer_set(code, MCP_INVALID_PARAMS);
	if (!json_is_object(res))
		return;
	if (!json_object_get(res, "resultType")) /* input_required and task stay as they are */
		json_object_set_new(res, "resultType", json_string("complete"));
	static const char *const cacheable[] = {
		"server/discover",	    "tools/list",    "prompts/list", "resources/list",
		"resources/templates/list", "resources/read"
	};
	for (size_t i = 0; i < ELEMENTSOF(cacheable); i++)
		if (!strcmp(method, cacheable[i])) {
			json_object_set_new(res, "ttlMs", json_integer(0));
			json_object_set_new(res, "cacheScope", json_string("private"));
		}
}

void mcp_dispatch(McpServer *s, McpCall *call, json_t *msg, json_t **ret_reply,
		  const char **ret_new_version)
{
	json_t *id = json_object_get(msg, "id");
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *params = json_object_get(msg, "params");
	json_t *reply = NULL;

	*ret_reply = NULL;
	if (ret_new_version)
		*ret_new_version = NULL;
	if (!method || !id) /* a notification or a response: nothing to answer */
		return;
	if (params && !json_is_object(params)) {
		*ret_reply = mcp_error(id, MCP_INVALID_PARAMS, "params must be an object", NULL);
		return;
	}
	bool modern = mcp_is_modern(msg);
	if (modern && (reply = mcp_modern_check(msg))) {
		*ret_reply = reply;
		return;
	}
	char owner[128]; /* who a task belongs to */
	owner_of(call->principal, owner, sizeof(owner));

	if (!strcmp(method, "initialize")) {
		const char *v = negotiate(params);
		reply = result(id, json_pack("{s:s,s:o,s:o,s:s}", "protocolVersion", v,
					     "capabilities", capabilities(), "serverInfo",
					     server_info(), "instructions", instructions));
		if (ret_new_version)
			*ret_new_version = v;
	} else if (!strcmp(method, "server/discover")) {
		json_t *caps = capabilities();
		if (caps && s && s->tasks)
			json_object_set_new(caps, "extensions",
					    json_pack("{s:{}}", MCP_TASKS_EXTENSION));
		reply = result(id, json_pack("{s:[s],s:o,s:o,s:s,s:{s:o}}", "supportedVersions",
					     MCP_MODERN_VERSION, "capabilities", caps, "serverInfo",
					     server_info(), "instructions", instructions, "_meta",
					     "io.modelcontextprotocol/serverInfo", server_info()));
	} else if (modern && !strncmp(method, "tasks/", 6) &&
		   mcp_tasks_handle(s ? s->tasks : NULL, owner, msg, true, &reply))
		; /* tasks/get, tasks/update, tasks/cancel */
	else if (!strcmp(method, "ping"))
		reply = result(id, json_object());
	else if (!strcmp(method, "tools/list"))
		reply = result(id, tools_list(call));
	else if (!strcmp(method, "tools/call"))
		reply = tools_call(s, call, id, params, modern);
	else if (!strcmp(method, "resources/list"))
		reply = resources_list(s, call, id);
	else if (!strcmp(method, "resources/templates/list"))
		reply = result(id, json_pack("{s:[{s:s,s:s,s:s,s:s}]}", "resourceTemplates",
					     "uriTemplate", ENV_URI "{name}", "name", "environment",
					     "description", "the status of one environment",
					     "mimeType", "application/json"));
	else if (!strcmp(method, "resources/read"))
		reply = resources_read(s, call, id, params);
	else if (!strcmp(method, "logging/setLevel"))
		reply = result(id, json_object());
	else if (!modern && (!strcmp(method, "resources/subscribe") ||
			     !strcmp(method, "resources/unsubscribe")))
		reply = mcp_subs_request(s->subs, call, id, method, params);
	else {
		char text[160];
		snprintf(text, sizeof(text), "Method not found: %.100s", method);
		reply = mcp_error(id, MCP_METHOD_NOT_FOUND, text, NULL);
	}
	if (modern && reply)
		mcp_modern_result(reply, method);
	*ret_reply = reply;
}

json_t *mcp_modern_check(json_t *msg)
{
	static const char *const removed[] = { "initialize", "ping", "logging/setLevel",
					       "resources/subscribe", "resources/unsubscribe" };
	json_t *id = json_object_get(msg, "id");
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
	const char *v = json_string_value(json_object_get(meta, MCP_META_VERSION));
	if (!json_object_get(meta, MCP_META_VERSION) || !json_object_get(meta, MCP_META_CAPS))
		return mcp_error(id, MCP_INVALID_PARAMS,
				 "Invalid params: missing _meta keys: " MCP_META_VERSION
				 ", " MCP_META_CAPS,
				 NULL);
	if (!v || strcmp(v, MCP_MODERN_VERSION))
		return mcp_error(id, MCP_UNSUPPORTED_VERSION, "Unsupported protocol version",
				 json_pack("{s:[s],s:s}", "supported", MCP_MODERN_VERSION,
					   "requested", v ? v : "(not a string)"));
	for (size_t i = 0; method && i < ELEMENTSOF(removed); i++)
		if (!strcmp(method, removed[i])) {
			char text[160];
			snprintf(text, sizeof(text), "Method not found: %s is not part of %s",
				 method, MCP_MODERN_VERSION);
			return mcp_error(id, MCP_METHOD_NOT_FOUND, text, NULL);
		}
	return NULL;
}

unsigned mcp_modern_status(json_t *reply)
{
	json_t *e = json_object_get(reply, "error");
	if (!e)
		return 200;
	switch (json_integer_value(json_object_get(e, "code"))) {
	case MCP_METHOD_NOT_FOUND: return 404;
	case MCP_PARSE_ERROR:
	case MCP_INVALID_REQUEST:
	case MCP_INVALID_PARAMS:
	case MCP_HEADER_MISMATCH:
	case MCP_MISSING_CAPABILITY:
	case MCP_UNSUPPORTED_VERSION: return 400;
	case MCP_LIMIT_REACHED: return 429;
	case MCP_INTERNAL_ERROR: return 500;
	default: return 200;
	}
}

json_t *mcp_param_header_check(json_t *msg, const char *param, const char *value)
{
	json_t *id = json_object_get(msg, "id");
	json_t *args = json_object_get(json_object_get(msg, "params"), "arguments");
	const char *want = json_string_value(json_object_get(args, param));
	char buf[1024];
	if (!want)
		return NULL; /* nothing in the body to mirror */
	if (!value)
		return mcp_error(id, MCP_HEADER_MISMATCH,
				 "Missing Mcp-Param header for an argument", NULL);
	while (*value == ' ' || *value == '\t')
		value++;
	size_t n = strlen(value);
	while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
		n--;
	const char *got = value;
	size_t got_len = n;
	if (n >= 12 && !strncmp(value, "=?base64?", 9) && !strncmp(value + n - 2, "?=", 2)) {
		size_t bin_len = 0;
		const char *end = NULL;
		if (sodium_base642bin((unsigned char *)buf, sizeof(buf), value + 9, n - 11, NULL,
				      &bin_len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    end != value + n - 2)
			return mcp_error(id, MCP_HEADER_MISMATCH,
					 "Mcp-Param header: invalid Base64 value", NULL);
		got = buf;
		got_len = bin_len;
	}
	if (got_len != strlen(want) || memcmp(got, want, got_len))
		return mcp_error(id, MCP_HEADER_MISMATCH,
				 "Mcp-Param header does not match the body's argument", NULL);
	return NULL;
}

const char *mcp_routing_name(json_t *msg)
{
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *params = json_object_get(msg, "params");
	if (!method)
		return NULL;
	if (!strcmp(method, "tools/call") || !strcmp(method, "prompts/get"))
		return json_string_value(json_object_get(params, "name"));
	if (!strcmp(method, "tasks/get") || !strcmp(method, "tasks/update") ||
	    !strcmp(method, "tasks/cancel"))
		return json_string_value(json_object_get(params, "taskId"));
	if (!strcmp(method, "resources/read"))
		return json_string_value(json_object_get(params, "uri"));
	return NULL;
}

/* Does header value h (surrounding whitespace not counted) equal want? */
static bool header_equals(const char *h, const char *want)
{
	while (*h == ' ' || *h == '\t')
		h++;
	size_t n = strlen(h);
	while (n > 0 && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	return n == strlen(want) && !memcmp(h, want, n);
}

json_t *mcp_modern_headers_check(json_t *msg, const char *version, const char *method,
				 const char *name)
{
	json_t *id = json_object_get(msg, "id");
	const char *m = json_string_value(json_object_get(msg, "method"));
	json_t *meta = json_object_get(json_object_get(msg, "params"), "_meta");
	const char *mv = json_string_value(json_object_get(meta, MCP_META_VERSION));
	const char *want = mcp_routing_name(msg);
	if (!version)
		return mcp_error(id, MCP_HEADER_MISMATCH, "Missing MCP-Protocol-Version header",
				 NULL);
	if (m && mv && !header_equals(version, mv))
		return mcp_error(id, MCP_HEADER_MISMATCH,
				 "MCP-Protocol-Version header does not match "
				 "_meta." MCP_META_VERSION,
				 NULL);
	if (m && (!method || !header_equals(method, m)))
		return mcp_error(id, MCP_HEADER_MISMATCH,
				 method ? "Mcp-Method header does not match the body's method"
					: "Missing Mcp-Method header",
				 NULL);
	if (want && (!name || !header_equals(name, want)))
		return mcp_error(id, MCP_HEADER_MISMATCH,
				 name ? "Mcp-Name header does not match the body"
				      : "Missing Mcp-Name header",
				 NULL);
	return NULL;
}

/* ---- Host and Origin ---- */

/* "host[:port]" or "[v6]:port" -> the host part, lower case. */
static bool host_part(const char *in, char *buf, size_t size)
{
	size_t n;
	if (in[0] == '[') {
		const char *e = strchr(in, ']');
		if (!e || (e[1] && e[1] != ':'))
			return false;
		n = (size_t)(e - in + 1);
	} else {
		const char *c = strchr(in, ':');
		n = c ? (size_t)(c - in) : strlen(in);
	}
	if (n == 0 || n >= size)
		return false;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] + 32 : in[i]);
	buf[n] = '\0';
	return true;
}

static bool name_allowed(const char *h, char **allowed)
{
	if (!strcmp(h, "localhost") || !strcmp(h, "127.0.0.1") || !strcmp(h, "[::1]"))
		return true;
	for (char **a = allowed; a && *a; a++)
		if (!strcasecmp(*a, h))
			return true;
	return false;
}

bool mcp_host_allowed(const char *host, char **allowed)
{
	char h[256];
	return host && host_part(host, h, sizeof(h)) && name_allowed(h, allowed);
}

bool mcp_origin_allowed(const char *origin, char **allowed)
{
	char h[256];
	if (!origin)
		return true;
	const char *p = strstr(origin, "://");
	if (!p || (strncmp(origin, "http://", 7) && strncmp(origin, "https://", 8)))
		return false;
	p += 3;
	if (strchr(p, '/') && strchr(p, '/')[1])
		return false;
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", p);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	return host_part(buf, h, sizeof(h)) && name_allowed(h, allowed);
}

/* ---- sessions ---- */

static void owner_of(const Principal *p, char *buf, size_t size)
{
	snprintf(buf, size, "%d:%s:%s", (int)p->kind, p->token_id, p->name);
}

static int session_open(McpServer *s, const Principal *p, const char *version, char id[33])
{
	unsigned char rnd[16];
	static const char hex[] = "0123456789abcdef";
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	for (int i = 0; i < 16; i++) {
		id[2 * i] = hex[rnd[i] >> 4];
		id[2 * i + 1] = hex[rnd[i] & 15];
	}
	id[32] = '\0';
	time_t now = time(NULL);
	pthread_mutex_lock(&s->lock);
	Session *slot = &s->sessions[0];
	for (size_t i = 0; i < MAX_SESSIONS; i++) {
		Session *x = &s->sessions[i];
		if (!x->id[0] || now - x->last_used > SESSION_IDLE_SEC) {
			slot = x;
			break;
		}
		if (x->last_used < slot->last_used)
			slot = x; /* the least recently used goes when all are taken */
	}
	memcpy(slot->id, id, 33);
	owner_of(p, slot->owner, sizeof(slot->owner));
	slot->version = version;
	slot->last_used = now;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* The session's version, or NULL when there is no such session for p. close ends it. */
static const char *session_use(McpServer *s, const Principal *p, const char *id, bool close)
{
	char owner[128];
	const char *v = NULL;
	time_t now = time(NULL);
	owner_of(p, owner, sizeof(owner));
	if (strlen(id) != 32)
		return NULL;
	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < MAX_SESSIONS; i++) {
		Session *x = &s->sessions[i];
		if (!x->id[0] || strcmp(x->id, id))
			continue;
		if (!strcmp(x->owner, owner) && now - x->last_used <= SESSION_IDLE_SEC) {
			v = x->version;
			x->last_used = now;
			if (close)
				memset(x, 0, sizeof(*x));
		}
		break;
	}
	pthread_mutex_unlock(&s->lock);
	return v;
}

/* ---- HTTP ---- */

static void reply_json(McpHttpResponse *resp, unsigned status, json_t *j)
{
	resp->status = status;
	resp->content_type = "application/json";
	resp->body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
}

typedef struct Events {
	StrBuf sb;
	unsigned n;
} Events;

static void sse_event(StrBuf *sb, json_t *msg)
{
	char *t = json_dumps(msg, JSON_COMPACT);
	if (!t)
		return;
	(void)strbuf_appendf(sb, "event: message\ndata: %s\n\n", t);
	free(t);
}

static void collect(json_t *notification, void *userdata)
{
	Events *ev = userdata;
	sse_event(&ev->sb, notification);
	ev->n++;
}

/* GET in the legacy era: the session's stream of resource updates. */
static void session_stream(McpServer *s, McpHttpRequest *req, McpHttpResponse *resp)
{
	if (!req->accept || !strcasestr(req->accept, "text/event-stream"))
		reply_json(resp, 406,
			   mcp_error(NULL, MCP_INVALID_REQUEST,
				     "Not Acceptable: Accept must include text/event-stream",
				     NULL));
	else if (!req->session_id)
		reply_json(resp, 400,
			   mcp_error(NULL, MCP_INVALID_REQUEST,
				     "Bad Request: Mcp-Session-Id header is required", NULL));
	else if (!session_use(s, req->call.principal, req->session_id, false))
		reply_json(resp, 404,
			   mcp_error(NULL, MCP_INVALID_REQUEST, "Session not found", NULL));
	else if (!(resp->stream =
			   mcp_subs_session_stream(s->subs, req->call.principal, req->session_id)))
		reply_json(resp, 429, mcp_subs_no_room(NULL));
	else {
		resp->status = 200;
		resp->content_type = "text/event-stream";
	}
}

void mcp_http_handle(McpServer *s, McpHttpRequest *req, McpHttpResponse *resp)
{
	json_t *msg = NULL, *error = NULL, *reply = NULL;
	memset(resp, 0, sizeof(*resp));

	if (!mcp_host_allowed(req->host, s->allowed_hosts)) {
		reply_json(resp, 403,
			   mcp_error(NULL, MCP_INVALID_REQUEST, "Host not allowed", NULL));
		return;
	}
	if (!mcp_origin_allowed(req->origin, s->allowed_hosts)) {
		reply_json(resp, 403,
			   mcp_error(NULL, MCP_INVALID_REQUEST, "Origin not allowed", NULL));
		return;
	}
	if (!strcmp(req->method, "DELETE")) {
		if (!req->session_id || !session_use(s, req->call.principal, req->session_id, true))
			reply_json(resp, 404,
				   mcp_error(NULL, MCP_INVALID_REQUEST, "Session not found", NULL));
		else {
			mcp_subs_session_closed(s->subs, req->session_id);
			resp->status = 200;
		}
		return;
	}
	if (!strcmp(req->method, "GET") &&
	    !(req->protocol_version && !strcmp(req->protocol_version, MCP_MODERN_VERSION))) {
		session_stream(s, req, resp);
		return;
	}
	if (strcmp(req->method, "POST")) {
		/* The 2026-07-28 era has no GET stream: subscriptions/listen replaces it. */
		reply_json(
			resp, 405,
			mcp_error(NULL, MCP_INVALID_REQUEST, "Method not allowed: use POST", NULL));
		return;
	}
	if (!req->content_type || !strcasestr(req->content_type, "application/json")) {
		reply_json(
			resp, 415,
			mcp_error(NULL, MCP_INVALID_REQUEST,
				  "Unsupported Media Type: Content-Type must be application/json",
				  NULL));
		return;
	}
	mcp_decode(req->body, req->body_len, &msg, &error);
	if (error) {
		reply_json(resp, 400, error);
		return;
	}
	json_t *id = json_object_get(msg, "id");
	const char *method = json_string_value(json_object_get(msg, "method"));
	bool modern = (method && mcp_is_modern(msg)) ||
		      (req->protocol_version && !strcmp(req->protocol_version, MCP_MODERN_VERSION));

	if (modern) {
		error = mcp_modern_headers_check(msg, req->protocol_version, req->mcp_method,
						 req->mcp_name);
		if (!error && method && id)
			error = mcp_modern_check(msg);
		req->call.version = MCP_MODERN_VERSION;
	} else if (method && !strcmp(method, "initialize")) {
		req->call.version = NULL;
	} else {
		const char *v = NULL;
		if (!req->session_id)
			error = mcp_error(id, MCP_INVALID_REQUEST,
					  "Bad Request: Mcp-Session-Id header is required", NULL);
		else if (!(v = session_use(s, req->call.principal, req->session_id, false))) {
			json_decref(msg);
			reply_json(resp, 404,
				   mcp_error(id, MCP_INVALID_REQUEST, "Session not found", NULL));
			return;
		} else if (req->protocol_version && !mcp_version_supported(req->protocol_version))
			error = mcp_error(id, MCP_INVALID_REQUEST,
					  "Bad Request: unsupported MCP-Protocol-Version", NULL);
		req->call.version = v;
		req->call.session_id = req->session_id;
	}
	if (error) {
		json_decref(msg);
		reply_json(resp, modern ? mcp_modern_status(error) : 400, error);
		return;
	}
	if (!method || !id) { /* a notification or a response */
		(void)mcp_inflight_cancel(&s->inflight, &req->call, msg);
		json_decref(msg);
		resp->status = 202;
		return;
	}

	if (modern && !strcmp(method, "subscriptions/listen")) {
		/* The answer is the subscription's event stream. */
		error = mcp_subs_listen(s->subs, req->call.principal, id,
					json_object_get(msg, "params"), &resp->stream);
		json_decref(msg);
		if (error) {
			mcp_modern_result(error, "subscriptions/listen");
			reply_json(resp, mcp_modern_status(error), error);
			return;
		}
		resp->status = 200;
		resp->content_type = "text/event-stream";
		return;
	}

	Events ev = { STRBUF_INIT, 0 };
	bool sse = req->accept && strcasestr(req->accept, "text/event-stream");
	if (sse) {
		req->call.notify = collect;
		req->call.notify_userdata = &ev;
	}
	const char *new_version = NULL;
	mcp_dispatch(s, &req->call, msg, &reply, &new_version);
	if (new_version && !json_object_get(reply, "error") &&
	    session_open(s, req->call.principal, new_version, resp->session_id) < 0) {
		json_decref(reply);
		reply = mcp_error(id, MCP_INTERNAL_ERROR, "could not open a session", NULL);
		resp->session_id[0] = '\0';
	}
	json_decref(msg);
	if (!reply && req->call.cancelled) {
		/* No answer to a cancelled request: an event stream that ends without one. */
		resp->status = 200;
		resp->content_type = "text/event-stream";
		resp->body = strbuf_detach(&ev.sb);
		return;
	}
	if (ev.n > 0) {
		/* Notifications first, then the answer, as one event stream. */
		sse_event(&ev.sb, reply);
		json_decref(reply);
		resp->status = 200;
		resp->content_type = "text/event-stream";
		resp->body = strbuf_detach(&ev.sb);
		return;
	}
	strbuf_done(&ev.sb);
	reply_json(resp, modern ? mcp_modern_status(reply) : 200, reply);
}
