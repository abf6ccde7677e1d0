/* SPDX-License-Identifier: MIT */
/*
 * BbxError: an optional out-object that carries a failure's -errno code, a stable
 * machine-readable kind and a human message from the layer that knows what went wrong
 * to the edge (CLI, HTTP, MCP) that reports it. Library code never prints; it fills
 * this in when the caller passed one (NULL is always allowed).
 *
 * Usage:  return bbx_error_set(err, -EINVAL, BBX_INVALID, "%s:%u: unknown key '%s'", ...);
 * The first error set wins, so the innermost, most precise message survives.
 */
#pragma once

#include "macro.h"

/*
 * What kind of failure, for the edge to report: each kind has one name (the "code" of a REST
 * error, stable for scripts), one HTTP status and one JSON-RPC error code, in the table in
 * error.c. A kind without a row there does not build.
 */
typedef enum BbxErrorKind {
	BBX_INTERNAL = 0,    /* a bug or an unexpected system failure: 500 */
	BBX_INVALID,	     /* the caller's input is wrong: 400 */
	BBX_NOT_FOUND,	     /* no such thing (or not visible to the caller): 404 */
	BBX_CONFLICT,	     /* not in a state that allows it (busy, exists, not ready): 409 */
	BBX_FORBIDDEN,	     /* authenticated, but may not: 403 */
	BBX_UNAUTHORIZED,    /* no valid credentials: 401 */
	BBX_UNAVAILABLE,     /* a part it needs is not there or not running: 503 */
	BBX_TOO_LARGE,	     /* over a size limit: 413 */
	BBX_FAILED,	     /* the environment's own code or step failed (hook, health): 422 */
	BBX_SANITIZE_FAILED, /* a sanitize step failed: the preview was removed: 422 */
	BBX_SETUP,	     /* a sandbox could not be set up: 500 */
	BBX_CANNOT_EXECUTE,  /* the command exists but cannot run (exit 126): 400 */
	BBX_LAYOUT,	     /* the on-disk layout is not what this version knows: 500 */
	BBX_LIMIT_REACHED,   /* a cap (previews per token, in total) is reached: 429 */
	BBX_UNSUPPORTED, /* this host or driver cannot do it (a quota on reflink, old Landlock): 501 */
	BBX_AUDIT_UNAVAILABLE, /* the audit record could not be written, so nothing was done: 500 */
	_BBX_KIND_MAX,
} BbxErrorKind;

typedef struct BbxError {
	int code; /* negative errno, 0 when unset */
	BbxErrorKind kind;
	char message[1024];
} BbxError;

#define BBX_ERROR_INIT                                                                             \
	{                                                                                          \
		0, BBX_INTERNAL, ""                                                                \
	}

/* Record the error if err is non-NULL and still unset; always returns code (< 0). */
int bbx_error_set(BbxError *err, int code, BbxErrorKind kind, const char *fmt, ...) _printf_(4, 5);
/* Like bbx_error_set() but replaces an earlier error. */
int bbx_error_reset(BbxError *err, int code, BbxErrorKind kind, const char *fmt, ...)
	_printf_(4, 5);
/* Prefix the existing message ("context: message"); no-op when err is NULL or unset. */
void bbx_error_prefix(BbxError *err, const char *fmt, ...) _printf_(2, 3);
static inline int bbx_error_isset(const BbxError *err)
{
	return err && err->code < 0;
}
/* The message, or strerror(-code) when no message was set. */
const char *bbx_error_message(const BbxError *err, int code);

/* The kind of a failure: err's when set, else one guessed from the errno alone. */
BbxErrorKind bbx_error_kind(const BbxError *err, int code);
/* "not_found", ...; HTTP status; JSON-RPC error code (-32602 invalid params, -32603 internal,
 * -32000..-32099 for the rest). */
const char *bbx_error_kind_name(BbxErrorKind k);
unsigned bbx_error_kind_http_status(BbxErrorKind k);
int bbx_error_kind_jsonrpc_code(BbxErrorKind k);
