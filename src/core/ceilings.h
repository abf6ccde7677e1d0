/* SPDX-License-Identifier: MIT */
/*
 * Ceilings: how much of the host one environment may take, and how many previews there may
 * be, so that no preview can starve production or the host (DESIGN.md section 5).
 *
 *  - every process of an environment runs in a cgroup of its own with the limits below, and
 *    the environment's cgroup above them carries their sum (plus room for the one-shots an
 *    agent can cause next to them: an exec, a hook, a sanitize step), so the environment as a
 *    whole is bounded whatever runs in it;
 *  - a preview's volume may write at most ceilings_preview_disk() beyond its clone, and a
 *    reserve of the pool stays free for production: a preview is refused when what every
 *    bounded volume may still write, plus what it may write, would eat into it;
 *  - at most max_previews previews exist, and at most max_per_token created by one token.
 *
 * Every value comes from production's config (a preview's config is already narrowed to it,
 * see config_apply_production_policy()) or from the daemon's options, never from a branch.
 * Pure functions: no I/O, no state; thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"

/* Processes one service's or one application's cgroup may hold. */
#define CEILING_SERVICE_PIDS 512
#define CEILING_APP_PIDS 1024

#define CEILING_DEFAULT_MAX_PREVIEWS 20
#define CEILING_DEFAULT_MAX_PREVIEWS_PER_TOKEN 5
#define CEILING_DEFAULT_RESERVE_PERCENT 10

/* Limits of one cgroup; 0 means unbounded. */
typedef struct CeilingLimits {
	uint64_t memory_bytes;
	uint64_t pids;
	uint32_t cpu_millis;
} CeilingLimits;

/* The limits of a service's processes (the service, its init and SQL one-shots). */
void ceilings_service(const ConfigService *s, CeilingLimits *ret);
/* The limits of an application's processes (the app, its hooks, exec, sanitize commands):
 * in a preview the preview profile, else the application's own resources. */
void ceilings_application(const ProjectConfig *c, const ConfigApplication *app, bool preview,
			  CeilingLimits *ret);
/*
 * The environment's cgroup: every service, every application with a web process, plus one
 * application-sized and one service-sized one-shot (a build hook runs while the services
 * start and get new credentials; an exec runs next to everything). A resource that one of
 * them leaves unbounded is unbounded in the sum too.
 */
void ceilings_environment(const ProjectConfig *c, bool preview, CeilingLimits *ret);
/*
 * What a preview's volume may write beyond its clone: the sum of its services' `disk`, or the
 * preview budget's disk when it has no service; 0: unbounded.
 */
uint64_t ceilings_preview_disk(const ProjectConfig *c);

/* The part of the pool only production may use: a size, or a percentage of the pool. */
typedef struct PoolReserve {
	uint64_t bytes;
	unsigned percent; /* used when non-zero */
} PoolReserve;

/* "10%", "8G", "0"; -EINVAL otherwise (a percentage above 90 too). */
int pool_reserve_parse(const char *s, PoolReserve *ret);
uint64_t pool_reserve_bytes(const PoolReserve *r, uint64_t pool_size);
/* "10%" or "8.0 GiB" into buf. */
const char *pool_reserve_format(const PoolReserve *r, char *buf, size_t size);

/* Everything the decision to admit one more preview depends on. */
typedef struct PreviewAdmission {
	size_t previews; /* that exist now, in every state */
	size_t max_previews;
	const char *token_id;  /* the creating token; NULL: the local administrator */
	const char *principal; /* its name, for the message */
	size_t token_previews; /* that token_id created */
	size_t max_per_token;
	uint64_t disk_bytes; /* what the new preview may write (0: unbounded) */
	bool disk_enforced;  /* the pool bounds volumes */
	uint64_t pool_size, pool_free;
	uint64_t promised_bytes; /* what bounded volumes (and admitted previews) may still write */
	PoolReserve reserve;
} PreviewAdmission;

/*
 * 0 when one more preview fits; -EDQUOT (kind "limit_reached") with a message naming the
 * limit, how many exist and the option that sets it, otherwise.
 */
int ceilings_admit_preview(const PreviewAdmission *a, BbxError *err);
