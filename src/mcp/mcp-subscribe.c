/* SPDX-License-Identifier: MIT */
/*
 * Resource subscriptions: who is told when an environment's status (or production's config)
 * changes. Legacy era: resources/subscribe and resources/unsubscribe within a session, the
 * notifications on the session's GET event stream. 2026-07-28: one subscriptions/listen
 * request whose answer is the event stream, the URIs in its filter.
 *
 * Changes come from the store's observer of environment rows (created, state, destroyed,
 * stopped by its budget): the observer only marks the subscriptions of the URI pending and
 * wakes the streams; a stream then checks that its principal may still see the environment
 * before it sends anything, outside every lock.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "environment.h"
#include "mcp-internal.h"
#include "policy.h"
#include "store.h"
#include "strbuf.h"
#include "token.h"

#define MAX_ENTRIES 256
#define MAX_STREAMS_PER_PRINCIPAL 16
#define KEEPALIVE_SEC 15

typedef struct Sub {
	int refs;	  /* the table's and each stream's */
	bool gone;	  /* out of the table: its stream ends */
	char session[33]; /* legacy: the session; "" for a listen stream */
	Principal owner;  /* a copy of the principal that subscribed */
	char *uris[MCP_MAX_SUBSCRIPTIONS];
	size_t n;
	uint32_t pending; /* bit i: uris[i] changed since its stream last sent */
	unsigned gen;	  /* the attached stream's number; 0: none */
	json_t *listen_id;
	time_t last_used;
} Sub;

struct McpSubs {
	Core *core;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stopping;
	unsigned next_gen;
	Sub *entries[MAX_ENTRIES];
};

struct McpStream {
	McpSubs *subs;
	Sub *sub;
	unsigned gen;
	StrBuf out;
	size_t sent;
	bool done;
};

static void sub_unref_locked(Sub *s)
{
	if (--s->refs > 0)
		return;
	for (size_t i = 0; i < s->n; i++)
		free(s->uris[i]);
	principal_done(&s->owner);
	json_decref(s->listen_id);
	free(s);
}

/* The environment name of an environment status URI, or NULL. */
static const char *env_of(const char *uri)
{
	size_t n = strlen(MCP_ENV_URI);
	return !strncmp(uri, MCP_ENV_URI, n) && uri[n] ? uri + n : NULL;
}

static void on_env_changed(const char *name, void *userdata)
{
	McpSubs *subs = userdata;
	const char *production = core_production_branch(subs->core);
	bool woke = false;
	pthread_mutex_lock(&subs->lock);
	for (size_t i = 0; i < MAX_ENTRIES; i++) {
		Sub *s = subs->entries[i];
		for (size_t j = 0; s && j < s->n; j++) {
			const char *e = env_of(s->uris[j]);
			if ((e && !strcmp(e, name)) || (!strcmp(s->uris[j], MCP_CONFIG_URI) &&
							production && !strcmp(production, name))) {
				s->pending |= 1u << j;
				woke = true;
			}
		}
	}
	if (woke)
		pthread_cond_broadcast(&subs->cond);
	pthread_mutex_unlock(&subs->lock);
}

int mcp_subs_new(Core *core, McpSubs **ret)
{
	McpSubs *subs = calloc(1, sizeof(*subs));
	if (!subs)
		return -ENOMEM;
	subs->core = core;
	pthread_mutex_init(&subs->lock, NULL);
	pthread_cond_init(&subs->cond, NULL);
	if (core && core_store(core) &&
	    store_env_observe(core_store(core), on_env_changed, subs) < 0) {
		mcp_subs_free(subs);
		return -ENOSPC;
	}
	*ret = subs;
	return 0;
}

void mcp_subs_shutdown(McpSubs *subs)
{
	if (!subs)
		return;
	pthread_mutex_lock(&subs->lock);
	subs->stopping = true;
	pthread_cond_broadcast(&subs->cond);
	pthread_mutex_unlock(&subs->lock);
}

void mcp_subs_free(McpSubs *subs)
{
	if (!subs)
		return;
	if (subs->core && core_store(subs->core))
		store_env_unobserve(core_store(subs->core), on_env_changed, subs);
	for (size_t i = 0; i < MAX_ENTRIES; i++)
		if (subs->entries[i])
			sub_unref_locked(subs->entries[i]);
	pthread_mutex_destroy(&subs->lock);
	pthread_cond_destroy(&subs->cond);
	free(subs);
}

/* Does uri name a resource p may see now (an environment status, production's config)? */
static bool visible(Core *core, const Principal *p, const char *uri, bool must_exist)
{
	const char *env = env_of(uri);
	if (env)
		return (p->verbs & VERB_ENV_READ) &&
		       policy_authorize(core, p, VERB_ENV_READ, env) != POLICY_INVISIBLE &&
		       (!must_exist || environment_exists(core, env));
	if (!strcmp(uri, MCP_CONFIG_URI)) {
		const Op *op = ops_find("config.read");
		BbxError deny = BBX_ERROR_INIT;
		return op && mcp_tool_offered(mcp_tool_find("config_read"), p) &&
		       ops_authorize(core, p, op, core_production_branch(core), NULL, &deny) == 0;
	}
	return false;
}

static json_t *not_found(json_t *id, const char *uri)
{
	return mcp_error(id, MCP_RESOURCE_NOT_FOUND, "Resource not found",
			 json_pack("{s:s}", "uri", uri));
}

/* A free slot (evicting the least recently used entry without a stream), or NULL. Lock
 * held. */
static Sub **slot_locked(McpSubs *subs)
{
	Sub **victim = NULL;
	for (size_t i = 0; i < MAX_ENTRIES; i++) {
		Sub **e = &subs->entries[i];
		if (!*e)
			return e;
		if (!(*e)->gen && (!victim || (*e)->last_used < (*victim)->last_used))
			victim = e;
	}
	if (victim) {
		(*victim)->gone = true;
		sub_unref_locked(*victim);
		*victim = NULL;
	}
	return victim;
}

static Sub *sub_new(const Principal *p)
{
	Sub *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	if (principal_copy(&s->owner, p) < 0) {
		free(s);
		return NULL;
	}
	s->refs = 1;
	s->last_used = time(NULL);
	return s;
}

/* The legacy entry of session, created when create is set. Lock held. */
static Sub *session_entry_locked(McpSubs *subs, const Principal *p, const char *session,
				 bool create)
{
	for (size_t i = 0; i < MAX_ENTRIES; i++)
		if (subs->entries[i] && !strcmp(subs->entries[i]->session, session))
			return subs->entries[i];
	if (!create)
		return NULL;
	Sub **slot = slot_locked(subs);
	Sub *s = slot ? sub_new(p) : NULL;
	if (!s)
		return NULL;
	snprintf(s->session, sizeof(s->session), "%s", session);
	*slot = s;
	return s;
}

json_t *mcp_subs_request(McpSubs *subs, const McpCall *call, json_t *id, const char *method,
			 json_t *params)
{
	const char *uri = json_string_value(json_object_get(params, "uri"));
	bool subscribe = !strcmp(method, "resources/subscribe");
	char text[160];
	if (!uri) {
		snprintf(text, sizeof(text), "%s: 'uri' must be a string", method);
		return mcp_error(id, MCP_INVALID_PARAMS, text, NULL);
	}
	if (!call->session_id || strlen(call->session_id) != 32)
		return mcp_error(id, MCP_INVALID_REQUEST, "subscriptions need a session", NULL);
	/* Out of scope is answered exactly like absent. */
	if (subscribe && !visible(subs->core, call->principal, uri, true))
		return not_found(id, uri);
	json_t *reply = NULL;
	pthread_mutex_lock(&subs->lock);
	Sub *s = session_entry_locked(subs, call->principal, call->session_id, subscribe);
	size_t i = 0;
	while (s && i < s->n && strcmp(s->uris[i], uri))
		i++;
	if (!subscribe) {
		if (s && i < s->n) {
			free(s->uris[i]);
			s->uris[i] = s->uris[--s->n];
			/* The moved URI keeps its pending bit. */
			uint32_t moved = (s->pending >> s->n) & 1u;
			s->pending &= ~((1u << i) | (1u << s->n));
			if (i < s->n)
				s->pending |= moved << i;
		}
	} else if (!s)
		reply = mcp_error(id, MCP_LIMIT_REACHED, "too many subscriptions on this server",
				  NULL);
	else if (i == s->n && s->n >= MCP_MAX_SUBSCRIPTIONS) {
		snprintf(text, sizeof(text),
			 "resources/subscribe: at most %d subscriptions per session",
			 MCP_MAX_SUBSCRIPTIONS);
		reply = mcp_error(id, MCP_LIMIT_REACHED, text, NULL);
	} else if (i == s->n && !(s->uris[s->n] = strdup(uri)))
		reply = mcp_error(id, MCP_INTERNAL_ERROR, "out of memory", NULL);
	else if (i == s->n)
		s->n++;
	if (s)
		s->last_used = time(NULL);
	pthread_mutex_unlock(&subs->lock);
	return reply ? reply : json_pack("{s:s,s:O,s:{}}", "jsonrpc", "2.0", "id", id, "result");
}

void mcp_subs_session_closed(McpSubs *subs, const char *session)
{
	pthread_mutex_lock(&subs->lock);
	for (size_t i = 0; i < MAX_ENTRIES; i++) {
		Sub *s = subs->entries[i];
		if (s && !strcmp(s->session, session)) {
			s->gone = true;
			sub_unref_locked(s);
			subs->entries[i] = NULL;
			pthread_cond_broadcast(&subs->cond);
		}
	}
	pthread_mutex_unlock(&subs->lock);
}

static void event(StrBuf *sb, json_t *msg)
{
	char *t = json_dumps(msg, JSON_COMPACT);
	if (t)
		(void)strbuf_appendf(sb, "event: message\ndata: %s\n\n", t);
	free(t);
	json_decref(msg);
}

static bool same_principal(const Principal *a, const Principal *b)
{
	return a->kind == b->kind && !strcmp(a->token_id, b->token_id) && !strcmp(a->name, b->name);
}

/* Has p room for one more open stream (one token cannot hold every slot)? Lock held. */
static bool stream_room_locked(McpSubs *subs, const Principal *p)
{
	unsigned n = 0;
	for (size_t i = 0; i < MAX_ENTRIES; i++)
		if (subs->entries[i] && subs->entries[i]->gen &&
		    same_principal(&subs->entries[i]->owner, p))
			n++;
	return n < MAX_STREAMS_PER_PRINCIPAL;
}

static McpStream *stream_new(McpSubs *subs, Sub *s)
{
	McpStream *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->subs = subs;
	st->sub = s;
	s->refs++;
	st->gen = s->gen = ++subs->next_gen ? subs->next_gen : ++subs->next_gen;
	/* A new stream of the session takes over from an older one, which ends. */
	pthread_cond_broadcast(&subs->cond);
	/* A comment first, so a proxy in between knows at once that the stream is open. */
	(void)strbuf_puts(&st->out, ": open\n\n");
	return st;
}

McpStream *mcp_subs_session_stream(McpSubs *subs, const Principal *p, const char *session)
{
	pthread_mutex_lock(&subs->lock);
	Sub *s = session_entry_locked(subs, p, session, true);
	/* A session's new stream replaces its old one, so it needs no more room. */
	McpStream *st = s && (s->gen || stream_room_locked(subs, p)) ? stream_new(subs, s) : NULL;
	pthread_mutex_unlock(&subs->lock);
	return st;
}

json_t *mcp_subs_no_room(json_t *id)
{
	char text[128];
	snprintf(text, sizeof(text),
		 "too many subscription streams open (at most %d per token, %d in all)",
		 MAX_STREAMS_PER_PRINCIPAL, MAX_ENTRIES);
	return mcp_error(id, MCP_LIMIT_REACHED, text, NULL);
}

json_t *mcp_subs_listen(McpSubs *subs, const Principal *p, json_t *id, json_t *params,
			McpStream **ret)
{
	json_t *filter = json_object_get(params, "notifications");
	json_t *want = json_object_get(filter, "resourceSubscriptions");
	size_t i;
	json_t *u;
	*ret = NULL;
	if (!json_is_object(filter))
		return mcp_error(id, MCP_INVALID_PARAMS,
				 "subscriptions/listen: 'notifications' must be an object", NULL);
	if (want && !json_is_array(want))
		return mcp_error(id, MCP_INVALID_PARAMS,
				 "subscriptions/listen: 'notifications.resourceSubscriptions' must "
				 "be an array of URIs",
				 NULL);
	if (json_array_size(want) > MCP_MAX_SUBSCRIPTIONS) {
		char text[160];
		snprintf(text, sizeof(text),
			 "subscriptions/listen: at most %d resourceSubscriptions per stream",
			 MCP_MAX_SUBSCRIPTIONS);
		return mcp_error(id, MCP_INVALID_PARAMS, text, NULL);
	}
	Sub *s = sub_new(p);
	json_t *agreed = json_array();
	if (!s || !agreed) {
		json_decref(agreed);
		if (s)
			sub_unref_locked(s);
		return mcp_error(id, MCP_INTERNAL_ERROR, "out of memory", NULL);
	}
	s->listen_id = json_incref(id);
	/* Only the URIs the principal may see are agreed to; one it may not see is left out
	 * exactly like one that does not exist. */
	json_array_foreach(want, i, u)
	{
		const char *uri = json_string_value(u);
		bool dup = false;
		for (size_t k = 0; uri && k < s->n; k++)
			dup = dup || !strcmp(s->uris[k], uri);
		if (!uri || dup || !visible(subs->core, p, uri, true))
			continue;
		if (!(s->uris[s->n] = strdup(uri)))
			break;
		s->n++;
		json_array_append_new(agreed, json_string(uri));
	}
	pthread_mutex_lock(&subs->lock);
	Sub **slot = stream_room_locked(subs, p) ? slot_locked(subs) : NULL;
	McpStream *st = NULL;
	if (slot) {
		*slot = s;
		st = stream_new(subs, s);
	} else
		sub_unref_locked(s);
	pthread_mutex_unlock(&subs->lock);
	if (!st) {
		json_decref(agreed);
		return mcp_subs_no_room(id);
	}
	json_t *notif = json_object();
	if (json_array_size(agreed) > 0)
		json_object_set(notif, "resourceSubscriptions", agreed);
	json_decref(agreed);
	event(&st->out, json_pack("{s:s,s:s,s:{s:o,s:{s:O}}}", "jsonrpc", "2.0", "method",
				  "notifications/subscriptions/acknowledged", "params",
				  "notifications", notif, "_meta", MCP_META_SUBSCRIPTION, id));
	*ret = st;
	return NULL;
}

/* Wait for changes and turn them into events in st->out; false when the stream is over. */
static bool stream_wait(McpStream *st)
{
	McpSubs *subs = st->subs;
	Sub *s = st->sub;
	char *changed[MCP_MAX_SUBSCRIPTIONS];
	size_t n = 0;
	bool over = false, stopping = false, timed_out = false;
	struct timespec deadline;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += KEEPALIVE_SEC;

	pthread_mutex_lock(&subs->lock);
	while (!subs->stopping && !s->gone && s->gen == st->gen && !s->pending && !timed_out)
		timed_out =
			pthread_cond_timedwait(&subs->cond, &subs->lock, &deadline) == ETIMEDOUT;
	stopping = subs->stopping;
	over = stopping || s->gone || s->gen != st->gen;
	for (size_t i = 0; !over && i < s->n; i++)
		if (s->pending & (1u << i))
			changed[n++] = strdup(s->uris[i]);
	if (!over)
		s->pending = 0;
	s->last_used = time(NULL);
	pthread_mutex_unlock(&subs->lock);

	/* The principal's sight is checked now, outside the lock: never a word about an
	 * environment it may not see, and a token revoked or expired since sees nothing and
	 * ends its stream (checked at every wake, the keepalive's included). */
	bool expired = token_principal_live(subs->core, &s->owner, NULL) < 0;
	for (size_t i = 0; i < n; i++) {
		if (changed[i] && !expired && visible(subs->core, &s->owner, changed[i], false)) {
			json_t *params = json_pack("{s:s}", "uri", changed[i]);
			if (s->listen_id)
				json_object_set_new(
					params, "_meta",
					json_pack("{s:O}", MCP_META_SUBSCRIPTION, s->listen_id));
			event(&st->out,
			      json_pack("{s:s,s:s,s:o}", "jsonrpc", "2.0", "method",
					"notifications/resources/updated", "params", params));
		}
		free(changed[i]);
	}
	if (expired)
		return false;
	if (stopping && s->listen_id) {
		/* The server ends the subscription: the listen request gets its answer. */
		event(&st->out, json_pack("{s:s,s:O,s:{s:s,s:{s:O}}}", "jsonrpc", "2.0", "id",
					  s->listen_id, "result", "resultType", "complete", "_meta",
					  MCP_META_SUBSCRIPTION, s->listen_id));
		return false;
	}
	if (over)
		return false;
	if (timed_out && st->out.len == st->sent)
		(void)strbuf_puts(&st->out, ": keepalive\n\n");
	return true;
}

ssize_t mcp_stream_read(McpStream *st, char *buf, size_t max)
{
	while (st->out.len == st->sent) {
		strbuf_done(&st->out);
		st->sent = 0;
		if (st->done)
			return 0;
		st->done = !stream_wait(st);
	}
	size_t k = st->out.len - st->sent;
	if (k > max)
		k = max;
	memcpy(buf, st->out.buf + st->sent, k);
	st->sent += k;
	return (ssize_t)k;
}

void mcp_stream_free(McpStream *st)
{
	if (!st)
		return;
	McpSubs *subs = st->subs;
	pthread_mutex_lock(&subs->lock);
	Sub *s = st->sub;
	if (s->gen == st->gen)
		s->gen = 0;
	/* A listen stream's subscription ends with its stream. */
	if (s->listen_id && !s->gone)
		for (size_t i = 0; i < MAX_ENTRIES; i++)
			if (subs->entries[i] == s) {
				s->gone = true;
				subs->entries[i] = NULL;
				sub_unref_locked(s);
			}
	sub_unref_locked(s);
	pthread_mutex_unlock(&subs->lock);
	strbuf_done(&st->out);
	free(st);
}
