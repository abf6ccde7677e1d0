/* SPDX-License-Identifier: MIT */
#include "envproc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "file-util.h"
#include "macro.h"
#include "time-util.h"

#define RESTART_WINDOW_SEC 300
#define RESTART_MAX 8

/* A deep copy of an EnvProcSpec, so the caller's strings may go away. */
typedef struct SpecCopy {
	EnvProcSpec spec;
	char **strings; /* everything allocated, freed together */
	size_t n_strings;
} SpecCopy;

struct EnvProc {
	SpecCopy copy;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	Sandbox *sb; /* current instance, under lock */
	EnvProcState state;
	unsigned restarts;
	bool stopping;
	int wake[2]; /* pipe: stop requests interrupt the backoff sleep */
};

static char *keep(SpecCopy *c, const char *s)
{
	if (!s)
		return NULL;
	char **v = realloc(c->strings, (c->n_strings + 1) * sizeof(char *));
	if (!v)
		return NULL;
	c->strings = v;
	char *d = strdup(s);
	if (d)
		c->strings[c->n_strings++] = d;
	return d;
}

static void *keep_mem(SpecCopy *c, size_t size)
{
	char **v = realloc(c->strings, (c->n_strings + 1) * sizeof(char *));
	if (!v)
		return NULL;
	c->strings = v;
	void *d = calloc(1, size ? size : 1);
	if (d)
		c->strings[c->n_strings++] = d;
	return d;
}

static void spec_copy_done(SpecCopy *c)
{
	SandboxBind *lists[] = { c->spec.rw, c->spec.ro };
	size_t counts[] = { c->spec.n_rw, c->spec.n_ro };
	for (size_t l = 0; l < ELEMENTSOF(lists); l++)
		for (size_t i = 0; lists[l] && i < counts[l]; i++)
			if (lists[l][i].source_fd > 0)
				close(lists[l][i].source_fd);
	for (size_t i = 0; i < c->n_strings; i++)
		free(c->strings[i]);
	free(c->strings);
	memset(c, 0, sizeof(*c));
}

static char **keep_strv(SpecCopy *c, char **v)
{
	size_t n = 0;
	if (!v)
		return NULL;
	while (v[n])
		n++;
	char **d = keep_mem(c, (n + 1) * sizeof(char *));
	if (!d)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(d[i] = keep(c, v[i])))
			return NULL;
	return d;
}

static SandboxBind *keep_binds(SpecCopy *c, const SandboxBind *b, size_t n)
{
	if (!n)
		return NULL;
	SandboxBind *d = keep_mem(c, n * sizeof(*d));
	if (!d)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		d[i].source = keep(c, b[i].source);
		d[i].target = keep(c, b[i].target);
		d[i].idmapped = b[i].idmapped;
		if (!d[i].source || !d[i].target)
			return NULL;
		/* A supervised process is restarted from this copy: it keeps its own fd. */
		if (b[i].source_fd > 0 &&
		    (d[i].source_fd = fcntl(b[i].source_fd, F_DUPFD_CLOEXEC, 3)) < 0) {
			for (size_t k = 0; k < i; k++)
				if (d[k].source_fd > 0)
					close(d[k].source_fd);
			return NULL;
		}
	}
	return d;
}

static int spec_copy(SpecCopy *c, const EnvProcSpec *s)
{
	c->spec = *s;
	c->spec.name = keep(c, s->name);
	c->spec.cgroup_name = keep(c, s->cgroup_name);
	c->spec.argv = keep_strv(c, s->argv);
	c->spec.envp = s->envp ? keep_strv(c, s->envp) : NULL;
	c->spec.workdir = s->workdir ? keep(c, s->workdir) : NULL;
	c->spec.rw = keep_binds(c, s->rw, s->n_rw);
	c->spec.ro = keep_binds(c, s->ro, s->n_ro);
	c->spec.hostname = s->hostname ? keep(c, s->hostname) : NULL;
	c->spec.hosts_extra = s->hosts_extra ? keep(c, s->hosts_extra) : NULL;
	c->spec.log_path = s->log_path ? keep(c, s->log_path) : NULL;
	if (!c->spec.name || !c->spec.argv || (s->envp && !c->spec.envp) ||
	    (s->n_rw && !c->spec.rw) || (s->n_ro && !c->spec.ro))
		return -ENOMEM;
	return 0;
}

static void to_sandbox_spec(const EnvProcSpec *s, SandboxSpec *sp)
{
	sandbox_spec_init(sp);
	sp->argv = s->argv;
	sp->env = s->envp;
	sp->uid = s->uid;
	sp->gid = s->gid;
	sp->workdir = s->workdir;
	sp->rw = s->rw;
	sp->n_rw = s->n_rw;
	sp->ro = s->ro;
	sp->n_ro = s->n_ro;
	memcpy(sp->idmap, s->idmap, sizeof(sp->idmap));
	sp->n_idmap = s->n_idmap;
	sp->hostname = s->hostname;
	sp->hosts_extra = s->hosts_extra;
	sp->memory_max = s->memory_max;
	sp->pids_max = s->pids_max;
	sp->cpu_millis = s->cpu_millis;
	sp->set_oom_score_adj = true;
	sp->oom_score_adj = s->oom_score_adj;
	sp->cgroup_name = s->cgroup_name;
	sp->netns_fd = s->netns_fd;
}

/* Log file with size-bounded rotation (one previous generation kept as .1). */
typedef struct LogFile {
	const char *path;
	int fd;
	uint64_t size;
} LogFile;

static void log_open(LogFile *l)
{
	struct stat st;
	l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	l->size = l->fd >= 0 && fstat(l->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void log_write(LogFile *l, const char *data, size_t n)
{
	if (l->fd < 0)
		return;
	if (l->size + n > ENVPROC_LOG_MAX) {
		char old[4096];
		snprintf(old, sizeof(old), "%s.1", l->path);
		(void)rename(l->path, old);
		close(l->fd);
		log_open(l);
		if (l->fd < 0)
			return;
	}
	if (write_all(l->fd, data, n) == 0)
		l->size += n;
}

static void log_note(LogFile *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_note(LogFile *l, const char *fmt, ...)
{
	char line[512], ts[32];
	struct timespec now;
	struct tm tm;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	int n = snprintf(line, sizeof(line), "[branchbox %s] ", ts);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if ((size_t)n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	log_write(l, line, (size_t)n);
}

static void set_state(EnvProc *p, EnvProcState s)
{
	pthread_mutex_lock(&p->lock);
	p->state = s;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static bool is_stopping(EnvProc *p)
{
	pthread_mutex_lock(&p->lock);
	bool s = p->stopping;
	pthread_mutex_unlock(&p->lock);
	return s;
}

static void *supervise(void *userdata)
{
	EnvProc *p = userdata;
	const EnvProcSpec *s = &p->copy.spec;
	LogFile log = { .path = s->log_path, .fd = -EBADF };
	uint64_t window_start = now_monotonic_ms();
	unsigned window_restarts = 0, backoff_ms = 500;

	if (log.path)
		log_open(&log);

	while (!is_stopping(p)) {
		int pipefd[2];
		if (pipe2(pipefd, O_CLOEXEC) < 0) {
			log_note(&log, "cannot create the output pipe: %s", strerror(errno));
			set_state(p, ENVPROC_FAILED);
			break;
		}
		SandboxSpec sp;
		to_sandbox_spec(s, &sp);
		pthread_mutex_lock(&p->lock);
		sp.cpu_millis = p->copy.spec.cpu_millis; /* envproc_set_cpu() may change it */
		pthread_mutex_unlock(&p->lock);
		sp.stdout_fd = pipefd[1];
		sp.stderr_fd = pipefd[1];
		BbxError err = BBX_ERROR_INIT;
		Sandbox *sb = NULL;
		int r = sandbox_spawn(&sp, &sb, &err);
		close(pipefd[1]);
		if (r < 0) {
			close(pipefd[0]);
			log_note(&log, "%s could not start: %s", s->name,
				 bbx_error_message(&err, r));
		} else {
			pthread_mutex_lock(&p->lock);
			p->sb = sb;
			if (p->copy.spec.cpu_millis != sp.cpu_millis)
				(void)sandbox_set_cpu(sb, p->copy.spec.cpu_millis, NULL);
			p->state = ENVPROC_RUNNING;
			pthread_cond_broadcast(&p->cond);
			pthread_mutex_unlock(&p->lock);
			log_note(&log, "%s started (pid %d)", s->name, (int)sandbox_pid(sb));

			/* Pump output until the pipe closes (every writer in the tree is gone). */
			char buf[16384];
			for (;;) {
				ssize_t k = read(pipefd[0], buf, sizeof(buf));
				if (k < 0 && errno == EINTR)
					continue;
				if (k <= 0)
					break;
				log_write(&log, buf, (size_t)k);
			}
			close(pipefd[0]);
			int status = 0;
			(void)sandbox_wait(sb, &status, NULL);
			pthread_mutex_lock(&p->lock);
			p->sb = NULL;
			pthread_mutex_unlock(&p->lock);
			sandbox_free(sb);
			log_note(&log, "%s exited with status %d", s->name, status);
		}
		if (is_stopping(p))
			break;

		/* Restart with backoff, bounded per window, so a crash loop ends in "failed". */
		uint64_t now = now_monotonic_ms();
		if (now - window_start > RESTART_WINDOW_SEC * 1000) {
			window_start = now;
			window_restarts = 0;
			backoff_ms = 500;
		}
		if (++window_restarts > RESTART_MAX) {
			log_note(&log, "%s restarted %u times in %u s; giving up", s->name,
				 RESTART_MAX, RESTART_WINDOW_SEC);
			set_state(p, ENVPROC_FAILED);
			break;
		}
		set_state(p, ENVPROC_BACKOFF);
		struct pollfd pfd = { .fd = p->wake[0], .events = POLLIN };
		(void)poll(&pfd, 1, (int)backoff_ms);
		if (backoff_ms < 30000)
			backoff_ms *= 2;
		pthread_mutex_lock(&p->lock);
		p->restarts++;
		pthread_mutex_unlock(&p->lock);
	}
	if (log.fd >= 0)
		close(log.fd);
	pthread_mutex_lock(&p->lock);
	if (p->state != ENVPROC_FAILED)
		p->state = ENVPROC_STOPPED;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int envproc_start(const EnvProcSpec *spec, EnvProc **ret, BbxError *err)
{
	EnvProc *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	p->wake[0] = p->wake[1] = -EBADF;
	p->state = ENVPROC_STARTING;
	if (spec_copy(&p->copy, spec) < 0 || pipe2(p->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		envproc_free(p);
		return -ENOMEM;
	}
	int r = pthread_create(&p->thread, NULL, supervise, p);
	if (r != 0) {
		envproc_free(p);
		return bbx_error_set(err, -r, BBX_INTERNAL, "%s: cannot start supervisor: %s",
				     spec->name, strerror(r));
	}
	p->thread_started = true;

	/* Wait for the first spawn to succeed or fail, so callers see setup errors. */
	pthread_mutex_lock(&p->lock);
	while (p->state == ENVPROC_STARTING)
		pthread_cond_wait(&p->cond, &p->lock);
	EnvProcState s = p->state;
	pthread_mutex_unlock(&p->lock);
	if (s != ENVPROC_RUNNING && s != ENVPROC_STOPPED) {
		/* The first spawn failed; the log says why. */
		envproc_stop(p, 0);
		envproc_free(p);
		return bbx_error_set(err, -EIO, BBX_INTERNAL,
				     "%s could not be started (see its log %s)", spec->name,
				     spec->log_path ? spec->log_path : "");
	}
	*ret = p;
	return 0;
}

void envproc_stop(EnvProc *p, int grace_ms)
{
	if (!p || !p->thread_started)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	if (p->sb)
		(void)sandbox_kill(p->sb, SIGTERM);
	pthread_mutex_unlock(&p->lock);
	(void)!write(p->wake[1], "x", 1);

	struct timespec deadline = realtime_after_ms((unsigned)grace_ms);
	pthread_mutex_lock(&p->lock);
	while (p->state != ENVPROC_STOPPED && p->state != ENVPROC_FAILED) {
		if (pthread_cond_timedwait(&p->cond, &p->lock, &deadline) == ETIMEDOUT) {
			if (p->sb)
				(void)sandbox_kill(p->sb, SIGKILL);
			/* After SIGKILL of the cgroup the pump ends promptly. */
			pthread_cond_wait(&p->cond, &p->lock);
		}
	}
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	p->thread_started = false;
}

void envproc_free(EnvProc *p)
{
	if (!p)
		return;
	envproc_stop(p, 0);
	safe_close(p->wake[0]);
	safe_close(p->wake[1]);
	spec_copy_done(&p->copy);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p);
}

EnvProcState envproc_state(EnvProc *p)
{
	pthread_mutex_lock(&p->lock);
	EnvProcState s = p->state;
	pthread_mutex_unlock(&p->lock);
	return s;
}

const char *envproc_state_to_string(EnvProcState s)
{
	switch (s) {
	case ENVPROC_STARTING: return "starting";
	case ENVPROC_RUNNING: return "running";
	case ENVPROC_BACKOFF: return "restarting";
	case ENVPROC_FAILED: return "failed";
	case ENVPROC_STOPPED: return "stopped";
	}
	return "unknown";
}

pid_t envproc_pid(EnvProc *p)
{
	pthread_mutex_lock(&p->lock);
	pid_t pid = p->sb ? sandbox_pid(p->sb) : 0;
	pthread_mutex_unlock(&p->lock);
	return pid;
}

unsigned envproc_restarts(EnvProc *p)
{
	pthread_mutex_lock(&p->lock);
	unsigned n = p->restarts;
	pthread_mutex_unlock(&p->lock);
	return n;
}

int envproc_set_cpu(EnvProc *p, uint32_t cpu_millis, BbxError *err)
{
	int r = 0;
	pthread_mutex_lock(&p->lock);
	p->copy.spec.cpu_millis = cpu_millis;
	if (p->sb)
		r = sandbox_set_cpu(p->sb, cpu_millis, err);
	pthread_mutex_unlock(&p->lock);
	return r;
}

int envproc_freeze(EnvProc *p, bool frozen, BbxError *err)
{
	int r = 0;
	pthread_mutex_lock(&p->lock);
	if (p->sb)
		r = sandbox_freeze(p->sb, frozen, err);
	pthread_mutex_unlock(&p->lock);
	return r;
}

void oneshot_result_done(OneshotResult *r)
{
	free(r->output);
	free(r->stdout_tail);
	free(r->stderr_tail);
	memset(r, 0, sizeof(*r));
}

/*
 * After SIGKILL, how long the caller waits for the sandbox's init to go before reaping moves to
 * a background thread (a task stuck in uninterruptible sleep dies only when the kernel lets it).
 */
#define KILL_WAIT_MS 2000
/*
 * Output read once the command ended. A pipe holds at most pipe-max-size (1 MiB by default for
 * an unprivileged writer) and its writers are gone; the bound matters only if one leaked.
 */
#define DRAIN_MAX (2u << 20)

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

void envproc_oneshot_options_init(EnvOneshotOptions *opts)
{
	*opts = (EnvOneshotOptions){ .cancel_fd = -EBADF, .call_cancel_fd = -EBADF };
}

/* Everything a one-shot printed: its digest and the last ENVPROC_CAPTURE_MAX bytes. */
typedef struct Capture {
	char *tail;
	size_t len;
	uint64_t total;
	crypto_hash_sha256_state hash;
} Capture;

static void capture_add(Capture *c, const char *buf, size_t n)
{
	crypto_hash_sha256_update(&c->hash, (const unsigned char *)buf, n);
	c->total += n;
	/* Reads are smaller than the capture (see capture_read), so drop from the front. */
	if (c->len + n > ENVPROC_CAPTURE_MAX) {
		size_t drop = c->len + n - ENVPROC_CAPTURE_MAX;
		memmove(c->tail, c->tail + drop, c->len - drop);
		c->len -= drop;
	}
	memcpy(c->tail + c->len, buf, n);
	c->len += n;
}

/* An output pipe (our non-blocking read end) and the capture of its stream alone, if any. */
typedef struct OutPipe {
	int fd;
	Capture *own; /* NULL: the pipe carries both streams */
} OutPipe;

/* One read from an output pipe into all (and its own capture): bytes read, 0 at EOF, -EAGAIN
 * or -errno. */
static ssize_t capture_read(Capture *all, OutPipe *p)
{
	char buf[16384];
	_Static_assert(sizeof(buf) <= ENVPROC_CAPTURE_MAX, "read buffer larger than the capture");
	ssize_t n = RETRY_EINTR(read(p->fd, buf, sizeof(buf)));
	if (n < 0)
		return -errno;
	if (n > 0) {
		capture_add(all, buf, (size_t)n);
		if (p->own)
			capture_add(p->own, buf, (size_t)n);
	}
	return n;
}

static bool fd_is_readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	return RETRY_EINTR(poll(&pfd, 1, 0)) > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR));
}

static void *reap_in_background(void *userdata)
{
	sandbox_free(userdata);
	return NULL;
}

/*
 * SIGKILL everything in the sandbox (sandbox_kill() empties its cgroup, then kills init, whose
 * exit takes its pid namespace down) and reap it. Repeated while init lingers, so nothing
 * forked between two kills survives. Bounded: past KILL_WAIT_MS a detached thread finishes the
 * reaping and *sbp is handed over to it. *sbp is NULL afterwards either way.
 */
static void kill_tree(Sandbox **sbp)
{
	Sandbox *sb = *sbp;
	uint64_t give_up = now_monotonic_ms() + KILL_WAIT_MS;

	for (;;) {
		(void)sandbox_kill(sb, SIGKILL);
		uint64_t now = now_monotonic_ms();
		if (now >= give_up)
			break;
		struct pollfd pfd = { .fd = sandbox_pidfd(sb), .events = POLLIN };
		int k = poll(&pfd, 1, (int)min_u64(give_up - now, 200));
		if (k > 0 || pfd.fd < 0) {
			(void)sandbox_wait(sb, NULL, NULL);
			*sbp = sandbox_free(sb);
			return;
		}
	}
	pthread_attr_t attr;
	pthread_t t;
	if (pthread_attr_init(&attr) == 0) {
		bool started = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) == 0 &&
			       pthread_create(&t, &attr, reap_in_background, sb) == 0;
		pthread_attr_destroy(&attr);
		if (started) {
			*sbp = NULL;
			return;
		}
	}
	*sbp = sandbox_free(sb);
}

/* Where a one-shot run ended up. */
typedef enum OneshotEnd {
	ONESHOT_EXITED,
	ONESHOT_TIMED_OUT,
	ONESHOT_CANCELLED,
	ONESHOT_BOOST_FAILED, /* its CPU share could not be set when the boost ended */
} OneshotEnd;

/*
 * The one poll loop: the sandbox's pidfd (the command's end), the output pipes (drained all
 * along, EOF only stops watching one), the stdin pipe (written as the child reads, closed when
 * done or when the child stops reading) and the two cancel fds, with the deadline as the
 * timeout. out[1].fd is -EBADF when one pipe carries both streams.
 */
static OneshotEnd oneshot_loop(Sandbox *sb, OutPipe out[2], int *in_fd, const char *data,
			       size_t len, const EnvOneshotOptions *opts, uint64_t deadline,
			       uint32_t cpu_after_boost, Capture *cap)
{
	size_t written = 0;
	OutPipe pipes[2] = { out[0], out[1] }; /* fds set to -EBADF here at their EOF only */
	uint64_t boost_until = opts->boost_until_ms;

	for (;;) {
		enum { P_EXIT, P_OUT, P_ERR, P_IN, P_CANCEL, P_CALL_CANCEL, _P_MAX };
		struct pollfd pfd[_P_MAX] = {
			[P_EXIT] = { .fd = sandbox_pidfd(sb), .events = POLLIN },
			[P_OUT] = { .fd = pipes[0].fd, .events = POLLIN },
			[P_ERR] = { .fd = pipes[1].fd, .events = POLLIN },
			[P_IN] = { .fd = *in_fd, .events = POLLOUT },
			[P_CANCEL] = { .fd = opts->cancel_fd, .events = POLLIN },
			[P_CALL_CANCEL] = { .fd = opts->call_cancel_fd, .events = POLLIN },
		};
		int wait_ms = -1;
		uint64_t now = now_monotonic_ms();
		if (boost_until && now >= boost_until) {
			if (sandbox_set_cpu(sb, cpu_after_boost, NULL) < 0)
				return ONESHOT_BOOST_FAILED;
			boost_until = 0;
		}
		if (deadline) {
			if (now >= deadline)
				return ONESHOT_TIMED_OUT;
			wait_ms = (int)min_u64(deadline - now, INT_MAX);
		}
		if (boost_until && (wait_ms < 0 || boost_until - now < (uint64_t)wait_ms))
			wait_ms = (int)min_u64(boost_until - now, INT_MAX);
		int k = poll(pfd, _P_MAX, wait_ms);
		if (k < 0 && errno != EINTR)
			/* poll itself failed: never leave the command running unwatched. */
			return ONESHOT_TIMED_OUT;
		if (k <= 0)
			continue;

		for (int p = 0; p < 2; p++) {
			if (!pfd[P_OUT + p].revents)
				continue;
			/* A few reads per wake-up: a flood cannot starve the other fds. */
			for (int i = 0; i < 4; i++) {
				ssize_t n = capture_read(cap, &pipes[p]);
				/* EOF (every writer closed it) ends only the reading. */
				if (n == 0 || (n < 0 && n != -EAGAIN))
					pipes[p].fd = -EBADF;
				if (n <= 0)
					break;
			}
		}
		if (pfd[P_IN].revents) {
			ssize_t n = RETRY_EINTR(write(*in_fd, data + written, len - written));
			if (n > 0)
				written += (size_t)n;
			/* EPIPE: the command stopped reading, which is its business. */
			if (written == len || (n < 0 && errno != EAGAIN))
				*in_fd = safe_close(*in_fd);
		}
		if (pfd[P_EXIT].revents)
			return ONESHOT_EXITED;
		if (pfd[P_CANCEL].revents || pfd[P_CALL_CANCEL].revents)
			return ONESHOT_CANCELLED;
	}
}

int envproc_run_oneshot_with(const EnvProcSpec *spec, const EnvOneshotOptions *opts,
			     OneshotResult *ret, BbxError *err)
{
	_cleanup_close_ int out_r = -EBADF, out_w = -EBADF, in_r = -EBADF, in_w = -EBADF;
	_cleanup_close_ int err_r = -EBADF, err_w = -EBADF;
	_cleanup_(sandbox_freep) Sandbox *sb = NULL;
	_cleanup_free_ char *tail = NULL, *out_tail = NULL, *err_tail = NULL;
	uint64_t start = now_monotonic_ms();
	int r, fds[2];

	memset(ret, 0, sizeof(*ret));
	if ((opts->cancel_fd >= 0 && fd_is_readable(opts->cancel_fd)) ||
	    (opts->call_cancel_fd >= 0 && fd_is_readable(opts->call_cancel_fd)))
		return bbx_error_set(err, -ECANCELED, BBX_CONFLICT,
				     "%s: cancelled before it started", spec->name);
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	out_r = fds[0];
	out_w = fds[1];
	if (opts->separate_streams) {
		if (pipe2(fds, O_CLOEXEC) < 0)
			return -errno;
		err_r = fds[0];
		err_w = fds[1];
		out_tail = malloc(ENVPROC_CAPTURE_MAX + 1);
		err_tail = malloc(ENVPROC_CAPTURE_MAX + 1);
		if (!out_tail || !err_tail)
			return -ENOMEM;
		if (fcntl(err_r, F_SETFL, O_NONBLOCK) < 0)
			return -errno;
	}
	if (opts->stdin_data) {
		if (pipe2(fds, O_CLOEXEC) < 0)
			return -errno;
		in_r = fds[0];
		in_w = fds[1];
	} else if ((in_r = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	/* Only our ends: the command's ends stay blocking, as programs expect. */
	if (fcntl(out_r, F_SETFL, O_NONBLOCK) < 0 ||
	    (in_w >= 0 && fcntl(in_w, F_SETFL, O_NONBLOCK) < 0))
		return -errno;
	tail = malloc(ENVPROC_CAPTURE_MAX + 1);
	if (!tail)
		return -ENOMEM;

	SandboxSpec sp;
	to_sandbox_spec(spec, &sp);
	EnvOneshotOptions o = *opts;
	if (o.boost_until_ms && spec->cpu_millis && o.boost_until_ms > start)
		sp.cpu_millis = 0;
	else
		o.boost_until_ms = 0; /* nothing to lift, or already over */
	sp.stdin_fd = in_r;
	sp.stdout_fd = out_w;
	sp.stderr_fd = err_w >= 0 ? err_w : out_w;
	r = sandbox_spawn(&sp, &sb, err);
	out_w = safe_close(out_w);
	err_w = safe_close(err_w);
	in_r = safe_close(in_r);
	if (r < 0)
		return r;
	if (opts->stdin_len == 0)
		in_w = safe_close(in_w);

	/*
	 * A write to a pipe whose reader is gone raises SIGPIPE in this thread: block it here
	 * and consume the one we caused, so the library works whatever the process's disposition.
	 */
	sigset_t sigpipe, old_mask, pending;
	sigemptyset(&sigpipe);
	sigaddset(&sigpipe, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &sigpipe, &old_mask);
	bool pipe_was_pending = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);

	Capture cap = { .tail = tail }, out_cap = { .tail = out_tail },
		err_cap = { .tail = err_tail };
	crypto_hash_sha256_init(&cap.hash);
	crypto_hash_sha256_init(&out_cap.hash);
	crypto_hash_sha256_init(&err_cap.hash);
	OutPipe pipes[2] = { { out_r, err_r >= 0 ? &out_cap : NULL }, { err_r, &err_cap } };
	uint64_t timeout_ms = opts->timeout_ms;
	uint64_t deadline = timeout_ms ? start + min_u64(timeout_ms, UINT64_MAX / 2) : 0;
	OneshotEnd end = oneshot_loop(sb, pipes, &in_w, opts->stdin_data, opts->stdin_len, &o,
				      deadline, spec->cpu_millis, &cap);
	in_w = safe_close(in_w);

	if (!pipe_was_pending && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
		struct timespec zero = { 0 };
		(void)RETRY_EINTR(sigtimedwait(&sigpipe, NULL, &zero));
	}
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);

	int status = 0;
	if (end == ONESHOT_EXITED) {
		/* init killed what the command left behind; reap, remove the cgroup. */
		r = sandbox_wait(sb, &status, err);
		if (r < 0)
			return r;
	} else
		kill_tree(&sb);
	if (end == ONESHOT_BOOST_FAILED)
		return bbx_error_set(err, -EIO, BBX_SETUP,
				     "%s: its CPU share could not be set after its start-up boost; "
				     "its processes were killed",
				     spec->name);
	if (end == ONESHOT_CANCELLED)
		return bbx_error_set(err, -ECANCELED, BBX_CONFLICT,
				     "%s: cancelled after %llu ms; its processes were killed",
				     spec->name, (unsigned long long)(now_monotonic_ms() - start));

	/* What is left in the pipes, without blocking: the writers are gone. */
	for (int p = 0; p < 2 && pipes[p].fd >= 0; p++)
		for (size_t drained = 0; drained < DRAIN_MAX;) {
			ssize_t n = capture_read(&cap, &pipes[p]);
			if (n <= 0)
				break;
			drained += (size_t)n;
		}

	unsigned char h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256_final(&cap.hash, h);
	sodium_bin2hex(ret->output_sha256, sizeof(ret->output_sha256), h, sizeof(h));
	tail[cap.len] = '\0';
	ret->output = TAKE_PTR(tail);
	ret->output_len = cap.len;
	ret->output_total = cap.total;
	if (opts->separate_streams) {
		out_tail[out_cap.len] = '\0';
		err_tail[err_cap.len] = '\0';
		ret->stdout_tail = TAKE_PTR(out_tail);
		ret->stdout_len = out_cap.len;
		ret->stdout_total = out_cap.total;
		ret->stderr_tail = TAKE_PTR(err_tail);
		ret->stderr_len = err_cap.len;
		ret->stderr_total = err_cap.total;
	}
	ret->timed_out = end == ONESHOT_TIMED_OUT;
	ret->exit_status = ret->timed_out ? 124 : status;
	ret->duration_ms = now_monotonic_ms() - start;
	return 0;
}

int envproc_run_oneshot(const EnvProcSpec *spec, const char *stdin_data, uint64_t timeout_sec,
			OneshotResult *ret, BbxError *err)
{
	EnvOneshotOptions opts;
	envproc_oneshot_options_init(&opts);
	opts.stdin_data = stdin_data;
	opts.stdin_len = stdin_data ? strlen(stdin_data) : 0;
	opts.timeout_ms = timeout_sec > UINT64_MAX / 1000 ? UINT64_MAX / 2 : timeout_sec * 1000;
	return envproc_run_oneshot_with(spec, &opts, ret, err);
}
