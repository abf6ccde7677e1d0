/* SPDX-License-Identifier: MIT */
/*
 * The sandbox library used the way the daemon uses it: spawns from several threads at once,
 * a shared persistent network namespace, kill of a whole tree, freeze/thaw, stdio fds.
 * Needs root (namespaces, cgroups); outside CI a non-root run skips with the reason.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "build-config.h"
#include "file-util.h"
#include "macro.h"
#include "sandbox-cgroup.h"
#include "sandbox.h"

static bool need_root(void)
{
	if (geteuid() == 0)
		return true;
	const char *ci = getenv("CI");
	if (ci && (!strcmp(ci, "true") || !strcmp(ci, "1")))
		fail_msg("needs root (namespaces, cgroups) and CI is set");
	print_message("# skipping: needs root to create namespaces and cgroups\n");
	skip();
	return false;
}

/* Run spec in a sandbox, capture stdout (up to size - 1 bytes), return the exit status. */
static int spec_capture(SandboxSpec *spec, char *out, size_t size)
{
	spec->no_pdeathsig = true; /* spawned from short-lived test threads */
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	spec->stdout_fd = p[1];
	Sandbox *sb = NULL;
	BbxError err = BBX_ERROR_INIT;
	int r = sandbox_spawn(spec, &sb, &err);
	if (r < 0)
		fail_msg("spawn: %s", bbx_error_message(&err, r));
	close(p[1]);
	size_t len = 0;
	for (;;) {
		ssize_t k = read(p[0], out + len, size - 1 - len);
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	out[len] = '\0';
	close(p[0]);
	int status = -1;
	assert_int_equal(sandbox_wait(sb, &status, &err), 0);
	sandbox_free(sb);
	return status;
}

static int run_capture(char *const *argv, int netns_fd, char *out, size_t size)
{
	SandboxSpec spec;
	sandbox_spec_init(&spec);
	spec.argv = argv;
	spec.netns_fd = netns_fd;
	return spec_capture(&spec, out, size);
}

static void *spawn_thread(void *arg)
{
	long id = (long)arg;
	for (int i = 0; i < 4; i++) {
		char script[64], out[64];
		snprintf(script, sizeof(script), "echo %ld-%d; exit %d", id, i, (int)(id * 10 + i));
		char *const argv[] = { "/bin/sh", "-c", script, NULL };
		int status = run_capture(argv, -1, out, sizeof(out));
		char want[32];
		snprintf(want, sizeof(want), "%ld-%d\n", id, i);
		if (status != (int)(id * 10 + i) || strcmp(out, want))
			return (void *)1;
	}
	return NULL;
}

static void test_concurrent_spawns_from_threads(void **state)
{
	if (!need_root())
		return;
	pthread_t t[4];
	for (long i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, spawn_thread, (void *)i), 0);
	for (int i = 0; i < 4; i++) {
		void *ret = (void *)1;
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
}

static void test_shared_netns(void **state)
{
	if (!need_root())
		return;
	char path[128];
	snprintf(path, sizeof(path), "/run/branchbox/test-netns-%d", (int)getpid());
	assert_int_equal(mkdir_p("/run/branchbox", 0700), 0);
	BbxError err = BBX_ERROR_INIT;
	int r = sandbox_netns_create(path, &err);
	if (r < 0)
		fail_msg("netns: %s", bbx_error_message(&err, r));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);

	/* Both sandboxes see the same namespace, whose inode is the bound file's, with lo up. */
	char *const argv[] = { "/bin/sh", "-c",
			       "readlink /proc/self/ns/net; grep -c . /proc/net/dev; "
			       "cat /sys/class/net/lo/operstate /sys/class/net/lo/flags",
			       NULL };
	char a[512], b[512], want[64];
	assert_int_equal(run_capture(argv, fd, a, sizeof(a)), 0);
	assert_int_equal(run_capture(argv, fd, b, sizeof(b)), 0);
	snprintf(want, sizeof(want), "net:[%llu]\n", (unsigned long long)st.st_ino);
	assert_true(!strncmp(a, want, strlen(want)));
	assert_string_equal(a, b);
	/* Header lines + lo only; IFF_UP set. */
	assert_non_null(strstr(a, "\n3\n"));
	assert_non_null(strstr(a, "0x9"));
	close(fd);

	/* A fresh sandbox gets a different one. */
	char c[512];
	assert_int_equal(run_capture(argv, -1, c, sizeof(c)), 0);
	assert_true(strncmp(c, want, strlen(want)) != 0);

	assert_int_equal(sandbox_netns_remove(path, NULL), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(sandbox_netns_remove(path, NULL), 0);
}

static void test_kill_whole_tree_and_freeze(void **state)
{
	if (!need_root())
		return;
	SandboxSpec spec;
	sandbox_spec_init(&spec);
	char *const argv[] = { "/bin/sh", "-c", "sleep 100 & sleep 100 & wait", NULL };
	spec.argv = argv;
	spec.cgroup_name = NULL;
	spec.pids_max = 16;
	Sandbox *sb = NULL;
	BbxError err = BBX_ERROR_INIT;
	int r = sandbox_spawn(&spec, &sb, &err);
	if (r < 0)
		fail_msg("spawn: %s", bbx_error_message(&err, r));
	usleep(100 * 1000);
	assert_int_equal(sandbox_freeze(sb, true, &err), 0);
	assert_int_equal(sandbox_freeze(sb, false, &err), 0);
	assert_int_equal(sandbox_kill(sb, SIGKILL), 0);
	int status = -1;
	assert_int_equal(sandbox_wait(sb, &status, &err), 0);
	assert_int_equal(status, 128 + SIGKILL);
	assert_int_equal(sandbox_kill(sb, SIGTERM), -ESRCH);
	/* Waiting again is idempotent. */
	assert_int_equal(sandbox_wait(sb, &status, &err), 0);
	assert_int_equal(status, 128 + SIGKILL);
	sandbox_free(sb);
}

static void test_free_kills_running_sandbox(void **state)
{
	if (!need_root())
		return;
	SandboxSpec spec;
	sandbox_spec_init(&spec);
	char *const argv[] = { "/bin/sleep", "100", NULL };
	spec.argv = argv;
	spec.cgroup_name = "test-free-kills";
	Sandbox *sb = NULL;
	BbxError err = BBX_ERROR_INIT;
	int r = sandbox_spawn(&spec, &sb, &err);
	if (r < 0)
		fail_msg("spawn: %s", bbx_error_message(&err, r));
	pid_t pid = sandbox_pid(sb);
	sandbox_free(sb);
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(access("/sys/fs/cgroup/pids/branchbox/test-free-kills", F_OK), -1);
}

static void test_setup_failure_reports_step(void **state)
{
	if (!need_root())
		return;
	SandboxSpec spec;
	sandbox_spec_init(&spec);
	char *const argv[] = { "/bin/true", NULL };
	SandboxBind rw = { "/nonexistent-bbx-test", "/data" };
	spec.argv = argv;
	spec.rw = &rw;
	spec.n_rw = 1;
	Sandbox *sb = NULL;
	BbxError err = BBX_ERROR_INIT;
	assert_int_equal(sandbox_spawn(&spec, &sb, &err), -ENOENT);
	assert_null(sb);
	assert_string_equal(err.message, "bind: /nonexistent-bbx-test: No such file or directory");

	/* A failure inside the child (after clone) travels back the same way. */
	spec.n_rw = 0;
	spec.workdir = "/no/such/dir";
	BbxError err2 = BBX_ERROR_INIT;
	assert_int_equal(sandbox_spawn(&spec, &sb, &err2), -ENOENT);
	assert_string_equal(err2.message, "chdir: /no/such/dir: No such file or directory");
	assert_string_equal(bbx_error_kind_name(err2.kind), "setup");
}

#define CGROUP2_MAGIC 0x63677270UL

static bool is_cgroup2(const char *path)
{
	struct statfs sfs;
	return statfs(path, &sfs) == 0 && (unsigned long)sfs.f_type == CGROUP2_MAGIC;
}

/* Whether the space-separated list in path (a cgroup.controllers) names word. */
static bool file_lists_word(const char *path, const char *word)
{
	_cleanup_free_ char *s = NULL;
	assert_int_equal(read_full_file(path, 4096, &s, NULL), 0);
	size_t n = strlen(word);
	for (const char *w = s; *w;) {
		size_t len = strcspn(w, " \n");
		if (len == n && !strncmp(w, word, n))
			return true;
		w += len;
		w += strspn(w, " \n");
	}
	return false;
}

/*
 * The v2 code path on a real cgroup2 mount: attach, freeze, cgroup.kill and removal. The
 * mount is the hybrid layout's unified hierarchy (this project's CI machines: no
 * controllers there, they are bound to v1), a pure v2 host's /sys/fs/cgroup, or on a v1-only
 * host a cgroup2 mount of the test's own on a scratch dir, in a private mount namespace the
 * test leaves again. It used to pass without checking anything when unified was absent.
 */
static void test_real_cgroup2_mount(void **state)
{
	if (!need_root())
		return;
	char scratch[] = "/tmp/bbx-cgroup2-XXXXXX";
	int host_ns = -1;
	const char *root;
	if (is_cgroup2("/sys/fs/cgroup/unified"))
		root = "/sys/fs/cgroup/unified";
	else if (is_cgroup2("/sys/fs/cgroup"))
		root = "/sys/fs/cgroup";
	else {
		host_ns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
		assert_true(host_ns >= 0);
		assert_non_null(mkdtemp(scratch));
		assert_int_equal(unshare(CLONE_NEWNS), 0);
		/* Nothing mounted here propagates back to the host. */
		assert_int_equal(mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL), 0);
		unsigned long flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
		if (mount("cgroup2", scratch, "cgroup2", flags, NULL) < 0)
			fail_msg("no cgroup2 on this host and mounting one failed: %s",
				 strerror(errno));
		root = scratch;
	}
	print_message("# cgroup2 at %s\n", root);
	assert_true(is_cgroup2(root));
	char controllers[PATH_MAX], dir[PATH_MAX], file[PATH_MAX];
	snprintf(controllers, sizeof(controllers), "%s/cgroup.controllers", root);
	snprintf(dir, sizeof(dir), "%s/branchbox/test-v2", root);
	bool has_memory = file_lists_word(controllers, "memory");

	SandboxSpec spec;
	sandbox_spec_init(&spec);
	char *const argv[] = { "/bin/sh", "-c", "sleep 100 & sleep 100 & wait", NULL };
	spec.argv = argv;
	spec.cgroup_root = root;
	spec.cgroup_name = "test-v2";
	Sandbox *sb = NULL;
	BbxError err = BBX_ERROR_INIT;
	int r = sandbox_spawn(&spec, &sb, &err);
	if (r < 0)
		fail_msg("spawn: %s", bbx_error_message(&err, r));
	_cleanup_free_ char *procs = NULL;
	snprintf(file, sizeof(file), "%s/cgroup.procs", dir);
	assert_int_equal(read_full_file(file, 4096, &procs, NULL), 0);
	assert_true(strlen(procs) > 0);
	assert_int_equal(sandbox_freeze(sb, true, &err), 0);
	_cleanup_free_ char *frozen = NULL;
	snprintf(file, sizeof(file), "%s/cgroup.freeze", dir);
	assert_int_equal(read_full_file(file, 64, &frozen, NULL), 0);
	assert_string_equal(frozen, "1\n");
	assert_int_equal(sandbox_freeze(sb, false, &err), 0);
	assert_int_equal(sandbox_kill(sb, SIGKILL), 0);
	int status = -1;
	assert_int_equal(sandbox_wait(sb, &status, &err), 0);
	assert_int_equal(status, 128 + SIGKILL);
	sandbox_free(sb);
	sb = NULL;
	assert_int_equal(access(dir, F_OK), -1);

	spec.memory_max = 64ULL << 20;
	BbxError err2 = BBX_ERROR_INIT;
	r = sandbox_spawn(&spec, &sb, &err2);
	if (!has_memory) {
		/* A limit the hierarchy cannot enforce fails closed, naming the file. */
		assert_true(r < 0);
		assert_non_null(strstr(err2.message, "memory.max"));
	} else {
		/* The hierarchy has the controller: the limit is the kernel's. */
		if (r < 0)
			fail_msg("spawn with memory.max: %s", bbx_error_message(&err2, r));
		_cleanup_free_ char *max = NULL;
		snprintf(file, sizeof(file), "%s/memory.max", dir);
		assert_int_equal(read_full_file(file, 64, &max, NULL), 0);
		assert_string_equal(max, "67108864\n");
		assert_int_equal(sandbox_kill(sb, SIGKILL), 0);
		assert_int_equal(sandbox_wait(sb, &status, &err2), 0);
		sandbox_free(sb);
		assert_int_equal(access(dir, F_OK), -1);
	}

	if (host_ns >= 0) {
		assert_int_equal(setns(host_ns, CLONE_NEWNS), 0);
		close(host_ns);
		assert_int_equal(rmdir(scratch), 0);
	}
}

/* The first child of pid, waiting up to 10 s for it to appear; 0 when it never did. */
static pid_t first_child(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	for (int i = 0; i < 1000; i++) {
		_cleanup_free_ char *s = NULL;
		unsigned long child = 0;
		if (read_full_file(path, 4096, &s, NULL) == 0 && sscanf(s, "%lu", &child) == 1)
			return (pid_t)child;
		usleep(10 * 1000);
	}
	return 0;
}

/*
 * Whether needle occurs anywhere in the readable mappings of pid (/proc/PID/maps, read
 * through /proc/PID/mem). *ret_scanned gets the number of bytes read, so a scan that read
 * nothing cannot pass for "absent". Mappings of more than 1 GiB are skipped and counted in
 * *ret_skipped: the sanitizers' shadow reserves terabytes in this test program.
 */
static bool memory_contains(pid_t pid, const void *needle, size_t n, size_t *ret_scanned,
			    size_t *ret_skipped)
{
	enum { CHUNK = 1 << 20 };
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	_cleanup_free_ char *maps = NULL;
	assert_int_equal(read_full_file(path, 16 << 20, &maps, NULL), 0);
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	_cleanup_close_ int mem = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(mem >= 0);
	_cleanup_free_ char *buf = malloc(CHUNK + n);
	assert_non_null(buf);
	bool found = false;
	size_t scanned = 0, skipped = 0;
	for (char *line = maps, *next; !found && line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		unsigned long long start, end;
		char perms[8];
		if (sscanf(line, "%llx-%llx %7s", &start, &end, perms) != 3 || perms[0] != 'r' ||
		    end > (unsigned long long)INT64_MAX)
			continue;
		if (end - start > (1ULL << 30)) {
			skipped++;
			continue;
		}
		size_t carry = 0;
		for (unsigned long long off = start; off < end;) {
			size_t want = end - off < CHUNK ? (size_t)(end - off) : CHUNK;
			ssize_t k = pread(mem, buf + carry, want, (off_t)off);
			if (k <= 0)
				break; /* e.g. [vvar] or a mapping beyond its file's end */
			scanned += (size_t)k;
			size_t have = carry + (size_t)k;
			if (memmem(buf, have, needle, n)) {
				found = true;
				break;
			}
			carry = have < n - 1 ? have : n - 1;
			memmove(buf, buf + have - carry, carry);
			off += (unsigned long long)k;
		}
	}
	*ret_scanned = scanned;
	*ret_skipped = skipped;
	return found;
}

static bool same_file(const char *a, const char *b)
{
	struct stat x, y;
	assert_int_equal(stat(a, &x), 0);
	assert_int_equal(stat(b, &y), 0);
	return x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

/* Whether the fd dir of init shows its steady state: fd 2 is /dev/null and 5 fds are open. */
static bool init_fds_settled(const char *fd_dir)
{
	char fd2[128], link[256];
	snprintf(fd2, sizeof(fd2), "%s/2", fd_dir);
	ssize_t k = readlink(fd2, link, sizeof(link) - 1);
	if (k <= 0)
		return false;
	link[k] = '\0';
	if (strcmp(link, "/dev/null"))
		return false;
	DIR *d = opendir(fd_dir);
	if (!d)
		return false;
	int n = 0;
	for (struct dirent *de; (de = readdir(d));)
		n += de->d_name[0] != '.';
	closedir(d);
	return n == 5;
}

/*
 * pid 1 is branchbox-init, a fresh exec: nothing of the spawning process (a secret in its
 * heap, its environment, its fds) exists in the init or in the command.
 */
static void test_init_is_a_fresh_image(void **state)
{
	if (!need_root())
		return;
	uint8_t *secret = malloc(32);
	assert_non_null(secret);
	assert_int_equal(getrandom(secret, 32, 0), 32);
	assert_int_equal(setenv("BBX_OWNER_ONLY", "owner-secret-value", 1), 0);

	SandboxSpec spec;
	sandbox_spec_init(&spec);
	char *const argv[] = { "sleep", "100", NULL };
	char *const envp[] = { "PATH=/usr/bin:/bin", "BBX_FOR_COMMAND=1", NULL };
	spec.argv = argv;
	spec.env = envp;
	Sandbox *sb = NULL;
	BbxError err = BBX_ERROR_INIT;
	int r = sandbox_spawn(&spec, &sb, &err);
	if (r < 0)
		fail_msg("spawn: %s", bbx_error_message(&err, r));
	pid_t init = sandbox_pid(sb);
	pid_t command = first_child(init);
	assert_true(command > 0);
	char path[64], link[256];

	/* The init binary, not a copy of this test program. */
	snprintf(path, sizeof(path), "/proc/%d/exe", (int)init);
	assert_true(same_file(path, BRANCHBOX_INIT_BUILT));
	assert_false(same_file(path, "/proc/self/exe"));
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)init);
	_cleanup_free_ char *cmdline = NULL;
	size_t len = 0;
	assert_int_equal(read_full_file(path, 4096, &cmdline, &len), 0);
	static const char want_cmdline[] = "branchbox-init\0--pdeathsig\0/usr/bin/sleep\0"
					   "/bin/sleep\0--\0sleep\0"
					   "100";
	assert_int_equal(len, sizeof(want_cmdline));
	assert_memory_equal(cmdline, want_cmdline, sizeof(want_cmdline));

	/* Its environment is exactly the command's. */
	static const char want_env[] = "PATH=/usr/bin:/bin\0BBX_FOR_COMMAND=1";
	_cleanup_free_ char *environ_init = NULL;
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)init);
	assert_int_equal(read_full_file(path, 65536, &environ_init, &len), 0);
	assert_int_equal(len, sizeof(want_env));
	assert_memory_equal(environ_init, want_env, sizeof(want_env));

	/*
	 * Its fds: /dev/null as 0-2, the sync pipe, its signalfd; nothing of the owner. The
	 * init closes its error pipe and drops its stdio just after the fork that the command
	 * appeared from: on a loaded machine that can be after first_child() returned, so wait
	 * for the last of it (stderr on /dev/null).
	 */
	snprintf(path, sizeof(path), "/proc/%d/fd/2", (int)init);
	for (int i = 0; i < 1000; i++) {
		ssize_t k = readlink(path, link, sizeof(link) - 1);
		if (k == (ssize_t)strlen("/dev/null") && !memcmp(link, "/dev/null", (size_t)k))
			break;
		usleep(10 * 1000);
	}
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)init);
	for (int i = 0; i < 1000 && !init_fds_settled(path); i++)
		usleep(10 * 1000);
	DIR *d = opendir(path);
	assert_non_null(d);
	int n_fds = 0;
	for (struct dirent *de; (de = readdir(d));) {
		if (de->d_name[0] == '.')
			continue;
		char fdpath[128];
		snprintf(fdpath, sizeof(fdpath), "%s/%s", path, de->d_name);
		ssize_t k = readlink(fdpath, link, sizeof(link) - 1);
		assert_true(k > 0);
		link[k] = '\0';
		int fd = (int)strtol(de->d_name, NULL, 10);
		if (fd <= 2)
			assert_string_equal(link, "/dev/null");
		else if (fd == 3)
			assert_true(!strncmp(link, "pipe:", 5));
		else
			assert_string_equal(link, "anon_inode:[signalfd]");
		n_fds++;
	}
	closedir(d);
	assert_int_equal(n_fds, 5);

	/*
	 * The secret in this process's heap and its environment variable are in neither the
	 * init nor the command...
	 */
	static const char owner_env[] = "owner-secret-value";
	size_t scanned = 0, skipped = 0;
	pid_t inside[] = { init, command };
	for (size_t i = 0; i < ELEMENTSOF(inside); i++) {
		assert_false(memory_contains(inside[i], secret, 32, &scanned, &skipped));
		assert_true(scanned > 0);
		assert_int_equal(skipped, 0);
		assert_false(memory_contains(inside[i], owner_env, sizeof(owner_env) - 1, &scanned,
					     &skipped));
	}
	/* ...but in any copy of this process, which a cloned pid 1 was (the control). */
	pid_t copy = fork();
	assert_true(copy >= 0);
	if (copy == 0) {
		pause();
		_exit(0);
	}
	bool in_copy = memory_contains(copy, secret, 32, &scanned, &skipped) &&
		       memory_contains(copy, owner_env, sizeof(owner_env) - 1, &scanned, &skipped);
	kill(copy, SIGKILL);
	assert_int_equal(waitpid(copy, NULL, 0), copy);
	assert_true(in_copy);

	assert_int_equal(sandbox_kill(sb, SIGTERM), 0);
	int status = -1;
	assert_int_equal(sandbox_wait(sb, &status, &err), 0);
	assert_int_equal(status, 128 + SIGTERM);
	sandbox_free(sb);
	unsetenv("BBX_OWNER_ONLY");
	free(secret);
}

/*
 * An idmapped bind: a tree stored as one owner is used by the sandbox's own uid without a
 * single chown, and what the sandbox writes is stored as the tree's owner again.
 */
#define STORED_ID 2000000001u
#define SANDBOX_ID 2000000002u

static void test_idmapped_bind(void **state)
{
	if (!need_root())
		return;
	char dir[64], data[80], path[128];
	snprintf(dir, sizeof(dir), "/tmp/bbx-idmap-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(data, sizeof(data), "%s/data", dir);
	assert_int_equal(mkdir(data, 0700), 0);
	assert_int_equal(chown(data, STORED_ID, STORED_ID), 0);
	snprintf(path, sizeof(path), "%s/f", data);
	assert_int_equal(write_file_atomic(path, "stored\n", 7, 0600), 0);
	assert_int_equal(chown(path, STORED_ID, STORED_ID), 0);

	char *const argv[] = {
		"/bin/sh", "-c",
		"stat -c %u:%g /data; cat /data/f 2>/dev/null && echo written > /data/g && id -u",
		NULL
	};
	SandboxBind rw = { .source = data, .target = "/data", .idmapped = true };
	SandboxSpec spec;
	sandbox_spec_init(&spec);
	spec.argv = argv;
	spec.uid = SANDBOX_ID;
	spec.rw = &rw;
	spec.n_rw = 1;
	spec.idmap[0] = (SandboxIdmap){ .stored_id = STORED_ID, .id = SANDBOX_ID };
	spec.n_idmap = 1;
	char out[256];
	assert_int_equal(spec_capture(&spec, out, sizeof(out)), 0);
	char want[128];
	snprintf(want, sizeof(want), "%u:%u\nstored\n%u\n", SANDBOX_ID, SANDBOX_ID, SANDBOX_ID);
	assert_string_equal(out, want);
	struct stat st;
	snprintf(path, sizeof(path), "%s/g", data);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, STORED_ID);
	assert_int_equal(st.st_gid, STORED_ID);
	assert_int_equal(stat(data, &st), 0);
	assert_int_equal(st.st_uid, STORED_ID); /* the tree itself was not touched */

	/* Positive control: the same bind without the idmap is the stored owner's, closed to
	 * the sandbox's uid. */
	rw.idmapped = false;
	assert_int_not_equal(spec_capture(&spec, out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%u:%u\n", STORED_ID, STORED_ID);
	assert_string_equal(out, want);

	/* Fail closed: an idmapped bind without a usable map never starts. */
	Sandbox *sb = NULL;
	BbxError err = BBX_ERROR_INIT;
	rw.idmapped = true;
	spec.n_idmap = 0;
	assert_int_equal(sandbox_spawn(&spec, &sb, &err), -EINVAL);
	assert_null(sb);
	assert_non_null(strstr(err.message, "no idmap"));
	spec.idmap[0] = (SandboxIdmap){ .stored_id = 0, .id = SANDBOX_ID };
	spec.n_idmap = 1;
	BbxError err2 = BBX_ERROR_INIT;
	assert_int_equal(sandbox_spawn(&spec, &sb, &err2), -EINVAL);
	assert_non_null(strstr(err2.message, "not mappable"));
	spec.idmap[0] = (SandboxIdmap){ .stored_id = STORED_ID, .id = SANDBOX_ID };
	spec.idmap[1] = (SandboxIdmap){ .stored_id = STORED_ID + 5, .id = SANDBOX_ID };
	spec.n_idmap = 2;
	BbxError err3 = BBX_ERROR_INIT;
	assert_int_equal(sandbox_spawn(&spec, &sb, &err3), -EINVAL);
	assert_non_null(strstr(err3.message, "overlaps"));
	assert_int_equal(rm_rf(dir), 0);
}

/* The value columns of one line of /proc/self/limits ("Max open files  4096  65536  files"). */
static void limits_line(const char *limits, const char *name, char *ret_soft, char *ret_hard)
{
	const char *l = strstr(limits, name);
	assert_non_null(l);
	assert_int_equal(sscanf(l + strlen(name), "%31s %31s", ret_soft, ret_hard), 2);
}

/*
 * Every sandbox runs without core dumps and with bounded open files, whatever the spawning
 * process had: the spawner widens its own limits first (as far as it may: without
 * CAP_SYS_RESOURCE only up to its hard limits), so a sandbox that merely inherited them
 * would show the widened values.
 */
static void test_rlimits(void **state)
{
	if (!need_root())
		return;
	struct rlimit old_core, old_nofile;
	assert_int_equal(getrlimit(RLIMIT_CORE, &old_core), 0);
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old_nofile), 0);
	struct rlimit wide_core = { RLIM_INFINITY, RLIM_INFINITY };
	struct rlimit wide_nofile = { SANDBOX_NOFILE_HARD * 2, SANDBOX_NOFILE_HARD * 2 };
	if (setrlimit(RLIMIT_CORE, &wide_core) < 0) {
		wide_core = (struct rlimit){ old_core.rlim_max, old_core.rlim_max };
		assert_int_equal(setrlimit(RLIMIT_CORE, &wide_core), 0);
	}
	if (setrlimit(RLIMIT_NOFILE, &wide_nofile) < 0) {
		wide_nofile = (struct rlimit){ old_nofile.rlim_max, old_nofile.rlim_max };
		assert_int_equal(setrlimit(RLIMIT_NOFILE, &wide_nofile), 0);
	}
	/* Positive control: the widened limits are really above what a sandbox gets. */
	assert_true(wide_core.rlim_cur > 0);
	assert_true(wide_nofile.rlim_cur > SANDBOX_NOFILE_SOFT);
	_cleanup_free_ char *mine = NULL;
	char out[4096], soft[32], hard[32], want[32];
	assert_int_equal(read_full_file("/proc/self/limits", sizeof(out), &mine, NULL), 0);
	limits_line(mine, "Max open files", soft, hard);
	snprintf(want, sizeof(want), "%llu", (unsigned long long)wide_nofile.rlim_cur);
	assert_string_equal(soft, want);

	char *const argv[] = { "/bin/cat", "/proc/self/limits", NULL };
	int status = run_capture(argv, -1, out, sizeof(out));
	assert_int_equal(setrlimit(RLIMIT_CORE, &old_core), 0);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &old_nofile), 0);
	assert_int_equal(status, 0);
	limits_line(out, "Max core file size", soft, hard);
	assert_string_equal(soft, "0");
	assert_string_equal(hard, "0");
	limits_line(out, "Max open files", soft, hard);
	snprintf(want, sizeof(want), "%d", SANDBOX_NOFILE_SOFT);
	assert_string_equal(soft, want);
	rlim_t want_hard = wide_nofile.rlim_max < SANDBOX_NOFILE_HARD ? wide_nofile.rlim_max
								      : SANDBOX_NOFILE_HARD;
	snprintf(want, sizeof(want), "%llu", (unsigned long long)want_hard);
	assert_string_equal(hard, want);

	/* The command cannot raise them again: no CAP_SYS_RESOURCE inside. */
	char *const raise_argv[] = { "/bin/sh", "-c", "ulimit -c 1 2>/dev/null || echo refused",
				     NULL };
	run_capture(raise_argv, -1, out, sizeof(out));
	assert_string_equal(out, "refused\n");
}

/* Run the python snippet in a sandbox in cgroup name with a leaf's limits; its stdout. */
static int run_in_cgroup(const char *name, const char *code, uint64_t memory_max, uint64_t pids_max,
			 char *out, size_t size)
{
	char *const argv[] = { "/usr/bin/python3", "-c", (char *)code, NULL };
	SandboxSpec spec;
	sandbox_spec_init(&spec);
	spec.argv = argv;
	spec.cgroup_name = name;
	spec.memory_max = memory_max;
	spec.pids_max = pids_max;
	return spec_capture(&spec, out, size);
}

/*
 * An environment's parent cgroup bounds the sum of its processes, even when each process's
 * own cgroup would allow more: with the parent unlimited (the positive control) the same
 * commands get what they ask for.
 */
static void test_parent_cgroup_bounds_children(void **state)
{
	if (!need_root())
		return;
	static const char fork_many[] =
		"import subprocess\n"
		"ps = []\n"
		"try:\n"
		"    for i in range(40): ps.append(subprocess.Popen(['sleep', '30']))\n"
		"    print(len(ps), 'none')\n"
		"except OSError as e:\n"
		"    print(len(ps), e.errno)\n"
		"for p in ps: p.kill()\n";
	static const char allocate[] = "b = bytearray(192 << 20)\n"
				       "for i in range(0, len(b), 4096): b[i] = 1\n"
				       "print('allocated')\n";
	char parent_name[64], leaf[96], out[256];
	snprintf(parent_name, sizeof(parent_name), "test-parent-%d", (int)getpid());
	snprintf(leaf, sizeof(leaf), "%s/leaf", parent_name);
	BbxError err = BBX_ERROR_INIT;
	SandboxCgroup *parent = NULL;

	/* Positive control: no limit on the parent, generous leaves. */
	SandboxCgroupLimits none = { 0 };
	int r = sandbox_cgroup_create_parent("/sys/fs/cgroup", parent_name, &none, &parent, &err);
	if (r < 0)
		fail_msg("parent: %s", bbx_error_message(&err, r));
	assert_int_equal(run_in_cgroup(leaf, fork_many, 0, 100, out, sizeof(out)), 0);
	assert_string_equal(out, "40 none\n");
	assert_int_equal(run_in_cgroup(leaf, allocate, 512ULL << 20, 0, out, sizeof(out)), 0);
	assert_string_equal(out, "allocated\n");
	sandbox_cgroup_free(parent);
	parent = NULL;

	/* The parent's limits now: 12 processes, 96 MiB, below each leaf's own. */
	SandboxCgroupLimits sum = { .memory_max = 96ULL << 20, .pids_max = 12 };
	r = sandbox_cgroup_create_parent("/sys/fs/cgroup", parent_name, &sum, &parent, &err);
	if (r < 0)
		fail_msg("parent: %s", bbx_error_message(&err, r));
	assert_int_equal(run_in_cgroup(leaf, fork_many, 0, 100, out, sizeof(out)), 0);
	unsigned started = 0;
	int error = 0;
	assert_int_equal(sscanf(out, "%u %d", &started, &error), 2);
	assert_true(started < 12); /* init and python count too */
	assert_int_equal(error, EAGAIN);
	/* Over the parent's memory: killed by the OOM killer inside it, never "allocated". */
	assert_int_equal(run_in_cgroup(leaf, allocate, 512ULL << 20, 0, out, sizeof(out)),
			 128 + SIGKILL);
	assert_string_equal(out, "");
	assert_int_equal(sandbox_cgroup_remove(parent, NULL), 0);
	sandbox_cgroup_free(parent);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_concurrent_spawns_from_threads),
		cmocka_unit_test(test_shared_netns),
		cmocka_unit_test(test_kill_whole_tree_and_freeze),
		cmocka_unit_test(test_free_kills_running_sandbox),
		cmocka_unit_test(test_setup_failure_reports_step),
		cmocka_unit_test(test_real_cgroup2_mount),
		cmocka_unit_test(test_idmapped_bind),
		cmocka_unit_test(test_init_is_a_fresh_image),
		cmocka_unit_test(test_rlimits),
		cmocka_unit_test(test_parent_cgroup_bounds_children),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
