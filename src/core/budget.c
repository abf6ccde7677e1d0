/* SPDX-License-Identifier: MIT */
#include "budget.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audit.h"
#include "budgets.h"
#include "environment.h"
#include "environments.h"
#include "file-util.h"
#include "parse.h"
#include "principal.h"
#include "strbuf.h"
#include "token.h"

/* The volume's usage syncs its filesystem: sampled less often than the cgroup's counters. */
#define BUDGET_DISK_SAMPLE_EVERY 5
/* How close to its quota a volume counts as full: writes fail within a few blocks of it. */
#define DISK_QUOTA_SLACK (1u << 20)
/* Use that did not change is written back at least this often (seconds). */
#define BUDGET_PERSIST_IDLE_SEC 60

static const char *const dimension_names[_BUDGET_DIMENSION_MAX] = {
	[BUDGET_CPU_SECONDS] = "cpu_seconds",
	[BUDGET_MEMORY] = "memory",
	[BUDGET_DISK] = "disk",
	[BUDGET_WALL_TIME] = "wall_time",
};

/* Units of use per unit of limit: CPU is used in microseconds, limited in seconds. */
static const uint64_t use_per_limit[_BUDGET_DIMENSION_MAX] = {
	[BUDGET_CPU_SECONDS] = 1000000,
	[BUDGET_MEMORY] = 1,
	[BUDGET_DISK] = 1,
	[BUDGET_WALL_TIME] = 1,
};

const char *budget_dimension_to_string(BudgetDimension d)
{
	return d >= 0 && d < _BUDGET_DIMENSION_MAX ? dimension_names[d] : NULL;
}

int budget_dimension_from_string(const char *s)
{
	for (int d = 0; s && d < _BUDGET_DIMENSION_MAX; d++)
		if (!strcmp(s, dimension_names[d]))
			return d;
	return -1;
}

void budget_from_config(const ConfigBudget *cb, Budget *ret)
{
	*ret = (Budget){ .set = BUDGET_ALL };
	ret->limit[BUDGET_CPU_SECONDS] = cb->cpu_seconds;
	ret->limit[BUDGET_MEMORY] = cb->memory_bytes;
	ret->limit[BUDGET_DISK] = cb->disk_bytes;
	ret->limit[BUDGET_WALL_TIME] = cb->wall_time_sec;
}

unsigned budget_narrow(Budget *b, const Budget *by)
{
	unsigned narrowed = 0;
	for (int d = 0; d < _BUDGET_DIMENSION_MAX; d++) {
		unsigned bit = 1u << d;
		if (!(by->set & bit) || ((b->set & bit) && b->limit[d] <= by->limit[d]))
			continue;
		b->limit[d] = by->limit[d];
		b->set |= bit;
		narrowed |= bit;
	}
	return narrowed;
}

static void format_limit(BudgetDimension d, uint64_t v, char *buf, size_t size)
{
	switch (d) {
	case BUDGET_MEMORY:
	case BUDGET_DISK: format_size(v, buf, size); return;
	case BUDGET_WALL_TIME: format_duration(v, buf, size); return;
	default: snprintf(buf, size, "%llu", (unsigned long long)v); return;
	}
}

int budget_check_within(const Budget *child, const Budget *parent, BbxError *err)
{
	for (int d = 0; d < _BUDGET_DIMENSION_MAX; d++) {
		unsigned bit = 1u << d;
		if (!(parent->set & bit) || !(child->set & bit) ||
		    child->limit[d] <= parent->limit[d])
			continue;
		char a[32], b[32];
		format_limit(d, child->limit[d], a, sizeof(a));
		format_limit(d, parent->limit[d], b, sizeof(b));
		return bbx_error_set(err, -EPERM, BBX_FORBIDDEN,
				     "budget.%s: %s is more than the creating token's budget (%s)",
				     dimension_names[d], a, b);
	}
	return 0;
}

static uint64_t limit_in_use_units(const Budget *b, BudgetDimension d)
{
	uint64_t v;
	if ((unsigned)d >= _BUDGET_DIMENSION_MAX)
		return 0;
	return __builtin_mul_overflow(b->limit[d], use_per_limit[d], &v) ? UINT64_MAX : v;
}

unsigned budget_percent(const Budget *b, const BudgetUse *u, BudgetDimension d)
{
	uint64_t limit = limit_in_use_units(b, d);
	if ((unsigned)d >= _BUDGET_DIMENSION_MAX)
		return 0;
	if (limit == 0)
		return 100;
	unsigned __int128 p = (unsigned __int128)u->used[d] * 100 / limit;
	return p > UINT_MAX ? UINT_MAX : (unsigned)p;
}

static unsigned dimensions_at(const Budget *b, const BudgetUse *u, unsigned percent)
{
	unsigned bits = 0;
	for (int d = 0; d < _BUDGET_DIMENSION_MAX; d++)
		if ((b->set & (1u << d)) && budget_percent(b, u, d) >= percent)
			bits |= 1u << d;
	return bits;
}

unsigned budget_warning_dimensions(const Budget *b, const BudgetUse *u)
{
	return dimensions_at(b, u, BUDGET_WARN_PERCENT);
}

unsigned budget_exhausted_dimensions(const Budget *b, const BudgetUse *u)
{
	return dimensions_at(b, u, 100);
}

const char *budget_describe(const Budget *b, const BudgetUse *u, BudgetDimension d, char *buf,
			    size_t size)
{
	char used[32], limit[32];
	if ((unsigned)d >= _BUDGET_DIMENSION_MAX) {
		if (size)
			buf[0] = '\0';
		return buf;
	}
	if (d == BUDGET_CPU_SECONDS)
		snprintf(used, sizeof(used), "%llu.%llu",
			 (unsigned long long)(u->used[d] / 1000000),
			 (unsigned long long)(u->used[d] % 1000000 / 100000));
	else
		format_limit(d, u->used[d], used, sizeof(used));
	format_limit(d, b->limit[d], limit, sizeof(limit));
	snprintf(buf, size, "%s %s/%s", dimension_names[d], used, limit);
	return buf;
}

static json_int_t json_u64(uint64_t v)
{
	return v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v;
}

json_t *budget_limits_to_json(const Budget *b)
{
	json_t *o = json_object();
	for (int d = 0; o && d < _BUDGET_DIMENSION_MAX; d++)
		if (b->set & (1u << d))
			json_object_set_new(o, dimension_names[d],
					    json_integer(json_u64(b->limit[d])));
	return o;
}

int budget_limits_from_json(json_t *j, const char *what, Budget *ret, BbxError *err)
{
	Budget b = { 0 };
	const char *key;
	json_t *v;

	if (!json_is_object(j))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "%s: an object of cpu_seconds, memory, disk, wall_time", what);
	json_object_foreach(j, key, v)
	{
		int d = budget_dimension_from_string(key);
		if (d < 0)
			return bbx_error_set(
				err, -EINVAL, BBX_INVALID,
				"%s: unknown key '%.64s' (cpu_seconds, memory, disk, wall_time)",
				what, key);
		if (!json_is_integer(v) || json_integer_value(v) < 1)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "%s.%s: a whole number of %s, at least 1", what, key,
					     d == BUDGET_MEMORY || d == BUDGET_DISK ? "bytes"
										    : "seconds");
		b.limit[d] = (uint64_t)json_integer_value(v);
		b.set |= 1u << d;
	}
	*ret = b;
	return 0;
}

json_t *budget_use_to_json(const Budget *b, const BudgetUse *u)
{
	json_t *o = json_object();
	for (int d = 0; o && d < _BUDGET_DIMENSION_MAX; d++) {
		if (!(b->set & (1u << d)))
			continue;
		uint64_t limit = limit_in_use_units(b, d), used = u->used[d];
		uint64_t left = limit > used ? limit - used : 0;
		json_t *used_j, *left_j;
		if (d == BUDGET_CPU_SECONDS) {
			/* Seconds, to the millisecond. */
			used_j = json_real((double)(used - used % 1000) / 1e6);
			left_j = json_real((double)(left - left % 1000) / 1e6);
		} else {
			used_j = json_integer(json_u64(used));
			left_j = json_integer(json_u64(left));
		}
		json_object_set_new(
			o, dimension_names[d],
			json_pack("{s:I,s:o,s:o,s:I,s:s}", "limit", json_u64(b->limit[d]), "used",
				  used_j, "left", left_j, "percent",
				  (json_int_t)budget_percent(b, u, d), "unit",
				  d == BUDGET_MEMORY || d == BUDGET_DISK ? "bytes" : "seconds"));
	}
	return o;
}

/* ---- a preview's budget in the store ---- */

static void record_budget(const EnvBudgetRecord *r, Budget *ret)
{
	*ret = (Budget){ .set = BUDGET_ALL };
	ret->limit[BUDGET_CPU_SECONDS] = r->cpu_seconds;
	ret->limit[BUDGET_MEMORY] = r->memory_bytes;
	ret->limit[BUDGET_DISK] = r->disk_bytes;
	ret->limit[BUDGET_WALL_TIME] = r->wall_time_sec;
}

static void record_use(const EnvBudgetRecord *r, int64_t created_at, int64_t now, BudgetUse *ret)
{
	*ret = (BudgetUse){ 0 };
	ret->used[BUDGET_CPU_SECONDS] = r->cpu_used_usec;
	ret->used[BUDGET_MEMORY] = r->memory_peak_bytes;
	ret->used[BUDGET_DISK] = r->disk_used_bytes;
	ret->used[BUDGET_WALL_TIME] = now > created_at ? (uint64_t)(now - created_at) : 0;
}

/* "cpu_seconds 61.2/60, wall_time 1h1m/1h" for the dimensions in bits. */
static void describe_dimensions(const Budget *b, const BudgetUse *u, unsigned bits, char *buf,
				size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (int d = 0; d < _BUDGET_DIMENSION_MAX; d++) {
		if (!(bits & (1u << d)) || used >= size)
			continue;
		char one[96];
		budget_describe(b, u, d, one, sizeof(one));
		int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", one);
		used += n > 0 ? (size_t)n : 0;
	}
}

int budget_assign(Core *c, const char *env, const ConfigBudget *policy, const char *token_id,
		  BbxError *err)
{
	Budget b, tb;
	budget_from_config(policy, &b);
	int r = token_budget(c, token_id, &tb, err);
	if (r < 0)
		return r;
	unsigned narrowed = budget_narrow(&b, &tb);

	_cleanup_strbuf_ StrBuf source = STRBUF_INIT;
	/* "production's config, narrowed by token tok_x (cpu_seconds, wall_time)" */
	r = strbuf_puts(&source, "production's config");
	if (narrowed) {
		r |= strbuf_appendf(&source, ", narrowed by token %s (", token_id);
		for (int d = 0; d < _BUDGET_DIMENSION_MAX; d++)
			if (narrowed & (1u << d))
				r |= strbuf_appendf(&source, "%s%s",
						    narrowed & ((1u << d) - 1) ? ", " : "",
						    dimension_names[d]);
		r |= strbuf_putc(&source, ')');
	}
	if (r < 0)
		return -ENOMEM;

	/* The clone's own exclusive bytes are not written by it: its disk use counts from here. */
	EnvMeasure m;
	environment_measure(c, env, true, &m);
	EnvBudgetRecord rec = {
		.environment = (char *)env,
		.cpu_seconds = b.limit[BUDGET_CPU_SECONDS],
		.memory_bytes = b.limit[BUDGET_MEMORY],
		.disk_bytes = b.limit[BUDGET_DISK],
		.wall_time_sec = b.limit[BUDGET_WALL_TIME],
		.source = (char *)strbuf_str(&source),
		.disk_base_bytes = m.disk_bytes == UINT64_MAX ? 0 : m.disk_bytes,
	};
	r = env_budget_insert(core_store(c), &rec, err);
	if (r < 0)
		bbx_error_prefix(err, "recording the budget of '%s'", env);
	return r;
}

int budget_info(Core *c, const char *env, json_t **ret, BbxError *err)
{
	EnvBudgetRecord br;
	EnvRecord rec;
	int r = env_budget_get(core_store(c), env, &br, err);
	if (r < 0)
		return r;
	r = env_record_get(core_store(c), env, &rec, err);
	if (r < 0) {
		env_budget_record_done(&br);
		return r;
	}
	Budget b;
	BudgetUse u;
	record_budget(&br, &b);
	record_use(&br, rec.created_at, store_now(), &u);
	env_record_done(&rec);

	json_t *o = budget_use_to_json(&b, &u);
	json_t *warned = json_array();
	for (int d = 0; warned && d < _BUDGET_DIMENSION_MAX; d++)
		if (br.warned & (1u << d))
			json_array_append_new(warned, json_string(dimension_names[d]));
	const char *state = br.exhausted || budget_exhausted_dimensions(&b, &u) ? "exhausted"
			    : budget_warning_dimensions(&b, &u)			? "warning"
										: "ok";
	if (!o || !warned || json_object_set_new(o, "state", json_string(state)) < 0 ||
	    json_object_set_new(o, "source", json_string(br.source)) < 0 ||
	    json_object_set_new(o, "warned", warned) < 0 ||
	    json_object_set_new(o, "exhausted",
				br.exhausted ? json_string(br.exhausted) : json_null()) < 0 ||
	    json_object_set_new(o, "sampled_at",
				br.sampled_at ? json_integer(br.sampled_at) : json_null()) < 0) {
		json_decref(o);
		env_budget_record_done(&br);
		return -ENOMEM;
	}
	env_budget_record_done(&br);
	*ret = o;
	return 0;
}

int budget_refuse_start(Core *c, const char *env, BbxError *err)
{
	EnvBudgetRecord br;
	EnvRecord rec;
	char why[256] = "";

	if (env_budget_get(core_store(c), env, &br, NULL) < 0)
		return 0;
	if (br.exhausted)
		snprintf(why, sizeof(why), "%s", br.exhausted);
	else if (env_record_get(core_store(c), env, &rec, NULL) >= 0) {
		/* Wall time runs on while it is stopped: it may be used up before the meter says
		 * so. */
		Budget b;
		BudgetUse u;
		record_budget(&br, &b);
		record_use(&br, rec.created_at, store_now(), &u);
		describe_dimensions(&b, &u, budget_exhausted_dimensions(&b, &u), why, sizeof(why));
		env_record_done(&rec);
	}
	env_budget_record_done(&br);
	if (!why[0])
		return 0;
	return bbx_error_set(
		err, -EPERM, BBX_CONFLICT,
		"environment '%s' used up its budget (%s): it stays stopped, and its data "
		"is kept until it expires",
		env, why);
}

/* ---- the meter ---- */

typedef struct MeterEntry {
	Core *core;
	char name[64];
	uint64_t cpu_last; /* the cgroup's counter at the last sample, 0 when it had none */
	bool seen;
	/* Stopping runs apart: it waits for the environment's lock, and the meter never waits. */
	pthread_t stopper;
	bool stopper_started;
	atomic_bool stopper_done;
	char reason[256];
} MeterEntry;

struct BudgetMeter {
	Core *core;
	pthread_t thread;
	int wake[2];
	MeterEntry **entries;
	size_t n_entries;
	uint64_t round;
};

static void meter_audit(Core *c, const char *env, const char *action, const char *reason,
			const char *outcome)
{
	Principal system = { .kind = PRINCIPAL_ROOT };
	char resource[160];
	snprintf(system.name, sizeof(system.name), "system:budget");
	snprintf(resource, sizeof(resource), "environment:%s", env);
	AuditRecord rec = { .request_id = "budget",
			    .principal = &system,
			    .interface = "daemon",
			    .action = action,
			    .resource = resource,
			    .decision = "allow",
			    .reason = reason,
			    .request_digest = "",
			    .outcome = outcome };
	(void)audit_append(c, &rec, NULL, NULL);
}

static void *stopper_main(void *userdata)
{
	MeterEntry *e = userdata;
	char error[300];
	if (environment_stop(e->core, e->name, NULL) >= 0) {
		snprintf(error, sizeof(error), "budget exhausted: %s", e->reason);
		(void)env_record_set_state(core_store(e->core), e->name, ENV_STOPPED, error, NULL);
	}
	atomic_store(&e->stopper_done, true);
	return NULL;
}

static void entry_join_stopper(MeterEntry *e)
{
	if (!e->stopper_started)
		return;
	pthread_join(e->stopper, NULL);
	e->stopper_started = false;
	atomic_store(&e->stopper_done, false);
}

static MeterEntry *meter_entry(BudgetMeter *m, const char *name)
{
	for (size_t i = 0; i < m->n_entries; i++)
		if (!strcmp(m->entries[i]->name, name))
			return m->entries[i];
	MeterEntry *e = calloc(1, sizeof(*e));
	MeterEntry **v = e ? realloc(m->entries, (m->n_entries + 1) * sizeof(*v)) : NULL;
	if (!v) {
		free(e);
		return NULL;
	}
	m->entries = v;
	e->core = m->core;
	snprintf(e->name, sizeof(e->name), "%s", name);
	m->entries[m->n_entries++] = e;
	return e;
}

static void sample(BudgetMeter *m, MeterEntry *e, const EnvRecord *rec, const EnvBudgetRecord *br)
{
	Core *c = m->core;
	int64_t now = store_now();
	bool with_disk = m->round % BUDGET_DISK_SAMPLE_EVERY == 0 || br->sampled_at == 0;
	EnvMeasure ms;
	environment_measure(c, rec->name, with_disk, &ms);

	EnvBudgetRecord next = *br;
	/* The cgroup's counter restarts at 0 when the cgroup is made again (after a daemon
	 * restart, say): what it counts since is added. */
	if (ms.cpu_usec != UINT64_MAX) {
		uint64_t delta =
			ms.cpu_usec >= e->cpu_last ? ms.cpu_usec - e->cpu_last : ms.cpu_usec;
		if (__builtin_add_overflow(next.cpu_used_usec, delta, &next.cpu_used_usec))
			next.cpu_used_usec = UINT64_MAX;
		e->cpu_last = ms.cpu_usec;
	} else
		e->cpu_last = 0;
	uint64_t mem = ms.memory_peak != UINT64_MAX ? ms.memory_peak : ms.memory_current;
	if (mem != UINT64_MAX && mem > next.memory_peak_bytes)
		next.memory_peak_bytes = mem;
	if (with_disk && ms.disk_bytes != UINT64_MAX) {
		next.disk_used_bytes = ms.disk_bytes > br->disk_base_bytes
					       ? ms.disk_bytes - br->disk_base_bytes
					       : 0;
		/* A volume whose quota is its disk budget and is full has used the budget, though
		 * what it holds beyond the clone is a little under it (what the clone started with
		 * counts against the quota too). A quota below the budget (its services' disks)
		 * full is only that: the preview may go on. */
		if (ms.disk_quota != UINT64_MAX && next.disk_bytes &&
		    ms.disk_quota + DISK_QUOTA_SLACK >= next.disk_bytes &&
		    ms.disk_bytes + DISK_QUOTA_SLACK >= ms.disk_quota &&
		    next.disk_used_bytes < next.disk_bytes)
			next.disk_used_bytes = next.disk_bytes;
	}

	Budget b;
	BudgetUse u;
	record_budget(&next, &b);
	record_use(&next, rec->created_at, now, &u);
	unsigned warn = budget_warning_dimensions(&b, &u) & ~br->warned;
	unsigned exhausted = budget_exhausted_dimensions(&b, &u);
	char reason[256] = "";
	next.warned |= warn;
	if (exhausted && !br->exhausted) {
		describe_dimensions(&b, &u, exhausted, reason, sizeof(reason));
		next.exhausted = reason;
	}
	bool running = rec->state == ENV_READY || rec->state == ENV_STARTING;
	bool changed = next.cpu_used_usec != br->cpu_used_usec ||
		       next.memory_peak_bytes != br->memory_peak_bytes ||
		       next.disk_used_bytes != br->disk_used_bytes || next.warned != br->warned ||
		       next.exhausted != br->exhausted;
	if (changed || now - br->sampled_at >= BUDGET_PERSIST_IDLE_SEC) {
		next.sampled_at = now;
		/* Exhausted is on record before anything is stopped, so a start is refused. */
		(void)env_budget_update_use(core_store(c), &next, NULL);
	}

	for (int d = 0; d < _BUDGET_DIMENSION_MAX; d++) {
		if (!(warn & (1u << d)))
			continue;
		char what[128], line[160];
		budget_describe(&b, &u, d, what, sizeof(what));
		snprintf(line, sizeof(line), "%s (%u%%)", what, budget_percent(&b, &u, d));
		meter_audit(c, rec->name, "environment.budget_warning", line, "warned");
	}
	if (next.exhausted == reason && reason[0]) {
		char line[300];
		snprintf(line, sizeof(line), "budget exhausted: %s", reason);
		meter_audit(c, rec->name, "environment.budget_exhausted", line,
			    running ? "stopped" : "exhausted");
	}

	/* While it is over budget nothing of it runs: whatever started since (an exec that was
	 * waiting for the lock, a restarted service) is killed at the next sample. A preview
	 * still being created is left to finish first, nobody has used it yet. */
	if (!next.exhausted || rec->state == ENV_CREATING || rec->state == ENV_DESTROYING)
		return;
	(void)environment_kill_processes(c, rec->name);
	if (rec->state == ENV_READY && !e->stopper_started) {
		snprintf(e->reason, sizeof(e->reason), "%s", next.exhausted);
		atomic_store(&e->stopper_done, false);
		if (pthread_create(&e->stopper, NULL, stopper_main, e) == 0)
			e->stopper_started = true;
	}
}

static void meter_round(BudgetMeter *m)
{
	Store *s = core_store(m->core);
	EnvRecord *v = NULL;
	size_t n = 0;

	if (env_record_list(s, &v, &n, NULL) < 0)
		return;
	for (size_t i = 0; i < m->n_entries; i++)
		m->entries[i]->seen = false;
	for (size_t i = 0; i < n; i++) {
		EnvBudgetRecord br;
		if (strcmp(v[i].kind, "preview") || v[i].state == ENV_DESTROYING ||
		    env_budget_get(s, v[i].name, &br, NULL) < 0)
			continue;
		MeterEntry *e = meter_entry(m, v[i].name);
		if (e) {
			e->seen = true;
			if (e->stopper_started && atomic_load(&e->stopper_done))
				entry_join_stopper(e);
			sample(m, e, &v[i], &br);
		}
		env_budget_record_done(&br);
	}
	env_records_free(v, n);
	/* Forget what is gone, once its stop (if any) has returned. */
	for (size_t i = 0; i < m->n_entries;) {
		MeterEntry *e = m->entries[i];
		if (e->seen || (e->stopper_started && !atomic_load(&e->stopper_done))) {
			i++;
			continue;
		}
		entry_join_stopper(e);
		free(e);
		memmove(&m->entries[i], &m->entries[i + 1],
			(m->n_entries - i - 1) * sizeof(*m->entries));
		m->n_entries--;
	}
	m->round++;
}

static void *meter_main(void *userdata)
{
	BudgetMeter *m = userdata;
	for (;;) {
		meter_round(m);
		struct pollfd pfd = { .fd = m->wake[0], .events = POLLIN };
		if (poll(&pfd, 1, BUDGET_SAMPLE_SEC * 1000) > 0)
			break;
	}
	return NULL;
}

int budget_meter_start(Core *c, BudgetMeter **ret)
{
	BudgetMeter *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->core = c;
	if (pipe2(m->wake, O_CLOEXEC) < 0) {
		int r = -errno;
		free(m);
		return r;
	}
	int r = pthread_create(&m->thread, NULL, meter_main, m);
	if (r != 0) {
		safe_close(m->wake[0]);
		safe_close(m->wake[1]);
		free(m);
		return -r;
	}
	*ret = m;
	return 0;
}

void budget_meter_stop(BudgetMeter *m)
{
	if (!m)
		return;
	(void)!write(m->wake[1], "x", 1);
	pthread_join(m->thread, NULL);
	for (size_t i = 0; i < m->n_entries; i++) {
		MeterEntry *e = m->entries[i];
		/* A stop waiting for the lock of an exec started since: end that exec first. */
		if (e->stopper_started && !atomic_load(&e->stopper_done))
			(void)environment_kill_processes(m->core, e->name);
		entry_join_stopper(e);
		free(e);
	}
	free(m->entries);
	safe_close(m->wake[0]);
	safe_close(m->wake[1]);
	free(m);
}
