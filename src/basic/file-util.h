/* SPDX-License-Identifier: MIT */
/*
 * Whole-file reads and writes, directory creation, fd loops. All -errno, never print.
 * Paths passed here are trusted (state dir, config); agent-writable trees are opened
 * with openat2 by the modules that own them.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

/* Read at most max bytes (-EFBIG beyond); *ret is NUL-terminated and owned by the caller. */
int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size);
int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size);
/* Write via a temp file + fsync + rename, so readers see old or new, never half. */
int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode);
int write_all(int fd, const void *data, size_t size);
int read_exact(int fd, void *data, size_t size);
/*
 * For trees a less trusted process owns: write dirfd/name atomically without following
 * any symlink (temp file created O_EXCL|O_NOFOLLOW, owned by uid:gid via fchown, fsynced,
 * renamed over name). Never writes outside dirfd.
 */
int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t size, mode_t mode,
			 uid_t uid, gid_t gid);
/* Open dirfd/name as a directory, refusing a symlink (O_NOFOLLOW), O_CLOEXEC. */
int open_dir_at_nofollow(int dirfd, const char *name);
/* mkdir dirfd/name if missing (never through a symlink) and make it uid:gid, mode. */
int mkdir_owned_at(int dirfd, const char *name, mode_t mode, uid_t uid, gid_t gid);

/* mkdir -p of relpath below dirfd, one component at a time, never through a symlink and
 * never above dirfd ("..", absolute parts: -EINVAL; a symlink on the way: -ELOOP). */
int mkdir_beneath(int dirfd, const char *relpath, mode_t mode);

/*
 * Open the directory relpath below dirfd as an O_PATH fd, resolved with openat2
 * RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: a symlink anywhere on the
 * way is -ELOOP, a way out of dirfd -EXDEV, a FIFO, device or file -ENOTDIR (never opened,
 * so never blocks). With mode != 0, missing components are created (mode, owned by the
 * caller) one at a time through the same checks. relpath "" or "." is dirfd itself.
 * Returns the new fd (O_CLOEXEC) or -errno.
 */
int open_dir_beneath(int dirfd, const char *relpath, mode_t mode);

/* mkdir -p with mode for each created component. */
int mkdir_p(const char *path, mode_t mode);
/* Remove a tree without following symlinks; -ENOENT is not an error. */
int rm_rf(const char *path);
/* Make every entry of the tree at path (path included) uid:gid, never following a symlink
 * (a link itself is changed). For fresh trees only: a volume's data is never walked. */
int chown_tree(const char *path, uid_t uid, gid_t gid);
/* Write a short string to an existing file (sysfs/cgroupfs style), no O_CREAT. */
int write_string_file(const char *path, const char *s);
