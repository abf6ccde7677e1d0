/* SPDX-License-Identifier: MIT */
/*
 * Bearer tokens: "bbx_" + 52 base32 characters (32 random bytes) + 7 base32 characters of
 * checksum (4 bytes of BLAKE2b over the random text). A token is shown once, at creation;
 * the database holds only its keyed digest (BLAKE2b keyed with STATE/keys/token.key), found
 * by digest and compared in constant time. Token ids ("tok_" + 12 characters) are public.
 *
 * Rules no token setting can bend (token_spec_check): agents never get production in scope
 * (a name or a glob matching it), never get proposal:review, proposal:merge, audit:read or
 * token:admin, and always expire within the configured maximum; a token mints only tokens
 * narrower than itself (verbs subset, scopes covered, expiry not later).
 *
 * Pure helpers (format, checksum, digest, scope coverage, spec check) have no side effects.
 * token_create/list/revoke/authenticate use the Core's store and are thread-safe.
 * Strings returned through ret_* are owned by the caller.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "budget.h"
#include "core.h"
#include "principal.h"

#define TOKEN_PREFIX "bbx_"
#define TOKEN_RANDOM_CHARS 52 /* 32 bytes of randomness in base32 */
#define TOKEN_CHECK_CHARS 7   /* 4 bytes of checksum in base32 */
#define TOKEN_LEN (4 + TOKEN_RANDOM_CHARS + TOKEN_CHECK_CHARS)
#define TOKEN_ID_LEN 16 /* "tok_" + 12 */
#define TOKEN_KEY_BYTES 32
#define TOKEN_DIGEST_BYTES 32
#define TOKEN_SCOPE_MAX_LEN 63
#define TOKEN_NAME_MAX_LEN 63
#define TOKEN_DEFAULT_AGENT_MAX_TTL (30 * 24 * 3600)

/* A fresh token and id (NUL-terminated). */
int token_generate(char ret_token[TOKEN_LEN + 1], char ret_id[TOKEN_ID_LEN + 1]);
/* Shape and checksum only; -EINVAL with the reason in err. No lookup happens here. */
int token_check_format(const char *token, BbxError *err);
void token_digest(const uint8_t key[TOKEN_KEY_BYTES], const char *token,
		  uint8_t ret[TOKEN_DIGEST_BYTES]);

/* An environment name or glob a token may be scoped to: [a-z0-9-_.*?], 1..63 chars. */
int token_scope_pattern_check(const char *pattern, BbxError *err);
/* Conservative coverage: equal, or parent "*", or parent glob matching a literal child. */
bool token_scope_covered(const char *const *parent_scopes, const char *child);

typedef struct TokenSpec {
	PrincipalKind kind; /* PRINCIPAL_HUMAN or PRINCIPAL_AGENT */
	const char *name;
	const char *const *scopes; /* NULL-terminated */
	uint32_t verbs;
	int64_t ttl_seconds; /* 0 = no expiry (humans only) */
	Budget budget; /* the most a preview it creates may use; .set = 0: production's policy */
} TokenSpec;

/*
 * May creator mint spec at time now? Checks every rule above; -EINVAL ("invalid") for a
 * malformed spec, -EPERM ("forbidden") for a rule or a widening. On success *ret_expires_at
 * is the absolute expiry (0 = never).
 */
int token_spec_check(const TokenSpec *spec, const Principal *creator, const char *production,
		     int64_t agent_max_ttl, int64_t now, int64_t *ret_expires_at, BbxError *err);

/*
 * Check spec, insert the token and append audit (its outcome is used as given) in one
 * transaction. A token minted by a token with a budget gets at most that budget (a limit
 * above it is -EPERM, one left out is inherited). Returns the token string (shown once) and
 * its description (id, kind, name, scopes, verbs, budget, created_at, expires_at).
 */
int token_create(Core *c, const Principal *creator, const TokenSpec *spec, const AuditRecord *audit,
		 char **ret_token, json_t **ret_info, BbxError *err);
/* Every token the caller may see (root: all; others: those it created), newest first. */
int token_list(Core *c, const Principal *viewer, json_t **ret, BbxError *err);
/*
 * Revoke by id in one transaction with its audit record. -ENOENT ("not_found") when the
 * id is unknown or not the viewer's to revoke; already revoked is not an error.
 */
int token_revoke(Core *c, const Principal *viewer, const char *id, const AuditRecord *audit,
		 BbxError *err);
/* The budget token id carries (ret->set = 0 when none, or for an unknown id). */
int token_budget(Core *c, const char *id, Budget *ret, BbxError *err);
/* Look the bearer token up (format checked first) and fill ret; -EACCES with a reason. */
int token_authenticate(Core *c, const char *token, Principal *ret, BbxError *err);

/*
 * May p, authenticated earlier and kept past its request (a subscription stream, a task),
 * still act? 0 for root and for a token neither revoked nor expired now; -EACCES with the
 * reason otherwise (an unknown id included). Looked up afresh: a revocation counts at once.
 */
int token_principal_live(Core *c, const Principal *p, BbxError *err);

/* Load STATE/keys/NAME (size bytes, 0600), creating it with random bytes at first use. */
int core_load_or_create_key(const char *state_dir, const char *name, void *key, size_t size,
			    bool *ret_created, BbxError *err);
