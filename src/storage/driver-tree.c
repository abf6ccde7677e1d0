/* SPDX-License-Identifier: MIT */
/*
 * reflink and copy drivers: a volume is a plain directory; a clone is one walk that
 * creates each entry with its owner, mode, times and xattrs, sharing extents (FICLONE) or
 * copying data (copy_file_range, holes kept). The source's writers are frozen around the
 * walk, so the clone is a crash-consistent image of one instant.
 */
#include "storage-driver.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

static int tree_create(int root_fd, const char *name, BbxError *err)
{
	if (mkdirat(root_fd, name, 0755) < 0) {
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: cannot create directory: %s", name,
				     strerror(-r));
	}
	return 0;
}

static int tree_check_layout(int root_fd, const char *name, BbxError *err)
{
	_cleanup_close_ int fd =
		openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_NOT_FOUND, "%s: cannot open volume: %s", name,
				     strerror(-r));
	}
	return storage_check_symlinks(fd, name, err);
}

static int tree_snapshot(int root_fd, const char *src, const char *dst, bool reflink,
			 const VolumeFreeze *freeze, BbxError *err)
{
	_cleanup_close_ int sfd =
		openat(root_fd, src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0) {
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_NOT_FOUND, "%s: cannot open volume: %s", src,
				     strerror(-r));
	}
	if (mkdirat(root_fd, dst, 0700) < 0) {
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: cannot create %s: %s", src, dst,
				     strerror(-r));
	}
	_cleanup_close_ int dfd =
		openat(root_fd, dst, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: cannot open %s: %s", src, dst,
				     strerror(-r));
	}
	int r = storage_freeze(freeze, src, err);
	if (r < 0)
		return r;
	r = storage_copy_tree(sfd, dfd, reflink, err);
	int q = storage_thaw(freeze, src, err);
	if (r < 0) {
		bbx_error_prefix(err, "%s", src);
		return r;
	}
	return q;
}

static int reflink_snapshot(int root_fd, const char *src, const char *dst,
			    const VolumeFreeze *freeze, BbxError *err)
{
	return tree_snapshot(root_fd, src, dst, true, freeze, err);
}

static int copy_snapshot(int root_fd, const char *src, const char *dst, const VolumeFreeze *freeze,
			 BbxError *err)
{
	return tree_snapshot(root_fd, src, dst, false, freeze, err);
}

static int tree_destroy(int root_fd, const char *name, bool sync, BbxError *err)
{
	int r = storage_remove_tree_at(root_fd, name);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: cannot remove: %s", name,
				     strerror(-r));
	if (sync && syncfs(root_fd) < 0) {
		r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: removed, but syncfs failed: %s",
				     name, strerror(-r));
	}
	return 0;
}

static int tree_usage(int root_fd, const char *name, uint64_t shared, uint64_t *ret_exclusive,
		      uint64_t *ret_shared, BbxError *err)
{
	_cleanup_close_ int fd =
		openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_NOT_FOUND, "%s: cannot open volume: %s", name,
				     strerror(-r));
	}
	uint64_t total;
	int r = storage_tree_allocated(fd, &total, err);
	if (r < 0)
		return r;
	*ret_exclusive = total;
	*ret_shared = shared;
	return 0;
}

static int reflink_usage(int root_fd, const char *name, bool quotas, uint64_t *ret_exclusive,
			 uint64_t *ret_shared, BbxError *err)
{
	/* Shared extents are not visible per file without FIEMAP bookkeeping: unknown. */
	return tree_usage(root_fd, name, STORAGE_UNKNOWN, ret_exclusive, ret_shared, err);
}

static int copy_usage(int root_fd, const char *name, bool quotas, uint64_t *ret_exclusive,
		      uint64_t *ret_shared, BbxError *err)
{
	return tree_usage(root_fd, name, 0, ret_exclusive, ret_shared, err);
}

/*
 * Neither driver bounds one volume's disk use: a volume is a plain directory, and the
 * filesystems they run on offer that only through project quotas, which need a mount option
 * and a project id on every file the sandbox creates. They say so (pool info, env info,
 * docs/config.md) instead of pretending: pool_volume_set_quota() refuses with the reason.
 */
#define TREE_NO_QUOTA                                                                              \
	"a volume is a plain directory, which this driver cannot bound: a preview can fill "       \
	"the pool (use the btrfs driver for per-volume quotas)"

const StorageDriver storage_driver_reflink = {
	.name = "reflink",
	.create = tree_create,
	.check_layout = tree_check_layout,
	.snapshot = reflink_snapshot,
	.destroy = tree_destroy,
	.usage = reflink_usage,
	.list = storage_list_dir,
	.no_quota_reason = TREE_NO_QUOTA,
};

const StorageDriver storage_driver_copy = {
	.name = "copy",
	.create = tree_create,
	.check_layout = tree_check_layout,
	.snapshot = copy_snapshot,
	.destroy = tree_destroy,
	.usage = copy_usage,
	.list = storage_list_dir,
	.no_quota_reason = TREE_NO_QUOTA,
};
