/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * A set of background threads a long-lived object starts and must join: each runs one
 * function on its own thread, is joined once done (jobs_reap(), from any thread) or at the
 * end (jobs_reap(.., true) waits for every one), never detached. A job may carry a key: a
 * second job with the key of one still running is refused (-EALREADY).
 *
 * Thread-safety: every function may be called from any thread; jobs_reap(.., true) must not
 * be called from a job of the same set.
 */
#include <pthread.h>
#include <stdbool.h>

typedef struct Job Job;

typedef struct JobSet {
	pthread_mutex_t lock; /* a leaf: nothing is taken under it */
	Job *head;
} JobSet;

void jobs_init(JobSet *set);
/* jobs_reap(set, true), then the set is gone. */
void jobs_done(JobSet *set);

/*
 * Run run(userdata) on a thread of its own. key (copied; NULL: none) refuses the job while
 * another of the same key runs. free_userdata (may be NULL) releases userdata once the
 * thread is joined, or at once when the job is refused or cannot start. Returns 0,
 * -EALREADY, or -errno of pthread_create.
 */
int jobs_start(JobSet *set, const char *key, void (*run)(void *userdata), void *userdata,
	       void (*free_userdata)(void *userdata));

/* Join the jobs that are done; with all, every job, waiting for each. */
void jobs_reap(JobSet *set, bool all);
