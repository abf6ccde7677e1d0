/* SPDX-License-Identifier: MIT */
/*
 * NULL-terminated string vectors (argv/envp). Every element and the array are owned by
 * the vector; strv_free() (macro.h) releases them. Errors: NULL / -ENOMEM.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

/* strv_new("a", "b", NULL) */
char **strv_new(const char *first, ...) __attribute__((sentinel));
size_t strv_length(char *const *l);
/* Whether s is one of l's elements; l may be NULL. */
bool strv_contains(char *const *l, const char *s);
/* Append a copy of s; *l may be NULL (a new vector is made). */
int strv_push(char ***l, const char *s);
/* Sort paths or cgroup names deepest first (more '/'s first, then by name), so that removing
 * them in order takes children before their parent. */
void strv_sort_deepest_first(char **l);
int strv_pushf(char ***l, const char *fmt, ...) _printf_(2, 3);
