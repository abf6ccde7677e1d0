/* SPDX-License-Identifier: MIT */
/*
 * btrfs driver: a volume is a subvolume; a clone is one read-write snapshot ioctl, atomic
 * across everything in the volume and O(1) in data size. Usage comes from qgroups, read
 * directly from the quota tree with BTRFS_IOC_TREE_SEARCH: no child process and no output
 * format to parse, and libbtrfsutil has no qgroup reader.
 */
#include "storage-driver.h"

#include <btrfsutil.h>
#include <endian.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

/* Bound the wait for the cleaner so a wedged filesystem cannot hang a teardown forever. */
#define CLEANER_WAIT_MAX_MS (10 * 60 * 1000)

static int btrfs_errno(enum btrfs_util_error e)
{
	/* libbtrfsutil leaves the failing call's errno in place. */
	return e == BTRFS_UTIL_OK ? 0 : negative_errno();
}

static int open_volume(int root_fd, const char *name)
{
	int fd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? negative_errno() : fd;
}

static int btrfs_create(int root_fd, const char *name, BbxError *err)
{
	enum btrfs_util_error e = btrfs_util_create_subvolume_fd(root_fd, name, 0, NULL, NULL);
	if (e != BTRFS_UTIL_OK) {
		int r = btrfs_errno(e);
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: cannot create subvolume: %s (%s)",
				     name, btrfs_util_strerror(e), strerror(-r));
	}
	return 0;
}

static int btrfs_check_layout(int root_fd, const char *name, BbxError *err)
{
	_cleanup_close_ int fd = open_volume(root_fd, name);
	if (fd < 0)
		return bbx_error_set(err, fd, BBX_NOT_FOUND, "%s: cannot open volume: %s", name,
				     strerror(-fd));
	if (btrfs_util_is_subvolume_fd(fd) != BTRFS_UTIL_OK)
		return bbx_error_set(err, -EINVAL, BBX_LAYOUT,
				     "%s: not a btrfs subvolume, a snapshot would not be atomic",
				     name);

	struct btrfs_util_subvolume_iterator *it = NULL;
	enum btrfs_util_error e = btrfs_util_create_subvolume_iterator_fd(fd, 0, 0, &it);
	if (e != BTRFS_UTIL_OK) {
		int r = btrfs_errno(e);
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: cannot list nested subvolumes: %s",
				     name, btrfs_util_strerror(e));
	}
	char *path = NULL;
	uint64_t id;
	e = btrfs_util_subvolume_iterator_next(it, &path, &id);
	btrfs_util_destroy_subvolume_iterator(it);
	if (e == BTRFS_UTIL_OK) {
		/* A snapshot stops at subvolume boundaries: the clone would hold an empty dir. */
		int r = bbx_error_set(err, -EXDEV, BBX_LAYOUT,
				      "%s: nested subvolume at %s breaks atomic snapshots", name,
				      path);
		free(path);
		return r;
	}
	if (e != BTRFS_UTIL_ERROR_STOP_ITERATION)
		return bbx_error_set(err, -EIO, BBX_INTERNAL,
				     "%s: cannot list nested subvolumes: %s", name,
				     btrfs_util_strerror(e));
	return storage_check_symlinks(fd, name, err);
}

static int btrfs_snapshot(int root_fd, const char *src, const char *dst, const VolumeFreeze *freeze,
			  BbxError *err)
{
	_cleanup_close_ int sfd = open_volume(root_fd, src);
	if (sfd < 0)
		return bbx_error_set(err, sfd, BBX_NOT_FOUND, "%s: cannot open volume: %s", src,
				     strerror(-sfd));
	/* Atomic by itself: the writers need no freezing. */
	enum btrfs_util_error e = btrfs_util_create_snapshot_fd2(sfd, root_fd, dst, 0, NULL, NULL);
	if (e != BTRFS_UTIL_OK) {
		int r = btrfs_errno(e);
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: snapshot failed: %s (%s)", src,
				     btrfs_util_strerror(e), strerror(-r));
	}
	return 0;
}

static bool id_is_deleted(int root_fd, uint64_t id)
{
	uint64_t *ids = NULL;
	size_t n = 0;
	if (btrfs_util_deleted_subvolumes_fd(root_fd, &ids, &n) != BTRFS_UTIL_OK)
		return false;
	bool found = false;
	for (size_t i = 0; i < n; i++)
		found = found || ids[i] == id;
	free(ids);
	return found;
}

/* Wait until the cleaner has dropped subvolume id, so the space shows as free. */
static int wait_cleaner(int root_fd, uint64_t id)
{
	for (int ms = 0; ms < CLEANER_WAIT_MAX_MS; ms += 20) {
		/* A commit wakes the cleaner and publishes what it freed. */
		if (btrfs_util_sync_fd(root_fd) != BTRFS_UTIL_OK)
			return negative_errno();
		if (!id_is_deleted(root_fd, id)) {
			struct btrfs_util_subvolume_info info;
			if (btrfs_util_subvolume_info_fd(root_fd, id, &info) != BTRFS_UTIL_OK)
				return btrfs_util_sync_fd(root_fd) == BTRFS_UTIL_OK
					       ? 0
					       : negative_errno();
		}
		(void)nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
	}
	return -ETIMEDOUT;
}

static int btrfs_destroy(int root_fd, const char *name, bool sync, BbxError *err)
{
	_cleanup_close_ int fd = open_volume(root_fd, name);
	if (fd < 0) {
		if (fd == -ENOENT)
			return 0;
		if (fd == -ENOTDIR || fd == -ELOOP)
			return storage_remove_tree_at(root_fd, name);
		return bbx_error_set(err, fd, BBX_INTERNAL, "%s: cannot open volume: %s", name,
				     strerror(-fd));
	}
	if (btrfs_util_is_subvolume_fd(fd) != BTRFS_UTIL_OK) {
		/* A half-made staging dir of another driver, or a plain directory. */
		fd = safe_close(fd);
		int r = storage_remove_tree_at(root_fd, name);
		if (r < 0)
			return bbx_error_set(err, r, BBX_INTERNAL, "%s: cannot remove: %s", name,
					     strerror(-r));
		return 0;
	}
	uint64_t id = 0;
	if (btrfs_util_subvolume_id_fd(fd, &id) != BTRFS_UTIL_OK)
		id = 0;
	fd = safe_close(fd);
	/* Nested subvolumes are refused before clones, but an agent can still make one. */
	enum btrfs_util_error e = btrfs_util_delete_subvolume_fd(
		root_fd, name, BTRFS_UTIL_DELETE_SUBVOLUME_RECURSIVE);
	if (e != BTRFS_UTIL_OK) {
		int r = btrfs_errno(e);
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: cannot delete subvolume: %s (%s)",
				     name, btrfs_util_strerror(e), strerror(-r));
	}
	if (sync && id) {
		int r = wait_cleaner(root_fd, id);
		if (r < 0)
			return bbx_error_set(err, r, BBX_INTERNAL,
					     "%s: deleted, but waiting for the space failed: %s",
					     name, strerror(-r));
	}
	return 0;
}

int storage_btrfs_enable_quotas(int fd)
{
	struct btrfs_ioctl_quota_ctl_args args = { .cmd = BTRFS_QUOTA_CTL_ENABLE };
	if (ioctl(fd, BTRFS_IOC_QUOTA_CTL, &args) < 0)
		return negative_errno();
	return 0;
}

/* The item of type key for qgroup 0/subvolid in the quota tree, copied into item. */
static int qgroup_item(int fd, uint64_t subvolid, uint32_t key, void *item, size_t size)
{
	struct btrfs_ioctl_search_args args = {};
	args.key.tree_id = BTRFS_QUOTA_TREE_OBJECTID;
	args.key.min_objectid = 0;
	args.key.max_objectid = 0;
	args.key.min_type = key;
	args.key.max_type = key;
	args.key.min_offset = subvolid; /* qgroup 0/subvolid */
	args.key.max_offset = subvolid;
	args.key.max_transid = UINT64_MAX;
	args.key.nr_items = 1;
	if (ioctl(fd, BTRFS_IOC_TREE_SEARCH, &args) < 0)
		return negative_errno(); /* ENOENT: quotas are off */
	if (args.key.nr_items < 1)
		return -ENOENT;
	struct btrfs_ioctl_search_header sh;
	memcpy(&sh, args.buf, sizeof(sh));
	if (sh.type != key || sh.offset != subvolid || sh.len < size)
		return -ENOENT;
	memcpy(item, args.buf + sizeof(sh), size);
	return 0;
}

int storage_btrfs_qgroup(int fd, uint64_t subvolid, uint64_t *ret_rfer, uint64_t *ret_excl)
{
	struct btrfs_qgroup_info_item item;
	int r = qgroup_item(fd, subvolid, BTRFS_QGROUP_INFO_KEY, &item, sizeof(item));
	if (r < 0)
		return r;
	*ret_rfer = le64toh(item.rfer);
	*ret_excl = le64toh(item.excl);
	return 0;
}

/*
 * A volume's quota is a limit on its qgroup's exclusive bytes: what only this volume
 * references. For a snapshot that is what it wrote beyond the clone (its reference bytes
 * still count everything it shares with its source, which costs the pool nothing). It also
 * grows when the source rewrites or deletes data the snapshot still holds: the old extents
 * then stay on disk for the snapshot alone, so they are rightly its to pay for.
 */
static int btrfs_set_quota(int root_fd, const char *name, bool quotas, uint64_t bytes,
			   BbxError *err)
{
	if (!quotas)
		return bbx_error_set(
			err, -EOPNOTSUPP, BBX_UNSUPPORTED,
			"%s: btrfs quotas are not enabled on this pool (a pool on an "
			"existing btrfs directory is not branchbox's to enable them on)",
			name);
	_cleanup_close_ int fd = open_volume(root_fd, name);
	if (fd < 0)
		return bbx_error_set(err, fd, BBX_NOT_FOUND, "%s: cannot open volume: %s", name,
				     strerror(-fd));
	/* qgroupid 0: the subvolume of fd. UINT64_MAX clears the limit. */
	struct btrfs_ioctl_qgroup_limit_args args = {
		.qgroupid = 0,
		.lim = { .flags = BTRFS_QGROUP_LIMIT_MAX_EXCL, .max_excl = bytes },
	};
	if (ioctl(fd, BTRFS_IOC_QGROUP_LIMIT, &args) < 0) {
		int r = negative_errno();
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: cannot set the qgroup limit: %s",
				     name, strerror(-r));
	}
	return 0;
}

static int btrfs_get_quota(int root_fd, const char *name, bool quotas, uint64_t *ret)
{
	*ret = STORAGE_UNKNOWN;
	if (!quotas)
		return 0;
	_cleanup_close_ int fd = open_volume(root_fd, name);
	if (fd < 0)
		return fd;
	uint64_t id;
	if (btrfs_util_subvolume_id_fd(fd, &id) != BTRFS_UTIL_OK)
		return 0;
	struct btrfs_qgroup_limit_item item;
	if (qgroup_item(fd, id, BTRFS_QGROUP_LIMIT_KEY, &item, sizeof(item)) < 0)
		return 0;
	if (le64toh(item.flags) & BTRFS_QGROUP_LIMIT_MAX_EXCL)
		*ret = le64toh(item.max_excl);
	return 0;
}

static int btrfs_usage(int root_fd, const char *name, bool quotas, uint64_t *ret_exclusive,
		       uint64_t *ret_shared, BbxError *err)
{
	_cleanup_close_ int fd = open_volume(root_fd, name);
	if (fd < 0)
		return bbx_error_set(err, fd, BBX_NOT_FOUND, "%s: cannot open volume: %s", name,
				     strerror(-fd));
	*ret_exclusive = *ret_shared = STORAGE_UNKNOWN;
	uint64_t id;
	if (!quotas || btrfs_util_subvolume_id_fd(fd, &id) != BTRFS_UTIL_OK)
		return 0;
	/* qgroup counters move at transaction commit: commit so they include recent writes. */
	(void)btrfs_util_sync_fd(fd);
	uint64_t rfer, excl;
	if (storage_btrfs_qgroup(fd, id, &rfer, &excl) < 0)
		return 0;
	*ret_exclusive = excl;
	*ret_shared = rfer >= excl ? rfer - excl : 0;
	return 0;
}

const StorageDriver storage_driver_btrfs = {
	.name = "btrfs",
	.create = btrfs_create,
	.check_layout = btrfs_check_layout,
	.snapshot = btrfs_snapshot,
	.destroy = btrfs_destroy,
	.usage = btrfs_usage,
	.list = storage_list_dir,
	.set_quota = btrfs_set_quota,
	.get_quota = btrfs_get_quota,
};
