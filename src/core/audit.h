/* SPDX-License-Identifier: MIT */
/*
 * The audit ledger: one record per request on every interface, allowed, denied or
 * failed. Each record's hash covers its fields and the previous record's hash, so any
 * rewrite, deletion or reordering breaks the chain.
 *
 * audit_append() is durable when it returns 0; if it fails the caller must fail the
 * request. audit_append_locked() is the same inside a store transaction the caller
 * holds, so a state change and its record commit together.
 * Thread-safe.
 */
#pragma once

#include <stdint.h>

#include "core.h"
#include "principal.h"

typedef struct AuditRecord {
	const char *request_id;
	const Principal *principal;
	const char *interface;	/* "cli", "http", "mcp" */
	const char *action;	/* e.g. "environment.get" */
	const char *resource;	/* e.g. "environment:pr-1", may be NULL */
	const char *decision;	/* "allow", "deny" */
	const char *reason;	/* why denied or failed, may be NULL */
	const char *request_digest; /* hex SHA-256 of method, path and body */
	const char *outcome;	/* e.g. "200", "404" */
} AuditRecord;

int audit_init(Core *c, BbxError *err);
int audit_append(Core *c, const AuditRecord *rec, int64_t *ret_seq, BbxError *err);
/* The store lock must be held and a transaction open. */
int audit_append_locked(Core *c, const AuditRecord *rec, int64_t *ret_seq, BbxError *err);
