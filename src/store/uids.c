/* SPDX-License-Identifier: MIT */
#include "uids.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"
#include "strv.h"

int uid_allocate_locked(Store *s, const char *name, const UidRange *range, uint32_t *ret,
			BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;

	if (!range || range->last <= range->first)
		return bbx_error_set(err, -EINVAL, BBX_INTERNAL, "no uid range to allocate from");
	/* The lowest pair [c, c + 1] that overlaps no allocated pair [u, u + 1]. Pairs made
	 * under another range may sit at any offset, hence the test on both neighbours. */
	uint64_t c = range->first;
	rc = sqlite3_prepare_v2(
		store_db(s),
		"SELECT uid FROM uid_allocations WHERE uid >= ?1 - 1 AND uid <= ?2 ORDER BY uid",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, range->first);
		sqlite3_bind_int64(st, 2, range->last);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			uint64_t u = (uint64_t)sqlite3_column_int64(st, 0);
			if (u + 1 < c)
				continue;
			if (u > c + 1)
				break;
			c = u + 2;
		}
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = store_error(s, rc, "allocate uids", err);
	sqlite3_finalize(st);
	if (r < 0)
		return r;
	if (c + 1 > range->last)
		return bbx_error_set(
			err, -ENOSPC, BBX_UNAVAILABLE,
			"every uid pair of the range %u-%u is in use (serve --uid-range)",
			range->first, range->last);

	rc = sqlite3_prepare_v2(
		store_db(s),
		"INSERT INTO uid_allocations (uid, environment, created_at) VALUES (?, ?, ?)", -1,
		&st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, (sqlite3_int64)c);
		sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, store_now());
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		r = store_error(s, rc, "allocate uids", err);
	sqlite3_finalize(st);
	if (r >= 0)
		*ret = (uint32_t)c;
	return r;
}

int uid_allocation_sweep_locked(Store *s, BbxError *err)
{
	int rc = sqlite3_exec(store_db(s),
			      "DELETE FROM uid_allocations WHERE files_gone = 1 AND NOT EXISTS "
			      "(SELECT 1 FROM environments e WHERE e.uid = uid_allocations.uid "
			      "OR e.volume_uid = uid_allocations.uid)",
			      NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_error(s, rc, "release uids", err);
	return sqlite3_changes(store_db(s));
}

int uid_allocation_files_gone(Store *s, const char *name, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(store_db(s),
				"UPDATE uid_allocations SET files_gone = 1 WHERE environment = ?",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		r = store_error(s, rc, "mark uids released", err);
	sqlite3_finalize(st);
	store_unlock(s);
	return r;
}

int uid_allocation_orphans(Store *s, char ***ret, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	_cleanup_strv_free_ char **names = NULL;
	int r = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(
		store_db(s),
		"SELECT DISTINCT environment FROM uid_allocations a WHERE files_gone = 0 AND "
		"NOT EXISTS (SELECT 1 FROM environments e WHERE e.name = a.environment) "
		"ORDER BY environment",
		-1, &st, NULL);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		const char *n = (const char *)sqlite3_column_text(st, 0);
		if (n && strv_push(&names, n) < 0) {
			r = -ENOMEM;
			break;
		}
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = store_error(s, rc, "list uid allocations", err);
	sqlite3_finalize(st);
	store_unlock(s);
	if (r >= 0)
		*ret = TAKE_PTR(names);
	return r;
}

int uid_allocation_sweep(Store *s, BbxError *err)
{
	store_lock(s);
	int r = uid_allocation_sweep_locked(s, err);
	store_unlock(s);
	return r;
}
