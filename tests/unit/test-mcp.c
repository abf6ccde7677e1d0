/* SPDX-License-Identifier: MIT */
/* MCP without a daemon: decoding, the Host and Origin allow-list, the tool table over the
 * operations table, the 2026-07-28 era's checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
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
		cmocka_unit_test(test_param_header), cmocka_unit_test(test_inflight_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
