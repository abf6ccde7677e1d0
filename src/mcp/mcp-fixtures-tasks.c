/* SPDX-License-Identifier: MIT */
/*
 * The conformance suite's fixtures for the 2026-07-28 era's answers-later: the multi
 * round-trip tools and prompt (test_input_required_result_*) and the tasks extension's tools
 * (greet, slow_compute, failing_job, protocol_error_job, confirm_delete, multi_input,
 * test_tool_with_task). Like the other fixtures they run only in the `branchbox mcp
 * --test-fixtures` bridge process, whose own task table holds their tasks; a tasks request
 * for a task not in it goes on to the daemon. Nothing here touches an environment:
 * confirm_delete deletes nothing.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcp-internal.h"

#define OWNER "bridge" /* the bridge serves one token */
#define ASK_TIMEOUT_SEC 3600
#define PURPOSE_MAX 160

#define NOARGS "{\"type\": \"object\", \"properties\": {}}"

/* clang-format off */
static const struct {
	const char *name, *description, *schema;
} tools[] = {
	{ "test_input_required_result_elicitation", "asks the user's name (multi round-trip)", NOARGS },
	{ "test_input_required_result_sampling", "asks the client's model (multi round-trip)", NOARGS },
	{ "test_input_required_result_list_roots", "asks the client's roots (multi round-trip)", NOARGS },
	{ "test_input_required_result_request_state", "round-trips a sealed requestState", NOARGS },
	{ "test_input_required_result_multiple_inputs", "asks three things at once", NOARGS },
	{ "test_input_required_result_multi_round", "asks twice, the state evolving", NOARGS },
	{ "test_input_required_result_tampered_state", "refuses a requestState it did not seal", NOARGS },
	{ "test_input_required_result_capabilities", "asks only what the client declared", NOARGS },
	{ "test_tool_with_task", "asks the user's name, then runs as a task (task required)", NOARGS },
	{ "greet", "says hello (never a task)",
	  "{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\"}}}" },
	{ "slow_compute", "sleeps for seconds, as a task when the client allows",
	  "{\"type\": \"object\", \"properties\": {\"seconds\": {\"type\": \"number\"},"
	  " \"label\": {\"type\": \"string\"}}}" },
	{ "failing_job", "a task that ends with a tool error (task required)", NOARGS },
	{ "protocol_error_job", "a task that fails with a protocol error (task required)", NOARGS },
	{ "confirm_delete", "a task that asks for a confirmation; deletes nothing (task required)",
	  "{\"type\": \"object\", \"properties\": {\"filename\": {\"type\": \"string\"}}}" },
	{ "multi_input", "a task that asks two things at once (task required)", NOARGS },
};
/* clang-format on */

#define PROMPT "test_input_required_result_prompt"

static McpTasks *table;
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
	table = mcp_tasks_new();
}

static McpTasks *fixture_tasks(void)
{
	pthread_once(&table_once, table_init);
	return table;
}

static bool is_fixture_tool(const char *name)
{
	for (size_t i = 0; name && i < ELEMENTSOF(tools); i++)
		if (!strcmp(tools[i].name, name))
			return true;
	return false;
}

bool mcp_fixtures_tasks_claims(json_t *msg)
{
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *params = json_object_get(msg, "params");
	const char *name = json_string_value(json_object_get(params, "name"));
	if (!method || !mcp_is_modern(msg))
		return false;
	if (!strcmp(method, "tools/call"))
		return is_fixture_tool(name);
	if (!strcmp(method, "prompts/get"))
		return name && !strcmp(name, PROMPT);
	if (!strcmp(method, "tasks/get") || !strcmp(method, "tasks/update") ||
	    !strcmp(method, "tasks/cancel"))
		return mcp_tasks_knows(fixture_tasks(), OWNER,
				       json_string_value(json_object_get(params, "taskId")));
	return false;
}

void mcp_fixtures_tasks_list(json_t *list)
{
	for (size_t i = 0; json_is_array(list) && i < ELEMENTSOF(tools); i++)
		json_array_append_new(list,
				      json_pack("{s:s,s:s,s:o}", "name", tools[i].name,
						"description", tools[i].description, "inputSchema",
						json_loads(tools[i].schema, 0, NULL)));
}

void mcp_fixtures_tasks_prompts(json_t *list)
{
	if (json_is_array(list))
		json_array_append_new(list, json_pack("{s:s,s:s}", "name", PROMPT, "description",
						      "asks for context first (multi round-trip)"));
}

/* ---- the input requests ---- */

static json_t *text_result(const char *t, bool is_error)
{
	return json_pack("{s:[{s:s,s:s}],s:b}", "content", "type", "text", "text", t, "isError",
			 is_error);
}

static json_t *elicit(const char *message, const char *prop, const char *type)
{
	return json_pack("{s:s,s:{s:s,s:{s:s,s:{s:{s:s}},s:[s]}}}", "method", "elicitation/create",
			 "params", "message", message, "requestedSchema", "type", "object",
			 "properties", prop, "type", type, "required", prop);
}

static json_t *sample(const char *question, int max_tokens)
{
	return json_pack("{s:s,s:{s:[{s:s,s:{s:s,s:s}}],s:i}}", "method", "sampling/createMessage",
			 "params", "messages", "role", "user", "content", "type", "text", "text",
			 question, "maxTokens", max_tokens);
}

static json_t *roots(void)
{
	return json_pack("{s:s,s:{}}", "method", "roots/list", "params");
}

/* An elicitation's accepted value of field, or NULL. */
static const char *accepted(json_t *response, const char *field)
{
	const char *action = json_string_value(json_object_get(response, "action"));
	if (!action || strcmp(action, "accept"))
		return NULL;
	return json_string_value(json_object_get(json_object_get(response, "content"), field));
}

static bool accepted_true(json_t *response, const char *field)
{
	const char *action = json_string_value(json_object_get(response, "action"));
	return action && !strcmp(action, "accept") &&
	       json_is_true(json_object_get(json_object_get(response, "content"), field));
}

static json_t *ok(json_t *id, json_t *res)
{
	return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", res);
}

static json_t *missing(json_t *id, const char *capability)
{
	char msg[120];
	snprintf(msg, sizeof(msg), "Missing required client capability: %s", capability);
	return mcp_error(id, MCP_MISSING_CAPABILITY, msg,
			 json_pack("{s:{s:{}}}", "requiredCapabilities", capability));
}

/* ---- the multi round-trip tools ---- */

static json_t *mrtr_tool(json_t *id, const char *name, json_t *params, const char *purpose,
			 json_t *state)
{
	json_t *r1 = NULL;
	char t[512];
	const char *step = json_string_value(json_object_get(state, "step"));

	if (!strcmp(name, "test_input_required_result_elicitation")) {
		if (!mcp_client_can(params, "elicitation/create"))
			return missing(id, "elicitation");
		const char *n = accepted(mcp_input_response(params, "user_name"), "name");
		if (!n)
			return ok(id, mcp_mrtr_result(json_pack("{s:o}", "user_name",
								elicit("What is your name?", "name",
								       "string")),
						      NULL, purpose));
		snprintf(t, sizeof(t), "Hello, %.200s!", n);
		return ok(id, text_result(t, false));
	}
	if (!strcmp(name, "test_input_required_result_sampling")) {
		if (!mcp_client_can(params, "sampling/createMessage"))
			return missing(id, "sampling");
		json_t *r = mcp_input_response(params, "capital_question");
		const char *a =
			json_string_value(json_object_get(json_object_get(r, "content"), "text"));
		if (!a)
			return ok(id,
				  mcp_mrtr_result(
					  json_pack("{s:o}", "capital_question",
						    sample("What is the capital of France?", 100)),
					  NULL, purpose));
		snprintf(t, sizeof(t), "The model answered: %.400s", a);
		return ok(id, text_result(t, false));
	}
	if (!strcmp(name, "test_input_required_result_list_roots")) {
		if (!mcp_client_can(params, "roots/list"))
			return missing(id, "roots");
		json_t *list = json_object_get(mcp_input_response(params, "client_roots"), "roots");
		if (!json_is_array(list))
			return ok(id, mcp_mrtr_result(json_pack("{s:o}", "client_roots", roots()),
						      NULL, purpose));
		const char *first =
			json_string_value(json_object_get(json_array_get(list, 0), "uri"));
		snprintf(t, sizeof(t), "The client has %zu root(s)%s%.300s", json_array_size(list),
			 first ? ", the first " : "", first ? first : "");
		return ok(id, text_result(t, false));
	}
	if (!strcmp(name, "test_input_required_result_request_state") ||
	    !strcmp(name, "test_input_required_result_tampered_state")) {
		/* The answer counts only with the state issued with the question. */
		json_t *r = mcp_input_response(params, "confirm");
		if (!r || !step || strcmp(step, "confirm"))
			return ok(id, mcp_mrtr_result(
					      json_pack("{s:o}", "confirm",
							elicit("Please confirm", "ok", "boolean")),
					      json_pack("{s:s}", "step", "confirm"), purpose));
		return ok(id,
			  text_result(accepted_true(r, "ok")
					      ? "state-ok: requestState verified, confirmed"
					      : "state-ok: requestState verified, not confirmed",
				      false));
	}
	if (!strcmp(name, "test_input_required_result_multiple_inputs") ||
	    !strcmp(name, "test_input_required_result_capabilities")) {
		r1 = json_pack("{s:o,s:o,s:o}", "user_name",
			       elicit("What is your name?", "name", "string"), "greeting",
			       sample("Generate a greeting", 50), "client_roots", roots());
		if (mcp_mrtr_filter(params, r1) == 0) {
			json_decref(r1);
			return ok(id, text_result("the client declared none of elicitation, "
						  "sampling, roots: nothing to ask",
						  false));
		}
		/* Complete once every request asked was answered, with the state. */
		bool all = step && !strcmp(step, "all");
		const char *k;
		json_t *v;
		json_object_foreach(r1, k, v)
		{
			if (!mcp_input_response(params, k))
				all = false;
		}
		if (!all)
			return ok(id,
				  mcp_mrtr_result(r1, json_pack("{s:s}", "step", "all"), purpose));
		snprintf(t, sizeof(t), "all %zu inputs received", json_object_size(r1));
		json_decref(r1);
		return ok(id, text_result(t, false));
	}
	if (!strcmp(name, "test_input_required_result_multi_round")) {
		const char *n = accepted(mcp_input_response(params, "step1"), "name");
		const char *c = accepted(mcp_input_response(params, "step2"), "color");
		const char *known = json_string_value(json_object_get(state, "name"));
		if (step && !strcmp(step, "2") && known && c) {
			snprintf(t, sizeof(t), "%.200s likes %.200s", known, c);
			return ok(id, text_result(t, false));
		}
		if (step && !strcmp(step, "1") && n)
			return ok(id,
				  mcp_mrtr_result(
					  json_pack("{s:o}", "step2",
						    elicit("Step 2: What is your favorite color?",
							   "color", "string")),
					  json_pack("{s:s,s:s}", "step", "2", "name", n), purpose));
		return ok(id, mcp_mrtr_result(json_pack("{s:o}", "step1",
							elicit("Step 1: What is your name?", "name",
							       "string")),
					      json_pack("{s:s}", "step", "1"), purpose));
	}
	return NULL;
}

/* ---- the tasks ---- */

typedef struct Job {
	char name[64];
	json_t *args;
	char user[128]; /* test_tool_with_task: the name gathered before the task */
} Job;

static void job_free(void *userdata)
{
	Job *j = userdata;
	json_decref(j->args);
	free(j);
}

static json_t *fail(const char *message)
{
	return json_pack("{s:i,s:s}", "code", MCP_INTERNAL_ERROR, "message", message);
}

static json_t *job_run(McpTask *t, void *userdata, json_t **ret_error)
{
	Job *j = userdata;
	char text[512];
	if (!strcmp(j->name, "slow_compute")) {
		json_t *sec = json_object_get(j->args, "seconds");
		const char *label = json_string_value(json_object_get(j->args, "label"));
		double s = json_is_number(sec) ? json_number_value(sec) : 1;
		s = s < 0 ? 0 : s > 600 ? 600 : s;
		if (mcp_task_sleep(t, (long)(s * 1000)) < 0)
			return NULL;
		snprintf(text, sizeof(text), "slow_compute %.200s: done after %g s",
			 label ? label : "", s);
		return text_result(text, false);
	}
	if (!strcmp(j->name, "failing_job")) {
		if (mcp_task_sleep(t, 1000) < 0)
			return NULL;
		return text_result("failing_job failed, as it always does", true);
	}
	if (!strcmp(j->name, "protocol_error_job")) {
		if (mcp_task_sleep(t, 200) < 0)
			return NULL;
		*ret_error = fail("protocol_error_job: an internal error, as designed");
		return NULL;
	}
	if (!strcmp(j->name, "test_tool_with_task")) {
		if (mcp_task_sleep(t, 300) < 0)
			return NULL;
		snprintf(text, sizeof(text), "Hello, %s! (asked before the task started)", j->user);
		return text_result(text, false);
	}
	json_t *answers = NULL;
	if (!strcmp(j->name, "confirm_delete")) {
		const char *f = json_string_value(json_object_get(j->args, "filename"));
		snprintf(text, sizeof(text), "Delete %.200s?", f ? f : "the file");
		answers = mcp_task_ask(
			t, json_pack("{s:o}", "confirm-1", elicit(text, "confirm", "boolean")),
			ASK_TIMEOUT_SEC);
		if (answers)
			snprintf(text, sizeof(text), "%s %.200s (a fixture: nothing was deleted)",
				 accepted_true(json_object_get(answers, "confirm-1"), "confirm")
					 ? "confirmed deleting"
					 : "kept",
				 f ? f : "the file");
	} else if (!strcmp(j->name, "multi_input")) {
		answers = mcp_task_ask(t,
				       json_pack("{s:o,s:o}", "name-1",
						 elicit("What is your name?", "name", "string"),
						 "confirm-1",
						 elicit("Proceed?", "confirm", "boolean")),
				       ASK_TIMEOUT_SEC);
		const char *n = accepted(json_object_get(answers, "name-1"), "name");
		if (answers)
			snprintf(text, sizeof(text), "name %.200s, %s", n ? n : "(none)",
				 accepted_true(json_object_get(answers, "confirm-1"), "confirm")
					 ? "confirmed"
					 : "not confirmed");
	} else {
		*ret_error = fail("no such fixture task");
		return NULL;
	}
	if (!answers) {
		if (!mcp_task_cancelled(t))
			*ret_error = fail("the client did not answer in time");
		return NULL;
	}
	json_decref(answers);
	return text_result(text, false);
}

static json_t *start_job(json_t *id, const char *name, json_t *args, const char *user)
{
	Job *j = calloc(1, sizeof(*j));
	if (!j)
		return mcp_error(id, MCP_INTERNAL_ERROR, "out of memory", NULL);
	snprintf(j->name, sizeof(j->name), "%s", name);
	snprintf(j->user, sizeof(j->user), "%.100s", user ? user : "");
	j->args = json_is_object(args) ? json_deep_copy(args) : json_object();
	McpTaskSpec spec = { .run = job_run, .userdata = j, .free_userdata = job_free };
	McpTasks *ts = fixture_tasks();
	if (!ts) {
		job_free(j);
		return mcp_error(id, MCP_INTERNAL_ERROR, "no task table", NULL);
	}
	return mcp_tasks_start(ts, id, OWNER, &spec);
}

static json_t *task_tool(json_t *id, const char *name, json_t *params, const char *purpose)
{
	json_t *args = json_object_get(params, "arguments");
	bool declared = mcp_tasks_declared(params);
	char t[300];
	if (!strcmp(name, "greet")) {
		/* A legacy `task` param is tolerated, and never makes this a task. */
		const char *n = json_string_value(json_object_get(args, "name"));
		snprintf(t, sizeof(t), "Hello, %.200s!", n ? n : "World");
		return ok(id, text_result(t, false));
	}
	if (!strcmp(name, "slow_compute") && !declared) {
		/* Without the extension the work is done before answering. */
		json_t *sec = json_object_get(args, "seconds");
		double s = json_is_number(sec) ? json_number_value(sec) : 1;
		s = s < 0 ? 0 : s > 10 ? 10 : s;
		struct timespec ts = { (time_t)s, (long)((s - (long)s) * 1e9) };
		nanosleep(&ts, NULL);
		snprintf(t, sizeof(t), "slow_compute: done after %g s, without a task", s);
		return ok(id, text_result(t, false));
	}
	if (!declared)
		return mcp_tasks_missing(id);
	if (!strcmp(name, "test_tool_with_task")) {
		/* Multi round-trip first, synchronously; then the task. */
		const char *n = accepted(mcp_input_response(params, "user_name"), "name");
		if (!n)
			return ok(id, mcp_mrtr_result(json_pack("{s:o}", "user_name",
								elicit("What is your name?", "name",
								       "string")),
						      NULL, purpose));
		return start_job(id, name, args, n);
	}
	return start_job(id, name, args, NULL);
}

/* ---- answering ---- */

static json_t *prompt(json_t *id, json_t *params, const char *purpose)
{
	const char *c = accepted(mcp_input_response(params, "user_context"), "context");
	char t[300];
	if (!c)
		return ok(id, mcp_mrtr_result(json_pack("{s:o}", "user_context",
							elicit("What context should the prompt "
							       "use?",
							       "context", "string")),
					      NULL, purpose));
	snprintf(t, sizeof(t), "Work with this context: %.200s", c);
	return ok(id, json_pack("{s:s,s:[{s:s,s:{s:s,s:s}}]}", "description",
				"a prompt built from the client's answer", "messages", "role",
				"user", "content", "type", "text", "text", t));
}

bool mcp_fixtures_tasks_answer(json_t *msg, json_t **ret_reply)
{
	json_t *id = json_object_get(msg, "id");
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *params = json_object_get(msg, "params");
	const char *name = json_string_value(json_object_get(params, "name"));
	char purpose[PURPOSE_MAX];
	json_t *state = NULL;

	*ret_reply = NULL;
	if (!method || !mcp_is_modern(msg))
		return false;
	/* A tasks method comes here once mcp_fixtures_tasks_claims() knew its task: should the
	 * task have expired since, it is answered as unknown, not passed on. */
	bool tasks_method = !strncmp(method, "tasks/", 6);
	if (!tasks_method && !mcp_fixtures_tasks_claims(msg))
		return false;
	if (!id) /* a notification: nothing to answer */
		return true;
	if (tasks_method)
		return mcp_tasks_handle(fixture_tasks(), OWNER, msg, true, ret_reply);
	/* Every state is sealed for the one tool (or prompt) that issued it. */
	snprintf(purpose, sizeof(purpose), "fixture:%s:%.100s", method, name);
	if ((*ret_reply = mcp_mrtr_check(id, params, purpose, &state)))
		return true;
	if (!strcmp(method, "prompts/get"))
		*ret_reply = prompt(id, params, purpose);
	else if (!(*ret_reply = mrtr_tool(id, name, params, purpose, state)))
		*ret_reply = task_tool(id, name, params, purpose);
	json_decref(state);
	return true;
}
