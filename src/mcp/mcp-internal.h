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

/*
 * Run tool t for call with args (not stolen; NULL: none): its CallToolResult (an operation's
 * failure is a tool error, isError). With id (a request), the call can be cancelled by a
 * notifications/cancelled of its principal: then NULL and call->cancelled. Without (a task),
 * call->cancel_fd, when set, stops it.
 */
json_t *mcp_tool_run(McpServer *s, McpCall *call, const McpTool *t, json_t *args,
		     json_t *progress_token, json_t *id);
/* tools/call of t as a task of ts for owner (mcp-tasks.c): the reply, a CreateTaskResult or an
 * error. The task runs mcp_tool_run() in its own thread with a copy of call's principal. */
json_t *mcp_tool_task(McpServer *s, McpTasks *ts, const McpCall *call, const McpTool *t, json_t *id,
		      json_t *args, const char *owner);

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
/* The error for a stream refused for want of room (MCP_LIMIT_REACHED, naming the bounds). */
json_t *mcp_subs_no_room(json_t *id);
/* subscriptions/listen: NULL with *ret the stream (its first event the acknowledgement), or
 * the error reply. */
json_t *mcp_subs_listen(McpSubs *subs, const Principal *p, json_t *id, json_t *params,
			McpStream **ret);
