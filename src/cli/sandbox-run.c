/* SPDX-License-Identifier: MIT */
/*
 * branchbox sandbox run: run one command in a full sandbox, directly (no daemon), as root.
 * Exit status: the command's, 128+N when it was killed by signal N, 125 when the sandbox
 * could not be set up, 126 when the command cannot be executed, 127 when it is not found.
 *
 * Linked into the small static branchbox front binary (front.c), which runs it without
 * starting branchbox-cli: that one maps ~35 shared libraries before main(), which cost more
 * than the whole sandbox setup. branchbox-cli links it too (`branchbox-cli sandbox`).
 */
#include "sandbox-run.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "error.h"
#include "macro.h"
#include "parse.h"
#include "sandbox-cgroup.h"
#include "sandbox-stages.h"
#include "sandbox.h"

#define MAX_BINDS 64
#define MAX_ENV 256

enum { EXIT_OK = 0, EXIT_USAGE = 2 };

static int usage_error(const char *fmt, ...) _printf_(1, 2);
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "branchbox sandbox run: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'branchbox sandbox run --help'.\n");
	return EXIT_USAGE;
}

static bool wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return false;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	}
	return false;
}

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
	sandbox_stage(SANDBOX_STAGE_END);
	sandbox_stage_print();
	return status;
}

bool sandbox_run_defer_usage;
bool sandbox_run_deferred;

/* In the front, help and structural usage errors are left to branchbox-cli's command table. */
#define DEFER_TO_TABLE()                                                                           \
	do {                                                                                       \
		if (sandbox_run_defer_usage) {                                                     \
			sandbox_run_deferred = true;                                               \
			ret = EXIT_USAGE;                                                          \
			goto out;                                                                  \
		}                                                                                  \
	} while (0)

int sandbox_run_main(int argc, char **argv)
{
	enum {
		OPT_MEMORY = 256,
		OPT_PIDS,
		OPT_CPU,
		OPT_RW,
		OPT_RO,
		OPT_WORKDIR,
		OPT_ENV,
		OPT_UID,
		OPT_HOSTNAME
	};
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "memory", required_argument, NULL, OPT_MEMORY },
		{ "pids", required_argument, NULL, OPT_PIDS },
		{ "cpu", required_argument, NULL, OPT_CPU },
		{ "rw", required_argument, NULL, OPT_RW },
		{ "ro", required_argument, NULL, OPT_RO },
		{ "workdir", required_argument, NULL, OPT_WORKDIR },
		{ "env", required_argument, NULL, OPT_ENV },
		{ "uid", required_argument, NULL, OPT_UID },
		{ "hostname", required_argument, NULL, OPT_HOSTNAME },
		{ NULL, 0, NULL, 0 },
	};
	SandboxSpec spec;
	SandboxBind rw[MAX_BINDS], ro[MAX_BINDS];
	char *storage[2 * MAX_BINDS] = { NULL };
	size_t n_storage = 0;
	char *env[MAX_ENV + 1] = { NULL };
	size_t n_env = 0;
	char term[256];
	int ret = EXIT_USAGE;

	sandbox_stage_begin();
	sandbox_stage(SANDBOX_STAGE_MAIN);
	if (wants_help(argc, argv) || argc < 2 || strcmp(argv[1], "run"))
		DEFER_TO_TABLE();
	/* Help is the command table's (branchbox help sandbox run). */
	if (wants_help(argc, argv) || argc < 2 || strcmp(argv[1], "run"))
		return usage_error("see 'branchbox help sandbox run'");
	argc--;
	argv++;

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

	optind = 1;
	opterr = !sandbox_run_defer_usage;
	int c;
	while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
		BbxError err = BBX_ERROR_INIT;
		uint32_t u;
		switch (c) {
		case OPT_MEMORY:
			if (parse_size(optarg, &spec.memory_max) < 0 || spec.memory_max == 0) {
				usage_error("--memory: invalid size '%s'", optarg);
				goto out;
			}
			break;
		case OPT_PIDS:
			if (parse_uint64(optarg, &spec.pids_max) < 0 || spec.pids_max == 0) {
				usage_error("--pids: invalid number '%s'", optarg);
				goto out;
			}
			break;
		case OPT_CPU:
			if (parse_cpu(optarg, &spec.cpu_millis) < 0 || spec.cpu_millis == 0) {
				usage_error("--cpu: invalid fraction '%s'", optarg);
				goto out;
			}
			break;
		case OPT_RW:
		case OPT_RO: {
			size_t *n = c == OPT_RW ? &spec.n_rw : &spec.n_ro;
			SandboxBind *b = c == OPT_RW ? rw : ro;
			if (*n >= MAX_BINDS) {
				usage_error("too many binds");
				goto out;
			}
			if (sandbox_bind_parse(optarg, &b[*n], &storage[n_storage], &err) < 0) {
				usage_error("%s", bbx_error_message(&err, -EINVAL));
				goto out;
			}
			n_storage++;
			(*n)++;
			break;
		}
		case OPT_WORKDIR: spec.workdir = optarg; break;
		case OPT_ENV:
			if (!strchr(optarg, '=') || optarg[0] == '=' ||
			    env_set(env, &n_env, optarg) < 0) {
				usage_error("--env: want K=V, got '%s'", optarg);
				goto out;
			}
			break;
		case OPT_UID:
			if (parse_uint32(optarg, &u) < 0 || u == 0 || u == (uint32_t)-1) {
				usage_error("--uid: '%s' refused (must be 1..4294967294)", optarg);
				goto out;
			}
			spec.uid = u;
			break;
		case OPT_HOSTNAME: spec.hostname = optarg; break;
		case 'h':
			DEFER_TO_TABLE();
			usage_error("see 'branchbox help sandbox run'");
			goto out;
		default:
			DEFER_TO_TABLE();
			usage_error("unknown option");
			goto out;
		}
	}
	if (optind >= argc) {
		DEFER_TO_TABLE();
		usage_error("no command given (use -- CMD [ARGS])");
		goto out;
	}
	if (geteuid() != 0) {
		fprintf(stderr, "branchbox sandbox: must run as root\n");
		ret = 125;
		goto out;
	}
	spec.argv = argv + optind;
	spec.env = env;
	/*
	 * A cgroup only when a limit asks for one. A CLI killed with SIGKILL could not remove
	 * its cgroup: the next one that makes a cgroup tidies such leftovers.
	 */
	spec.no_cgroup = !spec.memory_max && !spec.pids_max && !spec.cpu_millis;
	spec.prune_stale_cgroups = true;
	ret = run_sandbox(&spec);
out:
	for (size_t i = 0; i < n_storage; i++)
		free(storage[i]);
	return ret;
}
