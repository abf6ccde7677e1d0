/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "file-util.h"
#include "journal.h"
#include "store.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/bbx-store-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	return rm_rf(dir);
}

static int count_rows(Store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	store_lock(s);
	assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	store_unlock(s);
	return n;
}

static void test_fresh(void **state)
{
	_cleanup_(store_freep) Store *s = NULL;
	BbxError err = BBX_ERROR_INIT;

	assert_int_equal(store_open(dir, &s, &err), 0);
	assert_int_equal(store_schema_version(s), store_latest_version());
	assert_true(store_latest_version() >= 2);
	assert_int_equal(count_rows(s, "SELECT count(*) FROM sqlite_master WHERE name IN "
				       "('environments','proposals','tokens','operations','audit','meta')"),
			 6);
	assert_int_equal(count_rows(s, "PRAGMA foreign_keys"), 1);
	/* WAL + FULL: synchronous=2 */
	assert_int_equal(count_rows(s, "PRAGMA synchronous"), 2);
}

static void test_upgrade_keeps_data(void **state)
{
	BbxError err = BBX_ERROR_INIT;
	Store *s = NULL;

	assert_int_equal(store_open_at_version(dir, 1, &s, &err), 0);
	assert_int_equal(store_schema_version(s), 1);
	store_lock(s);
	assert_int_equal(store_exec(s, "INSERT INTO environments (name, kind, branch, state, created_at, updated_at) "
				       "VALUES ('main', 'production', 'main', 'ready', 1, 1)", &err), 0);
	store_unlock(s);
	assert_int_equal(count_rows(s, "SELECT count(*) FROM sqlite_master WHERE name = 'operations_pending'"), 0);
	store_free(s);

	assert_int_equal(store_open(dir, &s, &err), 0);
	assert_int_equal(store_schema_version(s), store_latest_version());
	assert_int_equal(count_rows(s, "SELECT count(*) FROM environments WHERE name = 'main'"), 1);
	assert_int_equal(count_rows(s, "SELECT count(*) FROM sqlite_master WHERE name = 'operations_pending'"), 1);
	store_free(s);

	/* reopening an up-to-date database is a no-op */
	assert_int_equal(store_open(dir, &s, &err), 0);
	assert_int_equal(store_schema_version(s), store_latest_version());
	store_free(s);
}

static void test_newer_schema_refused(void **state)
{
	BbxError err = BBX_ERROR_INIT;
	Store *s = NULL;
	char pragma[64];

	assert_int_equal(store_open(dir, &s, &err), 0);
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", store_latest_version() + 1);
	store_lock(s);
	assert_int_equal(store_exec(s, pragma, &err), 0);
	store_unlock(s);
	store_free(s);
	s = NULL;
	assert_int_equal(store_open(dir, &s, &err), -EPROTO);
	assert_null(s);
	assert_non_null(strstr(err.message, "newer than this binary"));
}

static void test_journal(void **state)
{
	_cleanup_(store_freep) Store *s = NULL;
	BbxError err = BBX_ERROR_INIT;
	int64_t a, b;
	JournalEntry *v = NULL;
	size_t n = 0;

	assert_int_equal(store_open(dir, &s, &err), 0);
	assert_int_equal(journal_begin(s, "environment.create", "pr-1", "intent", "{\"from\":\"main\"}", &a, &err), 0);
	assert_int_equal(journal_begin(s, "environment.destroy", "pr-2", "intent", NULL, &b, &err), 0);
	assert_int_equal(journal_step(s, a, "snapshot", &err), 0);
	assert_int_equal(journal_finish(s, b, "done", &err), 0);
	assert_int_equal(journal_finish(s, b, "bogus", &err), -EINVAL);
	assert_int_equal(journal_step(s, 999, "x", NULL), -ENOENT);

	assert_int_equal(journal_list_pending(s, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].id, a);
	assert_string_equal(v[0].step, "snapshot");
	assert_string_equal(v[0].target, "pr-1");
	assert_string_equal(v[0].payload_json, "{\"from\":\"main\"}");
	journal_entries_free(v, n);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_keeps_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
