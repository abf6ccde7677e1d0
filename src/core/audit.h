/* SPDX-License-Identifier: MIT */
/*
 * The audit ledger: one record per request on every interface, allowed, denied or
 * failed; a request with side effects outside the database (exec, create, destroy, deploy,
 * start, stop) has two, an intent (outcome AUDIT_OUTCOME_INTENT) committed before it acts
 * and its outcome after, with the same request id, so a crash between leaves the intent
 * on record with no outcome. Each record's hash (SHA-256 over its length-prefixed fields
 * and the previous record's hash) chains it to the one before, so any rewrite, deletion or
 * reordering breaks the chain; signed checkpoints (size, head hash, Ed25519 over a
 * canonical text) kept elsewhere expose even a rewrite whose later hashes were all
 * recomputed.
 *
 * audit_append() is durable (fsynced) when it returns 0; if it fails the caller must fail
 * the request. Concurrent appenders are committed together by one committer thread, one
 * transaction and one fsync per batch (group commit). audit_append_locked() appends inside
 * a store transaction the caller holds, so a state change and its record commit together.
 * Thread-safe. The verify functions open the database file themselves, read-only, so they
 * work offline without a Core.
 */
#pragma once

#include <jansson.h>
#include <stdint.h>

#include "core.h"
#include "principal.h"

typedef struct AuditRecord {
	const char *request_id;
	const Principal *principal;
	const char *interface;	    /* "cli", "http", "mcp" */
	const char *action;	    /* e.g. "environment.get" */
	const char *resource;	    /* e.g. "environment:pr-1", may be NULL */
	const char *decision;	    /* "allow", "deny" */
	const char *reason;	    /* why denied or failed, may be NULL */
	const char *request_digest; /* hex SHA-256 of method, path and body */
	const char *outcome;	    /* e.g. "200", "404", or AUDIT_OUTCOME_INTENT */
} AuditRecord;

/* The outcome of an intent record: admitted, about to act, result not known yet. */
#define AUDIT_OUTCOME_INTENT "intent"

#define AUDIT_GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"

int audit_init(Core *c, BbxError *err);
int audit_append(Core *c, const AuditRecord *rec, int64_t *ret_seq, BbxError *err);
/* The store lock must be held and a transaction open. */
int audit_append_locked(Core *c, const AuditRecord *rec, int64_t *ret_seq, BbxError *err);

typedef struct AuditCheckpoint {
	int64_t size;	     /* number of records covered */
	char head_hash[65];  /* hash of record number size (genesis when 0) */
	char time[40];	     /* UTC, ISO 8601 */
	char key_id[17];     /* hex of the first 8 bytes of BLAKE2b(public key) */
	char public_key[65]; /* hex Ed25519 public key */
	char signature[129]; /* hex Ed25519 signature over the canonical text */
} AuditCheckpoint;

/* Sign the current head with the daemon's key. */
int audit_checkpoint_create(Core *c, AuditCheckpoint *ret, BbxError *err);
json_t *audit_checkpoint_to_json(const AuditCheckpoint *cp);
int audit_checkpoint_from_json(json_t *j, AuditCheckpoint *ret, BbxError *err);
/* Check the signature; with expected_public_key (hex) set, the key must also be that one. */
int audit_checkpoint_check_signature(const AuditCheckpoint *cp, const char *expected_public_key,
				     BbxError *err);
/* The daemon's public key in hex. */
void audit_public_key_hex(Core *c, char ret[65]);
/* The public key of STATE/keys/audit-ed25519.key, for offline verification. */
int audit_public_key_from_state(const char *state_dir, char ret[65], BbxError *err);

typedef struct AuditVerifyResult {
	int64_t size; /* records checked */
	char head_hash[65];
	int64_t bad_seq; /* first bad record, 0 when valid */
} AuditVerifyResult;

/*
 * Walk the whole chain of the database at db_path: seq contiguous from 1, each prev_hash
 * linking, each hash recomputed. With cp, the recomputed hash of record cp->size must be
 * cp->head_hash and the log must hold at least cp->size records (the signature is checked
 * separately). -EBADMSG ("invalid") with the first bad seq and what is wrong in err.
 */
int audit_verify_db(const char *db_path, const AuditCheckpoint *cp, AuditVerifyResult *ret,
		    BbxError *err);

/*
 * Records, oldest first: resource (exact, NULL = any), since (ISO time prefix, NULL = any),
 * at most limit (the newest ones when more match).
 */
int audit_query(Core *c, const char *resource, const char *since, int64_t limit, json_t **ret,
		BbxError *err);
