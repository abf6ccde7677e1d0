/* SPDX-License-Identifier: MIT */
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
	BbxErrorKind kind;
	const char *name;
	unsigned http_status;
	int jsonrpc_code;
} kinds[] = {
	{ BBX_INTERNAL, "internal", 500, -32603 },
	{ BBX_INVALID, "invalid", 400, -32602 },
	{ BBX_NOT_FOUND, "not_found", 404, -32002 },
	{ BBX_CONFLICT, "conflict", 409, -32010 },
	{ BBX_FORBIDDEN, "forbidden", 403, -32011 },
	{ BBX_UNAUTHORIZED, "unauthorized", 401, -32001 },
	{ BBX_UNAVAILABLE, "unavailable", 503, -32012 },
	{ BBX_TOO_LARGE, "too_large", 413, -32013 },
	{ BBX_FAILED, "failed", 422, -32014 },
	{ BBX_SANITIZE_FAILED, "sanitize_failed", 422, -32015 },
	{ BBX_SETUP, "setup", 500, -32016 },
	{ BBX_CANNOT_EXECUTE, "cannot_execute", 400, -32017 },
	{ BBX_LAYOUT, "layout", 500, -32018 },
	{ BBX_LIMIT_REACHED, "limit_reached", 429, -32019 },
	{ BBX_UNSUPPORTED, "unsupported", 501, -32021 },
	{ BBX_AUDIT_UNAVAILABLE, "audit_unavailable", 500, -32020 },
};
/* Every kind has its row, in enum order. */
_Static_assert(ELEMENTSOF(kinds) == _BBX_KIND_MAX, "a BbxErrorKind without a row in kinds[]");

static unsigned kind_index(BbxErrorKind k)
{
	return (unsigned)k < _BBX_KIND_MAX && kinds[k].kind == k ? (unsigned)k : BBX_INTERNAL;
}

const char *bbx_error_kind_name(BbxErrorKind k)
{
	return kinds[kind_index(k)].name;
}

unsigned bbx_error_kind_http_status(BbxErrorKind k)
{
	return kinds[kind_index(k)].http_status;
}

int bbx_error_kind_jsonrpc_code(BbxErrorKind k)
{
	return kinds[kind_index(k)].jsonrpc_code;
}

BbxErrorKind bbx_error_kind(const BbxError *err, int code)
{
	if (err && err->code < 0)
		return err->kind;
	switch (code) {
	case -ENOENT: return BBX_NOT_FOUND;
	case -EINVAL: return BBX_INVALID;
	case -EEXIST:
	case -EBUSY: return BBX_CONFLICT;
	case -EACCES:
	case -EPERM: return BBX_FORBIDDEN;
	case -E2BIG:
	case -EFBIG: return BBX_TOO_LARGE;
	default: return BBX_INTERNAL;
	}
}

static void error_fill(BbxError *err, int code, BbxErrorKind kind, const char *fmt, va_list ap)
	_printf_(4, 0);
static void error_fill(BbxError *err, int code, BbxErrorKind kind, const char *fmt, va_list ap)
{
	err->code = code < 0 ? code : -EIO;
	err->kind = kinds[kind_index(kind)].kind;
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
}

int bbx_error_set(BbxError *err, int code, BbxErrorKind kind, const char *fmt, ...)
{
	if (err && err->code == 0) {
		va_list ap;
		va_start(ap, fmt);
		error_fill(err, code, kind, fmt, ap);
		va_end(ap);
	}
	return code < 0 ? code : -EIO;
}

int bbx_error_reset(BbxError *err, int code, BbxErrorKind kind, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		va_start(ap, fmt);
		error_fill(err, code, kind, fmt, ap);
		va_end(ap);
	}
	return code < 0 ? code : -EIO;
}

void bbx_error_prefix(BbxError *err, const char *fmt, ...)
{
	char prefix[512], old[sizeof(err->message)];
	va_list ap;

	if (!bbx_error_isset(err))
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->message, sizeof(old));
	size_t n = strlen(prefix);
	if (n + 2 >= sizeof(err->message))
		return;
	memcpy(err->message, prefix, n);
	memcpy(err->message + n, ": ", 2);
	size_t rest = sizeof(err->message) - n - 3;
	size_t m = strnlen(old, rest);
	memcpy(err->message + n + 2, old, m);
	err->message[n + 2 + m] = '\0';
}

const char *bbx_error_message(const BbxError *err, int code)
{
	if (err && err->code < 0 && err->message[0])
		return err->message;
	return strerror(code < 0 ? -code : code);
}
