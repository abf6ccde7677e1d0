/* SPDX-License-Identifier: MIT */
/*
 * Pure parts of the sandbox: bind parsing, cgroup mode detection and limit writes against a
 * plain directory tree, and the seccomp filter (built for x86_64, i386 and x32; the native
 * one is also loaded in a child to check what it denies).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "file-util.h"
#include "macro.h"
#include "sandbox-cgroup.h"
#include "sandbox-seccomp-bpf.h"
#include "sandbox-seccomp.h"
#include "sandbox.h"

static void test_bind_parse(void **state)
{
	SandboxBind b;
	char *storage = NULL;

	assert_int_equal(sandbox_bind_parse("/srv/data", &b, &storage, NULL), 0);
	assert_string_equal(b.source, "/srv/data");
	assert_string_equal(b.target, "/srv/data");
	free(storage);

	assert_int_equal(sandbox_bind_parse("/srv/vol:/data", &b, &storage, NULL), 0);
	assert_string_equal(b.source, "/srv/vol");
	assert_string_equal(b.target, "/data");
	free(storage);

	static const char *const bad[] = {
		"",	    "relative", "/a:relative", "/a/../b", "/a:/b/..",
		"/a:/b:/c", "/a//b",	"/a/./b",      "/a:",	  ":/a",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		BbxError err = BBX_ERROR_INIT;
		storage = NULL;
		assert_int_equal(sandbox_bind_parse(bad[i], &b, &storage, &err), -EINVAL);
		assert_null(storage);
		assert_true(bbx_error_isset(&err));
	}
}

static char *make_tree(void)
{
	char tmpl[] = "/tmp/test-sandbox-cg-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static char *join(const char *a, const char *b)
{
	char *p = NULL;
	assert_true(asprintf(&p, "%s/%s", a, b) > 0);
	return p;
}

static void mkdirf(const char *base, const char *rel)
{
	_cleanup_free_ char *p = join(base, rel);
	assert_int_equal(mkdir_p(p, 0755), 0);
}

static void write_at(const char *base, const char *rel, const char *s)
{
	_cleanup_free_ char *p = join(base, rel);
	assert_int_equal(write_file_atomic(p, s, strlen(s), 0644), 0);
}

static void assert_file(const char *dir, const char *file, const char *want)
{
	_cleanup_free_ char *s = NULL;
	_cleanup_free_ char *p = join(dir, file);
	assert_int_equal(read_full_file(p, 4096, &s, NULL), 0);
	assert_string_equal(s, want);
}

static void test_cgroup_v1(void **state)
{
	_cleanup_free_ char *root = make_tree();
	SandboxCgroupMode mode;
	_cleanup_free_ char *base = NULL;

	/* Nothing there: no usable hierarchy. */
	assert_int_equal(sandbox_cgroup_detect(root, &mode, &base), -EOPNOTSUPP);

	/* The machine's layout: v1 controllers plus an empty unified hierarchy. */
	mkdirf(root, "memory");
	mkdirf(root, "pids");
	mkdirf(root, "cpu");
	mkdirf(root, "freezer");
	mkdirf(root, "unified");
	write_at(root, "unified/cgroup.controllers", "");
	assert_int_equal(sandbox_cgroup_detect(root, &mode, &base), 0);
	assert_int_equal(mode, SANDBOX_CGROUP_V1);
	assert_string_equal(base, root);

	SandboxCgroupLimits l = {.memory_max = 256ULL << 20, .pids_max = 64, .cpu_millis = 500};
	SandboxCgroup *cg = NULL;
	assert_int_equal(sandbox_cgroup_create(root, "env-a", &l, &cg, NULL), 0);
	assert_int_equal(cg->mode, SANDBOX_CGROUP_V1);
	assert_int_equal(cg->n_dir, 4);
	char want[512];
	snprintf(want, sizeof(want), "%s/memory/branchbox/env-a", root);
	assert_string_equal(cg->dir[SANDBOX_CG_MEMORY], want);
	assert_file(cg->dir[SANDBOX_CG_MEMORY], "memory.limit_in_bytes", "268435456");
	assert_file(cg->dir[SANDBOX_CG_PIDS], "pids.max", "64");
	assert_file(cg->dir[SANDBOX_CG_CPU], "cpu.cfs_period_us", "100000");
	assert_file(cg->dir[SANDBOX_CG_CPU], "cpu.cfs_quota_us", "50000");

	/* The same name again is a conflict, and changes nothing. */
	BbxError err = BBX_ERROR_INIT;
	SandboxCgroup *again = NULL;
	assert_int_equal(sandbox_cgroup_create(root, "env-a", &l, &again, &err), -EEXIST);
	assert_null(again);
	assert_file(cg->dir[SANDBOX_CG_PIDS], "pids.max", "64");

	/* The environment's cgroup can be found again by name, e.g. to freeze it. */
	SandboxCgroup *opened = NULL;
	assert_int_equal(sandbox_cgroup_open(root, "env-a", &opened, NULL), 0);
	assert_string_equal(opened->dir[SANDBOX_CG_FREEZER], cg->dir[SANDBOX_CG_FREEZER]);
	assert_int_equal(sandbox_cgroup_freeze(opened, false, NULL), 0);
	sandbox_cgroup_free(opened);
	assert_int_equal(sandbox_cgroup_open(root, "env-missing", &opened, NULL), -ENOENT);

	/* Attach and freeze write the v1 files. */
	assert_int_equal(sandbox_cgroup_attach(cg, 4242, NULL), 0);
	assert_file(cg->dir[SANDBOX_CG_FREEZER], "cgroup.procs", "4242");
	assert_int_equal(sandbox_cgroup_freeze(cg, false, NULL), 0);
	assert_file(cg->dir[SANDBOX_CG_FREEZER], "freezer.state", "THAWED");

	/* Invalid names never touch the tree. */
	assert_int_equal(sandbox_cgroup_create(root, "../x", &l, &again, NULL), -EINVAL);
	assert_int_equal(sandbox_cgroup_create(root, "/abs", &l, &again, NULL), -EINVAL);
	assert_int_equal(sandbox_cgroup_create(root, "a//b", &l, &again, NULL), -EINVAL);

	assert_int_equal(sandbox_cgroup_remove(cg, NULL), 0);
	assert_int_equal(access(want, F_OK), -1);
	sandbox_cgroup_free(cg);

	/* Leftovers of a dead owner go; a live owner's and foreign names stay. */
	char dead[64], live[64];
	snprintf(dead, sizeof(dead), "memory/branchbox/sb-%d-3", 99999999);
	snprintf(live, sizeof(live), "pids/branchbox/sb-%d-0", (int)getpid());
	mkdirf(root, dead);
	mkdirf(root, live);
	mkdirf(root, "cpu/branchbox/env-keep");
	mkdirf(root, "cpu/branchbox/sb-1x-2");
	assert_int_equal(sandbox_cgroup_prune_stale(root), 1);
	_cleanup_free_ char *dead_p = join(root, dead);
	_cleanup_free_ char *live_p = join(root, live);
	_cleanup_free_ char *keep_p = join(root, "cpu/branchbox/env-keep");
	assert_int_equal(access(dead_p, F_OK), -1);
	assert_int_equal(access(live_p, F_OK), 0);
	assert_int_equal(access(keep_p, F_OK), 0);
	assert_int_equal(rm_rf(root), 0);
}

static void test_cgroup_v2(void **state)
{
	_cleanup_free_ char *root = make_tree();
	SandboxCgroupMode mode;
	_cleanup_free_ char *base = NULL;

	write_at(root, "cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n");
	assert_int_equal(sandbox_cgroup_detect(root, &mode, &base), 0);
	assert_int_equal(mode, SANDBOX_CGROUP_V2);

	SandboxCgroupLimits l = {.memory_max = 1ULL << 30, .pids_max = 100, .cpu_millis = 1500};
	SandboxCgroup *cg = NULL;
	/* One cgroup per environment, one per process below it. */
	assert_int_equal(sandbox_cgroup_create(root, "env-b/web", &l, &cg, NULL), 0);
	assert_int_equal(cg->mode, SANDBOX_CGROUP_V2);
	assert_int_equal(cg->n_dir, 1);
	char p[512];
	snprintf(p, sizeof(p), "%s/branchbox/env-b/web", root);
	assert_string_equal(cg->dir[0], p);
	assert_file(root, "cgroup.subtree_control", "+memory +pids +cpu");
	snprintf(p, sizeof(p), "%s/branchbox", root);
	assert_file(p, "cgroup.subtree_control", "+memory +pids +cpu");
	snprintf(p, sizeof(p), "%s/branchbox/env-b", root);
	assert_file(p, "cgroup.subtree_control", "+memory +pids +cpu");
	assert_file(cg->dir[0], "memory.max", "1073741824");
	assert_file(cg->dir[0], "pids.max", "100");
	assert_file(cg->dir[0], "cpu.max", "150000 100000");
	assert_int_equal(sandbox_cgroup_freeze(cg, true, NULL), 0);
	assert_file(cg->dir[0], "cgroup.freeze", "1");
	assert_int_equal(sandbox_cgroup_remove(cg, NULL), 0);
	sandbox_cgroup_free(cg);

	/* Hybrid: v1 controllers but the unified hierarchy offers memory, pids and cpu. */
	_cleanup_free_ char *hybrid = make_tree();
	_cleanup_free_ char *hbase = NULL;
	mkdirf(hybrid, "memory");
	mkdirf(hybrid, "pids");
	mkdirf(hybrid, "cpu");
	mkdirf(hybrid, "freezer");
	mkdirf(hybrid, "unified");
	write_at(hybrid, "unified/cgroup.controllers", "cpu memory pids");
	assert_int_equal(sandbox_cgroup_detect(hybrid, &mode, &hbase), 0);
	assert_int_equal(mode, SANDBOX_CGROUP_V2);
	snprintf(p, sizeof(p), "%s/unified", hybrid);
	assert_string_equal(hbase, p);
	/* Missing one controller there: v1. */
	write_at(hybrid, "unified/cgroup.controllers", "cpu memory");
	free(hbase);
	hbase = NULL;
	assert_int_equal(sandbox_cgroup_detect(hybrid, &mode, &hbase), 0);
	assert_int_equal(mode, SANDBOX_CGROUP_V1);

	assert_int_equal(rm_rf(root), 0);
	assert_int_equal(rm_rf(hybrid), 0);
}

static void test_seccomp_build_archs(void **state)
{
	static const uint32_t archs[] = {SCMP_ARCH_X86_64, SCMP_ARCH_X86, SCMP_ARCH_X32};
	for (size_t i = 0; i < ELEMENTSOF(archs); i++) {
		struct sock_filter *prog = NULL;
		size_t len = 0;
		BbxError err = BBX_ERROR_INIT;
		assert_int_equal(sandbox_seccomp_build(archs[i], &prog, &len, &err), 0);
		assert_non_null(prog);
		/* Every denied syscall, clone flags, ioctls, families and personality bits. */
		assert_true(len > 100);
		assert_true(len < 4096);
		free(prog);
	}
	assert_int_equal(sandbox_seccomp_build(0xdeadbeef, NULL, NULL, NULL) < 0, 1);
}

static void test_seccomp_prebuilt_is_current(void **state)
{
	/* The program embedded at build time is exactly what the policy builds now. */
	struct sock_filter *prog = NULL;
	size_t len = 0;
	assert_int_equal(sandbox_seccomp_build(0, &prog, &len, NULL), 0);
	assert_int_equal(len, ELEMENTSOF(sandbox_seccomp_prebuilt));
	assert_memory_equal(prog, sandbox_seccomp_prebuilt, sizeof(sandbox_seccomp_prebuilt));
	free(prog);
}

#if defined(__x86_64__)
static long int80(long nr)
{
	long ret;
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr) : "memory");
	return ret;
}
#endif

/* Load the native filter in a child and check each class of rule; 0 means all held. */
static int seccomp_child(const struct sock_filter *prog, size_t len, bool ia32)
{
	struct sock_fprog fprog = {.len = (unsigned short)len,
				   .filter = (struct sock_filter *)prog};
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return 1;
	if (syscall(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 0, &fprog) < 0)
		return 2;
	if (syscall(SYS_getpid) != getpid())
		return 3;
	errno = 0;
	if (syscall(SYS_mount, "none", "/", "tmpfs", 0, NULL) != -1 || errno != EPERM)
		return 4;
	if (syscall(SYS_unshare, CLONE_NEWUSER) != -1 || errno != EPERM)
		return 5;
	if (syscall(SYS_clone3, NULL, 0) != -1 || errno != ENOSYS)
		return 6;
	if (syscall(SYS_clone, CLONE_NEWNET | SIGCHLD, NULL, NULL, NULL, NULL) != -1 ||
	    errno != EPERM)
		return 7;
	if (syscall(SYS_socket, AF_NETLINK, SOCK_RAW, 0) != -1 || errno != EPERM)
		return 8;
	if (syscall(SYS_socket, 0x100000000ULL | AF_UNIX, SOCK_STREAM, 0) != -1 || errno != EPERM)
		return 9;
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return 10;
	close(s);
	if (syscall(SYS_ioctl, 0, 0x100000000ULL | TIOCSTI, "x") != -1 || errno != EPERM)
		return 11;
	if (syscall(SYS_personality, 0x0400000) != -1 || errno != EPERM)
		return 12;
	if (syscall(SYS_bpf, 0, NULL, 0) != -1 || errno != EPERM)
		return 13;
#if defined(__x86_64__)
	/* i386 getpid (20) through int 0x80: the whole ABI is refused. */
	if (ia32 && int80(20) != -EPERM)
		return 14;
	/* x32 getpid (39 | __X32_SYSCALL_BIT). */
	if (syscall(0x40000000 | 39) != -1 || errno != EPERM)
		return 15;
#endif
	return 0;
}

/*
 * Whether this kernel runs i386 syscalls at all (it may be built or booted without IA32
 * emulation, then int 0x80 faults with SIGSEGV before seccomp sees anything).
 */
static bool ia32_available(void)
{
#if defined(__x86_64__)
	pid_t pid = fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		_exit(int80(20) == (long)getpid() ? 0 : 1);
	}
	int status;
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return false;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
#else
	return false;
#endif
}

static void test_seccomp_native_behaviour(void **state)
{
	struct sock_filter *prog = NULL;
	size_t len = 0;
	bool ia32 = ia32_available();
	if (!ia32)
		print_message(
			"# i386 ABI disabled in this kernel (int 0x80 faults); checked by x32 "
			"and the bad-arch action instead\n");
	assert_int_equal(sandbox_seccomp_build(0, &prog, &len, NULL), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(seccomp_child(prog, len, ia32));
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	free(prog);
}

static void test_landlock_abi(void **state)
{
	/* The machine this runs on is required to offer it; the sandbox refuses otherwise. */
	assert_true(sandbox_landlock_abi() >= SANDBOX_LANDLOCK_ABI_MIN);
}

static void test_spawn_rejects(void **state)
{
	SandboxSpec spec;
	Sandbox *sb = NULL;
	BbxError err = BBX_ERROR_INIT;
	sandbox_spec_init(&spec);
	assert_int_equal(spec.netns_fd, -1);
	assert_int_equal(spec.stdout_fd, -1);
	/* No command: refused before anything is created. */
	int r = sandbox_spawn(&spec, &sb, &err);
	assert_true(r < 0);
	assert_null(sb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bind_parse),
		cmocka_unit_test(test_cgroup_v1),
		cmocka_unit_test(test_cgroup_v2),
		cmocka_unit_test(test_seccomp_build_archs),
		cmocka_unit_test(test_seccomp_native_behaviour),
		cmocka_unit_test(test_seccomp_prebuilt_is_current),
		cmocka_unit_test(test_landlock_abi),
		cmocka_unit_test(test_spawn_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
