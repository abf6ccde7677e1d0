/* SPDX-License-Identifier: MIT */
#include "strv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t strv_length(char *const *l)
{
	size_t n = 0;
	while (l && l[n])
		n++;
	return n;
}

bool strv_contains(char *const *l, const char *s)
{
	for (size_t i = 0; l && l[i]; i++)
		if (!strcmp(l[i], s))
			return true;
	return false;
}

int strv_push(char ***l, const char *s)
{
	size_t n = strv_length(*l);
	char *d = strdup(s);
	if (!d)
		return -ENOMEM;
	char **v = realloc(*l, (n + 2) * sizeof(char *));
	if (!v) {
		free(d);
		return -ENOMEM;
	}
	v[n] = d;
	v[n + 1] = NULL;
	*l = v;
	return 0;
}

static size_t levels_of(const char *s)
{
	size_t n = 1;
	for (const char *c = s; *c; c++)
		n += *c == '/';
	return n;
}

static int by_depth_desc(const void *a, const void *b)
{
	const char *sa = *(char *const *)a, *sb = *(char *const *)b;
	size_t la = levels_of(sa), lb = levels_of(sb);
	return la < lb ? 1 : la > lb ? -1 : strcmp(sa, sb);
}

void strv_sort_deepest_first(char **l)
{
	size_t n = strv_length(l);
	if (n > 1)
		qsort(l, n, sizeof(char *), by_depth_desc);
}

int strv_pushf(char ***l, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int k = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (k < 0)
		return -ENOMEM;
	int r = strv_push(l, s);
	free(s);
	return r;
}

char **strv_new(const char *first, ...)
{
	char **l = calloc(1, sizeof(char *));
	va_list ap;

	if (!l)
		return NULL;
	va_start(ap, first);
	for (const char *s = first; s; s = va_arg(ap, const char *))
		if (strv_push(&l, s) < 0) {
			va_end(ap);
			strv_free(l);
			return NULL;
		}
	va_end(ap);
	return l;
}
