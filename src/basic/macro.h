/* SPDX-License-Identifier: MIT */
/*
 * Small language helpers used everywhere: scope-bound cleanup, ownership transfer,
 * array sizes and attribute shorthands. Header-only, libc only.
 */
#pragma once

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _unused_ __attribute__((unused))
#define _noreturn_ __attribute__((noreturn))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

/* Hand ownership out of a cleanup scope: returns the value and clears the variable. */
#define TAKE_GENERIC(var, type, nullvalue)                                                         \
	({                                                                                         \
		type *_pvar_ = &(var);                                                             \
		type _var_ = *_pvar_;                                                              \
		*_pvar_ = (nullvalue);                                                             \
		_var_;                                                                             \
	})
#define TAKE_PTR(p) TAKE_GENERIC(p, __typeof__(p), NULL)
#define TAKE_FD(fd) TAKE_GENERIC(fd, int, -EBADF)

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

/* Close an fd if valid, keep errno intact, return -EBADF for easy reassignment. */
static inline int safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	return -EBADF;
}

static inline void closep(int *fd)
{
	safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

static inline void *mfree(void *p)
{
	free(p);
	return NULL;
}

/* Define a NULL-tolerant "xxx_freep(Type **)" for a "xxx_free(Type *)" destructor. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
	static inline void func##p(type *p)                                                        \
	{                                                                                          \
		if (*p)                                                                            \
			func(*p);                                                                  \
	}

static inline void strv_free(char **l)
{
	if (!l)
		return;
	for (char **s = l; *s; s++)
		free(*s);
	free(l);
}
DEFINE_TRIVIAL_CLEANUP_FUNC(char **, strv_free)
#define _cleanup_strv_free_ _cleanup_(strv_freep)

/* Retry a syscall-like expression while it fails with EINTR. */
#define RETRY_EINTR(expr)                                                                          \
	({                                                                                         \
		__typeof__(expr) _r_;                                                              \
		do                                                                                 \
			_r_ = (expr);                                                              \
		while (_r_ < 0 && errno == EINTR);                                                 \
		_r_;                                                                               \
	})

/* -errno of the last failed libc call, never 0 (so it is always a failure). */
static inline int negative_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}
