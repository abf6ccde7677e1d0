/* SPDX-License-Identifier: MIT */
/*
 * The CLI: the command table in main.c (one row per verb and sub-verb, parsed by
 * cli-parse.c) and one file per verb (verb-*.c) holding its handlers. Handlers print to
 * stdout (results) and stderr (errors) and return an exit status.
 */
#pragma once

#include <stdbool.h>

#include "cli-parse.h"

/* Exit statuses shared by all verbs. */
enum {
	EXIT_OK = 0,
	EXIT_FAILURE_ = 1,  /* the operation failed or a check did not pass */
	EXIT_USAGE = 2,	    /* bad command line */
	EXIT_NO_DAEMON = 3, /* the daemon could not be reached */
};

/* Handlers, one per row of the table; a->command is the row. */
int verb_deploy(const CliArgs *a);
int verb_env_create(const CliArgs *a);
int verb_env_list(const CliArgs *a);
int verb_env_show(const CliArgs *a); /* info, stop, start, destroy */
int verb_env_budget(const CliArgs *a);
int verb_env_logs(const CliArgs *a);
int verb_env_exec(const CliArgs *a);
int verb_env_files(const CliArgs *a); /* files, cat, write, diff, config, services */
int verb_serve(const CliArgs *a);
int verb_propose(const CliArgs *a);
int verb_proposal(const CliArgs *a); /* list, show, wait, diff, approve, reject, merge */
int verb_down(const CliArgs *a);
int verb_status(const CliArgs *a);
int verb_config(const CliArgs *a); /* check, show */
int verb_pool_init(const CliArgs *a);
int verb_pool_info(const CliArgs *a);
int verb_pool_destroy(const CliArgs *a);
int verb_volume(const CliArgs *a); /* every volume command */
int verb_sandbox_run(const CliArgs *a);
int verb_token_create(const CliArgs *a);
int verb_token_list(const CliArgs *a);
int verb_token_revoke(const CliArgs *a);
int verb_audit_log(const CliArgs *a);
int verb_audit_checkpoint(const CliArgs *a);
int verb_audit_pubkey(const CliArgs *a);
int verb_audit_verify(const CliArgs *a);

/* Print why and return -EPERM unless running as root. */
int cli_require_root(const char *verb);
int verb_mcp(const CliArgs *a);
/* The daemon's /mcp (verb-mcp.c): start before the API server, stop after it. */
struct Core;
int cli_mcp_serve_start(struct Core *core, char **allowed_hosts);
/* End /mcp's event streams (before the HTTP server stops). */
void cli_mcp_serve_quiesce(void);
void cli_mcp_serve_stop(void);

/*
 * Print "branchbox VERB: message" and "Try 'branchbox VERB --help'." (VERB NULL: the
 * program's own help) and return EXIT_USAGE.
 */
int cli_usage_error(const char *verb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
