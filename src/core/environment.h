/* SPDX-License-Identifier: MIT */
/*
 * Environments: production (built from the production branch) and previews (a clone of
 * production or of another environment, for any other branch). Each has one volume with
 * every service's data, one network namespace shared by its processes, its services and
 * applications in their own sandboxes, a code checkout read-only to the apps, and a row in
 * the store. Every multi-step operation is journaled before its first side effect, so a
 * daemon killed at any point finishes or undoes it at the next start (environments_init).
 *
 * Thread-safety: all functions are thread-safe; operations on one environment are
 * serialized, operations on different environments run concurrently.
 * Results are JSON objects owned by the caller; secrets never appear in them.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core.h"
#include "envproc.h"
#include "error.h"
#include "principal.h"

/* Open the pool and repository, reconcile after a crash, restart ready environments, and
 * start the TTL reaper. Called once by the daemon after core_new(). */
int environments_init(Core *c, BbxError *err);
/* The first step of shutting down: every command and wait running in an environment is
 * cancelled (its processes killed) and no new exec starts, so request handlers end quickly.
 * An operation cut short this way is left as a crash would leave it, for the next start to
 * reconcile. Thread-safe. */
void environments_quiesce(Core *c);
/* Stop every environment's processes (their data stays) and join every thread started;
 * quiesces first. */
void environments_shutdown(Core *c);

/* Deploy production from the production branch's head (first deploy or redeploy). */
int environment_deploy(Core *c, json_t **ret_info, BbxError *err);

typedef struct EnvCreateOptions {
	const char *name;
	const char *parent;	/* NULL: production */
	const char *branch;	/* NULL: the branch named like the environment */
	const char *created_by; /* principal name, recorded */
	const char *token_id;	/* the creating token: its budget narrows the preview's, and its
				 * previews are counted; NULL: the local administrator, bounded
				 * only by the total */
	int cancel_fd;		/* > 0: the caller's own cancel (an eventfd): when it fires, the
				 * create stops at its next step (a hook or wait is cut short) and
				 * removes everything of the preview; -ECANCELED */
} EnvCreateOptions;

int environment_create(Core *c, const EnvCreateOptions *opts, json_t **ret_info, BbxError *err);
int environment_destroy(Core *c, const char *name, BbxError *err);
int environment_stop(Core *c, const char *name, BbxError *err);
int environment_start(Core *c, const char *name, BbxError *err);

/* Whether a row for the environment exists (any state). */
bool environment_exists(Core *c, const char *name);

/* -ENOENT (kind "not_found", message "environment 'NAME' not found") when absent. */
int environment_info(Core *c, const char *name, json_t **ret, BbxError *err);
/* All environments the principal can see. */
int environment_list(Core *c, const Principal *p, json_t **ret, BbxError *err);

typedef struct EnvExecOptions {
	const char *name;
	const char *application; /* NULL: the first application */
	char **argv;
	const char *stdin_data; /* may be NULL */
	uint64_t timeout_sec;	/* 0: 600 */
	int cancel_fd;		/* > 0: the caller's own cancel (an eventfd); 0 or < 0: none */
} EnvExecOptions;

/* Run a command inside the environment like its application runs (same variables,
 * code at /app, its mounts, its network). Stdout and stderr are captured apart (ret's
 * stdout_tail and stderr_tail) and together (output). -ECANCELED when the environment was
 * stopped or destroyed, or opts->cancel_fd fired, meanwhile: its processes were killed. */
int environment_exec(Core *c, const EnvExecOptions *opts, OneshotResult *ret, BbxError *err);

/* Run a query against one of the environment's SQL services (as its superuser, tuples only,
 * in the service's sandbox): a validate step's SQL check. */
int environment_sql(Core *c, const char *name, const char *service, const char *sql,
		    uint64_t timeout_sec, OneshotResult *ret, BbxError *err);

/* The project config at a commit of the repository. */
struct ProjectConfig;
int environment_config_at(Core *c, const char *commit, struct ProjectConfig **ret, BbxError *err);

/* Whether the daemon is shutting down (environments_quiesce() ran). */
bool environments_shutting_down(Core *c);

/* Log of one process ("app", "web", a service name, or NULL for the first application),
 * from byte offset (negative: the last -offset bytes). Returns the text and the offset
 * to continue from. */
int environment_logs(Core *c, const char *name, const char *process, int64_t offset, size_t max,
		     char **ret_text, int64_t *ret_next, BbxError *err);

/* Connect to an application's port inside the environment (for the preview proxy). */
int environment_connect_app(Core *c, const char *name, int *ret_fd, BbxError *err);

/* What an environment uses right now, for its budget (budget.c); UINT64_MAX: unknown. */
typedef struct EnvMeasure {
	uint64_t cpu_usec;    /* its cgroup's CPU time since the cgroup was made */
	uint64_t memory_peak; /* its cgroup's high-water mark, when the kernel keeps one */
	uint64_t memory_current;
	uint64_t disk_bytes; /* its volume's exclusive bytes (only when asked: it syncs) */
	uint64_t disk_quota; /* its volume's bound on disk_bytes; UINT64_MAX: none */
} EnvMeasure;
void environment_measure(Core *c, const char *name, bool with_disk, EnvMeasure *ret);
/* SIGKILL everything running in the environment's cgroups, whatever started it and whoever
 * holds its lock (a preview over budget). The processes' supervisors may start them again:
 * environment_stop() is what stops them for good. */
int environment_kill_processes(Core *c, const char *name);

/* Destroy previews whose TTL has passed; returns how many. */
int environments_reap_expired(Core *c, BbxError *err);

/* Debug: kill the daemon at a named step ("BRANCHBOX_DEBUG_STOP_AT=create:snapshot"); a no-op
 * unless built with -Ddebug_hooks=true. */
void environment_debug_stop_point(const char *op, const char *step);
