/* SPDX-License-Identifier: MIT */
/* branchbox serve: the daemon. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
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

static void serve_help(void)
{
	printf("Usage: branchbox serve --repo PATH [--state DIR] [--listen ADDR:PORT | "
	       "--no-listen]\n"
	       "                       [--uid-range FIRST-LAST] [--max-previews N]\n"
	       "                       [--max-previews-per-token N] [--pool-reserve SIZE|PCT%%]\n"
	       "\n"
	       "Run the branchbox daemon for the git repository at PATH.\n"
	       "\n"
	       "  --repo PATH        the project's git repository (production is built from it)\n"
	       "  --state DIR        state directory (default $BRANCHBOX_STATE or %s)\n"
	       "  --listen ADDR:PORT also serve HTTP here (default %s; tokens only)\n"
	       "  --no-listen        serve only the unix socket DIR/branchbox.sock\n"
	       "  --mcp-allow-host NAME\n"
	       "                     besides loopback names, a Host (and Origin host) /mcp "
	       "accepts\n"
	       "                     (repeat for more; for a --listen address that is not "
	       "loopback)\n"
	       "  --production-branch NAME\n"
	       "                     production's environment name (default main); never in an\n"
	       "                     agent token's scope\n"
	       "  --agent-token-max-ttl DURATION\n"
	       "                     longest lifetime of an agent token (default 30d)\n"
	       "  --hook-timeout DURATION\n"
	       "                     deadline of each build, deploy and post_deploy hook run\n"
	       "                     (default 30m); at it the hook's whole process tree is killed\n"
	       "                     and the deploy or create fails saying so\n"
	       "  --preview-domain DOMAIN\n"
	       "                     requests for Host NAME.DOMAIN go to preview NAME's "
	       "application\n"
	       "  --uid-range FIRST-LAST\n"
	       "                     uids (and gids) given to environments, two each: one for its\n"
	       "                     services, one for its applications; never shared by two\n"
	       "                     environments (default %s). Refused when it holds\n"
	       "                     a user, group or sub-id range of the host, or overlaps the\n"
	       "                     range of another running daemon\n"
	       "  --max-previews N   at most N previews exist at once, in every state (default "
	       "%d)\n"
	       "  --max-previews-per-token N\n"
	       "                     at most N of them created by one token (default %d); the\n"
	       "                     local administrator is bounded by the total only\n"
	       "  --pool-reserve SIZE|PCT%%\n"
	       "                     keep this much of the volume pool for production (default\n"
	       "                     %d%%): a preview is refused when what previews may still\n"
	       "                     write (their disk quotas) would eat into it\n"
	       "  -v, --verbose      log every request\n"
	       "  --insecure-no-auth required to start a -Dbench_noauth=true build (benchmarks\n"
	       "                     only: no authentication, authorization or audit);\n"
	       "                     refused by every other build\n"
	       "\n"
	       "The unix socket is always served; uid 0 on it without a token is the local\n"
	       "administrator. Stop the daemon with SIGTERM or SIGINT.\n",
	       DEFAULT_STATE_DIR, DEFAULT_LISTEN, UID_RANGE_DEFAULT, CEILING_DEFAULT_MAX_PREVIEWS,
	       CEILING_DEFAULT_MAX_PREVIEWS_PER_TOKEN, CEILING_DEFAULT_RESERVE_PERCENT);
}

int verb_serve(int argc, char **argv)
{
	static const struct option options[] = {
		{ "repo", required_argument, NULL, 'r' },
		{ "state", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "no-listen", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "production-branch", required_argument, NULL, 'P' },
		{ "preview-domain", required_argument, NULL, 'D' },
		{ "agent-token-max-ttl", required_argument, NULL, 'T' },
		{ "uid-range", required_argument, NULL, 'U' },
		{ "hook-timeout", required_argument, NULL, 'H' },
		{ "max-previews", required_argument, NULL, 'M' },
		{ "max-previews-per-token", required_argument, NULL, 'N' },
		{ "pool-reserve", required_argument, NULL, 'R' },
		{ "insecure-no-auth", no_argument, NULL, 'I' },
		{ "mcp-allow-host", required_argument, NULL, 'A' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *repo = NULL, *state = NULL, *listen = DEFAULT_LISTEN, *production = NULL;
	const char *preview_domain = NULL;
	uint64_t max_ttl = 0, hook_timeout = 0;
	UidRange uid_range = { 0 };
	uint32_t max_previews = 0, max_per_token = 0;
	PoolReserve reserve;
	bool reserve_set = false;
	bool insecure_no_auth = false;
	_cleanup_strv_free_ char **mcp_hosts = NULL;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "r:s:l:nvhP:T:D:U:", options, NULL)) >= 0) {
		switch (c) {
		case 'r': repo = optarg; break;
		case 's': state = optarg; break;
		case 'l': listen = optarg; break;
		case 'n': listen = NULL; break;
		case 'A':
			if (!*optarg || strpbrk(optarg, ":/ \t") ||
			    strv_push(&mcp_hosts, optarg) < 0)
				return cli_usage_error("serve",
						       "--mcp-allow-host %s: expected a host name "
						       "without port, like dev.example.com",
						       optarg);
			break;
		case 'P': production = optarg; break;
		case 'D': preview_domain = optarg; break;
		case 'T':
			if (parse_duration(optarg, &max_ttl) < 0 || max_ttl == 0 ||
			    max_ttl > INT32_MAX)
				return cli_usage_error(
					"serve",
					"--agent-token-max-ttl %s: expected a duration like 7d",
					optarg);
			break;
		case 'H':
			if (parse_duration(optarg, &hook_timeout) < 0 || hook_timeout == 0 ||
			    hook_timeout > 24 * 3600)
				return cli_usage_error("serve",
						       "--hook-timeout %s: expected a duration "
						       "between 1s and 24h, like 30m",
						       optarg);
			break;
		case 'U': {
			BbxError e = BBX_ERROR_INIT;
			if (uid_range_parse(optarg, &uid_range, &e) < 0)
				return cli_usage_error("serve", "--uid-range: %s", e.message);
			break;
		}
		case 'M':
		case 'N': {
			uint32_t n;
			if (parse_uint32(optarg, &n) < 0 || n == 0 || n > 100000)
				return cli_usage_error(
					"serve", "--%s %s: expected a number from 1 to 100000",
					c == 'M' ? "max-previews" : "max-previews-per-token",
					optarg);
			*(c == 'M' ? &max_previews : &max_per_token) = n;
			break;
		}
		case 'R':
			if (pool_reserve_parse(optarg, &reserve) < 0)
				return cli_usage_error(
					"serve",
					"--pool-reserve %s: expected a size like 8G or a "
					"percentage of the pool from 0%% to 90%%",
					optarg);
			reserve_set = true;
			break;
		case 'I': insecure_no_auth = true; break;
		case 'v': log_set_level(LOG_LEVEL_DEBUG); break;
		case 'h': serve_help(); return EXIT_OK;
		default: return cli_usage_error("serve", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("serve", "unexpected argument '%s'", argv[optind]);
	if (!repo)
		return cli_usage_error("serve", "--repo PATH is required");
#if BRANCHBOX_BENCH_NOAUTH
	/* A build without authentication never starts by accident, e.g. from a unit file
	 * written for a real one. */
	if (!insecure_no_auth)
		return cli_usage_error("serve",
				       "this binary was built with -Dbench_noauth=true: it checks "
				       "no token and records nothing; it starts only with "
				       "--insecure-no-auth, for benchmarks");
#else
	if (insecure_no_auth)
		return cli_usage_error("serve",
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
	api_server_free(server);
	cli_mcp_serve_stop();
	log_info("stopping environments");
	environments_shutdown(core);
	log_info("stopped");
	return EXIT_OK;
}
