/* SPDX-License-Identifier: MIT */
/*
 * Processes of an environment. Two kinds, both run through the sandbox:
 *
 *  - supervised (services, the web application): a thread per process spawns it, pumps its
 *    stdout/stderr into a size-bounded log file, and restarts it with exponential backoff
 *    when it dies, giving up (state "failed") after too many restarts in a short time;
 *  - one-shot (hooks, sanitize and validate steps, `env exec`): run to completion with a
 *    deadline that kills the whole tree, output captured up to a bound (the tail is kept)
 *    and digested, abortable from another thread through a cancel fd.
 *
 * Ownership: EnvProcSpec and what it points to are copied by envproc_start(); the EnvProc is
 * owned by the caller, envproc_stop() ends it and envproc_free() releases it.
 * Thread-safety: an EnvProc may be queried from any thread; start/stop/free from one.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "sandbox.h"

#define ENVPROC_LOG_MAX (4u << 20)	/* bytes per log file before it rotates to .1 */
#define ENVPROC_CAPTURE_MAX (64u << 10) /* bytes of one-shot output kept (the tail) */

typedef struct EnvProcSpec {
	const char *name;	 /* "db", "app", ... (for logs and cgroups) */
	const char *cgroup_name; /* unique per process, below the branchbox parent */
	char **argv;
	char **envp;
	uid_t uid;
	gid_t gid; /* 0: the same as uid */
	const char *workdir;
	SandboxBind *rw;
	size_t n_rw;
	SandboxBind *ro;
	size_t n_ro;
	SandboxIdmap idmap[SANDBOX_IDMAP_MAX]; /* for binds marked idmapped */
	size_t n_idmap;
	const char *hostname;
	const char *hosts_extra;
	uint64_t memory_max;
	uint64_t pids_max;
	uint32_t cpu_millis;
	int oom_score_adj;    /* always set on the sandbox (never the daemon's own, inherited) */
	int netns_fd;	      /* the environment's namespace (borrowed) */
	const char *log_path; /* supervised: where stdout+stderr go */
} EnvProcSpec;

typedef struct EnvProc EnvProc;

typedef enum EnvProcState {
	ENVPROC_STARTING,
	ENVPROC_RUNNING,
	ENVPROC_BACKOFF,
	ENVPROC_FAILED,
	ENVPROC_STOPPED,
} EnvProcState;

int envproc_start(const EnvProcSpec *spec, EnvProc **ret, BbxError *err);
/* SIGTERM, then SIGKILL after grace_ms; waits for the supervisor to end. Idempotent. */
void envproc_stop(EnvProc *p, int grace_ms);
void envproc_free(EnvProc *p);
EnvProcState envproc_state(EnvProc *p);
const char *envproc_state_to_string(EnvProcState s);
pid_t envproc_pid(EnvProc *p);
unsigned envproc_restarts(EnvProc *p);
/*
 * Change the CPU ceiling (thousandths of a CPU, 0 = none) of the current instance and of every
 * restart after it.
 */
int envproc_set_cpu(EnvProc *p, uint32_t cpu_millis, BbxError *err);
/* Freeze/thaw the current instance (for a consistent copy). */
int envproc_freeze(EnvProc *p, bool frozen, BbxError *err);

typedef struct OneshotResult {
	int exit_status; /* 128+N when killed by signal N; 124 on timeout */
	bool timed_out;
	char *output; /* tail of stdout+stderr interleaved, NUL-terminated */
	size_t output_len;
	uint64_t output_total;	/* bytes produced in all */
	char output_sha256[65]; /* digest of everything produced */
	uint64_t duration_ms;
	/* With separate_streams: each stream's own tail (the last ENVPROC_CAPTURE_MAX bytes,
	 * NUL-terminated) and how many bytes it produced; NULL and 0 otherwise. */
	char *stdout_tail;
	size_t stdout_len;
	uint64_t stdout_total;
	char *stderr_tail;
	size_t stderr_len;
	uint64_t stderr_total;
} OneshotResult;

void oneshot_result_done(OneshotResult *r);

/*
 * How a one-shot runs. The deadline holds whatever the command does with its fds and children:
 * its output is read and its stdin written in one poll loop that also watches the sandbox's
 * init, so a command that closes its output, forks away or never reads its input cannot stall
 * the caller. The command ends when it exits (what it left running is killed with it) or, at
 * the deadline or on cancel, when everything in its sandbox (pid namespace and cgroup) is
 * SIGKILLed; the call returns within a few seconds of either.
 */
typedef struct EnvOneshotOptions {
	const char *stdin_data; /* NULL: stdin is /dev/null */
	size_t stdin_len;	/* bytes of stdin_data, written as the command reads */
	uint64_t timeout_ms;	/* 0: no deadline */
	/*
	 * >= 0: when this fd becomes readable (an eventfd written, a pipe written to or whose
	 * write end closed) the run is aborted. Borrowed and never read, so one fd can cancel
	 * every run that watches it and stays fired; a run started on a fired fd never spawns.
	 */
	int cancel_fd;
	/*
	 * A second one, watched the same way: the environment's cancel fd above and the caller's
	 * own here (one request an MCP client cancelled). -1: none. Which one fired the caller
	 * tells by looking at its fd.
	 */
	int call_cancel_fd;
	/*
	 * Stdout and stderr on pipes of their own, each captured (ret->stdout_tail,
	 * ret->stderr_tail); ret->output then holds both in the order they were read, which
	 * keeps each stream's order but interleaves the two only as closely as the reads did.
	 * false: one pipe for both (output in the exact order written).
	 */
	bool separate_streams;
	/*
	 * A start-up boost (monotonic ms, 0: none): until then the command has no CPU share of
	 * its own (only its parent cgroup's ceiling), from then on spec->cpu_millis. A share
	 * that cannot be set ends the run (its processes killed) with an error.
	 */
	uint64_t boost_until_ms;
} EnvOneshotOptions;

/* No stdin, no deadline, no cancel fds, one output pipe. */
void envproc_oneshot_options_init(EnvOneshotOptions *opts);

/*
 * Run spec->argv to completion (log_path ignored). Returns 0 when the command ran, also when
 * it hit the deadline (then ret->timed_out and exit_status 124); -ECANCELED (kind "conflict")
 * when opts->cancel_fd fired, after its processes were killed and reaped; another -errno when
 * it could not be started. *ret is zeroed, then filled when 0 is returned (release it with
 * oneshot_result_done()). call_cancel_fd ends it the same way (-ECANCELED).
 * Thread-safety: runs on the calling thread; any thread may fire cancel_fd meanwhile.
 */
int envproc_run_oneshot_with(const EnvProcSpec *spec, const EnvOneshotOptions *opts,
			     OneshotResult *ret, BbxError *err);

/* The same with stdin_data a NUL-terminated string (NULL: /dev/null) and no cancel. */
int envproc_run_oneshot(const EnvProcSpec *spec, const char *stdin_data, uint64_t timeout_sec,
			OneshotResult *ret, BbxError *err);
