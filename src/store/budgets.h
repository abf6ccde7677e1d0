/* SPDX-License-Identifier: MIT */
/*
 * A preview's budget row: the limits it was created with (production's policy narrowed by
 * the creating token's) and what it used so far, so metering survives daemon restarts. The
 * row goes with its environment's row (a trigger deletes it). Strings are owned by the
 * record (env_budget_record_done()). Each call takes the store lock.
 */
#pragma once

#include <stdint.h>

#include "store.h"

typedef struct EnvBudgetRecord {
	char *environment;
	/* Limits. */
	uint64_t cpu_seconds;
	uint64_t memory_bytes;
	uint64_t disk_bytes;
	uint64_t wall_time_sec;
	char *source; /* where the limits came from, for people: "production", "token tok_..." */
	/* Use so far. */
	uint64_t cpu_used_usec;
	uint64_t memory_peak_bytes;
	uint64_t disk_base_bytes; /* its volume's exclusive bytes right after the clone */
	uint64_t disk_used_bytes; /* beyond disk_base_bytes */
	uint32_t warned;	  /* bit per dimension whose warning was recorded */
	char *exhausted;    /* why it was stopped ("cpu_seconds 61/60"), NULL while within budget */
	int64_t sampled_at; /* when the use was last measured, 0 = never */
} EnvBudgetRecord;

void env_budget_record_done(EnvBudgetRecord *r);
/* Insert r, or replace the row of the same environment. -ENOENT when no environment row. */
int env_budget_insert(Store *s, const EnvBudgetRecord *r, BbxError *err);
/* -ENOENT (kind "not_found") when the environment has no budget. */
int env_budget_get(Store *s, const char *environment, EnvBudgetRecord *ret, BbxError *err);
/* Write what r says was used (cpu_used_usec, memory_peak_bytes, disk_used_bytes, warned,
 * exhausted, sampled_at) into its environment's row. */
int env_budget_update_use(Store *s, const EnvBudgetRecord *r, BbxError *err);
