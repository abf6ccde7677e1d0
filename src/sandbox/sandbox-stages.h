/* SPDX-License-Identifier: MIT */
/*
 * Bench-only: where the time of one sandbox start goes (bench/sandbox.sh).
 *
 * Built only with -Dbench_stages=true; otherwise every call is an empty inline function. When
 * built in and BRANCHBOX_BENCH_STAGES is set in the environment, sandbox_stage_begin() maps
 * one shared anonymous page (before the clone, so the sandbox child writes into the same
 * page), sandbox_stage() records CLOCK_MONOTONIC (vDSO, async-signal-safe, so the child may
 * call it between clone and exec) and sandbox_stage_print() writes one line to fd 2:
 * "bench-stages: t0=NS main=NS prune=NS ..." (absolute nanoseconds; t0 is the value of
 * BRANCHBOX_BENCH_T0, the harness's clock right before it started the process, 0 if unset).
 * A stage never reached prints 0. Never built into a release: it reads the environment.
 */
#pragma once

#include "build-config.h"

/* In the order they happen in one spawn; P: the caller, C: the sandbox child before exec. */
typedef enum SandboxStage {
	SANDBOX_STAGE_MAIN, /* P: main() entered (exec + dynamic loading before it) */
	SANDBOX_STAGE_PRUNE, /* P: stale cgroups of killed owners removed (before spawn, old order) */
	SANDBOX_STAGE_PLAN,	/* P: plan built (paths, /etc, argv, BPF copy, init fd) */
	SANDBOX_STAGE_CGROUP,	/* P: cgroup created with its limits (after clone, new order) */
	SANDBOX_STAGE_CLONE,	/* P: clone with the namespace flags returned */
	SANDBOX_STAGE_CHILD,	/* C: first instruction of the child */
	SANDBOX_STAGE_ATTACH,	/* P: child moved into the cgroup, "go" written */
	SANDBOX_STAGE_GO,	/* C: "go" read (after the Landlock ruleset, new order) */
	SANDBOX_STAGE_NS,	/* C: loopback up, hostname (cgroup ns: after GO) */
	SANDBOX_STAGE_ROOTFS,	/* C: tmpfs root, binds, /etc, /proc, /sys, /dev, /tmp */
	SANDBOX_STAGE_PIVOT,	/* C: root read-only, pivot_root, old root detached */
	SANDBOX_STAGE_LANDLOCK, /* C: Landlock ruleset built */
	SANDBOX_STAGE_CONFINE,	/* C: cgroup ns, rlimits, caps and uid dropped, Landlock, seccomp */
	SANDBOX_STAGE_EXECED,	/* P: init started and the command exec'd (error pipe EOF) */
	SANDBOX_STAGE_EXITED,	/* P: the sandbox's init reaped */
	SANDBOX_STAGE_REMOVED,	/* P: cgroup removed */
	SANDBOX_STAGE_END,	/* P: about to exit */
	_SANDBOX_STAGE_MAX,
} SandboxStage;

#if BRANCHBOX_BENCH_STAGES
void sandbox_stage_begin(void);
void sandbox_stage(SandboxStage s);
void sandbox_stage_print(void);
#else
static inline void sandbox_stage_begin(void)
{
}
static inline void sandbox_stage(SandboxStage s)
{
	(void)s;
}
static inline void sandbox_stage_print(void)
{
}
#endif
