/* SPDX-License-Identifier: MIT */
/*
 * Uid allocations: every environment runs under a pair of its own, services as uid and
 * applications as uid + 1 (gids equal), taken from the daemon's range and never shared by
 * two environments (DESIGN.md 2a). A pair stays allocated while any file stored as it may
 * remain: while a row names it as its uid or volume_uid (a preview's volume is a snapshot
 * stored as its parent's pair), and until the environment that took it has had every file
 * removed (uid_allocation_files_gone(), after a successful teardown). env_record_delete()
 * releases, in the same transaction as the row, every pair that is then held by nothing.
 *
 * Thread-safety: each call takes the store lock.
 */
#pragma once

#include <stdint.h>

#include "store.h"

/* Where new pairs come from: uids first..last (both included). */
typedef struct UidRange {
	uint32_t first;
	uint32_t last;
} UidRange;

/* Every file environment name had is gone: its pairs may be released once no row holds them. */
int uid_allocation_files_gone(Store *s, const char *name, BbxError *err);
/* Names that hold a pair with files possibly left but have no row (for crash recovery).
 * NULL-terminated strv in *ret (NULL when none), freed with strv_free(). */
int uid_allocation_orphans(Store *s, char ***ret, BbxError *err);
/* Release every pair whose files are gone and that no row holds; returns how many. */
int uid_allocation_sweep(Store *s, BbxError *err);
