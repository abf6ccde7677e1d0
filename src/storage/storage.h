/* SPDX-License-Identifier: MIT */
/*
 * Copy-on-write volumes (DESIGN.md section 6).
 *
 * A Pool owns one directory of volumes, STATE/pool.json describing it, and (for a pool it
 * created itself) a sparse btrfs image loop-mounted at STATE/pool/mnt. A volume is a
 * directory tree under the pool root (a subvolume on btrfs). Volumes are made under a
 * staging name (".staging-NAME-XXXXXX") and renamed into place, and destroyed by renaming
 * them to ".trash-NAME-XXXXXX" first, so after a kill -9 at any point a volume is either
 * complete or absent; pool_open() removes leftover staging and trash entries.
 *
 * Ownership: pool_open()/pool_init() hand out a Pool the caller frees with pool_free();
 * strings returned by pool accessors belong to the pool. VolumeInfo arrays from
 * pool_volume_list() are freed with volume_info_list_free().
 * Errors: -errno, with the reason (naming the volume or path) in the optional BbxError.
 * Library code never prints and never exits. Not thread-safe; callers serialize
 * processes with pool_lock() (an flock on STATE/pool.lock).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define STORAGE_UNKNOWN UINT64_MAX

typedef enum StorageDriverKind {
	STORAGE_DRIVER_AUTO,
	STORAGE_DRIVER_BTRFS,
	STORAGE_DRIVER_REFLINK,
	STORAGE_DRIVER_COPY,
} StorageDriverKind;

const char *storage_driver_kind_to_string(StorageDriverKind k);
/* "btrfs", "reflink", "copy", "auto"; -EINVAL otherwise. */
int storage_driver_kind_from_string(const char *s, StorageDriverKind *ret);

/*
 * How the caller freezes the writers of a source volume around a walk-based copy. The
 * storage layer knows no cgroups: the core passes a freeze/thaw pair, or uses
 * storage_freezer_files() with the freezer files of the source's cgroups.
 * btrfs snapshots are atomic and never call it.
 */
typedef struct VolumeFreeze {
	int (*freeze)(void *userdata);
	int (*thaw)(void *userdata);
	void *userdata;
} VolumeFreeze;

/*
 * A VolumeFreeze over cgroup freezer files: userdata is a NULL-terminated array of paths,
 * each either a v1 ".../freezer.state" (FROZEN/THAWED) or a v2 ".../cgroup.freeze" (1/0).
 * freeze waits (up to 10 s) until every group reports frozen.
 */
int storage_freezer_files_freeze(void *userdata);
int storage_freezer_files_thaw(void *userdata);

typedef struct PoolOptions {
	StorageDriverKind driver; /* AUTO picks the best the host offers */
	uint64_t size;		  /* image size for a loop-backed btrfs pool, 0: 64 GiB */
	const char *path;	  /* use this existing directory instead of an image; may be NULL */
} PoolOptions;

typedef struct Pool Pool;

typedef struct PoolInfo {
	StorageDriverKind driver;
	const char *reason;	  /* why this driver was chosen */
	const char *root;	  /* directory holding the volumes */
	const char *image;	  /* loop image, or NULL */
	const char *mount_source; /* e.g. /dev/loop3, from mountinfo; may be NULL */
	const char *fstype;
	bool quotas;		     /* btrfs qgroups enabled by branchbox */
	bool quota_enforced;	     /* pool_volume_set_quota() bounds a volume */
	const char *no_quota_reason; /* why not, when !quota_enforced */
	uint64_t size_bytes;	     /* filesystem size */
	uint64_t free_bytes;	     /* available to unprivileged writers */
} PoolInfo;

typedef struct VolumeInfo {
	char *name;
	char *path;
	uint64_t exclusive_bytes; /* STORAGE_UNKNOWN when the driver cannot tell */
	uint64_t shared_bytes;	  /* STORAGE_UNKNOWN when the driver cannot tell */
	uint64_t quota_bytes;	  /* its bound on exclusive_bytes; STORAGE_UNKNOWN: none */
} VolumeInfo;

void volume_info_list_free(VolumeInfo *l, size_t n);

/* Take the pool lock (exclusive flock on STATE/pool.lock, created if missing). */
int pool_lock(const char *state_dir, int *ret_fd, BbxError *err);

/*
 * Create the pool described by opts. Running it again with identical options is a no-op
 * (returns 0 and *ret_already = true); with other options -EEXIST naming the driver.
 */
int pool_init(const char *state_dir, const PoolOptions *opts, bool *ret_already, BbxError *err);
/*
 * Read STATE/pool.json, remount the loop image when it is not mounted, remove leftover
 * staging/trash entries. *ret_status (owned by the pool) says what was found.
 */
int pool_open(const char *state_dir, Pool **ret, BbxError *err);
Pool *pool_free(Pool *p);
static inline void pool_freep(Pool **p)
{
	if (*p)
		pool_free(*p);
}
#define _cleanup_pool_ _cleanup_(pool_freep)

const char *pool_status(const Pool *p);
int pool_info(Pool *p, PoolInfo *ret, BbxError *err);
/* Umount, detach the loop device, remove the image and pool.json. -EBUSY while volumes
 * exist unless force (which destroys them first). Frees nothing: call pool_free(). */
int pool_destroy(Pool *p, bool force, BbxError *err);

/*
 * Take the pool off the host without touching its data, so pool_open() can bring it back:
 * unmount STATE/pool/mnt and detach every loop device backed by the image. The image and
 * pool.json stay. Nothing to do (no pool.json, a directory pool, already unmounted) is
 * success. *ret_mountpoint is the unmounted mount point (NULL when none was mounted) and
 * *ret_loop_devices the detached devices (NULL when none); the caller frees both (free(),
 * strv_free()). -EBUSY naming the mount point while something still uses the pool.
 * The caller holds pool_lock() and has stopped what used the pool.
 */
int pool_unmount(const char *state_dir, char **ret_mountpoint, char ***ret_loop_devices,
		 BbxError *err);

int pool_volume_create(Pool *p, const char *name, BbxError *err);
/* Atomic clone of src to dst; freeze may be NULL (the source is quiescent). */
int pool_volume_snapshot(Pool *p, const char *src, const char *dst, const VolumeFreeze *freeze,
			 BbxError *err);
/* sync: wait until the space is free again (btrfs cleaner) before returning. */
int pool_volume_destroy(Pool *p, const char *name, bool sync, BbxError *err);
/* Host path of a volume (allocated, caller frees), or NULL on -ENOMEM or bad name. */
char *pool_volume_path(Pool *p, const char *name);
int pool_volume_exists(Pool *p, const char *name);
int pool_volume_list(Pool *p, VolumeInfo **ret, size_t *ret_n, BbxError *err);
int pool_volume_usage(Pool *p, const char *name, VolumeInfo *ret, BbxError *err);
/*
 * Bound what a volume may write beyond what it shares with other volumes (its exclusive
 * bytes; for a snapshot, what it wrote after the clone): past it, writes fail with EDQUOT.
 * STORAGE_UNKNOWN removes the bound. -EOPNOTSUPP (kind "unsupported", the reason in err)
 * when the pool cannot bound one volume: the reflink and copy drivers, or a btrfs pool
 * without quotas (PoolInfo.quota_enforced says which in advance).
 */
int pool_volume_set_quota(Pool *p, const char *name, uint64_t bytes, BbxError *err);

/*
 * What the pool has promised: free space now, and what the volumes with a quota may still
 * write (each one's quota minus its exclusive bytes, summed). Free space minus the promised
 * bytes is what stays available whatever those volumes do.
 */
typedef struct PoolCommitment {
	uint64_t size_bytes;
	uint64_t free_bytes;
	uint64_t promised_bytes;
	size_t n_bounded; /* volumes with a quota */
} PoolCommitment;
int pool_commitment(Pool *p, PoolCommitment *ret, BbxError *err);

/* The layout a crash-consistent clone needs (see storage_check_layout()). */
int pool_volume_check_layout(Pool *p, const char *name, BbxError *err);

/*
 * Pure helpers, exposed for tests.
 */

/* Refuse symlinks under dir_fd whose target leaves the tree (absolute, or climbing above
 * the root lexically or after resolution). what names the volume in the message. */
int storage_check_symlinks(int dir_fd, const char *what, BbxError *err);
/* Lexical check of one link target found in a directory depth levels below the root. */
bool storage_link_target_escapes(const char *target, unsigned depth);
/* ".staging-NAME-XXXXXX" / ".trash-NAME-XXXXXX" names. */
int storage_staging_name(const char *prefix, const char *name, char **ret);
bool storage_is_staging_name(const char *entry);

/* pool.json as a flat key/value record. */
typedef struct PoolRecord {
	StorageDriverKind driver;
	char *reason;
	char *root;
	char *image;
	char *mountpoint;
	bool quotas;
	uint64_t size;
	/* the options pool_init was called with, to recognize an identical re-run */
	StorageDriverKind req_driver;
	uint64_t req_size;
	char *req_path;
} PoolRecord;

void pool_record_done(PoolRecord *r);
int pool_record_parse(const char *json, PoolRecord *ret, BbxError *err);
int pool_record_format(const PoolRecord *r, char **ret);

/* Copy a tree (the copy/reflink drivers' walk), exposed for tests. dst_fd is an empty dir. */
int storage_copy_tree(int src_fd, int dst_fd, bool reflink, BbxError *err);
/* Allocated bytes of the files under dir_fd (st_blocks), hard links counted once. */
int storage_tree_allocated(int dir_fd, uint64_t *ret, BbxError *err);
/* True when FICLONE works between two files in dir. */
bool storage_dir_supports_reflink(const char *dir);
