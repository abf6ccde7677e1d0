/* SPDX-License-Identifier: MIT */
/*
 * What an environment's file, diff, config and services operations read from it: its code
 * tree (the checkout its applications run, at /app) and its volume's application mounts, as
 * fds to act beneath (src/basic/beneath.h), never as paths; its config as the daemon parsed
 * it; its services and applications. Nothing returned carries a secret.
 *
 * Trees answer only when the environment is ready (the same not-ready error as exec and logs:
 * a preview's data is not masked before then). Thread-safe.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <sys/types.h>

#include "core.h"
#include "error.h"

typedef enum EnvTree {
	ENV_TREE_CODE,	 /* the checkout its applications run */
	ENV_TREE_VOLUME, /* its volume's application mounts ("mounts/APP/..."), not service data */
	_ENV_TREE_MAX,
	_ENV_TREE_INVALID = -1,
} EnvTree;

/* "code" / "volume" */
EnvTree env_tree_from_string(const char *s);
const char *env_tree_to_string(EnvTree t);

/*
 * An O_PATH fd of tree's root in environment name (*ret_fd, the caller closes it) and the
 * owner new files there get (*ret_uid, the same gid): the uid its applications' files are
 * stored as. -EBUSY (BBX_CONFLICT) when not ready, -ENOENT (BBX_INVALID) when it has no such
 * tree (no application mounts).
 */
int environment_tree_open(Core *c, const char *name, EnvTree tree, int *ret_fd, uid_t *ret_uid,
			  BbxError *err);

/*
 * The code tree of name against a commit: its own (against_production false: what was changed
 * in the tree since it was checked out) or production's. *ret: {"base", "files": [{path,
 * status, binary, additions, deletions}], "additions", "deletions", "patch",
 * "patch_truncated"}, the patch at most max_patch bytes.
 */
int environment_code_diff(Core *c, const char *name, bool against_production, size_t max_patch,
			  json_t **ret, BbxError *err);

/* The config name was built from (normalized, defaults filled in), no credentials. */
int environment_config_json(Core *c, const char *name, json_t **ret, BbxError *err);

/* {"services": [{name, type, version, state, port}], "applications": [{name, type, state,
 * port}]}, no credentials. */
int environment_services_json(Core *c, const char *name, json_t **ret, BbxError *err);
