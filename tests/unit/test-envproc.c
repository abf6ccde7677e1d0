/* SPDX-License-Identifier: MIT */
/*
 * One-shot commands in real sandboxes: the deadline holds whatever the command does with its
 * fds and children, stdin and output flow together without deadlock, and another thread can
 * cancel a run. Each killed tree is checked on the host: a scratch directory bound at /w holds
 * a lock file whose flock the command's processes keep while they live, and the sandbox's
 * cgroup must be gone. A marker written after the lock was taken is the positive control.
 * Needs root (namespaces, cgroups); outside CI a non-root run skips with the reason.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "envproc.h"
#include "file-util.h"
#include "macro.h"
#include "sandbox-cgroup.h"

/* Generous: a regression (a hang) fails here, a loaded 2-core machine does not. */
#define PROMPT_MS 10000
#define WATCHDOG_SEC 90

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

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A host directory bound read-write at /w, and the sandbox's cgroup name. */
typedef struct Scratch {
	char dir[64];
	char lock[96];
	char marker[96];
	char cgroup[64];
	SandboxBind bind;
	EnvProcSpec spec;
} Scratch;

static void scratch_init(Scratch *s, char **argv)
{
	static unsigned counter;
	memset(s, 0, sizeof(*s));
	(void)snprintf(s->dir, sizeof(s->dir), "/tmp/bbx-envproc-XXXXXX");
	assert_non_null(mkdtemp(s->dir));
	assert_int_equal(chmod(s->dir, 0777), 0); /* the sandbox runs as an unprivileged uid */
	(void)snprintf(s->lock, sizeof(s->lock), "%s/lock", s->dir);
	(void)snprintf(s->marker, sizeof(s->marker), "%s/locked", s->dir);
	(void)snprintf(s->cgroup, sizeof(s->cgroup), "test-envproc-%d-%u", (int)getpid(),
		       counter++);
	s->bind = (SandboxBind){ .source = s->dir, .target = "/w" };
	s->spec = (EnvProcSpec){
		.name = "test",
		.cgroup_name = s->cgroup,
		.argv = argv,
		.rw = &s->bind,
		.n_rw = 1,
		.pids_max = 64,
		.netns_fd = -1,
	};
}

static void scratch_done(Scratch *s)
{
	(void)rm_rf(s->dir);
}

/* True when no process holds the lock file's flock (every holder is dead). */
static bool lock_is_free(const Scratch *s)
{
	int fd = open(s->lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	assert_true(fd >= 0);
	bool free_now = flock(fd, LOCK_EX | LOCK_NB) == 0;
	close(fd);
	return free_now;
}

static bool cgroup_exists(const Scratch *s)
{
	SandboxCgroup *cg = NULL;
	int r = sandbox_cgroup_open("/sys/fs/cgroup", s->cgroup, &cg, NULL);
	sandbox_cgroup_free(cg);
	return r >= 0;
}

static bool cgroup_has_processes(const Scratch *s)
{
	SandboxCgroup *cg = NULL;
	if (sandbox_cgroup_open("/sys/fs/cgroup", s->cgroup, &cg, NULL) < 0)
		return false;
	bool busy = !sandbox_cgroup_is_empty(cg);
	sandbox_cgroup_free(cg);
	return busy;
}

/* The command took the lock (positive control), and nothing of it lives on. */
static void assert_tree_gone(const Scratch *s)
{
	assert_int_equal(access(s->marker, F_OK), 0);
	assert_true(lock_is_free(s));
	assert_false(cgroup_exists(s));
}

static int run(Scratch *s, const EnvOneshotOptions *opts, OneshotResult *res, BbxError *err,
	       uint64_t *ret_elapsed_ms)
{
	uint64_t t0 = now_ms();
	int r = envproc_run_oneshot_with(&s->spec, opts, res, err);
	*ret_elapsed_ms = now_ms() - t0;
	if (r < 0 && r != -ECANCELED)
		fail_msg("one-shot: %s", bbx_error_message(err, r));
	return r;
}

/*
 * Run argv once in a fresh scratch sandbox with a deadline of timeout_ms (and stdin, when
 * given), for the caller to check *res (and free it). locked: the command takes /w/lock, and
 * nothing of it may live on afterwards (assert_tree_gone); otherwise its cgroup must be gone.
 * Returns how long the run took.
 */
static uint64_t run_scratch(char **argv, uint64_t timeout_ms, const char *stdin_data,
			    size_t stdin_len, bool locked, OneshotResult *res)
{
	Scratch s;
	scratch_init(&s, argv);
	EnvOneshotOptions opts;
	envproc_oneshot_options_init(&opts);
	opts.timeout_ms = timeout_ms;
	opts.stdin_data = stdin_data;
	opts.stdin_len = stdin_len;
	BbxError err = BBX_ERROR_INIT;
	uint64_t elapsed;
	assert_int_equal(run(&s, &opts, res, &err, &elapsed), 0);
	if (locked)
		assert_tree_gone(&s);
	else
		assert_false(cgroup_exists(&s));
	scratch_done(&s);
	return elapsed;
}

/* A command that would run for ever, cut at a 2 s deadline: promptly, with status 124, and
 * nothing of it left. */
static void run_cut_at_deadline(char **argv, OneshotResult *res)
{
	uint64_t elapsed = run_scratch(argv, 2000, NULL, 0, true, res);
	assert_true(res->timed_out);
	assert_int_equal(res->exit_status, 124);
	assert_true(res->duration_ms >= 2000);
	assert_true(elapsed < 2000 + PROMPT_MS);
}

/* The existing entry point still works: stdin as a string, a timeout in seconds, the status. */
static void test_string_stdin_and_exit_status(void **state)
{
	if (!need_root())
		return;
	char *argv[] = { "/bin/sh", "-c", "cat; echo err >&2; exit 7", NULL };
	Scratch s;
	scratch_init(&s, argv);
	OneshotResult res;
	BbxError err = BBX_ERROR_INIT;
	int r = envproc_run_oneshot(&s.spec, "hello\n", 30, &res, &err);
	if (r < 0)
		fail_msg("one-shot: %s", bbx_error_message(&err, r));
	assert_int_equal(res.exit_status, 7);
	assert_false(res.timed_out);
	assert_string_equal(res.output, "hello\nerr\n");
	assert_int_equal(res.output_total, 10);
	assert_false(cgroup_exists(&s));
	oneshot_result_done(&res);
	scratch_done(&s);
}

/* Closing stdout and stderr must not end the wait, nor let the command outlive the deadline. */
static void test_closed_output_then_sleep_times_out(void **state)
{
	if (!need_root())
		return;
	char *argv[] = { "/bin/sh", "-c",
			 "exec 9>/w/lock; flock -x 9; echo started; touch /w/locked; "
			 "exec >&- 2>&-; exec sleep 100000",
			 NULL };
	OneshotResult res;
	run_cut_at_deadline(argv, &res);
	assert_string_equal(res.output, "started\n");
	oneshot_result_done(&res);
}

/*
 * The command is its main process: when it exits, the run is over with its status, even though
 * a child it left behind still holds the output pipe; that child dies with the tree.
 */
static void test_parent_exit_ends_run_and_kills_children(void **state)
{
	if (!need_root())
		return;
	char *argv[] = { "/bin/sh", "-c",
			 "(exec 9>/w/lock; flock -x 9; touch /w/locked; exec sleep 100000) & "
			 "while [ ! -e /w/locked ]; do sleep 0.05; done; echo parent-done; exit 3",
			 NULL };
	OneshotResult res;
	/* The deadline far away: returning long before it shows that the exit ended the run. */
	uint64_t elapsed = run_scratch(argv, 120000ULL, NULL, 0, true, &res);
	assert_false(res.timed_out);
	assert_int_equal(res.exit_status, 3);
	assert_string_equal(res.output, "parent-done\n");
	assert_true(elapsed < PROMPT_MS);
	oneshot_result_done(&res);
}

/* SIGTERM ignored by the command and its children changes nothing. */
static void test_sigterm_ignored_still_killed(void **state)
{
	if (!need_root())
		return;
	char *argv[] = { "/bin/sh", "-c",
			 "exec 9>/w/lock; flock -x 9; touch /w/locked; trap '' TERM; "
			 "kill -TERM $$; echo survived; while :; do sleep 1; done",
			 NULL };
	OneshotResult res;
	run_cut_at_deadline(argv, &res);
	/* Positive control: the shell really survived its own SIGTERM. */
	assert_string_equal(res.output, "survived\n");
	oneshot_result_done(&res);
}

/* Output that never stops: drained all along, bounded to the tail, cut at the deadline. */
static void test_output_flood_bounded_and_cut(void **state)
{
	if (!need_root())
		return;
	char *argv[] = { "/bin/sh", "-c",
			 "exec 9>/w/lock; flock -x 9; touch /w/locked; "
			 "while :; do echo flood-line; done",
			 NULL };
	OneshotResult res;
	run_cut_at_deadline(argv, &res);
	assert_true(res.output_total > ENVPROC_CAPTURE_MAX);
	assert_int_equal(res.output_len, ENVPROC_CAPTURE_MAX);
	assert_int_equal(strlen(res.output), ENVPROC_CAPTURE_MAX);
	assert_non_null(strstr(res.output, "flood-line\nflood-line\n"));
	oneshot_result_done(&res);
}

/* 1 MiB through `cat`: stdin is written as cat reads while its output is drained. */
static void test_large_stdin_and_output_no_deadlock(void **state)
{
	if (!need_root())
		return;
	/* Positive control: the input is far larger than what a pipe buffers. */
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	int pipe_size = fcntl(p[1], F_GETPIPE_SZ);
	close(p[0]);
	close(p[1]);
	const size_t size = 1u << 20;
	assert_true(pipe_size > 0 && (size_t)pipe_size * 4 <= size);

	char *data = malloc(size);
	assert_non_null(data);
	for (size_t i = 0; i < size / 16; i++) {
		char line[17];
		(void)snprintf(line, sizeof(line), "%015zu\n", i);
		memcpy(data + i * 16, line, 16);
	}
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[65];
	crypto_hash_sha256(h, (const unsigned char *)data, size);
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));

	char *argv[] = { "/bin/cat", NULL };
	OneshotResult res;
	uint64_t elapsed = run_scratch(argv, 120000ULL, data, size, false, &res);
	assert_false(res.timed_out);
	assert_int_equal(res.exit_status, 0);
	assert_int_equal(res.output_total, size);
	assert_int_equal(res.output_len, ENVPROC_CAPTURE_MAX);
	assert_memory_equal(res.output, data + size - ENVPROC_CAPTURE_MAX, ENVPROC_CAPTURE_MAX);
	assert_string_equal(res.output_sha256, hex);
	assert_true(elapsed < PROMPT_MS);
	oneshot_result_done(&res);
	free(data);
}

static volatile sig_atomic_t sigpipes;

static void count_sigpipe(int sig)
{
	sigpipes++;
}

/* A command that stops reading its stdin: the rest is dropped, no SIGPIPE reaches us. */
static void test_stdin_closed_early_is_fine(void **state)
{
	if (!need_root())
		return;
	struct sigaction sa = { .sa_handler = count_sigpipe }, old;
	assert_int_equal(sigaction(SIGPIPE, &sa, &old), 0);
	/* Positive control: a write to a pipe without a reader is counted here. */
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	close(p[0]);
	assert_int_equal(write(p[1], "x", 1), -1);
	assert_int_equal(errno, EPIPE);
	close(p[1]);
	assert_int_equal(sigpipes, 1);
	sigpipes = 0;

	const size_t size = 1u << 20;
	char *data = malloc(size);
	assert_non_null(data);
	memset(data, 'i', size);
	char *argv[] = { "/bin/sh", "-c", "exec 0<&-; sleep 0.5; echo closed-stdin", NULL };
	OneshotResult res;
	uint64_t elapsed = run_scratch(argv, 120000ULL, data, size, false, &res);
	assert_false(res.timed_out);
	assert_int_equal(res.exit_status, 0);
	assert_string_equal(res.output, "closed-stdin\n");
	assert_int_equal(sigpipes, 0);
	assert_true(elapsed < PROMPT_MS);
	oneshot_result_done(&res);
	free(data);
	assert_int_equal(sigaction(SIGPIPE, &old, NULL), 0);
}

typedef struct Canceller {
	const Scratch *scratch;
	int fd;
	bool saw_lock;	 /* the command took its lock before the cancel */
	bool saw_cgroup; /* and had processes in its cgroup */
	uint64_t fired_at;
} Canceller;

static void *cancel_when_running(void *userdata)
{
	Canceller *c = userdata;
	uint64_t give_up = now_ms() + 60000ULL;
	while (now_ms() < give_up && access(c->scratch->marker, F_OK) < 0)
		usleep(20 * 1000);
	c->saw_lock = access(c->scratch->marker, F_OK) == 0 && !lock_is_free(c->scratch);
	c->saw_cgroup = cgroup_has_processes(c->scratch);
	c->fired_at = now_ms();
	(void)eventfd_write(c->fd, 1);
	return NULL;
}

/* Cancel from another thread, with no deadline at all: the tree dies and -ECANCELED returns. */
static void test_cancel_from_another_thread(void **state)
{
	if (!need_root())
		return;
	char *argv[] = { "/bin/sh", "-c",
			 "exec 9>/w/lock; flock -x 9; touch /w/locked; echo running; sleep 100000; "
			 "echo not-reached",
			 NULL };
	Scratch s;
	scratch_init(&s, argv);
	int cfd = eventfd(0, EFD_CLOEXEC);
	assert_true(cfd >= 0);
	Canceller c = { .scratch = &s, .fd = cfd };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_when_running, &c), 0);

	EnvOneshotOptions opts;
	envproc_oneshot_options_init(&opts);
	opts.cancel_fd = cfd;
	OneshotResult res;
	BbxError err = BBX_ERROR_INIT;
	uint64_t elapsed;
	assert_int_equal(run(&s, &opts, &res, &err, &elapsed), -ECANCELED);
	uint64_t returned_at = now_ms();
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(c.saw_lock);
	assert_true(c.saw_cgroup);
	assert_true(returned_at - c.fired_at < PROMPT_MS);
	assert_string_equal(bbx_error_kind_name(err.kind), "conflict");
	assert_non_null(strstr(err.message, "cancelled"));
	assert_null(res.output);
	assert_tree_gone(&s);

	/* A fired fd stays fired: the next run is refused before anything starts. */
	char *touch_argv[] = { "/bin/touch", "/w/ran", NULL };
	char ran[128];
	(void)snprintf(ran, sizeof(ran), "%s/ran", s.dir);
	s.spec.argv = touch_argv;
	BbxError err2 = BBX_ERROR_INIT;
	assert_int_equal(run(&s, &opts, &res, &err2, &elapsed), -ECANCELED);
	assert_int_equal(access(ran, F_OK), -1);
	/* Positive control: without the cancel fd the same command runs and leaves its file. */
	opts.cancel_fd = -1;
	BbxError err3 = BBX_ERROR_INIT;
	assert_int_equal(run(&s, &opts, &res, &err3, &elapsed), 0);
	assert_int_equal(res.exit_status, 0);
	assert_int_equal(access(ran, F_OK), 0);
	oneshot_result_done(&res);
	close(cfd);
	scratch_done(&s);
}

/* The caller's own cancel fd (one request's) ends the run like the environment's does, while
 * the environment's stays unfired. */
static void test_call_cancel_fd(void **state)
{
	if (!need_root())
		return;
	char *argv[] = { "/bin/sh", "-c",
			 "exec 9>/w/lock; flock -x 9; touch /w/locked; echo running; sleep 100000",
			 NULL };
	Scratch s;
	scratch_init(&s, argv);
	int env_fd = eventfd(0, EFD_CLOEXEC), call_fd = eventfd(0, EFD_CLOEXEC);
	assert_true(env_fd >= 0 && call_fd >= 0);
	Canceller c = { .scratch = &s, .fd = call_fd };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, cancel_when_running, &c), 0);

	EnvOneshotOptions opts;
	envproc_oneshot_options_init(&opts);
	opts.cancel_fd = env_fd;
	opts.call_cancel_fd = call_fd;
	opts.separate_streams = true;
	OneshotResult res;
	BbxError err = BBX_ERROR_INIT;
	uint64_t elapsed;
	assert_int_equal(run(&s, &opts, &res, &err, &elapsed), -ECANCELED);
	uint64_t returned_at = now_ms();
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(c.saw_lock);
	assert_true(returned_at - c.fired_at < PROMPT_MS);
	assert_null(res.stdout_tail);
	assert_tree_gone(&s);
	close(env_fd);
	close(call_fd);
	scratch_done(&s);
}

/* With separate_streams each stream is captured apart (bounded, with its own total) and both
 * together; without, one pipe carries both and there is nothing apart. */
static void test_separate_streams(void **state)
{
	if (!need_root())
		return;
	char *argv[] = { "/bin/sh", "-c",
			 "echo out1; echo err1 >&2; echo out2; "
			 "i=0; while [ $i -lt 9000 ]; do echo eeeeeeeee; i=$((i+1)); done >&2; "
			 "echo err-last >&2; exit 3",
			 NULL };
	Scratch s;
	scratch_init(&s, argv);
	EnvOneshotOptions opts;
	envproc_oneshot_options_init(&opts);
	opts.timeout_ms = 30000;
	opts.separate_streams = true;
	OneshotResult res;
	BbxError err = BBX_ERROR_INIT;
	uint64_t elapsed;
	assert_int_equal(run(&s, &opts, &res, &err, &elapsed), 0);
	assert_int_equal(res.exit_status, 3);
	assert_string_equal(res.stdout_tail, "out1\nout2\n");
	assert_int_equal(res.stdout_len, 10);
	assert_int_equal(res.stdout_total, 10);
	/* stderr: 5 + 90000 + 9 bytes, the last ENVPROC_CAPTURE_MAX of them kept. */
	assert_int_equal(res.stderr_total, 5 + 9000 * 10 + 9);
	assert_int_equal(res.stderr_len, ENVPROC_CAPTURE_MAX);
	assert_int_equal(strlen(res.stderr_tail), ENVPROC_CAPTURE_MAX);
	assert_non_null(strstr(res.stderr_tail, "eeeeeeeee\nerr-last\n"));
	assert_null(strstr(res.stderr_tail, "out"));
	assert_int_equal(res.output_total, res.stdout_total + res.stderr_total);
	oneshot_result_done(&res);

	opts.separate_streams = false;
	assert_int_equal(run(&s, &opts, &res, &err, &elapsed), 0);
	assert_null(res.stdout_tail);
	assert_null(res.stderr_tail);
	assert_int_equal(res.output_total, 10 + 5 + 9000 * 10 + 9);
	oneshot_result_done(&res);
	scratch_done(&s);
}

/* A hang fails the test instead of stalling the suite. */
static int arm_watchdog(void **state)
{
	alarm(WATCHDOG_SEC);
	return 0;
}

/* The command's own CPU ceiling as the kernel holds it: -1 none, else thousandths of a CPU;
 * -2 while its cgroup does not exist. */
static long cgroup_cpu_millis(const Scratch *s)
{
	SandboxCgroup *cg = NULL;
	if (sandbox_cgroup_open("/sys/fs/cgroup", s->cgroup, &cg, NULL) < 0)
		return -2;
	char path[512], buf[64] = "";
	bool v2 = cg->mode == SANDBOX_CGROUP_V2;
	(void)snprintf(path, sizeof(path), "%s/%s", v2 ? cg->dir[0] : cg->dir[SANDBOX_CG_CPU],
		       v2 ? "cpu.max" : "cpu.cfs_quota_us");
	sandbox_cgroup_free(cg);
	FILE *f = fopen(path, "re");
	if (!f)
		return -2;
	bool ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!ok)
		return -2;
	if (!strncmp(buf, "max", 3) || buf[0] == '-')
		return -1;
	return strtol(buf, NULL, 10) / 100; /* a period of 100000 us */
}

typedef struct CpuSampler {
	const Scratch *scratch;
	atomic_bool stop;
	bool saw_none, saw_share;
	long share;
} CpuSampler;

static void *sample_cpu(void *userdata)
{
	CpuSampler *c = userdata;
	while (!atomic_load(&c->stop)) {
		long v = cgroup_cpu_millis(c->scratch);
		if (v == -1)
			c->saw_none = true;
		else if (v >= 0) {
			c->saw_share = true;
			c->share = v;
		}
		usleep(20 * 1000);
	}
	return NULL;
}

/* A boosted one-shot runs with no CPU share of its own until the boost ends, then with its
 * own; a run whose boost is already over gets its share from the start. */
static void test_boost_ends_with_the_share(void **state)
{
	if (!need_root())
		return;
	char *argv[] = { "/bin/sleep", "1.2", NULL };
	Scratch s;
	scratch_init(&s, argv);
	s.spec.cpu_millis = 300;
	for (int round = 0; round < 2; round++) {
		CpuSampler c = { .scratch = &s };
		atomic_init(&c.stop, false);
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, sample_cpu, &c), 0);
		EnvOneshotOptions opts;
		envproc_oneshot_options_init(&opts);
		opts.boost_until_ms = round == 0 ? now_ms() + 500 : now_ms() - 1;
		OneshotResult res;
		BbxError err = BBX_ERROR_INIT;
		uint64_t elapsed;
		assert_int_equal(run(&s, &opts, &res, &err, &elapsed), 0);
		atomic_store(&c.stop, true);
		assert_int_equal(pthread_join(t, NULL), 0);
		assert_int_equal(res.exit_status, 0);
		assert_true(c.saw_share);
		assert_int_equal(c.share, 300);
		if (round == 0)
			assert_true(c.saw_none);
		else
			assert_false(c.saw_none);
		oneshot_result_done(&res);
	}
	scratch_done(&s);
}

static int disarm_watchdog(void **state)
{
	alarm(0);
	return 0;
}

#define T(f) cmocka_unit_test_setup_teardown(f, arm_watchdog, disarm_watchdog)

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
		T(test_string_stdin_and_exit_status),
		T(test_closed_output_then_sleep_times_out),
		T(test_parent_exit_ends_run_and_kills_children),
		T(test_sigterm_ignored_still_killed),
		T(test_output_flood_bounded_and_cut),
		T(test_large_stdin_and_output_no_deadlock),
		T(test_stdin_closed_early_is_fine),
		T(test_cancel_from_another_thread),
		T(test_call_cancel_fd),
		T(test_separate_streams),
		T(test_boost_ends_with_the_share),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
