/* SPDX-License-Identifier: MIT */
/*
 * Sandbox: run one process tree in a fail-closed, kernel-isolated box (DESIGN.md section 5).
 *
 * sandbox_spawn() builds a plan in the calling process (all allocation, path strings, the
 * generated /etc, a copy of the prebuilt seccomp BPF program), then clones a child into
 * fresh mount, pid, ipc, uts, net (or a given netns) and cgroup namespaces. The child builds
 * a tmpfs root and pivots into it while the caller creates the cgroup and moves the child
 * into it (on cgroup v1 a move waits for an RCU grace period: done in parallel, it is off
 * the critical path); the child waits for that before it enters its cgroup namespace and
 * well before the command runs. It then drops to an unprivileged uid with no capabilities,
 * applies no_new_privs, Landlock and seccomp, and as its last step execs branchbox-init
 * (sandbox-init.c), which becomes pid 1 and forks the command. The exec discards the child's
 * copy of the caller's memory: no sandboxed process holds a byte of the daemon's heap (keys,
 * other environments' credentials). The init binary is found next to the build tree's
 * binaries, else in libexecdir/branchbox; it is bound read-only at /.branchbox-init inside.
 * Any failed step aborts before the command runs; the step, path and errno come back to the
 * caller in the BbxError.
 *
 * /etc is generated (passwd, group, hosts, hostname, an empty resolv.conf, nsswitch.conf; no
 * shadow); only secret-free host files are bound read-only into it: ld.so.cache (fast exec),
 * alternatives (Debian's awk, editor... symlinks), ssl/certs (TLS trust anchors), services and
 * protocols. /sys is a fresh read-only sysfs of the sandbox's netns with /sys/firmware masked.
 *
 * Ownership: the spec and everything it points to stay owned by the caller and are only read
 * during sandbox_spawn(). The returned Sandbox is owned by the caller: sandbox_free() kills
 * the tree if it still runs, reaps it and removes its cgroup.
 * Threads: every function is safe to call from several threads on different Sandbox objects;
 * one Sandbox may be waited on by one thread while another kills it. No global mutable state.
 * Errors: -errno; err (optional) gets "<step>: <path>: <strerror>" and a kind:
 * "setup" (exit 125 in the CLI), "cannot_execute" (126), "not_found" (127), "invalid",
 * "unsupported" (e.g. Landlock too old).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

/* A host path made visible at path inside the sandbox. */
typedef struct SandboxBind {
	const char *source; /* absolute host path, must exist */
	const char *target; /* absolute path inside the sandbox */
	/*
	 * > 0: bind the file or directory this fd refers to (O_PATH is enough) instead of
	 * resolving source, which then only names it in messages. For sources below a tree
	 * something untrusted can write: the caller resolves it safely once (openat2 with
	 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) and the bind cannot be redirected afterwards.
	 * The fd stays the caller's; the sandbox closes its copy before the command runs.
	 */
	int source_fd;
	bool idmapped; /* seen through the spec's idmap (see SandboxIdmap) */
} SandboxBind;

/*
 * One owner translation of the idmapped binds, for user and group ids alike: a file stored
 * with stored_id appears owned by id inside the sandbox, and what the sandbox creates as id is
 * stored as stored_id. Ids of the tree outside the map appear as the overflow id (65534) and
 * cannot be written as. Neither side may be 0. The kernel does it (an idmapped mount); no
 * file is touched, so a snapshot taken from another owner is used as is.
 */
typedef struct SandboxIdmap {
	uint32_t stored_id;
	uint32_t id;
} SandboxIdmap;
#define SANDBOX_IDMAP_MAX 4

typedef struct SandboxSpec {
	char *const *argv;     /* argv[0] is looked up in PATH when it has no '/' */
	char *const *env;      /* NULL: PATH, HOME, TERM only */
	uid_t uid;	       /* never 0; 0 here means the default 65534 */
	gid_t gid;	       /* 0 here means the same as uid */
	const char *workdir;   /* inside the sandbox; default "/" */
	const SandboxBind *rw; /* writable binds (also Landlock-writable) */
	size_t n_rw;
	const SandboxBind *ro; /* read-only binds */
	size_t n_ro;
	SandboxIdmap idmap[SANDBOX_IDMAP_MAX]; /* for binds marked idmapped */
	size_t n_idmap;
	const char *hostname;	 /* default "sandbox" */
	uint64_t memory_max;	 /* bytes, 0 = no limit */
	uint64_t pids_max;	 /* 0 = no limit */
	uint32_t cpu_millis;	 /* thousandths of a CPU, 0 = no limit */
	uint64_t tmp_size;	 /* size of /tmp and /dev/shm tmpfs, 0 = 256M */
	const char *cgroup_name; /* below the "branchbox" parent; NULL = "sb-<pid>-<n>" */
	const char *cgroup_root; /* NULL = /sys/fs/cgroup */
	int netns_fd;		 /* >= 0: join this netns, -1: a fresh one */
	const char *hosts_extra; /* appended to /etc/hosts, may be NULL */
	int stdin_fd, stdout_fd, stderr_fd; /* -1: inherit the caller's 0, 1, 2 */
	/*
	 * PR_SET_PDEATHSIG fires when the spawning *thread* exits. A daemon that spawns from
	 * short-lived threads sets this; the tree is still killed when the owning process dies
	 * (init watches a pipe whose other end only the owner holds).
	 */
	bool no_pdeathsig;
	/*
	 * Also remove stale "sb-<pid>-<n>" cgroups of owners that were killed (see
	 * sandbox_cgroup_prune_stale()), while the child sets itself up: a one-shot owner
	 * such as the CLI sets this, instead of paying for the scan before it starts.
	 */
	bool prune_stale_cgroups;
	/*
	 * No cgroup of its own, for a caller that sets no limit (the CLI without --memory,
	 * --pids or --cpu): the processes stay in the caller's cgroup (behind a cgroup
	 * namespace), and the pid namespace still ends the whole tree with init. Refused with
	 * a limit set.
	 */
	bool no_cgroup;
	/*
	 * Set the tree's oom_score_adj (-1000..1000) rather than inherit the caller's: what the
	 * kernel's OOM killer, when the whole host runs out, takes first.
	 */
	bool set_oom_score_adj;
	int oom_score_adj;
} SandboxSpec;

/*
 * Every sandboxed process runs with RLIMIT_CORE 0 (no core dumps) and RLIMIT_NOFILE
 * SANDBOX_NOFILE_SOFT/SANDBOX_NOFILE_HARD (the hard one never above the caller's own, which
 * only CAP_SYS_RESOURCE could exceed); the number of processes is bounded by pids_max (the
 * cgroup), not RLIMIT_NPROC.
 */
#define SANDBOX_NOFILE_SOFT 4096
#define SANDBOX_NOFILE_HARD 65536

/* Fills defaults: fds -1, netns_fd -1, everything else zero. */
void sandbox_spec_init(SandboxSpec *spec);

typedef struct Sandbox Sandbox;

int sandbox_spawn(const SandboxSpec *spec, Sandbox **ret, BbxError *err);

/* Host pid of the sandbox's init, and a pidfd for it (owned by the Sandbox; poll it for exit). */
pid_t sandbox_pid(const Sandbox *sb);
int sandbox_pidfd(const Sandbox *sb);

/*
 * Wait for the sandbox to end, then remove its cgroup. *ret_status is the command's exit
 * status, 128+N when killed by signal N. Idempotent after the first success.
 */
int sandbox_wait(Sandbox *sb, int *ret_status, BbxError *err);

/*
 * SIGKILL: kill the whole tree through the cgroup, then init. Any other signal goes to init,
 * which forwards SIGTERM/SIGINT/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 to the command.
 * -ESRCH when the sandbox already ended.
 */
int sandbox_kill(Sandbox *sb, int sig);

/* Freeze or thaw every process of the sandbox (its cgroup). */
int sandbox_freeze(Sandbox *sb, bool frozen, BbxError *err);

/* Change the CPU ceiling of every process of the sandbox (its cgroup); 0 = none. */
int sandbox_set_cpu(Sandbox *sb, uint32_t cpu_millis, BbxError *err);

/* Kill, reap and clean up; NULL-safe. */
Sandbox *sandbox_free(Sandbox *sb);
DEFINE_TRIVIAL_CLEANUP_FUNC(Sandbox *, sandbox_free)

/*
 * Parse a command line bind "HOSTPATH[:PATH]" (PATH defaults to HOSTPATH). Both must be
 * absolute, without "..", ":" or empty components. The strings point into a copy owned by
 * *ret_storage (free it after use).
 */
int sandbox_bind_parse(const char *s, SandboxBind *ret, char **ret_storage, BbxError *err);

/* The Landlock ABI this kernel offers (0 when absent) and the minimum the sandbox needs. */
int sandbox_landlock_abi(void);
#define SANDBOX_LANDLOCK_ABI_MIN 3

/*
 * A persistent network namespace with loopback up, bind-mounted on path (a file is created;
 * its directory must exist). Open path O_RDONLY to get a SandboxSpec.netns_fd.
 * sandbox_netns_remove() unmounts and unlinks it; -ENOENT is not an error.
 */
int sandbox_netns_create(const char *path, BbxError *err);
int sandbox_netns_remove(const char *path, BbxError *err);
