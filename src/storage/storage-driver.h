/* SPDX-License-Identifier: MIT */
/*
 * The driver interface behind a Pool (internal to src/storage). Every operation works
 * relative to root_fd, the directory of volumes, on single path components only, so no
 * operation follows a path an agent could have planted. Names passed in are already
 * validated (name_is_valid or a staging name). Drivers never print.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "storage.h"

typedef struct StorageDriver {
	const char *name;
	/* Create an empty volume root_fd/name. */
	int (*create)(int root_fd, const char *name, BbxError *err);
	/* Refuse a source whose layout breaks a crash-consistent clone. */
	int (*check_layout)(int root_fd, const char *name, BbxError *err);
	/* Clone root_fd/src to root_fd/dst (dst does not exist). freeze may be NULL. */
	int (*snapshot)(int root_fd, const char *src, const char *dst, const VolumeFreeze *freeze,
			BbxError *err);
	/* Remove root_fd/name; sync waits until the space is reclaimed. */
	int (*destroy)(int root_fd, const char *name, bool sync, BbxError *err);
	/* Exclusive/shared bytes (STORAGE_UNKNOWN when the driver cannot tell). */
	int (*usage)(int root_fd, const char *name, bool quotas, uint64_t *ret_exclusive,
		     uint64_t *ret_shared, BbxError *err);
	/* Volume names under root_fd (no staging/trash entries), NULL-terminated. */
	int (*list)(int root_fd, char ***ret, BbxError *err);
	/*
	 * Bound what root_fd/name may write (STORAGE_UNKNOWN: no bound), and read the bound
	 * back (STORAGE_UNKNOWN: none). NULL when the driver cannot bound one volume.
	 */
	int (*set_quota)(int root_fd, const char *name, bool quotas, uint64_t bytes, BbxError *err);
	int (*get_quota)(int root_fd, const char *name, bool quotas, uint64_t *ret);
	/* Why the driver cannot bound one volume (when set_quota is NULL). */
	const char *no_quota_reason;
} StorageDriver;

extern const StorageDriver storage_driver_btrfs;
extern const StorageDriver storage_driver_reflink;
extern const StorageDriver storage_driver_copy;

const StorageDriver *storage_driver_get(StorageDriverKind k);

/* Shared by the drivers. */
int storage_list_dir(int root_fd, char ***ret, BbxError *err);
int storage_remove_tree_at(int root_fd, const char *name);
int storage_freeze(const VolumeFreeze *f, const char *what, BbxError *err);
int storage_thaw(const VolumeFreeze *f, const char *what, BbxError *err);
/* SIGKILL ourselves when BRANCHBOX_DEBUG_STOP_AT names this point (crash tests); a no-op
 * unless built with -Ddebug_hooks=true. */
void storage_debug_stop(const char *point);
/* Run argv (no shell); output goes to a captured buffer returned in *ret_output. */
int storage_run(char *const argv[], char **ret_output);
/* Enable btrfs quotas on the filesystem of fd. */
int storage_btrfs_enable_quotas(int fd);
/* Query the btrfs qgroup 0/subvolid for rfer/excl. */
int storage_btrfs_qgroup(int fd, uint64_t subvolid, uint64_t *ret_rfer, uint64_t *ret_excl);
