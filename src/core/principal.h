/* SPDX-License-Identifier: MIT */
/*
 * Who is asking: the principal a request was authenticated as, and the verbs of the
 * access model (DESIGN.md section 7). Plain data, no side effects.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

typedef enum Verb {
	VERB_ENV_READ = 1u << 0,
	VERB_ENV_CREATE = 1u << 1,
	VERB_ENV_EXEC = 1u << 2,
	VERB_ENV_WRITE = 1u << 3,
	VERB_ENV_DESTROY = 1u << 4,
	VERB_PROPOSAL_SUBMIT = 1u << 5,
	VERB_PROPOSAL_REVIEW = 1u << 6,
	VERB_PROPOSAL_MERGE = 1u << 7,
	VERB_AUDIT_READ = 1u << 8,
	VERB_TOKEN_ADMIN = 1u << 9,
	VERB_ALL = (1u << 10) - 1,
} Verb;

typedef enum PrincipalKind {
	PRINCIPAL_ANONYMOUS = 0,
	PRINCIPAL_ROOT, /* uid 0 on the daemon's unix socket with no token: the bootstrap admin */
	PRINCIPAL_HUMAN,
	PRINCIPAL_AGENT,
} PrincipalKind;

#define PRINCIPAL_MAX_SCOPES 32

typedef struct Principal {
	PrincipalKind kind;
	char token_id[32]; /* "" for root and anonymous */
	char name[64];
	uint32_t verbs; /* Verb bits */
	char *scopes[PRINCIPAL_MAX_SCOPES +
		     1];    /* environment names or globs, NULL-terminated; owned */
	int64_t expires_at; /* 0 = never */
} Principal;

void principal_done(Principal *p);
/* A deep copy of src (its scopes duplicated) for work that outlives the request; -ENOMEM.
 * Whoever acts on a kept copy later asks token_principal_live() first. */
int principal_copy(Principal *dst, const Principal *src);
const char *principal_kind_to_string(PrincipalKind k);
/* "env:read" <-> VERB_ENV_READ; returns 0 for an unknown name. */
uint32_t verb_from_string(const char *s);
const char *verb_to_string(uint32_t verb);
/* "env:read,env:exec" -> bits; -EINVAL and *ret_bad points at the unknown word. */
int verbs_parse(const char *list, uint32_t *ret, const char **ret_bad);
/* Comma-separated names of the bits, caller frees. */
char *verbs_format(uint32_t verbs);
