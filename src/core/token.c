/* SPDX-License-Identifier: MIT */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core-internal.h"
#include "file-util.h"
#include "parse.h"
#include "strbuf.h"
#include "tokens.h"

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

/* Base32 without padding: exactly out_chars characters from the leading bits of data. */
static void base32_encode(const uint8_t *data, size_t n, char *out, size_t out_chars)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n && o < out_chars; i++) {
		acc = (acc << 8) | data[i];
		bits += 8;
		while (bits >= 5 && o < out_chars) {
			out[o++] = b32[(acc >> (bits - 5)) & 31];
			bits -= 5;
		}
	}
	if (bits > 0 && o < out_chars)
		out[o++] = b32[(acc << (5 - bits)) & 31];
	out[o] = '\0';
}

static void token_checksum(const char *random_text, char out[TOKEN_CHECK_CHARS + 1])
{
	uint8_t h[crypto_generichash_BYTES_MIN];

	crypto_generichash(h, sizeof(h), (const uint8_t *)random_text, TOKEN_RANDOM_CHARS, NULL, 0);
	base32_encode(h, 4, out, TOKEN_CHECK_CHARS);
}

int token_generate(char ret_token[TOKEN_LEN + 1], char ret_id[TOKEN_ID_LEN + 1])
{
	uint8_t rnd[32], idr[8];
	char text[TOKEN_RANDOM_CHARS + 1], check[TOKEN_CHECK_CHARS + 1], idt[13];

	randombytes_buf(rnd, sizeof(rnd));
	base32_encode(rnd, sizeof(rnd), text, TOKEN_RANDOM_CHARS);
	sodium_memzero(rnd, sizeof(rnd));
	token_checksum(text, check);
	snprintf(ret_token, TOKEN_LEN + 1, TOKEN_PREFIX "%s%s", text, check);
	sodium_memzero(text, sizeof(text));
	randombytes_buf(idr, sizeof(idr));
	base32_encode(idr, sizeof(idr), idt, 12);
	snprintf(ret_id, TOKEN_ID_LEN + 1, "tok_%s", idt);
	return 0;
}

int token_check_format(const char *t, BbxError *err)
{
	char check[TOKEN_CHECK_CHARS + 1];

	if (!t)
		return bbx_error_set(err, -EINVAL, BBX_UNAUTHORIZED, "no token");
	if (strncmp(t, TOKEN_PREFIX, strlen(TOKEN_PREFIX)))
		return bbx_error_set(err, -EINVAL, BBX_UNAUTHORIZED,
				     "malformed token: wrong prefix");
	size_t n = strnlen(t, TOKEN_LEN + 1);
	if (n != TOKEN_LEN)
		return bbx_error_set(err, -EINVAL, BBX_UNAUTHORIZED,
				     "malformed token: wrong length");
	for (size_t i = strlen(TOKEN_PREFIX); i < n; i++)
		if (!strchr(b32, t[i]) || !t[i])
			return bbx_error_set(err, -EINVAL, BBX_UNAUTHORIZED,
					     "malformed token: bad character at %zu", i);
	token_checksum(t + strlen(TOKEN_PREFIX), check);
	if (sodium_memcmp(check, t + strlen(TOKEN_PREFIX) + TOKEN_RANDOM_CHARS, TOKEN_CHECK_CHARS))
		return bbx_error_set(err, -EINVAL, BBX_UNAUTHORIZED,
				     "malformed token: bad checksum");
	return 0;
}

void token_digest(const uint8_t key[TOKEN_KEY_BYTES], const char *token,
		  uint8_t ret[TOKEN_DIGEST_BYTES])
{
	crypto_generichash(ret, TOKEN_DIGEST_BYTES, (const uint8_t *)token, strlen(token), key,
			   TOKEN_KEY_BYTES);
}

int token_scope_pattern_check(const char *p, BbxError *err)
{
	size_t n = p ? strlen(p) : 0;

	if (n == 0 || n > TOKEN_SCOPE_MAX_LEN)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "scope '%s': must be 1 to %d characters", p ? p : "",
				     TOKEN_SCOPE_MAX_LEN);
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
		      ch == '_' || ch == '.' || ch == '*' || ch == '?'))
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "scope '%.63s': character %zu is not allowed (use a-z "
					     "0-9 - _ . * ?)",
					     p, i + 1);
	}
	return 0;
}

static bool has_wildcard(const char *s)
{
	return strpbrk(s, "*?") != NULL;
}

bool token_scope_covered(const char *const *parents, const char *child)
{
	for (size_t i = 0; parents && parents[i]; i++) {
		if (!strcmp(parents[i], "*") || !strcmp(parents[i], child))
			return true;
		if (!has_wildcard(child) && glob_match(parents[i], child))
			return true;
	}
	return false;
}

static bool scope_reaches(const char *pattern, const char *name)
{
	return glob_match(pattern, name);
}

int token_spec_check(const TokenSpec *spec, const Principal *creator, const char *production,
		     int64_t agent_max_ttl, int64_t now, int64_t *ret_expires_at, BbxError *err)
{
	size_t n = 0;
	int r;

	if (agent_max_ttl <= 0)
		agent_max_ttl = TOKEN_DEFAULT_AGENT_MAX_TTL;
	if (spec->kind != PRINCIPAL_HUMAN && spec->kind != PRINCIPAL_AGENT)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "kind: must be 'human' or 'agent'");
	if (!spec->name || !name_is_valid(spec->name))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "name '%s': 1-63 characters of a-z 0-9 - _ . starting with a "
				     "letter or digit",
				     spec->name ? spec->name : "");
	if (!spec->scopes || !spec->scopes[0])
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "scopes: at least one environment name or glob is required");
	for (; spec->scopes[n]; n++) {
		if (n >= PRINCIPAL_MAX_SCOPES)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "scopes: at most %d entries", PRINCIPAL_MAX_SCOPES);
		r = token_scope_pattern_check(spec->scopes[n], err);
		if (r < 0)
			return r;
	}
	if (spec->verbs == 0 || (spec->verbs & ~(uint32_t)VERB_ALL))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "verbs: at least one known verb is required");
	if (spec->ttl_seconds < 0)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "ttl_seconds: must not be negative");

	if (spec->kind == PRINCIPAL_AGENT) {
		const uint32_t never = VERB_PROPOSAL_REVIEW | VERB_PROPOSAL_MERGE |
				       VERB_AUDIT_READ | VERB_TOKEN_ADMIN;
		if (spec->verbs & never) {
			_cleanup_free_ char *bad = verbs_format(spec->verbs & never);
			return bbx_error_set(err, -EPERM, BBX_FORBIDDEN,
					     "agent tokens can never hold %s",
					     bad ? bad : "these verbs");
		}
		for (size_t i = 0; i < n; i++)
			if (scope_reaches(spec->scopes[i], production))
				return bbx_error_set(
					err, -EPERM, BBX_FORBIDDEN,
					"scope '%s' reaches the production environment '%s', "
					"which is never in an agent token's scope",
					spec->scopes[i], production);
		if (spec->ttl_seconds == 0)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "ttl_seconds: agent tokens must expire");
		if (spec->ttl_seconds > agent_max_ttl)
			return bbx_error_set(err, -EPERM, BBX_FORBIDDEN,
					     "ttl_seconds: agent tokens expire within %lld seconds",
					     (long long)agent_max_ttl);
	}
	if (spec->ttl_seconds > INT64_MAX / 2 - now)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "ttl_seconds: too large");
	int64_t expires = spec->ttl_seconds ? now + spec->ttl_seconds : 0;

	if (creator->kind != PRINCIPAL_ROOT) {
		if (!(creator->verbs & VERB_TOKEN_ADMIN))
			return bbx_error_set(err, -EPERM, BBX_FORBIDDEN,
					     "minting tokens needs token:admin");
		if (spec->verbs & ~creator->verbs) {
			_cleanup_free_ char *bad = verbs_format(spec->verbs & ~creator->verbs);
			return bbx_error_set(err, -EPERM, BBX_FORBIDDEN,
					     "verbs: %s not held by the creating token",
					     bad ? bad : "?");
		}
		for (size_t i = 0; i < n; i++)
			if (!token_scope_covered((const char *const *)creator->scopes,
						 spec->scopes[i]))
				return bbx_error_set(
					err, -EPERM, BBX_FORBIDDEN,
					"scope '%s' is wider than the creating token's scope",
					spec->scopes[i]);
		if (creator->expires_at && (!expires || expires > creator->expires_at))
			return bbx_error_set(err, -EPERM, BBX_FORBIDDEN,
					     "ttl_seconds: would outlive the creating token");
	}
	*ret_expires_at = expires;
	return 0;
}

/* --- token state cache: a hit saves the store lock on the hot path. Revocation clears it. */

#define TOKEN_CACHE_SLOTS 64

typedef struct CachedToken {
	bool used;
	uint8_t digest[TOKEN_DIGEST_BYTES];
	char id[TOKEN_ID_LEN + 1];
	PrincipalKind kind;
	char name[64];
	uint32_t verbs;
	char *scope_json;
	int64_t expires_at;
} CachedToken;

struct TokenCache {
	pthread_mutex_t lock;
	uint64_t generation;
	size_t next;
	CachedToken slots[TOKEN_CACHE_SLOTS];
};

int token_cache_new(TokenCache **ret)
{
	TokenCache *tc = calloc(1, sizeof(*tc));
	if (!tc)
		return -ENOMEM;
	pthread_mutex_init(&tc->lock, NULL);
	*ret = tc;
	return 0;
}

static void token_cache_clear_locked(TokenCache *tc)
{
	for (size_t i = 0; i < TOKEN_CACHE_SLOTS; i++) {
		free(tc->slots[i].scope_json);
		memset(&tc->slots[i], 0, sizeof(tc->slots[i]));
	}
}

void token_cache_free(TokenCache *tc)
{
	if (!tc)
		return;
	token_cache_clear_locked(tc);
	pthread_mutex_destroy(&tc->lock);
	free(tc);
}

static void token_cache_invalidate(TokenCache *tc)
{
	pthread_mutex_lock(&tc->lock);
	tc->generation++;
	token_cache_clear_locked(tc);
	pthread_mutex_unlock(&tc->lock);
}

static int principal_fill(Principal *p, const char *id, PrincipalKind kind, const char *name,
			  uint32_t verbs, const char *scope_json, int64_t expires_at)
{
	json_t *j = json_loads(scope_json, 0, NULL);
	size_t i;
	json_t *v;

	memset(p, 0, sizeof(*p));
	if (!json_is_array(j)) {
		json_decref(j);
		return -EUCLEAN;
	}
	p->kind = kind;
	snprintf(p->token_id, sizeof(p->token_id), "%s", id);
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->verbs = verbs;
	p->expires_at = expires_at;
	json_array_foreach(j, i, v)
	{
		if (i >= PRINCIPAL_MAX_SCOPES || !json_is_string(v))
			break;
		p->scopes[i] = strdup(json_string_value(v));
		if (!p->scopes[i]) {
			json_decref(j);
			principal_done(p);
			return -ENOMEM;
		}
	}
	json_decref(j);
	return 0;
}

int token_authenticate(Core *c, const char *token, Principal *ret, BbxError *err)
{
	uint8_t digest[TOKEN_DIGEST_BYTES];
	TokenCache *tc = c->token_cache;
	int64_t now = store_now();
	uint64_t gen;
	int r;

	/* The shape is checked before anything touches the database. */
	r = token_check_format(token, err);
	if (r < 0)
		return -EACCES;
	token_digest(c->token_key, token, digest);

	pthread_mutex_lock(&tc->lock);
	gen = tc->generation;
	for (size_t i = 0; i < TOKEN_CACHE_SLOTS; i++) {
		CachedToken *ct = &tc->slots[i];
		if (ct->used && !sodium_memcmp(ct->digest, digest, sizeof(digest))) {
			if (ct->expires_at && ct->expires_at <= now) {
				pthread_mutex_unlock(&tc->lock);
				return bbx_error_set(err, -EACCES, BBX_UNAUTHORIZED,
						     "token %s expired", ct->id);
			}
			r = principal_fill(ret, ct->id, ct->kind, ct->name, ct->verbs,
					   ct->scope_json, ct->expires_at);
			pthread_mutex_unlock(&tc->lock);
			return r < 0 ? bbx_error_set(err, r, BBX_INTERNAL, "token %s: bad scope",
						     ct->id)
				     : 0;
		}
	}
	pthread_mutex_unlock(&tc->lock);

	_cleanup_(token_row_done) TokenRow row = { 0 };
	r = token_row_find_digest(c->store, digest, &row, err);
	/* The lookup is by digest; the constant-time comparison is what decides. */
	if (r == -ENOENT || (r >= 0 && sodium_memcmp(row.digest, digest, sizeof(digest))))
		return bbx_error_set(err, -EACCES, BBX_UNAUTHORIZED, "unknown token");
	if (r < 0)
		return r;
	char id[TOKEN_ID_LEN + 1], name[64];
	snprintf(id, sizeof(id), "%s", row.id);
	snprintf(name, sizeof(name), "%s", row.name);
	PrincipalKind kind = !strcmp(row.kind, "agent") ? PRINCIPAL_AGENT : PRINCIPAL_HUMAN;
	const char *scope_json = row.scope_json;
	uint32_t verbs = 0;
	const char *bad = NULL;
	if (!row.verbs || verbs_parse(row.verbs, &verbs, &bad) < 0)
		verbs = 0;
	int64_t expires_at = row.expires_at;
	if (row.revoked_at)
		return bbx_error_set(err, -EACCES, BBX_UNAUTHORIZED, "token %s revoked", id);
	if (expires_at && expires_at <= now)
		return bbx_error_set(err, -EACCES, BBX_UNAUTHORIZED, "token %s expired", id);

	pthread_mutex_lock(&tc->lock);
	if (tc->generation == gen) {
		CachedToken *ct = &tc->slots[tc->next++ % TOKEN_CACHE_SLOTS];
		free(ct->scope_json);
		*ct = (CachedToken){
			.used = true, .kind = kind, .verbs = verbs, .expires_at = expires_at
		};
		memcpy(ct->digest, digest, sizeof(digest));
		snprintf(ct->id, sizeof(ct->id), "%s", id);
		snprintf(ct->name, sizeof(ct->name), "%s", name);
		ct->scope_json = strdup(scope_json);
		if (!ct->scope_json)
			ct->used = false;
	}
	pthread_mutex_unlock(&tc->lock);

	r = principal_fill(ret, id, kind, name, verbs, scope_json, expires_at);
	return r < 0 ? bbx_error_set(err, r, BBX_INTERNAL, "token %s: bad scope", id) : 0;
}

int token_principal_live(Core *c, const Principal *p, BbxError *err)
{
	if (p->kind == PRINCIPAL_ROOT)
		return 0;
	if (!p->token_id[0])
		return bbx_error_set(err, -EACCES, BBX_UNAUTHORIZED, "no token");
	int64_t now = store_now();
	if (p->expires_at && p->expires_at <= now)
		return bbx_error_set(err, -EACCES, BBX_UNAUTHORIZED, "token %s expired",
				     p->token_id);
	_cleanup_(token_row_done) TokenRow row = { 0 };
	int r = token_row_find_id(c->store, p->token_id, &row, err);
	if (r == -ENOENT)
		return bbx_error_set(err, -EACCES, BBX_UNAUTHORIZED, "unknown token");
	if (r < 0)
		return r;
	if (row.revoked_at)
		return bbx_error_set(err, -EACCES, BBX_UNAUTHORIZED, "token %s revoked",
				     p->token_id);
	if (row.expires_at && row.expires_at <= now)
		return bbx_error_set(err, -EACCES, BBX_UNAUTHORIZED, "token %s expired",
				     p->token_id);
	return 0;
}

/* A budget_json text as an object, or JSON null. */
static json_t *budget_text_json(const char *text)
{
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	return json_is_object(j) ? j : (json_decref(j), json_null());
}

static json_t *time_or_null(int64_t t)
{
	return t ? json_integer(t) : json_null();
}

static json_t *token_row_json(const TokenRow *row)
{
	json_t *scopes = json_loads(row->scope_json, 0, NULL);
	json_t *verbs = json_array();
	uint32_t bits = 0;
	const char *bad = NULL;

	if (row->verbs && verbs_parse(row->verbs, &bits, &bad) >= 0)
		for (uint32_t b = 1; b & VERB_ALL; b <<= 1)
			if (bits & b)
				json_array_append_new(verbs, json_string(verb_to_string(b)));
	return json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:s?,s:I,s:o,s:o}", "id", row->id, "kind",
			 row->kind, "name", row->name, "scopes", scopes ? scopes : json_array(),
			 "verbs", verbs, "budget", budget_text_json(row->budget_json), "created_by",
			 row->created_by, "created_at", (json_int_t)row->created_at, "expires_at",
			 time_or_null(row->expires_at), "revoked_at",
			 time_or_null(row->revoked_at));
}

static const char *creator_label(const Principal *p)
{
	return p->kind == PRINCIPAL_ROOT ? "root" : p->token_id;
}

int token_create(Core *c, const Principal *creator, const TokenSpec *spec, const AuditRecord *audit,
		 char **ret_token, json_t **ret_info, BbxError *err)
{
	char token[TOKEN_LEN + 1], id[TOKEN_ID_LEN + 1];
	uint8_t digest[TOKEN_DIGEST_BYTES];
	int64_t now = store_now(), expires = 0;
	int r;

	r = token_spec_check(spec, creator, c->production_branch, c->agent_token_max_ttl, now,
			     &expires, err);
	if (r < 0)
		return r;
	/* A token's budget stays within its creator's, which it inherits where it sets none. */
	Budget budget = spec->budget;
	if (creator->kind != PRINCIPAL_ROOT) {
		Budget parent;
		r = token_budget(c, creator->token_id, &parent, err);
		if (r < 0)
			return r;
		r = budget_check_within(&budget, &parent, err);
		if (r < 0)
			return r;
		(void)budget_narrow(&budget, &parent);
	}
	json_t *budget_j = budget.set ? budget_limits_to_json(&budget) : NULL;
	_cleanup_free_ char *budget_json =
		budget_j ? json_dumps(budget_j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(budget_j);
	if (budget.set && !budget_json)
		return -ENOMEM;

	json_t *scopes = json_array();
	for (size_t i = 0; spec->scopes[i]; i++)
		json_array_append_new(scopes, json_string(spec->scopes[i]));
	_cleanup_free_ char *scope_json = json_dumps(scopes, JSON_COMPACT);
	json_decref(scopes);
	_cleanup_free_ char *verbs = verbs_format(spec->verbs);
	if (!scope_json || !verbs)
		return -ENOMEM;

	token_generate(token, id);
	token_digest(c->token_key, token, digest);

	Store *s = c->store;
	TokenRow row = { .id = id,
			 .kind = (char *)(spec->kind == PRINCIPAL_AGENT ? "agent" : "human"),
			 .name = (char *)spec->name,
			 .scope_json = scope_json,
			 .verbs = verbs,
			 .created_by = (char *)creator_label(creator),
			 .created_at = now,
			 .expires_at = expires,
			 .budget_json = budget_json };
	memcpy(row.digest, digest, sizeof(digest));
	store_lock(s);
	r = store_begin(s, err);
	if (r < 0) {
		store_unlock(s);
		return r;
	}
	r = token_row_insert_locked(s, &row, err);
	if (r >= 0 && audit) {
		AuditRecord a = *audit;
		char resource[64];
		snprintf(resource, sizeof(resource), "token:%s", id);
		a.resource = resource;
		r = audit_append_locked(c, &a, NULL, err);
	}
	if (r >= 0)
		r = store_commit(s, err);
	else
		store_rollback(s);
	store_unlock(s);
	if (r < 0) {
		sodium_memzero(token, sizeof(token));
		return r;
	}

	json_t *vj = json_array();
	for (uint32_t b = 1; b & VERB_ALL; b <<= 1)
		if (spec->verbs & b)
			json_array_append_new(vj, json_string(verb_to_string(b)));
	json_t *sj = json_loads(scope_json, 0, NULL);
	json_t *info =
		json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:s,s:I,s:o}", "id", id, "kind",
			  spec->kind == PRINCIPAL_AGENT ? "agent" : "human", "name", spec->name,
			  "scopes", sj ? sj : json_array(), "verbs", vj, "budget",
			  budget.set ? budget_limits_to_json(&budget) : json_null(), "created_by",
			  creator_label(creator), "created_at", (json_int_t)now, "expires_at",
			  expires ? json_integer(expires) : json_null());
	char *copy = strdup(token);
	sodium_memzero(token, sizeof(token));
	if (!info || !copy) {
		json_decref(info);
		free(copy);
		return -ENOMEM;
	}
	*ret_token = copy;
	*ret_info = info;
	return 0;
}

int token_budget(Core *c, const char *id, Budget *ret, BbxError *err)
{
	_cleanup_free_ char *text = NULL;

	*ret = (Budget){ 0 };
	if (!id || !*id)
		return 0;
	int r = token_row_budget_json(c->store, id, &text, err);
	if (r < 0)
		return r;
	if (!text)
		return 0;
	json_t *j = json_loads(text, 0, NULL);
	r = budget_limits_from_json(j, "token budget", ret, err);
	json_decref(j);
	return r;
}

int token_list(Core *c, const Principal *viewer, json_t **ret, BbxError *err)
{
	TokenRow *rows = NULL;
	size_t n = 0;
	int r = token_rows_list(c->store, viewer->kind == PRINCIPAL_ROOT ? NULL : viewer->token_id,
				&rows, &n, err);
	if (r < 0)
		return r;
	json_t *arr = json_array();
	for (size_t i = 0; arr && i < n; i++)
		if (json_array_append_new(arr, token_row_json(&rows[i])) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	token_rows_free(rows, n);
	if (!arr)
		return -ENOMEM;
	*ret = arr;
	return 0;
}

int token_revoke(Core *c, const Principal *viewer, const char *id, const AuditRecord *audit,
		 BbxError *err)
{
	Store *s = c->store;
	int r;

	store_lock(s);
	r = store_begin(s, err);
	if (r < 0) {
		store_unlock(s);
		return r;
	}
	r = token_row_revoke_locked(s, id, viewer->kind == PRINCIPAL_ROOT ? NULL : viewer->token_id,
				    store_now(), err);
	if (r >= 0 && audit)
		r = audit_append_locked(c, audit, NULL, err);
	if (r >= 0)
		r = store_commit(s, err);
	else
		store_rollback(s);
	store_unlock(s);
	/* From the next request on, the token is looked up afresh and found revoked. */
	if (r >= 0)
		token_cache_invalidate(c->token_cache);
	return r;
}

int core_load_or_create_key(const char *state_dir, const char *name, void *key, size_t size,
			    bool *ret_created, BbxError *err)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int r;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/keys", state_dir) >= sizeof(dir) ||
	    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
		return bbx_error_set(err, -ENAMETOOLONG, BBX_INVALID, "key path too long");
	r = mkdir_p(dir, 0700);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: %s", dir, strerror(-r));
	(void)chmod(dir, 0700);

	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) < 0)
			return bbx_error_set(err, -errno, BBX_INTERNAL, "%s: %s", path,
					     strerror(errno));
		if ((size_t)st.st_size != size)
			return bbx_error_set(err, -EUCLEAN, BBX_INTERNAL,
					     "%s: expected %zu bytes, found %lld", path, size,
					     (long long)st.st_size);
		if (st.st_mode & 077)
			return bbx_error_set(err, -EPERM, BBX_INTERNAL,
					     "%s: readable by others (mode %o); expected 0600",
					     path, st.st_mode & 0777);
		r = read_exact(fd, key, size);
		if (r < 0)
			return bbx_error_set(err, r, BBX_INTERNAL, "%s: %s", path, strerror(-r));
		if (ret_created)
			*ret_created = false;
		return 0;
	}
	if (errno != ENOENT)
		return bbx_error_set(err, -errno, BBX_INTERNAL, "%s: %s", path, strerror(errno));
	randombytes_buf(key, size);
	r = write_file_atomic(path, key, size, 0600);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INTERNAL, "%s: %s", path, strerror(-r));
	if (ret_created)
		*ret_created = true;
	return 0;
}
