/* SPDX-License-Identifier: MIT */
#include "sandbox-stages.h"

#if BRANCHBOX_BENCH_STAGES

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

static uint64_t *stages;

static const char *const names[_SANDBOX_STAGE_MAX] = {
	[SANDBOX_STAGE_MAIN] = "main",	     [SANDBOX_STAGE_PRUNE] = "prune",
	[SANDBOX_STAGE_PLAN] = "plan",	     [SANDBOX_STAGE_CGROUP] = "cgroup",
	[SANDBOX_STAGE_CLONE] = "clone",     [SANDBOX_STAGE_CHILD] = "child",
	[SANDBOX_STAGE_ATTACH] = "attach",   [SANDBOX_STAGE_GO] = "go",
	[SANDBOX_STAGE_NS] = "ns",	     [SANDBOX_STAGE_ROOTFS] = "rootfs",
	[SANDBOX_STAGE_PIVOT] = "pivot",     [SANDBOX_STAGE_LANDLOCK] = "landlock",
	[SANDBOX_STAGE_CONFINE] = "confine", [SANDBOX_STAGE_EXECED] = "execed",
	[SANDBOX_STAGE_EXITED] = "exited",   [SANDBOX_STAGE_REMOVED] = "removed",
	[SANDBOX_STAGE_END] = "end",
};

void sandbox_stage_begin(void)
{
	if (stages || !getenv("BRANCHBOX_BENCH_STAGES"))
		return;
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p != MAP_FAILED)
		stages = p;
}

void sandbox_stage(SandboxStage s)
{
	struct timespec ts;
	if (!stages || (unsigned)s >= _SANDBOX_STAGE_MAX)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	stages[s] = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void sandbox_stage_print(void)
{
	if (!stages)
		return;
	const char *t0 = getenv("BRANCHBOX_BENCH_T0");
	fprintf(stderr, "bench-stages: t0=%s", t0 ? t0 : "0");
	for (int i = 0; i < _SANDBOX_STAGE_MAX; i++)
		fprintf(stderr, " %s=%llu", names[i], (unsigned long long)stages[i]);
	fputc('\n', stderr);
}

#endif
