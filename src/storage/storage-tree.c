/* SPDX-License-Identifier: MIT */
/*
 * Walks over volume trees: the copy/reflink clone, the allocated-bytes count, the symlink
 * layout check and removal. Volumes are agent-writable, so every step is an *at() call on
 * a single name relative to a directory fd, with O_NOFOLLOW/AT_SYMLINK_NOFOLLOW: a symlink
 * planted in the tree is copied or refused as a link, never followed.
 */
#include "storage-driver.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>

#include "strbuf.h"

/* Deep enough for any real data dir, shallow enough that one fd per level cannot run out. */
#define WALK_MAX_DEPTH 256
#define COPY_BUFFER_SIZE (128 * 1024)

static void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(closedirp)

/* A DIR over a duplicate of fd, so the caller keeps its fd. */
static DIR *opendir_dup(int fd)
{
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return NULL;
	DIR *d = fdopendir(dfd);
	if (!d)
		safe_close(dfd);
	return d;
}

static bool dot_or_dotdot(const char *n)
{
	return n[0] == '.' && (n[1] == 0 || (n[1] == '.' && n[2] == 0));
}

typedef struct HardLink {
	dev_t dev;
	ino_t ino;
	char *path; /* relative to the destination root */
} HardLink;

typedef struct CopyWalk {
	bool reflink;
	int dst_root_fd;
	StrBuf path; /* relative path of the current entry, for messages and hard links */
	HardLink *links;
	size_t n_links;
	char *buf;
	BbxError *err;
} CopyWalk;

static int walk_fail(CopyWalk *w, int r, const char *what)
{
	return bbx_error_set(w->err, r, BBX_INTERNAL, "%s %s: %s", what,
			     w->path.len ? strbuf_str(&w->path) : ".", strerror(-r));
}

static int copy_xattrs(int sfd, int dfd)
{
	char names[16 * 1024];
	ssize_t n = flistxattr(sfd, names, sizeof(names));
	if (n < 0)
		return (errno == ENOTSUP || errno == ERANGE) ? 0 : negative_errno();
	for (char *p = names; p < names + n; p += strlen(p) + 1) {
		char value[8 * 1024];
		ssize_t v = fgetxattr(sfd, p, value, sizeof(value));
		if (v < 0)
			continue; /* vanished or too large: "simple" xattrs only */
		if (fsetxattr(dfd, p, value, v, 0) < 0 && errno != ENOTSUP && errno != EPERM)
			return negative_errno();
	}
	return 0;
}

static int copy_range_rw(CopyWalk *w, int sfd, int dfd, off_t start, off_t end)
{
	while (start < end) {
		size_t len = (size_t)(end - start) < COPY_BUFFER_SIZE ? (size_t)(end - start)
								      : COPY_BUFFER_SIZE;
		ssize_t n = pread(sfd, w->buf, len, start);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		if (n == 0)
			break;
		for (ssize_t done = 0; done < n;) {
			ssize_t m = pwrite(dfd, w->buf + done, n - done, start + done);
			if (m < 0) {
				if (errno == EINTR)
					continue;
				return negative_errno();
			}
			done += m;
		}
		start += n;
	}
	return 0;
}

static int copy_range(CopyWalk *w, int sfd, int dfd, off_t start, off_t end)
{
	while (start < end) {
		loff_t in = start, out = start;
		ssize_t n = copy_file_range(sfd, &in, dfd, &out, end - start, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EXDEV || errno == EOPNOTSUPP || errno == ENOSYS ||
			    errno == EINVAL)
				return copy_range_rw(w, sfd, dfd, start, end);
			return negative_errno();
		}
		if (n == 0)
			break; /* the source shrank under us */
		start += n;
	}
	return 0;
}

/* Copy data extent by extent so holes stay holes. */
static int copy_sparse(CopyWalk *w, int sfd, int dfd, off_t size)
{
	off_t off = 0;
	while (off < size) {
		off_t data = lseek(sfd, off, SEEK_DATA);
		if (data < 0) {
			if (errno == ENXIO)
				break; /* only a hole is left */
			if (errno != EINVAL)
				return negative_errno();
			return copy_range(w, sfd, dfd, off, size);
		}
		off_t hole = lseek(sfd, data, SEEK_HOLE);
		if (hole < 0)
			return negative_errno();
		if (hole > size)
			hole = size;
		int r = copy_range(w, sfd, dfd, data, hole);
		if (r < 0)
			return r;
		off = hole;
	}
	if (ftruncate(dfd, size) < 0)
		return negative_errno();
	return 0;
}

static int copy_meta_fd(int sfd, int dfd, const struct stat *st)
{
	/* Owner first: fchown clears set-id bits, which fchmod then restores. */
	if (fchown(dfd, st->st_uid, st->st_gid) < 0)
		return negative_errno();
	int r = copy_xattrs(sfd, dfd);
	if (r < 0)
		return r;
	if (fchmod(dfd, st->st_mode & 07777) < 0)
		return negative_errno();
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (futimens(dfd, ts) < 0)
		return negative_errno();
	return 0;
}

static int find_hardlink(CopyWalk *w, const struct stat *st, const char **ret)
{
	for (size_t i = 0; i < w->n_links; i++)
		if (w->links[i].dev == st->st_dev && w->links[i].ino == st->st_ino) {
			*ret = w->links[i].path;
			return 1;
		}
	return 0;
}

static int remember_hardlink(CopyWalk *w, const struct stat *st)
{
	HardLink *n = reallocarray(w->links, w->n_links + 1, sizeof(HardLink));
	if (!n)
		return -ENOMEM;
	w->links = n;
	char *p = strdup(strbuf_str(&w->path));
	if (!p)
		return -ENOMEM;
	w->links[w->n_links++] = (HardLink){ st->st_dev, st->st_ino, p };
	return 0;
}

static int copy_regular(CopyWalk *w, int src_dir, int dst_dir, const char *name,
			const struct stat *st)
{
	const char *first;
	int r;

	if (st->st_nlink > 1 && find_hardlink(w, st, &first)) {
		if (linkat(w->dst_root_fd, first, dst_dir, name, 0) < 0)
			return walk_fail(w, negative_errno(), "cannot link");
		return 0;
	}
	_cleanup_close_ int sfd =
		openat(src_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (sfd < 0)
		return walk_fail(w, negative_errno(), "cannot open");
	struct stat sst;
	if (fstat(sfd, &sst) < 0)
		return walk_fail(w, negative_errno(), "cannot stat");
	if (!S_ISREG(sst.st_mode))
		return walk_fail(w, -EBUSY, "changed type during the copy:");
	_cleanup_close_ int dfd =
		openat(dst_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (dfd < 0)
		return walk_fail(w, negative_errno(), "cannot create");
	if (fchown(dfd, sst.st_uid, sst.st_gid) < 0)
		return walk_fail(w, negative_errno(), "cannot chown");
	if (w->reflink) {
		if (ioctl(dfd, FICLONE, sfd) < 0)
			return walk_fail(w, negative_errno(), "cannot reflink");
	} else {
		r = copy_sparse(w, sfd, dfd, sst.st_size);
		if (r < 0)
			return walk_fail(w, r, "cannot copy");
	}
	r = copy_meta_fd(sfd, dfd, &sst);
	if (r < 0)
		return walk_fail(w, r, "cannot set owner/mode/times of");
	if (sst.st_nlink > 1) {
		r = remember_hardlink(w, &sst);
		if (r < 0)
			return walk_fail(w, r, "out of memory at");
	}
	return 0;
}

static int copy_symlink(CopyWalk *w, int src_dir, int dst_dir, const char *name,
			const struct stat *st)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(src_dir, name, target, sizeof(target) - 1);
	if (n < 0)
		return walk_fail(w, negative_errno(), "cannot read link");
	target[n] = 0;
	if (symlinkat(target, dst_dir, name) < 0)
		return walk_fail(w, negative_errno(), "cannot create link");
	if (fchownat(dst_dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0)
		return walk_fail(w, negative_errno(), "cannot chown link");
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (utimensat(dst_dir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return walk_fail(w, negative_errno(), "cannot set times of link");
	return 0;
}

static int copy_special(CopyWalk *w, int dst_dir, const char *name, const struct stat *st)
{
	if (mknodat(dst_dir, name, st->st_mode, st->st_rdev) < 0)
		return walk_fail(w, negative_errno(), "cannot create node");
	if (fchownat(dst_dir, name, st->st_uid, st->st_gid, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fchmodat(dst_dir, name, st->st_mode & 07777, 0) < 0)
		return walk_fail(w, negative_errno(), "cannot set owner/mode of node");
	struct timespec ts[2] = { st->st_atim, st->st_mtim };
	if (utimensat(dst_dir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		return walk_fail(w, negative_errno(), "cannot set times of node");
	return 0;
}

static int copy_dir_contents(CopyWalk *w, int src_fd, int dst_fd, unsigned depth)
{
	if (depth > WALK_MAX_DEPTH)
		return walk_fail(w, -ELOOP, "tree too deep at");
	_cleanup_closedir_ DIR *d = opendir_dup(src_fd);
	if (!d)
		return walk_fail(w, negative_errno(), "cannot read directory");
	struct dirent *de;
	int r;
	while ((de = readdir(d))) {
		if (dot_or_dotdot(de->d_name))
			continue;
		size_t saved = w->path.len;
		if ((saved && strbuf_putc(&w->path, '/') < 0) ||
		    strbuf_puts(&w->path, de->d_name) < 0)
			return bbx_error_set(w->err, -ENOMEM, BBX_INTERNAL, "out of memory");
		struct stat st;
		if (fstatat(src_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				goto next; /* deleted during the walk by an unfrozen writer */
			return walk_fail(w, negative_errno(), "cannot stat");
		}
		if (S_ISDIR(st.st_mode)) {
			if (mkdirat(dst_fd, de->d_name, 0700) < 0)
				return walk_fail(w, negative_errno(), "cannot create directory");
			_cleanup_close_ int s =
				openat(src_fd, de->d_name,
				       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (s < 0)
				return walk_fail(w, negative_errno(), "cannot open directory");
			_cleanup_close_ int t =
				openat(dst_fd, de->d_name,
				       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (t < 0)
				return walk_fail(w, negative_errno(), "cannot open new directory");
			r = copy_dir_contents(w, s, t, depth + 1);
			if (r < 0)
				return r;
			/* After the children, so their creation does not move our mtime. */
			r = copy_meta_fd(s, t, &st);
			if (r < 0)
				return walk_fail(w, r, "cannot set owner/mode/times of");
		} else if (S_ISREG(st.st_mode))
			r = copy_regular(w, src_fd, dst_fd, de->d_name, &st);
		else if (S_ISLNK(st.st_mode))
			r = copy_symlink(w, src_fd, dst_fd, de->d_name, &st);
		else
			r = copy_special(w, dst_fd, de->d_name, &st);
		if (r < 0)
			return r;
		storage_debug_stop("volume-snapshot:mid-copy");
	next:
		w->path.len = saved;
		w->path.buf[saved] = 0;
	}
	return 0;
}

int storage_copy_tree(int src_fd, int dst_fd, bool reflink, BbxError *err)
{
	CopyWalk w = { .reflink = reflink, .dst_root_fd = dst_fd, .path = STRBUF_INIT, .err = err };
	int r;

	w.buf = malloc(COPY_BUFFER_SIZE);
	if (!w.buf)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	r = copy_dir_contents(&w, src_fd, dst_fd, 0);
	if (r >= 0) {
		struct stat st;
		if (fstat(src_fd, &st) < 0)
			r = walk_fail(&w, negative_errno(), "cannot stat");
		else if ((r = copy_meta_fd(src_fd, dst_fd, &st)) < 0)
			r = walk_fail(&w, r, "cannot set owner/mode/times of");
	}
	for (size_t i = 0; i < w.n_links; i++)
		free(w.links[i].path);
	free(w.links);
	free(w.buf);
	strbuf_done(&w.path);
	return r;
}

typedef struct Allocated {
	uint64_t total;
	HardLink *seen;
	size_t n_seen;
} Allocated;

static int allocated_walk(Allocated *a, int dir_fd, unsigned depth)
{
	if (depth > WALK_MAX_DEPTH)
		return -ELOOP;
	_cleanup_closedir_ DIR *d = opendir_dup(dir_fd);
	if (!d)
		return negative_errno();
	struct dirent *de;
	while ((de = readdir(d))) {
		if (dot_or_dotdot(de->d_name))
			continue;
		struct stat st;
		if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			return negative_errno();
		}
		if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
			bool dup = false;
			for (size_t i = 0; i < a->n_seen && !dup; i++)
				dup = a->seen[i].ino == st.st_ino && a->seen[i].dev == st.st_dev;
			if (dup)
				continue;
			HardLink *n = reallocarray(a->seen, a->n_seen + 1, sizeof(HardLink));
			if (!n)
				return -ENOMEM;
			a->seen = n;
			a->seen[a->n_seen++] = (HardLink){ st.st_dev, st.st_ino, NULL };
		}
		a->total += (uint64_t)st.st_blocks * 512;
		if (S_ISDIR(st.st_mode)) {
			_cleanup_close_ int s =
				openat(dir_fd, de->d_name,
				       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (s < 0)
				return negative_errno();
			int r = allocated_walk(a, s, depth + 1);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int storage_tree_allocated(int dir_fd, uint64_t *ret, BbxError *err)
{
	Allocated a = {};
	int r = allocated_walk(&a, dir_fd, 0);
	free(a.seen);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot measure volume: %s",
				     strerror(-r));
	*ret = a.total;
	return 0;
}

bool storage_link_target_escapes(const char *target, unsigned depth)
{
	if (target[0] == '/')
		return true;
	long level = depth;
	for (const char *p = target; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (--level < 0)
				return true;
		} else if (n > 0 && !(n == 1 && p[0] == '.'))
			level++;
		p += n;
		p += strspn(p, "/");
	}
	return false;
}

typedef struct LinkWalk {
	int root_fd;
	const char *what;
	StrBuf path;
	BbxError *err;
} LinkWalk;

static int check_one_link(LinkWalk *w, int dir_fd, const char *name, unsigned depth)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(dir_fd, name, target, sizeof(target) - 1);
	if (n < 0)
		return 0; /* gone: nothing to refuse */
	target[n] = 0;
	if (storage_link_target_escapes(target, depth))
		return bbx_error_set(w->err, -EXDEV, BBX_LAYOUT,
				     "%s: symlink at %s points out of the volume (%s)", w->what,
				     strbuf_str(&w->path), target);
	/* The lexical check misses chains of in-tree links climbing out; the kernel does not. */
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd = syscall(SYS_openat2, w->root_fd, strbuf_str(&w->path), &how, sizeof(how));
	if (fd >= 0) {
		safe_close(fd);
		return 0;
	}
	if (errno == EXDEV)
		return bbx_error_set(w->err, -EXDEV, BBX_LAYOUT,
				     "%s: symlink at %s resolves out of the volume (%s)", w->what,
				     strbuf_str(&w->path), target);
	return 0; /* dangling or looping inside the tree: harmless to a clone */
}

static int link_walk(LinkWalk *w, int dir_fd, unsigned depth)
{
	if (depth > WALK_MAX_DEPTH)
		return bbx_error_set(w->err, -ELOOP, BBX_LAYOUT, "%s: tree too deep at %s", w->what,
				     strbuf_str(&w->path));
	_cleanup_closedir_ DIR *d = opendir_dup(dir_fd);
	if (!d)
		return bbx_error_set(w->err, negative_errno(), BBX_INTERNAL, "%s: cannot read %s",
				     w->what, w->path.len ? strbuf_str(&w->path) : ".");
	struct dirent *de;
	while ((de = readdir(d))) {
		if (dot_or_dotdot(de->d_name))
			continue;
		unsigned char type = de->d_type;
		/* d_type saves a stat per file: this walk runs before every clone. */
		if (type == DT_UNKNOWN) {
			struct stat st;
			if (fstatat(dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISLNK(st.st_mode) ? DT_LNK : DT_REG;
		}
		if (type != DT_DIR && type != DT_LNK)
			continue;
		size_t saved = w->path.len;
		if ((saved && strbuf_putc(&w->path, '/') < 0) ||
		    strbuf_puts(&w->path, de->d_name) < 0)
			return bbx_error_set(w->err, -ENOMEM, BBX_INTERNAL, "out of memory");
		int r = 0;
		if (type == DT_LNK)
			r = check_one_link(w, dir_fd, de->d_name, depth);
		else {
			_cleanup_close_ int s =
				openat(dir_fd, de->d_name,
				       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (s >= 0)
				r = link_walk(w, s, depth + 1);
		}
		if (r < 0)
			return r;
		w->path.len = saved;
		w->path.buf[saved] = 0;
	}
	return 0;
}

int storage_check_symlinks(int dir_fd, const char *what, BbxError *err)
{
	LinkWalk w = { .root_fd = dir_fd, .what = what, .path = STRBUF_INIT, .err = err };
	int r = link_walk(&w, dir_fd, 0);
	strbuf_done(&w.path);
	return r;
}

static int remove_contents(int dir_fd, unsigned depth)
{
	if (depth > WALK_MAX_DEPTH)
		return -ELOOP;
	_cleanup_closedir_ DIR *d = opendir_dup(dir_fd);
	if (!d)
		return negative_errno();
	struct dirent *de;
	int r = 0;
	while ((de = readdir(d))) {
		if (dot_or_dotdot(de->d_name))
			continue;
		if (unlinkat(dir_fd, de->d_name, 0) >= 0 || errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			r = negative_errno();
			continue;
		}
		int q = storage_remove_tree_at(dir_fd, de->d_name);
		if (q < 0 && r == 0)
			r = q;
	}
	return r;
}

int storage_remove_tree_at(int root_fd, const char *name)
{
	_cleanup_close_ int fd =
		openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ENOTDIR || errno == ELOOP)
			return unlinkat(root_fd, name, 0) < 0 ? negative_errno() : 0;
		return negative_errno();
	}
	int r = remove_contents(fd, 0);
	if (r < 0)
		return r;
	if (unlinkat(root_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return negative_errno();
	return 0;
}

bool storage_dir_supports_reflink(const char *dir)
{
	_cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return false;
	_cleanup_close_ int a = openat(dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	_cleanup_close_ int b = openat(dfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (a < 0 || b < 0)
		return false;
	char block[4096] = { 1 };
	if (write(a, block, sizeof(block)) != (ssize_t)sizeof(block))
		return false;
	return ioctl(b, FICLONE, a) >= 0;
}
