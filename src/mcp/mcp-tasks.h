/* SPDX-License-Identifier: MIT */
/*
 * The 2026-07-28 era's two ways of answering later: multi round-trip requests (mcp-mrtr.c: a
 * result of resultType "input_required", the client calling again with inputResponses and a
 * sealed requestState) and the tasks extension (mcp-tasks.c: io.modelcontextprotocol/tasks, a
 * tools/call answered with a task that runs in its own thread, then tasks/get, tasks/update,
 * tasks/cancel). The dispatcher uses both for the real tools, the fixtures for theirs.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define MCP_TASKS_EXTENSION "io.modelcontextprotocol/tasks"

/* ---- multi round-trip requests ---- */

/* The longest requestState accepted or issued, encoded. */
#define MCP_STATE_MAX 4096
/* How long an issued requestState stays valid. */
#define MCP_STATE_TTL_SEC 600

/*
 * Seal state (not stolen) for purpose (the tool and who called it): a string the client holds
 * and sends back, its integrity and expiry (ttl_sec from now) checked by mcp_state_open()
 * under a key drawn at random for this process. NULL when it would be longer than
 * MCP_STATE_MAX or on failure.
 */
char *mcp_state_seal(const char *purpose, json_t *state, int ttl_sec);
/* 0 and the state; -EBADMSG when sealed is not one this process issued for purpose (tampered,
 * foreign, malformed), -ETIME when it expired, -E2BIG when longer than MCP_STATE_MAX. */
int mcp_state_open(const char *purpose, const char *sealed, json_t **ret_state);

/*
 * The checks on a request's MRTR fields: inputResponses, when present, an object of objects;
 * requestState, when present, one this process sealed for purpose (*ret_state gets its state,
 * NULL when absent; ret_state may be NULL). NULL, or the JSON-RPC error reply (-32602).
 */
json_t *mcp_mrtr_check(json_t *id, json_t *params, const char *purpose, json_t **ret_state);
/* A result of resultType "input_required": requests (stolen) and state (stolen, may be NULL:
 * no requestState) sealed for purpose. */
json_t *mcp_mrtr_result(json_t *requests, json_t *state, const char *purpose);
/* Does the request's client declare the capability answering an input request of method
 * needs (elicitation/create: elicitation, sampling/createMessage: sampling, roots/list:
 * roots)? */
bool mcp_client_can(json_t *params, const char *method);
/* Drop from requests those the client cannot answer; returns how many stay. */
size_t mcp_mrtr_filter(json_t *params, json_t *requests);
/* The client's answer to input request key (an object), or NULL. */
json_t *mcp_input_response(json_t *params, const char *key);

/* ---- tasks ---- */

typedef struct McpTasks McpTasks;
typedef struct McpTask McpTask;

/* A task's work, in its own thread: the result of the request (a CallToolResult object), or
 * NULL with *ret_error set to a JSON-RPC error object (code, message) for a protocol-level
 * failure, or NULL alone when it stopped because it was cancelled. */
typedef json_t *(*McpTaskRun)(McpTask *t, void *userdata, json_t **ret_error);
/* Called when the task is cancelled, with the task table's lock held: signal the work to stop
 * (must not block nor call into the table). */
typedef void (*McpTaskCancel)(void *userdata);

typedef struct McpTaskSpec {
	McpTaskRun run;
	McpTaskCancel cancel; /* may be NULL: the work checks mcp_task_cancelled() */
	void *userdata;
	void (*free_userdata)(void *userdata);
} McpTaskSpec;

/* How many tasks one principal may hold (running or finished, until they expire). */
#define MCP_TASKS_PER_OWNER 16
/* How many in all. */
#define MCP_TASKS_MAX 256
/* How long a finished task stays readable. */
#define MCP_TASK_RETAIN_MS (3600 * 1000)

McpTasks *mcp_tasks_new(void);
/* Cancels every task and waits for their threads. */
void mcp_tasks_free(McpTasks *ts);

/* Did this request's client declare the tasks extension (params._meta's client
 * capabilities)? */
bool mcp_tasks_declared(json_t *params);
/* The -32021 reply for a request that needs the tasks extension its client did not declare. */
json_t *mcp_tasks_missing(json_t *id);

/*
 * Start a task for owner (who may read it: the principal's identity) running spec in its own
 * thread; the reply to send: a CreateTaskResult (resultType "task"), the task readable by
 * tasks/get before it goes out, or a JSON-RPC error (too many tasks). spec's userdata is
 * freed on failure.
 */
json_t *mcp_tasks_start(McpTasks *ts, json_t *id, const char *owner, const McpTaskSpec *spec);

/*
 * tasks/get, tasks/update, tasks/cancel for owner. false when msg is none of them, or when its
 * task is not one of ts's and unknown_is_error is false (for a caller that asks another table
 * next); otherwise true with *ret_reply. A task another owner created is unknown.
 */
bool mcp_tasks_handle(McpTasks *ts, const char *owner, json_t *msg, bool unknown_is_error,
		      json_t **ret_reply);

/* Is task_id one of ts's tasks of owner? */
bool mcp_tasks_knows(McpTasks *ts, const char *owner, const char *task_id);

/* In a task's thread: ask the client (requests, stolen: key -> input request; each key new for
 * this task) and wait until every one is answered through tasks/update; the answers (key ->
 * response), or NULL when cancelled or after timeout_sec. */
json_t *mcp_task_ask(McpTask *t, json_t *requests, int timeout_sec);
bool mcp_task_cancelled(McpTask *t);
/* Sleep ms, or less when cancelled: 0, or -ECANCELED. */
int mcp_task_sleep(McpTask *t, long ms);

/* ---- the fixtures of both (mcp-fixtures-tasks.c, the --test-fixtures bridge only) ---- */

/* Is msg one of theirs (2026-07-28 era: their tools, prompt, and the tasks methods on their tasks)? */
bool mcp_fixtures_tasks_claims(json_t *msg);
/* Answer msg when it is theirs: true with *ret_reply (NULL for a notification). */
bool mcp_fixtures_tasks_answer(json_t *msg, json_t **ret_reply);
/* Append their tools to a tools/list array, their prompt to a prompts/list array. */
void mcp_fixtures_tasks_list(json_t *tools);
void mcp_fixtures_tasks_prompts(json_t *prompts);
