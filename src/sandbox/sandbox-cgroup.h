/* SPDX-License-Identifier: MIT */
/*
 * Per-sandbox cgroups below a "branchbox" parent, on cgroup v2 (one directory) or v1 (one
 * directory in each of the memory, pids, cpu and freezer hierarchies).
 *
 * v2 is chosen when the root is a cgroup2 mount (or, for tests, holds cgroup.controllers)
 * or when root/unified offers the memory, pids and cpu controllers; v1 otherwise.
 * The root is a parameter so unit tests can point it at a plain directory tree.
 *
 * Ownership: SandboxCgroup owns its path strings; sandbox_cgroup_free() does not remove the
 * directories (sandbox_cgroup_remove() does). Thread-safe on distinct objects; the shared
 * "branchbox" parent is created with mkdir that tolerates EEXIST, so concurrent creation is fine.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

typedef enum SandboxCgroupMode {
	SANDBOX_CGROUP_V1,
	SANDBOX_CGROUP_V2,
} SandboxCgroupMode;

/*
 * v1 controller directories, in this order; v2 uses only [0]. The first four are required;
 * cpuacct is used only where it is a hierarchy of its own (where it is mounted with cpu, the
 * cpu directory has its counters), to count CPU time for budgets.
 */
enum {
	SANDBOX_CG_MEMORY,
	SANDBOX_CG_PIDS,
	SANDBOX_CG_CPU,
	SANDBOX_CG_FREEZER,
	SANDBOX_CG_CPUACCT,
	_SANDBOX_CG_MAX,
};

typedef struct SandboxCgroupLimits {
	uint64_t memory_max; /* bytes, 0 = none */
	uint64_t pids_max;   /* 0 = none */
	uint32_t cpu_millis; /* 0 = none */
} SandboxCgroupLimits;

typedef struct SandboxCgroup {
	SandboxCgroupMode mode;
	char *dir[_SANDBOX_CG_MAX]; /* absolute directories; v2: only dir[0] */
	size_t n_dir;
} SandboxCgroup;

/* Detect the mode under root; *ret_base is the hierarchy to use (root or root/unified). */
int sandbox_cgroup_detect(const char *root, SandboxCgroupMode *ret_mode, char **ret_base);

/*
 * Create root/.../branchbox/<name> (name may have '/'-separated levels, each name_is_valid)
 * and write the limits. -EEXIST when it already exists.
 */
int sandbox_cgroup_create(const char *root, const char *name, const SandboxCgroupLimits *limits,
			  SandboxCgroup **ret, BbxError *err);
/*
 * Create root/.../branchbox/<name> unless it exists, as the parent of other cgroups (an
 * environment's, with one cgroup per process below it), and write limits: they bound the sum
 * of everything below it, whatever each child's own limits say. It never holds a process
 * itself (on v2 a cgroup that passes controllers to its children may not). An existing one
 * gets the new limits; a 0 in limits leaves that limit as it was. Write limits no lower than
 * a child's: v1 refuses a cpu quota below a child's (EINVAL), and memory below the current
 * use is reclaimed or fails (EBUSY on v1). Nothing is removed on failure.
 */
int sandbox_cgroup_create_parent(const char *root, const char *name,
				 const SandboxCgroupLimits *limits, SandboxCgroup **ret,
				 BbxError *err);
/*
 * An existing cgroup by name (e.g. an environment's parent cgroup, to freeze it while its
 * volume is copied). -ENOENT when it does not exist.
 */
int sandbox_cgroup_open(const char *root, const char *name, SandboxCgroup **ret, BbxError *err);
/* Move pid into every directory of the cgroup. */
int sandbox_cgroup_attach(const SandboxCgroup *cg, pid_t pid, BbxError *err);
/*
 * v1 only: open the "tasks" file of every directory (fds[i] for dir[i], O_CLOEXEC) so that a
 * single-threaded child can move itself by writing "0" to each. The kernel moves one thread
 * by "0" without the global threadgroup lock whose write side waits for an RCU grace period
 * (milliseconds, far more on a busy host), which writing a pid to cgroup.procs takes. On
 * failure no fd is left open. -EOPNOTSUPP on v2.
 */
int sandbox_cgroup_open_tasks(const SandboxCgroup *cg, int fds[_SANDBOX_CG_MAX], BbxError *err);
int sandbox_cgroup_freeze(const SandboxCgroup *cg, bool frozen, BbxError *err);
/* Change the CPU ceiling of an existing cgroup: cpu_millis thousandths of a CPU, 0 = none. */
int sandbox_cgroup_set_cpu(const SandboxCgroup *cg, uint32_t cpu_millis, BbxError *err);
/* SIGKILL every process in the cgroup (cgroup.kill on v2, freeze + kill + thaw on v1). */
int sandbox_cgroup_kill(const SandboxCgroup *cg);
/* True when no process is left in the cgroup. */
bool sandbox_cgroup_is_empty(const SandboxCgroup *cg);
/* Kill what is left and rmdir every directory, retrying briefly while tasks are exiting. */
int sandbox_cgroup_remove(const SandboxCgroup *cg, BbxError *err);
/*
 * sandbox_cgroup_open() + sandbox_cgroup_remove() by name, and then an rmdir of its directory
 * in each hierarchy where one is left: a v1 cgroup whose making was cut short (a daemon killed
 * between two mkdirs) is in some hierarchies only, and cannot be opened. 0 when nothing of it
 * is left (or there was none), else the first error.
 */
int sandbox_cgroup_remove_name(const char *root, const char *name, BbxError *err);
/*
 * The cgroups below root/.../branchbox/<parent>, one level down, by their own names (e.g. an
 * environment's cgroup below a daemon's prefix), each once though it is in several
 * hierarchies. Every hierarchy under root is looked in: root/branchbox and each
 * root/HIERARCHY/branchbox, those this file does not manage included. Only directories with
 * valid names. *ret_names (a strv, NULL when there is none) is the caller's.
 */
int sandbox_cgroup_list_children(const char *root, const char *parent, char ***ret_names);
/*
 * name and every cgroup below it (at most the 4 levels a name may have), in every hierarchy
 * as above, as names below the "branchbox" parent, each once, deepest first: removing them
 * in this order empties a parent of children before its turn. *ret_names is the caller's.
 */
int sandbox_cgroup_list_tree(const char *root, const char *name, char ***ret_names);
/*
 * Kill what runs in name and below it and remove all of it, deepest first, with
 * sandbox_cgroup_remove_name(). Each name removed is appended to *ret_removed when that is
 * not NULL. 0 when nothing of it is left (or there was none); else the first error, and the
 * rest is still tried: -EBUSY when a directory is left in a hierarchy this file does not
 * manage.
 */
int sandbox_cgroup_remove_tree(const char *root, const char *name, char ***ret_removed,
			       BbxError *err);
/*
 * Remove empty "sb-<pid>-<n>" cgroups (the automatic names of sandbox_spawn()) whose owner
 * pid no longer exists: left behind when an owner was killed before it could clean up.
 * Returns how many names were removed (from every hierarchy that had them). Busy or foreign
 * directories are left alone.
 */
int sandbox_cgroup_prune_stale(const char *root);

/* What a cgroup and everything below it used; UINT64_MAX where the kernel does not tell. */
typedef struct SandboxCgroupUsage {
	uint64_t cpu_usec;	 /* CPU time since it was made, removed children included */
	uint64_t memory_current; /* bytes charged now (page cache included) */
	uint64_t memory_peak;	 /* the most bytes ever charged at once */
} SandboxCgroupUsage;

/* Read the counters of an opened cgroup (v2 cpu.stat, memory.current, memory.peak; v1
 * cpuacct.usage, memory.usage_in_bytes, memory.max_usage_in_bytes). Never fails: unknown
 * values are UINT64_MAX. */
void sandbox_cgroup_usage(const SandboxCgroup *cg, SandboxCgroupUsage *ret);
/*
 * SIGKILL every process in the cgroup and in every cgroup below it, without removing any
 * (cgroup.kill on v2; v1: freeze, signal what each level lists, thaw). Returns 0 or -errno.
 */
int sandbox_cgroup_kill_tree(const SandboxCgroup *cg);
SandboxCgroup *sandbox_cgroup_free(SandboxCgroup *cg);
DEFINE_TRIVIAL_CLEANUP_FUNC(SandboxCgroup *, sandbox_cgroup_free)
