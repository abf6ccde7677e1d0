/* SPDX-License-Identifier: MIT */
#include "sandbox-seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "file-util.h"
#include "macro.h"

/*
 * Allowed without looking at arguments: the unconditional allow-list of Docker's default
 * profile (moby profiles/seccomp, as of libseccomp 2.6 / Linux 6.13) for x86_64 and aarch64,
 * minus what the denied table below takes out (ptrace, process_vm_readv/writev,
 * clock_adjtime, name_to_handle_at, modify_ldt; io_uring_* is gone from Docker's list too).
 * clone, ioctl, personality, socket and socketpair are decided by their arguments, further
 * down. Names that exist only on 32-bit ABIs (chown32, _llseek, socketcall, ipc, the *_time64
 * calls...) are left out: the filter refuses those ABIs whole.
 *
 * Docker also allows listmount, statmount, mseal, uretprobe and {get,set,list,remove}xattrat
 * (Linux 6.8 to 6.13). Debian 12's libseccomp (2.5.4-1+deb12u1, whose table ends with Linux
 * 6.7's futex_requeue) cannot name them, and a name it cannot resolve fails the build, so
 * they are not listed: they get ENOSYS like every other unlisted syscall and callers fall
 * back (glibc 2.36 uses none of them). Names here that plain upstream 2.5.4 lacks
 * (cachestat, fchmodat2, map_shadow_stack, futex_wake/wait/requeue) need 2.5.5 or
 * Debian's update; an older libseccomp fails the build naming the syscall.
 */
const char *const sandbox_seccomp_allowed[] = {
	"accept",
	"accept4",
	"access",
	"adjtimex",
	"alarm",
	"arch_prctl",
	"bind",
	"brk",
	"cachestat",
	"capget",
	"capset",
	"chdir",
	"chmod",
	"chown",
	"clock_getres",
	"clock_gettime",
	"clock_nanosleep",
	"close",
	"close_range",
	"connect",
	"copy_file_range",
	"creat",
	"dup",
	"dup2",
	"dup3",
	"epoll_create",
	"epoll_create1",
	"epoll_ctl",
	"epoll_ctl_old",
	"epoll_pwait",
	"epoll_pwait2",
	"epoll_wait",
	"epoll_wait_old",
	"eventfd",
	"eventfd2",
	"execve",
	"execveat",
	"exit",
	"exit_group",
	"faccessat",
	"faccessat2",
	"fadvise64",
	"fallocate",
	"fanotify_mark",
	"fchdir",
	"fchmod",
	"fchmodat",
	"fchmodat2",
	"fchown",
	"fchownat",
	"fcntl",
	"fdatasync",
	"fgetxattr",
	"flistxattr",
	"flock",
	"fork",
	"fremovexattr",
	"fsetxattr",
	"fstat",
	"fstatfs",
	"fsync",
	"ftruncate",
	"futex",
	"futex_requeue",
	"futex_wait",
	"futex_waitv",
	"futex_wake",
	"futimesat",
	"get_robust_list",
	"get_thread_area",
	"getcpu",
	"getcwd",
	"getdents",
	"getdents64",
	"getegid",
	"geteuid",
	"getgid",
	"getgroups",
	"getitimer",
	"getpeername",
	"getpgid",
	"getpgrp",
	"getpid",
	"getppid",
	"getpriority",
	"getrandom",
	"getresgid",
	"getresuid",
	"getrlimit",
	"getrusage",
	"getsid",
	"getsockname",
	"getsockopt",
	"gettid",
	"gettimeofday",
	"getuid",
	"getxattr",
	"inotify_add_watch",
	"inotify_init",
	"inotify_init1",
	"inotify_rm_watch",
	"io_cancel",
	"io_destroy",
	"io_getevents",
	"io_pgetevents",
	"io_setup",
	"io_submit",
	"ioprio_get",
	"ioprio_set",
	"kill",
	"landlock_add_rule",
	"landlock_create_ruleset",
	"landlock_restrict_self",
	"lchown",
	"lgetxattr",
	"link",
	"linkat",
	"listen",
	"listxattr",
	"llistxattr",
	"lremovexattr",
	"lseek",
	"lsetxattr",
	"lstat",
	"madvise",
	"map_shadow_stack",
	"membarrier",
	"memfd_create",
	"memfd_secret",
	"mincore",
	"mkdir",
	"mkdirat",
	"mknod",
	"mknodat",
	"mlock",
	"mlock2",
	"mlockall",
	"mmap",
	"mprotect",
	"mq_getsetattr",
	"mq_notify",
	"mq_open",
	"mq_timedreceive",
	"mq_timedsend",
	"mq_unlink",
	"mremap",
	"msgctl",
	"msgget",
	"msgrcv",
	"msgsnd",
	"msync",
	"munlock",
	"munlockall",
	"munmap",
	"nanosleep",
	"newfstatat",
	"open",
	"openat",
	"openat2",
	"pause",
	"pidfd_open",
	"pidfd_send_signal",
	"pipe",
	"pipe2",
	"pkey_alloc",
	"pkey_free",
	"pkey_mprotect",
	"poll",
	"ppoll",
	"prctl",
	"pread64",
	"preadv",
	"preadv2",
	"prlimit64",
	"process_mrelease",
	"pselect6",
	"pwrite64",
	"pwritev",
	"pwritev2",
	"read",
	"readahead",
	"readlink",
	"readlinkat",
	"readv",
	"recvfrom",
	"recvmmsg",
	"recvmsg",
	"remap_file_pages",
	"removexattr",
	"rename",
	"renameat",
	"renameat2",
	"restart_syscall",
	"rmdir",
	"rseq",
	"rt_sigaction",
	"rt_sigpending",
	"rt_sigprocmask",
	"rt_sigqueueinfo",
	"rt_sigreturn",
	"rt_sigsuspend",
	"rt_sigtimedwait",
	"rt_tgsigqueueinfo",
	"sched_get_priority_max",
	"sched_get_priority_min",
	"sched_getaffinity",
	"sched_getattr",
	"sched_getparam",
	"sched_getscheduler",
	"sched_rr_get_interval",
	"sched_setaffinity",
	"sched_setattr",
	"sched_setparam",
	"sched_setscheduler",
	"sched_yield",
	"seccomp",
	"select",
	"semctl",
	"semget",
	"semop",
	"semtimedop",
	"sendfile",
	"sendmmsg",
	"sendmsg",
	"sendto",
	"set_robust_list",
	"set_thread_area",
	"set_tid_address",
	"setfsgid",
	"setfsuid",
	"setgid",
	"setgroups",
	"setitimer",
	"setpgid",
	"setpriority",
	"setregid",
	"setresgid",
	"setresuid",
	"setreuid",
	"setrlimit",
	"setsid",
	"setsockopt",
	"setuid",
	"setxattr",
	"shmat",
	"shmctl",
	"shmdt",
	"shmget",
	"shutdown",
	"sigaltstack",
	"signalfd",
	"signalfd4",
	"splice",
	"stat",
	"statfs",
	"statx",
	"symlink",
	"symlinkat",
	"sync",
	"sync_file_range",
	"syncfs",
	"sysinfo",
	"tee",
	"tgkill",
	"time",
	"timer_create",
	"timer_delete",
	"timer_getoverrun",
	"timer_gettime",
	"timer_settime",
	"timerfd_create",
	"timerfd_gettime",
	"timerfd_settime",
	"times",
	"tkill",
	"truncate",
	"umask",
	"uname",
	"unlink",
	"unlinkat",
	"utime",
	"utimensat",
	"utimes",
	"vfork",
	"vmsplice",
	"wait4",
	"waitid",
	"write",
	"writev",
	NULL,
};

/*
 * Denied with EPERM, the answer a caller without privileges expects: everything Docker's
 * profile allows only with a capability (the sandbox has none), plus what DESIGN.md section 5
 * adds (io_uring, the kernel keyring, bpf, userfaultfd, ptrace and process_vm_*, the whole
 * mount API, namespaces, kexec and modules, modify_ldt) and obsolete calls. open_tree_attr
 * (Linux 6.15) belongs with the mount API but Debian 12's libseccomp cannot name it; being
 * unlisted, it gets ENOSYS, which denies it just the same (tests/security checks it).
 */
const char *const sandbox_seccomp_denied[] = {
	"_sysctl",
	"acct",
	"add_key",
	"afs_syscall",
	"bpf",
	"chroot",
	"clock_adjtime",
	"clock_adjtime64",
	"clock_settime",
	"clock_settime64",
	"create_module",
	"delete_module",
	"fanotify_init",
	"finit_module",
	"fsconfig",
	"fsmount",
	"fsopen",
	"fspick",
	"get_kernel_syms",
	"get_mempolicy",
	"init_module",
	"io_uring_enter",
	"io_uring_register",
	"io_uring_setup",
	"ioperm",
	"iopl",
	"kcmp",
	"kexec_file_load",
	"kexec_load",
	"keyctl",
	"lookup_dcookie",
	"mbind",
	"modify_ldt",
	"mount",
	"mount_setattr",
	"move_mount",
	"move_pages",
	"name_to_handle_at",
	"nfsservctl",
	"open_by_handle_at",
	"open_tree",
	"perf_event_open",
	"pidfd_getfd",
	"pivot_root",
	"process_madvise",
	"process_vm_readv",
	"process_vm_writev",
	"ptrace",
	"query_module",
	"quotactl",
	"quotactl_fd",
	"reboot",
	"request_key",
	"set_mempolicy",
	"set_mempolicy_home_node",
	"setdomainname",
	"sethostname",
	"setns",
	"settimeofday",
	"stime",
	"swapoff",
	"swapon",
	"syslog",
	"sysfs",
	"umount",
	"umount2",
	"unshare",
	"uselib",
	"userfaultfd",
	"ustat",
	"vhangup",
	"vm86",
	"vm86old",
	NULL,
};

/* Decided by their arguments in add_argument_rules(); listed in neither table. */
static const char *const argument_filtered[] = {
	"clone", "clone3", "ioctl", "personality", "socket", "socketpair",
};

static const uint64_t clone_ns_flags[] = {
	CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
	CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP,
};

#define ALLOW SCMP_ACT_ALLOW
#define DENY SCMP_ACT_ERRNO(SANDBOX_SECCOMP_ERRNO)

int sandbox_seccomp_resolve(const char *name, int *ret_nr, BbxError *err)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR) {
		const struct scmp_version *v = seccomp_version();
		return bbx_error_set(err, -ENOENT, BBX_SETUP,
				     "seccomp: libseccomp %u.%u.%u does not know the syscall '%s'",
				     v ? v->major : 0, v ? v->minor : 0, v ? v->micro : 0, name);
	}
	*ret_nr = nr;
	return 0;
}

static bool name_in(const char *name, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (list[i] && strcmp(list[i], name) == 0)
			return true;
	return false;
}

static size_t strv_count(const char *const *l)
{
	size_t n = 0;
	while (l[n])
		n++;
	return n;
}

/*
 * A table may not name a syscall twice, or one that the other table or the argument rules
 * decide: which rule won would then be up to libseccomp instead of the tables.
 */
static int check_tables(BbxError *err)
{
	const char *const *tables[] = { sandbox_seccomp_allowed, sandbox_seccomp_denied };
	for (size_t t = 0; t < ELEMENTSOF(tables); t++)
		for (size_t i = 0; tables[t][i]; i++) {
			const char *name = tables[t][i];
			bool dup = name_in(name, tables[t], i) ||
				   name_in(name, argument_filtered, ELEMENTSOF(argument_filtered));
			for (size_t u = 0; !dup && u < ELEMENTSOF(tables); u++)
				dup = u != t && name_in(name, tables[u], strv_count(tables[u]));
			if (dup)
				return bbx_error_set(err, -EINVAL, BBX_SETUP,
						     "seccomp: syscall '%s' is decided twice",
						     name);
		}
	return 0;
}

static int add_table(scmp_filter_ctx ctx, uint32_t action, const char *const *names,
		     const char **ret_what, BbxError *err)
{
	for (size_t i = 0; names[i]; i++) {
		int nr = -1, r;
		r = sandbox_seccomp_resolve(names[i], &nr, err);
		if (r < 0)
			return r;
		r = seccomp_rule_add(ctx, action, nr, 0);
		/* -EDOM: a name of another architecture (open on aarch64); nothing to filter. */
		if (r < 0 && r != -EDOM) {
			*ret_what = names[i];
			return r;
		}
	}
	return 0;
}

/*
 * Allow syscall nr unless the low 32 bits of argument arg are one of denied[] (no
 * duplicates); those get EPERM. The kernel truncates such arguments (an ioctl request is an
 * unsigned int), so only the low half may decide, and libseccomp has no masked "not equal":
 * the rest of the 32-bit space is covered by masked compares instead. Walking each denied
 * value from the top bit, the sibling of every prefix (same higher bits, this bit flipped)
 * that holds no denied value is one allow rule; every other value lies in one such sibling,
 * at the bit where it leaves the longest prefix it shares with a denied value.
 */
static int add_allow_except_u32(scmp_filter_ctx ctx, int nr, unsigned arg, const uint32_t *denied,
				size_t n)
{
	int r;

	for (size_t i = 0; i < n; i++) {
		for (int b = 31; b >= 0; b--) {
			uint32_t mask = (uint32_t)(0xffffffffULL << b);
			uint32_t sibling = (denied[i] ^ (1U << b)) & mask;
			bool holds_denied = false, seen = false;
			for (size_t j = 0; j < n; j++) {
				holds_denied |= (denied[j] & mask) == sibling;
				/* The same sibling of an earlier value is already allowed. */
				seen |= j < i && (denied[j] & mask) == (denied[i] & mask);
			}
			if (holds_denied || seen)
				continue;
			r = seccomp_rule_add(ctx, ALLOW, nr, 1,
					     SCMP_CMP64(arg, SCMP_CMP_MASKED_EQ, mask, sibling));
			if (r < 0)
				return r;
		}
		r = seccomp_rule_add(ctx, DENY, nr, 1,
				     SCMP_CMP64(arg, SCMP_CMP_MASKED_EQ, 0xffffffffULL, denied[i]));
		if (r < 0)
			return r;
	}
	return 0;
}

static int add_argument_rules(scmp_filter_ctx ctx, const char **ret_what)
{
	int r;

	/*
	 * clone: allowed without namespace flags, EPERM with any. clone3 is left unlisted: it
	 * gets ENOSYS, glibc falls back to clone, and clone's flags are visible to BPF while
	 * clone3's sit in memory it cannot read.
	 */
	*ret_what = "clone";
	uint64_t ns_all = 0;
	for (size_t i = 0; i < ELEMENTSOF(clone_ns_flags); i++)
		ns_all |= clone_ns_flags[i];
	r = seccomp_rule_add(ctx, ALLOW, SCMP_SYS(clone), 1,
			     SCMP_A0_64(SCMP_CMP_MASKED_EQ, ns_all, 0));
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(clone_ns_flags); i++)
		r = seccomp_rule_add(
			ctx, DENY, SCMP_SYS(clone), 1,
			SCMP_A0_64(SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]));
	if (r < 0)
		return r;

	/*
	 * ioctl: everything but TIOCSTI (typing into another session's terminal) and TIOCLINUX,
	 * compared on the low 32 bits so high bits set in the register do not slip past.
	 */
	*ret_what = "ioctl";
	static const uint32_t ioctls[] = { TIOCSTI, TIOCLINUX };
	r = add_allow_except_u32(ctx, SCMP_SYS(ioctl), 1, ioctls, ELEMENTSOF(ioctls));
	if (r < 0)
		return r;

	/*
	 * Socket families: only AF_UNIX, AF_INET, AF_INET6; any other gets EPERM. AF_NETLINK
	 * too: the sandbox has nothing to configure (no CAP_NET_ADMIN, loopback only), glibc's
	 * getaddrinfo/if_nameindex fall back without it, and netlink families are kernel attack
	 * surface. Values are compared as 64-bit: anything above AF_INET6, high bits included,
	 * is denied, so high bits cannot alias an allowed family.
	 */
	static const struct {
		const char *name;
		int nr;
	} socket_calls[] = { { "socket", SCMP_SYS(socket) },
			     { "socketpair", SCMP_SYS(socketpair) } };
	static const uint64_t families[] = { AF_UNIX, AF_INET, AF_INET6 };
	for (size_t s = 0; s < ELEMENTSOF(socket_calls); s++) {
		int nr = socket_calls[s].nr;
		*ret_what = socket_calls[s].name;
		for (size_t f = 0; f < ELEMENTSOF(families); f++) {
			r = seccomp_rule_add(ctx, ALLOW, nr, 1,
					     SCMP_A0_64(SCMP_CMP_EQ, families[f]));
			if (r < 0)
				return r;
		}
		for (uint64_t fam = 0; fam < AF_INET6; fam++) {
			if (fam == AF_UNIX || fam == AF_INET)
				continue;
			r = seccomp_rule_add(ctx, DENY, nr, 1, SCMP_A0_64(SCMP_CMP_EQ, fam));
			if (r < 0)
				return r;
		}
		r = seccomp_rule_add(ctx, DENY, nr, 1, SCMP_A0_64(SCMP_CMP_GT, (uint64_t)AF_INET6));
		if (r < 0)
			return r;
	}

	/*
	 * personality: like Docker, PER_LINUX (0), PER_LINUX32 (0x8), UNAME26 (0x20000) and
	 * their union are allowed. Any other bit of the low 32 is denied on its own (libseccomp
	 * cannot combine two tests on one argument), as is any value with high bits. Unlike
	 * Docker the 0xffffffff query is denied with them.
	 */
	*ret_what = "personality";
	static const uint64_t personas[] = { 0x0, 0x8, 0x20000, 0x20008 };
	for (size_t i = 0; i < ELEMENTSOF(personas); i++) {
		r = seccomp_rule_add(ctx, ALLOW, SCMP_SYS(personality), 1,
				     SCMP_A0_64(SCMP_CMP_EQ, personas[i]));
		if (r < 0)
			return r;
	}
	for (unsigned b = 0; b < 32; b++) {
		uint64_t bit = 1ULL << b;
		if (bit == 0x8 || bit == 0x20000)
			continue;
		r = seccomp_rule_add(ctx, DENY, SCMP_SYS(personality), 1,
				     SCMP_A0_64(SCMP_CMP_MASKED_EQ, bit, bit));
		if (r < 0)
			return r;
	}
	return seccomp_rule_add(ctx, DENY, SCMP_SYS(personality), 1,
				SCMP_A0_64(SCMP_CMP_GT, 0xffffffffULL));
}

static void seccomp_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

int sandbox_seccomp_build(uint32_t arch, struct sock_filter **ret_prog, size_t *ret_len,
			  BbxError *err)
{
	const char *what = "init";
	int r;

	/*
	 * The tables name the 64-bit calls of these two; elsewhere they would miss the 32-bit
	 * names (and s390x passes clone's flags in another argument). Refuse rather than guess.
	 */
	if (arch == 0)
		arch = seccomp_arch_native();
	if (arch != SCMP_ARCH_X86_64 && arch != SCMP_ARCH_AARCH64)
		return bbx_error_set(err, -EOPNOTSUPP, BBX_SETUP,
				     "seccomp: architecture 0x%08x: the policy covers x86_64 and "
				     "aarch64 only",
				     arch);
	r = check_tables(err);
	if (r < 0)
		return r;
	_cleanup_(seccomp_releasep) scmp_filter_ctx ctx =
		seccomp_init(SCMP_ACT_ERRNO(SANDBOX_SECCOMP_DEFAULT_ERRNO));
	if (!ctx)
		return bbx_error_set(err, -ENOMEM, BBX_SETUP, "seccomp: init failed");
	/*
	 * Only one architecture is in the filter: every other ABI (i386 through int 0x80, x32
	 * with bit 30 set in the number, 32-bit arm on aarch64) hits the bad-architecture
	 * action and is refused as a whole, so none of them can reach a syscall the native
	 * rules deny. A binary tree keeps the lookup short for ~300 allowed numbers.
	 */
	what = "attributes";
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, DENY);
	if (r >= 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r >= 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (r >= 0 && arch != seccomp_arch_native()) {
		what = "architecture";
		r = seccomp_arch_add(ctx, arch);
		if (r >= 0)
			r = seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE);
	}
	if (r >= 0)
		r = add_table(ctx, ALLOW, sandbox_seccomp_allowed, &what, err);
	if (r >= 0)
		r = add_table(ctx, DENY, sandbox_seccomp_denied, &what, err);
	if (r >= 0)
		r = add_argument_rules(ctx, &what);
	if (r < 0)
		return bbx_error_set(err, r, BBX_SETUP, "seccomp: %s: %s", what, strerror(-r));

	_cleanup_close_ int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		return bbx_error_set(err, r, BBX_SETUP, "seccomp: memfd_create: %s", strerror(-r));
	}
	r = seccomp_export_bpf(ctx, fd);
	if (r < 0)
		return bbx_error_set(err, r, BBX_SETUP, "seccomp: export: %s", strerror(-r));
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	r = read_full_fd(fd, 1 << 20, &buf, &size);
	if (r < 0)
		return bbx_error_set(err, r, BBX_SETUP, "seccomp: read back: %s", strerror(-r));
	if (size == 0 || size % sizeof(struct sock_filter) != 0)
		return bbx_error_set(err, -EIO, BBX_SETUP, "seccomp: export gave %zu bytes", size);
	*ret_prog = (struct sock_filter *)(void *)TAKE_PTR(buf);
	*ret_len = size / sizeof(struct sock_filter);
	return 0;
}
