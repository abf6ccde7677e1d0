/* SPDX-License-Identifier: MIT */
#include "main.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "build-config.h"
#include "log.h"

/* clang-format off */
static const CliVerb verbs[] = {
	{ "deploy", "deploy production from the production branch", verb_deploy },
	{ "env", "create, inspect, run in and destroy environments", verb_env },
	{ "serve", "run the daemon", verb_serve },
	{ "down", "take a stopped daemon off the host: mounts, netns, cgroups", verb_down },
	{ "status", "check the daemon and show who you are to it", verb_status },
	{ "version", "print the version", verb_version },
	{ "config", "check or show the project config (local, no daemon)", verb_config },
	{ "pool", "set up, describe or remove the volume pool", verb_pool },
	{ "volume", "create, clone, list or destroy copy-on-write volumes", verb_volume },
	{ "sandbox", "run a command in a sandbox (root, no daemon)", verb_sandbox },
	{ "token", "mint, list and revoke scoped tokens", verb_token },
	{ "audit", "read, checkpoint and verify the audit ledger", verb_audit },
	{ "mcp", "serve MCP to an agent (stdio or local HTTP), forwarding to the daemon", verb_mcp },
};
/* clang-format on */

static void help(FILE *f)
{
	fprintf(f, "Usage: branchbox VERB [OPTIONS]\n"
		   "\n"
		   "Zero-trust copy-on-write preview environments for AI agents.\n"
		   "\n"
		   "Verbs:\n");
	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
	fprintf(f, "\n"
		   "Run 'branchbox VERB --help' for the options of a verb.\n"
		   "Environment: BRANCHBOX_STATE (state dir, default /var/lib/branchbox),\n"
		   "             BRANCHBOX_URL and BRANCHBOX_TOKEN (reach a daemon over HTTP).\n");
}

int cli_usage_error(const char *verb, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "branchbox %s: ", verb);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'branchbox %s --help'.\n", verb);
	return EXIT_USAGE;
}

bool cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			return false;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	}
	return false;
}

int verb_version(int argc, char **argv)
{
	if (cli_wants_help(argc, argv)) {
		printf("Usage: branchbox version\n\nPrint the version of this binary.\n");
		return EXIT_OK;
	}
	printf("branchbox %s\n", BRANCHBOX_VERSION);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		help(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		help(stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--version"))
		return verb_version(1, argv + 1);

	for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
		if (!strcmp(argv[1], verbs[i].name))
			return verbs[i].run(argc - 1, argv + 1);

	log_error("unknown verb '%s'; run 'branchbox --help' for the list", argv[1]);
	return EXIT_USAGE;
}
