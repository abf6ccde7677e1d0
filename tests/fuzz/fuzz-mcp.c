/* SPDX-License-Identifier: MIT */
/*
 * Fuzz MCP message decoding and dispatch with what a client controls: one message's bytes
 * (stdin line or POST body), which are also tried as the Host and Origin headers and as the
 * era's mirrored headers. Every message must either decode to one JSON-RPC object or be
 * answered with one JSON-RPC error (a batch with -32600, never dispatched); every request
 * that decodes must get exactly one reply carrying its id, serializable, with a result or an
 * error and never both. Dispatch runs with a principal that holds no verb and no core: the
 * methods that do not reach an operation (initialize, server/discover, ping, tools/list,
 * the tasks methods, unknown ones, the era's checks) and the fixtures that answer at once
 * (the multi round-trip ones among them). The bytes are also tried as a requestState.
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "mcp-tasks.h"
#include "mcp.h"

static void check_reply(json_t *reply, json_t *id)
{
	if (!json_is_object(reply))
		abort();
	if (!json_equal(json_object_get(reply, "id"), id ? id : json_null()))
		abort();
	bool has_result = json_object_get(reply, "result") != NULL;
	bool has_error = json_object_get(reply, "error") != NULL;
	if (has_result == has_error)
		abort();
	if (has_error && !json_is_integer(json_object_get(json_object_get(reply, "error"), "code")))
		abort();
	char *s = json_dumps(reply, JSON_COMPACT);
	if (!s)
		abort();
	free(s);
}

/* Methods dispatched here: none reaches ops_run() (no core in a fuzz run). */
static bool dispatchable(const char *method)
{
	return method && strcmp(method, "tools/call") && strcmp(method, "resources/list") &&
	       strcmp(method, "resources/read");
}

/* Fixture tools that sleep, ask the client or start a task are left out (slow, need a peer,
 * or a thread each); the multi round-trip ones answer at once and stay. */
static bool fixture_quick(json_t *msg)
{
	static const char *const slow[] = {
		"slow_compute",	  "failing_job", "protocol_error_job",
		"confirm_delete", "multi_input", "test_tool_with_task"
	};
	const char *name =
		json_string_value(json_object_get(json_object_get(msg, "params"), "name"));
	if (!name)
		return true;
	for (size_t i = 0; i < sizeof(slow) / sizeof(slow[0]); i++)
		if (!strcmp(name, slow[i]))
			return false;
	if (!strncmp(name, "test_input_required_result_", 27))
		return true;
	return !strstr(name, "logging") && !strstr(name, "progress") && !strstr(name, "sampling") &&
	       !strstr(name, "elicitation");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *msg = NULL, *error = NULL;
	mcp_decode((const char *)data, size, &msg, &error);
	if (!msg == !error)
		abort();
	if (error) {
		/* The id of a message that was an object with a valid id, or null. */
		json_t *eid = json_object_get(error, "id");
		if (!json_is_null(eid) && !json_is_string(eid) && !json_is_integer(eid))
			abort();
		check_reply(error, eid);
		if (json_integer_value(json_object_get(json_object_get(error, "error"), "code")) ==
			    MCP_INVALID_REQUEST &&
		    json_object_get(error, "id") && !json_is_null(json_object_get(error, "id")) &&
		    size > 0 && data[0] == '[')
			abort(); /* a batch never yields an id */
		json_decref(error);
	}

	char *text = strndup((const char *)data, size > 4096 ? 4096 : size);
	if (text) {
		(void)mcp_host_allowed(text, NULL);
		(void)mcp_origin_allowed(text, NULL);
		/* A requestState is the client's bytes: none opens without this process's key. */
		json_t *st = NULL;
		if (mcp_state_open("fuzz", text, &st) == 0)
			abort();
	}

	if (msg) {
		json_t *id = json_object_get(msg, "id");
		const char *method = json_string_value(json_object_get(msg, "method"));
		json_t *reply = NULL;
		Principal p = { .kind = PRINCIPAL_AGENT, .verbs = 0 };
		McpCall call = { .principal = &p };

		if (mcp_is_modern(msg)) {
			json_t *e =
				mcp_modern_headers_check(msg, text, method, mcp_routing_name(msg));
			if (e)
				check_reply(e, id);
			json_decref(e);
		}
		if (dispatchable(method)) {
			mcp_dispatch(NULL, &call, msg, &reply, NULL);
			if (id)
				check_reply(reply, id);
			else if (reply)
				abort(); /* a notification is never answered */
			if (call.op_ran)
				abort();
			json_decref(reply);
			reply = NULL;
		}
		McpFixtureContext fx = { 0 };
		if (fixture_quick(msg) && mcp_fixtures_handle(&fx, msg, &reply) && id)
			check_reply(reply, id);
		json_decref(reply);
		json_decref(msg);
	}
	free(text);
	return 0;
}
