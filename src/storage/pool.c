/* SPDX-License-Identifier: MIT */
/*
 * The pool: where volumes live, how the filesystem under them is set up, and the
 * staging/trash protocol that makes every volume operation all-or-nothing across kill -9.
 *
 * A pool branchbox makes itself (no --path, no btrfs under the state dir) is a sparse image
 * STATE/pool/btrfs.img, formatted with mkfs.btrfs and loop-mounted at STATE/pool/mnt with
 * an autoclear loop device, so an umount alone frees the device (as LXD/Incus do); the
 * image and loop plumbing is pool-image.c.
 *
 * One file of about 800 lines: the pool's lifecycle and its volume operations share the
 * staging/trash protocol; what did not (the host's filesystems, the image) is pool-image.c.
 */
#include "storage.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include "file-util.h"
#include "parse.h"
#include "pool-image.h"
#include "storage-driver.h"
#include "strbuf.h"
#include "strv.h"

#define DEFAULT_POOL_SIZE (64ULL << 30)
#define MIN_POOL_SIZE (256ULL << 20) /* mkfs.btrfs refuses much smaller images */

struct Pool {
	char *state_dir;
	PoolRecord rec;
	const StorageDriver *drv;
	int root_fd;
	char *status;
	char *mount_source;
	char *fstype;
};

int pool_lock(const char *state_dir, int *ret_fd, BbxError *err)
{
	int r = mkdir_p(state_dir, 0700);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot create state dir %s: %s",
				     state_dir, strerror(-r));
	_cleanup_free_ char *p = pool_path_join(state_dir, "pool.lock");
	if (!p)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	_cleanup_close_ int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot open %s: %s", p, strerror(-r));
	}
	if (RETRY_EINTR(flock(fd, LOCK_EX)) < 0) {
		r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot lock %s: %s", p, strerror(-r));
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int choose_driver(const PoolOptions *opts, const char *where, StorageDriverKind *ret,
			 char **ret_reason, BbxError *err)
{
	long type;
	int r = pool_path_fstype(where, &type);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INVALID, "cannot inspect %s: %s", where,
				     strerror(-r));
	bool on_btrfs = (unsigned long)type == BTRFS_SUPER_MAGIC;
	bool reflink = storage_dir_supports_reflink(where);
	const char *fs = pool_fstype_name(type);
	_cleanup_strbuf_ StrBuf why = STRBUF_INIT;

	switch (opts->driver) {
	case STORAGE_DRIVER_BTRFS:
		if (opts->path && !on_btrfs)
			return bbx_error_set(
				err, -EINVAL, BBX_INVALID,
				"--path %s is on %s, not btrfs: the btrfs driver needs a "
				"btrfs directory (or no --path, for a loop image)",
				opts->path, fs);
		if (!on_btrfs && (!pool_kernel_has_btrfs() || !pool_have_mkfs_btrfs()))
			return bbx_error_set(
				err, -EOPNOTSUPP, BBX_INVALID,
				"btrfs driver: the kernel lacks btrfs or mkfs.btrfs is "
				"missing (install btrfs-progs)");
		r = on_btrfs ? strbuf_appendf(&why, "requested with --driver btrfs; %s is on btrfs",
					      where)
			     : strbuf_appendf(&why,
					      "requested with --driver btrfs; %s is %s, so a "
					      "loop-mounted btrfs image",
					      where, fs);
		break;
	case STORAGE_DRIVER_REFLINK:
		if (!reflink)
			return bbx_error_set(err, -EOPNOTSUPP, BBX_INVALID,
					     "reflink driver: %s (%s) does not support FICLONE",
					     where, fs);
		r = strbuf_appendf(&why,
				   "requested with --driver reflink; %s (%s) supports FICLONE",
				   where, fs);
		break;
	case STORAGE_DRIVER_COPY:
		r = strbuf_appendf(&why, "requested with --driver copy; %s is %s", where, fs);
		break;
	default:
		if (on_btrfs) {
			*ret = STORAGE_DRIVER_BTRFS;
			r = strbuf_appendf(&why, "%s is on btrfs: subvolume snapshots", where);
		} else if (!opts->path && pool_kernel_has_btrfs() && pool_have_mkfs_btrfs()) {
			*ret = STORAGE_DRIVER_BTRFS;
			r = strbuf_appendf(&why,
					   "kernel has btrfs and mkfs.btrfs exists; %s is %s, "
					   "so a loop-mounted btrfs image",
					   where, fs);
		} else if (reflink) {
			*ret = STORAGE_DRIVER_REFLINK;
			r = strbuf_appendf(&why, "%s (%s) supports FICLONE but btrfs is not usable",
					   where, fs);
		} else {
			*ret = STORAGE_DRIVER_COPY;
			r = strbuf_appendf(&why, "%s (%s) has neither btrfs nor reflink", where,
					   fs);
		}
		if (r < 0)
			return -ENOMEM;
		*ret_reason = strbuf_detach(&why);
		return *ret_reason ? 0 : -ENOMEM;
	}
	if (r < 0)
		return -ENOMEM;
	*ret = opts->driver;
	*ret_reason = strbuf_detach(&why);
	return *ret_reason ? 0 : -ENOMEM;
}

static int write_record(const char *state_dir, const PoolRecord *rec, BbxError *err)
{
	_cleanup_free_ char *json = NULL;
	_cleanup_free_ char *p = pool_path_join(state_dir, "pool.json");
	if (!p || pool_record_format(rec, &json) < 0)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	int r = write_file_atomic(p, json, strlen(json), 0600);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot write %s: %s", p, strerror(-r));
	return 0;
}

static int read_record(const char *state_dir, PoolRecord *ret, BbxError *err)
{
	_cleanup_free_ char *p = pool_path_join(state_dir, "pool.json");
	_cleanup_free_ char *json = NULL;
	if (!p)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	int r = read_full_file(p, 1 << 16, &json, NULL);
	if (r == -ENOENT)
		return bbx_error_set(err, r, BBX_NOT_FOUND,
				     "no pool at %s (run 'branchbox pool init')", state_dir);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot read %s: %s", p, strerror(-r));
	r = pool_record_parse(json, ret, err);
	if (r < 0)
		bbx_error_prefix(err, "%s", state_dir);
	return r;
}

static bool streq_null(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

int pool_init(const char *state_dir, const PoolOptions *opts, bool *ret_already, BbxError *err)
{
	PoolRecord old = {};
	int r;

	r = mkdir_p(state_dir, 0700);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot create state dir %s: %s",
				     state_dir, strerror(-r));
	_cleanup_free_ char *json_path = pool_path_join(state_dir, "pool.json");
	if (!json_path)
		return -ENOMEM;
	if (access(json_path, F_OK) == 0) {
		r = read_record(state_dir, &old, err);
		if (r < 0)
			return r;
		bool same = old.req_driver == opts->driver && old.req_size == opts->size &&
			    streq_null(old.req_path, opts->path);
		r = same ? 0
			 : bbx_error_set(err, -EEXIST, BBX_CONFLICT,
					 "pool at %s already initialized with driver %s at %s; "
					 "re-run with the same options or 'branchbox pool destroy' "
					 "first",
					 state_dir, storage_driver_kind_to_string(old.driver),
					 old.root);
		pool_record_done(&old);
		if (r >= 0 && ret_already)
			*ret_already = true;
		return r;
	}

	_cleanup_free_ char *pool_dir = pool_path_join(state_dir, "pool");
	if (!pool_dir)
		return -ENOMEM;
	if (opts->path) {
		struct stat st;
		if (opts->path[0] != '/')
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "--path %s must be absolute", opts->path);
		if (stat(opts->path, &st) < 0 || !S_ISDIR(st.st_mode))
			return bbx_error_set(err, -ENOTDIR, BBX_INVALID,
					     "--path %s is not an existing directory", opts->path);
	} else {
		r = mkdir_p(pool_dir, 0700);
		if (r < 0)
			return bbx_error_set(err, r, BBX_INTERNAL, "cannot create %s: %s", pool_dir,
					     strerror(-r));
	}

	PoolRecord rec = { .req_driver = opts->driver, .req_size = opts->size };
	const char *where = opts->path ? opts->path : pool_dir;
	r = choose_driver(opts, where, &rec.driver, &rec.reason, err);
	if (r < 0)
		goto fail;
	if (opts->path && !(rec.req_path = strdup(opts->path))) {
		r = -ENOMEM;
		goto fail;
	}

	long type = 0;
	(void)pool_path_fstype(where, &type);
	bool want_image = rec.driver == STORAGE_DRIVER_BTRFS && !opts->path &&
			  (unsigned long)type != BTRFS_SUPER_MAGIC;
	if (want_image) {
		rec.size = opts->size ? opts->size : DEFAULT_POOL_SIZE;
		if (rec.size < MIN_POOL_SIZE) {
			r = bbx_error_set(err, -EINVAL, BBX_INVALID,
					  "--size must be at least 256M");
			goto fail;
		}
		rec.image = pool_path_join(pool_dir, "btrfs.img");
		rec.mountpoint = pool_path_join(pool_dir, "mnt");
		rec.root = rec.mountpoint ? pool_path_join(rec.mountpoint, "volumes") : NULL;
		if (!rec.image || !rec.root) {
			r = -ENOMEM;
			goto fail;
		}
		r = pool_make_image(pool_dir, rec.image, rec.mountpoint, rec.size, err);
		if (r < 0)
			goto fail;
		r = pool_loop_mount(rec.image, rec.mountpoint, NULL, err);
		if (r < 0)
			goto fail;
		_cleanup_close_ int mfd = open(rec.mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		/* Our own filesystem: qgroups give per-volume exclusive/shared bytes. */
		rec.quotas = mfd >= 0 && storage_btrfs_enable_quotas(mfd) >= 0;
	} else {
		rec.root = pool_path_join(where, "volumes");
		if (!rec.root) {
			r = -ENOMEM;
			goto fail;
		}
	}
	r = mkdir_p(rec.root, 0700);
	if (r < 0) {
		r = bbx_error_set(err, r, BBX_INTERNAL, "cannot create %s: %s", rec.root,
				  strerror(-r));
		goto fail_umount;
	}
	/* Written last: a pool exists only once it is complete. */
	r = write_record(state_dir, &rec, err);
	if (r < 0)
		goto fail_umount;
	pool_record_done(&rec);
	if (ret_already)
		*ret_already = false;
	return 0;

fail_umount:
	if (want_image) {
		(void)umount2(rec.mountpoint, 0);
		pool_loop_detach_image(rec.image);
		(void)unlink(rec.image);
	}
fail:
	if (r == -ENOMEM)
		bbx_error_set(err, r, BBX_INTERNAL, "out of memory");
	pool_record_done(&rec);
	return r;
}

/* Remove what an interrupted create, snapshot or destroy left behind. */
static int pool_cleanup_staging(Pool *p, unsigned *ret_n, BbxError *err)
{
	_cleanup_close_ int fd = openat(p->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	DIR *d = fdopendir(fd);
	if (!d)
		return negative_errno();
	TAKE_FD(fd);
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!storage_is_staging_name(de->d_name))
			continue;
		char **nn = reallocarray(names, n + 2, sizeof(char *));
		if (!nn)
			break;
		names = nn;
		names[n] = strdup(de->d_name);
		if (!names[n])
			break;
		names[++n] = NULL;
	}
	closedir(d);
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		int q = p->drv->destroy(p->root_fd, names[i], false, err);
		if (q < 0 && r == 0)
			r = q;
	}
	strv_free(names);
	*ret_n = n;
	return r;
}

int pool_open(const char *state_dir, Pool **ret, BbxError *err)
{
	_cleanup_pool_ Pool *p = calloc(1, sizeof(Pool));
	if (!p)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	p->root_fd = -EBADF;
	p->state_dir = strdup(state_dir);
	if (!p->state_dir)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	int r = read_record(state_dir, &p->rec, err);
	if (r < 0)
		return r;
	p->drv = storage_driver_get(p->rec.driver);

	_cleanup_strbuf_ StrBuf status = STRBUF_INIT;
	if (p->rec.image && p->rec.mountpoint) {
		if (pool_is_btrfs_mountpoint(p->rec.mountpoint))
			r = strbuf_appendf(&status, "%s mounted at %s", p->rec.image,
					   p->rec.mountpoint);
		else {
			_cleanup_free_ char *dev = NULL;
			r = mkdir_p(p->rec.mountpoint, 0700);
			if (r >= 0)
				r = pool_loop_mount(p->rec.image, p->rec.mountpoint, &dev, err);
			if (r < 0) {
				bbx_error_prefix(err, "pool %s", state_dir);
				return r;
			}
			r = strbuf_appendf(&status, "remounted %s at %s via %s", p->rec.image,
					   p->rec.mountpoint, dev);
		}
	} else
		r = strbuf_appendf(&status, "%s pool at %s", p->drv->name, p->rec.root);
	if (r < 0)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");

	p->root_fd = open(p->rec.root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (p->root_fd < 0) {
		r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "pool root %s: %s", p->rec.root,
				     strerror(-r));
	}
	unsigned n = 0;
	r = pool_cleanup_staging(p, &n, err);
	if (r < 0) {
		bbx_error_prefix(err, "pool %s: removing leftover staging entries", state_dir);
		return r;
	}
	if (n > 0 && strbuf_appendf(&status, "; removed %u leftover staging entr%s", n,
				    n == 1 ? "y" : "ies") < 0)
		return -ENOMEM;
	p->status = strbuf_detach(&status);
	if (!p->status)
		return -ENOMEM;
	*ret = TAKE_PTR(p);
	return 0;
}

Pool *pool_free(Pool *p)
{
	if (!p)
		return NULL;
	safe_close(p->root_fd);
	pool_record_done(&p->rec);
	free(p->state_dir);
	free(p->status);
	free(p->mount_source);
	free(p->fstype);
	free(p);
	return NULL;
}

const char *pool_status(const Pool *p)
{
	return p->status;
}

/* Source and type of the mount holding path: the longest mount point that prefixes it. */
static void find_mount(const char *path, char **ret_source, char **ret_type)
{
	_cleanup_free_ char *real = realpath(path, NULL);
	_cleanup_fclose_ FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!real || !f)
		return;
	char line[4096];
	size_t best = 0;
	while (fgets(line, sizeof(line), f)) {
		char *fields[12] = {};
		size_t n = 0;
		char *save = NULL;
		for (char *t = strtok_r(line, " \n", &save); t && n < ELEMENTSOF(fields);
		     t = strtok_r(NULL, " \n", &save))
			fields[n++] = t;
		if (n < 7)
			continue;
		const char *mp = fields[4];
		size_t len = strlen(mp);
		bool prefix = !strcmp(mp, "/") ||
			      (!strncmp(real, mp, len) && (real[len] == '/' || real[len] == 0));
		if (!prefix || len < best)
			continue;
		/* After the optional fields comes "-", then fstype and source. */
		size_t dash = 6;
		while (dash < n && strcmp(fields[dash], "-"))
			dash++;
		if (dash + 2 >= n)
			continue;
		best = len;
		free(*ret_source);
		free(*ret_type);
		*ret_source = strdup(fields[dash + 2]);
		*ret_type = strdup(fields[dash + 1]);
	}
}

int pool_info(Pool *p, PoolInfo *ret, BbxError *err)
{
	struct statvfs sv;
	if (fstatvfs(p->root_fd, &sv) < 0) {
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot stat pool %s: %s", p->rec.root,
				     strerror(-r));
	}
	if (!p->mount_source)
		find_mount(p->rec.root, &p->mount_source, &p->fstype);
	*ret = (PoolInfo){
		.driver = p->rec.driver,
		.reason = p->rec.reason,
		.root = p->rec.root,
		.image = p->rec.image,
		.mount_source = p->mount_source,
		.fstype = p->fstype,
		.quotas = p->rec.quotas,
		.quota_enforced = p->drv->set_quota && p->rec.quotas,
		.no_quota_reason = !p->drv->set_quota ? p->drv->no_quota_reason
				   : !p->rec.quotas
					   ? "btrfs quotas are not enabled on this pool "
					     "(a pool on an existing btrfs directory is not "
					     "branchbox's to enable them on): a preview can "
					     "fill the pool"
					   : NULL,
		.size_bytes = (uint64_t)sv.f_blocks * sv.f_frsize,
		.free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize,
	};
	return 0;
}

int pool_destroy(Pool *p, bool force, BbxError *err)
{
	_cleanup_strv_free_ char **names = NULL;
	int r = p->drv->list(p->root_fd, &names, err);
	if (r < 0)
		return r;
	size_t n = 0;
	while (names[n])
		n++;
	if (n > 0 && !force) {
		_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
		for (size_t i = 0; i < n && i < 8; i++)
			(void)strbuf_appendf(&sb, "%s%s", i ? ", " : "", names[i]);
		return bbx_error_set(err, -EBUSY, BBX_CONFLICT,
				     "pool %s holds %zu volume%s (%s%s): destroy them first or "
				     "pass --force",
				     p->state_dir, n, n == 1 ? "" : "s", strbuf_str(&sb),
				     n > 8 ? ", ..." : "");
	}
	for (size_t i = 0; i < n; i++) {
		r = p->drv->destroy(p->root_fd, names[i], false, err);
		if (r < 0)
			return r;
	}
	p->root_fd = safe_close(p->root_fd);
	if (p->rec.image) {
		if (umount2(p->rec.mountpoint, 0) < 0 && errno != EINVAL && errno != ENOENT) {
			r = negative_errno();
			return bbx_error_set(err, r, BBX_INTERNAL, "cannot unmount %s: %s",
					     p->rec.mountpoint, strerror(-r));
		}
		pool_loop_detach_image(p->rec.image);
		if (unlink(p->rec.image) < 0 && errno != ENOENT) {
			r = negative_errno();
			return bbx_error_set(err, r, BBX_INTERNAL, "cannot remove %s: %s",
					     p->rec.image, strerror(-r));
		}
		(void)rmdir(p->rec.mountpoint);
	} else
		(void)rmdir(p->rec.root);
	_cleanup_free_ char *pool_dir = pool_path_join(p->state_dir, "pool");
	_cleanup_free_ char *json = pool_path_join(p->state_dir, "pool.json");
	if (!pool_dir || !json)
		return -ENOMEM;
	(void)rmdir(pool_dir);
	if (unlink(json) < 0 && errno != ENOENT) {
		r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "cannot remove %s: %s", json,
				     strerror(-r));
	}
	return 0;
}

static int check_name(const char *name, BbxError *err)
{
	if (!name || !name_is_valid(name))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "%s: invalid volume name (1-63 of a-z 0-9 - _ ., starting "
				     "with a letter or digit)",
				     name ? name : "(null)");
	return 0;
}

int pool_unmount(const char *state_dir, char **ret_mountpoint, char ***ret_loop_devices,
		 BbxError *err)
{
	_cleanup_(pool_record_done) PoolRecord rec = {};
	_cleanup_free_ char *json = pool_path_join(state_dir, "pool.json");
	_cleanup_free_ char *unmounted = NULL;
	_cleanup_strv_free_ char **devs = NULL;
	if (!json)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	if (access(json, F_OK) == 0) {
		int r = read_record(state_dir, &rec, err);
		if (r < 0)
			return r;
	}
	if (rec.image && rec.mountpoint) {
		int r = pool_loop_devices_of_image(rec.image, &devs);
		if (r < 0)
			return bbx_error_set(err, r, BBX_INTERNAL, "out of memory");
		if (pool_is_btrfs_mountpoint(rec.mountpoint)) {
			/* Not lazy: a detached mount would keep the loop device busy. */
			if (umount2(rec.mountpoint, UMOUNT_NOFOLLOW) < 0) {
				r = negative_errno();
				bool busy = r == -EBUSY;
				return bbx_error_set(err, r, busy ? BBX_CONFLICT : BBX_INTERNAL,
						     "cannot unmount the pool at %s: %s%s",
						     rec.mountpoint, strerror(-r),
						     busy ? " (a process still uses it)" : "");
			}
			unmounted = strdup(rec.mountpoint);
			if (!unmounted)
				return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
		}
		/* Autoclear detaches the device on the last close; wait for it, then make
		 * sure (a device attached without autoclear stays otherwise). */
		for (int i = 0; i < 100; i++) {
			_cleanup_strv_free_ char **left = NULL;
			if (pool_loop_devices_of_image(rec.image, &left) < 0 || !left)
				break;
			if (i == 20)
				pool_loop_detach_image(rec.image);
			(void)usleep(20 * 1000);
		}
		_cleanup_strv_free_ char **left = NULL;
		r = pool_loop_devices_of_image(rec.image, &left);
		if (r >= 0 && left)
			return bbx_error_set(err, -EBUSY, BBX_CONFLICT,
					     "loop device %s backing %s did not detach", left[0],
					     rec.image);
	}
	if (ret_mountpoint)
		*ret_mountpoint = TAKE_PTR(unmounted);
	if (ret_loop_devices)
		*ret_loop_devices = TAKE_PTR(devs);
	return 0;
}

int pool_volume_exists(Pool *p, const char *name)
{
	if (!name_is_valid(name))
		return -EINVAL;
	struct stat st;
	if (fstatat(p->root_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : negative_errno();
	return S_ISDIR(st.st_mode) ? 1 : -ENOTDIR;
}

static int require_exists(Pool *p, const char *name, bool want, BbxError *err)
{
	int r = check_name(name, err);
	if (r < 0)
		return r;
	r = pool_volume_exists(p, name);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: %s", name, strerror(-r));
	if (want && !r)
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "%s: no such volume", name);
	if (!want && r)
		return bbx_error_set(err, -EEXIST, BBX_CONFLICT, "%s: volume already exists", name);
	return 0;
}

/* Move a finished staging entry into place; undo it when that fails. */
static int publish(Pool *p, const char *staging, const char *name, BbxError *err)
{
	if (renameat2(p->root_fd, staging, p->root_fd, name, RENAME_NOREPLACE) < 0) {
		int r = negative_errno();
		(void)p->drv->destroy(p->root_fd, staging, false, NULL);
		if (r == -EEXIST)
			return bbx_error_set(err, r, BBX_CONFLICT, "%s: volume already exists",
					     name);
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: cannot move into place: %s", name,
				     strerror(-r));
	}
	return 0;
}

/*
 * Make volume name under a staging name, empty (src NULL) or as a snapshot of src, and move it
 * into place only when complete: a kill -9 leaves a staging entry (removed at the next open)
 * or the whole volume, never half of one. what names the debug stop points.
 */
static int staged(Pool *p, const char *name, const char *what, const char *src,
		  const VolumeFreeze *freeze, BbxError *err)
{
	_cleanup_free_ char *staging = NULL;
	char point[64];
	if (storage_staging_name("staging", name, &staging) < 0)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	int r = src ? p->drv->snapshot(p->root_fd, src, staging, freeze, err)
		    : p->drv->create(p->root_fd, staging, err);
	if (r < 0) {
		(void)p->drv->destroy(p->root_fd, staging, false, NULL);
		return r;
	}
	snprintf(point, sizeof(point), "%s:after-staging", what);
	storage_debug_stop(point);
	r = publish(p, staging, name, err);
	if (r < 0)
		return r;
	snprintf(point, sizeof(point), "%s:after-rename", what);
	storage_debug_stop(point);
	return 0;
}

int pool_volume_create(Pool *p, const char *name, BbxError *err)
{
	int r = require_exists(p, name, false, err);
	if (r < 0)
		return r;
	return staged(p, name, "volume-create", NULL, NULL, err);
}

int pool_volume_check_layout(Pool *p, const char *name, BbxError *err)
{
	int r = require_exists(p, name, true, err);
	if (r < 0)
		return r;
	return p->drv->check_layout(p->root_fd, name, err);
}

int pool_volume_snapshot(Pool *p, const char *src, const char *dst, const VolumeFreeze *freeze,
			 BbxError *err)
{
	int r = require_exists(p, src, true, err);
	if (r < 0)
		return r;
	r = require_exists(p, dst, false, err);
	if (r < 0)
		return r;
	r = p->drv->check_layout(p->root_fd, src, err);
	if (r < 0)
		return r;
	return staged(p, dst, "volume-snapshot", src, freeze, err);
}

int pool_volume_destroy(Pool *p, const char *name, bool sync, BbxError *err)
{
	int r = require_exists(p, name, true, err);
	if (r < 0)
		return r;
	_cleanup_free_ char *trash = NULL;
	if (storage_staging_name("trash", name, &trash) < 0)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	/* Gone from its name in one step; the slow removal of the trash can be resumed. */
	if (renameat2(p->root_fd, name, p->root_fd, trash, RENAME_NOREPLACE) < 0) {
		r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: cannot move to trash: %s", name,
				     strerror(-r));
	}
	storage_debug_stop("volume-destroy:after-rename");
	return p->drv->destroy(p->root_fd, trash, sync, err);
}

char *pool_volume_path(Pool *p, const char *name)
{
	if (!name_is_valid(name))
		return NULL;
	return pool_path_join(p->rec.root, name);
}

void volume_info_list_free(VolumeInfo *l, size_t n)
{
	for (size_t i = 0; l && i < n; i++) {
		free(l[i].name);
		free(l[i].path);
	}
	free(l);
}

int pool_volume_usage(Pool *p, const char *name, VolumeInfo *ret, BbxError *err)
{
	int r = require_exists(p, name, true, err);
	if (r < 0)
		return r;
	VolumeInfo v = { .quota_bytes = STORAGE_UNKNOWN };
	r = p->drv->usage(p->root_fd, name, p->rec.quotas, &v.exclusive_bytes, &v.shared_bytes,
			  err);
	if (r < 0)
		return r;
	if (p->drv->get_quota &&
	    p->drv->get_quota(p->root_fd, name, p->rec.quotas, &v.quota_bytes) < 0)
		v.quota_bytes = STORAGE_UNKNOWN;
	v.name = strdup(name);
	v.path = pool_volume_path(p, name);
	if (!v.name || !v.path) {
		free(v.name);
		free(v.path);
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	}
	*ret = v;
	return 0;
}

int pool_volume_list(Pool *p, VolumeInfo **ret, size_t *ret_n, BbxError *err)
{
	_cleanup_strv_free_ char **names = NULL;
	int r = p->drv->list(p->root_fd, &names, err);
	if (r < 0)
		return r;
	size_t n = 0;
	while (names[n])
		n++;
	VolumeInfo *l = calloc(n ? n : 1, sizeof(VolumeInfo));
	if (!l)
		return bbx_error_set(err, -ENOMEM, BBX_INTERNAL, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		if (!name_is_valid(names[i]))
			continue; /* not ours: someone else's entry in a --path pool */
		r = pool_volume_usage(p, names[i], &l[k], err);
		if (r == -ENOENT)
			continue; /* destroyed meanwhile */
		if (r < 0) {
			volume_info_list_free(l, k);
			return r;
		}
		k++;
	}
	*ret = l;
	*ret_n = k;
	return 0;
}

int pool_volume_set_quota(Pool *p, const char *name, uint64_t bytes, BbxError *err)
{
	int r = require_exists(p, name, true, err);
	if (r < 0)
		return r;
	if (!p->drv->set_quota)
		return bbx_error_set(err, -EOPNOTSUPP, BBX_UNSUPPORTED, "%s: the %s driver: %s",
				     name, p->drv->name, p->drv->no_quota_reason);
	return p->drv->set_quota(p->root_fd, name, p->rec.quotas, bytes, err);
}

int pool_commitment(Pool *p, PoolCommitment *ret, BbxError *err)
{
	PoolInfo info;
	int r = pool_info(p, &info, err);
	if (r < 0)
		return r;
	VolumeInfo *v = NULL;
	size_t n = 0;
	r = pool_volume_list(p, &v, &n, err);
	if (r < 0)
		return r;
	PoolCommitment c = { .size_bytes = info.size_bytes, .free_bytes = info.free_bytes };
	for (size_t i = 0; i < n; i++) {
		if (v[i].quota_bytes == STORAGE_UNKNOWN)
			continue;
		/* Unknown use: everything it may write is still to come. */
		uint64_t used = v[i].exclusive_bytes == STORAGE_UNKNOWN ? 0 : v[i].exclusive_bytes;
		uint64_t left = used < v[i].quota_bytes ? v[i].quota_bytes - used : 0;
		c.promised_bytes = c.promised_bytes + left < c.promised_bytes
					   ? UINT64_MAX
					   : c.promised_bytes + left;
		c.n_bounded++;
	}
	volume_info_list_free(v, n);
	*ret = c;
	return 0;
}
