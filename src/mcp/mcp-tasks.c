/* SPDX-License-Identifier: MIT */
/*
 * The tasks extension (io.modelcontextprotocol/tasks, 2026-07-28, SEP-2663): a request the
 * server chooses to answer later gets a CreateTaskResult, and its work runs in a thread of its
 * own; tasks/get reads the task (its result or error inlined once it ends, its outstanding
 * inputRequests while it waits for the client), tasks/update delivers the client's answers,
 * tasks/cancel asks the work to stop.
 *
 * A task belongs to the principal that created it (owner): any other gets "not found", the
 * same answer as for an id that never existed. One owner holds at most MCP_TASKS_PER_OWNER
 * tasks (finished ones give way to new ones, oldest first), the table MCP_TASKS_MAX; a
 * finished task expires MCP_TASK_RETAIN_MS after it ends. Nothing is persisted: a restart
 * forgets every task.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "mcp-internal.h"

#define POLL_INTERVAL_MS 500

typedef enum TaskStatus {
	TASK_WORKING,
	TASK_INPUT_REQUIRED,
	TASK_COMPLETED,
	TASK_FAILED,
	TASK_CANCELLED,
} TaskStatus;

static const char *const status_names[] = {
	[TASK_WORKING] = "working",	[TASK_INPUT_REQUIRED] = "input_required",
	[TASK_COMPLETED] = "completed", [TASK_FAILED] = "failed",
	[TASK_CANCELLED] = "cancelled",
};

struct McpTask {
	McpTasks *tasks;
	char id[33];
	char *owner;
	TaskStatus status;
	int64_t created_ms, updated_ms, ttl_ms;
	json_t *result, *error;
	json_t *pending;   /* outstanding input requests: key -> request */
	json_t *answers;   /* the answers to the current ask */
	json_t *used_keys; /* every key this task ever asked with */
	bool cancel;
	bool thread_done;
	McpTaskSpec spec;
};

struct McpTasks {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* a task changed: answers, cancellation, a thread ended */
	McpTask *tasks[MCP_TASKS_MAX];
	unsigned threads;
	bool closing;
};

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static json_t *iso_time(int64_t ms)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;
	char buf[40];
	gmtime_r(&sec, &tm);
	size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(ms % 1000));
	return json_string(buf);
}

McpTasks *mcp_tasks_new(void)
{
	McpTasks *ts = calloc(1, sizeof(*ts));
	if (!ts)
		return NULL;
	pthread_mutex_init(&ts->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ts->cond, &ca);
	pthread_condattr_destroy(&ca);
	return ts;
}

static void task_free(McpTask *t)
{
	if (!t)
		return;
	if (t->spec.free_userdata)
		t->spec.free_userdata(t->spec.userdata);
	json_decref(t->result);
	json_decref(t->error);
	json_decref(t->pending);
	json_decref(t->answers);
	json_decref(t->used_keys);
	free(t->owner);
	free(t);
}

void mcp_tasks_free(McpTasks *ts)
{
	if (!ts)
		return;
	pthread_mutex_lock(&ts->lock);
	ts->closing = true;
	for (size_t i = 0; i < MCP_TASKS_MAX; i++) {
		McpTask *t = ts->tasks[i];
		if (t && !t->thread_done) {
			t->cancel = true;
			if (t->spec.cancel)
				t->spec.cancel(t->spec.userdata);
		}
	}
	pthread_cond_broadcast(&ts->cond);
	while (ts->threads > 0)
		pthread_cond_wait(&ts->cond, &ts->lock);
	pthread_mutex_unlock(&ts->lock);
	for (size_t i = 0; i < MCP_TASKS_MAX; i++)
		task_free(ts->tasks[i]);
	pthread_mutex_destroy(&ts->lock);
	pthread_cond_destroy(&ts->cond);
	free(ts);
}

bool mcp_tasks_declared(json_t *params)
{
	json_t *caps = json_object_get(json_object_get(params, "_meta"), MCP_META_CAPS);
	return json_is_object(
		json_object_get(json_object_get(caps, "extensions"), MCP_TASKS_EXTENSION));
}

json_t *mcp_tasks_missing(json_t *id)
{
	return mcp_error(id, MCP_MISSING_CAPABILITY,
			 "Missing required client capability: the " MCP_TASKS_EXTENSION
			 " extension (declare it in _meta." MCP_META_CAPS ".extensions)",
			 json_pack("{s:{s:{s:{}}}}", "requiredCapabilities", "extensions",
				   MCP_TASKS_EXTENSION));
}

/* ---- the table (ts->lock held) ---- */

static bool expired(const McpTask *t, int64_t now)
{
	return t->thread_done && now > t->created_ms + t->ttl_ms;
}

static void purge(McpTasks *ts)
{
	int64_t now = now_ms();
	for (size_t i = 0; i < MCP_TASKS_MAX; i++)
		if (ts->tasks[i] && expired(ts->tasks[i], now)) {
			task_free(ts->tasks[i]);
			ts->tasks[i] = NULL;
		}
}

/* A free slot for owner's new task, making room by dropping its oldest finished task. -EUSERS
 * when owner holds its limit of running tasks, -ENOSPC when the table is full of them. */
static int slot_for(McpTasks *ts, const char *owner, size_t *ret)
{
	size_t held = 0, free_slot = MCP_TASKS_MAX, oldest = MCP_TASKS_MAX,
	       oldest_any = MCP_TASKS_MAX;
	purge(ts);
	for (size_t i = 0; i < MCP_TASKS_MAX; i++) {
		McpTask *t = ts->tasks[i];
		if (!t) {
			if (free_slot == MCP_TASKS_MAX)
				free_slot = i;
			continue;
		}
		if (t->thread_done && (oldest_any == MCP_TASKS_MAX ||
				       t->updated_ms < ts->tasks[oldest_any]->updated_ms))
			oldest_any = i;
		if (strcmp(t->owner, owner))
			continue;
		held++;
		if (t->thread_done &&
		    (oldest == MCP_TASKS_MAX || t->updated_ms < ts->tasks[oldest]->updated_ms))
			oldest = i;
	}
	size_t drop = MCP_TASKS_MAX;
	if (held >= MCP_TASKS_PER_OWNER) {
		if (oldest == MCP_TASKS_MAX)
			return -EUSERS;
		drop = oldest;
	} else if (free_slot == MCP_TASKS_MAX) {
		if (oldest_any == MCP_TASKS_MAX)
			return -ENOSPC;
		drop = oldest_any;
	}
	if (drop != MCP_TASKS_MAX) {
		task_free(ts->tasks[drop]);
		ts->tasks[drop] = NULL;
		free_slot = drop;
	}
	*ret = free_slot;
	return 0;
}

static McpTask *find(McpTasks *ts, const char *owner, const char *id)
{
	int64_t now = now_ms();
	for (size_t i = 0; ts && id && i < MCP_TASKS_MAX; i++) {
		McpTask *t = ts->tasks[i];
		if (t && !strcmp(t->id, id) && !strcmp(t->owner, owner) && !expired(t, now))
			return t;
	}
	return NULL;
}

/* The task as tasks/get shows it (CreateTaskResult's fields, then the status's payload). */
static json_t *describe(const McpTask *t, bool detailed)
{
	json_t *j = json_pack("{s:s,s:s,s:o,s:o,s:I,s:i}", "taskId", t->id, "status",
			      status_names[t->status], "createdAt", iso_time(t->created_ms),
			      "lastUpdatedAt", iso_time(t->updated_ms), "ttlMs",
			      (json_int_t)t->ttl_ms, "pollIntervalMs", POLL_INTERVAL_MS);
	if (!j || !detailed)
		return j;
	if (t->status == TASK_INPUT_REQUIRED && t->pending)
		json_object_set_new(j, "inputRequests", json_deep_copy(t->pending));
	if (t->status == TASK_COMPLETED && t->result)
		json_object_set_new(j, "result", json_deep_copy(t->result));
	if (t->status == TASK_FAILED && t->error) {
		json_object_set_new(j, "error", json_deep_copy(t->error));
		json_t *m = json_object_get(t->error, "message");
		if (json_is_string(m))
			json_object_set(j, "statusMessage", m);
	}
	return j;
}

/* ---- a task's thread ---- */

static void *task_thread(void *arg)
{
	McpTask *t = arg;
	McpTasks *ts = t->tasks;
	json_t *error = NULL;
	json_t *res = t->spec.run(t, t->spec.userdata, &error);
	pthread_mutex_lock(&ts->lock);
	int64_t now = now_ms();
	json_decref(t->pending);
	t->pending = NULL;
	if (res) {
		t->status = TASK_COMPLETED;
		t->result = res;
		json_decref(error);
	} else if (error) {
		t->status = TASK_FAILED;
		t->error = error;
	} else if (t->cancel)
		t->status = TASK_CANCELLED;
	else {
		t->status = TASK_FAILED;
		t->error = json_pack("{s:i,s:s}", "code", MCP_INTERNAL_ERROR, "message",
				     "the task ended without a result");
	}
	t->updated_ms = now;
	/* Readable for MCP_TASK_RETAIN_MS from now: ttlMs counts from creation. */
	if (now - t->created_ms + MCP_TASK_RETAIN_MS > t->ttl_ms)
		t->ttl_ms = now - t->created_ms + MCP_TASK_RETAIN_MS;
	t->thread_done = true;
	ts->threads--;
	pthread_cond_broadcast(&ts->cond);
	pthread_mutex_unlock(&ts->lock);
	return NULL;
}

json_t *mcp_tasks_start(McpTasks *ts, json_t *id, const char *owner, const McpTaskSpec *spec)
{
	unsigned char rnd[16];
	static const char hex[] = "0123456789abcdef";
	McpTask *t = calloc(1, sizeof(*t));
	if (!t || !(t->owner = strdup(owner)) || getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		if (t)
			free(t->owner);
		free(t);
		if (spec->free_userdata)
			spec->free_userdata(spec->userdata);
		return mcp_error(id, MCP_INTERNAL_ERROR, "could not create a task", NULL);
	}
	for (int i = 0; i < 16; i++) {
		t->id[2 * i] = hex[rnd[i] >> 4];
		t->id[2 * i + 1] = hex[rnd[i] & 15];
	}
	t->tasks = ts;
	t->spec = *spec;
	t->status = TASK_WORKING;
	t->created_ms = t->updated_ms = now_ms();
	t->ttl_ms = MCP_TASK_RETAIN_MS;
	t->used_keys = json_object();

	pthread_mutex_lock(&ts->lock);
	size_t slot = 0;
	int r = ts->closing ? -ESHUTDOWN : slot_for(ts, owner, &slot);
	pthread_t th;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (r == 0 && pthread_create(&th, &attr, task_thread, t) != 0)
		r = -EAGAIN;
	pthread_attr_destroy(&attr);
	json_t *created = NULL;
	if (r == 0) {
		/* In the table before the answer goes out: a tasks/get right after resolves. */
		ts->tasks[slot] = t;
		ts->threads++;
		created = describe(t, false);
	}
	pthread_mutex_unlock(&ts->lock);
	if (r < 0) {
		task_free(t);
		char msg[200];
		if (r == -EUSERS)
			snprintf(msg, sizeof(msg),
				 "too many tasks in progress for this principal (%d): wait for "
				 "one to end or cancel one",
				 MCP_TASKS_PER_OWNER);
		else
			snprintf(msg, sizeof(msg), "could not create a task: %s", strerror(-r));
		return mcp_error(id, r == -EUSERS ? MCP_LIMIT_REACHED : MCP_INTERNAL_ERROR, msg,
				 NULL);
	}
	if (created)
		json_object_set_new(created, "resultType", json_string("task"));
	return json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result",
			 created ? created : json_object());
}

/* ---- in a task's thread ---- */

static void deadline_after(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

json_t *mcp_task_ask(McpTask *t, json_t *requests, int timeout_sec)
{
	McpTasks *ts = t->tasks;
	const char *k;
	json_t *v;
	struct timespec deadline;
	deadline_after(&deadline, (long)timeout_sec * 1000);
	pthread_mutex_lock(&ts->lock);
	json_object_foreach(requests, k, v)
	{
		if (json_object_get(t->used_keys, k)) { /* keys are never reused in a task */
			pthread_mutex_unlock(&ts->lock);
			json_decref(requests);
			return NULL;
		}
	}
	json_object_foreach(requests, k, v)
	{
		json_object_set_new(t->used_keys, k, json_true());
	}
	json_decref(t->pending);
	json_decref(t->answers);
	t->pending = requests;
	t->answers = json_object();
	t->status = TASK_INPUT_REQUIRED;
	t->updated_ms = now_ms();
	while (json_object_size(t->pending) > 0 && !t->cancel && !ts->closing)
		if (pthread_cond_timedwait(&ts->cond, &ts->lock, &deadline) == ETIMEDOUT)
			break;
	json_t *answers = NULL;
	if (json_object_size(t->pending) == 0)
		answers = t->answers;
	else
		json_decref(t->answers);
	t->answers = NULL;
	json_decref(t->pending);
	t->pending = NULL;
	t->status = TASK_WORKING;
	t->updated_ms = now_ms();
	pthread_mutex_unlock(&ts->lock);
	return answers;
}

bool mcp_task_cancelled(McpTask *t)
{
	pthread_mutex_lock(&t->tasks->lock);
	bool c = t->cancel || t->tasks->closing;
	pthread_mutex_unlock(&t->tasks->lock);
	return c;
}

int mcp_task_sleep(McpTask *t, long ms)
{
	McpTasks *ts = t->tasks;
	struct timespec deadline;
	deadline_after(&deadline, ms);
	pthread_mutex_lock(&ts->lock);
	while (!t->cancel && !ts->closing)
		if (pthread_cond_timedwait(&ts->cond, &ts->lock, &deadline) == ETIMEDOUT)
			break;
	bool c = t->cancel || ts->closing;
	pthread_mutex_unlock(&ts->lock);
	return c ? -ECANCELED : 0;
}

/* ---- tasks/get, tasks/update, tasks/cancel ---- */

bool mcp_tasks_knows(McpTasks *ts, const char *owner, const char *task_id)
{
	if (!ts || !task_id)
		return false;
	pthread_mutex_lock(&ts->lock);
	bool known = find(ts, owner, task_id) != NULL;
	pthread_mutex_unlock(&ts->lock);
	return known;
}

static json_t *ack(json_t *id)
{
	return json_pack("{s:s,s:O,s:{s:s}}", "jsonrpc", "2.0", "id", id, "result", "resultType",
			 "complete");
}

bool mcp_tasks_handle(McpTasks *ts, const char *owner, json_t *msg, bool unknown_is_error,
		      json_t **ret_reply)
{
	json_t *id = json_object_get(msg, "id");
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *params = json_object_get(msg, "params");
	const char *task_id = json_string_value(json_object_get(params, "taskId"));
	*ret_reply = NULL;
	if (!method || !id ||
	    (strcmp(method, "tasks/get") && strcmp(method, "tasks/update") &&
	     strcmp(method, "tasks/cancel")))
		return false;
	if (!mcp_tasks_declared(params)) {
		*ret_reply = mcp_tasks_missing(id);
		return true;
	}
	if (!task_id) {
		*ret_reply = mcp_error(id, MCP_INVALID_PARAMS,
				       "Invalid params: 'taskId' must be a string", NULL);
		return true;
	}
	json_t *responses = json_object_get(params, "inputResponses");
	bool update = !strcmp(method, "tasks/update");
	if (update && !json_is_object(responses)) {
		*ret_reply = mcp_error(id, MCP_INVALID_PARAMS,
				       "Invalid params: 'inputResponses' must be an object", NULL);
		return true;
	}
	if (ts)
		pthread_mutex_lock(&ts->lock);
	McpTask *t = find(ts, owner, task_id);
	if (!t) {
		if (ts)
			pthread_mutex_unlock(&ts->lock);
		if (unknown_is_error)
			*ret_reply = mcp_error(id, MCP_INVALID_PARAMS,
					       "Failed to retrieve task: Task not found", NULL);
		return unknown_is_error;
	}
	if (!strcmp(method, "tasks/get")) {
		json_t *d = describe(t, true);
		if (d)
			json_object_set_new(d, "resultType", json_string("complete"));
		*ret_reply = json_pack("{s:s,s:O,s:o}", "jsonrpc", "2.0", "id", id, "result",
				       d ? d : json_object());
	} else if (update) {
		/* Answers to outstanding requests are taken; any other key is ignored. */
		const char *k;
		json_t *v;
		json_object_foreach(responses, k, v)
		{
			if (!json_is_object(v) || !json_object_get(t->pending, k))
				continue;
			json_object_set(t->answers, k, v);
			json_object_del(t->pending, k);
		}
		if (t->pending && json_object_size(t->pending) == 0)
			t->status = TASK_WORKING;
		t->updated_ms = now_ms();
		pthread_cond_broadcast(&ts->cond);
		*ret_reply = ack(id);
	} else {
		/* Idempotent: a finished task acknowledges and stays as it ended. */
		if (!t->thread_done && !t->cancel) {
			t->cancel = true;
			if (t->spec.cancel)
				t->spec.cancel(t->spec.userdata);
			pthread_cond_broadcast(&ts->cond);
		}
		*ret_reply = ack(id);
	}
	pthread_mutex_unlock(&ts->lock);
	return true;
}

/* ---- the real tools ---- */

/* A tool call running as a task: what it needs once the request that started it is gone. */
typedef struct ToolTask {
	McpServer *server;
	const McpTool *tool;
	json_t *args;
	Principal principal; /* a copy: the request's is freed when it is answered */
	char *request_id, *request_digest;
	int cancel_fd; /* an eventfd the operation watches; written by tasks/cancel */
} ToolTask;

static void tool_task_free(void *userdata)
{
	ToolTask *tt = userdata;
	json_decref(tt->args);
	principal_done(&tt->principal);
	free(tt->request_id);
	free(tt->request_digest);
	if (tt->cancel_fd > 0)
		close(tt->cancel_fd);
	free(tt);
}

static json_t *tool_task_run(McpTask *t, void *userdata, json_t **ret_error)
{
	ToolTask *tt = userdata;
	McpCall call = { .principal = &tt->principal,
			 .request_id = tt->request_id,
			 .request_digest = tt->request_digest,
			 .cancel_fd = tt->cancel_fd > 0 ? tt->cancel_fd : 0,
			 .principal_kept = true };
	json_t *res = mcp_tool_run(tt->server, &call, tt->tool, tt->args, NULL, NULL);
	/* Stopped by tasks/cancel: no result, so the task ends "cancelled". */
	if (res && json_is_true(json_object_get(res, "isError")) && mcp_task_cancelled(t)) {
		json_decref(res);
		return NULL;
	}
	return res;
}

/*
 * tasks/cancel of a task running a real operation: the operation watches the eventfd (a
 * command's processes are killed, a create stops at its next step and is removed). It runs
 * with the task table's lock held, so it only signals. Work it stopped ends the task
 * "cancelled"; work that finished first ends it completed, as the extension allows.
 */
static void tool_task_cancel(void *userdata)
{
	ToolTask *tt = userdata;
	uint64_t one = 1;
	if (tt->cancel_fd > 0)
		(void)!write(tt->cancel_fd, &one, sizeof(one));
}

json_t *mcp_tool_task(McpServer *s, McpTasks *ts, const McpCall *call, const McpTool *t, json_t *id,
		      json_t *args, const char *owner)
{
	ToolTask *tt = calloc(1, sizeof(*tt));
	if (!tt || principal_copy(&tt->principal, call->principal) < 0) {
		free(tt);
		return mcp_error(id, MCP_INTERNAL_ERROR, "could not create a task", NULL);
	}
	tt->cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	tt->server = s;
	tt->tool = t;
	tt->args = args ? json_deep_copy(args) : json_object();
	tt->request_id = call->request_id ? strdup(call->request_id) : NULL;
	tt->request_digest = call->request_digest ? strdup(call->request_digest) : NULL;
	McpTaskSpec spec = { .run = tool_task_run,
			     .cancel = tool_task_cancel,
			     .userdata = tt,
			     .free_userdata = tool_task_free };
	return mcp_tasks_start(ts, id, owner, &spec);
}
