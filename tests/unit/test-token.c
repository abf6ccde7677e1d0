/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core.h"
#include "file-util.h"
#include "ops.h"
#include "policy.h"
#include "token.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/bbx-token-XXXXXX");
	return mkdtemp(dir) && sodium_init() >= 0 ? 0 : -1;
}

static int teardown(void **state)
{
	return rm_rf(dir);
}

static Core *new_core(const char *production)
{
	CoreOptions o = { .state_dir = dir, .repo_path = dir, .production_branch = production };
	BbxError err = BBX_ERROR_INIT;
	Core *c = NULL;
	char state[128];
	snprintf(state, sizeof(state), "%s/state", dir);
	o.state_dir = state;
	assert_int_equal(core_new(&o, &c, &err), 0);
	return c;
}

static void test_format(void **state)
{
	char tok[TOKEN_LEN + 1], id[TOKEN_ID_LEN + 1], bad[TOKEN_LEN + 8];
	BbxError err = BBX_ERROR_INIT;

	token_generate(tok, id);
	assert_int_equal(strlen(tok), TOKEN_LEN);
	assert_int_equal(strncmp(tok, "bbx_", 4), 0);
	assert_int_equal(strlen(id), TOKEN_ID_LEN);
	assert_int_equal(strncmp(id, "tok_", 4), 0);
	assert_null(strstr(tok, id + 4));
	assert_int_equal(token_check_format(tok, &err), 0);

	/* Each malformed variant is refused, with its own reason. */
	snprintf(bad, sizeof(bad), "bbb_%s", tok + 4);
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(token_check_format(bad, &err), -EINVAL);
	assert_non_null(strstr(err.message, "prefix"));

	snprintf(bad, sizeof(bad), "%.*s", TOKEN_LEN - 1, tok);
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(token_check_format(bad, &err), -EINVAL);
	assert_non_null(strstr(err.message, "length"));

	snprintf(bad, sizeof(bad), "%sa", tok);
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(token_check_format(bad, &err), -EINVAL);
	assert_non_null(strstr(err.message, "length"));

	snprintf(bad, sizeof(bad), "%s", tok);
	bad[10] = 'A';
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(token_check_format(bad, &err), -EINVAL);
	assert_non_null(strstr(err.message, "character"));

	snprintf(bad, sizeof(bad), "%s", tok);
	bad[10] = bad[10] == 'a' ? 'b' : 'a'; /* still base32, checksum no longer matches */
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(token_check_format(bad, &err), -EINVAL);
	assert_non_null(strstr(err.message, "checksum"));

	snprintf(bad, sizeof(bad), "%s", tok);
	bad[TOKEN_LEN - 1] = bad[TOKEN_LEN - 1] == 'a' ? 'b' : 'a';
	assert_int_equal(token_check_format(bad, NULL), -EINVAL);

	assert_int_equal(token_check_format("", NULL), -EINVAL);
	assert_int_equal(token_check_format(NULL, NULL), -EINVAL);

	/* Two tokens never collide. */
	char tok2[TOKEN_LEN + 1], id2[TOKEN_ID_LEN + 1];
	token_generate(tok2, id2);
	assert_string_not_equal(tok, tok2);
	assert_string_not_equal(id, id2);
}

static void test_digest(void **state)
{
	uint8_t k1[TOKEN_KEY_BYTES] = { 1 }, k2[TOKEN_KEY_BYTES] = { 2 };
	uint8_t d1[TOKEN_DIGEST_BYTES], d2[TOKEN_DIGEST_BYTES], d3[TOKEN_DIGEST_BYTES];
	char tok[TOKEN_LEN + 1], id[TOKEN_ID_LEN + 1];

	token_generate(tok, id);
	token_digest(k1, tok, d1);
	token_digest(k1, tok, d2);
	token_digest(k2, tok, d3);
	assert_memory_equal(d1, d2, sizeof(d1));
	assert_memory_not_equal(d1, d3, sizeof(d1));
}

static void test_scope_patterns(void **state)
{
	assert_int_equal(token_scope_pattern_check("pr-1", NULL), 0);
	assert_int_equal(token_scope_pattern_check("pr-*", NULL), 0);
	assert_int_equal(token_scope_pattern_check("feat.?", NULL), 0);
	assert_int_equal(token_scope_pattern_check("", NULL), -EINVAL);
	assert_int_equal(token_scope_pattern_check("PR-1", NULL), -EINVAL);
	assert_int_equal(token_scope_pattern_check("pr/1", NULL), -EINVAL);
	assert_int_equal(token_scope_pattern_check("pr-[12]", NULL), -EINVAL);
	assert_int_equal(
		token_scope_pattern_check(
			"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL),
		-EINVAL);
}

static void test_coverage(void **state)
{
	const char *star[] = { "*", NULL };
	const char *pr[] = { "pr-*", "fix-1", NULL };
	const char *q[] = { "pr-?", NULL };

	assert_true(token_scope_covered(star, "anything"));
	assert_true(token_scope_covered(star, "pr-*"));
	assert_true(token_scope_covered(pr, "pr-1"));
	assert_true(token_scope_covered(pr, "pr-*"));
	assert_true(token_scope_covered(pr, "fix-1"));
	assert_false(token_scope_covered(pr, "fix-2"));
	assert_false(token_scope_covered(pr, "pr-1*")); /* a glob is covered only by equality */
	assert_false(token_scope_covered(pr, "p*"));
	assert_false(token_scope_covered(pr, "*"));
	assert_true(token_scope_covered(q, "pr-7"));
	assert_false(token_scope_covered(q, "pr-?7"));
	assert_false(token_scope_covered(q, "pr-*"));
}

static int check(const TokenSpec *spec, const Principal *creator, const char *prod, BbxError *err)
{
	int64_t exp;
	return token_spec_check(spec, creator, prod, 0, 1000000, &exp, err);
}

static void test_agent_rules(void **state)
{
	Principal root = { .kind = PRINCIPAL_ROOT, .verbs = VERB_ALL };
	const char *ok[] = { "pr-*", NULL };
	TokenSpec s = { .kind = PRINCIPAL_AGENT,
			.name = "bot",
			.scopes = ok,
			.verbs = VERB_ENV_READ,
			.ttl_seconds = 3600 };
	BbxError err = BBX_ERROR_INIT;

	assert_int_equal(check(&s, &root, "main", NULL), 0);

	const char *prod_scopes[][2] = {
		{ "main", NULL }, { "*", NULL }, { "m*", NULL }, { "ma?n", NULL }, { "*n", NULL }
	};
	for (size_t i = 0; i < ELEMENTSOF(prod_scopes); i++) {
		TokenSpec t = s;
		t.scopes = prod_scopes[i];
		err = (BbxError)BBX_ERROR_INIT;
		assert_int_equal(check(&t, &root, "main", &err), -EPERM);
		assert_non_null(strstr(err.message, "production"));
	}
	/* The production name comes from the configuration. */
	{
		TokenSpec t = s;
		t.scopes = prod_scopes[0];
		assert_int_equal(check(&t, &root, "prod", NULL), 0);
		t.scopes = (const char *[]){ "pro*", NULL };
		assert_int_equal(check(&t, &root, "prod", NULL), -EPERM);
	}
	const uint32_t never[] = { VERB_PROPOSAL_REVIEW, VERB_PROPOSAL_MERGE, VERB_AUDIT_READ,
				   VERB_TOKEN_ADMIN };
	for (size_t i = 0; i < ELEMENTSOF(never); i++) {
		TokenSpec t = s;
		t.verbs |= never[i];
		assert_int_equal(check(&t, &root, "main", NULL), -EPERM);
		t.kind = PRINCIPAL_HUMAN;
		assert_int_equal(check(&t, &root, "main", NULL), 0);
	}
	TokenSpec t = s;
	t.ttl_seconds = 0;
	assert_int_equal(check(&t, &root, "main", NULL), -EINVAL); /* agents must expire */
	t.ttl_seconds = TOKEN_DEFAULT_AGENT_MAX_TTL + 1;
	assert_int_equal(check(&t, &root, "main", NULL), -EPERM);
	t.kind = PRINCIPAL_HUMAN;
	t.ttl_seconds = 0;
	assert_int_equal(check(&t, &root, "main", NULL), 0);

	/* Malformed specs. */
	t = s;
	t.scopes = (const char *[]){ "pr/1", NULL };
	assert_int_equal(check(&t, &root, "main", NULL), -EINVAL);
	t = s;
	t.scopes = (const char *[]){ NULL };
	assert_int_equal(check(&t, &root, "main", NULL), -EINVAL);
	t = s;
	t.name = "Bad Name";
	assert_int_equal(check(&t, &root, "main", NULL), -EINVAL);
	t = s;
	t.verbs = 0;
	assert_int_equal(check(&t, &root, "main", NULL), -EINVAL);
}

static void test_minting_narrower(void **state)
{
	Principal parent = { .kind = PRINCIPAL_HUMAN,
			     .verbs = VERB_ENV_READ | VERB_ENV_EXEC | VERB_TOKEN_ADMIN,
			     .expires_at = 1000000 + 7200 };
	parent.scopes[0] = (char *)"pr-*";
	parent.scopes[1] = (char *)"fix-1";
	const char *sc[] = { "pr-1", "fix-1", NULL };
	TokenSpec s = { .kind = PRINCIPAL_AGENT,
			.name = "bot",
			.scopes = sc,
			.verbs = VERB_ENV_READ,
			.ttl_seconds = 3600 };
	BbxError err = BBX_ERROR_INIT;

	assert_int_equal(check(&s, &parent, "main", NULL), 0);
	TokenSpec t = s;
	t.verbs |= VERB_ENV_WRITE;
	assert_int_equal(check(&t, &parent, "main", &err), -EPERM);
	assert_non_null(strstr(err.message, "env:write"));
	t = s;
	t.scopes = (const char *[]){ "*", NULL };
	t.kind = PRINCIPAL_HUMAN;
	assert_int_equal(check(&t, &parent, "main", NULL), -EPERM);
	t.scopes = (const char *[]){ "pr-*", NULL };
	assert_int_equal(check(&t, &parent, "main", NULL), 0);
	t.scopes = (const char *[]){ "fix-*", NULL };
	assert_int_equal(check(&t, &parent, "main", NULL), -EPERM);
	t = s;
	t.ttl_seconds = 7201; /* outlives the parent */
	assert_int_equal(check(&t, &parent, "main", NULL), -EPERM);
	t.kind = PRINCIPAL_HUMAN;
	t.ttl_seconds = 0; /* never expiring outlives an expiring parent */
	assert_int_equal(check(&t, &parent, "main", NULL), -EPERM);

	/* Without token:admin nothing can be minted. */
	parent.verbs &= ~(uint32_t)VERB_TOKEN_ADMIN;
	assert_int_equal(check(&s, &parent, "main", NULL), -EPERM);
}

static void test_authenticate_and_revoke(void **state)
{
	_cleanup_(core_freep) Core *c = new_core(NULL);
	Principal root = { .kind = PRINCIPAL_ROOT, .verbs = VERB_ALL };
	const char *sc[] = { "pr-*", NULL };
	TokenSpec s = { .kind = PRINCIPAL_AGENT,
			.name = "bot",
			.scopes = sc,
			.verbs = VERB_ENV_READ | VERB_ENV_EXEC,
			.ttl_seconds = 3600 };
	BbxError err = BBX_ERROR_INIT;
	char *tok = NULL;
	json_t *info = NULL;
	Principal p = { 0 };

	assert_int_equal(token_create(c, &root, &s, NULL, &tok, &info, &err), 0);
	const char *id = json_string_value(json_object_get(info, "id"));
	assert_int_equal(token_authenticate(c, tok, &p, &err), 0);
	assert_int_equal(p.kind, PRINCIPAL_AGENT);
	assert_string_equal(p.token_id, id);
	assert_string_equal(p.scopes[0], "pr-*");
	assert_int_equal(p.verbs, VERB_ENV_READ | VERB_ENV_EXEC);
	assert_true(policy_can_see_environment(c, &p, "pr-1"));
	assert_false(policy_can_see_environment(c, &p, "main"));
	assert_int_equal(policy_authorize(c, &p, VERB_ENV_WRITE, "pr-1"), POLICY_FORBIDDEN);
	assert_int_equal(policy_authorize(c, &p, VERB_ENV_READ, "other"), POLICY_INVISIBLE);
	assert_int_equal(policy_authorize(c, &p, VERB_ENV_READ, "pr-1"), POLICY_ALLOW);

	/* Even a hand-widened agent never sees production. */
	free(p.scopes[0]);
	p.scopes[0] = strdup("*");
	assert_true(policy_can_see_environment(c, &p, "pr-1"));
	assert_false(policy_can_see_environment(c, &p, "main"));
	assert_int_equal(policy_authorize(c, &p, VERB_ENV_READ, "main"), POLICY_INVISIBLE);
	principal_done(&p);

	/* Revocation holds from the next lookup although the first one was cached. */
	assert_int_equal(token_authenticate(c, tok, &p, NULL), 0);
	principal_done(&p);
	assert_int_equal(token_revoke(c, &root, id, NULL, &err), 0);
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(token_authenticate(c, tok, &p, &err), -EACCES);
	assert_non_null(strstr(err.message, "revoked"));
	assert_int_equal(token_revoke(c, &root, "tok_nonexistent0", NULL, NULL), -ENOENT);

	/* Only the digest is stored. */
	Store *st = core_store(c);
	sqlite3_stmt *q = NULL;
	store_lock(st);
	assert_int_equal(
		sqlite3_prepare_v2(
			store_db(st),
			"SELECT count(*) FROM tokens WHERE "
			"instr(CAST(digest AS TEXT), ?) OR instr(scope_json, ?) OR instr(name, ?)",
			-1, &q, NULL),
		SQLITE_OK);
	sqlite3_bind_text(q, 1, tok, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 2, tok, -1, SQLITE_STATIC);
	sqlite3_bind_text(q, 3, tok, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), 0);
	sqlite3_finalize(q);
	store_unlock(st);

	/* An expired token is refused. */
	TokenSpec h = { .kind = PRINCIPAL_HUMAN,
			.name = "alice",
			.scopes = sc,
			.verbs = VERB_ENV_READ,
			.ttl_seconds = 100 };
	char *tok2 = NULL;
	json_t *info2 = NULL;
	assert_int_equal(token_create(c, &root, &h, NULL, &tok2, &info2, &err), 0);
	store_lock(st);
	assert_int_equal(
		store_exec(st, "UPDATE tokens SET expires_at = 1 WHERE name = 'alice'", NULL), 0);
	store_unlock(st);
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(token_authenticate(c, tok2, &p, &err), -EACCES);
	assert_non_null(strstr(err.message, "expired"));

	/* The shape is checked before the database: with the table gone, a malformed token is
	 * still refused as malformed, while a well-formed one reaches the (broken) store. */
	store_lock(st);
	assert_int_equal(store_exec(st, "DROP TABLE tokens", NULL), 0);
	store_unlock(st);
	err = (BbxError)BBX_ERROR_INIT;
	tok2[5] = tok2[5] == 'a' ? 'b' : 'a';
	assert_int_equal(token_authenticate(c, tok2, &p, &err), -EACCES);
	assert_non_null(strstr(err.message, "malformed"));
	char fresh[TOKEN_LEN + 1], fid[TOKEN_ID_LEN + 1];
	token_generate(fresh, fid);
	err = (BbxError)BBX_ERROR_INIT;
	assert_true(token_authenticate(c, fresh, &p, &err) < 0);
	assert_non_null(strstr(err.message, "token lookup"));

	free(tok);
	free(tok2);
	json_decref(info);
	json_decref(info2);
}

/* The last audit record's action and decision. */
static void last_audit(Core *c, char *action, char *decision)
{
	Store *st = core_store(c);
	sqlite3_stmt *q = NULL;
	store_lock(st);
	assert_int_equal(sqlite3_prepare_v2(store_db(st),
					    "SELECT action, decision FROM audit ORDER BY seq DESC "
					    "LIMIT 1",
					    -1, &q, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	snprintf(action, 64, "%s", (const char *)sqlite3_column_text(q, 0));
	snprintf(decision, 16, "%s", (const char *)sqlite3_column_text(q, 1));
	sqlite3_finalize(q);
	store_unlock(st);
}

/*
 * A principal kept past its request (a subscription stream, an MCP task) acts no more once
 * its token is revoked or expired: token_principal_live() says so, and ops_run() refuses a
 * kept principal's call and audits the refusal. Every way of going dead is tried.
 */
static void test_kept_principal_dies_with_its_token(void **state)
{
	_cleanup_(core_freep) Core *c = new_core(NULL);
	Principal root = { .kind = PRINCIPAL_ROOT, .verbs = VERB_ALL };
	const char *sc[] = { "pr-*", NULL };
	static const char *const deaths[] = { "revoked", "expired", "removed" };

	assert_int_equal(token_principal_live(c, &root, NULL), 0);
	Principal anon = { 0 };
	assert_int_equal(token_principal_live(c, &anon, NULL), -EACCES);

	for (size_t i = 0; i < ELEMENTSOF(deaths); i++) {
		char name[16];
		snprintf(name, sizeof(name), "bot-%zu", i);
		TokenSpec s = { .kind = PRINCIPAL_AGENT,
				.name = name,
				.scopes = sc,
				.verbs = VERB_ENV_READ,
				.ttl_seconds = 3600 };
		BbxError err = BBX_ERROR_INIT;
		char *tok = NULL;
		json_t *info = NULL, *out = NULL, *in = json_object();
		Principal p = { 0 }, kept = { 0 };
		assert_int_equal(token_create(c, &root, &s, NULL, &tok, &info, &err), 0);
		const char *id = json_string_value(json_object_get(info, "id"));
		assert_int_equal(token_authenticate(c, tok, &p, &err), 0);
		assert_int_equal(principal_copy(&kept, &p), 0);
		principal_done(&p);
		assert_string_equal(kept.scopes[0], "pr-*");

		const Op *op = ops_find("environment.list");
		OpCall oc = { .core = c,
			      .principal = &kept,
			      .interface = "mcp",
			      .request_id = "r1",
			      .principal_kept = true };
		assert_int_equal(token_principal_live(c, &kept, NULL), 0);
		assert_int_equal(ops_run(&oc, op, in, &out, &err), 0);
		json_decref(out);
		out = NULL;

		Store *st = core_store(c);
		char sql[160];
		if (!strcmp(deaths[i], "revoked"))
			assert_int_equal(token_revoke(c, &root, id, NULL, &err), 0);
		else {
			snprintf(sql, sizeof(sql), "%s tokens %s WHERE id = '%s'",
				 !strcmp(deaths[i], "expired") ? "UPDATE" : "DELETE FROM",
				 !strcmp(deaths[i], "expired") ? "SET expires_at = 1" : "", id);
			store_lock(st);
			assert_int_equal(store_exec(st, sql, NULL), 0);
			store_unlock(st);
		}
		err = (BbxError)BBX_ERROR_INIT;
		assert_int_equal(token_principal_live(c, &kept, &err), -EACCES);
		assert_non_null(
			strstr(err.message, !strcmp(deaths[i], "removed") ? "unknown" : deaths[i]));
		err = (BbxError)BBX_ERROR_INIT;
		OpCall later = oc;
		later.request_id = "r2";
		assert_int_equal(ops_run(&later, op, in, &out, &err), -EACCES);
		assert_null(out);
		char action[64], decision[16];
		last_audit(c, action, decision);
		assert_string_equal(action, "environment.list");
		assert_string_equal(decision, "deny");

		principal_done(&kept);
		free(tok);
		json_decref(info);
		json_decref(in);
	}
}

static void test_key_file(void **state)
{
	char kd[128], path[160];
	uint8_t k1[32], k2[32];
	bool created = false;
	struct stat st;

	snprintf(kd, sizeof(kd), "%s/keys-test", dir);
	assert_int_equal(core_load_or_create_key(kd, "token.key", k1, sizeof(k1), &created, NULL),
			 0);
	assert_true(created);
	snprintf(path, sizeof(path), "%s/keys/token.key", kd);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(core_load_or_create_key(kd, "token.key", k2, sizeof(k2), &created, NULL),
			 0);
	assert_false(created);
	assert_memory_equal(k1, k2, sizeof(k1));
	chmod(path, 0644);
	assert_int_equal(core_load_or_create_key(kd, "token.key", k2, sizeof(k2), NULL, NULL),
			 -EPERM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_digest),
		cmocka_unit_test(test_scope_patterns),
		cmocka_unit_test(test_coverage),
		cmocka_unit_test(test_agent_rules),
		cmocka_unit_test(test_minting_narrower),
		cmocka_unit_test_setup_teardown(test_authenticate_and_revoke, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kept_principal_dies_with_its_token, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
