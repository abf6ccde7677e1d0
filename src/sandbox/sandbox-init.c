/* SPDX-License-Identifier: MIT */
/*
 * branchbox-init: pid 1 of every sandbox (the protocol is in sandbox-init.h).
 *
 * A fresh image, exec'd by the fully confined sandbox child, so no page of the daemon's
 * memory exists in the sandbox. Linked statically with no libc at all: no dynamic loader runs
 * (the command's LD_* variables cannot touch it), nothing of branchbox is mapped, and no libc
 * start-up runs either. That start-up probes the CPU with dozens of CPUID instructions, each
 * a trap to the hypervisor in a virtual machine: about half a millisecond of every sandbox
 * start there. The few system calls init needs are made here directly.
 *
 * It forks and execs the command, forwards the usual termination signals to it, reaps every
 * orphan and exits with the command's status (128+N when killed by signal N). When the
 * owner's end of the sync pipe closes (the daemon or CLI is gone) the whole tree is killed:
 * pid 1 exiting ends the namespace.
 */
#define SANDBOX_INIT_FREESTANDING 1
#include "sandbox-init.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "macro.h"

/* ---- system calls: each returns the result or -errno ---- */

#if defined(__x86_64__)
static long sc(long n, long a, long b, long c, long d, long e)
{
	register long r10 __asm__("r10") = d;
	register long r8 __asm__("r8") = e;
	long ret;
	__asm__ volatile("syscall"
			 : "=a"(ret)
			 : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
			 : "rcx", "r11", "memory");
	return ret;
}
__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	xor %rbp, %rbp\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call init_start\n"
	"	hlt\n");
#elif defined(__aarch64__)
static long sc(long n, long a, long b, long c, long d, long e)
{
	register long x8 __asm__("x8") = n;
	register long x0 __asm__("x0") = a;
	register long x1 __asm__("x1") = b;
	register long x2 __asm__("x2") = c;
	register long x3 __asm__("x3") = d;
	register long x4 __asm__("x4") = e;
	__asm__ volatile("svc 0"
			 : "+r"(x0)
			 : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4)
			 : "memory");
	return x0;
}
__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	mov x29, #0\n"
	"	mov x30, #0\n"
	"	mov x0, sp\n"
	"	bl init_start\n"
	"	brk #0\n");
#else
#error "branchbox-init makes its own system calls: add this architecture's convention"
#endif

#define SC0(n) sc((n), 0, 0, 0, 0, 0)
#define SC1(n, a) sc((n), (long)(a), 0, 0, 0, 0)
#define SC2(n, a, b) sc((n), (long)(a), (long)(b), 0, 0, 0)
#define SC3(n, a, b, c) sc((n), (long)(a), (long)(b), (long)(c), 0, 0)
#define SC4(n, a, b, c, d) sc((n), (long)(a), (long)(b), (long)(c), (long)(d), 0)
#define SC5(n, a, b, c, d, e) sc((n), (long)(a), (long)(b), (long)(c), (long)(d), (long)(e))

/* The kernel's struct sigaction (with sa_restorer on both architectures). */
struct ksigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long long mask;
};

/* The compiler may emit calls to these for struct copies and initialisers. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *restrict d, const void *restrict s, size_t n);
void *memset(void *d, int c, size_t n)
{
	volatile unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}
void *memcpy(void *restrict d, const void *restrict s, size_t n)
{
	volatile unsigned char *p = d;
	const unsigned char *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

_noreturn_ static void sys_exit(int code)
{
	for (;;)
		(void)SC1(SYS_exit_group, code);
}

static long sys_write(int fd, const void *buf, size_t n)
{
	return SC3(SYS_write, fd, buf, n);
}

static bool str_eq(const char *a, const char *b)
{
	while (*a && *a == *b)
		a++, b++;
	return *a == *b;
}

static void copy_str(char *dst, size_t size, const char *src)
{
	size_t i = 0;
	for (; src && src[i] && i + 1 < size; i++)
		dst[i] = src[i];
	dst[i] = '\0';
}

/* error: a positive errno (a raw call's result negated). */
_noreturn_ static void fail(const char *step, const char *path, long error, int exit_code)
{
	SandboxChildError ce = { .error = (int)error, .exit_code = exit_code };
	copy_str(ce.step, sizeof(ce.step), step);
	copy_str(ce.path, sizeof(ce.path), path);
	(void)sys_write(SANDBOX_FD_ERR, &ce, sizeof(ce));
	sys_exit(exit_code);
}

static int status_to_exit(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 125;
}

/* Ignored dispositions survive exec; an ignored SIGCHLD would hide the exit status. */
static void reset_signals(void)
{
	struct ksigaction sa = { .handler = SIG_DFL };
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)SC4(SYS_rt_sigaction, sig, &sa, NULL, sizeof(sa.mask));
}

/* poll() with timeout_ms -1 (none) or 0, through ppoll (the call both architectures have). */
static long sys_poll(struct pollfd *fds, unsigned n, int timeout_ms)
{
	static const struct {
		long sec, nsec;
	} zero = { 0, 0 };
	return SC5(SYS_ppoll, fds, n, timeout_ms == 0 ? &zero : NULL, NULL, 0);
}

/* The forked child: becomes the command, or reports why it could not. */
_noreturn_ static void exec_command(char **candidates, char **argv, char **envp)
{
	/* Reset what the command must not inherit: blocked signals and ignored dispositions. */
	reset_signals();
	unsigned long long empty = 0;
	(void)SC4(SYS_rt_sigprocmask, SIG_SETMASK, &empty, NULL, sizeof(empty));
	(void)SC1(SYS_close, SANDBOX_FD_SYNC);
	/* The error pipe stays open until exec succeeds: that EOF is the parent's "started". */
	long r = SC3(SYS_fcntl, SANDBOX_FD_ERR, F_SETFD, FD_CLOEXEC);
	if (r < 0)
		fail("fcntl", "", -r, 125);
	r = SC3(SYS_close_range, SANDBOX_FD_ERR + 1, ~0U, 0);
	if (r < 0)
		fail("close_range", "", -r, 125);
	long error = ENOENT;
	for (char **c = candidates; *c; c++) {
		r = SC3(SYS_execve, *c, argv, envp);
		/* Like execvp: remember EACCES but keep looking; ENOENT/ENOTDIR just move on. */
		if (r != -ENOENT && r != -ENOTDIR)
			error = -r;
	}
	fail("exec", argv[0], error, error == ENOENT ? 127 : 126);
}

/* Init holds no stdio, so a reader of the command's output sees EOF when it is done. */
static void drop_stdio(void)
{
	long devnull = SC4(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC, 0);
	if (devnull < 0)
		return;
	for (long fd = 0; fd < 3; fd++)
		if (fd != devnull)
			(void)SC3(SYS_dup3, devnull, fd, 0);
	if (devnull > 2)
		(void)SC1(SYS_close, devnull);
}

_noreturn_ static void supervise(int sfd, long main_pid)
{
	for (;;) {
		struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN },
					 { .fd = SANDBOX_FD_SYNC, .events = 0 } };
		long k = sys_poll(pfd, 2, -1);
		if (k == -EINTR)
			continue;
		if (k < 0)
			break;
		if (pfd[1].revents & (POLLHUP | POLLERR))
			break;
		struct signalfd_siginfo si;
		while (SC3(SYS_read, sfd, &si, sizeof(si)) == (long)sizeof(si)) {
			if (si.ssi_signo != SIGCHLD)
				(void)SC2(SYS_kill, main_pid, si.ssi_signo);
		}
		for (;;) {
			int status = 0;
			long pid = SC4(SYS_wait4, -1, &status, WNOHANG, NULL);
			if (pid <= 0)
				break;
			if (pid == main_pid) {
				(void)SC2(SYS_kill, -1, SIGKILL);
				sys_exit(status_to_exit(status));
			}
		}
	}
	(void)SC2(SYS_kill, -1, SIGKILL);
	sys_exit(137);
}

static int init_main(int argc, char **argv, char **envp)
{
	/*
	 * Not dumpable: the command runs under the same uid and must not read or write this
	 * process through /proc (its memory holds the sync pipe protocol, nothing else).
	 */
	(void)SC5(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
	(void)SC5(SYS_prctl, PR_SET_NAME, SANDBOX_INIT_NAME, 0, 0, 0);

	/* Only ever pid 1 of a sandbox, started by sandbox_spawn(). */
	if (SC0(SYS_getpid) != 1 || SC2(SYS_fcntl, SANDBOX_FD_ERR, F_GETFD) < 0 ||
	    SC2(SYS_fcntl, SANDBOX_FD_SYNC, F_GETFD) < 0) {
		static const char msg[] = SANDBOX_INIT_NAME ": only runs as a sandbox's pid 1\n";
		(void)sys_write(2, msg, sizeof(msg) - 1);
		return 125;
	}

	int i = 1;
	bool pdeathsig = false;
	if (i < argc && str_eq(argv[i], SANDBOX_INIT_OPT_PDEATHSIG)) {
		pdeathsig = true;
		i++;
	}
	char **candidates = &argv[i];
	while (i < argc && !str_eq(argv[i], "--"))
		i++;
	if (i + 1 >= argc || candidates == &argv[i])
		fail("init: arguments", "", EINVAL, 125);
	argv[i] = NULL; /* ends the candidate list */
	char **command = &argv[i + 1];

	/*
	 * The setting survives the exec that started us; set it again anyway, then make sure
	 * the owner did not die before it was in place (its sync pipe end is then closed).
	 */
	long r;
	if (pdeathsig && (r = SC5(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) < 0)
		fail("pdeathsig", "", -r, 125);
	struct pollfd pfd = { .fd = SANDBOX_FD_SYNC, .events = 0 };
	if (sys_poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
		sys_exit(125);

	/* Only the fds of the protocol; 0-2 are the command's. */
	r = SC3(SYS_close_range, SANDBOX_FD_ERR + 1, ~0U, 0);
	if (r < 0)
		fail("close_range", "", -r, 125);
	reset_signals();
	/* Blocked since before the exec of init, so nothing sent in between is lost. */
	unsigned long long mask = sandbox_init_kernel_sigmask();
	r = SC4(SYS_rt_sigprocmask, SIG_BLOCK, &mask, NULL, sizeof(mask));
	if (r < 0)
		fail("sigprocmask", "", -r, 125);
	long sfd = SC4(SYS_signalfd4, -1, &mask, sizeof(mask), SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		fail("signalfd", "", -sfd, 125);

	/* fork(): a clone that shares nothing and signals SIGCHLD. */
	long pid = SC5(SYS_clone, SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		fail("fork", "", -pid, 125);
	if (pid == 0)
		exec_command(candidates, command, envp);

	(void)SC1(SYS_close, SANDBOX_FD_ERR);
	drop_stdio();
	supervise((int)sfd, pid);
}

/* The entry: argc, argv and envp as the kernel laid them out on the stack. */
_noreturn_ __attribute__((used)) void init_start(long *sp);
_noreturn_ __attribute__((used)) void init_start(long *sp)
{
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	sys_exit(init_main(argc, argv, argv + argc + 1));
}
