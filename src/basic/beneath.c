/* SPDX-License-Identifier: MIT */
#include "beneath.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "file-util.h"
#include "macro.h"

#define RESOLVE_ALL                                                                                \
	(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)

int beneath_path_check(const char *path, size_t n, bool allow_root, const char **ret_why)
{
	const char *why = NULL;

	if (!path)
		why = "is missing";
	else if (memchr(path, '\0', n))
		why = "contains a NUL byte";
	else if (n > BENEATH_PATH_MAX)
		why = "is too long";
	else if (n == 0 || (n == 1 && path[0] == '.'))
		why = allow_root ? NULL : "names no file";
	else if (path[0] == '/')
		why = "is absolute; paths are relative to the tree's root";
	else
		for (size_t i = 0, start = 0; i <= n; i++) {
			if (i < n && path[i] != '/')
				continue;
			size_t len = i - start;
			const char *c = path + start;
			if (len == 0)
				why = "has an empty component ('//' or a trailing '/')";
			else if (len == 1 && c[0] == '.')
				why = "has a '.' component";
			else if (len == 2 && c[0] == '.' && c[1] == '.')
				why = "has a '..' component; paths never leave the tree";
			else if (len > NAME_MAX)
				why = "has a component longer than 255 bytes";
			if (why)
				break;
			start = i + 1;
		}
	if (ret_why)
		*ret_why = why;
	return why ? -EINVAL : 0;
}

int beneath_open(int rootfd, const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
		.resolve = RESOLVE_ALL,
	};
	if (!path[0] || !strcmp(path, "."))
		path = ".";
	int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
	if (fd >= 0)
		return fd;
	int r = -errno;
	if (r == -ENOTDIR && (flags & O_DIRECTORY)) {
		/* O_NOFOLLOW|O_DIRECTORY on a link says "not a directory": say "a link". */
		how.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
		_cleanup_close_ int l = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
		struct stat st;
		if (l >= 0 && fstat(l, &st) == 0 && S_ISLNK(st.st_mode))
			r = -ELOOP;
	}
	return r;
}

static int check_regular(const struct stat *st)
{
	if (S_ISLNK(st->st_mode))
		return -ELOOP;
	if (S_ISDIR(st->st_mode))
		return -EISDIR;
	if (!S_ISREG(st->st_mode))
		return -ESPIPE;
	if (st->st_nlink > 1)
		return -EMLINK;
	return 0;
}

int beneath_open_regular(int rootfd, const char *path, struct stat *ret_st)
{
	struct stat st, st2;
	_cleanup_close_ int pfd = beneath_open(rootfd, path, O_PATH);
	if (pfd < 0)
		return pfd;
	if (fstat(pfd, &st) < 0)
		return -errno;
	int r = check_regular(&st);
	if (r < 0)
		return r;
	/* Swapped for a FIFO in between: O_NONBLOCK keeps the open from waiting for a writer,
	 * and the inode check below refuses it. */
	_cleanup_close_ int fd = beneath_open(rootfd, path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st2) < 0)
		return -errno;
	if (st2.st_dev != st.st_dev || st2.st_ino != st.st_ino)
		return -ESTALE;
	r = check_regular(&st2);
	if (r < 0)
		return r;
	if (ret_st)
		*ret_st = st2;
	return TAKE_FD(fd);
}

int beneath_read(int rootfd, const char *path, uint64_t offset, size_t limit, BeneathRead *ret)
{
	struct stat st;
	_cleanup_close_ int fd = beneath_open_regular(rootfd, path, &st);
	if (fd < 0)
		return fd;
	if (limit > SIZE_MAX - 1)
		return -EFBIG;
	uint64_t size = (uint64_t)st.st_size;
	size_t want =
		offset >= size ? 0 : (size - offset > limit ? limit : (size_t)(size - offset));
	_cleanup_free_ char *buf = malloc(want + 1);
	if (!buf)
		return -ENOMEM;
	size_t got = 0;
	while (got < want) {
		ssize_t k = pread(fd, buf + got, want - got, (off_t)(offset + got));
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break; /* it shrank meanwhile */
		got += (size_t)k;
	}
	buf[got] = '\0';
	*ret = (BeneathRead){
		.data = TAKE_PTR(buf),
		.n = got,
		.size = size,
		.truncated = offset + got < size,
	};
	return 0;
}

void beneath_read_done(BeneathRead *r)
{
	free(r->data);
	*r = (BeneathRead){ 0 };
}

static const char *type_name(mode_t m)
{
	return S_ISREG(m)    ? "file"
	       : S_ISDIR(m)  ? "directory"
	       : S_ISLNK(m)  ? "symlink"
	       : S_ISFIFO(m) ? "fifo"
	       : S_ISSOCK(m) ? "socket"
	       : S_ISCHR(m)  ? "char"
			     : "block";
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const BeneathEntry *)a)->name, ((const BeneathEntry *)b)->name);
}

void beneath_entries_free(BeneathEntry *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

int beneath_list(int rootfd, const char *path, size_t max, BeneathEntry **ret, size_t *ret_n,
		 bool *ret_truncated)
{
	int fd = beneath_open(rootfd, path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	BeneathEntry *v = NULL;
	size_t n = 0, cap = 0;
	bool truncated = false;
	int r = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n >= max) {
			truncated = true;
			break;
		}
		struct stat st;
		/* Gone meanwhile: not listed. Never followed: a link is listed as a link. */
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			BeneathEntry *nv = realloc(v, ncap * sizeof(*nv));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[n].name = strdup(de->d_name);
		if (!v[n].name) {
			r = -ENOMEM;
			break;
		}
		v[n].type = type_name(st.st_mode);
		v[n].size = (uint64_t)st.st_size;
		v[n].mode = st.st_mode & 07777;
		n++;
	}
	if (r == 0 && !de && errno)
		r = -errno;
	closedir(d);
	if (r < 0) {
		beneath_entries_free(v, n);
		return r;
	}
	if (n)
		qsort(v, n, sizeof(*v), entry_cmp);
	*ret = v;
	*ret_n = n;
	if (ret_truncated)
		*ret_truncated = truncated;
	return 0;
}

/* The directory the last component of path lives in (made when w->parents), as an O_PATH fd;
 * *ret_name points into path at that last component. */
static int open_parent(int rootfd, const char *path, const BeneathWrite *w, const char **ret_name)
{
	const char *slash = strrchr(path, '/');
	*ret_name = slash ? slash + 1 : path;
	if (!slash)
		return beneath_open(rootfd, ".", O_PATH | O_DIRECTORY);
	char dir[BENEATH_PATH_MAX + 1];
	size_t n = (size_t)(slash - path);
	if (n > BENEATH_PATH_MAX)
		return -EINVAL;
	memcpy(dir, path, n);
	dir[n] = '\0';
	int fd = beneath_open(rootfd, dir, O_PATH | O_DIRECTORY);
	if (fd != -ENOENT || !w->parents)
		return fd;
	/* One component at a time, each resolved beneath the one before it. */
	int cur = beneath_open(rootfd, ".", O_PATH | O_DIRECTORY);
	char *save = NULL;
	for (char *part = strtok_r(dir, "/", &save); cur >= 0 && part;
	     part = strtok_r(NULL, "/", &save)) {
		bool made = mkdirat(cur, part, 0755) == 0;
		if (!made && errno != EEXIST) {
			int r = -errno;
			close(cur);
			return r;
		}
		int next = beneath_open(cur, part, O_PATH | O_DIRECTORY);
		close(cur);
		/* Owned by the tree's owner, through the fd: a name swapped meanwhile for a
		 * symlink was refused above, and the fd is what was made or found. */
		if (next >= 0 && made && fchownat(next, "", w->uid, w->gid, AT_EMPTY_PATH) < 0) {
			int r = -errno;
			close(next);
			return r;
		}
		cur = next;
	}
	return cur;
}

int beneath_write(int rootfd, const char *path, const BeneathWrite *w, bool *ret_created)
{
	const char *name;
	_cleanup_close_ int dfd = open_parent(rootfd, path, w, &name);
	if (dfd < 0)
		return dfd;
	struct stat st;
	/* Only where the tree's owner could write itself: a directory someone else owns (the
	 * daemon's own skeleton, another uid's) is not written into on the owner's behalf. */
	if (fstat(dfd, &st) < 0)
		return -errno;
	if (st.st_uid != w->uid)
		return -EACCES;
	bool exists = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (!exists && errno != ENOENT)
		return -errno;
	if (exists) {
		int r = check_regular(&st);
		if (r < 0)
			return r;
	}
	mode_t mode = (w->mode ? w->mode : exists ? st.st_mode : 0644) & 0777;

	/* The temp name by hand (no stdio: this also runs in beneath_write_as_owner()'s child). */
	unsigned char rnd[8];
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return -EIO;
	static const char hex[] = "0123456789abcdef";
	char tmp[sizeof(".bbx-write-") + 2 * sizeof(rnd)] = ".bbx-write-";
	char *t = tmp + sizeof(".bbx-write-") - 1;
	for (size_t i = 0; i < sizeof(rnd); i++) {
		*t++ = hex[rnd[i] >> 4];
		*t++ = hex[rnd[i] & 15];
	}
	*t = '\0';
	/* An O_PATH directory fd serves as dirfd; O_EXCL|O_NOFOLLOW never opens what is there. */
	_cleanup_close_ int fd =
		openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (fchown(fd, w->uid, w->gid) < 0 || fchmod(fd, mode) < 0)
		r = -errno;
	if (r >= 0)
		r = write_all(fd, w->data, w->n);
	if (r >= 0 && fsync(fd) < 0)
		r = -errno;
	if (r >= 0) {
		/* What is at the name now is replaced, never written through: a file or link the
		 * other side put there meanwhile loses its name, a directory makes this fail. */
		if (renameat(dfd, tmp, dfd, name) < 0)
			r = -errno;
	}
	if (r < 0) {
		(void)unlinkat(dfd, tmp, 0);
		return r;
	}
	if (ret_created)
		*ret_created = !exists;
	return 0;
}

typedef struct Collect {
	BeneathFile *v;
	size_t n, cap, max_files, max_file_size, max_total, total;
} Collect;

void beneath_files_free(BeneathFile *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].path);
		free(v[i].data);
	}
	free(v);
}

static int collect_add(Collect *c, const char *prefix, const char *name, BeneathFile *f)
{
	if (c->n >= c->max_files)
		return -EFBIG;
	if (c->n == c->cap) {
		size_t ncap = c->cap ? c->cap * 2 : 64;
		BeneathFile *nv = realloc(c->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		c->v = nv;
		c->cap = ncap;
	}
	if (asprintf(&f->path, "%s%s%s", prefix, prefix[0] ? "/" : "", name) < 0) {
		f->path = NULL;
		return -ENOMEM;
	}
	c->v[c->n++] = *f;
	return 0;
}

static int collect_dir(Collect *c, int dfd, const char *prefix, unsigned depth)
{
	if (depth > 64)
		return -EFBIG;
	int fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int r = -errno;
		close(fd);
		return r;
	}
	int r = 0;
	struct dirent *de;
	while (r >= 0 && (de = readdir(d))) {
		const char *name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, "..") ||
		    (depth == 0 && !strcmp(name, ".git")))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		BeneathFile f = { .executable = (st.st_mode & 0111) != 0 };
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int sub =
				beneath_open(dirfd(d), name, O_RDONLY | O_DIRECTORY);
			if (sub == -EXDEV)
				continue; /* a mount point: not the tree's */
			if (sub < 0) {
				r = sub == -ENOENT || sub == -ELOOP ? 0
								    : sub; /* swapped meanwhile */
				continue;
			}
			_cleanup_free_ char *sp = NULL;
			if (asprintf(&sp, "%s%s%s", prefix, prefix[0] ? "/" : "", name) < 0) {
				r = -ENOMEM;
				break;
			}
			r = collect_dir(c, sub, sp, depth + 1);
			continue;
		}
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t k = readlinkat(dirfd(d), name, target, sizeof(target) - 1);
			if (k < 0)
				continue;
			f.symlink = true;
			f.executable = false;
			f.data = strndup(target, (size_t)k);
			f.size = (size_t)k;
			if (!f.data) {
				r = -ENOMEM;
				break;
			}
		} else if (S_ISREG(st.st_mode)) {
			BeneathRead rd;
			bool fits = (uint64_t)st.st_size <= c->max_file_size &&
				    (uint64_t)st.st_size <= c->max_total - c->total;
			int k = !fits ? -EFBIG
				      : beneath_read(dirfd(d), name, 0, c->max_file_size, &rd);
			if (k == -ENOENT || k == -ELOOP || k == -ESPIPE || k == -EISDIR)
				continue; /* swapped meanwhile */
			if (k == -EFBIG || k == -EMLINK || (k >= 0 && rd.truncated)) {
				if (k >= 0)
					beneath_read_done(&rd);
				f.unread = true;
				f.size = (size_t)st.st_size;
			} else if (k < 0) {
				r = k;
				break;
			} else {
				f.data = rd.data;
				f.size = rd.n;
				c->total += rd.n;
			}
		} else
			continue; /* FIFOs, sockets, devices: not content */
		r = collect_add(c, prefix, name, &f);
		if (r < 0)
			free(f.data);
	}
	closedir(d);
	return r;
}

static int file_cmp(const void *a, const void *b)
{
	return strcmp(((const BeneathFile *)a)->path, ((const BeneathFile *)b)->path);
}

int beneath_collect(int rootfd, size_t max_files, size_t max_file_size, size_t max_total,
		    BeneathFile **ret, size_t *ret_n)
{
	Collect c = { .max_files = max_files,
		      .max_file_size = max_file_size,
		      .max_total = max_total };
	_cleanup_close_ int fd = beneath_open(rootfd, ".", O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return fd;
	int r = collect_dir(&c, fd, "", 0);
	if (r < 0) {
		beneath_files_free(c.v, c.n);
		return r;
	}
	if (c.n)
		qsort(c.v, c.n, sizeof(*c.v), file_cmp);
	*ret = c.v;
	*ret_n = c.n;
	return 0;
}

int beneath_write_as_owner(int rootfd, const char *path, const BeneathWrite *w, bool *ret_created)
{
	if (w->uid == 0 || w->gid == 0)
		return -EPERM;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* One thread, no allocation from here on: drop to the owner (no supplementary
		 * groups, no capabilities left), then the same write as beneath_write(). */
		bool created = false;
		int r = 0;
		if (setgroups(0, NULL) < 0 || setresgid(w->gid, w->gid, w->gid) < 0 ||
		    setresuid(w->uid, w->uid, w->uid) < 0)
			r = -errno;
		if (r == 0)
			r = beneath_write(rootfd, path, w, &created);
		_exit(r < 0 ? (-r > 240 ? 255 : 2 - r) : created ? 1 : 0);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (!WIFEXITED(status))
		return -EIO;
	int code = WEXITSTATUS(status);
	if (code >= 2)
		return code == 255 ? -EIO : -(code - 2);
	if (ret_created)
		*ret_created = code == 1;
	return 0;
}
