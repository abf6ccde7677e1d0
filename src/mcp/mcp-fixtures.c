/* SPDX-License-Identifier: MIT */
/*
 * The conformance suite's fixtures: test_* tools, test:// resources and prompts with fixed
 * answers. Only the `branchbox mcp --test-fixtures` bridge calls these, in its own process;
 * the daemon never does, so no request can turn them on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcp-internal.h"

/* A 1x1 red PNG and a silent WAV. */
#define PNG                                                                                        \
	"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5E" \
	"rk"                                                                                       \
	"Jggg=="
#define WAV "UklGRiQAAABXQVZFZm10IBAAAAABAAEAQB8AAIA+AAACABAAZGF0YQAAAAA="

#define NOARGS "{\"type\": \"object\", \"properties\": {}}"

/* clang-format off */
static const struct {
	const char *name, *description, *schema;
} tools[] = {
	{ "test_simple_text", "returns simple text", NOARGS },
	{ "test_image_content", "returns an image", NOARGS },
	{ "test_audio_content", "returns audio", NOARGS },
	{ "test_embedded_resource", "returns an embedded resource", NOARGS },
	{ "test_multiple_content_types", "returns text, image and resource", NOARGS },
	{ "test_tool_with_logging", "sends log messages while it runs", NOARGS },
	{ "test_error_handling", "always fails", NOARGS },
	{ "test_tool_with_progress", "reports progress", NOARGS },
	{ "test_sampling", "asks the client's model",
	  "{\"type\": \"object\", \"properties\": {\"prompt\": {\"type\": \"string\"}}, \"required\": [\"prompt\"]}" },
	{ "test_elicitation", "asks the user",
	  "{\"type\": \"object\", \"properties\": {\"message\": {\"type\": \"string\"}}, \"required\": [\"message\"]}" },
	{ "test_elicitation_sep1034_defaults", "asks the user, with defaults", NOARGS },
	{ "test_elicitation_sep1330_enums", "asks the user, with enums", NOARGS },
	{ "test_custom_headers", "mirrors its region argument into the Mcp-Param-Region header",
	  "{\"type\": \"object\", \"properties\": {\"region\": {\"type\": \"string\","
	  " \"x-mcp-header\": \"Region\"}}, \"required\": [\"region\"]}" },
	{ "test_missing_capability", "needs the client's sampling capability", NOARGS },
	{ "test_logging_tool", "logs only when the request asks for a log level", NOARGS },
	{ "test_streaming_elicitation", "answers with a plain result", NOARGS },
	{ "json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features",
	  "{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\", \"type\": \"object\","
	  " \"$defs\": {\"address\": {\"$anchor\": \"addressDef\", \"type\": \"object\", \"properties\":"
	  " {\"street\": {\"type\": \"string\"}, \"city\": {\"type\": \"string\"}}}},"
	  " \"properties\": {\"name\": {\"type\": \"string\"}, \"address\": {\"$ref\": \"#/$defs/address\"},"
	  " \"contactMethod\": {\"type\": \"string\", \"enum\": [\"phone\", \"email\"]},"
	  " \"phone\": {\"type\": \"string\"}, \"email\": {\"type\": \"string\"}},"
	  " \"allOf\": [{\"anyOf\": [{\"required\": [\"phone\"]}, {\"required\": [\"email\"]}]}],"
	  " \"if\": {\"properties\": {\"contactMethod\": {\"const\": \"phone\"}}, \"required\": [\"contactMethod\"]},"
	  " \"then\": {\"required\": [\"phone\"]}, \"else\": {\"required\": [\"email\"]},"
	  " \"additionalProperties\": false}" },
};
/* clang-format on */

static json_t *ok(json_t *id, json_t *res)
{
	return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result", res);
}

static json_t *text(const char *t)
{
	return json_pack("{s:s,s:s}", "type", "text", "text", t);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void notify(McpFixtureContext *ctx, const char *method, json_t *params)
{
	json_t *n =
		json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method", method, "params", params);
	if (n && ctx->notify)
		ctx->notify(n, ctx->userdata);
	json_decref(n);
}

static json_t *ask_text(McpFixtureContext *ctx, const char *method, json_t *params,
			const char *prefix)
{
	json_t *resp = ctx->ask ? ctx->ask(method, params, ctx->userdata) : NULL;
	json_decref(params);
	if (!resp)
		return json_pack("{s:[o],s:b}", "content", text("the client did not answer"),
				 "isError", 1);
	json_t *res = json_object_get(resp, "result");
	char *dump = json_dumps(res ? res : json_object_get(resp, "error"), JSON_COMPACT);
	char *t = NULL;
	if (asprintf(&t, "%s%s", prefix, dump ? dump : "null") < 0)
		t = NULL;
	json_t *j = json_pack("{s:[o],s:b}", "content", text(t ? t : prefix), "isError", !res);
	free(t);
	free(dump);
	json_decref(resp);
	return j;
}

static json_t *call_tool(McpFixtureContext *ctx, const char *name, json_t *args, json_t *meta)
{
	if (!strcmp(name, "test_simple_text"))
		return json_pack("{s:[o]}", "content",
				 text("This is a simple text response for testing."));
	if (!strcmp(name, "test_image_content"))
		return json_pack("{s:[{s:s,s:s,s:s}]}", "content", "type", "image", "data", PNG,
				 "mimeType", "image/png");
	if (!strcmp(name, "test_audio_content"))
		return json_pack("{s:[{s:s,s:s,s:s}]}", "content", "type", "audio", "data", WAV,
				 "mimeType", "audio/wav");
	if (!strcmp(name, "test_embedded_resource"))
		return json_pack("{s:[{s:s,s:{s:s,s:s,s:s}}]}", "content", "type", "resource",
				 "resource", "uri", "test://embedded-resource", "mimeType",
				 "text/plain", "text", "This is an embedded resource content.");
	if (!strcmp(name, "test_multiple_content_types"))
		return json_pack("{s:[o,{s:s,s:s,s:s},{s:s,s:{s:s,s:s,s:s}}]}", "content",
				 text("Multiple content types test:"), "type", "image", "data", PNG,
				 "mimeType", "image/png", "type", "resource", "resource", "uri",
				 "test://mixed-content-resource", "mimeType", "application/json",
				 "text", "{\"test\":\"data\",\"value\":123}");
	if (!strcmp(name, "test_tool_with_logging")) {
		static const char *const msgs[] = { "Tool execution started",
						    "Tool processing data",
						    "Tool execution completed" };
		for (int i = 0; i < 3; i++) {
			if (i)
				sleep_ms(50);
			notify(ctx, "notifications/message",
			       json_pack("{s:s,s:s,s:s}", "level", "info", "logger", "test", "data",
					 msgs[i]));
		}
		return json_pack("{s:[o]}", "content", text("Tool with logging executed"));
	}
	if (!strcmp(name, "test_error_handling"))
		return json_pack("{s:b,s:[o]}", "isError", 1, "content",
				 text("This tool intentionally returns an error for testing"));
	if (!strcmp(name, "test_tool_with_progress")) {
		json_t *token = json_object_get(meta, "progressToken");
		for (int p = 0; p <= 100; p += 50) {
			if (p)
				sleep_ms(50);
			if (token)
				notify(ctx, "notifications/progress",
				       json_pack("{s:O,s:i,s:i}", "progressToken", token,
						 "progress", p, "total", 100));
		}
		return json_pack("{s:[o]}", "content", text("Tool with progress executed"));
	}
	if (!strcmp(name, "test_sampling")) {
		const char *prompt = json_string_value(json_object_get(args, "prompt"));
		return ask_text(ctx, "sampling/createMessage",
				json_pack("{s:[{s:s,s:{s:s,s:s}}],s:i}", "messages", "role", "user",
					  "content", "type", "text", "text", prompt ? prompt : "",
					  "maxTokens", 100),
				"LLM response: ");
	}
	if (!strcmp(name, "test_elicitation")) {
		const char *m = json_string_value(json_object_get(args, "message"));
		return ask_text(ctx, "elicitation/create",
				json_pack("{s:s,s:{s:s,s:{s:{s:s,s:s},s:{s:s,s:s}},s:[s,s]}}",
					  "message", m ? m : "", "requestedSchema", "type",
					  "object", "properties", "username", "type", "string",
					  "description", "User's response", "email", "type",
					  "string", "description", "User's email address",
					  "required", "username", "email"),
				"User response: ");
	}
	if (!strcmp(name, "test_elicitation_sep1034_defaults"))
		return ask_text(ctx, "elicitation/create",
				json_pack("{s:s,s:{s:s,s:{s:{s:s,s:s},s:{s:s,s:i},s:{s:s,s:f},"
					  "s:{s:s,s:[s,s,s],s:s},s:{s:s,s:b}}}}",
					  "message", "Please review your information",
					  "requestedSchema", "type", "object", "properties", "name",
					  "type", "string", "default", "John Doe", "age", "type",
					  "integer", "default", 30, "score", "type", "number",
					  "default", 95.5, "status", "type", "string", "enum",
					  "active", "inactive", "pending", "default", "active",
					  "verified", "type", "boolean", "default", 1),
				"Elicitation completed: ");
	if (!strcmp(name, "test_elicitation_sep1330_enums"))
		return ask_text(
			ctx, "elicitation/create",
			json_pack("{s:s,s:{s:s,s:{"
				  "s:{s:s,s:[s,s,s]},"
				  "s:{s:s,s:[{s:s,s:s},{s:s,s:s},{s:s,s:s}]},"
				  "s:{s:s,s:[s,s,s],s:[s,s,s]},"
				  "s:{s:s,s:{s:s,s:[s,s,s]}},"
				  "s:{s:s,s:{s:[{s:s,s:s},{s:s,s:s},{s:s,s:s}]}}}}}",
				  "message", "Choose", "requestedSchema", "type", "object",
				  "properties", "untitledSingle", "type", "string", "enum",
				  "option1", "option2", "option3", "titledSingle", "type", "string",
				  "oneOf", "const", "value1", "title", "First Option", "const",
				  "value2", "title", "Second Option", "const", "value3", "title",
				  "Third Option", "legacyEnum", "type", "string", "enum", "opt1",
				  "opt2", "opt3", "enumNames", "Option One", "Option Two",
				  "Option Three", "untitledMulti", "type", "array", "items", "type",
				  "string", "enum", "option1", "option2", "option3", "titledMulti",
				  "type", "array", "items", "anyOf", "const", "value1", "title",
				  "First Choice", "const", "value2", "title", "Second Choice",
				  "const", "value3", "title", "Third Choice"),
			"Elicitation completed: ");
	if (!strcmp(name, "json_schema_2020_12_tool") ||
	    !strcmp(name, "test_streaming_elicitation") || !strcmp(name, "test_custom_headers"))
		return json_pack("{s:[o]}", "content", text("ok"));
	if (!strcmp(name, "test_logging_tool")) {
		/* The 2026-07-28 era logs only for a request that set a level. */
		if (json_object_get(meta, "io.modelcontextprotocol/logLevel"))
			notify(ctx, "notifications/message",
			       json_pack("{s:s,s:s,s:s}", "level", "info", "logger", "test", "data",
					 "test_logging_tool ran"));
		return json_pack("{s:[o]}", "content", text("logged"));
	}
	return NULL;
}

static json_t *read_resource(const char *uri)
{
	if (!strcmp(uri, "test://static-text"))
		return json_pack("{s:[{s:s,s:s,s:s}]}", "contents", "uri", uri, "mimeType",
				 "text/plain", "text",
				 "This is the content of the static text resource.");
	if (!strcmp(uri, "test://static-binary"))
		return json_pack("{s:[{s:s,s:s,s:s}]}", "contents", "uri", uri, "mimeType",
				 "image/png", "blob", PNG);
	if (!strcmp(uri, "test://watched-resource"))
		return json_pack("{s:[{s:s,s:s,s:s}]}", "contents", "uri", uri, "mimeType",
				 "text/plain", "text", "watched");
	const char *pre = "test://template/", *suf = "/data";
	size_t lp = strlen(pre), ls = strlen(suf), n = strlen(uri);
	if (n > lp + ls && !strncmp(uri, pre, lp) && !strcmp(uri + n - ls, suf) && n < 200) {
		char id[200], t[400];
		snprintf(id, sizeof(id), "%.*s", (int)(n - lp - ls), uri + lp);
		if (strchr(id, '/') || strchr(id, '"') || strchr(id, '\\'))
			return NULL;
		snprintf(t, sizeof(t),
			 "{\"id\":\"%s\",\"templateTest\":true,\"data\":\"Data for ID: %s\"}", id,
			 id);
		return json_pack("{s:[{s:s,s:s,s:s}]}", "contents", "uri", uri, "mimeType",
				 "application/json", "text", t);
	}
	return NULL;
}

static json_t *get_prompt(const char *name, json_t *args)
{
	if (!strcmp(name, "test_simple_prompt"))
		return json_pack("{s:[{s:s,s:o}]}", "messages", "role", "user", "content",
				 text("This is a simple prompt for testing."));
	if (!strcmp(name, "test_prompt_with_arguments")) {
		const char *a1 = json_string_value(json_object_get(args, "arg1"));
		const char *a2 = json_string_value(json_object_get(args, "arg2"));
		char t[512];
		snprintf(t, sizeof(t), "Prompt with arguments: arg1='%.200s', arg2='%.200s'",
			 a1 ? a1 : "", a2 ? a2 : "");
		return json_pack("{s:[{s:s,s:o}]}", "messages", "role", "user", "content", text(t));
	}
	if (!strcmp(name, "test_prompt_with_embedded_resource")) {
		const char *u = json_string_value(json_object_get(args, "resourceUri"));
		return json_pack("{s:[{s:s,s:{s:s,s:{s:s,s:s,s:s}}},{s:s,s:o}]}", "messages",
				 "role", "user", "content", "type", "resource", "resource", "uri",
				 u ? u : "test://example-resource", "mimeType", "text/plain",
				 "text", "Embedded resource content for testing.", "role", "user",
				 "content", text("Please process the embedded resource above."));
	}
	if (!strcmp(name, "test_prompt_with_image"))
		return json_pack("{s:[{s:s,s:{s:s,s:s,s:s}},{s:s,s:o}]}", "messages", "role",
				 "user", "content", "type", "image", "data", PNG, "mimeType",
				 "image/png", "role", "user", "content",
				 text("Please analyze the image above."));
	return NULL;
}

static json_t *prompts_list(void)
{
	return json_pack("{s:[{s:s,s:s},{s:s,s:s,s:[{s:s,s:s,s:b},{s:s,s:s,s:b}]},"
			 "{s:s,s:s,s:[{s:s,s:s,s:b}]},{s:s,s:s}]}",
			 "prompts", "name", "test_simple_prompt", "description", "a simple prompt",
			 "name", "test_prompt_with_arguments", "description",
			 "a prompt with arguments", "arguments", "name", "arg1", "description",
			 "First test argument", "required", 1, "name", "arg2", "description",
			 "Second test argument", "required", 1, "name",
			 "test_prompt_with_embedded_resource", "description",
			 "a prompt with an embedded resource", "arguments", "name", "resourceUri",
			 "description", "URI of the resource to embed", "required", 1, "name",
			 "test_prompt_with_image", "description", "a prompt with an image");
}

static json_t *error(json_t *id, int code, const char *msg)
{
	return mcp_error(id, code, msg, NULL);
}

static bool answer(McpFixtureContext *ctx, json_t *msg, json_t **ret_reply);

/* The messages the fixtures answer, decided before any is run. */
static bool claims(json_t *msg)
{
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *params = json_object_get(msg, "params");
	if (!method)
		return false;
	if (mcp_fixtures_tasks_claims(msg))
		return true;
	if (!strcmp(method, "tools/call")) {
		const char *name = json_string_value(json_object_get(params, "name"));
		return name &&
		       (!strncmp(name, "test_", 5) || !strcmp(name, "json_schema_2020_12_tool"));
	}
	if (!strcmp(method, "resources/read")) {
		const char *uri = json_string_value(json_object_get(params, "uri"));
		return uri && !strncmp(uri, "test://", 7);
	}
	return !strcmp(method, "resources/subscribe") || !strcmp(method, "resources/unsubscribe") ||
	       !strcmp(method, "prompts/list") || !strcmp(method, "prompts/get") ||
	       !strcmp(method, "completion/complete");
}

bool mcp_fixtures_handle(McpFixtureContext *ctx, json_t *msg, json_t **ret_reply)
{
	*ret_reply = NULL;
	if (!claims(msg))
		return false;
	bool modern = mcp_is_modern(msg);
	if (modern && json_object_get(msg, "id") && (*ret_reply = mcp_modern_check(msg)))
		return true;
	answer(ctx, msg, ret_reply);
	if (modern && *ret_reply)
		mcp_modern_result(*ret_reply, json_string_value(json_object_get(msg, "method")));
	return true;
}

static bool answer(McpFixtureContext *ctx, json_t *msg, json_t **ret_reply)
{
	json_t *id = json_object_get(msg, "id");
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *params = json_object_get(msg, "params");
	json_t *res = NULL;

	*ret_reply = NULL;
	if (!method)
		return false;
	if (mcp_fixtures_tasks_answer(msg, ret_reply))
		return true;
	if (!strcmp(method, "tools/call")) {
		const char *name = json_string_value(json_object_get(params, "name"));
		json_t *caps = json_object_get(
			json_object_get(json_object_get(params, "_meta"), MCP_META_CAPS),
			"sampling");
		if (name && !strcmp(name, "test_missing_capability") && !caps) {
			*ret_reply = mcp_error(
				id, MCP_MISSING_CAPABILITY,
				"Missing required client capability: sampling",
				json_pack("{s:{s:{}}}", "requiredCapabilities", "sampling"));
			return true;
		}
		if (name && !strcmp(name, "test_missing_capability")) {
			*ret_reply =
				ok(id, json_pack("{s:[o]}", "content", text("sampling declared")));
			return true;
		}
		if (!name ||
		    (strncmp(name, "test_", 5) && strcmp(name, "json_schema_2020_12_tool")))
			return false;
		res = call_tool(ctx, name, json_object_get(params, "arguments"),
				json_object_get(params, "_meta"));
		*ret_reply = res ? ok(id, res) : error(id, MCP_INVALID_PARAMS, "Unknown tool");
		return true;
	}
	if (!strcmp(method, "resources/read")) {
		const char *uri = json_string_value(json_object_get(params, "uri"));
		if (!uri || strncmp(uri, "test://", 7))
			return false;
		res = read_resource(uri);
		*ret_reply = res ? ok(id, res)
				 : mcp_error(id, MCP_RESOURCE_NOT_FOUND, "Resource not found",
					     json_pack("{s:s}", "uri", uri));
		return true;
	}
	if (!strcmp(method, "resources/subscribe") || !strcmp(method, "resources/unsubscribe")) {
		*ret_reply = ok(id, json_object());
		return true;
	}
	if (!strcmp(method, "prompts/list")) {
		json_t *list = prompts_list();
		if (mcp_is_modern(msg))
			mcp_fixtures_tasks_prompts(json_object_get(list, "prompts"));
		*ret_reply = ok(id, list);
		return true;
	}
	if (!strcmp(method, "prompts/get")) {
		const char *name = json_string_value(json_object_get(params, "name"));
		res = name ? get_prompt(name, json_object_get(params, "arguments")) : NULL;
		*ret_reply = res ? ok(id, res) : error(id, MCP_INVALID_PARAMS, "Unknown prompt");
		return true;
	}
	if (!strcmp(method, "completion/complete")) {
		*ret_reply = ok(id, json_pack("{s:{s:[],s:i,s:b}}", "completion", "values", "total",
					      0, "hasMore", 0));
		return true;
	}
	return false;
}

void mcp_fixtures_merge(const char *method, json_t *result)
{
	if (!json_is_object(result))
		return;
	if (!strcmp(method, "initialize") || !strcmp(method, "server/discover")) {
		json_t *caps = json_object_get(result, "capabilities");
		if (!json_is_object(caps))
			return;
		json_object_set_new(caps, "prompts", json_pack("{s:b}", "listChanged", 0));
		json_object_set_new(caps, "completions", json_object());
		json_object_set_new(caps, "logging", json_object());
		/* The 2026-07-28 era has no resources/subscribe. */
		if (!strcmp(method, "initialize"))
			json_object_set_new(
				caps, "resources",
				json_pack("{s:b,s:b}", "subscribe", 1, "listChanged", 0));
	} else if (!strcmp(method, "tools/list")) {
		json_t *list = json_object_get(result, "tools");
		for (size_t i = 0; json_is_array(list) && i < ELEMENTSOF(tools); i++)
			json_array_append_new(
				list, json_pack("{s:s,s:s,s:o}", "name", tools[i].name,
						"description", tools[i].description, "inputSchema",
						json_loads(tools[i].schema, 0, NULL)));
		/* The 2026-07-28 era's answers carry a resultType: its tools join there. */
		if (json_object_get(result, "resultType"))
			mcp_fixtures_tasks_list(list);
	} else if (!strcmp(method, "resources/list")) {
		json_t *list = json_object_get(result, "resources");
		if (!json_is_array(list))
			return;
		json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s}", "uri",
						      "test://static-text", "name", "static-text",
						      "description", "a static text resource",
						      "mimeType", "text/plain"));
		json_array_append_new(
			list, json_pack("{s:s,s:s,s:s,s:s}", "uri", "test://static-binary", "name",
					"static-binary", "description", "a static binary resource",
					"mimeType", "image/png"));
		json_array_append_new(
			list, json_pack("{s:s,s:s,s:s,s:s}", "uri", "test://watched-resource",
					"name", "watched-resource", "description",
					"a resource to subscribe to", "mimeType", "text/plain"));
	} else if (!strcmp(method, "resources/templates/list")) {
		json_t *list = json_object_get(result, "resourceTemplates");
		if (json_is_array(list))
			json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s}", "uriTemplate",
							      "test://template/{id}/data", "name",
							      "template", "description",
							      "a resource template", "mimeType",
							      "application/json"));
	}
}
