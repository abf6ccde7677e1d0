/* SPDX-License-Identifier: MIT */
/*
 * Taking a stopped daemon's state dir off the host: what `branchbox down` does.
 *
 * A daemon that stops leaves its pool mounted and its environments' network namespaces
 * pinned (a restart picks them up). state_down() removes what the state dir owns on the
 * host, and only that: the cgroups below branchbox/<prefix> (the prefix is derived from the
 * state dir's path, so other daemons' cgroups are never named), the processes left in them,
 * the namespaces pinned under STATE/run/netns, the pool's mount and loop device, and any
 * other mount point under the state dir. Data stays: the pool image, pool.json and the
 * database are kept, so `serve` starts again on the same state dir.
 *
 * It refuses (-EBUSY, kind conflict) while a daemon holds STATE/daemon.lock, and holds
 * that lock itself until it returns, so no daemon starts halfway through.
 * Ownership: the report's strings belong to it; state_down_report_done() frees them.
 * Errors: -errno with the reason, naming the path, in the optional BbxError; it carries on
 * past a failed step and returns the first error. Never prints. Not thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

typedef struct StateDownReport {
	char *state_dir;     /* canonical path */
	char **cgroups;	     /* removed, relative to the "branchbox" parent; NULL when none */
	char **netns;	     /* removed network namespace files */
	char *pool_mount;    /* the pool's unmounted mount point, or NULL */
	char **loop_devices; /* detached loop devices */
	char **mounts;	     /* other mount points removed under the state dir */
} StateDownReport;

void state_down_report_done(StateDownReport *r);
/* Nothing was removed: a second run after a successful one. */
bool state_down_report_empty(const StateDownReport *r);

/*
 * The name of a daemon's cgroup below "branchbox": "d-" and 8 hex digits of the SHA-256
 * of its canonical state dir. size must be at least 11.
 */
int state_cgroup_prefix(const char *state_dir, char *buf, size_t size);

/* See above. *ret is filled (also on failure: what was removed before the error). */
int state_down(const char *state_dir, StateDownReport *ret, BbxError *err);
