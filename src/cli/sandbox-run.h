/* SPDX-License-Identifier: MIT */
/*
 * `branchbox sandbox run ...` without the rest of the CLI: argv[0] is the verb ("sandbox"),
 * argv[1] "run". Returns the exit status (see sandbox-run.c). Needs only libc, libbasic and
 * libsandbox, so the branchbox front binary (front.c) can be small and static.
 */
#pragma once

int sandbox_run_main(int argc, char **argv);
