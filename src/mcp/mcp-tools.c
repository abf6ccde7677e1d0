/* SPDX-License-Identifier: MIT */
/*
 * The tools: each one a row of the operations table under the name agents know. Its
 * description, inputSchema and annotations come from the row; a tool whose row is not in this
 * build (ops_find() is NULL) is not offered.
 */
#include "mcp-internal.h"

#include <string.h>

#define OBJ(props) "{\"type\": \"object\", \"properties\": {" props "}}"

/* clang-format off */
const McpTool mcp_tools[] = {
	{ "environment_list", "environment.list", "List environments",
	  OBJ("\"environments\": {\"type\": \"array\", \"items\": {\"type\": \"object\"}}") },
	{ "environment_info", "environment.get", "Environment details",
	  OBJ("\"name\": {\"type\": \"string\"}") },
	{ "environment_create", "environment.create", "Create a preview environment",
	  OBJ("\"name\": {\"type\": \"string\"}"), true },
	{ "environment_destroy", "environment.destroy", "Destroy an environment",
	  OBJ("\"name\": {\"type\": \"string\"}, \"destroyed\": {\"type\": \"boolean\"}"), true },
	{ "environment_run", "environment.exec", "Run a command in an environment",
	  OBJ("\"exit_code\": {\"type\": \"integer\"},"
	      " \"stdout\": {\"type\": \"string\", \"description\": \"the last 64 KiB of stdout\"},"
	      " \"stdout_truncated\": {\"type\": \"boolean\"},"
	      " \"stderr\": {\"type\": \"string\", \"description\": \"the last 64 KiB of stderr\"},"
	      " \"stderr_truncated\": {\"type\": \"boolean\"},"
	      " \"output\": {\"type\": \"string\", \"description\": \"both, in the order read\"},"
	      " \"output_sha256\": {\"type\": \"string\"}, \"output_bytes\": {\"type\": \"integer\"},"
	      " \"output_truncated\": {\"type\": \"boolean\"}, \"timed_out\": {\"type\": \"boolean\"},"
	      " \"duration_ms\": {\"type\": \"integer\"}"), true },
	{ "environment_logs", "environment.logs", "Read a process's log",
	  OBJ("\"text\": {\"type\": \"string\"}, \"next_offset\": {\"type\": \"integer\"}") },
	{ "environment_file_read", "environment.file_read", "Read a file of an environment",
	  OBJ("") },
	{ "environment_file_list", "environment.file_list", "List a directory of an environment",
	  OBJ("") },
	{ "environment_file_write", "environment.file_write", "Write a file of an environment",
	  OBJ("") },
	{ "environment_diff", "environment.diff", "The environment's changes against production",
	  OBJ("") },
	{ "config_read", "config.read", "The project config", OBJ("") },
	{ "services_list", "services.list", "An environment's services", OBJ("") },
	{ "budget_status", "environment.budget", "A preview's budget",
	  OBJ("\"name\": {\"type\": \"string\"}, \"budget\": {\"type\": \"object\"}") },
	{ "proposal_submit", "proposal.submit", "Submit a proposal", OBJ("") },
	{ "proposal_status", "proposal.get", "A proposal's status", OBJ("") },
};
/* clang-format on */

const size_t mcp_n_tools = ELEMENTSOF(mcp_tools);

const McpTool *mcp_tool_find(const char *name)
{
	for (size_t i = 0; name && i < mcp_n_tools; i++)
		if (!strcmp(mcp_tools[i].name, name))
			return &mcp_tools[i];
	return NULL;
}

bool mcp_tool_offered(const McpTool *t, const Principal *p)
{
	const Op *op = ops_find(t->op);
	if (!op || ((op->flags & OP_ROOT_ONLY) && p->kind != PRINCIPAL_ROOT))
		return false;
	return (p->verbs & op->verb) == op->verb;
}

json_t *mcp_tool_describe(const McpTool *t)
{
	const Op *op = ops_find(t->op);
	json_t *in = op ? json_loads(op->input_schema, 0, NULL) : NULL;
	json_t *outs = json_loads(t->output_schema, 0, NULL);
	if (!in || !outs) {
		json_decref(in);
		json_decref(outs);
		return NULL;
	}
	json_object_set_new(in, "additionalProperties", json_false());
	json_t *j = json_pack("{s:s,s:s,s:s,s:o,s:o,s:{s:s,s:b,s:b,s:b,s:b}}", "name", t->name,
			      "title", t->title, "description", op->summary, "inputSchema", in,
			      "outputSchema", outs, "annotations", "title", t->title,
			      "readOnlyHint", (op->flags & OP_READ_ONLY) != 0, "destructiveHint",
			      (op->flags & OP_DESTRUCTIVE) != 0, "idempotentHint",
			      (op->flags & OP_READ_ONLY) != 0, "openWorldHint", 0);
	return j;
}
