/* SPDX-License-Identifier: MIT */
/*
 * branchbox-sandbox: `branchbox sandbox` as a binary of its own (see sandbox-run.c).
 * `branchbox-sandbox run [OPTIONS] -- CMD [ARGS...]` is `branchbox sandbox run ...`.
 */
#include "sandbox-run.h"

int main(int argc, char **argv)
{
	return sandbox_run_main(argc, argv);
}
