/* SPDX-License-Identifier: MIT */
/* Clocks and deadlines. */
#pragma once

#include <stdint.h>
#include <time.h>

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t now_monotonic_ms(void);
/* The CLOCK_REALTIME instant ms from now, as pthread_cond_timedwait() and
 * pthread_mutex_timedlock() take it. */
struct timespec realtime_after_ms(unsigned ms);
