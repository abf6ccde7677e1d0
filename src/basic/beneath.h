/* SPDX-License-Identifier: MIT */
/*
 * Files beneath a root another, less trusted party can write (an environment's code tree or
 * volume): every path is a relative path from the caller's input, resolved only beneath an
 * O_PATH fd of the root with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV) and O_NOFOLLOW, and acted on through the fds it
 * gives. Nothing here builds a path string from the input and hands it to the kernel.
 *
 * Errors (-errno) callers tell apart:
 *   -EINVAL   the path is malformed (beneath_path_check() says why)
 *   -ELOOP    a symbolic link (or magic link) is on the way or is the file itself
 *   -EXDEV    the path leaves the root (a mount point on the way, or ".." out of it)
 *   -ENOENT, -ENOTDIR, -EISDIR   as usual
 *   -ESPIPE   not a regular file (a FIFO, socket or device node): never opened for I/O
 *   -EMLINK   a regular file with more than one hard link (it may be a host file's twin)
 *   -EFBIG    over a size limit
 * Reads and writes are bounded by the caller's limits. Thread-safe; no allocation is kept.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define BENEATH_PATH_MAX 4095

/*
 * Check path (n bytes, which may hold a NUL) as a relative path beneath a root: not empty
 * (unless allow_root, where "" and "." name the root itself), not absolute, no NUL, no ""
 * (a//b, trailing /), "." or ".." component, no component over 255 bytes, at most
 * BENEATH_PATH_MAX bytes. Returns 0, or -EINVAL with *ret_why (optional) a static phrase.
 */
int beneath_path_check(const char *path, size_t n, bool allow_root, const char **ret_why);

/* openat2 of path beneath rootfd with the resolve flags above, flags | O_NOFOLLOW |
 * O_CLOEXEC. path must have passed beneath_path_check(). */
int beneath_open(int rootfd, const char *path, int flags);

/*
 * Open the regular file at path for reading: first as O_PATH (so a FIFO or device is never
 * opened for I/O), checked with fstat, then opened again O_RDONLY | O_NONBLOCK and checked to
 * be the same inode. Returns the fd, *ret_st (optional) its stat.
 */
int beneath_open_regular(int rootfd, const char *path, struct stat *ret_st);

typedef struct BeneathRead {
	char *data;	/* NUL-terminated (not counted), owned by the caller */
	size_t n;	/* bytes read */
	uint64_t size;	/* the file's size */
	bool truncated; /* the file goes on past offset + n */
} BeneathRead;

/* Read at most limit bytes of the regular file at path from offset. */
int beneath_read(int rootfd, const char *path, uint64_t offset, size_t limit, BeneathRead *ret);
void beneath_read_done(BeneathRead *r);

typedef struct BeneathEntry {
	char *name;
	const char *type; /* "file", "directory", "symlink", "fifo", "socket", "char", "block" */
	uint64_t size;
	mode_t mode; /* permission bits only */
} BeneathEntry;

/* The entries of the directory at path ("" or "." for the root), sorted by name, at most
 * max of them (*ret_truncated says whether there were more). */
int beneath_list(int rootfd, const char *path, size_t max, BeneathEntry **ret, size_t *ret_n,
		 bool *ret_truncated);
void beneath_entries_free(BeneathEntry *v, size_t n);

typedef struct BeneathWrite {
	const void *data;
	size_t n;
	mode_t mode; /* permission bits; 0: the existing file's, or 0644 for a new one */
	uid_t uid;   /* owner of the file and of directories made for it */
	gid_t gid;
	bool parents; /* make missing parent directories (0755, uid:gid) */
} BeneathWrite;

/*
 * Create or replace the regular file at path with w->data: a temp file made O_EXCL |
 * O_NOFOLLOW in the parent directory's fd, fchown'd to w->uid:w->gid, written, fsynced and
 * renamed over the name within that same directory fd. An existing target must be a regular
 * file with one link (-ESPIPE, -ELOOP for a symlink, -EISDIR, -EMLINK otherwise), and the
 * directory it goes in must be owned by w->uid (-EACCES).
 * *ret_created (optional) says whether the file is new.
 */
int beneath_write(int rootfd, const char *path, const BeneathWrite *w, bool *ret_created);

/*
 * beneath_write() in a child process that first drops to w->uid:w->gid (no supplementary
 * groups, so no capabilities), so the kernel's own permission checks apply to every step as
 * they would to the tree's owner. For a root caller; w->uid and w->gid must not be 0
 * (-EPERM). Returns what the child's beneath_write() returned.
 */
int beneath_write_as_owner(int rootfd, const char *path, const BeneathWrite *w, bool *ret_created);

typedef struct BeneathFile {
	char *path;   /* relative to the root, '/'-separated */
	char *data;   /* content (a symlink's: its target); NULL when unread */
	size_t size;  /* bytes of data, or the file's size when unread */
	bool symlink; /* a symbolic link (read, never followed) */
	bool unread;  /* over max_file_size, or a regular file with several links */
	bool executable;
} BeneathFile;

/*
 * Every regular file and symlink beneath rootfd (a top-level ".git" skipped; FIFOs, sockets
 * and devices ignored; never crossing a mount), sorted by path, each read up to
 * max_file_size and all of them up to max_total bytes (the rest left unread). More than
 * max_files entries, or deeper than 64 levels: -EFBIG.
 */
int beneath_collect(int rootfd, size_t max_files, size_t max_file_size, size_t max_total,
		    BeneathFile **ret, size_t *ret_n);
void beneath_files_free(BeneathFile *v, size_t n);
