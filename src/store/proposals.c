/* SPDX-License-Identifier: MIT */
#include "proposals.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PROPOSAL_COLUMNS                                                                           \
	"id, kind, environment, source_branch, base_commit, head_commit, state, step, title, "     \
	"description, evidence_json, evidence_digest, review_json, merge_json, error, "            \
	"created_by, token_id, created_at, updated_at, validate_commit"

static char *dup_col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? strdup((const char *)t) : NULL;
}

void proposal_record_done(ProposalRecord *r)
{
	char **fields[] = {
		&r->id,		 &r->kind,	     &r->environment,	&r->source_branch,
		&r->base_commit, &r->head_commit,    &r->state,		&r->step,
		&r->title,	 &r->description,    &r->evidence_json, &r->evidence_digest,
		&r->review_json, &r->merge_json,     &r->error,		&r->created_by,
		&r->token_id,	 &r->validate_commit
	};
	for (size_t i = 0; i < ELEMENTSOF(fields); i++)
		free(*fields[i]);
	memset(r, 0, sizeof(*r));
}

void proposal_records_free(ProposalRecord *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		proposal_record_done(&v[i]);
	free(v);
}

static int read_row(sqlite3_stmt *st, ProposalRecord *r)
{
	*r = (ProposalRecord){
		.id = dup_col(st, 0),
		.kind = dup_col(st, 1),
		.environment = dup_col(st, 2),
		.source_branch = dup_col(st, 3),
		.base_commit = dup_col(st, 4),
		.head_commit = dup_col(st, 5),
		.state = dup_col(st, 6),
		.step = dup_col(st, 7),
		.title = dup_col(st, 8),
		.description = dup_col(st, 9),
		.evidence_json = dup_col(st, 10),
		.evidence_digest = dup_col(st, 11),
		.review_json = dup_col(st, 12),
		.merge_json = dup_col(st, 13),
		.error = dup_col(st, 14),
		.created_by = dup_col(st, 15),
		.token_id = dup_col(st, 16),
		.created_at = sqlite3_column_int64(st, 17),
		.updated_at = sqlite3_column_int64(st, 18),
		.validate_commit = dup_col(st, 19),
	};
	if (!r->id || !r->source_branch || !r->base_commit || !r->head_commit || !r->state ||
	    !r->created_by) {
		proposal_record_done(r);
		return -ENOMEM;
	}
	return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

int proposal_record_insert(Store *s, const ProposalRecord *r, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	store_lock(s);
	rc = sqlite3_prepare_v2(store_db(s),
				"INSERT INTO proposals (" PROPOSAL_COLUMNS ") VALUES "
				"(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		const char *v[] = {
			r->id,		r->kind,	r->environment,	  r->source_branch,
			r->base_commit, r->head_commit, r->state,	  r->step,
			r->title,	r->description, r->evidence_json, r->evidence_digest,
			r->review_json, r->merge_json,	r->error,	  r->created_by,
			r->token_id
		};
		for (size_t i = 0; i < ELEMENTSOF(v); i++)
			bind_text(st, (int)i + 1, v[i]);
		sqlite3_bind_int64(st, 18, r->created_at);
		sqlite3_bind_int64(st, 19, r->updated_at);
		bind_text(st, 20, r->validate_commit);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_CONSTRAINT)
		ret = bbx_error_set(err, -EEXIST, BBX_CONFLICT, "proposal '%s' exists", r->id);
	else if (rc != SQLITE_DONE)
		ret = store_error(s, rc, "insert proposal", err);
	sqlite3_finalize(st);
	store_unlock(s);
	return ret;
}

int proposal_record_get(Store *s, const char *id, ProposalRecord *ret, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(store_db(s),
				"SELECT " PROPOSAL_COLUMNS " FROM proposals WHERE id = ?", -1, &st,
				NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW)
		r = read_row(st, ret);
	else if (rc == SQLITE_DONE)
		r = bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "proposal '%s' not found", id);
	else
		r = store_error(s, rc, "read proposal", err);
	sqlite3_finalize(st);
	store_unlock(s);
	return r;
}

int proposal_record_list(Store *s, ProposalRecord **ret, size_t *ret_n, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	ProposalRecord *v = NULL;
	size_t n = 0;
	int r = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(store_db(s),
				"SELECT " PROPOSAL_COLUMNS
				" FROM proposals ORDER BY created_at DESC, rowid DESC",
				-1, &st, NULL);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		ProposalRecord *nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			r = -ENOMEM;
			break;
		}
		v = nv;
		r = read_row(st, &v[n]);
		if (r < 0)
			break;
		n++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = store_error(s, rc, "list proposals", err);
	sqlite3_finalize(st);
	store_unlock(s);
	if (r < 0) {
		proposal_records_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int proposal_record_update(Store *s, const ProposalRecord *r, const char *expect_state,
			   BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	store_lock(s);
	rc = sqlite3_prepare_v2(
		store_db(s),
		"UPDATE proposals SET environment = ?, head_commit = ?, state = ?, step = ?, "
		"evidence_json = ?, evidence_digest = ?, review_json = ?, merge_json = ?, "
		"error = ?, updated_at = ? WHERE id = ? AND (?12 IS NULL OR state = ?12)",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		bind_text(st, 1, r->environment);
		bind_text(st, 2, r->head_commit);
		bind_text(st, 3, r->state);
		bind_text(st, 4, r->step);
		bind_text(st, 5, r->evidence_json);
		bind_text(st, 6, r->evidence_digest);
		bind_text(st, 7, r->review_json);
		bind_text(st, 8, r->merge_json);
		bind_text(st, 9, r->error);
		sqlite3_bind_int64(st, 10, store_now());
		bind_text(st, 11, r->id);
		bind_text(st, 12, expect_state);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		ret = store_error(s, rc, "update proposal", err);
	else if (sqlite3_changes(store_db(s)) != 1)
		ret = bbx_error_set(err, -ESTALE, BBX_CONFLICT,
				    "proposal '%s' changed meanwhile (it is no longer %s)", r->id,
				    expect_state ? expect_state : "there");
	sqlite3_finalize(st);
	store_unlock(s);
	return ret;
}

int proposal_record_set_step(Store *s, const char *id, const char *step, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int rc, ret = 0;

	store_lock(s);
	rc = sqlite3_prepare_v2(store_db(s),
				"UPDATE proposals SET step = ?, updated_at = ? WHERE id = ?", -1,
				&st, NULL);
	if (rc == SQLITE_OK) {
		bind_text(st, 1, step);
		sqlite3_bind_int64(st, 2, store_now());
		bind_text(st, 3, id);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		ret = store_error(s, rc, "update proposal step", err);
	sqlite3_finalize(st);
	store_unlock(s);
	return ret;
}

int idempotency_get(Store *s, const char *principal, const char *action, const char *key,
		    char **ret_request_digest, char **ret_response, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(store_db(s),
				"SELECT request_digest, response_json FROM idempotency "
				"WHERE principal = ? AND action = ? AND key = ?",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		bind_text(st, 1, principal);
		bind_text(st, 2, action);
		bind_text(st, 3, key);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		*ret_request_digest = dup_col(st, 0);
		*ret_response = dup_col(st, 1);
		if (!*ret_request_digest || !*ret_response) {
			free(*ret_request_digest);
			free(*ret_response);
			r = -ENOMEM;
		}
	} else if (rc == SQLITE_DONE)
		r = -ENOENT;
	else
		r = store_error(s, rc, "read idempotency key", err);
	sqlite3_finalize(st);
	store_unlock(s);
	return r;
}

int idempotency_put(Store *s, const char *principal, const char *action, const char *key,
		    const char *request_digest, const char *response, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	store_lock(s);
	rc = sqlite3_prepare_v2(
		store_db(s),
		"INSERT OR IGNORE INTO idempotency (principal, action, key, "
		"request_digest, response_json, created_at) VALUES (?, ?, ?, ?, ?, ?)",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		bind_text(st, 1, principal);
		bind_text(st, 2, action);
		bind_text(st, 3, key);
		bind_text(st, 4, request_digest);
		bind_text(st, 5, response);
		sqlite3_bind_int64(st, 6, store_now());
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		r = store_error(s, rc, "record idempotency key", err);
	sqlite3_finalize(st);
	store_unlock(s);
	return r;
}
