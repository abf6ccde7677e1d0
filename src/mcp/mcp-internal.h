/* SPDX-License-Identifier: MIT */
#pragma once

#include "mcp.h"
#include "ops.h"

typedef struct McpTool {
	const char *name;	   /* the contract name agents call */
	const char *op;		   /* the operations-table row */
	const char *title;	   /* for humans */
	const char *output_schema; /* JSON Schema of structuredContent */
} McpTool;

extern const McpTool mcp_tools[];
extern const size_t mcp_n_tools;

const McpTool *mcp_tool_find(const char *name);
/* Is the tool's row in this build, and does p hold its verb? */
bool mcp_tool_offered(const McpTool *t, const Principal *p);
/* The tools/list entry, or NULL when the row is missing. */
json_t *mcp_tool_describe(const McpTool *t);
