/* SPDX-License-Identifier: MIT */
/*
 * The CLI: one file per verb (verb-*.c), a command table in main.c. Verbs print to
 * stdout (results) and stderr (errors) and return an exit status.
 */
#pragma once

#include <stdbool.h>

typedef struct CliVerb {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv); /* argv[0] is the verb name */
} CliVerb;

/* Exit statuses shared by all verbs. */
enum {
	EXIT_OK = 0,
	EXIT_FAILURE_ = 1,  /* the operation failed or a check did not pass */
	EXIT_USAGE = 2,	    /* bad command line */
	EXIT_NO_DAEMON = 3, /* the daemon could not be reached */
};

int verb_deploy(int argc, char **argv);
int verb_env(int argc, char **argv);
int verb_serve(int argc, char **argv);
int verb_down(int argc, char **argv);
int verb_status(int argc, char **argv);
int verb_version(int argc, char **argv);
int verb_config(int argc, char **argv);
int verb_pool(int argc, char **argv);
int verb_volume(int argc, char **argv);

/* Print why and return -EPERM unless running as root. */
int cli_require_root(const char *verb);
int verb_sandbox(int argc, char **argv);
int verb_token(int argc, char **argv);
int verb_audit(int argc, char **argv);
int verb_mcp(int argc, char **argv);
/* The daemon's /mcp (verb-mcp.c): start before the API server, stop after it. */
struct Core;
int cli_mcp_serve_start(struct Core *core, char **allowed_hosts);
void cli_mcp_serve_stop(void);
/* Strip "--state DIR" given before a subcommand; returns DIR or NULL. */
const char *cli_take_leading_state(int *argc, char **argv);

/* Print "branchbox VERB: unknown option/usage" hint and return EXIT_USAGE. */
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* True when argv holds -h/--help before "--". */
bool cli_wants_help(int argc, char **argv);
