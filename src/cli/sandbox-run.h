/* SPDX-License-Identifier: MIT */
/*
 * `branchbox sandbox run ...` without the rest of the CLI: argv[0] is the verb ("sandbox"),
 * argv[1] "run". Returns the exit status (see sandbox-run.c). Needs only libc, libbasic and
 * libsandbox, so branchbox-sandbox can be a small static binary.
 */
#pragma once

int sandbox_run_main(int argc, char **argv);
