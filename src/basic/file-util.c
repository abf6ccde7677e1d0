/* SPDX-License-Identifier: MIT */
#include "file-util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "macro.h"

int read_full_fd(int fd, size_t max, char **ret, size_t *ret_size)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0, alloc = 0;

	for (;;) {
		if (len + 1 >= alloc) {
			size_t n = alloc ? alloc * 2 : 4096;
			if (n > max + 2)
				n = max + 2;
			if (n <= alloc)
				return -EFBIG;
			char *p = realloc(buf, n);
			if (!p)
				return -ENOMEM;
			buf = p;
			alloc = n;
		}
		ssize_t k = read(fd, buf + len, alloc - len - 1);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		len += (size_t)k;
		if (len > max)
			return -EFBIG;
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf)
			return -ENOMEM;
	}
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_size)
		*ret_size = len;
	return 0;
}

int read_full_file(const char *path, size_t max, char **ret, size_t *ret_size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	return read_full_fd(fd, max, ret, ret_size);
}

int write_all(int fd, const void *data, size_t size)
{
	const char *p = data;
	while (size > 0) {
		ssize_t k = write(fd, p, size);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += k;
		size -= (size_t)k;
	}
	return 0;
}

int read_exact(int fd, void *data, size_t size)
{
	char *p = data;
	while (size > 0) {
		ssize_t k = read(fd, p, size);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return -EPIPE;
		p += k;
		size -= (size_t)k;
	}
	return 0;
}

int write_file_atomic(const char *path, const void *data, size_t size, mode_t mode)
{
	char tmp[PATH_MAX];
	int r;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;
	_cleanup_close_ int fd =
		open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	r = write_all(fd, data, size);
	if (r >= 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r >= 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		unlink(tmp);
	return r;
}

int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return n ? -ENAMETOOLONG : -EINVAL;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return -errno;
			*p = c;
			if (c == '\0')
				break;
		}
	}
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int rm_rf_at(int dirfd, const char *name)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dirfd, name, 0) < 0 && errno != ENOENT ? -errno : 0;

	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		safe_close(fd);
		return -errno;
	}
	int r = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int k = rm_rf_at(fd, de->d_name);
		if (k < 0 && r == 0)
			r = k;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && r == 0)
		r = -errno;
	return r;
}

int rm_rf(const char *path)
{
	return rm_rf_at(AT_FDCWD, path);
}

static int chown_tree_at(int dirfd, const char *name, uid_t uid, gid_t gid)
{
	struct stat st;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return 0;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		safe_close(fd);
		return -errno;
	}
	int r = 0;
	struct dirent *de;
	while (r >= 0 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			r = chown_tree_at(fd, de->d_name, uid, gid);
	closedir(d);
	return r;
}

int chown_tree(const char *path, uid_t uid, gid_t gid)
{
	return chown_tree_at(AT_FDCWD, path, uid, gid);
}

int write_string_file(const char *path, const char *s)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	size_t n = strlen(s);
	ssize_t k = write(fd, s, n);
	if (k < 0)
		return -errno;
	return (size_t)k == n ? 0 : -EIO;
}

int open_dir_at_nofollow(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int mkdir_owned_at(int dirfd, const char *name, mode_t mode, uid_t uid, gid_t gid)
{
	if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
		return -errno;
	_cleanup_close_ int fd = open_dir_at_nofollow(dirfd, name);
	if (fd < 0)
		return fd;
	if (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0)
		return -errno;
	return 0;
}

int write_file_atomic_at(int dirfd, const char *name, const void *data, size_t size, mode_t mode,
			 uid_t uid, gid_t gid)
{
	char tmp[256];
	int r;

	if ((size_t)snprintf(tmp, sizeof(tmp), ".%s.tmp.%d", name, (int)getpid()) >= sizeof(tmp))
		return -ENAMETOOLONG;
	(void)unlinkat(dirfd, tmp, 0);
	_cleanup_close_ int fd =
		openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	r = write_all(fd, data, size);
	if (r >= 0 && (fchown(fd, uid, gid) < 0 || fchmod(fd, mode) < 0))
		r = -errno;
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r >= 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		r = -errno;
	if (r < 0)
		(void)unlinkat(dirfd, tmp, 0);
	return r;
}

int mkdir_beneath(int dirfd, const char *relpath, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(relpath);

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, relpath, n + 1);
	int cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return -errno;
	char *save = NULL;
	for (char *part = strtok_r(buf, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
		if (!strcmp(part, "..") || !strcmp(part, ".")) {
			close(cur);
			return -EINVAL;
		}
		if (mkdirat(cur, part, mode) < 0 && errno != EEXIST) {
			int r = -errno;
			close(cur);
			return r;
		}
		int next = openat(cur, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int r = next < 0 ? (errno == ENOTDIR ? -ELOOP : -errno) : 0;
		close(cur);
		if (r < 0)
			return r;
		cur = next;
	}
	close(cur);
	return 0;
}

static int openat2_beneath(int dirfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	return fd < 0 ? -errno : fd;
}

int open_dir_beneath(int dirfd, const char *relpath, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(relpath);

	if (relpath[0] == '/' || n >= sizeof(buf))
		return -EINVAL;
	if (mode == 0 || n == 0 || !strcmp(relpath, "."))
		return openat2_beneath(dirfd, n ? relpath : ".", O_PATH | O_DIRECTORY);
	memcpy(buf, relpath, n + 1);
	int cur = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (cur < 0)
		return -errno;
	char *save = NULL;
	for (char *part = strtok_r(buf, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
		if (!strcmp(part, "..")) {
			close(cur);
			return -EXDEV;
		}
		if (!strcmp(part, "."))
			continue;
		if (mkdirat(cur, part, mode) < 0 && errno != EEXIST) {
			int r = -errno;
			close(cur);
			return r;
		}
		int next = openat2_beneath(cur, part, O_PATH | O_DIRECTORY);
		close(cur);
		if (next < 0)
			return next;
		cur = next;
	}
	return cur;
}
