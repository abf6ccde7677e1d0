/* SPDX-License-Identifier: MIT */
#include "budgets.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "store-internal.h"

#define BUDGET_COLUMNS                                                                             \
	"environment, cpu_seconds, memory_bytes, disk_bytes, wall_time_sec, source, "              \
	"cpu_used_usec, memory_peak_bytes, disk_base_bytes, disk_used_bytes, warned, exhausted, "  \
	"sampled_at"

void env_budget_record_done(EnvBudgetRecord *r)
{
	free(r->environment);
	free(r->source);
	free(r->exhausted);
	memset(r, 0, sizeof(*r));
}

/* SQLite integers are signed: larger values are stored as the largest one. */
static sqlite3_int64 to_db(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (sqlite3_int64)v;
}

static uint64_t from_db(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);
	return v < 0 ? 0 : (uint64_t)v;
}

static char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);
	return t ? strdup((const char *)t) : NULL;
}

int env_budget_insert(Store *s, const EnvBudgetRecord *r, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int ret = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(store_db(s),
				"INSERT OR REPLACE INTO environment_budgets (" BUDGET_COLUMNS ") "
				"SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
				"WHERE EXISTS (SELECT 1 FROM environments WHERE name = ?1)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, r->environment, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, to_db(r->cpu_seconds));
		sqlite3_bind_int64(st, 3, to_db(r->memory_bytes));
		sqlite3_bind_int64(st, 4, to_db(r->disk_bytes));
		sqlite3_bind_int64(st, 5, to_db(r->wall_time_sec));
		sqlite3_bind_text(st, 6, r->source ? r->source : "", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 7, to_db(r->cpu_used_usec));
		sqlite3_bind_int64(st, 8, to_db(r->memory_peak_bytes));
		sqlite3_bind_int64(st, 9, to_db(r->disk_base_bytes));
		sqlite3_bind_int64(st, 10, to_db(r->disk_used_bytes));
		sqlite3_bind_int64(st, 11, r->warned);
		sqlite3_bind_text(st, 12, r->exhausted, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 13, r->sampled_at);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		ret = store_error(s, rc, "insert budget", err);
	else if (sqlite3_changes(store_db(s)) != 1)
		ret = bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' not found",
				    r->environment);
	sqlite3_finalize(st);
	store_unlock(s);
	return ret;
}

int env_budget_get(Store *s, const char *environment, EnvBudgetRecord *ret, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(store_db(s),
				"SELECT " BUDGET_COLUMNS
				" FROM environment_budgets WHERE environment = ?",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, environment, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_ROW) {
		*ret = (EnvBudgetRecord){
			.environment = col(st, 0),
			.cpu_seconds = from_db(st, 1),
			.memory_bytes = from_db(st, 2),
			.disk_bytes = from_db(st, 3),
			.wall_time_sec = from_db(st, 4),
			.source = col(st, 5),
			.cpu_used_usec = from_db(st, 6),
			.memory_peak_bytes = from_db(st, 7),
			.disk_base_bytes = from_db(st, 8),
			.disk_used_bytes = from_db(st, 9),
			.warned = (uint32_t)sqlite3_column_int64(st, 10),
			.exhausted = col(st, 11),
			.sampled_at = sqlite3_column_int64(st, 12),
		};
		if (!ret->environment || !ret->source ||
		    (sqlite3_column_type(st, 11) != SQLITE_NULL && !ret->exhausted)) {
			env_budget_record_done(ret);
			r = -ENOMEM;
		}
	} else if (rc == SQLITE_DONE)
		r = bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' has no budget",
				  environment);
	else
		r = store_error(s, rc, "read budget", err);
	sqlite3_finalize(st);
	store_unlock(s);
	return r;
}

int env_budget_update_use(Store *s, const EnvBudgetRecord *r, BbxError *err)
{
	sqlite3_stmt *st = NULL;
	int ret = 0, rc;

	store_lock(s);
	rc = sqlite3_prepare_v2(
		store_db(s),
		"UPDATE environment_budgets SET cpu_used_usec = ?, memory_peak_bytes = ?, "
		"disk_used_bytes = ?, warned = ?, exhausted = ?, sampled_at = ? "
		"WHERE environment = ?",
		-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, to_db(r->cpu_used_usec));
		sqlite3_bind_int64(st, 2, to_db(r->memory_peak_bytes));
		sqlite3_bind_int64(st, 3, to_db(r->disk_used_bytes));
		sqlite3_bind_int64(st, 4, r->warned);
		sqlite3_bind_text(st, 5, r->exhausted, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, r->sampled_at);
		sqlite3_bind_text(st, 7, r->environment, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_DONE)
		ret = store_error(s, rc, "update budget", err);
	else if (sqlite3_changes(store_db(s)) != 1)
		ret = bbx_error_set(err, -ENOENT, BBX_NOT_FOUND, "environment '%s' has no budget",
				    r->environment);
	sqlite3_finalize(st);
	store_unlock(s);
	return ret;
}
