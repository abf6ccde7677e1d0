/* SPDX-License-Identifier: MIT */
/*
 * Logging for the edges (CLI, daemon main loop, API). Library layers below core do not
 * log at error level; they return errors. Thread-safe (one write(2) per line).
 */
#pragma once

#include "macro.h"

typedef enum LogLevel {
	LOG_LEVEL_ERROR = 3,
	LOG_LEVEL_WARNING = 4,
	LOG_LEVEL_NOTICE = 5,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
} LogLevel;

void log_set_level(LogLevel level);
LogLevel log_get_level(void);
/* Prefix lines with a timestamp (daemon) or not (CLI, the default). */
void log_set_timestamps(int on);
void log_set_ident(const char *ident);
/* Returns -abs(error) when error != 0 so callers can "return log_error_errno(r, ...)". */
int log_full(LogLevel level, int error, const char *fmt, ...) _printf_(3, 4);

#define log_error(...) log_full(LOG_LEVEL_ERROR, 0, __VA_ARGS__)
#define log_warning(...) log_full(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_notice(...) log_full(LOG_LEVEL_NOTICE, 0, __VA_ARGS__)
#define log_info(...) log_full(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_full(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)
#define log_error_errno(e, ...) log_full(LOG_LEVEL_ERROR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_full(LOG_LEVEL_WARNING, (e), __VA_ARGS__)
