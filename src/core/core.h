/* SPDX-License-Identifier: MIT */
/*
 * Core: the daemon's domain state (state dir, repository, store) that every interface
 * (REST, MCP, CLI socket) acts on. One Core per daemon; its functions are thread-safe
 * unless a header says otherwise. Core never prints; errors come back in a BbxError.
 */
#pragma once

#include "ceilings.h"
#include "error.h"
#include "store.h"
#include "uids.h"

typedef struct Core Core;

typedef struct CoreOptions {
	const char *state_dir;	       /* required; created 0700 if missing */
	const char *repo_path;	       /* required; the git repository production is built from */
	const char *production_branch; /* production's environment name; NULL = "main" */
	int64_t agent_token_max_ttl;   /* seconds; 0 = 30 days */
	UidRange uid_range; /* environments' uids; all zero = UID_RANGE_DEFAULT (uid-range.h) */
	uint64_t
		hook_timeout_sec; /* deadline of each hook (build, deploy, post_deploy); 0 = 30 min */
	/* Ceilings on previews (ceilings.h); 0 or NULL: the default. */
	size_t max_previews;		 /* in all */
	size_t max_previews_per_token;	 /* created by one token */
	const PoolReserve *pool_reserve; /* what only production may use of the pool */
} CoreOptions;

int core_new(const CoreOptions *opts, Core **ret, BbxError *err);
void core_free(Core *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Core *, core_free)

const char *core_state_dir(Core *c);
const char *core_repo_path(Core *c);
Store *core_store(Core *c);
/* The production environment's name, which is also its branch. */
const char *core_production_branch(Core *c);

/* The environments module's state (environment.c owns it). */
struct Environments;
struct Environments *core_environments(Core *c);
void core_set_environments(Core *c, struct Environments *e);
int64_t core_agent_token_max_ttl(Core *c);
/* Deadline of one hook run, in seconds. */
uint64_t core_hook_timeout(Core *c);
/* Where new environments' uids come from (see uid-range.h). */
const UidRange *core_uid_range(Core *c);
/* Ceilings on previews, from the options (defaults filled in). */
size_t core_max_previews(Core *c);
size_t core_max_previews_per_token(Core *c);
const PoolReserve *core_pool_reserve(Core *c);
