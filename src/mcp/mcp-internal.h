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

/* ---- resource subscriptions (mcp-subscribe.c) ---- */

#define MCP_ENV_URI "branchbox://environments/"
#define MCP_CONFIG_URI "branchbox://config"
#define MCP_META_SUBSCRIPTION "io.modelcontextprotocol/subscriptionId"

typedef struct McpSubs McpSubs;

int mcp_subs_new(Core *core, McpSubs **ret);
void mcp_subs_free(McpSubs *subs);
/* End every stream (the daemon is stopping). */
void mcp_subs_shutdown(McpSubs *subs);
/* resources/subscribe or resources/unsubscribe in call's session: the reply. */
json_t *mcp_subs_request(McpSubs *subs, const McpCall *call, json_t *id, const char *method,
			 json_t *params);
void mcp_subs_session_closed(McpSubs *subs, const char *session);
/* The session's event stream (a GET), or NULL when out of memory or room. */
McpStream *mcp_subs_session_stream(McpSubs *subs, const Principal *p, const char *session);
/* subscriptions/listen: NULL with *ret the stream (its first event the acknowledgement), or
 * the error reply. */
json_t *mcp_subs_listen(McpSubs *subs, const Principal *p, json_t *id, json_t *params,
			McpStream **ret);
