/* SPDX-License-Identifier: MIT */
/* branchbox serve: the daemon. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api.h"
#include "build-config.h"
#include "client.h"
#include "core.h"
#include "environment.h"
#include "log.h"
#include "main.h"
#include "parse.h"
#include "strv.h"
#include "uid-range.h"

#define DEFAULT_LISTEN "127.0.0.1:7480"

/*
 * Each running environment holds a few dozen fds in the daemon (process pidfds, pipes, logs,
 * namespaces), so the usual soft limit of 1024 would stop a few dozen previews. The soft limit
 * goes up to the hard one; sandboxed processes get their own (SANDBOX_NOFILE_SOFT/HARD).
 */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		log_warning_errno(errno, "cannot raise the open-file limit to %llu",
				  (unsigned long long)rl.rlim_max);
}

/*
 * When the whole host runs out of memory, the kernel's OOM killer should take a preview's
 * processes (PREVIEW_OOM_SCORE_ADJ) before production's, and the daemon last: an outage of
 * the daemon stops every environment's supervision. Sandboxed processes never inherit this.
 */
static void protect_from_oom(void)
{
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "-500", 4) != 4)
		log_warning("cannot lower the daemon's oom_score_adj to -500 (%s): the kernel may "
			    "take it before production when the host runs out of memory",
			    errno == EIO || errno == EACCES ? "no CAP_SYS_RESOURCE"
							    : strerror(errno));
	if (fd >= 0)
		close(fd);
}

int verb_serve(const CliArgs *a)
{
	const char *verb = a->command->path, *repo = cli_arg_value(a, "repo"), *state = a->state;
	const char *listen = cli_arg_value(a, "listen") ?: DEFAULT_LISTEN, *v;
	const char *production = cli_arg_value(a, "production-branch");
	const char *preview_domain = cli_arg_value(a, "preview-domain");
	uint64_t max_ttl = 0, hook_timeout = 0;
	UidRange uid_range = { 0 };
	uint32_t max_previews = 0, max_per_token = 0;
	PoolReserve reserve;
	bool reserve_set = false;
	bool insecure_no_auth = cli_arg_flag(a, "insecure-no-auth");
	_cleanup_strv_free_ char **mcp_hosts = NULL;
	size_t iter = 0;

	while ((v = cli_arg_next(a, "mcp-allow-host", &iter)))
		if (!*v || strpbrk(v, ":/ \t") || strv_push(&mcp_hosts, v) < 0)
			return cli_usage_error(verb,
					       "--mcp-allow-host %s: expected a host name without "
					       "port, like dev.example.com",
					       v);

	if (cli_arg_flag(a, "no-listen"))
		listen = NULL;
	if ((v = cli_arg_value(a, "agent-token-max-ttl")) &&
	    (parse_duration(v, &max_ttl) < 0 || max_ttl == 0 || max_ttl > INT32_MAX))
		return cli_usage_error(verb,
				       "--agent-token-max-ttl %s: expected a duration like 7d", v);
	if ((v = cli_arg_value(a, "hook-timeout")) &&
	    (parse_duration(v, &hook_timeout) < 0 || hook_timeout == 0 || hook_timeout > 24 * 3600))
		return cli_usage_error(verb,
				       "--hook-timeout %s: expected a duration between 1s and "
				       "24h, like 30m",
				       v);
	if ((v = cli_arg_value(a, "uid-range"))) {
		BbxError e = BBX_ERROR_INIT;
		if (uid_range_parse(v, &uid_range, &e) < 0)
			return cli_usage_error(verb, "--uid-range: %s", e.message);
	}
	static const char *const counts[] = { "max-previews", "max-previews-per-token" };
	for (size_t i = 0; i < ELEMENTSOF(counts); i++) {
		uint32_t n;
		if (!(v = cli_arg_value(a, counts[i])))
			continue;
		if (parse_uint32(v, &n) < 0 || n == 0 || n > 100000)
			return cli_usage_error(verb, "--%s %s: expected a number from 1 to 100000",
					       counts[i], v);
		*(i == 0 ? &max_previews : &max_per_token) = n;
	}
	if ((v = cli_arg_value(a, "pool-reserve"))) {
		if (pool_reserve_parse(v, &reserve) < 0)
			return cli_usage_error(verb,
					       "--pool-reserve %s: expected a size like 8G or a "
					       "percentage of the pool from 0%% to 90%%",
					       v);
		reserve_set = true;
	}
	if (cli_arg_flag(a, "verbose"))
		log_set_level(LOG_LEVEL_DEBUG);
	if (!repo)
		return cli_usage_error(verb, "--repo PATH is required");
#if BRANCHBOX_BENCH_NOAUTH
	/* A build without authentication never starts by accident, e.g. from a unit file
	 * written for a real one. */
	if (!insecure_no_auth)
		return cli_usage_error(verb,
				       "this binary was built with -Dbench_noauth=true: it checks "
				       "no token and records nothing; it starts only with "
				       "--insecure-no-auth, for benchmarks");
#else
	if (insecure_no_auth)
		return cli_usage_error(verb,
				       "--insecure-no-auth: this build authenticates, authorizes "
				       "and audits every request; only a -Dbench_noauth=true build "
				       "runs without");
#endif
	state = cli_state_dir(state);
	log_set_timestamps(1);
	log_set_ident("branchbox-serve");
#if BRANCHBOX_BENCH_NOAUTH
	for (int i = 0; i < 3; i++)
		log_warning("THIS BINARY WAS BUILT WITH -Dbench_noauth=true AND STARTED WITH "
			    "--insecure-no-auth: NO AUTHENTICATION, NO AUTHORIZATION, NO AUDIT. "
			    "EVERY ANSWER CARRIES X-Branchbox-Insecure: no-auth. FOR BENCHMARKS "
			    "ONLY; NEVER RUN IT ANYWHERE ELSE.");
#endif

	BbxError err = BBX_ERROR_INIT;
	_cleanup_(core_freep) Core *core = NULL;
	CoreOptions copts = { .state_dir = state,
			      .repo_path = repo,
			      .production_branch = production,
			      .agent_token_max_ttl = (int64_t)max_ttl,
			      .uid_range = uid_range,
			      .hook_timeout_sec = hook_timeout,
			      .max_previews = max_previews,
			      .max_previews_per_token = max_per_token,
			      .pool_reserve = reserve_set ? &reserve : NULL };
	int r = core_new(&copts, &core, &err);
	if (r < 0) {
		log_error("%s", bbx_error_message(&err, r));
		return EXIT_FAILURE_;
	}

	/* One daemon per state dir: the lock is held for the daemon's lifetime. */
	char lockpath[4096];
	snprintf(lockpath, sizeof(lockpath), "%s/daemon.lock", core_state_dir(core));
	_cleanup_close_ int lockfd =
		open(lockpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lockfd < 0 || flock(lockfd, LOCK_EX | LOCK_NB) < 0) {
		log_error("another daemon holds %s (%s)", lockpath, strerror(errno));
		return EXIT_FAILURE_;
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (ftruncate(lockfd, 0) < 0 || write(lockfd, pid, (size_t)n) != n)
		log_warning("could not record the daemon's pid in %s", lockpath);

	/* No host account and no other daemon may hold one of our uids, for as long as we run. */
	_cleanup_close_ int uid_claim = -EBADF;
	r = uid_range_check_host(core_uid_range(core), NULL, &err);
	if (r >= 0)
		r = uid_range_claim(core_uid_range(core), core_state_dir(core), NULL, &uid_claim,
				    &err);
	if (r < 0) {
		log_error("%s", bbx_error_message(&err, r));
		return EXIT_FAILURE_;
	}

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	protect_from_oom();

	r = environments_init(core, &err);
	if (r < 0) {
		log_error("%s", bbx_error_message(&err, r));
		environments_shutdown(core);
		return EXIT_FAILURE_;
	}

	char sock[4096];
	snprintf(sock, sizeof(sock), "%s/branchbox.sock", core_state_dir(core));
	ApiServerOptions aopts = { .core = core,
				   .socket_path = sock,
				   .listen = listen,
				   .preview_domain = preview_domain };
	ApiServer *server = NULL;
	r = cli_mcp_serve_start(core, mcp_hosts);
	if (r >= 0)
		r = api_server_new(&aopts, &server, &err);
	if (r < 0) {
		cli_mcp_serve_stop();
		log_error("%s", bbx_error_message(&err, r));
		environments_shutdown(core);
		return EXIT_FAILURE_;
	}
	log_info("branchbox daemon ready: repository %s, state %s", core_repo_path(core),
		 core_state_dir(core));
	log_info("listening on unix:%s%s%s", sock, listen ? " and http://" : "",
		 listen ? listen : "");
	if (listen && api_server_port(server))
		log_info("http port %u", api_server_port(server));

	for (;;) {
		int sig = 0;
		if (sigwait(&mask, &sig) != 0)
			continue;
		if (sig == SIGHUP)
			continue;
		log_info("received %s, shutting down", strsignal(sig));
		break;
	}
	/* Running commands are killed first: no request handler can hold the server open. */
	environments_quiesce(core);
	cli_mcp_serve_quiesce();
	api_server_free(server);
	cli_mcp_serve_stop();
	log_info("stopping environments");
	environments_shutdown(core);
	log_info("stopped");
	return EXIT_OK;
}
