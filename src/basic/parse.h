/* SPDX-License-Identifier: MIT */
/*
 * Strict parsers for numbers, sizes, durations and names that come from outside.
 * All return 0 or -EINVAL/-ERANGE and write *ret only on success. Pure, thread-safe.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

/* Decimal unsigned integer, no sign, no spaces, no trailing garbage. */
int parse_uint64(const char *s, uint64_t *ret);
int parse_uint32(const char *s, uint32_t *ret);
int parse_int64(const char *s, int64_t *ret);
/* "512", "64K", "100M", "2G", "1T", with optional "i"/"iB"/"B" suffix; powers of 1024. */
int parse_size(const char *s, uint64_t *ret_bytes);
/* "30s", "15m", "2h", "7d", "1h30m", a bare number is seconds. Result in seconds. */
int parse_duration(const char *s, uint64_t *ret_seconds);
/* "0.5", "1", "2.25": a CPU share with at most 3 decimals, as thousandths (0.5 -> 500). */
int parse_cpu(const char *s, uint32_t *ret_millicpu);
/* Format bytes as "1.5G"-style (powers of 1024) into buf. */
const char *format_size(uint64_t bytes, char *buf, size_t size);
/* Format seconds as "1h30m"-style into buf. */
const char *format_duration(uint64_t seconds, char *buf, size_t size);
/*
 * A name for an environment, volume, service or token: 1..63 chars of [a-z0-9-_.],
 * starting with a letter or digit, no "..". Safe to use as a single path component.
 */
bool name_is_valid(const char *s);
/* fnmatch-style glob with only '*' and '?', no path semantics. */
bool glob_match(const char *pattern, const char *s);
