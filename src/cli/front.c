/* SPDX-License-Identifier: MIT */
/*
 * branchbox: the command users run. A small static binary (libc, libbasic, libsandbox) that
 * runs `branchbox sandbox ...` itself and execs branchbox-cli, the rest of the CLI and the
 * daemon, for every other verb, with the same arguments and the same pid.
 *
 * Why: branchbox-cli maps ~35 shared libraries (libgit2, SQLite, libmicrohttpd and what they
 * pull in) before main(), 5-10 ms of CPU on every start, more than a whole sandbox setup.
 * The sandbox verb needs none of them.
 *
 * branchbox-cli is looked for next to this binary first (the build tree), then in
 * libexecdir/branchbox. It is the same trust as this binary: same directory, or the install.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "build-config.h"
#include "sandbox-run.h"

#define CLI_EXE "branchbox-cli"

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "sandbox")) {
		sandbox_run_defer_usage = true;
		int r = sandbox_run_main(argc - 1, argv + 1);
		if (!sandbox_run_deferred)
			return r;
	}

	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - sizeof(CLI_EXE) - 1);
	if (n > 0) {
		exe[n] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash) {
			memcpy(slash + 1, CLI_EXE, sizeof(CLI_EXE));
			if (access(exe, X_OK) == 0)
				execv(exe, argv);
		}
	}
	execv(BRANCHBOX_CLI_INSTALLED, argv);
	fprintf(stderr, "branchbox: cannot run %s: %s\n", BRANCHBOX_CLI_INSTALLED, strerror(errno));
	return 127;
}
