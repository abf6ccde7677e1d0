/* SPDX-License-Identifier: MIT */
#include "main.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"
#include "ceilings.h"
#include "log.h"
#include "uid-range.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

static int verb_version(const CliArgs *a);
static int verb_help(const CliArgs *a);

/*
 * The command table (commands[] below) and the options of its rows.
 *
 * To add a command: write its handler int verb_x(const CliArgs *a) in verb-x.c (it reads its
 * options with cli_arg_value()/cli_arg_flag()/cli_arg_next(), its arguments from a->args,
 * and a->state and a->json), declare it in main.h, and add a row to commands[]:
 *   { path, summary, synopsis of its arguments, min args, max args (ANY: no bound),
 *     flags (S: takes --state, J: takes --json), its options or NULL, more help or NULL,
 *     handler }
 * A sub-verb's path is "verb sub"; the verb itself is a row without a handler (a group),
 * whose help lists its sub-verbs. Its options are an array here: { name, short letter or
 * 0, the value's name (NULL for a flag), help } ending with {}. --state, --json and --help
 * are never listed: a row takes them through its flags (help always). Help, argument counts
 * and option errors (exit 2) all come from the row.
 */
/* clang-format off */
static const CliOption env_create_options[] = {
	{ "from", 0, "PARENT", "clone PARENT (default production)" },
	{ "branch", 0, "BRANCH", "the git branch it runs (default NAME)" },
	{},
};
static const CliOption env_logs_options[] = {
	{ "follow", 0, NULL, "keep printing what the process writes" },
	{},
};
static const CliOption env_exec_options[] = {
	{ "app", 0, "APP", "run like application APP runs (default: the only one)" },
	{ "timeout", 0, "SECONDS", "kill CMD after SECONDS (1 to 3600)" },
	{},
};
static const CliOption env_files_options[] = {
	{ "root", 0, "ROOT", "code (default: the checkout at /app) or volume (APP/SOURCE_PATH)" },
	{ "limit", 0, "N", "at most N entries" },
	{},
};
static const CliOption env_cat_options[] = {
	{ "root", 0, "ROOT", "code (default) or volume" },
	{ "offset", 0, "N", "start at byte N" },
	{ "limit", 0, "N", "at most N bytes (at most 1 MiB a call)" },
	{},
};
static const CliOption env_write_options[] = {
	{ "root", 0, "ROOT", "code (default) or volume" },
	{ "mode", 0, "OCTAL", "permission bits of a new file (default 0644)" },
	{ "no-parents", 0, NULL, "do not create missing directories" },
	{},
};
static const CliOption env_diff_options[] = {
	{ "against", 0, "BASE", "commit (the commit it runs, default) or production" },
	{ "max-patch", 0, "BYTES", "cut the patch text at BYTES" },
	{},
};
static const CliOption propose_options[] = {
	{ "branch", 0, "BRANCH", "propose this branch (in the token's scope, never production)" },
	{ "patch", 0, "FILE",
	  "a unified diff against production's head ('-': stdin),\ncommitted by branchbox onto "
	  "the branch proposal/ID" },
	{ "title", 0, "T", "a title for the reviewers" },
	{ "description", 0, "D", "what it changes and why" },
	{ "idempotency-key", 0, "K", "a retry with the same key returns the first outcome" },
	{ "wait", 0, NULL, "wait until the validation is over; exit 1 when it failed" },
	{},
};
static const CliOption proposal_key_options[] = {
	{ "idempotency-key", 0, "K", "a retry with the same key returns the first outcome" },
	{},
};
static const CliOption proposal_reject_options[] = {
	{ "reason", 0, "R", "why (required)" },
	{},
};
static const CliOption mcp_options[] = {
	{ "http", 0, "ADDR:PORT",
	  "serve Streamable HTTP on this loopback address instead; it acts\n"
	  "with BRANCHBOX_TOKEN for anyone who can reach the port" },
	{ "test-fixtures", 0, NULL,
	  "add the conformance suite's test_* tools and test:// resources\n"
	  "(served by this process; the daemon never offers them)" },
	{},
};
static const CliOption serve_options[] = {
	{ "repo", 0, "PATH", "the project's git repository (production is built from it)" },
	{ "listen", 0, "ADDR:PORT", "also serve HTTP here (default 127.0.0.1:7480; tokens only)" },
	{ "no-listen", 0, NULL, "serve only the unix socket DIR/branchbox.sock" },
	{ "production-branch", 0, "NAME",
	  "production's environment name (default main); never in an\nagent token's scope" },
	{ "agent-token-max-ttl", 0, "DURATION", "longest lifetime of an agent token (default 30d)" },
	{ "hook-timeout", 0, "DURATION",
	  "deadline of each build, deploy and post_deploy hook run\n"
	  "(default 30m); at it the hook's whole process tree is killed\n"
	  "and the deploy or create fails saying so" },
	{ "preview-domain", 0, "DOMAIN",
	  "requests for Host NAME.DOMAIN go to preview NAME's application" },
	{ "uid-range", 0, "FIRST-LAST",
	  "uids (and gids) given to environments, two each: one for its\n"
	  "services, one for its applications; never shared by two\n"
	  "environments (default " UID_RANGE_DEFAULT "). Refused when it\n"
	  "holds a user, group or sub-id range of the host, or overlaps\n"
	  "the range of another running daemon" },
	{ "max-previews", 0, "N",
	  "at most N previews exist at once, in every state (default "
	  STRINGIFY(CEILING_DEFAULT_MAX_PREVIEWS) ")" },
	{ "max-previews-per-token", 0, "N",
	  "at most N of them created by one token (default "
	  STRINGIFY(CEILING_DEFAULT_MAX_PREVIEWS_PER_TOKEN) "); the\n"
	  "local administrator is bounded by the total only" },
	{ "pool-reserve", 0, "SIZE|PCT%",
	  "keep this much of the volume pool for production (default\n"
	  STRINGIFY(CEILING_DEFAULT_RESERVE_PERCENT) "%): a preview is refused when what previews may\n"
	  "still write (their disk quotas) would eat into it" },
	{ "mcp-allow-host", 0, "NAME",
	  "besides loopback names, a Host (and Origin host) /mcp accepts\n"
	  "(repeat for more; for a --listen address that is not loopback)" },
	{ "verbose", 'v', NULL, "log every request" },
	{ "insecure-no-auth", 0, NULL,
	  "required to start a -Dbench_noauth=true build (benchmarks\n"
	  "only: no authentication, authorization or audit); refused by\n"
	  "every other build" },
	{},
};
static const CliOption config_check_options[] = {
	{ "runtime-root", 0, "DIR", "look for runtimes under DIR instead of /" },
	{},
};
static const CliOption pool_init_options[] = {
	{ "driver", 0, "DRIVER", "btrfs, reflink or copy (default: the best the host has)" },
	{ "size", 0, "SIZE", "size of the btrfs image (e.g. 64G)" },
	{ "path", 0, "DIR", "put the volumes in DIR instead of under the state dir" },
	{},
};
static const CliOption pool_destroy_options[] = {
	{ "force", 0, NULL, "destroy even while volumes exist" },
	{},
};
static const CliOption volume_snapshot_options[] = {
	{ "freeze-file", 0, "FILE",
	  "cgroup freezer file of a writer of SRC (v1 freezer.state or\n"
	  "v2 cgroup.freeze), frozen around a reflink/copy walk (repeatable)" },
	{},
};
static const CliOption volume_destroy_options[] = {
	{ "sync", 0, NULL, "wait for the space to be reclaimed" },
	{},
};
static const CliOption sandbox_run_options[] = {
	{ "memory", 0, "BYTES", "memory limit (\"256M\")" },
	{ "pids", 0, "N", "maximum number of tasks" },
	{ "cpu", 0, "FRACTION", "CPU quota (\"0.5\" is half a CPU)" },
	{ "rw", 0, "HOSTPATH[:PATH]", "bind HOSTPATH writable at PATH (repeatable)" },
	{ "ro", 0, "HOSTPATH[:PATH]", "bind HOSTPATH read-only at PATH (repeatable)" },
	{ "workdir", 0, "PATH", "working directory inside the sandbox (default /)" },
	{ "env", 0, "K=V", "set an environment variable (repeatable)" },
	{ "uid", 0, "N", "run as uid N (default 65534; 0 is refused)" },
	{ "hostname", 0, "H", "hostname inside the sandbox (default \"sandbox\")" },
	{},
};
static const CliOption token_create_options[] = {
	{ "agent", 0, "NAME",
	  "a token for an AI agent: must expire, never reaches production,\n"
	  "never holds proposal:review, proposal:merge, audit:read, token:admin" },
	{ "human", 0, "NAME", "a token for a person" },
	{ "env", 0, "GLOB", "an environment name or glob it may see (repeat for more)" },
	{ "verbs", 0, "LIST",
	  "comma-separated: env:read,env:create,env:exec,env:write,\n"
	  "env:destroy,proposal:submit,proposal:review,proposal:merge,\n"
	  "audit:read,token:admin" },
	{ "ttl", 0, "DURATION", "lifetime, e.g. 30m, 12h, 7d (agents: required, at most 30d)" },
	{ "budget-cpu-seconds", 0, "DURATION", "narrow the CPU budget of each preview it creates" },
	{ "budget-memory", 0, "SIZE", "narrow the peak memory budget of each preview it creates" },
	{ "budget-disk", 0, "SIZE", "narrow the disk budget of each preview it creates" },
	{ "budget-wall-time", 0, "DURATION", "narrow the wall time budget of each preview it creates" },
	{},
};
static const CliOption audit_log_options[] = {
	{ "env", 0, "NAME", "only records about environment NAME" },
	{ "since", 0, "TIME", "from an ISO time (2026-01-31T12:00) or a duration back (15m)" },
	{ "limit", 0, "N", "at most N records (up to 1000)" },
	{},
};
static const CliOption audit_checkpoint_options[] = {
	{ "out", 0, "FILE", "write the checkpoint to FILE instead of stdout" },
	{},
};
static const CliOption audit_verify_options[] = {
	{ "checkpoint", 0, "FILE", "a checkpoint kept elsewhere to check the chain against" },
	{ "db", 0, "PATH", "the database (default STATE/state.db)" },
	{ "pubkey", 0, "HEX", "the signing key to trust (default: the one in the state dir)" },
	{},
};
static const CliOption help_options[] = {
	{ "list", 0, NULL, "print every command, one a line" },
	{},
};

#define S CLI_STATE
#define J CLI_JSON
#define ANY CLI_ARGS_ANY

/* The command table: one row per verb and sub-verb, in the order of 'branchbox --help'. */
static const CliCommand commands[] = {
	{ "deploy", "deploy production from the production branch", NULL, 0, 0, S | J, NULL,
	  "From the head of the production branch: on the first deploy create its volume and\n"
	  "initialise its services; then check the commit out, run the build and deploy hooks\n"
	  "and (re)start the applications. Production's data stays its own across deploys.\n",
	  verb_deploy },

	{ "env", "create, inspect, run in and destroy environments", NULL, 0, 0, 0, NULL,
	  "Environments: production and its copy-on-write previews. A preview is stopped when\n"
	  "it uses up any part of its budget (its data is kept until it expires, and it cannot\n"
	  "be started again); at 80% the audit log records a warning.\n"
	  "Over HTTP, set BRANCHBOX_URL and BRANCHBOX_TOKEN.\n", NULL },
	{ "env create", "clone PARENT for a branch, sanitize it, start it", "NAME", 1, 1, S | J,
	  env_create_options, NULL, verb_env_create },
	{ "env list", "the environments you can see", NULL, 0, 0, S | J, NULL, NULL, verb_env_list },
	{ "env info", "state, commit, processes, volume usage, budget", "NAME", 1, 1, S | J, NULL,
	  NULL, verb_env_show },
	{ "env logs", "a process's output (default: the application)", "NAME [PROCESS]", 1, 2,
	  S | J, env_logs_options, NULL, verb_env_logs },
	{ "env exec", "run CMD inside NAME like its application runs", "NAME -- CMD [ARGS...]", 2,
	  ANY, S | J, env_exec_options,
	  "Exit status: CMD's. Piped standard input is passed to CMD.\n", verb_env_exec },
	{ "env budget", "a preview's budget: limit, used, left and per cent used", "NAME", 1, 1,
	  S | J, NULL,
	  "For CPU seconds, peak memory, disk written beyond its clone and wall time.\n",
	  verb_env_budget },
	{ "env stop", "stop its processes (data stays)", "NAME", 1, 1, S | J, NULL, NULL,
	  verb_env_show },
	{ "env start", "start its processes again", "NAME", 1, 1, S | J, NULL, NULL, verb_env_show },
	{ "env destroy", "remove it: processes, network, volume, code", "NAME", 1, 1, S | J, NULL,
	  NULL, verb_env_show },
	{ "env files", "list a directory of its code or volume", "NAME [DIR]", 1, 2, S | J,
	  env_files_options,
	  "Paths are relative to the root; symbolic links are never followed.\n", verb_env_files },
	{ "env cat", "print a file of its code or volume", "NAME PATH", 2, 2, S | J,
	  env_cat_options,
	  "Paths are relative to the root; symbolic links are never followed.\n", verb_env_files },
	{ "env write", "create or replace a file of its code or volume with standard input",
	  "NAME PATH", 2, 2, S | J, env_write_options,
	  "The file is written as the environment's own user; production's files are never\n"
	  "written this way.\n", verb_env_files },
	{ "env diff", "its code tree's changes against the commit it runs or production's",
	  "NAME", 1, 1, S | J, env_diff_options, NULL, verb_env_files },
	{ "env config", "the config it runs, as the daemon parsed it", "NAME", 1, 1, S | J, NULL,
	  NULL, verb_env_files },
	{ "env services", "its services and applications and their states", "NAME", 1, 1, S | J,
	  NULL, NULL, verb_env_files },

	{ "mcp", "serve the Model Context Protocol to an agent over stdio (or local HTTP)", NULL, 0,
	  0, S, mcp_options,
	  "Every message is forwarded to the daemon's /mcp with BRANCHBOX_TOKEN (BRANCHBOX_URL,\n"
	  "or the state dir's socket). Without --http: newline-delimited JSON-RPC on stdin and\n"
	  "stdout, logs on stderr.\n", verb_mcp },
	{ "propose", "propose a change to production: validated on a clone, merged after review",
	  NULL, 0, 0, S | J, propose_options,
	  "Needs proposal:submit. branchbox clones production into a fresh preview, runs the\n"
	  "proposal's head there, checks it with production's validate steps and records the\n"
	  "evidence; a human then approves or rejects it ('branchbox proposal').\n", verb_propose },
	{ "proposal", "list, show, diff, approve, reject and merge proposals", NULL, 0, 0, 0, NULL,
	  NULL, NULL },
	{ "proposal list", "the proposals you can see, newest first", NULL, 0, 0, S | J, NULL, NULL,
	  verb_proposal },
	{ "proposal show", "status, current step, commits, evidence, config and code diff summary",
	  "ID", 1, 1, S | J, NULL, NULL, verb_proposal },
	{ "proposal wait", "wait until a proposal's validation is over (exit 1: it failed)", "ID",
	  1, 1, S | J, NULL, NULL, verb_proposal },
	{ "proposal diff", "the code change: the patch from its base to its head", "ID", 1, 1,
	  S | J, NULL, NULL, verb_proposal },
	{ "proposal approve", "approve a validated proposal (humans only)", "ID", 1, 1, S | J,
	  proposal_key_options,
	  "Needs proposal:review. Binds its base and head commits and its evidence digest.\n",
	  verb_proposal },
	{ "proposal reject", "reject a proposal with a reason; its preview goes", "ID", 1, 1, S | J,
	  proposal_reject_options, "Needs proposal:review.\n", verb_proposal },
	{ "proposal merge", "merge an approved proposal into production (humans only)", "ID", 1, 1,
	  S | J, proposal_key_options,
	  "Needs proposal:merge. A compare-and-swap of production's branch, refused when\n"
	  "production or the branch moved since the approval; then production redeploys.\n",
	  verb_proposal },

	{ "serve", "run the daemon", NULL, 0, 0, S, serve_options,
	  "Run the branchbox daemon for the git repository given by --repo (required).\n"
	  "The unix socket is always served; uid 0 on it without a token is the local\n"
	  "administrator. Stop the daemon with SIGTERM or SIGINT.\n", verb_serve },
	{ "down", "take a stopped daemon off the host: mounts, netns, cgroups", NULL, 0, 0, S | J,
	  NULL,
	  "Remove from the host what a stopped daemon's state dir still holds there: kill\n"
	  "what is left in its cgroups and remove them, remove its environments' network\n"
	  "namespaces (STATE/run/netns), unmount the pool (STATE/pool/mnt) and detach its\n"
	  "loop device, and unmount anything else mounted under the state dir. Another\n"
	  "daemon's cgroups and mounts are never touched.\n"
	  "\n"
	  "Data stays on disk (the pool image, pool.json, the database): 'branchbox serve'\n"
	  "starts again on the same state dir. Refused while a daemon serves it (holds\n"
	  "STATE/daemon.lock): stop the daemon first. Running it again removes nothing and\n"
	  "succeeds. --json prints what was removed.\n", verb_down },
	{ "status", "check the daemon and show who you are to it", NULL, 0, 0, S | J, NULL,
	  "Exit status 3 when the daemon is not running.\n", verb_status },
	{ "version", "print the version", NULL, 0, 0, J, NULL, NULL, verb_version },

	{ "config", "check or show the project config (local, no daemon)", NULL, 0, 0, 0, NULL,
	  "Read DIR/.branchbox/config.yaml (or DIR/.upsun/config.yaml) without the daemon.\n"
	  "DIR defaults to the current directory.\n", NULL },
	{ "config check", "validate the config and that each runtime is installed", "[DIR]", 0, 1,
	  J, config_check_options,
	  "Print 'FILE: ok' or one 'FILE:LINE:COL: key: message' line per problem;\n"
	  "exit 0 when valid, 1 otherwise.\n", verb_config },
	{ "config show", "print the normalized config (defaults filled in)", "[DIR]", 0, 1, J,
	  NULL, NULL, verb_config },

	{ "pool", "set up, describe or remove the volume pool", NULL, 0, 0, 0, NULL,
	  "Local and root-only; every command holds the pool lock, so it serializes with the\n"
	  "daemon.\n", NULL },
	{ "pool init", "create the pool (re-running with identical options is a no-op)", NULL, 0,
	  0, S | J, pool_init_options,
	  "Picks a driver: btrfs if the kernel has it and mkfs.btrfs exists, else reflink if\n"
	  "the state dir supports FICLONE, else copy. Without --path and without btrfs under\n"
	  "the state dir, btrfs uses a sparse image STATE/pool/btrfs.img of --size,\n"
	  "loop-mounted at STATE/pool/mnt.\n", verb_pool_init },
	{ "pool info", "driver and why, mount source, size, free space, quota support", NULL, 0, 0,
	  S | J, NULL, NULL, verb_pool_info },
	{ "pool destroy", "unmount, detach the loop device, remove the image", NULL, 0, 0, S,
	  pool_destroy_options, "Refused while volumes exist unless --force.\n",
	  verb_pool_destroy },

	{ "volume", "create, clone, list or destroy copy-on-write volumes", NULL, 0, 0, 0, NULL,
	  "Local and root-only; they call the storage library directly under the pool lock,\n"
	  "so they serialize with the daemon.\n", NULL },
	{ "volume create", "create an empty volume and print its path", "NAME", 1, 1, S | J, NULL,
	  NULL, verb_volume },
	{ "volume snapshot", "clone SRC to DST atomically and print DST's path", "SRC DST", 2, 2,
	  S | J, volume_snapshot_options,
	  "One ioctl on btrfs; a walk under a frozen source for reflink/copy. Refuses layouts\n"
	  "a crash-consistent clone cannot hold: nested subvolumes, symlinks leading out.\n",
	  verb_volume },
	{ "volume destroy", "remove a volume at once", "NAME", 1, 1, S, volume_destroy_options,
	  NULL, verb_volume },
	{ "volume list", "every volume with its exclusive, shared and quota bytes", NULL, 0, 0,
	  S | J, NULL, NULL, verb_volume },
	{ "volume usage", "one volume's exclusive, shared and quota bytes", "NAME", 1, 1, S | J,
	  NULL, NULL, verb_volume },
	{ "volume quota", "bound what NAME may write beyond what it shares", "NAME SIZE|none", 2,
	  2, S, NULL,
	  "For a snapshot: what it wrote after the clone; past it, writes fail with EDQUOT.\n"
	  "btrfs pools only: the reflink and copy drivers cannot bound one volume and refuse.\n",
	  verb_volume },

	{ "sandbox", "run a command in a sandbox (root, no daemon)", NULL, 0, 0, 0, NULL, NULL,
	  NULL },
	{ "sandbox run", "run CMD in a fresh sandbox", "-- CMD [ARGS...]", 1, ANY,
	  CLI_OPTIONS_FIRST, sandbox_run_options,
	  "Its own mount, pid, ipc, uts, net (loopback only) and cgroup namespaces, a tmpfs\n"
	  "root with the host's /usr read-only, an unprivileged uid without capabilities,\n"
	  "no_new_privs, Landlock and seccomp. Needs root. Options end at CMD.\n"
	  "\n"
	  "Exit status: the command's (128+N when killed by signal N); 125 when the sandbox\n"
	  "could not be set up, 126 when CMD cannot be executed, 127 when it is not found.\n",
	  verb_sandbox_run },

	{ "token", "mint, list and revoke scoped tokens", NULL, 0, 0, 0, NULL,
	  "Minting, listing and revoking need token:admin (or root on the local socket).\n",
	  NULL },
	{ "token create", "mint a token, printed once alone on its line", NULL, 0, 0, S | J,
	  token_create_options,
	  "Needs --agent or --human, at least one --env and --verbs. Details go to stderr;\n"
	  "only the token's digest is stored. The --budget-* options narrow the budget of\n"
	  "each preview the token creates below production's (environments.preview.budget);\n"
	  "they never widen it. A token minted by a token stays within its creator's budget.\n",
	  verb_token_create },
	{ "token list", "every token with its kind, name, state and scopes", NULL, 0, 0, S | J,
	  NULL, NULL, verb_token_list },
	{ "token revoke", "revoke a token by its id", "ID", 1, 1, S, NULL, NULL,
	  verb_token_revoke },

	{ "audit", "read, checkpoint and verify the audit ledger", NULL, 0, 0, 0, NULL, NULL,
	  NULL },
	{ "audit log", "records, oldest first (needs audit:read)", NULL, 0, 0, S | J,
	  audit_log_options, NULL, verb_audit_log },
	{ "audit checkpoint", "a checkpoint signed by the daemon; keep it somewhere else", NULL, 0,
	  0, S | J, audit_checkpoint_options,
	  "{size, head hash, time, key id, public key, Ed25519 signature}, as JSON.\n",
	  verb_audit_checkpoint },
	{ "audit pubkey", "the daemon's Ed25519 public key (hex)", NULL, 0, 0, S | J, NULL, NULL,
	  verb_audit_pubkey },
	{ "audit verify", "check the whole chain, and that nothing up to a checkpoint changed",
	  NULL, 0, 0, S | J, audit_verify_options,
	  "Works without a daemon; needs read access to the state dir. Given a checkpoint\n"
	  "kept elsewhere, checks that nothing up to it was rewritten, deleted, reordered or\n"
	  "truncated. The signing key must be --pubkey, or the one in the database's state\n"
	  "dir when readable. Exit 0 when valid, 1 naming the first bad record.\n",
	  verb_audit_verify },

	{ "help", "show the help of a verb, or list every verb", "[VERB...]", 0, ANY, 0,
	  help_options, NULL, verb_help },
};
/* clang-format on */
#undef S
#undef J
#undef ANY

int cli_usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "branchbox%s%s: ", verb ? " " : "", verb ? verb : "");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'branchbox%s%s --help'.\n", verb ? " " : "", verb ? verb : "");
	return EXIT_USAGE;
}

static int verb_version(const CliArgs *a)
{
	if (a->json)
		printf("{\n  \"version\": \"%s\"\n}\n", BRANCHBOX_VERSION);
	else
		printf("branchbox %s\n", BRANCHBOX_VERSION);
	return EXIT_OK;
}

static int verb_help(const CliArgs *a)
{
	if (cli_arg_flag(a, "list")) {
		for (size_t i = 0; i < ELEMENTSOF(commands); i++)
			printf("%s\n", commands[i].path);
		return EXIT_OK;
	}
	if (a->n_args == 0) {
		cli_help_all(stdout, commands, ELEMENTSOF(commands));
		return EXIT_OK;
	}
	const CliCommand *c = cli_find(commands, ELEMENTSOF(commands), a->args, a->n_args);
	if (!c)
		return cli_usage_error("help", "no such verb: '%s'", a->args[a->n_args - 1]);
	cli_help_command(stdout, commands, ELEMENTSOF(commands), c);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	_cleanup_(cli_args_done) CliArgs a = { 0 };
	BbxError err = BBX_ERROR_INIT;

	if (argc < 2) {
		cli_help_all(stderr, commands, ELEMENTSOF(commands));
		return EXIT_USAGE;
	}
	if (argc == 2 && !strcmp(argv[1], "--version"))
		argv[1] = (char *)"version";

	int r = cli_parse(commands, ELEMENTSOF(commands), argc, argv, &a, &err);
	if (r == -ENOMEM) {
		log_error("out of memory");
		return EXIT_FAILURE_;
	}
	if (r < 0)
		return cli_usage_error(a.command ? a.command->path : NULL, "%s", err.message);
	if (a.help) {
		if (a.command)
			cli_help_command(stdout, commands, ELEMENTSOF(commands), a.command);
		else
			cli_help_all(stdout, commands, ELEMENTSOF(commands));
		return EXIT_OK;
	}
	return a.command->run(&a);
}
