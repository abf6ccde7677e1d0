/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "budgets.h"
#include "environments.h"
#include "file-util.h"
#include "journal.h"
#include "proposals.h"
#include "store.h"
#include "strv.h"
#include "uids.h"

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
	assert_int_equal(
		count_rows(s, "SELECT count(*) FROM sqlite_master WHERE name IN "
			      "('environments','proposals','tokens','operations','audit','meta',"
			      "'uid_allocations')"),
		7);
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
	assert_int_equal(store_exec(s,
				    "INSERT INTO environments (name, kind, branch, state, "
				    "created_at, updated_at) "
				    "VALUES ('main', 'production', 'main', 'ready', 1, 1)",
				    &err),
			 0);
	store_unlock(s);
	assert_int_equal(
		count_rows(s,
			   "SELECT count(*) FROM sqlite_master WHERE name = 'operations_pending'"),
		0);
	store_free(s);

	assert_int_equal(store_open(dir, &s, &err), 0);
	assert_int_equal(store_schema_version(s), store_latest_version());
	assert_int_equal(count_rows(s, "SELECT count(*) FROM environments WHERE name = 'main'"), 1);
	assert_int_equal(
		count_rows(s,
			   "SELECT count(*) FROM sqlite_master WHERE name = 'operations_pending'"),
		1);

	/* A row from before per-environment uids: its volume is the former fixed pair's, and
	 * it gets a pair of its own (once) when it starts. */
	EnvRecord rec;
	assert_int_equal(env_record_get(s, "main", &rec, &err), 0);
	assert_int_equal(rec.uid, 0);
	assert_int_equal(rec.volume_uid, 64000);
	env_record_done(&rec);
	UidRange range = { 100000, 100009 };
	uint32_t uid = 0, again = 0;
	assert_int_equal(env_record_assign_uid(s, "main", &range, &uid, &err), 0);
	assert_int_equal(uid, 100000);
	assert_int_equal(env_record_assign_uid(s, "main", &range, &again, &err), 0);
	assert_int_equal(again, 100000);
	assert_int_equal(count_rows(s, "SELECT count(*) FROM uid_allocations"), 1);
	assert_int_equal(env_record_assign_uid(s, "nosuch", &range, &uid, NULL), -ENOENT);
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
	assert_int_equal(journal_begin(s, "environment.create", "pr-1", "intent",
				       "{\"from\":\"main\"}", &a, &err),
			 0);
	assert_int_equal(journal_begin(s, "environment.destroy", "pr-2", "intent", NULL, &b, &err),
			 0);
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

static int insert_env(Store *s, const char *name, const char *parent, const UidRange *range,
		      EnvRecord *ret)
{
	EnvRecord r = { .name = (char *)name,
			.kind = parent ? "preview" : "production",
			.branch = (char *)name,
			.parent = (char *)parent,
			.state = ENV_CREATING,
			.created_at = 1,
			.updated_at = 1 };
	int k = env_record_insert(s, &r, range, NULL);
	if (ret)
		*ret = r;
	return k;
}

/*
 * The allocator: a pair per environment, the lowest free first, never one of a row or of a
 * volume stored as it, released only after the files are gone and with the last row
 * holding it.
 */
static void test_budgets(void **state)
{
	_cleanup_(store_freep) Store *s = NULL;
	BbxError err = BBX_ERROR_INIT;
	UidRange range = { 100000, 100009 };
	EnvBudgetRecord got;

	assert_int_equal(store_open(dir, &s, &err), 0);
	assert_int_equal(insert_env(s, "main", NULL, &range, NULL), 0);
	assert_int_equal(insert_env(s, "p1", "main", &range, NULL), 0);
	EnvBudgetRecord r = { .environment = "p1",
			      .cpu_seconds = 60,
			      .memory_bytes = 1ULL << 30,
			      .disk_bytes = UINT64_MAX,
			      .wall_time_sec = 3600,
			      .source = "production's config",
			      .disk_base_bytes = 16384 };
	assert_int_equal(env_budget_insert(s, &r, &err), 0);
	/* No budget without an environment. */
	r.environment = "nosuch";
	assert_int_equal(env_budget_insert(s, &r, NULL), -ENOENT);
	assert_int_equal(env_budget_get(s, "main", &got, &err), -ENOENT);
	assert_string_equal(bbx_error_kind_name(err.kind), "not_found");

	assert_int_equal(env_budget_get(s, "p1", &got, NULL), 0);
	assert_int_equal(got.cpu_seconds, 60);
	assert_int_equal(got.disk_bytes, INT64_MAX); /* stored as the largest SQLite integer */
	assert_int_equal(got.disk_base_bytes, 16384);
	assert_string_equal(got.source, "production's config");
	assert_null(got.exhausted);
	assert_int_equal(got.sampled_at, 0);
	got.cpu_used_usec = 61000000;
	got.memory_peak_bytes = 5000;
	got.disk_used_bytes = 7;
	got.warned = 1;
	got.sampled_at = 42;
	free(got.exhausted);
	got.exhausted = strdup("cpu_seconds 61.0/60");
	assert_int_equal(env_budget_update_use(s, &got, NULL), 0);
	env_budget_record_done(&got);
	assert_int_equal(env_budget_get(s, "p1", &got, NULL), 0);
	assert_int_equal(got.cpu_used_usec, 61000000);
	assert_int_equal(got.memory_peak_bytes, 5000);
	assert_int_equal(got.disk_used_bytes, 7);
	assert_int_equal(got.warned, 1);
	assert_int_equal(got.sampled_at, 42);
	assert_string_equal(got.exhausted, "cpu_seconds 61.0/60");
	assert_int_equal(got.cpu_seconds, 60); /* the limits stay */
	env_budget_record_done(&got);

	/* The budget goes with its environment's row. */
	assert_int_equal(env_record_delete(s, "p1", NULL), 0);
	assert_int_equal(count_rows(s, "SELECT count(*) FROM environment_budgets"), 0);
	EnvBudgetRecord gone = { .environment = "p1" };
	assert_int_equal(env_budget_update_use(s, &gone, NULL), -ENOENT);
}

static void test_uid_allocation(void **state)
{
	_cleanup_(store_freep) Store *s = NULL;
	BbxError err = BBX_ERROR_INIT;
	UidRange range = { 100000, 100005 }; /* three pairs */
	EnvRecord r;

	assert_int_equal(store_open(dir, &s, &err), 0);
	assert_int_equal(insert_env(s, "main", NULL, &range, &r), 0);
	assert_int_equal(r.uid, 100000);
	assert_int_equal(r.volume_uid, 100000);
	/* A preview runs as its own pair; its volume is a snapshot stored as its parent's. */
	assert_int_equal(insert_env(s, "p1", "main", &range, &r), 0);
	assert_int_equal(r.uid, 100002);
	assert_int_equal(r.volume_uid, 100000);
	assert_int_equal(insert_env(s, "p2", "p1", &range, &r), 0);
	assert_int_equal(r.uid, 100004);
	assert_int_equal(r.volume_uid, 100000);
	EnvRecord got;
	assert_int_equal(env_record_get(s, "p2", &got, &err), 0);
	assert_int_equal(got.uid, 100004);
	assert_int_equal(got.volume_uid, 100000);
	env_record_done(&got);

	/* Refused inserts take nothing: a full range, a taken name, a missing parent. */
	BbxError e1 = BBX_ERROR_INIT;
	assert_int_equal(env_record_insert(s,
					   &(EnvRecord){ .name = "p3",
							 .kind = "preview",
							 .branch = "p3",
							 .parent = "main",
							 .state = ENV_CREATING },
					   &range, &e1),
			 -ENOSPC);
	assert_non_null(strstr(e1.message, "100000-100005"));
	range.last = 100009;
	assert_int_equal(insert_env(s, "p1", "main", &range, NULL), -EEXIST);
	assert_int_equal(insert_env(s, "p3", "nosuch", &range, NULL), -ENOENT);
	assert_int_equal(count_rows(s, "SELECT count(*) FROM uid_allocations"), 3);
	assert_int_equal(count_rows(s, "SELECT count(*) FROM environments"), 3);
	range.last = 100005;

	/* A row deleted without a teardown that removed its files (a crash, a failed
	 * teardown) keeps its pair: nothing new may run as the owner of what is left. */
	assert_int_equal(env_record_delete(s, "p1", &err), 0);
	assert_int_equal(insert_env(s, "p3", "main", &range, NULL), -ENOSPC);
	char **orphans = NULL;
	assert_int_equal(uid_allocation_orphans(s, &orphans, &err), 0);
	assert_non_null(orphans);
	assert_string_equal(orphans[0], "p1");
	assert_null(orphans[1]);
	strv_free(orphans);
	/* Once its files are gone, the pair is free again, and the lowest free one is reused. */
	assert_int_equal(uid_allocation_files_gone(s, "p1", &err), 0);
	assert_int_equal(uid_allocation_sweep(s, &err), 1);
	assert_int_equal(insert_env(s, "p3", "main", &range, &r), 0);
	assert_int_equal(r.uid, 100002);

	/* Files gone but the row still there (a crash between teardown and delete): held. */
	assert_int_equal(uid_allocation_files_gone(s, "p3", &err), 0);
	assert_int_equal(uid_allocation_sweep(s, &err), 0);
	assert_int_equal(env_record_delete(s, "p3", &err), 0); /* releases with the row */
	assert_int_equal(count_rows(s, "SELECT count(*) FROM uid_allocations WHERE uid = 100002"),
			 0);

	/* Production gone: its pair stays while a preview's volume is stored as it. */
	assert_int_equal(uid_allocation_files_gone(s, "main", &err), 0);
	assert_int_equal(env_record_delete(s, "main", &err), 0);
	assert_int_equal(count_rows(s, "SELECT count(*) FROM uid_allocations WHERE uid = 100000"),
			 1);
	assert_int_equal(insert_env(s, "p4", NULL, &range, &r), 0);
	assert_int_equal(r.uid, 100002);
	assert_int_equal(uid_allocation_files_gone(s, "p2", &err), 0);
	assert_int_equal(env_record_delete(s, "p2", &err), 0);
	assert_int_equal(count_rows(s, "SELECT count(*) FROM uid_allocations"), 1); /* p4's */

	/* A pair taken under another range at an odd offset is stepped around. */
	store_lock(s);
	assert_int_equal(store_exec(s,
				    "INSERT INTO uid_allocations (uid, environment, created_at) "
				    "VALUES (100005, 'old', 1)",
				    &err),
			 0);
	store_unlock(s);
	UidRange wide = { 100000, 100011 };
	assert_int_equal(insert_env(s, "p5", NULL, &wide, &r), 0);
	assert_int_equal(r.uid, 100000);
	assert_int_equal(insert_env(s, "p6", NULL, &wide, &r), 0);
	assert_int_equal(r.uid, 100007);
}

/* Previews are counted in all and per creating token, in every state; production never. */
/* The state machine is a compare-and-swap; an idempotency key keeps its first outcome. */
static void test_proposals(void **state)
{
	_cleanup_(store_freep) Store *s = NULL;
	BbxError err = BBX_ERROR_INIT;
	assert_int_equal(store_open(dir, &s, &err), 0);

	ProposalRecord r = { .id = "p-1",
			     .kind = "branch",
			     .environment = "p-1",
			     .source_branch = "fix",
			     .base_commit = "b",
			     .head_commit = "h",
			     .state = "submitted",
			     .created_by = "agent",
			     .created_at = 1,
			     .updated_at = 1 };
	assert_int_equal(proposal_record_insert(s, &r, &err), 0);
	assert_int_equal(proposal_record_insert(s, &r, NULL), -EEXIST);
	r.state = "validated";
	r.evidence_digest = "d";
	assert_int_equal(proposal_record_update(s, &r, "submitted", &err), 0);
	/* Lost race: the row is no longer submitted. */
	r.state = "failed";
	assert_int_equal(proposal_record_update(s, &r, "submitted", &err), -ESTALE);
	assert_int_equal(proposal_record_set_step(s, "p-1", "now", &err), 0);
	ProposalRecord got;
	assert_int_equal(proposal_record_get(s, "p-1", &got, &err), 0);
	assert_string_equal(got.state, "validated");
	assert_string_equal(got.evidence_digest, "d");
	assert_string_equal(got.step, "now");
	proposal_record_done(&got);
	BbxError err2 = BBX_ERROR_INIT;
	assert_int_equal(proposal_record_get(s, "p-2", &got, &err2), -ENOENT);
	assert_string_equal(err2.message, "proposal 'p-2' not found");

	char *fp = NULL, *resp = NULL;
	assert_int_equal(idempotency_get(s, "tok", "proposal.merge", "k", &fp, &resp, NULL),
			 -ENOENT);
	assert_int_equal(idempotency_put(s, "tok", "proposal.merge", "k", "f1", "{\"a\":1}", &err),
			 0);
	assert_int_equal(idempotency_put(s, "tok", "proposal.merge", "k", "f2", "{\"a\":2}", &err),
			 0);
	assert_int_equal(idempotency_get(s, "tok", "proposal.merge", "k", &fp, &resp, &err), 0);
	assert_string_equal(fp, "f1");
	assert_string_equal(resp, "{\"a\":1}");
	free(fp);
	free(resp);
	/* Keys are per principal and per action. */
	assert_int_equal(idempotency_get(s, "other", "proposal.merge", "k", &fp, &resp, NULL),
			 -ENOENT);
	assert_int_equal(idempotency_get(s, "tok", "proposal.approve", "k", &fp, &resp, NULL),
			 -ENOENT);
}

static void test_count_previews(void **state)
{
	_cleanup_(store_freep) Store *s = NULL;
	BbxError err = BBX_ERROR_INIT;
	UidRange range = { 100000, 100099 };
	size_t total = 99, mine = 99;

	assert_int_equal(store_open(dir, &s, &err), 0);
	assert_int_equal(env_record_count_previews(s, "tok-a", &total, &mine, &err), 0);
	assert_int_equal(total, 0);
	assert_int_equal(mine, 0);
	assert_int_equal(insert_env(s, "main", NULL, &range, NULL), 0);
	const char *const owners[][2] = {
		{ "p1", "tok-a" }, { "p2", "tok-a" }, { "p3", "tok-b" }, { "p4", NULL }
	};
	for (size_t i = 0; i < ELEMENTSOF(owners); i++) {
		EnvRecord r = { .name = (char *)owners[i][0],
				.kind = "preview",
				.branch = (char *)owners[i][0],
				.parent = "main",
				.state = ENV_CREATING,
				.token_id = (char *)owners[i][1] };
		assert_int_equal(env_record_insert(s, &r, &range, &err), 0);
	}
	assert_int_equal(env_record_set_state(s, "p2", ENV_STOPPED, NULL, &err), 0);
	EnvRecord got;
	assert_int_equal(env_record_get(s, "p1", &got, &err), 0);
	assert_string_equal(got.token_id, "tok-a");
	env_record_done(&got);
	assert_int_equal(env_record_count_previews(s, "tok-a", &total, &mine, &err), 0);
	assert_int_equal(total, 4);
	assert_int_equal(mine, 2);
	assert_int_equal(env_record_count_previews(s, "tok-b", &total, &mine, &err), 0);
	assert_int_equal(mine, 1);
	assert_int_equal(env_record_count_previews(s, NULL, &total, &mine, &err), 0);
	assert_int_equal(total, 4);
	assert_int_equal(mine, 0);
	assert_int_equal(env_record_delete(s, "p1", &err), 0);
	assert_int_equal(env_record_count_previews(s, "tok-a", &total, &mine, &err), 0);
	assert_int_equal(total, 3);
	assert_int_equal(mine, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_fresh, setup, teardown),
		cmocka_unit_test_setup_teardown(test_upgrade_keeps_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_uid_allocation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budgets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_count_previews, setup, teardown),
		cmocka_unit_test_setup_teardown(test_proposals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
