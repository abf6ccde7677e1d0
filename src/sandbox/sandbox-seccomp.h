/* SPDX-License-Identifier: MIT */
/*
 * The sandbox's seccomp filter, built with libseccomp and exported as a raw BPF program, so the
 * child only needs the seccomp(2) syscall (no allocation after clone). The build runs this once
 * (sandbox-seccomp-gen) and embeds the program in sandbox-seccomp-bpf.h; spawns copy that.
 *
 * Policy: an allow-list. The syscalls Docker's default profile allows unconditionally (for
 * x86_64 and aarch64) are allowed, minus the ones DESIGN.md section 5 denies; a denied table
 * (everything Docker allows only with a capability, io_uring, the keyring, bpf, userfaultfd,
 * ptrace and process_vm_*, the mount API, namespaces, kexec and modules, modify_ldt...)
 * returns EPERM; a few calls are decided by their arguments (clone without namespace flags,
 * ioctl but TIOCSTI/TIOCLINUX on the low 32 bits, socket/socketpair for AF_UNIX/AF_INET/
 * AF_INET6 only, personality PER_LINUX/PER_LINUX32/UNAME26); every syscall not named,
 * clone3 and those newer than the tables among them, returns ENOSYS so libc falls back as it
 * does on an older kernel. Every foreign ABI (i386 via int 0x80, x32, arm on aarch64) is
 * denied as a whole through the filter's bad-architecture action.
 *
 * Every name in the tables must be known to the build's libseccomp: one it cannot resolve
 * fails the build (sandbox-seccomp-gen exits non-zero naming it) instead of being skipped.
 *
 * Ownership: *ret_prog is malloc'd and owned by the caller. Thread-safe.
 */
#pragma once

#include <errno.h>
#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The errno of the denied table and of refused arguments and ABIs. */
#define SANDBOX_SECCOMP_ERRNO EPERM
/* The errno of every syscall the filter does not name (clone3 among them). */
#define SANDBOX_SECCOMP_DEFAULT_ERRNO ENOSYS

/*
 * Build the filter for arch (a SCMP_ARCH_* value; 0 = the native one). The program's
 * instructions go to *ret_prog, their count to *ret_len.
 */
int sandbox_seccomp_build(uint32_t arch, struct sock_filter **ret_prog, size_t *ret_len,
			  BbxError *err);

/*
 * The syscall number of name for the build's native architecture in *ret_nr (negative for a
 * name that exists only on other architectures). -ENOENT, with a message naming the syscall
 * and the libseccomp version, when libseccomp does not know the name.
 */
int sandbox_seccomp_resolve(const char *name, int *ret_nr, BbxError *err);

/*
 * Names allowed whatever their arguments, and names denied outright with SANDBOX_SECCOMP_ERRNO
 * (NULL-terminated), for tests and documentation.
 */
extern const char *const sandbox_seccomp_allowed[];
extern const char *const sandbox_seccomp_denied[];
