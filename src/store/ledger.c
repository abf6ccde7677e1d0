/* SPDX-License-Identifier: MIT */
#include "ledger.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "store-internal.h"

#define GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"

const char *const ledger_field_names[_LEDGER_FIELD_MAX] = {
	[LEDGER_SEQ] = "seq",
	[LEDGER_TIME] = "time",
	[LEDGER_REQUEST_ID] = "request_id",
	[LEDGER_PRINCIPAL] = "principal",
	[LEDGER_TOKEN_ID] = "token_id",
	[LEDGER_INTERFACE] = "interface",
	[LEDGER_ACTION] = "action",
	[LEDGER_RESOURCE] = "resource",
	[LEDGER_DECISION] = "decision",
	[LEDGER_REASON] = "reason",
	[LEDGER_DIGEST] = "request_digest",
	[LEDGER_OUTCOME] = "outcome",
	[LEDGER_PREV] = "prev_hash",
};

#define COLUMNS                                                                                    \
	"seq, time, request_id, principal, token_id, interface, action, resource, decision, "      \
	"reason, request_digest, outcome, prev_hash, hash"

static const char sql_head[] = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
static const char sql_insert[] = "INSERT INTO audit (" COLUMNS ") "
				 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

int ledger_head_locked(Store *s, int64_t *ret_seq, char ret_hash[65], BbxError *err)
{
	sqlite3_stmt *st = NULL;

	*ret_seq = 0;
	snprintf(ret_hash, 65, "%s", GENESIS_HASH);
	int rc = store_prepare_cached(s, sql_head, &st);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*ret_seq = sqlite3_column_int64(st, 0);
		snprintf(ret_hash, 65, "%s", (const char *)sqlite3_column_text(st, 1));
		rc = SQLITE_DONE;
	}
	if (st)
		sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : store_error(s, rc, "audit head", err);
}

int ledger_insert_locked(Store *s, int64_t seq, const char *const f[_LEDGER_FIELD_MAX],
			 const char *hash, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int rc = store_prepare_cached(s, sql_insert, &st);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, seq);
		for (int i = LEDGER_TIME; i < _LEDGER_FIELD_MAX; i++)
			sqlite3_bind_text(st, i + 1, f[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, _LEDGER_FIELD_MAX + 1, hash, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (st)
		sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : store_error(s, rc, "audit append", err);
}

/* Steps st (COLUMNS order) to the end, calling fn per row. SQLITE_DONE, an SQLite error
 * code, or fn's negative return in *ret_r. */
static int walk(sqlite3_stmt *st, LedgerRowFn fn, void *userdata, int *ret_r)
{
	int rc;
	*ret_r = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char seq_s[24];
		int64_t seq = sqlite3_column_int64(st, 0);
		const char *f[_LEDGER_FIELD_MAX] = { seq_s };
		snprintf(seq_s, sizeof(seq_s), "%lld", (long long)seq);
		for (int i = LEDGER_TIME; i < _LEDGER_FIELD_MAX; i++)
			f[i] = (const char *)sqlite3_column_text(st, i);
		int r = fn(seq, f, (const char *)sqlite3_column_text(st, _LEDGER_FIELD_MAX),
			   userdata);
		if (r < 0) {
			*ret_r = r;
			return SQLITE_DONE;
		}
	}
	return rc;
}

int ledger_query(Store *s, const char *resource, const char *since, int64_t limit, LedgerRowFn fn,
		 void *userdata, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	char sql[640];
	int r = 0;

	/* Only the filters given, so SQLite can walk the resource index backwards (an
	 * "?1 IS NULL OR ..." form made every query a full scan of the ledger). */
	snprintf(sql, sizeof(sql),
		 "SELECT * FROM (SELECT " COLUMNS " FROM audit WHERE %s AND %s "
		 "ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
		 resource ? "resource = ?1" : "1", since ? "time >= ?2" : "1");
	store_read_lock(s);
	int rc = sqlite3_prepare_v2(store_read_db(s), sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, resource, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, since, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, limit);
		rc = walk(st, fn, userdata, &r);
	}
	sqlite3_finalize(st);
	store_read_unlock(s);
	if (rc != SQLITE_DONE)
		return bbx_error_set(err, -EIO, BBX_INTERNAL, "state database: audit query: %s",
				     sqlite3_errstr(rc));
	return r;
}

int ledger_walk_file(const char *db_path, LedgerRowFn fn, void *userdata, BbxError *err)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int r = 0;

	int rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		r = bbx_error_set(err, -EIO, BBX_INVALID, "%s: %s", db_path,
				  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_busy_timeout(db, 5000);
	rc = sqlite3_prepare_v2(db, "SELECT " COLUMNS " FROM audit ORDER BY seq", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = walk(st, fn, userdata, &r);
	if (rc != SQLITE_DONE)
		r = bbx_error_set(err, -EIO, BBX_INVALID, "%s: %s", db_path, sqlite3_errmsg(db));
out:
	sqlite3_finalize(st);
	sqlite3_close_v2(db);
	return r;
}
