/* SPDX-License-Identifier: MIT */
/*
 * branchbox sandbox: exec branchbox-sandbox, the same code (sandbox-run.c) in a binary that
 * does not map this one's ~35 shared libraries, from the directory this binary is in. When it
 * is not there (a binary copied alone), the same code runs here.
 */
#include "main.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "sandbox-run.h"

#define SANDBOX_EXE "branchbox-sandbox"

int verb_sandbox(int argc, char **argv)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - sizeof(SANDBOX_EXE) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			memcpy(slash + 1, SANDBOX_EXE, sizeof(SANDBOX_EXE));
			argv[0] = (char *)SANDBOX_EXE;
			execv(exe, argv);
		}
	}
	return sandbox_run_main(argc, argv);
}
