/* SPDX-License-Identifier: MIT */
#include "jobs.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct Job {
	Job *next;
	pthread_t thread;
	atomic_bool done;
	char *key;
	void (*run)(void *userdata);
	void *userdata;
	void (*free_userdata)(void *userdata);
};

void jobs_init(JobSet *set)
{
	pthread_mutex_init(&set->lock, NULL);
	set->head = NULL;
}

void jobs_done(JobSet *set)
{
	jobs_reap(set, true);
	pthread_mutex_destroy(&set->lock);
}

static void job_free(Job *j)
{
	if (j->free_userdata)
		j->free_userdata(j->userdata);
	free(j->key);
	free(j);
}

static void *job_main(void *userdata)
{
	Job *j = userdata;
	j->run(j->userdata);
	atomic_store(&j->done, true);
	return NULL;
}

int jobs_start(JobSet *set, const char *key, void (*run)(void *userdata), void *userdata,
	       void (*free_userdata)(void *userdata))
{
	Job *j = calloc(1, sizeof(*j));
	if (!j || (key && !(j->key = strdup(key)))) {
		free(j);
		if (free_userdata)
			free_userdata(userdata);
		return -ENOMEM;
	}
	j->run = run;
	j->userdata = userdata;
	j->free_userdata = free_userdata;
	atomic_init(&j->done, false);

	pthread_mutex_lock(&set->lock);
	for (Job *o = set->head; key && o; o = o->next)
		if (o->key && !strcmp(o->key, key) && !atomic_load(&o->done)) {
			pthread_mutex_unlock(&set->lock);
			job_free(j);
			return -EALREADY;
		}
	int r = -pthread_create(&j->thread, NULL, job_main, j);
	if (r < 0) {
		pthread_mutex_unlock(&set->lock);
		job_free(j);
		return r;
	}
	j->next = set->head;
	set->head = j;
	pthread_mutex_unlock(&set->lock);
	return 0;
}

void jobs_reap(JobSet *set, bool all)
{
	Job *finished = NULL;
	pthread_mutex_lock(&set->lock);
	for (Job **pp = &set->head; *pp;) {
		Job *j = *pp;
		if (all || atomic_load(&j->done)) {
			*pp = j->next;
			j->next = finished;
			finished = j;
		} else
			pp = &j->next;
	}
	pthread_mutex_unlock(&set->lock);
	while (finished) {
		Job *j = finished;
		finished = j->next;
		pthread_join(j->thread, NULL);
		job_free(j);
	}
}
