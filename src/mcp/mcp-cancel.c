/* SPDX-License-Identifier: MIT */
/*
 * The tools/call requests in flight on the daemon's /mcp, so that a notifications/cancelled
 * stops the work and not only its answer. Each call gets an eventfd of its own, handed to its
 * operation (OpCall.cancel_fd); a cancel fires the calls with its requestId of the same
 * principal (kind, token id and name) and, in the legacy era, the same session. A cancel from
 * anyone else matches nothing and does nothing, like one for a request that already ended.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mcp-internal.h"

/* Calls beyond this run without a cancel of their own (their answer is still dropped). */
#define MAX_INFLIGHT 4096

struct McpInflight {
	char owner[192]; /* whose call: see owner_key() */
	char session[40];
	json_t *id; /* the JSON-RPC request id */
	int fd;
	bool fired;
	McpInflight *next;
};

static pthread_mutex_t inflight_lock = PTHREAD_MUTEX_INITIALIZER;

static void owner_key(const Principal *p, char *buf, size_t size)
{
	snprintf(buf, size, "%d:%s:%s", (int)p->kind, p->token_id, p->name);
}

static bool same_call(const McpInflight *f, const char *owner, const char *session, json_t *id)
{
	return !strcmp(f->owner, owner) && !strcmp(f->session, session ? session : "") &&
	       json_equal(f->id, id);
}

int mcp_inflight_begin(McpInflight **list, const McpCall *call, json_t *id, McpInflight **ret)
{
	*ret = NULL;
	if (!call->principal || !id)
		return -EINVAL;
	McpInflight *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	owner_key(call->principal, f->owner, sizeof(f->owner));
	snprintf(f->session, sizeof(f->session), "%s", call->session_id ? call->session_id : "");
	f->id = json_deep_copy(id);
	f->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!f->id || f->fd < 0) {
		int r = f->fd < 0 ? -errno : -ENOMEM;
		if (f->fd >= 0)
			close(f->fd);
		json_decref(f->id);
		free(f);
		return r;
	}
	pthread_mutex_lock(&inflight_lock);
	size_t n = 0;
	for (McpInflight *x = *list; x; x = x->next)
		n++;
	if (n < MAX_INFLIGHT) {
		f->next = *list;
		*list = f;
	}
	pthread_mutex_unlock(&inflight_lock);
	if (n >= MAX_INFLIGHT) {
		close(f->fd);
		json_decref(f->id);
		free(f);
		return -EBUSY;
	}
	*ret = f;
	return f->fd;
}

bool mcp_inflight_end(McpInflight **list, McpInflight *f)
{
	if (!f)
		return false;
	pthread_mutex_lock(&inflight_lock);
	for (McpInflight **pp = list; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			break;
		}
	bool fired = f->fired;
	pthread_mutex_unlock(&inflight_lock);
	close(f->fd);
	json_decref(f->id);
	free(f);
	return fired;
}

bool mcp_inflight_cancel(McpInflight **list, const McpCall *call, json_t *msg)
{
	const char *method = json_string_value(json_object_get(msg, "method"));
	json_t *id = json_object_get(json_object_get(msg, "params"), "requestId");
	char owner[192];
	bool any = false;
	if (!method || strcmp(method, "notifications/cancelled") || !call->principal ||
	    !(json_is_string(id) || json_is_integer(id)))
		return false;
	owner_key(call->principal, owner, sizeof(owner));
	pthread_mutex_lock(&inflight_lock);
	for (McpInflight *f = *list; f; f = f->next)
		if (same_call(f, owner, call->session_id, id)) {
			uint64_t one = 1;
			(void)!write(f->fd, &one, sizeof(one));
			f->fired = true;
			any = true;
		}
	pthread_mutex_unlock(&inflight_lock);
	return any;
}
