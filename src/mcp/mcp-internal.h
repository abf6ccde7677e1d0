/* SPDX-License-Identifier: MIT */
#pragma once

#include "mcp.h"
#include "mcp-tasks.h"
#include "ops.h"

typedef struct McpTool {
	const char *name;	   /* the contract name agents call */
	const char *op;		   /* the operations-table row */
	const char *title;	   /* for humans */
	const char *output_schema; /* JSON Schema of structuredContent */
	/* Long enough to run as a task when the client declares the tasks extension. */
	bool long_running;
} McpTool;

extern const McpTool mcp_tools[];
extern const size_t mcp_n_tools;

const McpTool *mcp_tool_find(const char *name);
/* Is the tool's row in this build, and does p hold its verb? */
bool mcp_tool_offered(const McpTool *t, const Principal *p);
/* The tools/list entry, or NULL when the row is missing. */
json_t *mcp_tool_describe(const McpTool *t);

/* Run tool t for call with args (not stolen; NULL: none): its CallToolResult (an operation's
 * failure is a tool error, isError). */
json_t *mcp_tool_run(McpServer *s, McpCall *call, const McpTool *t, json_t *args,
		     json_t *progress_token);
/* tools/call of t as a task of ts for owner (mcp-tasks.c): the reply, a CreateTaskResult or an
 * error. The task runs mcp_tool_run() in its own thread with a copy of call's principal. */
json_t *mcp_tool_task(McpServer *s, McpTasks *ts, const McpCall *call, const McpTool *t, json_t *id,
		      json_t *args, const char *owner);
