/* SPDX-License-Identifier: MIT */
#include "environments.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"

#define ENV_COLUMNS                                                                                \
	"name, kind, branch, commit_id, parent, state, volume, config_json, secrets_json, error, " \
	"created_at, updated_at, expires_at, uid, volume_uid, token_id"

static char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? strdup((const char *)t) : NULL;
}

void env_record_done(EnvRecord *r)
{
	free(r->name);
	free(r->kind);
	free(r->branch);
	free(r->commit_id);
	free(r->parent);
	free(r->volume);
	free(r->config_json);
	free(r->secrets_json);
	free(r->error);
	free(r->token_id);
	memset(r, 0, sizeof(*r));
}

void env_records_free(EnvRecord *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		env_record_done(&v[i]);
	free(v);
}

static const char *const state_names[_ENV_STATE_MAX] = {
	[ENV_CREATING] = "creating", [ENV_STARTING] = "starting", [ENV_READY] = "ready",
	[ENV_STOPPED] = "stopped",   [ENV_FAILED] = "failed",	  [ENV_DESTROYING] = "destroying",
};

const char *env_state_to_string(EnvState s)
{
	return s >= 0 && s < _ENV_STATE_MAX ? state_names[s] : "invalid";
}

EnvState env_state_from_string(const char *s)
{
	for (int i = 0; s && i < _ENV_STATE_MAX; i++)
		if (!strcmp(state_names[i], s))
			return (EnvState)i;
	return _ENV_STATE_INVALID;
}

static int read_row(sqlite3_stmt *st, EnvRecord *r)
{
	*r = (EnvRecord){
		.name = col(st, 0),
		.kind = col(st, 1),
		.branch = col(st, 2),
		.commit_id = col(st, 3),
		.parent = col(st, 4),
		.state = env_state_from_string((const char *)sqlite3_column_text(st, 5)),
		.volume = col(st, 6),
		.config_json = col(st, 7),
		.secrets_json = col(st, 8),
		.error = col(st, 9),
		.created_at = sqlite3_column_int64(st, 10),
		.updated_at = sqlite3_column_int64(st, 11),
		.expires_at = sqlite3_column_int64(st, 12),
		.uid = (uint32_t)sqlite3_column_int64(st, 13),
		.volume_uid = (uint32_t)sqlite3_column_int64(st, 14),
		.token_id = col(st, 15),
	};
	if (!r->name || !r->kind || !r->branch) {
		env_record_done(r);
		return -ENOMEM;
	}
	return 0;
}

static void bind_record(sqlite3_stmt *st, const EnvRecord *r)
{
	sqlite3_bind_text(st, 1, r->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, r->kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->branch, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, r->commit_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, r->parent, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, env_state_to_string(r->state), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, r->volume, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, r->config_json, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, r->secrets_json, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 10, r->error, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 11, r->created_at);
	sqlite3_bind_int64(st, 12, r->updated_at);
	if (r->expires_at)
		sqlite3_bind_int64(st, 13, r->expires_at);
	else
		sqlite3_bind_null(st, 13);
}

/* With the lock held: the volume_uid of row name, 0 when it has none, -ENOENT without a row. */
static int volume_uid_locked(Store *s, const char *name, uint32_t *ret, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;

	rc = sqlite3_prepare_v2(store_db(s), "SELECT volume_uid FROM environments WHERE name = ?",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW)
		*ret = (uint32_t)sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		r = bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' not found", name);
	else
		r = store_error(s, rc, "read environment", err);
	sqlite3_finalize(st);
	return r;
}

static int insert_locked(Store *s, EnvRecord *r, const UidRange *range, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	uint32_t uid = 0, volume_uid = 0;
	int ret = 0, rc;

	/* A name already taken fails at the INSERT, which rolls the allocation back too. */
	if (r->parent) {
		ret = volume_uid_locked(s, r->parent, &volume_uid, err);
		if (ret < 0)
			return ret;
		if (volume_uid == 0)
			return bbx_error_set(err, -EINVAL, BBX_INTERNAL,
					     "environment '%s' has no volume owner", r->parent);
	}
	ret = uid_allocate_locked(s, r->name, range, &uid, err);
	if (ret < 0)
		return ret;
	if (!r->parent)
		volume_uid = uid;
	rc = sqlite3_prepare_v2(store_db(s),
				"INSERT INTO environments (" ENV_COLUMNS ") "
				"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		bind_record(st, r);
		sqlite3_bind_int64(st, 14, uid);
		sqlite3_bind_int64(st, 15, volume_uid);
		sqlite3_bind_text(st, 16, r->token_id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE) {
		if ((rc & 0xff) == SQLITE_CONSTRAINT)
			ret = bbx_error_set(err, -EEXIST, BBX_CONFLICT,
					    "environment '%s' already exists", r->name);
		else
			ret = store_error(s, rc, "insert environment", err);
	}
	sqlite3_finalize(st);
	if (ret >= 0) {
		r->uid = uid;
		r->volume_uid = volume_uid;
	}
	return ret;
}

int env_record_insert(Store *s, EnvRecord *r, const UidRange *range, BbxError *err)
{
	store_lock(s);
	int ret = store_begin(s, err);
	if (ret >= 0) {
		ret = insert_locked(s, r, range, err);
		if (ret >= 0)
			ret = store_commit(s, err);
		else
			store_rollback(s);
	}
	store_unlock(s);
	if (ret >= 0)
		store_env_changed(s, r->name);
	return ret;
}

int env_record_assign_uid(Store *s, const char *name, const UidRange *range, uint32_t *ret_uid,
			  BbxError *err)
{
	sqlite3_stmt *st = NULL;
	uint32_t uid = 0;
	int r, rc;

	store_lock(s);
	r = store_begin(s, err);
	if (r < 0) {
		store_unlock(s);
		return r;
	}
	rc = sqlite3_prepare_v2(store_db(s), "SELECT uid FROM environments WHERE name = ?", -1, &st,
				NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW)
		uid = (uint32_t)sqlite3_column_int64(st, 0);
	else if (rc == SQLITE_DONE)
		r = bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' not found", name);
	else
		r = store_error(s, rc, "read environment", err);
	sqlite3_finalize(st);
	if (r >= 0 && uid == 0) {
		r = uid_allocate_locked(s, name, range, &uid, err);
		if (r >= 0) {
			rc = sqlite3_prepare_v2(store_db(s),
						"UPDATE environments SET uid = ? WHERE name = ?",
						-1, &st, NULL);
			if (rc == SQLITE_OK) {
				sqlite3_bind_int64(st, 1, uid);
				sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
				rc = sqlite3_step(st);
			}
			if (rc != SQLITE_DONE)
				r = store_error(s, rc, "assign uids", err);
			sqlite3_finalize(st);
		}
	}
	if (r >= 0)
		r = store_commit(s, err);
	else
		store_rollback(s);
	store_unlock(s);
	if (r >= 0)
		*ret_uid = uid;
	return r;
}

int env_record_get(Store *s, const char *name, EnvRecord *ret, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(store_db(s),
				"SELECT " ENV_COLUMNS " FROM environments WHERE name = ?", -1, &st,
				NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW)
		r = read_row(st, ret);
	else if (rc == SQLITE_DONE)
		r = bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' not found", name);
	else
		r = store_error(s, rc, "read environment", err);
	sqlite3_finalize(st);
	store_unlock(s);
	return r;
}

int env_record_list(Store *s, EnvRecord **ret, size_t *ret_n, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	EnvRecord *v = NULL;
	size_t n = 0;
	int r = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(store_db(s),
				"SELECT " ENV_COLUMNS " FROM environments ORDER BY kind DESC, name",
				-1, &st, NULL);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		EnvRecord *nv = realloc(v, (n + 1) * sizeof(*v));
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
		r = store_error(s, rc, "list environments", err);
	sqlite3_finalize(st);
	store_unlock(s);
	if (r < 0) {
		env_records_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int env_record_update(Store *s, const EnvRecord *r, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int ret = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(
		store_db(s),
		"UPDATE environments SET kind = ?2, branch = ?3, commit_id = ?4, parent = ?5, "
		"state = ?6, "
		"volume = ?7, config_json = ?8, secrets_json = ?9, error = ?10, created_at = ?11, "
		"updated_at = ?12, expires_at = ?13 WHERE name = ?1",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		bind_record(st, r);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		ret = store_error(s, rc, "update environment", err);
	else if (sqlite3_changes(store_db(s)) == 0)
		ret = bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' not found",
				    r->name);
	sqlite3_finalize(st);
	store_unlock(s);
	if (ret >= 0)
		store_env_changed(s, r->name);
	return ret;
}

int env_record_set_state(Store *s, const char *name, EnvState state, const char *error,
			 BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int ret = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(
		store_db(s),
		"UPDATE environments SET state = ?, error = ?, updated_at = ? WHERE name = ?", -1,
		&st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, env_state_to_string(state), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, error, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, store_now());
		sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		ret = store_error(s, rc, "update environment state", err);
	sqlite3_finalize(st);
	store_unlock(s);
	if (ret >= 0)
		store_env_changed(s, name);
	return ret;
}

int env_record_delete(Store *s, const char *name, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int ret, rc;

	store_lock(s);
	ret = store_begin(s, err);
	if (ret < 0) {
		store_unlock(s);
		return ret;
	}
	rc = sqlite3_prepare_v2(store_db(s), "DELETE FROM environments WHERE name = ?", -1, &st,
				NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		ret = store_error(s, rc, "delete environment", err);
	sqlite3_finalize(st);
	if (ret >= 0)
		ret = uid_allocation_sweep_locked(s, err);
	if (ret >= 0)
		ret = store_commit(s, err);
	else
		store_rollback(s);
	store_unlock(s);
	if (ret >= 0)
		store_env_changed(s, name);
	return ret < 0 ? ret : 0;
}

int env_record_exists(Store *s, const char *name)
{
	sqlite3_stmt *st = NULL;
	int r, rc;

	store_read_lock(s);
	rc = sqlite3_prepare_v2(store_read_db(s), "SELECT 1 FROM environments WHERE name = ?", -1,
				&st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -EIO;
	sqlite3_finalize(st);
	store_read_unlock(s);
	return r;
}

int env_record_count_previews(Store *s, const char *token_id, size_t *ret_total, size_t *ret_token,
			      BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(
		store_db(s),
		"SELECT count(*), coalesce(sum(token_id IS NOT NULL AND token_id = ?), 0) "
		"FROM environments WHERE kind = 'preview'",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, token_id, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		*ret_total = (size_t)sqlite3_column_int64(st, 0);
		*ret_token = (size_t)sqlite3_column_int64(st, 1);
	} else
		r = store_error(s, rc, "count previews", err);
	sqlite3_finalize(st);
	store_unlock(s);
	return r;
}
