/* SPDX-License-Identifier: MIT */
/*
 * How verbs reach the daemon: BRANCHBOX_URL (+ BRANCHBOX_TOKEN) over HTTP, otherwise the
 * unix socket in the state dir (--state, BRANCHBOX_STATE, default /var/lib/branchbox),
 * sending BRANCHBOX_TOKEN when set. Errors are printed here, once, in one format.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>

#include "http-client.h"

#define DEFAULT_STATE_DIR "/var/lib/branchbox"

/* The state dir from the option, the environment or the default; never NULL. */
const char *cli_state_dir(const char *opt_state);

/* The daemon's address and token as cli_call() finds them; EXIT_OK or an exit status (the
 * error printed). */
int cli_target(const char *verb, const char *opt_state, HttpTarget *t);

/*
 * Call the daemon. On HTTP success (2xx) *ret_json holds the parsed body (may be NULL for
 * an empty body) and the return is EXIT_OK; otherwise the error is printed as
 * "branchbox VERB: message" and the return is the exit status to use.
 */
int cli_call(const char *verb, const char *opt_state, const char *method, const char *path,
	     json_t *body, json_t **ret_json);
/* Same with a streaming body callback (logs --follow, exec output). */
int cli_call_stream(const char *verb, const char *opt_state, const char *method, const char *path,
		    json_t *body, HttpBodyCallback on_body, void *userdata, int *ret_status);

/* Percent-encode one path segment (environment names are already safe; tokens are not). */
char *cli_escape_segment(const char *s);
/* Print a JSON value to stdout, indented, with a trailing newline. */
void cli_print_json(json_t *j);
