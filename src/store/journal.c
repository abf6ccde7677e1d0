/* SPDX-License-Identifier: MIT */
#include "journal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static char *dup_col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? strdup((const char *)t) : NULL;
}

void journal_entry_done(JournalEntry *e)
{
	free(e->kind);
	free(e->target);
	free(e->step);
	free(e->state);
	free(e->payload_json);
	memset(e, 0, sizeof(*e));
}

void journal_entries_free(JournalEntry *e, size_t n)
{
	for (size_t i = 0; e && i < n; i++)
		journal_entry_done(&e[i]);
	free(e);
}

int journal_begin(Store *s, const char *kind, const char *target, const char *step,
		  const char *payload_json, int64_t *ret_id, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;
	int64_t now = store_now();

	store_lock(s);
	rc = sqlite3_prepare_v2(store_db(s),
				"INSERT INTO operations (kind, target, step, state, payload_json, "
				"created_at, updated_at) "
				"VALUES (?, ?, ?, 'pending', ?, ?, ?)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, target, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, step, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, payload_json, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, now);
		sqlite3_bind_int64(st, 6, now);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		r = store_error(s, rc, "journal intent", err);
	else if (ret_id)
		*ret_id = sqlite3_last_insert_rowid(store_db(s));
	sqlite3_finalize(st);
	store_unlock(s);
	return r;
}

static int journal_update(Store *s, int64_t id, const char *column, const char *value,
			  BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;
	const char *sql = !strcmp(column, "step")
				  ? "UPDATE operations SET step = ?, updated_at = ? WHERE id = ?"
				  : "UPDATE operations SET state = ?, updated_at = ? WHERE id = ?";

	store_lock(s);
	rc = sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, value, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, store_now());
		sqlite3_bind_int64(st, 3, id);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		r = store_error(s, rc, "journal update", err);
	else if (sqlite3_changes(store_db(s)) != 1)
		r = bbx_error_set(err, -ENOENT, BBX_INTERNAL, "journal: no operation %lld",
				  (long long)id);
	sqlite3_finalize(st);
	store_unlock(s);
	return r;
}

int journal_step(Store *s, int64_t id, const char *step, BbxError *err)
{
	return journal_update(s, id, "step", step, err);
}

int journal_finish(Store *s, int64_t id, const char *state, BbxError *err)
{
	if (strcmp(state, "done") && strcmp(state, "undone") && strcmp(state, "failed"))
		return bbx_error_set(err, -EINVAL, BBX_INTERNAL, "journal: bad final state '%s'",
				     state);
	return journal_update(s, id, "state", state, err);
}

int journal_list_pending(Store *s, JournalEntry **ret, size_t *ret_n, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	JournalEntry *v = NULL;
	size_t n = 0;
	int r = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(
		store_db(s),
		"SELECT id, kind, target, step, state, payload_json, created_at, updated_at "
		"FROM operations WHERE state = 'pending' ORDER BY id",
		-1, &st, NULL);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		JournalEntry *nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			r = -ENOMEM;
			break;
		}
		v = nv;
		v[n] = (JournalEntry){
			.id = sqlite3_column_int64(st, 0),
			.kind = dup_col(st, 1),
			.target = dup_col(st, 2),
			.step = dup_col(st, 3),
			.state = dup_col(st, 4),
			.payload_json = dup_col(st, 5),
			.created_at = sqlite3_column_int64(st, 6),
			.updated_at = sqlite3_column_int64(st, 7),
		};
		n++;
		if (!v[n - 1].kind || !v[n - 1].target || !v[n - 1].step || !v[n - 1].state) {
			r = -ENOMEM;
			break;
		}
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = store_error(s, rc, "journal list", err);
	sqlite3_finalize(st);
	store_unlock(s);
	if (r < 0) {
		journal_entries_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}
