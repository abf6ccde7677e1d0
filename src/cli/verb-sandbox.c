/* SPDX-License-Identifier: MIT */
/*
 * branchbox-cli sandbox: the same as `branchbox sandbox` (sandbox-run.c), which the small
 * branchbox front binary (front.c) runs without exec'ing this one.
 */
#include "main.h"

#include "sandbox-run.h"

int verb_sandbox(int argc, char **argv)
{
	return sandbox_run_main(argc, argv);
}
