/* SPDX-License-Identifier: MIT */
/*
 * branchbox-init: pid 1 of every sandbox (the protocol is in sandbox-init.h).
 *
 * A fresh image, exec'd by the fully confined sandbox child, so no page of the daemon's
 * memory exists in the sandbox. Linked statically against libc only: no dynamic loader runs
 * (the command's LD_* variables cannot touch it) and nothing of branchbox is mapped.
 *
 * It forks and execs the command, forwards the usual termination signals to it, reaps every
 * orphan and exits with the command's status (128+N when killed by signal N). When the
 * owner's end of the sync pipe closes (the daemon or CLI is gone) the whole tree is killed:
 * pid 1 exiting ends the namespace.
 */
#include "sandbox-init.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"

extern char **environ;

static void copy_str(char *dst, size_t size, const char *src)
{
	size_t i = 0;
	for (; src && src[i] && i + 1 < size; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

_noreturn_ static void fail(const char *step, const char *path, int error, int exit_code)
{
	SandboxChildError ce = { .error = error, .exit_code = exit_code };
	copy_str(ce.step, sizeof(ce.step), step);
	copy_str(ce.path, sizeof(ce.path), path);
	(void)!write(SANDBOX_FD_ERR, &ce, sizeof(ce));
	_exit(exit_code);
}

static int status_to_exit(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 125;
}

/* The forked child: becomes the command, or reports why it could not. */
_noreturn_ static void exec_command(char **candidates, char **argv)
{
	/* Reset what the command must not inherit: blocked signals and ignored dispositions. */
	struct sigaction sa = { .sa_handler = SIG_DFL };
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &sa, NULL);
	sigset_t empty;
	sigemptyset(&empty);
	(void)sigprocmask(SIG_SETMASK, &empty, NULL);
	close(SANDBOX_FD_SYNC);
	/* The error pipe stays open until exec succeeds: that EOF is the parent's "started". */
	if (fcntl(SANDBOX_FD_ERR, F_SETFD, FD_CLOEXEC) < 0)
		fail("fcntl", "", errno, 125);
	if (close_range(SANDBOX_FD_ERR + 1, ~0U, 0) < 0)
		fail("close_range", "", errno, 125);
	int error = ENOENT;
	for (char **c = candidates; *c; c++) {
		execve(*c, argv, environ);
		/* Like execvp: remember EACCES but keep looking; ENOENT/ENOTDIR just move on. */
		if (errno != ENOENT && errno != ENOTDIR)
			error = errno;
	}
	fail("exec", argv[0], error, error == ENOENT ? 127 : 126);
}

/* Init holds no stdio, so a reader of the command's output sees EOF when it is done. */
static void drop_stdio(void)
{
	int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return;
	for (int fd = 0; fd < 3; fd++)
		(void)dup2(devnull, fd);
	if (devnull > 2)
		close(devnull);
}

_noreturn_ static void supervise(int sfd, pid_t main_pid)
{
	for (;;) {
		struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN },
					 { .fd = SANDBOX_FD_SYNC, .events = 0 } };
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents & (POLLHUP | POLLERR))
			break;
		struct signalfd_siginfo si;
		while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			if (si.ssi_signo != SIGCHLD)
				(void)kill(main_pid, (int)si.ssi_signo);
		}
		for (;;) {
			int status;
			pid_t pid = waitpid(-1, &status, WNOHANG);
			if (pid <= 0)
				break;
			if (pid == main_pid) {
				(void)kill(-1, SIGKILL);
				_exit(status_to_exit(status));
			}
		}
	}
	(void)kill(-1, SIGKILL);
	_exit(137);
}

int main(int argc, char **argv)
{
	/*
	 * Not dumpable: the command runs under the same uid and must not read or write this
	 * process through /proc (its memory holds the sync pipe protocol, nothing else).
	 */
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	(void)prctl(PR_SET_NAME, SANDBOX_INIT_NAME, 0, 0, 0);

	/* Only ever pid 1 of a sandbox, started by sandbox_spawn(). */
	if (getpid() != 1 || fcntl(SANDBOX_FD_ERR, F_GETFD) < 0 ||
	    fcntl(SANDBOX_FD_SYNC, F_GETFD) < 0) {
		static const char msg[] = SANDBOX_INIT_NAME ": only runs as a sandbox's pid 1\n";
		(void)!write(2, msg, sizeof(msg) - 1);
		return 125;
	}

	int i = 1;
	bool pdeathsig = false;
	if (i < argc && !strcmp(argv[i], SANDBOX_INIT_OPT_PDEATHSIG)) {
		pdeathsig = true;
		i++;
	}
	char **candidates = &argv[i];
	while (i < argc && strcmp(argv[i], "--"))
		i++;
	if (i + 1 >= argc || candidates == &argv[i])
		fail("init: arguments", "", EINVAL, 125);
	argv[i] = NULL; /* ends the candidate list */
	char **command = &argv[i + 1];

	/*
	 * The setting survives the exec that started us; set it again anyway, then make sure
	 * the owner did not die before it was in place (its sync pipe end is then closed).
	 */
	if (pdeathsig && prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		fail("pdeathsig", "", errno, 125);
	struct pollfd pfd = { .fd = SANDBOX_FD_SYNC, .events = 0 };
	if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
		_exit(125);

	/* Only the fds of the protocol; 0-2 are the command's. */
	if (close_range(SANDBOX_FD_ERR + 1, ~0U, 0) < 0)
		fail("close_range", "", errno, 125);
	/* Ignored dispositions survive exec; an ignored SIGCHLD would hide the exit status. */
	struct sigaction sa = { .sa_handler = SIG_DFL };
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)sigaction(sig, &sa, NULL);
	/* Blocked since before the exec of init, so nothing sent in between is lost. */
	sigset_t mask;
	sandbox_init_sigmask(&mask);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		fail("sigprocmask", "", errno, 125);
	int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		fail("signalfd", "", errno, 125);

	pid_t pid = fork();
	if (pid < 0)
		fail("fork", "", errno, 125);
	if (pid == 0)
		exec_command(candidates, command);

	close(SANDBOX_FD_ERR);
	drop_stdio();
	supervise(sfd, pid);
}
