/* SPDX-License-Identifier: MIT */
#include "tokens.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

#define TOKEN_COLUMNS                                                                              \
	"id, digest, principal_kind, name, scope_json, verbs, created_by, created_at, "            \
	"expires_at, revoked_at, budget_json"

void token_row_done(TokenRow *r)
{
	free(r->id);
	free(r->kind);
	free(r->name);
	free(r->scope_json);
	free(r->verbs);
	free(r->created_by);
	free(r->budget_json);
	memset(r, 0, sizeof(*r));
}

void token_rows_free(TokenRow *rows, size_t n)
{
	for (size_t i = 0; rows && i < n; i++)
		token_row_done(&rows[i]);
	free(rows);
}

static int dup_col(sqlite3_stmt *st, int i, char **ret)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	*ret = NULL;
	if (!t)
		return 0;
	*ret = strdup((const char *)t);
	return *ret ? 0 : -ENOMEM;
}

/* A row in TOKEN_COLUMNS order into ret. */
static int row_read(sqlite3_stmt *st, TokenRow *ret)
{
	TokenRow r = { 0 };
	const void *d = sqlite3_column_blob(st, 1);
	if (d && sqlite3_column_bytes(st, 1) == TOKEN_ROW_DIGEST_BYTES)
		memcpy(r.digest, d, TOKEN_ROW_DIGEST_BYTES);
	if (dup_col(st, 0, &r.id) < 0 || dup_col(st, 2, &r.kind) < 0 ||
	    dup_col(st, 3, &r.name) < 0 || dup_col(st, 4, &r.scope_json) < 0 ||
	    dup_col(st, 5, &r.verbs) < 0 || dup_col(st, 6, &r.created_by) < 0 ||
	    dup_col(st, 10, &r.budget_json) < 0 || !r.id || !r.kind || !r.name || !r.scope_json) {
		token_row_done(&r);
		return -ENOMEM;
	}
	r.created_at = sqlite3_column_int64(st, 7);
	r.expires_at = sqlite3_column_int64(st, 8);
	r.revoked_at = sqlite3_column_int64(st, 9);
	*ret = r;
	return 0;
}

int token_row_insert_locked(Store *s, const TokenRow *r, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(
		store_db(s),
		"INSERT INTO tokens (id, digest, principal_kind, name, scope_json, verbs, "
		"created_by, created_at, expires_at, budget_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, "
		"?, ?)",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, r->id, -1, SQLITE_STATIC);
		sqlite3_bind_blob(st, 2, r->digest, TOKEN_ROW_DIGEST_BYTES, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, r->kind, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, r->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, r->scope_json, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, r->verbs, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, r->created_by, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, r->created_at);
		if (r->expires_at)
			sqlite3_bind_int64(st, 9, r->expires_at);
		else
			sqlite3_bind_null(st, 9);
		sqlite3_bind_text(st, 10, r->budget_json, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : store_error(s, rc, "token insert", err);
}

int token_row_revoke_locked(Store *s, const char *id, const char *created_by, int64_t now,
			    BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(
		store_db(s),
		"UPDATE tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ? "
		"AND (? OR created_by = ?)",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, now);
		sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, created_by == NULL);
		sqlite3_bind_text(st, 4, created_by, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_error(s, rc, "token revoke", err);
	if (sqlite3_changes(store_db(s)) == 0)
		return bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "token '%s' not found", id);
	return 0;
}

/* The row one column equals: a blob (size > 0) or text. */
static int row_find(Store *s, const char *sql, const void *key, int size, TokenRow *ret,
		    BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int r = -ENOENT;

	store_read_lock(s);
	int rc = sqlite3_prepare_v2(store_read_db(s), sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		if (size > 0)
			sqlite3_bind_blob(st, 1, key, size, SQLITE_STATIC);
		else
			sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			r = row_read(st, ret);
			rc = SQLITE_DONE;
		}
	}
	sqlite3_finalize(st);
	store_read_unlock(s);
	if (rc != SQLITE_DONE)
		return bbx_error_set(err, -EIO, BBX_INTERNAL, "state database: token lookup: %s",
				     sqlite3_errstr(rc));
	return r;
}

int token_row_find_digest(Store *s, const uint8_t digest[TOKEN_ROW_DIGEST_BYTES], TokenRow *ret,
			  BbxError *err)
{
	return row_find(s, "SELECT " TOKEN_COLUMNS " FROM tokens WHERE digest = ?", digest,
			TOKEN_ROW_DIGEST_BYTES, ret, err);
}

int token_row_find_id(Store *s, const char *id, TokenRow *ret, BbxError *err)
{
	return row_find(s, "SELECT " TOKEN_COLUMNS " FROM tokens WHERE id = ?", id, 0, ret, err);
}

int token_row_budget_json(Store *s, const char *id, char **ret, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	char *text = NULL;
	int rc;

	store_read_lock(s);
	rc = sqlite3_prepare_v2(store_read_db(s), "SELECT budget_json FROM tokens WHERE id = ?", -1,
				&st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *t = (const char *)sqlite3_column_text(st, 0);
			text = t ? strdup(t) : NULL;
			rc = t && !text ? SQLITE_NOMEM : SQLITE_DONE;
		}
	}
	sqlite3_finalize(st);
	store_read_unlock(s);
	if (rc != SQLITE_DONE) {
		free(text);
		return bbx_error_set(err, -EIO, BBX_INTERNAL, "state database: token budget: %s",
				     sqlite3_errstr(rc));
	}
	*ret = text;
	return 0;
}

int token_rows_list(Store *s, const char *created_by, TokenRow **ret, size_t *ret_n, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	TokenRow *rows = NULL;
	size_t n = 0, cap = 0;
	int r = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(
		store_db(s),
		created_by ? "SELECT " TOKEN_COLUMNS " FROM tokens WHERE created_by = ? "
			     "ORDER BY created_at DESC, id"
			   : "SELECT " TOKEN_COLUMNS " FROM tokens ORDER BY created_at DESC, id",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		if (created_by)
			sqlite3_bind_text(st, 1, created_by, -1, SQLITE_STATIC);
		while (r >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			if (n == cap) {
				size_t ncap = cap ? cap * 2 : 8;
				TokenRow *nr = reallocarray(rows, ncap, sizeof(*rows));
				if (!nr) {
					r = -ENOMEM;
					break;
				}
				rows = nr;
				cap = ncap;
			}
			r = row_read(st, &rows[n]);
			if (r >= 0)
				n++;
		}
	}
	sqlite3_finalize(st);
	store_unlock(s);
	if (r < 0 || rc != SQLITE_DONE) {
		token_rows_free(rows, n);
		return r < 0 ? r : store_error(s, rc, "token list", err);
	}
	*ret = rows;
	*ret_n = n;
	return 0;
}
