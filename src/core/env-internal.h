/* SPDX-License-Identifier: MIT */
/*
 * What the environment files share, and nothing outside them: the runtime of one environment
 * and the state of all of them, and the functions that cross from one file to another.
 *
 *  - env-runtime.c: paths, EnvRuntime lifetime, reference counting, cancelling, secrets,
 *    setup from a config;
 *  - env-proc.c: building sandboxed processes, app and build variables (Upsun-style
 *    PLATFORM_RELATIONSHIPS and friends), one-shots, hooks, services, sanitize;
 *  - env-host.c: config at a commit, checkouts, network namespaces, cgroups, teardown,
 *    ceilings and admission, bringing an environment up from its data;
 *  - environment.c: the operations (environment.h);
 *  - env-recovery.c: background jobs, expiry, crash recovery, init and shutdown;
 *  - backend-local.c: this host's volumes, network namespaces and sandboxes (backend.h),
 *    which the others reach only through E->backend.
 */
#pragma once

#include "environment.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "backend.h"
#include "budget.h"
#include "ceilings.h"
#include "config.h"
#include "environments.h"
#include "file-util.h"
#include "gitrepo.h"
#include "journal.h"
#include "netns-connect.h"
#include "parse.h"
#include "policy.h"
#include "jobs.h"
#include "sandbox-cgroup.h"
#include "service.h"
#include "storage.h"
#include "strbuf.h"
#include "strv.h"
#include "uids.h"

#define SERVICE_READY_TIMEOUT_MS (180 * 1000)
#define APP_HEALTHY_TIMEOUT_MS (90 * 1000)
/* When the whole host runs out of memory, the kernel kills a preview's processes before
 * production's (0) and the daemon's (serve sets its own to -500). */
#define PREVIEW_OOM_SCORE_ADJ 500
#define APP_BOOST_WINDOW_MS (10 * 1000) /* the longest a starting preview app runs boosted */
#define STOP_GRACE_MS 15000
#define CONFIG_MAX_SIZE (1u << 20)
#define REAPER_INTERVAL_SEC 5
#define EXEC_LOCK_WAIT_MS 5000 /* how long exec waits for a lifecycle step to end */
#define CANCEL_WAIT_MS 5000    /* how long destroy/stop wait for cancelled commands */

/*
 * What runs of one environment, in memory.
 *
 * Lifetime: reference-counted. The runtime list holds one reference; runtime_find() and
 * runtime_get() return another, dropped with runtime_unref(). A removed runtime (destroyed,
 * or a create that failed) leaves the list but lives until its last user lets go.
 *
 * Locking, outermost first:
 *  - op_lock: one lifecycle operation (deploy, create, destroy, start, stop) at a time. It is
 *    never held while an agent's command runs: exec takes it only to build its sandbox.
 *  - lock: held briefly; guards what readers without op_lock look at (config, netns_fd,
 *    the process arrays). Writers hold op_lock too, so op_lock holders read freely.
 *  - E->admit_lock: counting previews and inserting one; E->pool_lock is taken under it.
 *  - E->pool_lock, then E->lock.
 *  - E->jobs.lock: a leaf, nothing is taken under it.
 * So: op_lock -> rt->lock -> E->admit_lock -> E->pool_lock -> E->lock; E->jobs.lock alone.
 * Cancelling: cancel_fd (an eventfd) is fired by destroy, stop and shutdown; every one-shot
 * and wait of the environment watches it. Agent commands in flight are counted in n_running
 * (under lock, signalled on run_done) so destroy and stop wait for them to be gone.
 */
typedef struct EnvRuntime {
	char *name;
	atomic_int refs;
	bool removed;		 /* under E->lock: no longer in the list */
	pthread_mutex_t op_lock; /* one lifecycle operation at a time */
	pthread_mutex_t lock;	 /* short: config, netns_fd, process arrays, n_running */
	pthread_cond_t run_done;
	unsigned n_running;    /* agent commands running now */
	int cancel_fd;	       /* eventfd: fired to abort every command and wait */
	ProjectConfig *config; /* the branch's, narrowed by production's policy */
	ProjectConfig *policy; /* a preview's: production's config (sanitize, validate) */
	char *policy_code_dir; /* a preview's: production's checkout (sanitize commands) */
	atomic_bool ready;     /* exec, logs and the preview proxy answer only when set */
	char *commit;
	char *code_dir; /* STATE/code/NAME/COMMIT */
	char *volume_path;
	int netns_fd;
	size_t n_services;
	ServiceRuntime *services; /* parallel to config->services */
	char **service_data_host;
	char (*passwords)[33];
	EnvProc **service_procs;
	EnvProc **app_procs;	 /* parallel to config->applications */
	uint64_t boost_until_ms; /* monotonic; 0: no application runs boosted (APP_PROC_BOOST) */
	bool preview;
	uid_t uid;	       /* its services' uid; its applications' is uid + 1 (gids equal) */
	uid_t volume_uid;      /* the pair its volume's files are stored as (see pb_common) */
	uint64_t disk_pending; /* admitted, its volume not bounded yet (see admit_and_insert) */
} EnvRuntime;

typedef struct Environments {
	Core *core;
	Pool *pool;
	pthread_mutex_t pool_lock;
	GitRepo *repo;
	pthread_mutex_t lock; /* the runtime list */
	EnvRuntime **runtimes;
	size_t n_runtimes;
	pthread_t reaper;
	bool reaper_started;
	int reaper_wake[2];
	JobSet jobs; /* background threads (restarts, expiries), joined at the end */
	atomic_bool shutting_down;
	char *state_dir;
	char *production;	/* production environment (= branch) name */
	char cgroup_prefix[16]; /* "d-" + 8 hex of the state dir: this daemon's cgroups */
	BudgetMeter *meter;
	pthread_mutex_t admit_lock; /* counting previews and inserting one */
	uint64_t disk_pending;	    /* what admitted previews may write before their quota is set */
	const Backend *backend;	    /* the machine: volumes, networks, processes (backend.h) */
} Environments;

static inline Environments *envs_of(Core *c)
{
	return core_environments(c);
}

typedef struct ProcBuild {
	EnvProcSpec spec;
	SandboxBind rw[16];
	SandboxBind ro[4];
	char *strings[40];
	size_t n_strings;
	int fds[20]; /* bind sources, resolved beneath their roots */
	size_t n_fds;
	char **envp;
	char *hosts;
	char cgroup[128];
	char log[4096];
} ProcBuild;

/* How an application-side process is built. */
typedef enum AppProcFlags {
	APP_PROC_CODE_WRITABLE = 1 << 0, /* the build hook: /app writable */
	/*
	 * The build hook (as on Upsun): no services, no relationship variables, no data mounts,
	 * and a network namespace of its own, so branch code never meets data before deploy.
	 */
	APP_PROC_BUILD = 1 << 1,
	/*
	 * A preview's application while it starts: no CPU share of its own, only the
	 * environment's ceiling, until apps_end_boost() (first healthy answer, or
	 * APP_BOOST_WINDOW_MS after the start, whichever comes first).
	 */
	APP_PROC_BOOST = 1 << 2,
} AppProcFlags;

#define _cleanup_runtime_ _cleanup_(runtime_unrefp)

/* What bring_up() does besides starting the services and applications. */
typedef enum BringUpFlags {
	BRING_UP_CLONED = 1 << 0,   /* the volume is a fresh clone: rotate its credentials */
	BRING_UP_HOOKS = 1 << 1,    /* run the build, deploy and post_deploy hooks */
	BRING_UP_SANITIZE = 1 << 2, /* run production's sanitize commands */
} BringUpFlags;

/* env-runtime.c */
char *path_join(const char *a, const char *b, const char *c2);
void env_path(Environments *E, char *buf, size_t size, const char *kind, const char *name);
void runtime_stop_processes(EnvRuntime *rt);
void runtime_unref(EnvRuntime *rt);
void runtime_unrefp(EnvRuntime **rt);
EnvRuntime *runtime_find(Environments *E, const char *name);
int runtime_get(Environments *E, const char *name, EnvRuntime **ret, bool *ret_created);
void runtime_remove(Environments *E, EnvRuntime *rt);
bool runtime_removed(Environments *E, EnvRuntime *rt);
void cancel_fire(EnvRuntime *rt);
bool cancelled(EnvRuntime *rt);
/* Is fd (an eventfd, or -1) fired? rt's, or a caller's own (one request's cancel). */
bool cancel_fired(int fd);
/*
 * While an operation on rt runs (a create), a caller's own cancel fd (one request's) fires rt's:
 * a thread waits on the caller's fd until cancel_relay_stop(). Not started (and nothing to stop)
 * when call_fd is none (<= 0).
 */
typedef struct CancelRelay {
	pthread_t thread;
	bool started;
	int call_fd;
	int stop_fd;
	EnvRuntime *rt;
} CancelRelay;
int cancel_relay_start(EnvRuntime *rt, int call_fd, CancelRelay *ret);
void cancel_relay_stop(CancelRelay *relay);
int cancel_reset(EnvRuntime *rt);
bool runs_wait_gone(EnvRuntime *rt, int timeout_ms);
int secrets_to_json(EnvRuntime *rt, char **ret);
int secrets_load(EnvRuntime *rt, const char *json);
/* Takes config, on failure too: callers hand it over with TAKE_PTR(). */
int runtime_setup(Environments *E, EnvRuntime *rt, ProjectConfig *config, const char *commit,
		  bool preview, BbxError *err);

/* env-proc.c */
void proc_build_done(ProcBuild *b);
int pb_keep_fd(ProcBuild *b, int fd);
const ConfigApplication *find_app(EnvRuntime *rt, const char *name, size_t *ret_idx);
int pb_app(Environments *E, EnvRuntime *rt, const ConfigApplication *app, const char *code_dir,
	   ProcBuild *b, const char *what, unsigned flags, BbxError *err);
int service_init(Environments *E, EnvRuntime *rt, size_t i, BbxError *err);
int services_start(Environments *E, EnvRuntime *rt, bool cloned, BbxError *err);
int services_wait_ready(EnvRuntime *rt, BbxError *err);
int service_oneshot(Environments *E, EnvRuntime *rt, size_t i, ServiceCommand *cmd,
		    const char *what, uint64_t timeout, OneshotResult *res, BbxError *err);
int services_rotate_credentials(Environments *E, EnvRuntime *rt, BbxError *err);
int run_hook(Environments *E, EnvRuntime *rt, const ConfigApplication *app, const char *hook,
	     const char *script, BbxError *err);
int apps_start(Environments *E, EnvRuntime *rt, unsigned flags, BbxError *err);
int apps_wait_healthy(Environments *E, EnvRuntime *rt, BbxError *err);
int apps_end_boost(EnvRuntime *rt, BbxError *err);
void apps_stop(EnvRuntime *rt);
int run_sanitize(Environments *E, EnvRuntime *rt, BbxError *err);
int run_service_sql(Environments *E, EnvRuntime *rt, const char *service, const char *sql,
		    const char *what, uint64_t timeout, OneshotResult *res, BbxError *err);

/*
 * How long each stage of an operation on an environment took, written as one line to its
 * deploy.log: "[branchbox] stages OP: NAME=MS NAME=MS ... total=MS" (bench/env.py reads them).
 */
typedef struct StageClock {
	uint64_t start_us, last_us;
	char line[768];
	size_t len;
} StageClock;
void stage_clock_start(StageClock *c, const char *op);
/* The stage that just ended. */
void stage_clock_mark(StageClock *c, const char *stage);
void stage_clock_write(Environments *E, const char *env, StageClock *c);

/* env-host.c */
int load_config_at(Environments *E, const char *commit, ProjectConfig **ret, BbxError *err);
int load_preview_config(Environments *E, const char *commit, ProjectConfig **ret_config,
			ProjectConfig **ret_policy, char **ret_policy_code, BbxError *err);
int ensure_dirs(Environments *E, const char *name);
void cgroups_remove_env(Environments *E, const char *env);
char **cgroup_env_names(Environments *E);
int teardown(Environments *E, const char *name, EnvRuntime *rt, bool sync, BbxError *err);
int quiesce_services(Environments *E, EnvRuntime *parent);
int admit_and_insert(Environments *E, EnvRuntime *rt, const EnvCreateOptions *opts,
		     const ProjectConfig *config, EnvRecord *nr, BbxError *err);
void admission_done(Environments *E, EnvRuntime *rt);
json_t *record_json(Environments *E, const EnvRecord *r);
int record_info(Environments *E, const char *name, json_t **ret, BbxError *err);
int bring_up(Environments *E, EnvRuntime *rt, const char *op, BringUpFlags flags,
	     int64_t journal_id, BbxError *err);
int ensure_pool(Environments *E, BbxError *err);

/* environment.c */
int start_recorded(Environments *E, EnvRuntime *rt, const EnvRecord *rec, BbxError *err);
