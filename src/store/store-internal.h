/* SPDX-License-Identifier: MIT */
#pragma once

#include "store.h"
#include "uids.h"

extern const char *const store_migrations[];
extern const int store_n_migrations;

/* With the lock held, inside a transaction (uids.c). */
int uid_allocate_locked(Store *s, const char *name, const UidRange *range, uint32_t *ret,
			BbxError *err);
int uid_allocation_sweep_locked(Store *s, BbxError *err);

#define STORE_CACHED_STMTS 8
/* A statement on the main connection prepared at first use and kept until store_free(),
 * for SQL run on every request (sql must be a string constant: its address is the key).
 * Returned reset with no bindings; reset it after use. Lock held. */
int store_prepare_cached(Store *s, const char *sql, sqlite3_stmt **ret);
