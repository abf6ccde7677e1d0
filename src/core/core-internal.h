/* SPDX-License-Identifier: MIT */
/* The Core's private state, shared by the core modules only. */
#pragma once

#include <pthread.h>
#include <sodium.h>

#include "core.h"
#include "token.h"

typedef struct AuditQueue AuditQueue;
typedef struct TokenCache TokenCache;

struct Core {
	char *state_dir;
	char *repo_path;
	char *production_branch;
	int64_t agent_token_max_ttl;
	uint64_t hook_timeout_sec;
	UidRange uid_range;
	size_t max_previews;
	size_t max_previews_per_token;
	PoolReserve pool_reserve;
	Store *store;
	uint8_t token_key[TOKEN_KEY_BYTES];
	uint8_t audit_pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t audit_sk[crypto_sign_SECRETKEYBYTES];
	AuditQueue *audit_queue;
	TokenCache *token_cache;
	struct Environments *environments;
	struct Proposals *proposals; /* proposal.c */
};

int audit_start(Core *c, BbxError *err);
void audit_stop(Core *c);
int token_cache_new(TokenCache **ret);
void token_cache_free(TokenCache *tc);
