/* SPDX-License-Identifier: MIT */
/*
 * The operations table: every operation a principal can ask of the daemon, once. A row names
 * the operation (its audit action), the verb it needs, which input names its environment, its
 * input schema and its handler. The edges only translate: REST maps a method and path onto a
 * row (src/api/routes.c), the CLI calls REST, and MCP tools are generated from the same rows.
 * Authorization, invisibility, the audit records and the error kinds live in ops_run(), around
 * the handler, so no edge can do them differently.
 *
 * A handler gets its input already checked against the row's schema and the principal already
 * authorized for the environment the input names; it returns 0 with *out set (a JSON object it
 * owns), or -errno with err set (the kind decides the HTTP status and JSON-RPC code).
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core.h"
#include "error.h"
#include "principal.h"

/* Who asks, through which edge; filled by the edge, read by ops_run() and the handler. */
typedef struct OpCall {
	Core *core;
	const Principal *principal;
	const char *interface; /* "cli", "http", "mcp" */
	const char *request_id;
	const char *request_digest; /* hex SHA-256 of the request as received */
	const char *resource;	    /* for the audit record when no environment is named */
	bool intent_recorded;	    /* set by ops_run() */
	/* Set by a handler that wrote its outcome record itself, in the transaction of its
	 * change (ops_audit_record() fills it in); ops_run() then writes none. */
	bool audited;
	/*
	 * The caller's own cancel: an eventfd the edge owns and writes when its client gave up on
	 * this call (an MCP notifications/cancelled). Borrowed; 0 (an initializer's default) or
	 * negative: the call cannot be cancelled. The long handlers watch it: environment.exec
	 * kills its command, environment.create stops at its next step and removes what it made;
	 * either fails with -ECANCELED (kind conflict, a message saying it was cancelled).
	 */
	int cancel_fd;
	/* The principal was authenticated by an earlier request and kept for work that runs
	 * later (an MCP task): ops_run() asks token_principal_live() before anything else, so a
	 * token revoked or expired since acts no more (refused and audited as a denial). */
	bool principal_kept;
} OpCall;

typedef int (*OpHandler)(OpCall *call, json_t *in, json_t **out, BbxError *err);

typedef enum OpFlags {
	OP_INTENT = 1 << 0,	    /* acts outside the database: its intent is recorded first */
	OP_ROOT_ONLY = 1 << 1,	    /* only the local administrator */
	OP_ENV_NEW = 1 << 2,	    /* the environment it names need not exist (create) */
	OP_ENV_PRODUCTION = 1 << 3, /* acts on production, whatever the input says (deploy) */
	OP_READ_ONLY = 1 << 4,	    /* changes nothing (an MCP readOnlyHint) */
	OP_DESTRUCTIVE = 1 << 5,    /* removes or ends something (an MCP destructiveHint) */
} OpFlags;

typedef struct Op {
	const char *name;	  /* "environment.create": also the audit action */
	uint32_t verb;		  /* required Verb bit; 0: any authenticated principal */
	const char *env_arg;	  /* the input key naming the environment, or NULL */
	unsigned flags;		  /* OpFlags */
	unsigned success_status;  /* the HTTP status of a success (200, 201) */
	const char *summary;	  /* one line, for help and tool descriptions */
	const char *input_schema; /* JSON Schema (the subset ops_check_input() knows) */
	OpHandler handler;
} Op;

extern const Op ops_table[];
extern const size_t ops_n;

const Op *ops_find(const char *name);

/* The environment op acts on for input in: production, in[env_arg] or NULL. */
const char *ops_environment(Core *c, const Op *op, json_t *in);

/*
 * Check in against op's schema: an object with only the declared properties, each of its
 * declared type (string, integer with minimum/maximum, boolean, array of strings), the
 * required ones present. Errors name the field. -EINVAL (BBX_INVALID).
 */
int ops_check_input(const Op *op, json_t *in, BbxError *err);

/*
 * May principal p do op on env? An environment that does not exist is answered exactly like
 * one out of scope (BBX_NOT_FOUND, "environment 'X' not found"), unless op creates it.
 * Returns 0 or -errno with err set; *ret_reason (optional) gets the reason for the audit
 * record only (never shown to the caller).
 */
int ops_authorize(Core *c, const Principal *p, const Op *op, const char *env,
		  const char **ret_reason, BbxError *err);

/*
 * Run op for call: check the input, authorize, record the intent (OP_INTENT), run the handler,
 * record the outcome (its HTTP status) or the denial. Nothing runs when a record cannot be
 * written. Returns the handler's result.
 */
int ops_run(OpCall *call, const Op *op, json_t *in, json_t **out, BbxError *err);

/* The outcome record of op for call, for a handler that commits it with its change. */
struct AuditRecord;
void ops_audit_record(const OpCall *call, const Op *op, const char *resource, const char *outcome,
		      struct AuditRecord *ret);

/* A JSON string of data, invalid UTF-8 and NULs replaced by U+FFFD (command output, logs). */
json_t *ops_json_string_lossy(const char *data, size_t n);
