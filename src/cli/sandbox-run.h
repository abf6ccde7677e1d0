/* SPDX-License-Identifier: MIT */
/*
 * `branchbox sandbox run ...` without the rest of the CLI: argv[0] is the verb ("sandbox"),
 * argv[1] "run". Returns the exit status (see sandbox-run.c). Needs only libc, libbasic and
 * libsandbox, so the branchbox front binary (front.c) can be small and static.
 */
#pragma once

#include <stdbool.h>

int sandbox_run_main(int argc, char **argv);

/*
 * Set by the front: help, an unknown subcommand or option and a missing command are not
 * answered but flagged in sandbox_run_deferred (nothing was run), for branchbox-cli to answer
 * from its command table with the same argv.
 */
extern bool sandbox_run_defer_usage;
extern bool sandbox_run_deferred;
