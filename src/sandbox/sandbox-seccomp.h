/* SPDX-License-Identifier: MIT */
/*
 * The sandbox's seccomp filter, built with libseccomp and exported as a raw BPF program, so the
 * child only needs the seccomp(2) syscall (no allocation after clone). The build runs this once
 * (sandbox-seccomp-gen) and embeds the program in sandbox-seccomp-bpf.h; spawns copy that.
 *
 * Policy: default allow, an explicit deny list returning EPERM (Docker's default profile plus
 * io_uring, namespace flags of clone, TIOCSTI/TIOCLINUX with a 32-bit masked compare, socket
 * families other than AF_UNIX/AF_INET/AF_INET6 including AF_NETLINK), clone3 -> ENOSYS so libc
 * falls back to clone whose flags can be inspected, and every foreign ABI (i386 via int 0x80,
 * x32) denied as a whole through the filter's bad-architecture action.
 *
 * Ownership: *ret_prog is malloc'd and owned by the caller. Thread-safe.
 */
#pragma once

#include <linux/filter.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The errno every denied syscall returns (clone3 returns ENOSYS). */
#define SANDBOX_SECCOMP_ERRNO 1 /* EPERM */

/*
 * Build the filter for arch (a SCMP_ARCH_* value; 0 = the native one). The program's
 * instructions go to *ret_prog, their count to *ret_len.
 */
int sandbox_seccomp_build(uint32_t arch, struct sock_filter **ret_prog, size_t *ret_len,
			  BbxError *err);

/* Names of the syscalls denied outright (NULL-terminated), for tests and documentation. */
extern const char *const sandbox_seccomp_denied[];
