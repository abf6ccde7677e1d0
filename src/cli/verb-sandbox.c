/* SPDX-License-Identifier: MIT */
/*
 * branchbox sandbox run: run one command in a full sandbox, directly (no daemon), as root.
 * Exit status: the command's, 128+N when it was killed by signal N, 125 when the sandbox
 * could not be set up, 126 when the command cannot be executed, 127 when it is not found.
 */
#include "main.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "error.h"
#include "macro.h"
#include "parse.h"
#include "sandbox-cgroup.h"
#include "sandbox.h"

#define MAX_BINDS 64
#define MAX_ENV 256

/* Replace an existing "KEY=" entry or append. env has room for MAX_ENV + 1 entries. */
static int env_set(char **env, size_t *n, char *kv)
{
	size_t klen = strcspn(kv, "=");
	for (size_t i = 0; i < *n; i++)
		if (!strncmp(env[i], kv, klen) && env[i][klen] == '=') {
			env[i] = kv;
			return 0;
		}
	if (*n >= MAX_ENV)
		return -E2BIG;
	env[(*n)++] = kv;
	env[*n] = NULL;
	return 0;
}

static int run_sandbox(const SandboxSpec *spec)
{
	BbxError err = BBX_ERROR_INIT;
	_cleanup_(sandbox_freep) Sandbox *sb = NULL;
	sigset_t mask, saved;
	int fwd[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

	/*
	 * A closed stdio fd would be reused by the signalfd below and handed to the command as
	 * its stdin/stdout; fill the gaps with /dev/null first.
	 */
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF && open("/dev/null", O_RDWR) != fd) {
			fprintf(stderr, "branchbox sandbox: /dev/null: %s\n", strerror(errno));
			return 125;
		}

	/* Signals the terminal or a supervisor sends to us go to the sandbox instead. */
	sigemptyset(&mask);
	for (size_t i = 0; i < ELEMENTSOF(fwd); i++)
		sigaddset(&mask, fwd[i]);
	sigprocmask(SIG_BLOCK, &mask, &saved);
	_cleanup_close_ int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		fprintf(stderr, "branchbox sandbox: signalfd: %s\n", strerror(errno));
		return 125;
	}

	/* A CLI killed with SIGKILL could not remove its cgroup; tidy such leftovers first. */
	(void)sandbox_cgroup_prune_stale("/sys/fs/cgroup");

	int r = sandbox_spawn(spec, &sb, &err);
	if (r < 0) {
		fprintf(stderr, "branchbox sandbox: %s\n", bbx_error_message(&err, r));
		if (err.kind == BBX_NOT_FOUND)
			return 127;
		if (err.kind == BBX_CANNOT_EXECUTE)
			return 126;
		return 125;
	}
	for (;;) {
		struct pollfd pfd[2] = { { .fd = sandbox_pidfd(sb), .events = POLLIN },
					 { .fd = sfd, .events = POLLIN } };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				(void)sandbox_kill(sb, (int)si.ssi_signo);
		}
		if (pfd[0].revents)
			break;
	}
	int status = 125;
	r = sandbox_wait(sb, &status, &err);
	if (r < 0)
		fprintf(stderr, "branchbox sandbox: %s\n", bbx_error_message(&err, r));
	sigprocmask(SIG_SETMASK, &saved, NULL);
	return status;
}

int verb_sandbox_run(const CliArgs *a)
{
	const char *verb = a->command->path, *v;
	SandboxSpec spec;
	SandboxBind rw[MAX_BINDS], ro[MAX_BINDS];
	char *storage[2 * MAX_BINDS] = { NULL };
	size_t n_storage = 0;
	char *env[MAX_ENV + 1] = { NULL };
	size_t n_env = 0;
	char term[256];
	int ret = EXIT_USAGE;

	sandbox_spec_init(&spec);
	spec.rw = rw;
	spec.ro = ro;
	env_set(env, &n_env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
	env_set(env, &n_env, "HOME=/tmp");
	const char *t = getenv("TERM");
	if (t && strlen(t) < 200) {
		snprintf(term, sizeof(term), "TERM=%s", t);
		env_set(env, &n_env, term);
	}

	if ((v = cli_arg_value(a, "memory")) &&
	    (parse_size(v, &spec.memory_max) < 0 || spec.memory_max == 0)) {
		cli_usage_error(verb, "--memory: invalid size '%s'", v);
		goto out;
	}
	if ((v = cli_arg_value(a, "pids")) &&
	    (parse_uint64(v, &spec.pids_max) < 0 || spec.pids_max == 0)) {
		cli_usage_error(verb, "--pids: invalid number '%s'", v);
		goto out;
	}
	if ((v = cli_arg_value(a, "cpu")) &&
	    (parse_cpu(v, &spec.cpu_millis) < 0 || spec.cpu_millis == 0)) {
		cli_usage_error(verb, "--cpu: invalid fraction '%s'", v);
		goto out;
	}
	if ((v = cli_arg_value(a, "uid"))) {
		uint32_t u;
		if (parse_uint32(v, &u) < 0 || u == 0 || u == (uint32_t)-1) {
			cli_usage_error(verb, "--uid: '%s' refused (must be 1..4294967294)", v);
			goto out;
		}
		spec.uid = u;
	}
	spec.workdir = cli_arg_value(a, "workdir") ?: spec.workdir;
	spec.hostname = cli_arg_value(a, "hostname") ?: spec.hostname;
	/* Binds and variables in the order given: a later --env K=V replaces an earlier. */
	for (size_t i = 0; i < a->n_values; i++) {
		const char *name = a->values[i].option->name;
		BbxError err = BBX_ERROR_INIT;
		v = a->values[i].value;
		if (!strcmp(name, "rw") || !strcmp(name, "ro")) {
			bool is_rw = !strcmp(name, "rw");
			size_t *n = is_rw ? &spec.n_rw : &spec.n_ro;
			SandboxBind *b = is_rw ? rw : ro;
			if (*n >= MAX_BINDS) {
				cli_usage_error(verb, "too many binds");
				goto out;
			}
			if (sandbox_bind_parse(v, &b[*n], &storage[n_storage], &err) < 0) {
				cli_usage_error(verb, "%s", bbx_error_message(&err, -EINVAL));
				goto out;
			}
			n_storage++;
			(*n)++;
		} else if (!strcmp(name, "env")) {
			if (!strchr(v, '=') || v[0] == '=' || env_set(env, &n_env, (char *)v) < 0) {
				cli_usage_error(verb, "--env: want K=V, got '%s'", v);
				goto out;
			}
		}
	}
	if (geteuid() != 0) {
		fprintf(stderr, "branchbox sandbox: must run as root\n");
		ret = 125;
		goto out;
	}
	spec.argv = a->args;
	spec.env = env;
	ret = run_sandbox(&spec);
out:
	for (size_t i = 0; i < n_storage; i++)
		free(storage[i]);
	return ret;
}
