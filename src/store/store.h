/* SPDX-License-Identifier: MIT */
/*
 * The state store: one SQLite database (STATE/state.db) holding environments, their uid
 * allocations, proposals, tokens, the operation journal and the audit ledger. Opening applies the numbered
 * migrations in one transaction each.
 *
 * Thread-safety: a Store is one connection shared by all threads; every use of the
 * connection happens between store_lock() and store_unlock() (a recursive mutex), and a
 * transaction is begun and ended inside one lock scope. The typed helpers of the store-*.c
 * files take the lock themselves.
 *
 * Durability: WAL with synchronous=FULL, so a committed journal intent or audit record
 * survives power loss; foreign keys on.
 */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"

typedef struct Store Store;

/* Open (creating if needed) STATE/state.db and migrate it to the latest schema. */
int store_open(const char *state_dir, Store **ret, BbxError *err);
/* For tests: open and migrate only up to schema version max_version. */
int store_open_at_version(const char *state_dir, int max_version, Store **ret, BbxError *err);
void store_free(Store *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(Store *, store_free)

int store_schema_version(Store *s);
/* The latest schema version this binary knows. */
int store_latest_version(void);

void store_lock(Store *s);
void store_unlock(Store *s);
/* The raw connection; valid only while the lock is held. */
sqlite3 *store_db(Store *s);

/*
 * A second, read-only connection for queries on hot paths. In WAL mode it reads the last
 * committed state while a writer commits (and fsyncs) on the main connection, so reads
 * never queue behind a group commit. Its own recursive lock; never nest it inside
 * store_lock() the other way round.
 */
void store_read_lock(Store *s);
void store_read_unlock(Store *s);
sqlite3 *store_read_db(Store *s);

/* BEGIN IMMEDIATE / COMMIT / ROLLBACK; call with the lock held. */
int store_begin(Store *s, BbxError *err);
int store_commit(Store *s, BbxError *err);
void store_rollback(Store *s);

/*
 * Observers of environment rows: fn(name) runs after a change to the row of environment name
 * was committed (created, its state or any column changed, deleted), on the thread that made
 * it and outside the store lock. It must be quick and must not block or call back into the
 * observer functions. -ENOSPC past STORE_MAX_OBSERVERS.
 */
#define STORE_MAX_OBSERVERS 8
typedef void (*StoreEnvObserver)(const char *name, void *userdata);
int store_env_observe(Store *s, StoreEnvObserver fn, void *userdata);
void store_env_unobserve(Store *s, StoreEnvObserver fn, void *userdata);
/* Tell the observers (environments.c, after a commit). */
void store_env_changed(Store *s, const char *name);

/* Run SQL with no result rows; lock must be held. */
int store_exec(Store *s, const char *sql, BbxError *err);
/* Map a SQLite result code to -errno and fill err with the database's message. */
int store_error(Store *s, int rc, const char *what, BbxError *err);

/* Seconds since the epoch (UTC); one place so tests can reason about time. */
int64_t store_now(void);
