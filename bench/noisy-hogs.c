/* SPDX-License-Identifier: MIT */
/*
 * The misbehaving neighbour of bench/noisy.py: run inside a preview by `branchbox env exec`.
 *
 *   noisy-hogs SECONDS DIR
 *
 * Starts one CPU burner per CPU, a memory hog, a disk filler writing into DIR and a fork bomb.
 * The bomb runs alone first, until fork fails (or 20 s), because once it holds every pid the
 * others could not be started; they are forked beforehand and wait. Then DIR/.bench-ready is
 * created. A hog that is killed (by the OOM killer, say) is started again at once.
 * Everything stops when DIR/.bench-stop appears or after SECONDS; the supervisor then kills
 * whatever is left in the sandbox's pid namespace and prints one JSON line:
 *   {"reports": [...one per hog that ended by itself...], "restarts": {...},
 *    "spawn_failures": N, "left_behind": N, "bomb_ramp_s": S}
 * Built static on the host (bench/noisy.py does it), so it needs nothing in the sandbox.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024L * 1024L)
#define MEMORY_CAP_MIB 2048 /* what the memory hog holds at most before it starts over */
#define DISK_FILE_MIB 256
#define DISK_FILES_KEPT 4     /* at most 1 GiB of the filler's data on disk at a time */
#define BOMB_SAFETY_STOP 4096 /* far above any sandbox's pid ceiling; protects the host */
#define BALLAST_MIB 4
#define MAX_HOGS 64

enum hog_kind { HOG_CPU, HOG_MEMORY, HOG_DISK, HOG_BOMB };
static const char *const hog_name[] = { "cpu", "memory", "disk", "bomb" };

static double deadline;
static char stop_path[4096], ready_path[4096];
static const char *dir;
static int report_fd = -1, go_fd = -1, go_write_fd = -1, ceiling_fd = -1;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int stopped(void)
{
	return now() > deadline || access(stop_path, F_OK) == 0;
}

static void report(const char *line)
{
	/* One write below PIPE_BUF: lines from several hogs never mix. */
	if (write(report_fd, line, strlen(line)) < 0)
		_exit(1);
}

static void cpu_hog(void)
{
	unsigned long loops = 0;
	volatile unsigned long x = 0;
	char line[128];

	while (!stopped()) {
		for (unsigned long i = 0; i < 2000000; i++)
			x += i;
		loops++;
	}
	snprintf(line, sizeof(line), "{\"kind\": \"cpu\", \"loops\": %lu}\n", loops);
	report(line);
}

static void memory_hog(void)
{
	static char *chunks[MEMORY_CAP_MIB / 16];
	size_t n = 0, peak = 0, rounds = 0;
	char line[128];

	while (!stopped()) {
		if (n < MEMORY_CAP_MIB / 16) {
			char *c = malloc(16 * MIB);
			if (c) {
				memset(c, 0xa5, 16 * MIB);
				chunks[n++] = c;
			}
			if (n * 16 > peak)
				peak = n * 16;
			if (c)
				continue;
		}
		while (n > 0)
			free(chunks[--n]);
		rounds++;
	}
	snprintf(line, sizeof(line), "{\"kind\": \"memory\", \"peak_mib\": %zu, \"rounds\": %zu}\n",
		 peak, rounds);
	report(line);
}

static void disk_hog(void)
{
	static char block[MIB];
	char path[4200], line[512], errs[256] = "";
	long written = 0, file = 0;
	int n_err = 0, last_err = 0;

	for (size_t i = 0; i < sizeof(block); i++)
		block[i] = (char)(i * 2654435761u >> 13);
	while (!stopped()) {
		snprintf(path, sizeof(path), "%s/fill-%ld", dir, file);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd < 0) {
			n_err++, last_err = errno;
			usleep(10000);
		} else {
			for (int i = 0; i < DISK_FILE_MIB && !stopped(); i++) {
				if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block)) {
					n_err++, last_err = errno;
					usleep(10000);
					break;
				}
				written++;
				if (i % 32 == 31 && fsync(fd) < 0)
					n_err++, last_err = errno;
			}
			close(fd);
		}
		if (file >= DISK_FILES_KEPT) {
			snprintf(path, sizeof(path), "%s/fill-%ld", dir, file - DISK_FILES_KEPT);
			unlink(path);
		}
		file++;
	}
	for (long f = file > DISK_FILES_KEPT ? file - DISK_FILES_KEPT : 0; f < file; f++) {
		snprintf(path, sizeof(path), "%s/fill-%ld", dir, f);
		unlink(path);
	}
	if (n_err)
		snprintf(errs, sizeof(errs), "\"%s\": %d", strerrorname_np(last_err), n_err);
	snprintf(line, sizeof(line),
		 "{\"kind\": \"disk\", \"written_mib\": %ld, \"errors\": {%s}}\n", written, errs);
	report(line);
}

static void bomb_hog(void)
{
	int counts[256] = { 0 };
	long forked = 0, first_fail = -1;
	char line[1024], errs[768] = "";
	size_t off = 0;

	static pid_t kids[BOMB_SAFETY_STOP];

	while (!stopped()) {
		if (forked >= BOMB_SAFETY_STOP) {
			usleep(10000);
			continue;
		}
		pid_t pid = fork();
		if (pid < 0) {
			counts[errno & 255]++;
			if (first_fail < 0) {
				first_fail = forked;
				if (write(ceiling_fd, "x", 1) < 0)
					break;
			}
			usleep(1000);
			continue;
		}
		if (pid == 0) {
			for (;;)
				pause();
		}
		kids[forked++] = pid;
	}
	for (int e = 0; e < 256; e++)
		if (counts[e] && off < sizeof(errs) - 64)
			off += (size_t)snprintf(errs + off, sizeof(errs) - off, "%s\"%s\": %d",
						off ? ", " : "", strerrorname_np(e), counts[e]);
	snprintf(line, sizeof(line),
		 "{\"kind\": \"bomb\", \"forked\": %ld, \"fork_failed_at\": %ld, "
		 "\"fork_failures\": {%s}}\n",
		 forked, first_fail, errs);
	report(line);
	for (long i = 0; i < forked; i++)
		kill(kids[i], SIGKILL);
}

static pid_t spawn(enum hog_kind kind, int wait_for_go)
{
	pid_t pid = fork();
	if (pid != 0)
		return pid;
	/* Each hog is bigger than the supervisor, so the OOM killer takes a hog first and the
	 * supervisor survives to report (a sandbox may not raise its own oom_score_adj). */
	char *ballast = malloc(BALLAST_MIB * MIB);
	if (ballast)
		memset(ballast, 0x5a, BALLAST_MIB * MIB);
	if (go_write_fd >= 0)
		close(go_write_fd);
	if (wait_for_go) {
		char c;
		while (read(go_fd, &c, 1) < 0 && errno == EINTR)
			;
	}
	switch (kind) {
	case HOG_CPU: cpu_hog(); break;
	case HOG_MEMORY: memory_hog(); break;
	case HOG_DISK: disk_hog(); break;
	case HOG_BOMB: bomb_hog(); break;
	}
	_exit(0);
}

static struct {
	pid_t pid;
	enum hog_kind kind;
} hogs[MAX_HOGS];
static int n_hogs, killed[4], restarts[4], pending[4], spawn_failures;

static void start(enum hog_kind kind, int wait_for_go)
{
	pid_t pid = spawn(kind, wait_for_go);
	if (pid < 0) {
		/* No pid to be had (the bomb holds them): try again on the next tick. */
		spawn_failures++;
		pending[kind]++;
		return;
	}
	if (n_hogs < MAX_HOGS)
		hogs[n_hogs].pid = pid, hogs[n_hogs++].kind = kind;
}

static int forget(pid_t pid, enum hog_kind *ret_kind)
{
	for (int i = 0; i < n_hogs; i++)
		if (hogs[i].pid == pid) {
			*ret_kind = hogs[i].kind;
			hogs[i] = hogs[--n_hogs];
			return 1;
		}
	return 0;
}

int main(int argc, char **argv)
{
	int report_pipe[2], go_pipe[2], ceiling_pipe[2];
	sigset_t chld;

	if (argc != 3) {
		fprintf(stderr, "usage: noisy-hogs SECONDS DIR\n");
		return 2;
	}
	deadline = now() + atof(argv[1]);
	dir = argv[2];
	snprintf(stop_path, sizeof(stop_path), "%s/.bench-stop", dir);
	snprintf(ready_path, sizeof(ready_path), "%s/.bench-ready", dir);
	if (pipe2(report_pipe, O_CLOEXEC) < 0 || pipe2(go_pipe, O_CLOEXEC) < 0 ||
	    pipe2(ceiling_pipe, O_CLOEXEC) < 0) {
		perror("pipe");
		return 1;
	}
	report_fd = report_pipe[1], go_fd = go_pipe[0], go_write_fd = go_pipe[1];
	ceiling_fd = ceiling_pipe[1];
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);

	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	for (long i = 0; i < (ncpu > 0 ? ncpu : 1); i++)
		start(HOG_CPU, 1);
	start(HOG_MEMORY, 1);
	start(HOG_DISK, 1);
	double t0 = now();
	start(HOG_BOMB, 0);
	struct pollfd pfd = { .fd = ceiling_pipe[0], .events = POLLIN };
	poll(&pfd, 1, 20000);
	double bomb_ramp = now() - t0;
	close(go_pipe[1]);
	close(go_pipe[0]);
	go_write_fd = -1;

	double ready_at = now() + 1;
	while (!stopped()) {
		if (ready_at > 0 && now() > ready_at) {
			int fd = open(ready_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
			if (fd >= 0)
				close(fd);
			ready_at = 0;
		}
		struct timespec tick = { 0, 50 * 1000 * 1000 };
		sigtimedwait(&chld, NULL, &tick);
		pid_t pid;
		int status;
		enum hog_kind kind;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			/* Started again at once: the bomb is waiting for any pid freed. */
			if (forget(pid, &kind) &&
			    (killed[kind] += WIFSIGNALED(status), !stopped())) {
				restarts[kind]++;
				start(kind, 0);
			}
		for (int k = 0; k < 4; k++)
			for (int n = pending[k]; n > 0 && !stopped(); n--) {
				pending[k]--;
				start((enum hog_kind)k, 0);
			}
	}
	/* The hogs see the stop themselves; give them 10 s to report. */
	double give_up = now() + 10;
	while (n_hogs > 0 && now() < give_up) {
		struct timespec tick = { 0, 50 * 1000 * 1000 };
		sigtimedwait(&chld, NULL, &tick);
		pid_t pid;
		int status;
		enum hog_kind kind;
		while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
			if (forget(pid, &kind))
				killed[kind] += WIFSIGNALED(status);
	}
	int left_behind = n_hogs;
	/* Whatever is left in this pid namespace (orphans of killed hogs too) ends here. */
	DIR *proc = opendir("/proc");
	struct dirent *de;
	while (proc && (de = readdir(proc))) {
		pid_t p = (pid_t)atoi(de->d_name);
		if (p > 1 && p != getpid())
			kill(p, SIGKILL);
	}
	if (proc)
		closedir(proc);
	while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
		;

	static char buf[65536];
	close(report_pipe[1]);
	fcntl(report_pipe[0], F_SETFL, O_NONBLOCK);
	ssize_t k = read(report_pipe[0], buf, sizeof(buf) - 1);
	buf[k > 0 ? k : 0] = 0;
	printf("{\"reports\": [");
	int first = 1;
	for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n"), first = 0)
		printf("%s%s", first ? "" : ", ", line);
	printf("], \"restarts\": {");
	first = 1;
	for (int i = 0; i < 4; i++)
		if (restarts[i]) {
			printf("%s\"%s\": %d", first ? "" : ", ", hog_name[i], restarts[i]);
			first = 0;
		}
	printf("}, \"killed\": {");
	first = 1;
	for (int i = 0; i < 4; i++)
		if (killed[i]) {
			printf("%s\"%s\": %d", first ? "" : ", ", hog_name[i], killed[i]);
			first = 0;
		}
	printf("}, \"spawn_failures\": %d, \"left_behind\": %d, \"bomb_ramp_s\": %.2f}\n",
	       spawn_failures, left_behind, bomb_ramp);
	return 0;
}
