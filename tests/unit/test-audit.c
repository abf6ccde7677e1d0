/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "core.h"
#include "file-util.h"
#include "strbuf.h"

#define N_RECORDS 20

static char dir[64], state_dir[128], db_path[160];
static AuditCheckpoint checkpoint;

static Core *new_core(void)
{
	CoreOptions o = { .state_dir = state_dir, .repo_path = dir };
	Core *c = NULL;
	assert_int_equal(core_new(&o, &c, NULL), 0);
	return c;
}

static void append_one(Core *c, int i)
{
	char rid[32], outcome[8];
	Principal p = { .kind = PRINCIPAL_HUMAN, .name = "alice", .token_id = "tok_aaaaaaaaaaaa" };
	snprintf(rid, sizeof(rid), "req-%d", i);
	snprintf(outcome, sizeof(outcome), "%d", i % 2 ? 200 : 404);
	AuditRecord r = { .request_id = rid,
			  .principal = &p,
			  .interface = "http",
			  .action = "environment.get",
			  .resource = "environment:pr-1",
			  .decision = i % 2 ? "allow" : "deny",
			  .reason = i % 2 ? NULL : "out of scope",
			  .request_digest = "abc",
			  .outcome = outcome };
	BbxError err = BBX_ERROR_INIT;
	assert_int_equal(audit_append(c, &r, NULL, &err), 0);
}

/* A database of N_RECORDS records and a checkpoint over all of them, daemon gone. */
static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/bbx-audit-XXXXXX");
	if (!mkdtemp(dir) || sodium_init() < 0)
		return -1;
	snprintf(state_dir, sizeof(state_dir), "%s/state", dir);
	snprintf(db_path, sizeof(db_path), "%s/state.db", state_dir);
	Core *c = new_core();
	for (int i = 1; i <= N_RECORDS; i++)
		append_one(c, i);
	assert_int_equal(audit_checkpoint_create(c, &checkpoint, NULL), 0);
	assert_int_equal(checkpoint.size, N_RECORDS);
	core_free(c);
	return 0;
}

static int teardown(void **state)
{
	return rm_rf(dir);
}

/* A tampered copy of the database, the way an attacker with file access would edit it. */
static const char *tampered(const char *name, const char *sql)
{
	static char path[256];
	_cleanup_free_ char *data = NULL;
	size_t n;
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/%s.db", dir, name);
	assert_int_equal(read_full_file(db_path, 64 << 20, &data, &n), 0);
	assert_int_equal(write_file_atomic(path, data, n, 0600), 0);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sql)
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	return path;
}

static void expect_bad(const char *path, const AuditCheckpoint *cp, int64_t bad_seq,
		       const char *what)
{
	AuditVerifyResult res;
	BbxError err = BBX_ERROR_INIT;
	assert_int_equal(audit_verify_db(path, cp, &res, &err), -EBADMSG);
	assert_int_equal(res.bad_seq, bad_seq);
	if (!strstr(err.message, what))
		fail_msg("message '%s' lacks '%s'", err.message, what);
	char seq[32];
	snprintf(seq, sizeof(seq), "seq %lld", (long long)bad_seq);
	assert_non_null(strstr(err.message, seq));
}

static void expect_ok(const char *path, const AuditCheckpoint *cp, int64_t size)
{
	AuditVerifyResult res;
	BbxError err = BBX_ERROR_INIT;
	int r = audit_verify_db(path, cp, &res, &err);
	if (r < 0)
		fail_msg("verify failed: %s", err.message);
	assert_int_equal(res.size, size);
	assert_int_equal(res.bad_seq, 0);
}

static void test_valid(void **state)
{
	expect_ok(db_path, NULL, N_RECORDS);
	expect_ok(db_path, &checkpoint, N_RECORDS);
	char pk[65];
	assert_int_equal(audit_public_key_from_state(state_dir, pk, NULL), 0);
	assert_int_equal(audit_checkpoint_check_signature(&checkpoint, pk, NULL), 0);
	/* A checkpoint survives a round trip through its exported JSON. */
	json_t *j = audit_checkpoint_to_json(&checkpoint);
	AuditCheckpoint back;
	assert_int_equal(audit_checkpoint_from_json(j, &back, NULL), 0);
	json_decref(j);
	assert_int_equal(audit_checkpoint_check_signature(&back, pk, NULL), 0);
	assert_int_equal(back.size, checkpoint.size);
}

static void test_flip_field(void **state)
{
	const char *p = tampered("flip", "UPDATE audit SET outcome = '201' WHERE seq = 5");
	expect_bad(p, NULL, 5, "hash does not match");
	p = tampered("flip-principal", "UPDATE audit SET principal = 'mallory' WHERE seq = 12");
	expect_bad(p, NULL, 12, "hash does not match");
}

static void test_delete(void **state)
{
	const char *p = tampered("delete", "DELETE FROM audit WHERE seq = 7");
	expect_bad(p, NULL, 7, "deleted or reordered");
}

static void test_swap(void **state)
{
	/* Swap the contents of records 3 and 4, keeping the seq column in order. */
	const char *p = tampered("swap", "UPDATE audit SET seq = -3 WHERE seq = 3;"
					 "UPDATE audit SET seq = 3 WHERE seq = 4;"
					 "UPDATE audit SET seq = 4 WHERE seq = -3;");
	expect_bad(p, NULL, 3, "seq 3");
}

static void test_truncate(void **state)
{
	const char *p = tampered("truncate", "DELETE FROM audit WHERE seq > 15");
	expect_ok(p, NULL, 15);			     /* a shorter chain is still a chain... */
	expect_bad(p, &checkpoint, 16, "truncated"); /* ...but not the one that was signed */
}

/* The attacker's move: rewrite a record and recompute every hash after it. */
static void rehash_from(const char *path, int64_t from)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char prev[65];

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_prepare_v2(db, "SELECT hash FROM audit WHERE seq = ?", -1, &st, NULL),
		SQLITE_OK);
	sqlite3_bind_int64(st, 1, from - 1);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(prev, sizeof(prev), "%s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	for (int64_t seq = from; seq <= N_RECORDS; seq++) {
		assert_int_equal(
			sqlite3_prepare_v2(db,
					   "SELECT seq, time, request_id, principal, token_id, "
					   "interface, action, resource, decision, reason, "
					   "request_digest, outcome FROM audit WHERE seq = ?",
					   -1, &st, NULL),
			SQLITE_OK);
		sqlite3_bind_int64(st, 1, seq);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		StrBuf sb = STRBUF_INIT;
		for (int i = 0; i < 12; i++) {
			const char *v = (const char *)sqlite3_column_text(st, i);
			size_t n = v ? strlen(v) : 0;
			strbuf_appendf(&sb, "%zu:", n);
			if (v)
				strbuf_append(&sb, v, n);
			strbuf_putc(&sb, '\n');
		}
		strbuf_appendf(&sb, "64:%s\n", prev);
		sqlite3_finalize(st);
		unsigned char h[32];
		char hex[65];
		crypto_hash_sha256(h, (const unsigned char *)sb.buf, sb.len);
		sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
		strbuf_done(&sb);
		char sql[256];
		snprintf(sql, sizeof(sql),
			 "UPDATE audit SET prev_hash = '%s', hash = '%s' WHERE seq = %lld", prev,
			 hex, (long long)seq);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		memcpy(prev, hex, sizeof(prev));
	}
	sqlite3_close(db);
}

static void test_rewrite_with_recomputed_hashes(void **state)
{
	const char *p = tampered("rewrite", "UPDATE audit SET decision = 'allow', outcome = '200', "
					    "reason = NULL WHERE seq = 6");
	expect_bad(p, NULL, 6, "hash does not match");
	rehash_from(p, 6);
	/* Internally consistent again: only the checkpoint kept elsewhere can tell. */
	expect_ok(p, NULL, N_RECORDS);
	expect_bad(p, &checkpoint, N_RECORDS, "checkpoint");

	/* Also a rewrite followed by truncation to below the checkpoint and re-extension. */
	p = tampered("rewrite-tail", "UPDATE audit SET action = 'x' WHERE seq = 20");
	rehash_from(p, 20);
	expect_ok(p, NULL, N_RECORDS);
	expect_bad(p, &checkpoint, N_RECORDS, "rewritten");
}

static void test_bad_signature(void **state)
{
	char pk[65];
	AuditCheckpoint cp = checkpoint;
	BbxError err = BBX_ERROR_INIT;

	assert_int_equal(audit_public_key_from_state(state_dir, pk, NULL), 0);
	cp.signature[10] = cp.signature[10] == '0' ? '1' : '0';
	assert_int_equal(audit_checkpoint_check_signature(&cp, pk, &err), -EBADMSG);
	assert_non_null(strstr(err.message, "signature"));

	/* A checkpoint moved to cover a shorter log no longer verifies. */
	cp = checkpoint;
	cp.size = 10;
	assert_int_equal(audit_checkpoint_check_signature(&cp, pk, NULL), -EBADMSG);

	/* Re-signed with another key: valid by itself, refused when the key is pinned. */
	uint8_t opk[crypto_sign_PUBLICKEYBYTES], osk[crypto_sign_SECRETKEYBYTES];
	crypto_sign_keypair(opk, osk);
	char other[65];
	sodium_bin2hex(other, sizeof(other), opk, sizeof(opk));
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(audit_checkpoint_check_signature(&checkpoint, other, &err), -EBADMSG);
	assert_non_null(strstr(err.message, "not by this daemon's key"));
}

typedef struct Worker {
	Core *core;
	int base;
} Worker;

static void *worker(void *userdata)
{
	Worker *w = userdata;
	for (int i = 0; i < 150; i++)
		append_one(w->core, w->base + i);
	return NULL;
}

static void test_concurrent_appenders(void **state)
{
	Core *c = new_core();
	pthread_t t[12];
	Worker w[12];

	for (int i = 0; i < 12; i++) {
		w[i] = (Worker){ .core = c, .base = 1000 * (i + 1) };
		assert_int_equal(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (int i = 0; i < 12; i++)
		pthread_join(t[i], NULL);
	core_free(c);
	expect_ok(db_path, &checkpoint, N_RECORDS + 12 * 150);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
	assert_int_equal(
		sqlite3_prepare_v2(db, "SELECT count(DISTINCT request_id), max(seq) FROM audit", -1,
				   &st, NULL),
		SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), N_RECORDS + 12 * 150);
	assert_int_equal(sqlite3_column_int(st, 1), N_RECORDS + 12 * 150);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_flip_field),
		cmocka_unit_test(test_delete),
		cmocka_unit_test(test_swap),
		cmocka_unit_test(test_truncate),
		cmocka_unit_test(test_rewrite_with_recomputed_hashes),
		cmocka_unit_test(test_bad_signature),
		cmocka_unit_test(test_concurrent_appenders),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
