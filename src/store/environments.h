/* SPDX-License-Identifier: MIT */
/*
 * Environment rows: what the daemon knows about each environment across restarts.
 * EnvRecord strings are owned by the record (env_record_done()). Each call takes the store
 * lock; the _locked variants expect the caller to hold it inside a transaction.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "uids.h"

/* Where an environment is in its life. Stored by name (env_state_to_string). */
typedef enum EnvState {
	ENV_CREATING, /* being made; nobody has seen it ready */
	ENV_STARTING, /* its processes are coming back (after a daemon restart) */
	ENV_READY,
	ENV_STOPPED, /* processes ended, data kept */
	ENV_FAILED,  /* a deploy or start failed; error says why */
	ENV_DESTROYING,
	_ENV_STATE_MAX,
	_ENV_STATE_INVALID = -1,
} EnvState;

const char *env_state_to_string(EnvState s);
/* _ENV_STATE_INVALID for a name that is none of them. */
EnvState env_state_from_string(const char *s);

typedef struct EnvRecord {
	char *name;
	char *kind; /* "production" or "preview" */
	char *branch;
	char *commit_id;
	char *parent; /* NULL for production */
	EnvState state;
	char *volume;
	char *config_json;  /* the normalized config it was built from */
	char *secrets_json; /* {"service": "password", ...}: never returned by the API */
	char *error;
	int64_t created_at;
	int64_t updated_at;
	int64_t expires_at; /* 0 = never */
	uint32_t uid; /* services run as uid, applications as uid + 1 (gids equal); 0: none yet */
	uint32_t volume_uid; /* the pair its volume's files are stored as: its own, or for a
				 * preview its parent's (a snapshot keeps its owners) */
	char *token_id;	     /* the token that created it; NULL for production, the local
				 * administrator and rows from before tokens were recorded */
} EnvRecord;

void env_record_done(EnvRecord *r);
void env_records_free(EnvRecord *v, size_t n);

/* Insert r with a pair of uids of its own from range, in one transaction; r->uid and
 * r->volume_uid are written back (volume_uid: the parent row's when r->parent is set, else
 * uid). -EEXIST when the name exists, -ENOSPC when the range is used up, -ENOENT when the
 * parent has no row. */
int env_record_insert(Store *s, EnvRecord *r, const UidRange *range, BbxError *err);
/* Give a row from before per-environment uids a pair from range; *ret_uid is its pair's
 * first uid (the one it had, if it had one). */
int env_record_assign_uid(Store *s, const char *name, const UidRange *range, uint32_t *ret_uid,
			  BbxError *err);
/* How many previews have a row (any state: a stopped or failed one still holds its volume),
 * in all and created by token_id (0 when token_id is NULL). */
int env_record_count_previews(Store *s, const char *token_id, size_t *ret_total, size_t *ret_token,
			      BbxError *err);
/* 1 when a row exists, 0 when not, -errno; on the read connection (hot path). */
int env_record_exists(Store *s, const char *name);
/* -ENOENT (kind "not_found") when absent. */
int env_record_get(Store *s, const char *name, EnvRecord *ret, BbxError *err);
int env_record_list(Store *s, EnvRecord **ret, size_t *ret_n, BbxError *err);
/* Update every mutable column from r (matched by name). */
int env_record_update(Store *s, const EnvRecord *r, BbxError *err);
int env_record_set_state(Store *s, const char *name, EnvState state, const char *error,
			 BbxError *err);
/* Delete the row and, in the same transaction, release the uid pairs nothing holds any
 * more (see uids.h: only those whose files a teardown removed). */
int env_record_delete(Store *s, const char *name, BbxError *err);
