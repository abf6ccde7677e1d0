/* SPDX-License-Identifier: MIT */
/* What sandbox-cgroup.c shares with sandbox-cgroup-tree.c; not part of the module's contract. */
#pragma once

#include <dirent.h>

/* The directory below each hierarchy that holds every cgroup made here. */
#define CG_PARENT "branchbox"

/* The most levels a cgroup name below CG_PARENT may have. */
#define CG_MAX_LEVELS 4

/* 0 when name is 1 to CG_MAX_LEVELS '/'-separated levels, each name_is_valid();
 * else -EINVAL or -ENOMEM. */
int sandbox_cgroup_name_check(const char *name);
void sandbox_cgroup_closedirp(DIR **d);
