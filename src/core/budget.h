/* SPDX-License-Identifier: MIT */
/*
 * Budgets: what a preview may use over its whole life, in four dimensions named like the
 * config keys under environments.preview.budget: cpu_seconds (CPU time of everything that ran
 * in its cgroup), memory (the most bytes its cgroup held at once, page cache included), disk
 * (bytes its volume holds beyond the clone it started as) and wall_time (since creation).
 *
 * A preview's budget is fixed when it is created: production's policy (the preview's config
 * after config_apply_production_policy) narrowed by the creating token's budget, if it has
 * one; a token's budget can only narrow. It is stored with what was used, so a restarted
 * daemon goes on from there.
 *
 * The meter (a thread of the daemon) samples every preview every BUDGET_SAMPLE_SEC seconds.
 * At 80% of a dimension it records one audit event (environment.budget_warning); at 100% it
 * records environment.budget_exhausted, kills what runs in the preview and stops it, with the
 * reason as its error. Its data stays until its TTL; it cannot be started again.
 *
 * The pure functions (arithmetic, narrowing, JSON) have no side effects. The rest use the
 * Core's store and are thread-safe. JSON returned through ret_* is owned by the caller.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "core.h"
#include "error.h"

typedef enum BudgetDimension {
	BUDGET_CPU_SECONDS,
	BUDGET_MEMORY,
	BUDGET_DISK,
	BUDGET_WALL_TIME,
	_BUDGET_DIMENSION_MAX,
} BudgetDimension;

#define BUDGET_ALL ((1u << _BUDGET_DIMENSION_MAX) - 1)
#define BUDGET_WARN_PERCENT 80
#define BUDGET_SAMPLE_SEC 1

/* "cpu_seconds", "memory", "disk", "wall_time"; budget_dimension_from_string: -1 if unknown. */
const char *budget_dimension_to_string(BudgetDimension d);
int budget_dimension_from_string(const char *s);

/* Limits: cpu_seconds and wall_time in seconds, memory and disk in bytes. */
typedef struct Budget {
	uint64_t limit[_BUDGET_DIMENSION_MAX];
	unsigned set; /* bit (1 << dimension) for each dimension that has a limit */
} Budget;

/* What was used: cpu in microseconds, memory and disk in bytes, wall time in seconds. */
typedef struct BudgetUse {
	uint64_t used[_BUDGET_DIMENSION_MAX];
} BudgetUse;

/* Every dimension of a config's environments.preview.budget. */
void budget_from_config(const ConfigBudget *cb, Budget *ret);
/* Lower each of b's limits to by's where by has a lower one (or b none); returns the bits
 * of the dimensions by narrowed. */
unsigned budget_narrow(Budget *b, const Budget *by);
/* -EPERM ("forbidden") naming the first dimension where child allows more than parent. */
int budget_check_within(const Budget *child, const Budget *parent, BbxError *err);

/* Per cent of the limit used, rounded down (a limit of 0 is used up at once). */
unsigned budget_percent(const Budget *b, const BudgetUse *u, BudgetDimension d);
/* Dimensions (bits) at BUDGET_WARN_PERCENT or more, and at 100% or more. */
unsigned budget_warning_dimensions(const Budget *b, const BudgetUse *u);
unsigned budget_exhausted_dimensions(const Budget *b, const BudgetUse *u);
/* "cpu_seconds 61.2/60", "memory 1.5G/1G", "wall_time 2h1m/2h" into buf. */
const char *budget_describe(const Budget *b, const BudgetUse *u, BudgetDimension d, char *buf,
			    size_t size);

/* {"cpu_seconds": 60, ...}: the limits that are set, in seconds and bytes. */
json_t *budget_limits_to_json(const Budget *b);
/* The inverse, strict: an object of known keys with integers >= 1. -EINVAL ("invalid") with
 * what is wrong, prefixed by what (e.g. "budget"). */
int budget_limits_from_json(json_t *j, const char *what, Budget *ret, BbxError *err);
/* {"cpu_seconds": {"limit", "used", "left", "percent"}, ...} for every dimension set. */
json_t *budget_use_to_json(const Budget *b, const BudgetUse *u);

/*
 * Fix the budget of preview env at its creation: policy narrowed by the budget of token_id
 * (NULL: none, e.g. root). The environment's row must exist.
 */
int budget_assign(Core *c, const char *env, const ConfigBudget *policy, const char *token_id,
		  BbxError *err);
/*
 * The budget object of `env budget` and `env info`: limits, use, what is left, per cent,
 * where the limits came from, the warnings recorded and why it was stopped. -ENOENT
 * ("not_found") for an environment that has no budget (production).
 */
int budget_info(Core *c, const char *env, json_t **ret, BbxError *err);
/* -EPERM ("conflict") with the reason when env used up its budget: it must not start again. */
int budget_refuse_start(Core *c, const char *env, BbxError *err);

typedef struct BudgetMeter BudgetMeter;
/* Start the meter thread; budget_meter_stop() joins it (and what it started). NULL-safe. */
int budget_meter_start(Core *c, BudgetMeter **ret);
void budget_meter_stop(BudgetMeter *m);
