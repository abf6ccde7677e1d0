/* SPDX-License-Identifier: MIT */
#include "strbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int strbuf_grow(StrBuf *sb, size_t extra)
{
	size_t need;

	if (__builtin_add_overflow(sb->len, extra, &need) || __builtin_add_overflow(need, 1, &need))
		return -EOVERFLOW;
	if (need <= sb->alloc)
		return 0;

	size_t n = sb->alloc ? sb->alloc : 64;
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return -EOVERFLOW;
		n *= 2;
	}
	char *p = realloc(sb->buf, n);
	if (!p)
		return -ENOMEM;
	if (!sb->buf)
		p[0] = '\0';
	sb->buf = p;
	sb->alloc = n;
	return 0;
}

int strbuf_append(StrBuf *sb, const void *data, size_t n)
{
	int r = strbuf_grow(sb, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
	return 0;
}

int strbuf_puts(StrBuf *sb, const char *s)
{
	return strbuf_append(sb, s, strlen(s));
}

int strbuf_putc(StrBuf *sb, char c)
{
	return strbuf_append(sb, &c, 1);
}

int strbuf_vappendf(StrBuf *sb, const char *fmt, va_list ap)
{
	va_list aq;
	char small[256];
	int n;

	va_copy(aq, ap);
	n = vsnprintf(small, sizeof(small), fmt, aq);
	va_end(aq);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n < sizeof(small))
		return strbuf_append(sb, small, (size_t)n);

	int r = strbuf_grow(sb, (size_t)n);
	if (r < 0)
		return r;
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	sb->len += (size_t)n;
	return 0;
}

int strbuf_appendf(StrBuf *sb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = strbuf_vappendf(sb, fmt, ap);
	va_end(ap);
	return r;
}

int strbuf_put_json_escaped(StrBuf *sb, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	int r = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p && r >= 0; p++) {
		switch (*p) {
		case '"': r = strbuf_puts(sb, "\\\""); break;
		case '\\': r = strbuf_puts(sb, "\\\\"); break;
		case '\n': r = strbuf_puts(sb, "\\n"); break;
		case '\r': r = strbuf_puts(sb, "\\r"); break;
		case '\t': r = strbuf_puts(sb, "\\t"); break;
		default:
			if (*p < 0x20) {
				char u[6] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15] };
				r = strbuf_append(sb, u, sizeof(u));
			} else
				r = strbuf_putc(sb, (char)*p);
		}
	}
	return r;
}

void strbuf_reset(StrBuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

const char *strbuf_str(const StrBuf *sb)
{
	return sb->buf ? sb->buf : "";
}

char *strbuf_detach(StrBuf *sb)
{
	char *p = sb->buf ? sb->buf : strdup("");
	*sb = (StrBuf)STRBUF_INIT;
	return p;
}

void strbuf_done(StrBuf *sb)
{
	free(sb->buf);
	*sb = (StrBuf)STRBUF_INIT;
}
