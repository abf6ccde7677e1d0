/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static LogLevel log_level = LOG_LEVEL_INFO;
static int log_timestamps;
static const char *log_ident = "branchbox";

void log_set_level(LogLevel level)
{
	log_level = level;
}

LogLevel log_get_level(void)
{
	return log_level;
}

void log_set_timestamps(int on)
{
	log_timestamps = on;
}

void log_set_ident(const char *ident)
{
	log_ident = ident;
}

int log_full(LogLevel level, int error, const char *fmt, ...)
{
	int ret = error > 0 ? -error : error;
	int saved = errno;

	if (level > log_level)
		return ret;

	char line[2048];
	size_t n = 0;
	if (log_timestamps) {
		struct timespec ts;
		struct tm tm;
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n += strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
		n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ ", ts.tv_nsec / 1000000);
	}
	if (level <= LOG_LEVEL_WARNING && n < sizeof(line))
		n += (size_t)snprintf(line + n, sizeof(line) - n, "%s: %s", log_ident,
				      level == LOG_LEVEL_ERROR ? "error: " : "warning: ");
	if (n < sizeof(line)) {
		va_list ap;
		errno = error < 0 ? -error : error;
		va_start(ap, fmt);
		int k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		if (k > 0)
			n += (size_t)k;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
	errno = saved;
	return ret;
}
