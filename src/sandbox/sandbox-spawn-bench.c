/* SPDX-License-Identifier: MIT */
/*
 * Bench-only (-Dbench_stages=true): the in-process spawn path the daemon uses for every
 * environment process, on its own, next to a plain fork/exec, from one long-running process
 * (libraries loaded once, as in the daemon).
 *
 * Usage: sandbox-spawn-bench ROUNDS NETNS_PATH
 * Each round runs, in an order rotated every round: sandbox_spawn() + sandbox_wait() of
 * /bin/true with a fresh network namespace; the same joining the persistent netns at
 * NETNS_PATH (made here, removed at the end: what an environment's processes do), with a
 * cgroup name as the daemon gives; posix_spawn() + waitpid() of /bin/true. One line per run:
 * "NAME WALL_NS CPU_NS" (CPU: this process and its reaped children, user + system). With
 * BRANCHBOX_BENCH_STAGES set, stderr gets "NAME bench-stages: ..." per sandbox run, "main"
 * being the call of sandbox_spawn().
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "parse.h"
#include "sandbox-cgroup.h"
#include "sandbox-stages.h"
#include "sandbox.h"

extern char **environ;

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long cpu_ns(void)
{
	struct rusage self, kids;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	long long us = 0;
	us += (long long)self.ru_utime.tv_sec * 1000000 + self.ru_utime.tv_usec;
	us += (long long)self.ru_stime.tv_sec * 1000000 + self.ru_stime.tv_usec;
	us += (long long)kids.ru_utime.tv_sec * 1000000 + kids.ru_utime.tv_usec;
	us += (long long)kids.ru_stime.tv_sec * 1000000 + kids.ru_stime.tv_usec;
	return us * 1000;
}

static int run_sandbox(int netns_fd, unsigned n)
{
	char *argv[] = { (char *)"/bin/true", NULL };
	char name[64];
	SandboxSpec spec;
	sandbox_spec_init(&spec);
	spec.argv = argv;
	spec.netns_fd = netns_fd;
	spec.no_pdeathsig = true; /* as the daemon, which spawns from short-lived threads */
	if (netns_fd >= 0) {
		snprintf(name, sizeof(name), "spawn-bench-%d/p%u", (int)getpid(), n);
		spec.cgroup_name = name;
	}
	BbxError err = BBX_ERROR_INIT;
	Sandbox *sb = NULL;
	int status = -1;
	int r = sandbox_spawn(&spec, &sb, &err);
	if (r >= 0)
		r = sandbox_wait(sb, &status, &err);
	if (r < 0)
		fprintf(stderr, "sandbox-spawn-bench: %s\n", bbx_error_message(&err, r));
	sandbox_free(sb);
	return r < 0 ? r : status;
}

static int run_plain(void)
{
	char *argv[] = { (char *)"/bin/true", NULL };
	pid_t pid;
	int status;
	if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
		return -1;
	if (waitpid(pid, &status, 0) != pid)
		return -1;
	return WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: sandbox-spawn-bench ROUNDS NETNS_PATH\n");
		return 2;
	}
	uint32_t rounds;
	if (parse_uint32(argv[1], &rounds) < 0) {
		fprintf(stderr, "sandbox-spawn-bench: ROUNDS: not a number\n");
		return 2;
	}
	const char *netns_path = argv[2];
	/* With BRANCHBOX_BENCH_STAGES set: one stage line per sandbox run on stderr. */
	sandbox_stage_begin();
	BbxError err = BBX_ERROR_INIT;
	int r = sandbox_netns_create(netns_path, &err);
	if (r < 0) {
		fprintf(stderr, "sandbox-spawn-bench: %s\n", bbx_error_message(&err, r));
		return 1;
	}
	int netns_fd = open(netns_path, O_RDONLY | O_CLOEXEC);
	/* The environment's parent cgroup, as the daemon makes one per environment. */
	char parent[64];
	snprintf(parent, sizeof(parent), "spawn-bench-%d", (int)getpid());
	SandboxCgroupLimits none = { 0 };
	SandboxCgroup *pcg = NULL;
	r = netns_fd < 0
		    ? -errno
		    : sandbox_cgroup_create_parent("/sys/fs/cgroup", parent, &none, &pcg, &err);
	int ret = 0;
	for (unsigned i = 0; r >= 0 && i < rounds + 2; i++) {
		for (unsigned k = 0; k < 3; k++) {
			unsigned which = (k + i) % 3;
			long long w0 = now_ns(), c0 = cpu_ns();
			sandbox_stage(SANDBOX_STAGE_MAIN);
			int st = which == 0   ? run_sandbox(-1, i)
				 : which == 1 ? run_sandbox(netns_fd, i)
					      : run_plain();
			long long w1 = now_ns(), c1 = cpu_ns();
			if (st != 0) {
				ret = 1;
				break;
			}
			static const char *const names[] = { "sandbox_spawn", "sandbox_spawn_netns",
							     "posix_spawn" };
			if (i >= 2) { /* the first two rounds warm up */
				printf("%s %lld %lld\n", names[which], w1 - w0, c1 - c0);
				if (which < 2) {
					sandbox_stage(SANDBOX_STAGE_END);
					fprintf(stderr, "%s ", names[which]);
					sandbox_stage_print();
				}
			}
		}
	}
	if (r < 0) {
		fprintf(stderr, "sandbox-spawn-bench: %s\n", bbx_error_message(&err, r));
		ret = 1;
	}
	if (pcg) {
		(void)sandbox_cgroup_remove_tree("/sys/fs/cgroup", parent, NULL, NULL);
		sandbox_cgroup_free(pcg);
	}
	if (netns_fd >= 0)
		close(netns_fd);
	(void)sandbox_netns_remove(netns_path, NULL);
	return ret;
}
