/* SPDX-License-Identifier: MIT */
#include "store.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "file-util.h"
#include "store-internal.h"

struct Store {
	sqlite3 *db;
	pthread_mutex_t lock;
	sqlite3 *read_db;
	pthread_mutex_t read_lock;
	int version;
	/* Statements of hot paths, prepared once (keyed by their SQL text's address). */
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} cached[STORE_CACHED_STMTS];
	/* Who is told of changes to environment rows (store_env_observe). */
	pthread_mutex_t observers_lock;
	struct {
		StoreEnvObserver fn;
		void *userdata;
	} observers[STORE_MAX_OBSERVERS];
};

int store_error(Store *s, int rc, const char *what, BbxError *err)
{
	int code;

	switch (rc & 0xff) {
	case SQLITE_NOMEM: code = -ENOMEM; break;
	case SQLITE_BUSY:
	case SQLITE_LOCKED: code = -EBUSY; break;
	case SQLITE_CONSTRAINT: code = -EEXIST; break;
	case SQLITE_FULL: code = -ENOSPC; break;
	case SQLITE_READONLY:
	case SQLITE_PERM: code = -EACCES; break;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB: code = -EUCLEAN; break;
	default: code = -EIO;
	}
	return bbx_error_set(err, code, code == -EEXIST ? BBX_CONFLICT : BBX_INTERNAL,
			     "state database: %s: %s", what,
			     s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
}

int store_exec(Store *s, const char *sql, BbxError *err)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return store_error(s, rc, "exec", err);
	return 0;
}

int store_begin(Store *s, BbxError *err)
{
	int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : store_error(s, rc, "begin", err);
}

int store_commit(Store *s, BbxError *err)
{
	int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		int r = store_error(s, rc, "commit", err);
		store_rollback(s);
		return r;
	}
	return 0;
}

void store_rollback(Store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

void store_read_lock(Store *s)
{
	pthread_mutex_lock(&s->read_lock);
}

void store_read_unlock(Store *s)
{
	pthread_mutex_unlock(&s->read_lock);
}

sqlite3 *store_read_db(Store *s)
{
	return s->read_db;
}

void store_lock(Store *s)
{
	pthread_mutex_lock(&s->lock);
}

void store_unlock(Store *s)
{
	pthread_mutex_unlock(&s->lock);
}

sqlite3 *store_db(Store *s)
{
	return s->db;
}

int store_schema_version(Store *s)
{
	return s->version;
}

int store_latest_version(void)
{
	return store_n_migrations;
}

int64_t store_now(void)
{
	return (int64_t)time(NULL);
}

static int read_user_version(Store *s, int *ret, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_error(s, rc, "read schema version", err);
	rc = sqlite3_step(st);
	int v = rc == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
	sqlite3_finalize(st);
	if (v < 0)
		return store_error(s, rc, "read schema version", err);
	*ret = v;
	return 0;
}

static int migrate(Store *s, int target, BbxError *err)
{
	int v = 0, r;

	r = read_user_version(s, &v, err);
	if (r < 0)
		return r;
	if (v > store_n_migrations)
		return bbx_error_set(
			err, -EPROTO, BBX_INTERNAL,
			"state database has schema version %d, newer than this binary's %d; "
			"refusing to touch it",
			v, store_n_migrations);
	for (; v < target; v++) {
		char pragma[64];
		r = store_begin(s, err);
		if (r < 0)
			return r;
		r = store_exec(s, store_migrations[v], err);
		if (r >= 0) {
			snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
			r = store_exec(s, pragma, err);
		}
		if (r < 0) {
			store_rollback(s);
			bbx_error_prefix(err, "migration %d", v + 1);
			return r;
		}
		r = store_commit(s, err);
		if (r < 0)
			return r;
	}
	s->version = v;
	return 0;
}

int store_open_at_version(const char *state_dir, int max_version, Store **ret, BbxError *err)
{
	char path[PATH_MAX];
	int r, rc;

	r = mkdir_p(state_dir, 0700);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "state directory %s: %s", state_dir,
				     strerror(-r));
	if ((size_t)snprintf(path, sizeof(path), "%s/state.db", state_dir) >= sizeof(path))
		return bbx_error_set(err, -ENAMETOOLONG, BBX_INVALID,
				     "state directory path too long");

	Store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutexattr_t attr;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&s->lock, &attr);
	pthread_mutex_init(&s->read_lock, &attr);
	pthread_mutex_init(&s->observers_lock, NULL);
	pthread_mutexattr_destroy(&attr);

	rc = sqlite3_open_v2(path, &s->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX |
				     SQLITE_OPEN_NOFOLLOW,
			     NULL);
	if (rc != SQLITE_OK) {
		r = store_error(s, rc, path, err);
		store_free(s);
		return r;
	}
	(void)chmod(path, 0600);
	sqlite3_busy_timeout(s->db, 5000);
	sqlite3_extended_result_codes(s->db, 1);

	r = store_exec(s,
		       "PRAGMA journal_mode = WAL;"
		       "PRAGMA synchronous = FULL;"
		       "PRAGMA foreign_keys = ON;"
		       "PRAGMA secure_delete = ON;",
		       err);
	if (r >= 0)
		r = migrate(s, max_version < store_n_migrations ? max_version : store_n_migrations,
			    err);
	if (r >= 0) {
		rc = sqlite3_open_v2(
			path, &s->read_db,
			SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW, NULL);
		if (rc != SQLITE_OK)
			r = store_error(s, rc, "read connection", err);
		else
			sqlite3_busy_timeout(s->read_db, 5000);
	}
	if (r < 0) {
		bbx_error_prefix(err, "%s", path);
		store_free(s);
		return r;
	}
	*ret = s;
	return 0;
}

int store_open(const char *state_dir, Store **ret, BbxError *err)
{
	return store_open_at_version(state_dir, INT_MAX, ret, err);
}

int store_prepare_cached(Store *s, const char *sql, sqlite3_stmt **ret)
{
	size_t i = 0;
	for (; i < STORE_CACHED_STMTS && s->cached[i].sql; i++)
		if (s->cached[i].sql == sql) {
			sqlite3_reset(s->cached[i].st);
			sqlite3_clear_bindings(s->cached[i].st);
			*ret = s->cached[i].st;
			return SQLITE_OK;
		}
	if (i == STORE_CACHED_STMTS)
		return SQLITE_FULL;
	int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->cached[i].st,
				    NULL);
	if (rc != SQLITE_OK)
		return rc;
	s->cached[i].sql = sql;
	*ret = s->cached[i].st;
	return SQLITE_OK;
}

void store_free(Store *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < STORE_CACHED_STMTS; i++)
		sqlite3_finalize(s->cached[i].st);
	if (s->read_db)
		sqlite3_close_v2(s->read_db);
	if (s->db)
		sqlite3_close_v2(s->db);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->read_lock);
	pthread_mutex_destroy(&s->observers_lock);
	free(s);
}

int store_env_observe(Store *s, StoreEnvObserver fn, void *userdata)
{
	int r = -ENOSPC;
	pthread_mutex_lock(&s->observers_lock);
	for (size_t i = 0; i < STORE_MAX_OBSERVERS; i++)
		if (!s->observers[i].fn) {
			s->observers[i].fn = fn;
			s->observers[i].userdata = userdata;
			r = 0;
			break;
		}
	pthread_mutex_unlock(&s->observers_lock);
	return r;
}

void store_env_unobserve(Store *s, StoreEnvObserver fn, void *userdata)
{
	pthread_mutex_lock(&s->observers_lock);
	for (size_t i = 0; i < STORE_MAX_OBSERVERS; i++)
		if (s->observers[i].fn == fn && s->observers[i].userdata == userdata)
			s->observers[i].fn = NULL;
	pthread_mutex_unlock(&s->observers_lock);
}

void store_env_changed(Store *s, const char *name)
{
	pthread_mutex_lock(&s->observers_lock);
	for (size_t i = 0; i < STORE_MAX_OBSERVERS; i++)
		if (s->observers[i].fn)
			s->observers[i].fn(name, s->observers[i].userdata);
	pthread_mutex_unlock(&s->observers_lock);
}
