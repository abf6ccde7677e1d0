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

/*
 * The tools/call requests in flight (mcp-cancel.c), a list whose head the server keeps.
 * begin: register the call of call->principal (and call->session_id) with JSON-RPC id; returns
 * its cancel fd (an eventfd, borrowed until end) and *ret, or -errno (the call then runs
 * without one). end: unregister it; true when it was cancelled. cancel: msg is a
 * notifications/cancelled of call's principal and session: fire the calls it names; true when
 * one was.
 */
typedef struct McpInflight McpInflight;
int mcp_inflight_begin(McpInflight **list, const McpCall *call, json_t *id, McpInflight **ret);
bool mcp_inflight_end(McpInflight **list, McpInflight *f);
bool mcp_inflight_cancel(McpInflight **list, const McpCall *call, json_t *msg);
