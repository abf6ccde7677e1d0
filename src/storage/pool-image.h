/* SPDX-License-Identifier: MIT */
/*
 * Internal to src/storage: the host side of a pool (pool-image.c), apart from the pool's
 * records and volumes (pool.c): which filesystem a path is on, whether btrfs can be made
 * here, and the pool's own btrfs image (a sparse file, mkfs.btrfs, an autoclear loop mount,
 * detaching what is left of it). Errors as -errno, with a message in err where one is taken.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

/* "a/b", malloc'ed; NULL on -ENOMEM. */
char *pool_path_join(const char *a, const char *b);
/* The statfs type of path, and its name for people ("btrfs", "xfs", ...). */
int pool_path_fstype(const char *path, long *ret);
const char *pool_fstype_name(long type);
bool pool_kernel_has_btrfs(void);
bool pool_have_mkfs_btrfs(void);
/* path is the root of a mounted btrfs. */
bool pool_is_btrfs_mountpoint(const char *path);
/* A sparse image of size bytes, formatted btrfs, and its (empty) mountpoint mnt. */
int pool_make_image(const char *pool_dir, const char *image, const char *mnt, uint64_t size,
		    BbxError *err);
/* Mount image at mnt through a fresh autoclear loop device (its path in *ret_device). */
int pool_loop_mount(const char *image, const char *mnt, char **ret_device, BbxError *err);
/* Detach every loop device still backed by image. */
void pool_loop_detach_image(const char *image);
/* The loop devices backed by image ("/dev/loopN"), from sysfs. */
int pool_loop_devices_of_image(const char *image, char ***ret);
