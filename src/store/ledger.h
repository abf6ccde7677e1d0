/* SPDX-License-Identifier: MIT */
/*
 * The audit ledger's rows (table audit). What a record means, how its hash chains and how a
 * checkpoint is signed is core's (src/core/audit.h); this is only the table. Fields are
 * passed in the hash's order (LedgerField), as borrowed strings.
 *
 * The _locked calls expect the store lock held, and for ledger_insert_locked() a transaction
 * open: the record commits with whatever else that transaction changes. ledger_query() uses
 * the read connection; ledger_walk_file() opens a database file read-only itself, so the
 * chain can be verified offline without a Store.
 */
#pragma once

#include <stdint.h>

#include "store.h"

typedef enum LedgerField {
	LEDGER_SEQ,
	LEDGER_TIME,
	LEDGER_REQUEST_ID,
	LEDGER_PRINCIPAL,
	LEDGER_TOKEN_ID,
	LEDGER_INTERFACE,
	LEDGER_ACTION,
	LEDGER_RESOURCE,
	LEDGER_DECISION,
	LEDGER_REASON,
	LEDGER_DIGEST,
	LEDGER_OUTCOME,
	LEDGER_PREV,
	_LEDGER_FIELD_MAX
} LedgerField;

/* The column of each field ("seq", ..., "request_digest", ..., "prev_hash"). */
extern const char *const ledger_field_names[_LEDGER_FIELD_MAX];

/* The last record's seq and hash (0 and genesis when empty). Lock held. */
int ledger_head_locked(Store *s, int64_t *ret_seq, char ret_hash[65], BbxError *err);
/* Insert the record f (f[LEDGER_SEQ] unused: seq is given) with its hash. Lock held,
 * transaction open. */
int ledger_insert_locked(Store *s, int64_t seq, const char *const f[_LEDGER_FIELD_MAX],
			 const char *hash, BbxError *err);

/* One row: f[LEDGER_SEQ] is seq in decimal; strings valid only during the call. A negative
 * return stops the walk and is returned by it. */
typedef int (*LedgerRowFn)(int64_t seq, const char *const f[_LEDGER_FIELD_MAX], const char *hash,
			   void *userdata);

/* Rows oldest first: resource (exact, NULL = any), since (ISO time prefix, NULL = any), at
 * most limit (the newest ones when more match). */
int ledger_query(Store *s, const char *resource, const char *since, int64_t limit, LedgerRowFn fn,
		 void *userdata, BbxError *err);
/* Every row of the database file at db_path in seq order, read-only. */
int ledger_walk_file(const char *db_path, LedgerRowFn fn, void *userdata, BbxError *err);
