/* SPDX-License-Identifier: MIT */
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

int parse_uint64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
			return -ERANGE;
	}
	*ret = v;
	return 0;
}

int parse_uint32(const char *s, uint32_t *ret)
{
	uint64_t v;
	int r = parse_uint64(s, &v);
	if (r < 0)
		return r;
	if (v > UINT32_MAX)
		return -ERANGE;
	*ret = (uint32_t)v;
	return 0;
}

int parse_int64(const char *s, int64_t *ret)
{
	uint64_t v;
	bool neg = false;
	int r;

	if (s && *s == '-') {
		neg = true;
		s++;
	}
	r = parse_uint64(s, &v);
	if (r < 0)
		return r;
	if (neg) {
		if (v > (uint64_t)INT64_MAX + 1)
			return -ERANGE;
		*ret = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if (v > INT64_MAX)
			return -ERANGE;
		*ret = (int64_t)v;
	}
	return 0;
}

int parse_size(const char *s, uint64_t *ret_bytes)
{
	char digits[32];
	size_t n = 0;
	uint64_t v, mul = 1;

	if (!s)
		return -EINVAL;
	while (s[n] >= '0' && s[n] <= '9')
		n++;
	if (n == 0 || n >= sizeof(digits))
		return n == 0 ? -EINVAL : -ERANGE;
	memcpy(digits, s, n);
	digits[n] = '\0';
	int r = parse_uint64(digits, &v);
	if (r < 0)
		return r;

	const char *u = s + n;
	switch (*u) {
	case '\0': break;
	case 'K':
	case 'k':
		mul = 1ULL << 10;
		u++;
		break;
	case 'M':
	case 'm':
		mul = 1ULL << 20;
		u++;
		break;
	case 'G':
	case 'g':
		mul = 1ULL << 30;
		u++;
		break;
	case 'T':
	case 't':
		mul = 1ULL << 40;
		u++;
		break;
	case 'B': break;
	default: return -EINVAL;
	}
	if (mul > 1 && *u == 'i')
		u++;
	if (*u == 'B')
		u++;
	if (*u)
		return -EINVAL;
	if (__builtin_mul_overflow(v, mul, &v))
		return -ERANGE;
	*ret_bytes = v;
	return 0;
}

int parse_duration(const char *s, uint64_t *ret_seconds)
{
	uint64_t total = 0;
	const char *p = s;
	char last_unit = 0;
	static const char order[] = "wdhms";

	if (!s || !*s)
		return -EINVAL;
	while (*p) {
		uint64_t v = 0, mul;
		const char *start = p;
		while (*p >= '0' && *p <= '9') {
			if (__builtin_mul_overflow(v, 10, &v) ||
			    __builtin_add_overflow(v, (uint64_t)(*p - '0'), &v))
				return -ERANGE;
			p++;
		}
		if (p == start)
			return -EINVAL;
		switch (*p) {
		case '\0':
			if (start != s)
				return -EINVAL; /* "1h30" is ambiguous */
			mul = 1;
			break;
		case 'w': mul = 7 * 86400; break;
		case 'd': mul = 86400; break;
		case 'h': mul = 3600; break;
		case 'm': mul = 60; break;
		case 's': mul = 1; break;
		default: return -EINVAL;
		}
		if (*p) {
			/* units must be strictly decreasing: "1h30m" yes, "30m1h" or "1h1h" no */
			if (last_unit && strchr(order, *p) <= strchr(order, last_unit))
				return -EINVAL;
			last_unit = *p;
			p++;
		}
		if (__builtin_mul_overflow(v, mul, &v) || __builtin_add_overflow(total, v, &total))
			return -ERANGE;
	}
	*ret_seconds = total;
	return 0;
}

int parse_cpu(const char *s, uint32_t *ret_millicpu)
{
	uint64_t whole = 0, frac = 0;
	int fdigits = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	while (*p >= '0' && *p <= '9') {
		whole = whole * 10 + (uint64_t)(*p - '0');
		if (whole > 4096)
			return -ERANGE;
		p++;
	}
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		while (*p >= '0' && *p <= '9') {
			if (++fdigits > 3)
				return -EINVAL;
			frac = frac * 10 + (uint64_t)(*p - '0');
			p++;
		}
	}
	if (*p)
		return -EINVAL;
	while (fdigits++ < 3)
		frac *= 10;
	uint64_t m = whole * 1000 + frac;
	if (m == 0)
		return -ERANGE;
	*ret_millicpu = (uint32_t)m;
	return 0;
}

const char *format_size(uint64_t bytes, char *buf, size_t size)
{
	static const char units[] = "BKMGTP";
	double v = (double)bytes;
	int i = 0;

	while (v >= 1024 && i < 5) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, size, "%llu", (unsigned long long)bytes);
	else if (v == (double)(uint64_t)v)
		snprintf(buf, size, "%llu%c", (unsigned long long)v, units[i]);
	else
		snprintf(buf, size, "%.1f%c", v, units[i]);
	return buf;
}

const char *format_duration(uint64_t seconds, char *buf, size_t size)
{
	static const struct {
		char unit;
		uint64_t secs;
	} parts[] = { { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 } };
	size_t n = 0;

	if (size == 0)
		return buf;
	buf[0] = '\0';
	if (seconds == 0) {
		snprintf(buf, size, "0s");
		return buf;
	}
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && n < size; i++) {
		if (seconds >= parts[i].secs) {
			int k = snprintf(buf + n, size - n, "%llu%c",
					 (unsigned long long)(seconds / parts[i].secs),
					 parts[i].unit);
			if (k < 0)
				break;
			n += (size_t)k;
			seconds %= parts[i].secs;
		}
	}
	return buf;
}

bool name_is_valid(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n == 0 || n > 63)
		return false;
	if (!isalnum((unsigned char)s[0]) || isupper((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		      c == '.'))
			return false;
	}
	return strstr(s, "..") == NULL;
}

bool glob_match(const char *pattern, const char *s)
{
	const char *star = NULL, *back = NULL;

	while (*s) {
		if (*pattern == '*') {
			star = pattern++;
			back = s;
		} else if (*pattern == '?' || *pattern == *s) {
			pattern++;
			s++;
		} else if (star) {
			pattern = star + 1;
			s = ++back;
		} else
			return false;
	}
	while (*pattern == '*')
		pattern++;
	return *pattern == '\0';
}
