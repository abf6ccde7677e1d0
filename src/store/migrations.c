/* SPDX-License-Identifier: MIT */
/*
 * The schema, as numbered migrations. Never edit a released migration: add a new one.
 * Version N is the result of applying migrations[0..N-1]; PRAGMA user_version holds N.
 */
#include "store-internal.h"

const char *const store_migrations[] = {
	/* 1: the base schema */
	"CREATE TABLE environments ("
	"  name TEXT PRIMARY KEY,"
	"  kind TEXT NOT NULL CHECK (kind IN ('production', 'preview')),"
	"  branch TEXT NOT NULL,"
	"  commit_id TEXT,"
	"  parent TEXT,"
	"  state TEXT NOT NULL,"
	"  volume TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  expires_at INTEGER,"
	"  config_json TEXT,"
	"  error TEXT"
	");"
	"CREATE TABLE proposals ("
	"  id TEXT PRIMARY KEY,"
	"  environment TEXT,"
	"  source_branch TEXT NOT NULL,"
	"  base_commit TEXT NOT NULL,"
	"  head_commit TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  title TEXT,"
	"  evidence_json TEXT,"
	"  review_json TEXT,"
	"  merge_json TEXT,"
	"  created_by TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL"
	");"
	"CREATE TABLE tokens ("
	"  id TEXT PRIMARY KEY,"
	"  digest BLOB NOT NULL UNIQUE,"
	"  principal_kind TEXT NOT NULL CHECK (principal_kind IN ('human', 'agent')),"
	"  name TEXT NOT NULL,"
	"  scope_json TEXT NOT NULL,"
	"  verbs TEXT NOT NULL,"
	"  created_by TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  expires_at INTEGER,"
	"  revoked_at INTEGER"
	");"
	"CREATE TABLE operations ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  kind TEXT NOT NULL,"
	"  target TEXT NOT NULL,"
	"  step TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'undone', 'failed')),"
	"  payload_json TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL"
	");"
	"CREATE TABLE audit ("
	"  seq INTEGER PRIMARY KEY,"
	"  time TEXT NOT NULL,"
	"  request_id TEXT NOT NULL,"
	"  principal TEXT NOT NULL,"
	"  token_id TEXT,"
	"  interface TEXT NOT NULL,"
	"  action TEXT NOT NULL,"
	"  resource TEXT,"
	"  decision TEXT NOT NULL,"
	"  reason TEXT,"
	"  request_digest TEXT,"
	"  outcome TEXT NOT NULL,"
	"  prev_hash TEXT NOT NULL,"
	"  hash TEXT NOT NULL"
	");"
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL"
	");",

	/* 2: lookups the daemon does on every request and at every start */
	"CREATE INDEX operations_pending ON operations(state) WHERE state = 'pending';"
	"CREATE INDEX proposals_environment ON proposals(environment);"
	"CREATE INDEX audit_resource ON audit(resource);"
	"CREATE INDEX environments_expiry ON environments(expires_at) WHERE expires_at IS NOT "
	"NULL;",

	/* 3: per-environment service credentials, generated at creation (never cloned) */
	"ALTER TABLE environments ADD COLUMN secrets_json TEXT;",

	/* 4: each environment's own uids (services uid, applications uid + 1, gids equal), and
	 * the pair its volume's files are stored as. Rows from before had none: their volumes
	 * belong to the former fixed pair 64000/64001 and they get a pair at their next start. */
	"ALTER TABLE environments ADD COLUMN uid INTEGER;"
	"ALTER TABLE environments ADD COLUMN volume_uid INTEGER;"
	"UPDATE environments SET volume_uid = 64000;"
	"CREATE TABLE uid_allocations ("
	"  uid INTEGER PRIMARY KEY,"
	"  environment TEXT NOT NULL,"
	"  files_gone INTEGER NOT NULL DEFAULT 0 CHECK (files_gone IN (0, 1)),"
	"  created_at INTEGER NOT NULL"
	");"
	"CREATE INDEX uid_allocations_environment ON uid_allocations(environment);",

	/* 5: budgets. A token may carry limits that narrow a preview's budget; each preview keeps
	 * the budget it was created with and what it used, across restarts, and loses both with
	 * its row. */
	"ALTER TABLE tokens ADD COLUMN budget_json TEXT;"
	"CREATE TABLE environment_budgets ("
	"  environment TEXT PRIMARY KEY,"
	"  cpu_seconds INTEGER NOT NULL,"
	"  memory_bytes INTEGER NOT NULL,"
	"  disk_bytes INTEGER NOT NULL,"
	"  wall_time_sec INTEGER NOT NULL,"
	"  source TEXT NOT NULL,"
	"  cpu_used_usec INTEGER NOT NULL DEFAULT 0,"
	"  memory_peak_bytes INTEGER NOT NULL DEFAULT 0,"
	"  disk_base_bytes INTEGER NOT NULL DEFAULT 0,"
	"  disk_used_bytes INTEGER NOT NULL DEFAULT 0,"
	"  warned INTEGER NOT NULL DEFAULT 0,"
	"  exhausted TEXT,"
	"  sampled_at INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE TRIGGER environment_budgets_follow_row AFTER DELETE ON environments BEGIN"
	"  DELETE FROM environment_budgets WHERE environment = OLD.name;"
	" END;",
	/* 6: the token that created a preview, so previews can be counted per token (rows from
	 * before have none and count only towards the total) */
	"ALTER TABLE environments ADD COLUMN token_id TEXT;",
	/* 7: the proposal workflow: what a proposal is (a branch or a patch), where its
	 * validation is (step), why it failed, the digest its approval binds, the token that
	 * submitted it, the merge it validated when it was no fast-forward; and the recorded outcome of each idempotent request, so a retry returns
	 * it instead of acting twice. */
	"ALTER TABLE proposals ADD COLUMN kind TEXT;"
	"ALTER TABLE proposals ADD COLUMN description TEXT;"
	"ALTER TABLE proposals ADD COLUMN step TEXT;"
	"ALTER TABLE proposals ADD COLUMN error TEXT;"
	"ALTER TABLE proposals ADD COLUMN evidence_digest TEXT;"
	"ALTER TABLE proposals ADD COLUMN token_id TEXT;"
	"ALTER TABLE proposals ADD COLUMN validate_commit TEXT;"
	"CREATE TABLE idempotency ("
	"  principal TEXT NOT NULL,"
	"  action TEXT NOT NULL,"
	"  key TEXT NOT NULL,"
	"  request_digest TEXT NOT NULL,"
	"  response_json TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  PRIMARY KEY (principal, action, key)"
	");",
};

const int store_n_migrations = (int)ELEMENTSOF(store_migrations);
