/* SPDX-License-Identifier: MIT */
/*
 * BbxError: an optional out-object that carries a failure's -errno code, a stable
 * machine-readable kind and a human message from the layer that knows what went wrong
 * to the edge (CLI, HTTP, MCP) that reports it. Library code never prints; it fills
 * this in when the caller passed one (NULL is always allowed).
 *
 * Usage:  return bbx_error_set(err, -EINVAL, "bad_request", "%s:%u: unknown key '%s'", ...);
 * The first error set wins, so the innermost, most precise message survives.
 */
#pragma once

#include "macro.h"

typedef struct BbxError {
	int code;		/* negative errno, 0 when unset */
	char kind[48];		/* e.g. "not_found", "invalid", "conflict", "internal" */
	char message[1024];
} BbxError;

#define BBX_ERROR_INIT { 0, "", "" }

/* Record the error if err is non-NULL and still unset; always returns code (< 0). */
int bbx_error_set(BbxError *err, int code, const char *kind, const char *fmt, ...) _printf_(4, 5);
/* Like bbx_error_set() but replaces an earlier error. */
int bbx_error_reset(BbxError *err, int code, const char *kind, const char *fmt, ...) _printf_(4, 5);
/* Prefix the existing message ("context: message"); no-op when err is NULL or unset. */
void bbx_error_prefix(BbxError *err, const char *fmt, ...) _printf_(2, 3);
static inline int bbx_error_isset(const BbxError *err)
{
	return err && err->code < 0;
}
/* The message, or strerror(-code) when no message was set. */
const char *bbx_error_message(const BbxError *err, int code);
