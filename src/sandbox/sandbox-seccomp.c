/* SPDX-License-Identifier: MIT */
#include "sandbox-seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "file-util.h"
#include "macro.h"

/*
 * Everything Docker's default profile denies (with or without capabilities, since the sandbox
 * has none), plus what DESIGN.md section 5 adds. Names unknown to an architecture are skipped.
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
	"mount",
	"mount_setattr",
	"move_mount",
	"move_pages",
	"name_to_handle_at",
	"nfsservctl",
	"open_by_handle_at",
	"open_tree",
	"open_tree_attr",
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

static const uint64_t clone_ns_flags[] = {
	CLONE_NEWNS,  CLONE_NEWUTS, CLONE_NEWIPC,    CLONE_NEWUSER,
	CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP,
};

#define DENY SCMP_ACT_ERRNO(SANDBOX_SECCOMP_ERRNO)

static int add_rules(scmp_filter_ctx ctx, const char **ret_what)
{
	int r;

	for (size_t i = 0; sandbox_seccomp_denied[i]; i++) {
		int nr = seccomp_syscall_resolve_name(sandbox_seccomp_denied[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;
		r = seccomp_rule_add(ctx, DENY, nr, 0);
		if (r < 0 && r != -EDOM) {
			*ret_what = sandbox_seccomp_denied[i];
			return r;
		}
	}

	/* glibc's clone3 use falls back to clone on ENOSYS; clone's flags are visible to BPF. */
	*ret_what = "clone3";
	r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (r < 0)
		return r;
	*ret_what = "clone";
	for (size_t i = 0; i < ELEMENTSOF(clone_ns_flags); i++) {
		r = seccomp_rule_add(
			ctx, DENY, SCMP_SYS(clone), 1,
			SCMP_A0(SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]));
		if (r < 0)
			return r;
	}

	/*
	 * The ioctl request is an unsigned int in the kernel but a 64-bit register here: compare
	 * only the low 32 bits so TIOCSTI with high bits set does not slip through.
	 */
	*ret_what = "ioctl";
	static const uint64_t ioctls[] = {TIOCSTI, TIOCLINUX};
	for (size_t i = 0; i < ELEMENTSOF(ioctls); i++) {
		r = seccomp_rule_add(ctx, DENY, SCMP_SYS(ioctl), 1,
				     SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, ioctls[i]));
		if (r < 0)
			return r;
	}

	/*
	 * Socket families: only AF_UNIX, AF_INET, AF_INET6. AF_NETLINK is denied too: the
	 * sandbox has nothing to configure (no CAP_NET_ADMIN, loopback only), glibc's
	 * getaddrinfo/if_nameindex fall back without it, and netlink families are kernel attack
	 * surface. Values are compared as 64-bit: anything above AF_INET6 is denied, so high
	 * bits cannot alias an allowed family.
	 */
	static const char *const socket_calls[] = {"socket", "socketpair"};
	for (size_t s = 0; s < ELEMENTSOF(socket_calls); s++) {
		int nr = seccomp_syscall_resolve_name(socket_calls[s]);
		*ret_what = socket_calls[s];
		if (nr == __NR_SCMP_ERROR)
			continue;
		for (uint64_t fam = 0; fam < AF_INET6; fam++) {
			if (fam == AF_UNIX || fam == AF_INET)
				continue;
			r = seccomp_rule_add(ctx, DENY, nr, 1, SCMP_A0(SCMP_CMP_EQ, fam));
			if (r < 0)
				return r;
		}
		r = seccomp_rule_add(ctx, DENY, nr, 1, SCMP_A0(SCMP_CMP_GT, (uint64_t)AF_INET6));
		if (r < 0)
			return r;
	}

	/*
	 * personality: like Docker, only PER_LINUX (0), PER_LINUX32 (0x8), UNAME26 (0x20000)
	 * and their union. libseccomp cannot combine two tests on one argument, so every other
	 * bit of the low 32 is denied on its own; the 0xffffffff query is denied with them.
	 */
	*ret_what = "personality";
	for (unsigned b = 0; b < 32; b++) {
		uint64_t bit = 1ULL << b;
		if (bit == 0x8 || bit == 0x20000)
			continue;
		r = seccomp_rule_add(ctx, DENY, SCMP_SYS(personality), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit));
		if (r < 0)
			return r;
	}
	return 0;
}

int sandbox_seccomp_build(uint32_t arch, struct sock_filter **ret_prog, size_t *ret_len,
			  BbxError *err)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	const char *what = "init";
	int r;

	if (!ctx)
		return bbx_error_set(err, -ENOMEM, "setup", "seccomp: init failed");
	/*
	 * Only one architecture is in the filter: every other ABI (i386 through int 0x80, x32
	 * with bit 30 set in the number) hits the bad-architecture action and is refused as a
	 * whole, so none of them can reach a syscall the native rules deny.
	 */
	what = "attributes";
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, DENY);
	if (r >= 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r >= 0 && arch != 0 && arch != seccomp_arch_native()) {
		what = "architecture";
		r = seccomp_arch_add(ctx, arch);
		if (r >= 0)
			r = seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE);
	}
	if (r >= 0)
		r = add_rules(ctx, &what);
	if (r < 0) {
		seccomp_release(ctx);
		return bbx_error_set(err, r, "setup", "seccomp: %s: %s", what, strerror(-r));
	}

	_cleanup_close_ int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		seccomp_release(ctx);
		return bbx_error_set(err, r, "setup", "seccomp: memfd_create: %s", strerror(-r));
	}
	r = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (r < 0)
		return bbx_error_set(err, r, "setup", "seccomp: export: %s", strerror(-r));
	if (lseek(fd, 0, SEEK_SET) < 0)
		return -errno;
	_cleanup_free_ char *buf = NULL;
	size_t size = 0;
	r = read_full_fd(fd, 1 << 20, &buf, &size);
	if (r < 0)
		return bbx_error_set(err, r, "setup", "seccomp: read back: %s", strerror(-r));
	if (size == 0 || size % sizeof(struct sock_filter) != 0)
		return bbx_error_set(err, -EIO, "setup", "seccomp: export gave %zu bytes", size);
	*ret_prog = (struct sock_filter *)(void *)TAKE_PTR(buf);
	*ret_len = size / sizeof(struct sock_filter);
	return 0;
}
