/* SPDX-License-Identifier: MIT */
#include "audit.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core-internal.h"
#include "file-util.h"
#include "strbuf.h"

enum {
	F_SEQ,
	F_TIME,
	F_REQUEST_ID,
	F_PRINCIPAL,
	F_TOKEN_ID,
	F_INTERFACE,
	F_ACTION,
	F_RESOURCE,
	F_DECISION,
	F_REASON,
	F_DIGEST,
	F_OUTCOME,
	F_PREV,
	_F_MAX
};

int audit_init(Core *c, BbxError *err)
{
	if (sodium_init() < 0)
		return bbx_error_set(err, -EIO, BBX_INTERNAL, "libsodium failed to initialise");
	return 0;
}

static const char *principal_label(const Principal *p)
{
	return p && p->name[0] ? p->name : "anonymous";
}

static void put_field(crypto_hash_sha256_state *st, const char *s)
{
	/* Length-prefixed ("N:bytes\n") so no two field lists hash the same. */
	size_t n = s ? strlen(s) : 0;
	char len[24];
	int k = snprintf(len, sizeof(len), "%zu:", n);
	crypto_hash_sha256_update(st, (const unsigned char *)len, (unsigned long long)k);
	if (s)
		crypto_hash_sha256_update(st, (const unsigned char *)s, n);
	crypto_hash_sha256_update(st, (const unsigned char *)"\n", 1);
}

/* The one definition of a record's hash, shared by append and verify. Streamed: no
 * allocation on the append path. */
static int fields_hash(const char *const f[_F_MAX], char hex[65])
{
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256_init(&st);
	for (int i = 0; i < _F_MAX; i++)
		put_field(&st, f[i]);
	crypto_hash_sha256_final(&st, h);
	sodium_bin2hex(hex, 65, h, sizeof(h));
	return 0;
}

static void now_iso(char *buf, size_t size)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%06ldZ", ts.tv_nsec / 1000);
}

typedef struct Pending {
	const AuditRecord *rec; /* the appender waits, so its strings outlive the batch */
	int result;
	int64_t seq;
	BbxError err;
	bool done;
	pthread_cond_t cond; /* one per waiter: a batch wakes only its own appenders */
	struct Pending *next;
} Pending;

struct AuditQueue {
	pthread_mutex_t lock;
	pthread_cond_t work;
	Pending *head, **tail;
	bool stop;
	bool running;
	pthread_t thread;
	/* Prepared once, used only under the store lock: parsing SQL per record was a
	 * measurable share of an audited request. */
	sqlite3_stmt *head_st;
	sqlite3_stmt *insert_st;
};

#define SQL_HEAD "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
#define SQL_INSERT                                                                                 \
	"INSERT INTO audit (seq, time, request_id, principal, token_id, interface, action, "       \
	"resource, decision, reason, request_digest, outcome, prev_hash, hash) "                   \
	"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

/* A cached statement (reset) or a fresh one the caller finalizes (*fresh set). */
static int stmt_get(Core *c, sqlite3_stmt **cache, const char *sql, sqlite3_stmt **ret, bool *fresh)
{
	sqlite3 *db = store_db(core_store(c));
	int rc;

	if (c->audit_queue) {
		if (!*cache) {
			rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, cache,
						NULL);
			if (rc != SQLITE_OK)
				return rc;
		}
		sqlite3_reset(*cache);
		sqlite3_clear_bindings(*cache);
		*ret = *cache;
		*fresh = false;
		return SQLITE_OK;
	}
	*fresh = true;
	return sqlite3_prepare_v2(db, sql, -1, ret, NULL);
}

static void stmt_put(sqlite3_stmt *st, bool fresh)
{
	if (fresh)
		sqlite3_finalize(st);
	else if (st)
		sqlite3_reset(st);
}

static int audit_head(Core *c, int64_t *ret_size, char prev[65], BbxError *err)
{
	sqlite3_stmt *st = NULL;
	bool fresh = false;
	int rc;

	*ret_size = 0;
	snprintf(prev, 65, "%s", AUDIT_GENESIS_HASH);
	rc = stmt_get(c, c->audit_queue ? &c->audit_queue->head_st : NULL, SQL_HEAD, &st, &fresh);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*ret_size = sqlite3_column_int64(st, 0);
		snprintf(prev, 65, "%s", (const char *)sqlite3_column_text(st, 1));
		rc = SQLITE_DONE;
	}
	stmt_put(st, fresh);
	if (rc != SQLITE_DONE)
		return store_error(core_store(c), rc, "audit head", err);
	return 0;
}

/* Append after the head (*seq, prev), which advance to the new record on success. */
static int append_at(Core *c, const AuditRecord *r, int64_t *seq_io, char prev[65], BbxError *err)
{
	Store *s = core_store(c);
	sqlite3_stmt *st = NULL;
	char hash[65], seq_s[24], time_s[40];
	const Principal *p = r->principal;
	const char *token_id = p && p->token_id[0] ? p->token_id : NULL;
	int64_t seq = *seq_io + 1;
	bool fresh = false;
	int rc, ret;

	now_iso(time_s, sizeof(time_s));
	snprintf(seq_s, sizeof(seq_s), "%lld", (long long)seq);

	const char *f[_F_MAX] = {
		[F_SEQ] = seq_s,
		[F_TIME] = time_s,
		[F_REQUEST_ID] = r->request_id,
		[F_PRINCIPAL] = principal_label(p),
		[F_TOKEN_ID] = token_id,
		[F_INTERFACE] = r->interface,
		[F_ACTION] = r->action,
		[F_RESOURCE] = r->resource,
		[F_DECISION] = r->decision,
		[F_REASON] = r->reason,
		[F_DIGEST] = r->request_digest,
		[F_OUTCOME] = r->outcome,
		[F_PREV] = prev,
	};
	ret = fields_hash(f, hash);
	if (ret < 0)
		return ret;

	rc = stmt_get(c, c->audit_queue ? &c->audit_queue->insert_st : NULL, SQL_INSERT, &st,
		      &fresh);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, seq);
		for (int i = F_TIME; i < _F_MAX; i++)
			sqlite3_bind_text(st, i + 1, f[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 14, hash, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
	}
	stmt_put(st, fresh);
	if (rc != SQLITE_DONE)
		return store_error(s, rc, "audit append", err);
	*seq_io = seq;
	memcpy(prev, hash, 65);
	return 0;
}

int audit_append_locked(Core *c, const AuditRecord *r, int64_t *ret_seq, BbxError *err)
{
	char prev[65];
	int64_t seq;
	int ret = audit_head(c, &seq, prev, err);
	if (ret < 0)
		return ret;
	ret = append_at(c, r, &seq, prev, err);
	if (ret >= 0 && ret_seq)
		*ret_seq = seq;
	return ret;
}

/* --- group commit ------------------------------------------------------------------- */

static void commit_batch(Core *c, Pending *batch)
{
	Store *s = core_store(c);
	BbxError err = BBX_ERROR_INIT;
	int r;

	char prev[65];
	int64_t seq = 0;

	store_lock(s);
	r = store_begin(s, &err);
	if (r >= 0)
		r = audit_head(c, &seq, prev, &err); /* once per batch */
	for (Pending *p = batch; r >= 0 && p; p = p->next) {
		r = append_at(c, p->rec, &seq, prev, &err);
		p->seq = seq;
	}
	if (r >= 0)
		r = store_commit(s, &err); /* synchronous=FULL: one fsync for the batch */
	else
		store_rollback(s);
	store_unlock(s);
	for (Pending *p = batch; p; p = p->next) {
		p->result = r;
		if (r < 0)
			p->err = err;
	}
}

static void *committer(void *userdata)
{
	Core *c = userdata;
	AuditQueue *q = c->audit_queue;

	pthread_mutex_lock(&q->lock);
	for (;;) {
		while (!q->head && !q->stop)
			pthread_cond_wait(&q->work, &q->lock);
		if (!q->head && q->stop)
			break;
		Pending *batch = q->head;
		q->head = NULL;
		q->tail = &q->head;
		pthread_mutex_unlock(&q->lock);

		commit_batch(c, batch);

		pthread_mutex_lock(&q->lock);
		for (Pending *p = batch, *next; p; p = next) {
			next = p->next; /* p may be gone once its waiter runs */
			p->done = true;
			pthread_cond_signal(&p->cond);
		}
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int audit_start(Core *c, BbxError *err)
{
	AuditQueue *q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->work, NULL);
	q->tail = &q->head;
	c->audit_queue = q;
	int r = pthread_create(&q->thread, NULL, committer, c);
	if (r != 0)
		return bbx_error_set(err, -r, BBX_INTERNAL, "audit committer thread: %s",
				     strerror(r));
	q->running = true;
	return 0;
}

void audit_stop(Core *c)
{
	AuditQueue *q = c->audit_queue;
	if (!q)
		return;
	if (q->running) {
		pthread_mutex_lock(&q->lock);
		q->stop = true;
		pthread_cond_signal(&q->work);
		pthread_mutex_unlock(&q->lock);
		pthread_join(q->thread, NULL);
	}
	store_lock(core_store(c));
	sqlite3_finalize(q->head_st);
	sqlite3_finalize(q->insert_st);
	store_unlock(core_store(c));
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->work);
	free(q);
	c->audit_queue = NULL;
}

int audit_append(Core *c, const AuditRecord *r, int64_t *ret_seq, BbxError *err)
{
	AuditQueue *q = c->audit_queue;
	Pending p = { .rec = r };

	if (!q || !q->running)
		return bbx_error_set(err, -ESHUTDOWN, BBX_UNAVAILABLE,
				     "the audit log is not running");
	pthread_cond_init(&p.cond, NULL);
	pthread_mutex_lock(&q->lock);
	if (q->stop) {
		pthread_mutex_unlock(&q->lock);
		pthread_cond_destroy(&p.cond);
		return bbx_error_set(err, -ESHUTDOWN, BBX_UNAVAILABLE,
				     "the audit log is shutting down");
	}
	bool was_empty = !q->head;
	*q->tail = &p;
	q->tail = &p.next;
	if (was_empty)
		pthread_cond_signal(&q->work);
	while (!p.done)
		pthread_cond_wait(&p.cond, &q->lock);
	pthread_mutex_unlock(&q->lock);
	pthread_cond_destroy(&p.cond);
	if (p.result < 0) {
		if (err && !bbx_error_isset(err))
			*err = p.err;
		return p.result;
	}
	if (ret_seq)
		*ret_seq = p.seq;
	return 0;
}

/* --- checkpoints -------------------------------------------------------------------- */

static int checkpoint_text(const AuditCheckpoint *cp, char *buf, size_t size)
{
	int n = snprintf(buf, size,
			 "branchbox-audit-checkpoint-v1\nsize=%lld\nhead=%s\ntime=%s\nkey=%s\n",
			 (long long)cp->size, cp->head_hash, cp->time, cp->key_id);
	return n < 0 || (size_t)n >= size ? -EOVERFLOW : n;
}

static void key_id_of(const uint8_t pk[crypto_sign_PUBLICKEYBYTES], char ret[17])
{
	uint8_t h[crypto_generichash_BYTES_MIN];
	crypto_generichash(h, sizeof(h), pk, crypto_sign_PUBLICKEYBYTES, NULL, 0);
	sodium_bin2hex(ret, 17, h, 8);
}

void audit_public_key_hex(Core *c, char ret[65])
{
	sodium_bin2hex(ret, 65, c->audit_pk, sizeof(c->audit_pk));
}

int audit_public_key_from_state(const char *state_dir, char ret[65], BbxError *err)
{
	uint8_t seed[crypto_sign_SEEDBYTES], pk[crypto_sign_PUBLICKEYBYTES],
		sk[crypto_sign_SECRETKEYBYTES];
	char path[PATH_MAX];
	_cleanup_free_ char *data = NULL;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/keys/audit-ed25519.key", state_dir);
	int r = read_full_file(path, 4096, &data, &n);
	if (r < 0)
		return bbx_error_set(err, r, BBX_INVALID, "%s: %s", path, strerror(-r));
	if (n != sizeof(seed))
		return bbx_error_set(err, -EUCLEAN, BBX_INVALID, "%s: not an Ed25519 seed", path);
	memcpy(seed, data, sizeof(seed));
	sodium_memzero(data, n);
	crypto_sign_seed_keypair(pk, sk, seed);
	sodium_memzero(seed, sizeof(seed));
	sodium_memzero(sk, sizeof(sk));
	sodium_bin2hex(ret, 65, pk, sizeof(pk));
	return 0;
}

int audit_checkpoint_create(Core *c, AuditCheckpoint *ret, BbxError *err)
{
	AuditCheckpoint cp = { 0 };
	uint8_t sig[crypto_sign_BYTES];
	char text[512];
	int r;

	store_lock(core_store(c));
	r = audit_head(c, &cp.size, cp.head_hash, err);
	store_unlock(core_store(c));
	if (r < 0)
		return r;
	now_iso(cp.time, sizeof(cp.time));
	key_id_of(c->audit_pk, cp.key_id);
	audit_public_key_hex(c, cp.public_key);
	int n = checkpoint_text(&cp, text, sizeof(text));
	if (n < 0)
		return n;
	crypto_sign_detached(sig, NULL, (const uint8_t *)text, (size_t)n, c->audit_sk);
	sodium_bin2hex(cp.signature, sizeof(cp.signature), sig, sizeof(sig));
	*ret = cp;
	return 0;
}

json_t *audit_checkpoint_to_json(const AuditCheckpoint *cp)
{
	return json_pack("{s:s,s:I,s:s,s:s,s:s,s:s,s:s}", "format", "branchbox-audit-checkpoint-v1",
			 "size", (json_int_t)cp->size, "head_hash", cp->head_hash, "time", cp->time,
			 "key_id", cp->key_id, "public_key", cp->public_key, "signature",
			 cp->signature);
}

static int copy_hex(json_t *j, const char *key, char *out, size_t size, size_t want, BbxError *err)
{
	const char *v = json_string_value(json_object_get(j, key));
	if (!v || (want && strlen(v) != want) || strlen(v) >= size)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "checkpoint: field '%s' missing or malformed", key);
	snprintf(out, size, "%s", v);
	return 0;
}

int audit_checkpoint_from_json(json_t *j, AuditCheckpoint *ret, BbxError *err)
{
	AuditCheckpoint cp = { 0 };
	json_t *size = json_object_get(j, "size");
	int r;

	if (!json_is_object(j))
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "checkpoint: expected a JSON object");
	if (!json_is_integer(size) || json_integer_value(size) < 0)
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "checkpoint: field 'size' missing or malformed");
	cp.size = json_integer_value(size);
	if ((r = copy_hex(j, "head_hash", cp.head_hash, sizeof(cp.head_hash), 64, err)) < 0 ||
	    (r = copy_hex(j, "time", cp.time, sizeof(cp.time), 0, err)) < 0 ||
	    (r = copy_hex(j, "key_id", cp.key_id, sizeof(cp.key_id), 16, err)) < 0 ||
	    (r = copy_hex(j, "public_key", cp.public_key, sizeof(cp.public_key), 64, err)) < 0 ||
	    (r = copy_hex(j, "signature", cp.signature, sizeof(cp.signature), 128, err)) < 0)
		return r;
	*ret = cp;
	return 0;
}

int audit_checkpoint_check_signature(const AuditCheckpoint *cp, const char *expected_public_key,
				     BbxError *err)
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], sig[crypto_sign_BYTES];
	char text[512], kid[17];
	size_t n;

	if (expected_public_key && strcmp(expected_public_key, cp->public_key))
		return bbx_error_set(err, -EBADMSG, BBX_INVALID,
				     "checkpoint: signed by key %s, not by this daemon's key",
				     cp->key_id);
	if (sodium_hex2bin(pk, sizeof(pk), cp->public_key, strlen(cp->public_key), NULL, &n, NULL) <
		    0 ||
	    n != sizeof(pk) ||
	    sodium_hex2bin(sig, sizeof(sig), cp->signature, strlen(cp->signature), NULL, &n, NULL) <
		    0 ||
	    n != sizeof(sig))
		return bbx_error_set(err, -EBADMSG, BBX_INVALID,
				     "checkpoint: malformed key or signature");
	key_id_of(pk, kid);
	if (strcmp(kid, cp->key_id))
		return bbx_error_set(err, -EBADMSG, BBX_INVALID,
				     "checkpoint: key_id does not match public_key");
	int tn = checkpoint_text(cp, text, sizeof(text));
	if (tn < 0 || crypto_sign_verify_detached(sig, (const uint8_t *)text, (size_t)tn, pk) != 0)
		return bbx_error_set(err, -EBADMSG, BBX_INVALID, "checkpoint: bad signature");
	return 0;
}

/* --- verification ------------------------------------------------------------------- */

static const char *col(sqlite3_stmt *st, int i)
{
	return (const char *)sqlite3_column_text(st, i);
}

int audit_verify_db(const char *db_path, const AuditCheckpoint *cp, AuditVerifyResult *ret,
		    BbxError *err)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char prev[65] = AUDIT_GENESIS_HASH, hash[65], seq_s[24];
	int64_t expect = 1;
	int rc, r = 0;

	AuditVerifyResult res = { .head_hash = AUDIT_GENESIS_HASH };
	rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		r = bbx_error_set(err, -EIO, BBX_INVALID, "%s: %s", db_path,
				  db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		goto out;
	}
	sqlite3_busy_timeout(db, 5000);
	rc = sqlite3_prepare_v2(
		db,
		"SELECT seq, time, request_id, principal, token_id, interface, action, resource, "
		"decision, reason, request_digest, outcome, prev_hash, hash FROM audit ORDER BY "
		"seq",
		-1, &st, NULL);
	if (rc != SQLITE_OK) {
		r = bbx_error_set(err, -EIO, BBX_INVALID, "%s: %s", db_path, sqlite3_errmsg(db));
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t seq = sqlite3_column_int64(st, 0);
		if (seq != expect) {
			r = bbx_error_set(
				err, -EBADMSG, BBX_INVALID,
				"seq %lld: expected seq %lld (a record was deleted or reordered)",
				(long long)expect, (long long)expect);
			res.bad_seq = expect;
			goto out;
		}
		snprintf(seq_s, sizeof(seq_s), "%lld", (long long)seq);
		const char *f[_F_MAX] = { seq_s };
		for (int i = F_TIME; i < _F_MAX; i++)
			f[i] = col(st, i);
		const char *stored_prev = col(st, 12), *stored = col(st, 13);
		if (!stored_prev || strcmp(stored_prev, prev)) {
			r = bbx_error_set(
				err, -EBADMSG, BBX_INVALID,
				"seq %lld: prev_hash does not link to the hash of seq %lld",
				(long long)seq, (long long)seq - 1);
			res.bad_seq = seq;
			goto out;
		}
		if (fields_hash(f, hash) < 0) {
			r = -ENOMEM;
			goto out;
		}
		if (!stored || strcmp(stored, hash)) {
			r = bbx_error_set(err, -EBADMSG, BBX_INVALID,
					  "seq %lld: hash does not match the record's contents "
					  "(the record was changed)",
					  (long long)seq);
			res.bad_seq = seq;
			goto out;
		}
		if (cp && seq == cp->size && strcmp(hash, cp->head_hash)) {
			r = bbx_error_set(
				err, -EBADMSG, BBX_INVALID,
				"seq %lld: the log up to here differs from the signed checkpoint "
				"(records up to seq %lld were rewritten)",
				(long long)seq, (long long)seq);
			res.bad_seq = seq;
			goto out;
		}
		memcpy(prev, hash, sizeof(prev));
		expect++;
	}
	if (rc != SQLITE_DONE) {
		r = bbx_error_set(err, -EIO, BBX_INVALID, "%s: %s", db_path, sqlite3_errmsg(db));
		goto out;
	}
	res.size = expect - 1;
	memcpy(res.head_hash, prev, sizeof(prev));
	if (cp && cp->size > res.size) {
		r = bbx_error_set(err, -EBADMSG, BBX_INVALID,
				  "seq %lld: missing; the log has %lld records but the checkpoint "
				  "covers %lld "
				  "(the log was truncated)",
				  (long long)res.size + 1, (long long)res.size,
				  (long long)cp->size);
		res.bad_seq = res.size + 1;
		goto out;
	}
	if (cp && cp->size == 0 && strcmp(cp->head_hash, AUDIT_GENESIS_HASH)) {
		r = bbx_error_set(err, -EBADMSG, BBX_INVALID,
				  "checkpoint: size 0 with a non-genesis head");
		goto out;
	}
out:
	sqlite3_finalize(st);
	sqlite3_close_v2(db);
	if (ret)
		*ret = res;
	return r;
}

/* --- queries ------------------------------------------------------------------------ */

int audit_query(Core *c, const char *resource, const char *since, int64_t limit, json_t **ret,
		BbxError *err)
{
	Store *s = core_store(c);
	sqlite3_stmt *st = NULL;
	json_t *arr = json_array();
	int rc;

	if (!arr)
		return -ENOMEM;
	store_read_lock(s);
	/* Only the filters given, so SQLite can walk the resource index backwards (an
	 * "?1 IS NULL OR ..." form made every query a full scan of the ledger). */
	char sql[640];
	snprintf(sql, sizeof(sql),
		 "SELECT * FROM (SELECT seq, time, request_id, principal, token_id, interface, "
		 "action, "
		 "resource, decision, reason, request_digest, outcome, prev_hash, hash FROM audit "
		 "WHERE %s AND %s ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
		 resource ? "resource = ?1" : "1", since ? "time >= ?2" : "1");
	rc = sqlite3_prepare_v2(store_read_db(s), sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		static const char *const names[] = {
			"seq",	     "time",	  "request_id",	    "principal",
			"token_id",  "interface", "action",	    "resource",
			"decision",  "reason",	  "request_digest", "outcome",
			"prev_hash", "hash"
		};
		sqlite3_bind_text(st, 1, resource, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, since, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, limit);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			json_t *o = json_object();
			json_object_set_new(o, "seq", json_integer(sqlite3_column_int64(st, 0)));
			for (int i = 1; i < (int)ELEMENTSOF(names); i++)
				json_object_set_new(o, names[i],
						    col(st, i) ? json_string(col(st, i))
							       : json_null());
			json_array_append_new(arr, o);
		}
	}
	sqlite3_finalize(st);
	store_read_unlock(s);
	if (rc != SQLITE_DONE) {
		json_decref(arr);
		return bbx_error_set(err, -EIO, BBX_INTERNAL, "state database: audit query: %s",
				     sqlite3_errstr(rc));
	}
	*ret = arr;
	return 0;
}
