/* SPDX-License-Identifier: MIT */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void error_fill(BbxError *err, int code, const char *kind, const char *fmt, va_list ap)
	_printf_(4, 0);
static void error_fill(BbxError *err, int code, const char *kind, const char *fmt, va_list ap)
{
	err->code = code < 0 ? code : -EIO;
	snprintf(err->kind, sizeof(err->kind), "%s", kind ? kind : "internal");
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
}

int bbx_error_set(BbxError *err, int code, const char *kind, const char *fmt, ...)
{
	if (err && err->code == 0) {
		va_list ap;
		va_start(ap, fmt);
		error_fill(err, code, kind, fmt, ap);
		va_end(ap);
	}
	return code < 0 ? code : -EIO;
}

int bbx_error_reset(BbxError *err, int code, const char *kind, const char *fmt, ...)
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
