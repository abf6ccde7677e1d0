/* SPDX-License-Identifier: MIT */
#include "audit.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "strbuf.h"

#define GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"

int audit_init(Core *c, BbxError *err)
{
	if (sodium_init() < 0)
		return bbx_error_set(err, -EIO, "internal", "libsodium failed to initialise");
	return 0;
}

static const char *principal_label(const Principal *p)
{
	return p && p->name[0] ? p->name : "anonymous";
}

static void put_field(StrBuf *sb, const char *s)
{
	/* Length-prefixed so no two field lists hash the same. */
	size_t n = s ? strlen(s) : 0;
	(void)strbuf_appendf(sb, "%zu:", n);
	if (s)
		(void)strbuf_append(sb, s, n);
	(void)strbuf_putc(sb, '\n');
}

static int record_hash(const char *seq, const char *time_s, const AuditRecord *r, const char *prev,
		       char hex[65])
{
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
	unsigned char h[crypto_hash_sha256_BYTES];

	put_field(&sb, seq);
	put_field(&sb, time_s);
	put_field(&sb, r->request_id);
	put_field(&sb, principal_label(r->principal));
	put_field(&sb, r->principal ? r->principal->token_id : "");
	put_field(&sb, r->interface);
	put_field(&sb, r->action);
	put_field(&sb, r->resource);
	put_field(&sb, r->decision);
	put_field(&sb, r->reason);
	put_field(&sb, r->request_digest);
	put_field(&sb, r->outcome);
	put_field(&sb, prev);
	if (!sb.buf)
		return -ENOMEM;
	crypto_hash_sha256(h, (const unsigned char *)sb.buf, sb.len);
	sodium_bin2hex(hex, 65, h, sizeof(h));
	return 0;
}

int audit_append_locked(Core *c, const AuditRecord *r, int64_t *ret_seq, BbxError *err)
{
	Store *s = core_store(c);
	sqlite3 *db = store_db(s);
	sqlite3_stmt *st = NULL;
	char prev[65] = GENESIS_HASH, hash[65], seq_s[24], time_s[40];
	int64_t seq = 1;
	int rc, ret;

	rc = sqlite3_prepare_v2(db, "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1", -1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		seq = sqlite3_column_int64(st, 0) + 1;
		snprintf(prev, sizeof(prev), "%s", (const char *)sqlite3_column_text(st, 1));
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_error(s, rc, "audit head", err);

	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(time_s, sizeof(time_s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(time_s + n, sizeof(time_s) - n, ".%06ldZ", ts.tv_nsec / 1000);
	snprintf(seq_s, sizeof(seq_s), "%lld", (long long)seq);

	ret = record_hash(seq_s, time_s, r, prev, hash);
	if (ret < 0)
		return ret;

	rc = sqlite3_prepare_v2(db,
				"INSERT INTO audit (seq, time, request_id, principal, token_id, interface, action, "
				"resource, decision, reason, request_digest, outcome, prev_hash, hash) "
				"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		const Principal *p = r->principal;
		sqlite3_bind_int64(st, 1, seq);
		sqlite3_bind_text(st, 2, time_s, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, r->request_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, principal_label(p), -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, p && p->token_id[0] ? p->token_id : NULL, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, r->interface, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 7, r->action, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 8, r->resource, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 9, r->decision, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 10, r->reason, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 11, r->request_digest, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 12, r->outcome, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 13, prev, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 14, hash, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return store_error(s, rc, "audit append", err);
	if (ret_seq)
		*ret_seq = seq;
	return 0;
}

int audit_append(Core *c, const AuditRecord *r, int64_t *ret_seq, BbxError *err)
{
	Store *s = core_store(c);
	int ret;

	store_lock(s);
	ret = store_begin(s, err);
	if (ret >= 0) {
		ret = audit_append_locked(c, r, ret_seq, err);
		if (ret >= 0)
			ret = store_commit(s, err);
		else
			store_rollback(s);
	}
	store_unlock(s);
	return ret;
}
