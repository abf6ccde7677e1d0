/* SPDX-License-Identifier: MIT */
/* MCP without a daemon: decoding, the Host and Origin allow-list, the tool table over the
 * operations table, the 2026-07-28 era's checks, its sealed requestState and its tasks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mcp-internal.h"

static json_t *decode_ok(const char *s)
{
	json_t *msg = NULL, *err = NULL;
	mcp_decode(s, strlen(s), &msg, &err);
	assert_null(err);
	assert_non_null(msg);
	return msg;
}

static int decode_error(const char *s)
{
	json_t *msg = NULL, *err = NULL;
	mcp_decode(s, strlen(s), &msg, &err);
	assert_null(msg);
	assert_non_null(err);
	int code = (int)json_integer_value(json_object_get(json_object_get(err, "error"), "code"));
	json_decref(err);
	return code;
}

static void test_decode(void **state)
{
	json_decref(decode_ok("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}"));
	json_decref(decode_ok("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}"));
	json_decref(decode_ok("{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{}}"));
	assert_int_equal(decode_error("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]"),
			 MCP_INVALID_REQUEST);
	assert_int_equal(decode_error("[]"), MCP_INVALID_REQUEST);
	assert_int_equal(decode_error("{\"jsonrpc\":\"2.0\",\"id\":1,"), MCP_PARSE_ERROR);
	assert_int_equal(decode_error("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"ping\"}"),
			 MCP_INVALID_REQUEST);
	assert_int_equal(decode_error("{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"ping\"}"),
			 MCP_INVALID_REQUEST);
	assert_int_equal(decode_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":7}"),
			 MCP_INVALID_REQUEST);
	assert_int_equal(
		decode_error("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\",\"a\":1,\"a\":2}"),
		MCP_PARSE_ERROR);
	char deep[200];
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	assert_int_equal(decode_error(deep), MCP_PARSE_ERROR);
}

static void test_hosts(void **state)
{
	char *allowed[] = { "dev.example", NULL };
	assert_true(mcp_host_allowed("localhost", NULL));
	assert_true(mcp_host_allowed("127.0.0.1:7480", NULL));
	assert_true(mcp_host_allowed("[::1]:7480", NULL));
	assert_true(mcp_host_allowed("LOCALHOST:1", NULL));
	assert_false(mcp_host_allowed(NULL, NULL));
	assert_false(mcp_host_allowed("evil.example", NULL));
	assert_false(mcp_host_allowed("localhost.evil.example", NULL));
	assert_false(mcp_host_allowed("127.0.0.1.evil.example:80", NULL));
	assert_true(mcp_host_allowed("dev.example:80", allowed));
	assert_false(mcp_host_allowed("x.dev.example", allowed));

	assert_true(mcp_origin_allowed(NULL, NULL)); /* not a browser */
	assert_true(mcp_origin_allowed("http://localhost:3000", NULL));
	assert_true(mcp_origin_allowed("https://127.0.0.1", NULL));
	assert_false(mcp_origin_allowed("null", NULL));
	assert_false(mcp_origin_allowed("http://evil.example", NULL));
	assert_false(mcp_origin_allowed("file://localhost", NULL));
	assert_false(mcp_origin_allowed("http://localhost@evil.example", NULL));
	assert_true(mcp_origin_allowed("https://dev.example", allowed));
}

static void test_tools(void **state)
{
	Principal reader = { .kind = PRINCIPAL_AGENT, .verbs = VERB_ENV_READ };
	Principal runner = { .kind = PRINCIPAL_AGENT, .verbs = VERB_ENV_READ | VERB_ENV_EXEC };
	const McpTool *run = mcp_tool_find("environment_run");
	assert_non_null(run);
	assert_string_equal(run->op, "environment.exec");
	assert_false(mcp_tool_offered(run, &reader));
	assert_true(mcp_tool_offered(run, &runner));
	/* Every tool whose row exists is described from it; every one names a real verb. */
	for (size_t i = 0; i < mcp_n_tools; i++) {
		const Op *op = ops_find(mcp_tools[i].op);
		json_t *d = mcp_tool_describe(&mcp_tools[i]);
		if (!op) {
			assert_null(d);
			continue;
		}
		assert_non_null(d);
		json_t *in = json_object_get(d, "inputSchema");
		assert_true(json_is_false(json_object_get(in, "additionalProperties")));
		assert_string_equal(json_string_value(json_object_get(d, "description")),
				    op->summary);
		assert_true(json_is_object(json_object_get(d, "outputSchema")));
		json_t *ann = json_object_get(d, "annotations");
		assert_int_equal(json_is_true(json_object_get(ann, "readOnlyHint")),
				 (op->flags & OP_READ_ONLY) != 0);
		assert_int_equal(json_is_true(json_object_get(ann, "destructiveHint")),
				 (op->flags & OP_DESTRUCTIVE) != 0);
		json_decref(d);
	}
	assert_null(mcp_tool_find("test_simple_text"));
}

static void test_modern(void **state)
{
	const char *meta = "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\","
			   "\"io.modelcontextprotocol/clientCapabilities\":{}}";
	char buf[512];
	snprintf(buf, sizeof(buf),
		 "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/"
		 "call\",\"params\":{\"name\":\"x\",%s}}",
		 meta);
	json_t *msg = decode_ok(buf);
	assert_true(mcp_is_modern(msg));
	assert_null(mcp_modern_check(msg));
	assert_string_equal(mcp_routing_name(msg), "x");
	assert_null(mcp_modern_headers_check(msg, "2026-07-28", "tools/call", " x "));
	json_t *e = mcp_modern_headers_check(msg, "2026-07-28", "tools/call", "y");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(e, "error"), "code")),
			 MCP_HEADER_MISMATCH);
	assert_int_equal(mcp_modern_status(e), 400);
	json_decref(e);
	e = mcp_modern_headers_check(msg, NULL, "tools/call", "x");
	assert_non_null(e);
	json_decref(e);
	json_decref(msg);

	snprintf(buf, sizeof(buf),
		 "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"ping\",\"params\":{%s}}", meta);
	msg = decode_ok(buf);
	e = mcp_modern_check(msg);
	assert_int_equal(mcp_modern_status(e), 404);
	json_decref(e);
	json_decref(msg);
	msg = decode_ok("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}");
	assert_false(mcp_is_modern(msg));
	json_decref(msg);
}

static void test_param_header(void **state)
{
	json_t *msg =
		decode_ok("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\","
			  "\"params\":{\"name\":\"t\",\"arguments\":{\"region\":\"Hello\"}}}");
	assert_null(mcp_param_header_check(msg, "region", "Hello"));
	assert_null(mcp_param_header_check(msg, "region", " Hello "));
	assert_null(mcp_param_header_check(msg, "region", "=?base64?SGVsbG8=?="));
	const char *bad[] = { NULL, "hello", "=?base64?SGVsbG8?=", "=?base64?SGVs!!!bG8=?=",
			      "=?base64?SGVsbG8=?=x" };
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		json_t *e = mcp_param_header_check(msg, "region", bad[i]);
		assert_non_null(e);
		assert_int_equal(mcp_modern_status(e), 400);
		json_decref(e);
	}
	assert_null(mcp_param_header_check(msg, "absent", NULL)); /* nothing to mirror */
	json_decref(msg);
}

static void test_state_seal(void **state)
{
	json_t *st = json_pack("{s:s,s:i}", "step", "confirm", "n", 7), *out = NULL;
	char *sealed = mcp_state_seal("tool:a", st, 60);
	assert_non_null(sealed);
	assert_true(strlen(sealed) <= MCP_STATE_MAX);
	assert_int_equal(mcp_state_open("tool:a", sealed, &out), 0);
	assert_true(json_equal(out, st));
	json_decref(out);

	/* Issued for another tool or caller: refused. */
	assert_int_equal(mcp_state_open("tool:b", sealed, &out), -EBADMSG);
	assert_null(out);
	/* Any change to the payload or to the MAC, anything appended: refused. */
	size_t n = strlen(sealed);
	for (size_t i = 0; i < n; i += 7) {
		char *t = strdup(sealed);
		t[i] = t[i] == 'A' ? 'B' : 'A';
		assert_int_equal(mcp_state_open("tool:a", t, &out), -EBADMSG);
		assert_null(out);
		free(t);
	}
	char tampered[MCP_STATE_MAX + 16];
	snprintf(tampered, sizeof(tampered), "%s-TAMPERED", sealed);
	assert_int_equal(mcp_state_open("tool:a", tampered, &out), -EBADMSG);
	const char *junk[] = { "", ".", "abc", "abc.def", "e30.", ".AAAA", "e30" };
	for (size_t i = 0; i < ELEMENTSOF(junk); i++)
		assert_int_equal(mcp_state_open("tool:a", junk[i], &out), -EBADMSG);
	/* A MAC that verifies under no other key: a fresh process could not have issued it. */
	free(sealed);

	/* Expired. */
	sealed = mcp_state_seal("tool:a", st, -5);
	assert_non_null(sealed);
	assert_int_equal(mcp_state_open("tool:a", sealed, &out), -ETIME);
	assert_null(out);
	free(sealed);

	/* Bounded both ways. */
	char big[MCP_STATE_MAX];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	json_t *huge = json_pack("{s:s}", "s", big);
	assert_null(mcp_state_seal("tool:a", huge, 60));
	json_decref(huge);
	char *longer = malloc(MCP_STATE_MAX + 2);
	memset(longer, 'A', MCP_STATE_MAX + 1);
	longer[MCP_STATE_MAX + 1] = '\0';
	assert_int_equal(mcp_state_open("tool:a", longer, &out), -E2BIG);
	free(longer);
	json_decref(st);
}

static int error_code(json_t *reply)
{
	return (int)json_integer_value(json_object_get(json_object_get(reply, "error"), "code"));
}

static void test_mrtr_check(void **state)
{
	json_t *st = json_pack("{s:s}", "step", "1"), *got = NULL, *id = json_integer(1);
	char *sealed = mcp_state_seal("p", st, 60);
	json_t *params = json_pack("{s:s,s:{s:{s:s}}}", "requestState", sealed, "inputResponses",
				   "k", "action", "accept");
	assert_null(mcp_mrtr_check(id, params, "p", &got));
	assert_true(json_equal(got, st));
	json_decref(got);
	json_t *e = mcp_mrtr_check(id, params, "q", &got); /* another purpose */
	assert_int_equal(error_code(e), MCP_INVALID_PARAMS);
	assert_null(got);
	json_decref(e);
	json_object_set_new(params, "requestState", json_integer(5));
	e = mcp_mrtr_check(id, params, "p", NULL);
	assert_int_equal(error_code(e), MCP_INVALID_PARAMS);
	json_decref(e);
	json_object_del(params, "requestState");
	json_object_set_new(params, "inputResponses", json_pack("{s:i}", "k", 12345));
	e = mcp_mrtr_check(id, params, "p", NULL);
	assert_int_equal(error_code(e), MCP_INVALID_PARAMS);
	json_decref(e);
	json_object_set_new(params, "inputResponses", json_null());
	e = mcp_mrtr_check(id, params, "p", NULL);
	assert_int_equal(error_code(e), MCP_INVALID_PARAMS);
	json_decref(e);

	/* An input_required result carries a state only this purpose opens. */
	json_t *res = mcp_mrtr_result(json_pack("{s:{s:s}}", "k", "method", "roots/list"),
				      json_incref(st), "p");
	assert_string_equal(json_string_value(json_object_get(res, "resultType")),
			    "input_required");
	const char *rs = json_string_value(json_object_get(res, "requestState"));
	assert_non_null(rs);
	assert_int_equal(mcp_state_open("p", rs, &got), 0);
	json_decref(got);
	json_decref(res);

	/* Only what the client declared is asked. */
	json_t *caps = json_pack("{s:{s:{s:{}}}}", "_meta", MCP_META_CAPS, "sampling");
	json_t *reqs =
		json_pack("{s:{s:s},s:{s:s},s:{s:s}}", "a", "method", "elicitation/create", "b",
			  "method", "sampling/createMessage", "c", "method", "roots/list");
	assert_int_equal(mcp_mrtr_filter(caps, reqs), 1);
	assert_non_null(json_object_get(reqs, "b"));
	json_decref(reqs);
	json_decref(caps);
	json_decref(params);
	json_decref(id);
	json_decref(st);
	free(sealed);
}

/* ---- tasks ---- */

static json_t *wait_run(McpTask *t, void *userdata, json_t **ret_error)
{
	if (mcp_task_sleep(t, 60 * 1000) < 0)
		return NULL;
	return json_pack("{s:[]}", "content");
}

static json_t *ask_run(McpTask *t, void *userdata, json_t **ret_error)
{
	json_t *a = mcp_task_ask(t,
				 json_pack("{s:{s:s},s:{s:s}}", "x-1", "method", "roots/list",
					   "y-1", "method", "roots/list"),
				 60);
	if (!a)
		return NULL;
	json_t *res = json_pack("{s:[],s:O}", "content", "structuredContent", a);
	json_decref(a);
	return res;
}

static json_t *task_msg(const char *method, const char *task_id, bool declared, json_t *extra)
{
	json_t *m = json_pack("{s:s,s:i,s:s,s:{s:s,s:{s:s,s:o}}}", "jsonrpc", "2.0", "id", 9,
			      "method", method, "params", "taskId", task_id, "_meta",
			      MCP_META_VERSION, "2026-07-28", MCP_META_CAPS,
			      declared ? json_pack("{s:{s:{}}}", "extensions", MCP_TASKS_EXTENSION)
				       : json_object());
	if (extra)
		json_object_update(json_object_get(m, "params"), extra);
	json_decref(extra);
	return m;
}

/* The reply of owner's method on task_id (true: unknown is an error). */
static json_t *task_call(McpTasks *ts, const char *owner, const char *method, const char *task_id,
			 json_t *extra)
{
	json_t *m = task_msg(method, task_id, true, extra), *reply = NULL;
	assert_true(mcp_tasks_handle(ts, owner, m, true, &reply));
	json_decref(m);
	return reply;
}

static const char *status_of(McpTasks *ts, const char *owner, const char *task_id, char *buf,
			     size_t size)
{
	json_t *r = task_call(ts, owner, "tasks/get", task_id, NULL);
	snprintf(buf, size, "%s",
		 json_string_value(json_object_get(json_object_get(r, "result"), "status"))
			 ?: "(error)");
	json_decref(r);
	return buf;
}

static void wait_status(McpTasks *ts, const char *owner, const char *task_id, const char *want)
{
	char buf[32];
	for (int i = 0; i < 500 && strcmp(status_of(ts, owner, task_id, buf, sizeof(buf)), want);
	     i++) {
		struct timespec d = { 0, 10 * 1000000L };
		nanosleep(&d, NULL);
	}
	assert_string_equal(status_of(ts, owner, task_id, buf, sizeof(buf)), want);
}

static char *start(McpTasks *ts, const char *owner, McpTaskRun run)
{
	json_t *id = json_integer(1);
	McpTaskSpec spec = { .run = run };
	json_t *r = mcp_tasks_start(ts, id, owner, &spec);
	json_decref(id);
	json_t *res = json_object_get(r, "result");
	char *task_id = res ? strdup(json_string_value(json_object_get(res, "taskId"))) : NULL;
	if (res) {
		assert_string_equal(json_string_value(json_object_get(res, "resultType")), "task");
		assert_string_equal(json_string_value(json_object_get(res, "status")), "working");
		assert_null(json_object_get(res, "requestState"));
	}
	json_decref(r);
	return task_id;
}

static void test_task_ownership(void **state)
{
	McpTasks *ts = mcp_tasks_new();
	char *a = start(ts, "agent:tok-a", wait_run), buf[32];
	assert_non_null(a);
	assert_string_equal(status_of(ts, "agent:tok-a", a, buf, sizeof(buf)), "working");

	/* Another principal: the task does not exist, for reading or cancelling. */
	json_t *r = task_call(ts, "agent:tok-b", "tasks/get", a, NULL);
	assert_int_equal(error_code(r), MCP_INVALID_PARAMS);
	json_decref(r);
	r = task_call(ts, "agent:tok-b", "tasks/cancel", a, NULL);
	assert_int_equal(error_code(r), MCP_INVALID_PARAMS);
	json_decref(r);
	assert_false(mcp_tasks_knows(ts, "agent:tok-b", a));
	json_t *m = task_msg("tasks/get", a, true, NULL), *reply = NULL;
	assert_false(mcp_tasks_handle(ts, "agent:tok-b", m, false, &reply)); /* asks on */
	assert_null(reply);
	json_decref(m);
	assert_string_equal(status_of(ts, "agent:tok-a", a, buf, sizeof(buf)), "working");

	/* Without the extension declared: -32021, whoever asks. */
	m = task_msg("tasks/get", a, false, NULL);
	assert_true(mcp_tasks_handle(ts, "agent:tok-a", m, true, &reply));
	assert_int_equal(error_code(reply), MCP_MISSING_CAPABILITY);
	json_decref(reply);
	json_decref(m);

	/* The owner cancels; the ack carries nothing of the task; cancelling again is alike. */
	for (int i = 0; i < 2; i++) {
		r = task_call(ts, "agent:tok-a", "tasks/cancel", a, NULL);
		json_t *res = json_object_get(r, "result");
		assert_string_equal(json_string_value(json_object_get(res, "resultType")),
				    "complete");
		assert_null(json_object_get(res, "taskId"));
		json_decref(r);
		wait_status(ts, "agent:tok-a", a, "cancelled");
	}

	/* Bounded per principal: running tasks are never dropped to make room. */
	char *held[MCP_TASKS_PER_OWNER];
	held[0] = NULL;
	for (size_t i = 1; i < MCP_TASKS_PER_OWNER; i++)
		assert_non_null(held[i] = start(ts, "agent:tok-a", wait_run));
	/* The cancelled one gives way to the sixteenth running one. */
	assert_non_null(held[0] = start(ts, "agent:tok-a", wait_run));
	assert_false(mcp_tasks_knows(ts, "agent:tok-a", a));
	assert_null(start(ts, "agent:tok-a", wait_run));
	char *other = start(ts, "agent:tok-b", wait_run);
	assert_non_null(other);
	for (size_t i = 0; i < MCP_TASKS_PER_OWNER; i++)
		free(held[i]);
	free(other);
	free(a);
	mcp_tasks_free(ts); /* cancels and waits for every thread */
}

static void test_task_input(void **state)
{
	McpTasks *ts = mcp_tasks_new();
	char *t = start(ts, "o", ask_run);
	wait_status(ts, "o", t, "input_required");
	json_t *r = task_call(ts, "o", "tasks/get", t, NULL);
	json_t *reqs = json_object_get(json_object_get(r, "result"), "inputRequests");
	assert_int_equal(json_object_size(reqs), 2);
	json_decref(r);
	/* A partial answer, and one to a key never asked: the other stays outstanding. */
	r = task_call(ts, "o", "tasks/update", t,
		      json_pack("{s:{s:{s:[]},s:{s:[]}}}", "inputResponses", "x-1", "roots", "nope",
				"roots"));
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(r, "result"), "resultType")),
		"complete");
	json_decref(r);
	r = task_call(ts, "o", "tasks/get", t, NULL);
	json_t *res = json_object_get(r, "result");
	assert_string_equal(json_string_value(json_object_get(res, "status")), "input_required");
	reqs = json_object_get(res, "inputRequests");
	assert_int_equal(json_object_size(reqs), 1);
	assert_non_null(json_object_get(reqs, "y-1"));
	json_decref(r);
	r = task_call(ts, "o", "tasks/update", t, json_pack("{s:i}", "inputResponses", 3));
	assert_int_equal(error_code(r), MCP_INVALID_PARAMS);
	json_decref(r);
	r = task_call(ts, "o", "tasks/update", t,
		      json_pack("{s:{s:{s:[]}}}", "inputResponses", "y-1", "roots"));
	json_decref(r);
	wait_status(ts, "o", t, "completed");
	r = task_call(ts, "o", "tasks/get", t, NULL);
	json_t *sc = json_object_get(json_object_get(json_object_get(r, "result"), "result"),
				     "structuredContent");
	assert_non_null(json_object_get(sc, "x-1"));
	assert_non_null(json_object_get(sc, "y-1"));
	assert_null(json_object_get(sc, "nope"));
	json_decref(r);
	free(t);
	mcp_tasks_free(ts);
}

/* A cancel fires the calls of its own principal (and session) with its requestId, no other. */
static void test_inflight_cancel(void **state)
{
	Principal a = { .kind = PRINCIPAL_AGENT, .token_id = "tok-a", .name = "a" };
	Principal b = { .kind = PRINCIPAL_AGENT, .token_id = "tok-b", .name = "b" };
	McpCall ca = { .principal = &a, .session_id = "s1" };
	McpCall ca2 = { .principal = &a, .session_id = "s2" };
	McpCall cb = { .principal = &b, .session_id = "s1" };
	McpInflight *list = NULL, *f = NULL, *g = NULL;
	json_t *id = json_string("run-1"), *other = json_integer(7);
	json_t *cancel = json_pack("{s:s,s:s,s:{s:s}}", "jsonrpc", "2.0", "method",
				   "notifications/cancelled", "params", "requestId", "run-1");
	json_t *not_cancel = json_pack("{s:s,s:s,s:{s:s}}", "jsonrpc", "2.0", "method",
				       "notifications/progress", "params", "requestId", "run-1");
	int fd = mcp_inflight_begin(&list, &ca, id, &f);
	assert_true(fd > 0 && f);
	assert_true(mcp_inflight_begin(&list, &ca, other, &g) > 0);
	/* Another token, the same token in another session, another method: nothing. */
	assert_false(mcp_inflight_cancel(&list, &cb, cancel));
	assert_false(mcp_inflight_cancel(&list, &ca2, cancel));
	assert_false(mcp_inflight_cancel(&list, &ca, not_cancel));
	uint64_t v;
	assert_int_equal(read(fd, &v, sizeof(v)), -1); /* not fired (non-blocking) */
	assert_true(mcp_inflight_cancel(&list, &ca, cancel));
	assert_int_equal(read(fd, &v, sizeof(v)), (ssize_t)sizeof(v));
	assert_true(mcp_inflight_end(&list, f));
	assert_false(mcp_inflight_end(&list, g)); /* the other id was not touched */
	assert_null(list);
	/* Ended: a late cancel finds nothing. */
	assert_false(mcp_inflight_cancel(&list, &ca, cancel));
	json_decref(id);
	json_decref(other);
	json_decref(cancel);
	json_decref(not_cancel);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode),	     cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_tools),	     cmocka_unit_test(test_modern),
		cmocka_unit_test(test_param_header), cmocka_unit_test(test_state_seal),
		cmocka_unit_test(test_mrtr_check),   cmocka_unit_test(test_task_ownership),
		cmocka_unit_test(test_task_input),   cmocka_unit_test(test_inflight_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
