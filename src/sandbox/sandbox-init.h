/* SPDX-License-Identifier: MIT */
/*
 * The contract between sandbox_spawn() and branchbox-init, the sandbox's pid 1.
 *
 * The sandbox child (a clone of the caller) builds the root, drops privileges, applies
 * Landlock and seccomp and then execs branchbox-init, so that nothing of the caller's memory
 * (the daemon's keys, other environments' credentials) survives in any sandboxed process.
 * The init binary is bound read-only at SANDBOX_INIT_TARGET inside the root; its host path
 * is never visible there.
 *
 * branchbox-init is started with
 *   argv: "branchbox-init" ["--pdeathsig"] CANDIDATE... "--" ARG0 ARG...
 *   envp: exactly the command's environment
 *   fds:  0-2 for the command, SANDBOX_FD_SYNC, SANDBOX_FD_ERR; nothing else
 *   blocked signals: those it forwards, and SIGCHLD
 * Each CANDIDATE is a path containing '/' (the command resolved against PATH by the parent);
 * the first that executes wins. A failure before the command runs is written to
 * SANDBOX_FD_ERR as one SandboxChildError; a successful exec closes it (CLOEXEC).
 *
 * Header-only: branchbox-init links nothing of branchbox, and not even libc (it defines
 * SANDBOX_INIT_FREESTANDING and makes its system calls itself).
 */
#pragma once

#include <signal.h>

/* Fixed fd numbers in the sandbox child and in branchbox-init. */
enum {
	SANDBOX_FD_SYNC = 3, /* read end: the parent's "go", then HUP when its owner is gone */
	SANDBOX_FD_ERR = 4,  /* write end: a SandboxChildError on failure; EOF once exec'd */
};

/* Where the init binary is bound inside the sandbox's root (read-only, nosuid). */
#define SANDBOX_INIT_TARGET "/.branchbox-init"
#define SANDBOX_INIT_NAME "branchbox-init"
#define SANDBOX_INIT_OPT_PDEATHSIG "--pdeathsig"

/* What a failed step sends back. Smaller than PIPE_BUF, so one atomic write. */
typedef struct SandboxChildError {
	int error;     /* positive errno */
	int exit_code; /* 125 (setup), 126 (cannot execute) or 127 (not found) */
	char step[40];
	char path[400];
} SandboxChildError;

/* Signals init passes on to the command (sandbox_kill() documents them). */
static const int sandbox_init_forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

/* The mask that is blocked from before the exec of init, as the kernel's 64-bit set:
 * forwarded signals and SIGCHLD (init has no libc to build a sigset_t with). */
static inline unsigned long long sandbox_init_kernel_sigmask(void)
{
	unsigned long long m = 1ULL << (SIGCHLD - 1);
	for (size_t i = 0; i < sizeof(sandbox_init_forwarded) / sizeof(sandbox_init_forwarded[0]);
	     i++)
		m |= 1ULL << (sandbox_init_forwarded[i] - 1);
	return m;
}

#ifndef SANDBOX_INIT_FREESTANDING
/* The same as a sigset_t, for the sandbox child that blocks it before the exec. */
static inline void sandbox_init_sigmask(sigset_t *ret)
{
	sigemptyset(ret);
	for (size_t i = 0; i < sizeof(sandbox_init_forwarded) / sizeof(sandbox_init_forwarded[0]);
	     i++)
		sigaddset(ret, sandbox_init_forwarded[i]);
	sigaddset(ret, SIGCHLD);
}
#endif
