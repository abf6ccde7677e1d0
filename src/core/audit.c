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
#include "ledger.h"
#include "strbuf.h"

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
static int fields_hash(const char *const f[_LEDGER_FIELD_MAX], char hex[65])
{
	crypto_hash_sha256_state st;
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256_init(&st);
	for (int i = 0; i < _LEDGER_FIELD_MAX; i++)
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
};

/* The store prepares the head and insert statements once: parsing SQL per record was a
 * measurable share of an audited request. */
static int audit_head(Core *c, int64_t *ret_size, char prev[65], BbxError *err)
{
	return ledger_head_locked(core_store(c), ret_size, prev, err);
}

/* Append after the head (*seq, prev), which advance to the new record on success. */
static int append_at(Core *c, const AuditRecord *r, int64_t *seq_io, char prev[65], BbxError *err)
{
	Store *s = core_store(c);
	char hash[65], seq_s[24], time_s[40];
	const Principal *p = r->principal;
	const char *token_id = p && p->token_id[0] ? p->token_id : NULL;
	int64_t seq = *seq_io + 1;
	int ret;

	now_iso(time_s, sizeof(time_s));
	snprintf(seq_s, sizeof(seq_s), "%lld", (long long)seq);

	const char *f[_LEDGER_FIELD_MAX] = {
		[LEDGER_SEQ] = seq_s,
		[LEDGER_TIME] = time_s,
		[LEDGER_REQUEST_ID] = r->request_id,
		[LEDGER_PRINCIPAL] = principal_label(p),
		[LEDGER_TOKEN_ID] = token_id,
		[LEDGER_INTERFACE] = r->interface,
		[LEDGER_ACTION] = r->action,
		[LEDGER_RESOURCE] = r->resource,
		[LEDGER_DECISION] = r->decision,
		[LEDGER_REASON] = r->reason,
		[LEDGER_DIGEST] = r->request_digest,
		[LEDGER_OUTCOME] = r->outcome,
		[LEDGER_PREV] = prev,
	};
	ret = fields_hash(f, hash);
	if (ret < 0)
		return ret;

	ret = ledger_insert_locked(s, seq, f, hash, err);
	if (ret < 0)
		return ret;
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

typedef struct VerifyState {
	const AuditCheckpoint *cp;
	AuditVerifyResult res;
	char prev[65];
	int64_t expect;
	BbxError *err;
} VerifyState;

static int verify_row(int64_t seq, const char *const f[_LEDGER_FIELD_MAX], const char *stored,
		      void *userdata)
{
	VerifyState *v = userdata;
	char hash[65];

	if (seq != v->expect) {
		v->res.bad_seq = v->expect;
		return bbx_error_set(
			v->err, -EBADMSG, BBX_INVALID,
			"seq %lld: expected seq %lld (a record was deleted or reordered)",
			(long long)v->expect, (long long)v->expect);
	}
	if (!f[LEDGER_PREV] || strcmp(f[LEDGER_PREV], v->prev)) {
		v->res.bad_seq = seq;
		return bbx_error_set(v->err, -EBADMSG, BBX_INVALID,
				     "seq %lld: prev_hash does not link to the hash of seq %lld",
				     (long long)seq, (long long)seq - 1);
	}
	if (fields_hash(f, hash) < 0)
		return -ENOMEM;
	if (!stored || strcmp(stored, hash)) {
		v->res.bad_seq = seq;
		return bbx_error_set(v->err, -EBADMSG, BBX_INVALID,
				     "seq %lld: hash does not match the record's contents "
				     "(the record was changed)",
				     (long long)seq);
	}
	if (v->cp && seq == v->cp->size && strcmp(hash, v->cp->head_hash)) {
		v->res.bad_seq = seq;
		return bbx_error_set(
			v->err, -EBADMSG, BBX_INVALID,
			"seq %lld: the log up to here differs from the signed checkpoint "
			"(records up to seq %lld were rewritten)",
			(long long)seq, (long long)seq);
	}
	memcpy(v->prev, hash, sizeof(v->prev));
	v->expect++;
	return 0;
}

int audit_verify_db(const char *db_path, const AuditCheckpoint *cp, AuditVerifyResult *ret,
		    BbxError *err)
{
	VerifyState v = { .cp = cp,
			  .res = { .head_hash = AUDIT_GENESIS_HASH },
			  .prev = AUDIT_GENESIS_HASH,
			  .expect = 1,
			  .err = err };

	int r = ledger_walk_file(db_path, verify_row, &v, err);
	if (r < 0)
		goto out;
	v.res.size = v.expect - 1;
	memcpy(v.res.head_hash, v.prev, sizeof(v.prev));
	if (cp && cp->size > v.res.size) {
		r = bbx_error_set(err, -EBADMSG, BBX_INVALID,
				  "seq %lld: missing; the log has %lld records but the checkpoint "
				  "covers %lld "
				  "(the log was truncated)",
				  (long long)v.res.size + 1, (long long)v.res.size,
				  (long long)cp->size);
		v.res.bad_seq = v.res.size + 1;
		goto out;
	}
	if (cp && cp->size == 0 && strcmp(cp->head_hash, AUDIT_GENESIS_HASH))
		r = bbx_error_set(err, -EBADMSG, BBX_INVALID,
				  "checkpoint: size 0 with a non-genesis head");
out:
	if (ret)
		*ret = v.res;
	return r;
}

/* --- queries ------------------------------------------------------------------------ */

static int query_row(int64_t seq, const char *const f[_LEDGER_FIELD_MAX], const char *hash,
		     void *userdata)
{
	json_t *o = json_object();
	if (!o)
		return -ENOMEM;
	json_object_set_new(o, "seq", json_integer(seq));
	for (int i = LEDGER_TIME; i < _LEDGER_FIELD_MAX; i++)
		json_object_set_new(o, ledger_field_names[i],
				    f[i] ? json_string(f[i]) : json_null());
	json_object_set_new(o, "hash", hash ? json_string(hash) : json_null());
	return json_array_append_new(userdata, o) < 0 ? -ENOMEM : 0;
}

int audit_query(Core *c, const char *resource, const char *since, int64_t limit, json_t **ret,
		BbxError *err)
{
	json_t *arr = json_array();
	if (!arr)
		return -ENOMEM;
	int r = ledger_query(core_store(c), resource, since, limit, query_row, arr, err);
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	*ret = arr;
	return 0;
}
