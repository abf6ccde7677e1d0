/* SPDX-License-Identifier: MIT */
/*
 * Token rows: a bearer token's keyed digest and what it may do. The token itself is never
 * stored. What the fields mean and who may mint what is core's (src/core/token.h); this is
 * only the table. TokenRow strings are owned by the row (token_row_done()). Calls without
 * _locked take the store lock (lookups on the read connection); _locked ones expect the
 * caller to hold the lock inside a transaction, so the caller's audit record commits with
 * the change.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define TOKEN_ROW_DIGEST_BYTES 32

typedef struct TokenRow {
	char *id;
	uint8_t digest[TOKEN_ROW_DIGEST_BYTES];
	char *kind; /* "human" or "agent" */
	char *name;
	char *scope_json; /* JSON array of environment names and globs */
	char *verbs;	  /* comma-separated, as verbs_format() writes them */
	char *created_by; /* "root" or the creating token's id */
	int64_t created_at;
	int64_t expires_at; /* 0: never */
	int64_t revoked_at; /* 0: not revoked */
	char *budget_json;  /* NULL: no budget of its own */
} TokenRow;

void token_row_done(TokenRow *r);
void token_rows_free(TokenRow *rows, size_t n);

/* Insert r (every field but revoked_at). Lock held, transaction open. */
int token_row_insert_locked(Store *s, const TokenRow *r, BbxError *err);
/* Set revoked_at = now unless already set, for id when created_by is NULL (any creator) or
 * is the row's creator. -ENOENT ("not_found") when no such row. Lock held, transaction open. */
int token_row_revoke_locked(Store *s, const char *id, const char *created_by, int64_t now,
			    BbxError *err);
/* The row whose digest is digest, from the read connection. -ENOENT (err untouched) when
 * none. The caller compares ret->digest in constant time before trusting it. */
int token_row_find_digest(Store *s, const uint8_t digest[TOKEN_ROW_DIGEST_BYTES], TokenRow *ret,
			  BbxError *err);
/* The row of token id, from the read connection. -ENOENT (err untouched) when none. */
int token_row_find_id(Store *s, const char *id, TokenRow *ret, BbxError *err);
/* The budget_json of id (*ret NULL when the token has none or is unknown). */
int token_row_budget_json(Store *s, const char *id, char **ret, BbxError *err);
/* Every row (created_by NULL) or those created_by made, newest first. */
int token_rows_list(Store *s, const char *created_by, TokenRow **ret, size_t *ret_n, BbxError *err);
