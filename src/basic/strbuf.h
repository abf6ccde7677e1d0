/* SPDX-License-Identifier: MIT */
/*
 * StrBuf: a growable, always NUL-terminated byte string.
 *
 * Ownership: the StrBuf owns buf; strbuf_detach() hands it to the caller.
 * Errors: appends return 0 or -ENOMEM (-EOVERFLOW on size overflow); on failure the
 * contents are unchanged. Not thread-safe.
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>

#include "macro.h"

typedef struct StrBuf {
	char *buf;    /* NULL until the first append; strbuf_str() never returns NULL */
	size_t len;   /* bytes in use, excluding the terminating NUL */
	size_t alloc; /* bytes allocated */
} StrBuf;

#define STRBUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

int strbuf_grow(StrBuf *sb, size_t extra);
int strbuf_append(StrBuf *sb, const void *data, size_t n);
int strbuf_puts(StrBuf *sb, const char *s);
int strbuf_putc(StrBuf *sb, char c);
int strbuf_appendf(StrBuf *sb, const char *fmt, ...) _printf_(2, 3);
int strbuf_vappendf(StrBuf *sb, const char *fmt, va_list ap) _printf_(2, 0);
/* Append s with JSON string escaping (without the surrounding quotes). */
int strbuf_put_json_escaped(StrBuf *sb, const char *s);
void strbuf_reset(StrBuf *sb);
const char *strbuf_str(const StrBuf *sb);
/* Return the buffer (never NULL: "" when empty, or NULL on -ENOMEM) and reset sb. */
char *strbuf_detach(StrBuf *sb);
void strbuf_done(StrBuf *sb);

static inline void strbuf_donep(StrBuf *sb)
{
	strbuf_done(sb);
}
#define _cleanup_strbuf_ _cleanup_(strbuf_donep)
