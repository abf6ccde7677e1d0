/* SPDX-License-Identifier: MIT */
/* Budget arithmetic: narrowing, thresholds, descriptions and the JSON forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "budget.h"

static Budget policy(void)
{
	ConfigBudget cb = { .cpu_seconds = 60,
			    .memory_bytes = 1ULL << 30,
			    .disk_bytes = 2ULL << 30,
			    .wall_time_sec = 3600 };
	Budget b;
	budget_from_config(&cb, &b);
	return b;
}

static void test_names(void **state)
{
	for (int d = 0; d < _BUDGET_DIMENSION_MAX; d++)
		assert_int_equal(budget_dimension_from_string(budget_dimension_to_string(d)), d);
	assert_string_equal(budget_dimension_to_string(BUDGET_CPU_SECONDS), "cpu_seconds");
	assert_string_equal(budget_dimension_to_string(BUDGET_WALL_TIME), "wall_time");
	assert_int_equal(budget_dimension_from_string("cpu"), -1);
	assert_int_equal(budget_dimension_from_string(NULL), -1);
	assert_null(budget_dimension_to_string(_BUDGET_DIMENSION_MAX));
}

static void test_narrow_only_lowers(void **state)
{
	Budget b = policy();
	assert_int_equal(b.set, BUDGET_ALL);
	assert_int_equal(b.limit[BUDGET_MEMORY], 1ULL << 30);

	/* A token asking for more CPU and less wall time: only the wall time changes. */
	Budget token = { .set = 1u << BUDGET_CPU_SECONDS | 1u << BUDGET_WALL_TIME };
	token.limit[BUDGET_CPU_SECONDS] = 3600;
	token.limit[BUDGET_WALL_TIME] = 60;
	assert_int_equal(budget_narrow(&b, &token), 1u << BUDGET_WALL_TIME);
	assert_int_equal(b.limit[BUDGET_CPU_SECONDS], 60);
	assert_int_equal(b.limit[BUDGET_WALL_TIME], 60);
	assert_int_equal(b.set, BUDGET_ALL);

	/* No token budget: nothing changes. */
	Budget none = { 0 };
	Budget before = b;
	assert_int_equal(budget_narrow(&b, &none), 0);
	assert_memory_equal(&b, &before, sizeof(b));

	/* An empty budget takes what it is narrowed by (a minted token inherits). */
	Budget child = { .set = 1u << BUDGET_DISK };
	child.limit[BUDGET_DISK] = 10;
	assert_int_equal(budget_narrow(&child, &token), token.set);
	assert_int_equal(child.set, token.set | 1u << BUDGET_DISK);
	assert_int_equal(child.limit[BUDGET_DISK], 10);
	assert_int_equal(child.limit[BUDGET_WALL_TIME], 60);
}

static void test_check_within(void **state)
{
	Budget parent = { .set = 1u << BUDGET_WALL_TIME };
	parent.limit[BUDGET_WALL_TIME] = 3600;
	Budget child = { .set = 1u << BUDGET_WALL_TIME | 1u << BUDGET_MEMORY };
	child.limit[BUDGET_WALL_TIME] = 3600;
	child.limit[BUDGET_MEMORY] = 1ULL << 40; /* the parent sets none: not a widening */
	assert_int_equal(budget_check_within(&child, &parent, NULL), 0);

	child.limit[BUDGET_WALL_TIME] = 3601;
	BbxError err = BBX_ERROR_INIT;
	assert_int_equal(budget_check_within(&child, &parent, &err), -EPERM);
	assert_string_equal(bbx_error_kind_name(err.kind), "forbidden");
	assert_non_null(strstr(err.message, "budget.wall_time"));
	assert_non_null(strstr(err.message, "1h"));

	/* Everything within a parent without a budget. */
	Budget none = { 0 };
	assert_int_equal(budget_check_within(&child, &none, NULL), 0);
}

static void test_thresholds(void **state)
{
	Budget b = policy();
	BudgetUse u = { 0 };

	assert_int_equal(budget_warning_dimensions(&b, &u), 0);
	u.used[BUDGET_CPU_SECONDS] = 47999999; /* 79.99% */
	assert_int_equal(budget_percent(&b, &u, BUDGET_CPU_SECONDS), 79);
	assert_int_equal(budget_warning_dimensions(&b, &u), 0);
	u.used[BUDGET_CPU_SECONDS] = 48000000;
	assert_int_equal(budget_percent(&b, &u, BUDGET_CPU_SECONDS), 80);
	assert_int_equal(budget_warning_dimensions(&b, &u), 1u << BUDGET_CPU_SECONDS);
	assert_int_equal(budget_exhausted_dimensions(&b, &u), 0);
	u.used[BUDGET_CPU_SECONDS] = 59999999;
	assert_int_equal(budget_exhausted_dimensions(&b, &u), 0);
	u.used[BUDGET_CPU_SECONDS] = 60000000; /* exactly the limit: used up */
	assert_int_equal(budget_exhausted_dimensions(&b, &u), 1u << BUDGET_CPU_SECONDS);
	u.used[BUDGET_WALL_TIME] = 7200;
	assert_int_equal(budget_percent(&b, &u, BUDGET_WALL_TIME), 200);
	assert_int_equal(budget_exhausted_dimensions(&b, &u),
			 1u << BUDGET_CPU_SECONDS | 1u << BUDGET_WALL_TIME);

	/* No overflow at the edges; a limit of 0 is used up at once. */
	u.used[BUDGET_DISK] = UINT64_MAX;
	assert_true(budget_percent(&b, &u, BUDGET_DISK) >= 100);
	b.limit[BUDGET_MEMORY] = 0;
	u.used[BUDGET_MEMORY] = 0;
	assert_int_equal(budget_percent(&b, &u, BUDGET_MEMORY), 100);
	b.limit[BUDGET_CPU_SECONDS] = UINT64_MAX; /* in microseconds, saturates */
	u.used[BUDGET_CPU_SECONDS] = UINT64_MAX - 1;
	assert_int_equal(budget_percent(&b, &u, BUDGET_CPU_SECONDS), 99);

	/* Unset dimensions never count. */
	Budget partial = { .set = 1u << BUDGET_DISK };
	partial.limit[BUDGET_DISK] = 1;
	BudgetUse big = { .used = { UINT64_MAX, UINT64_MAX, 0, UINT64_MAX } };
	assert_int_equal(budget_exhausted_dimensions(&partial, &big), 0);
}

static void test_describe(void **state)
{
	Budget b = policy();
	BudgetUse u = { .used = { 61234567, 1536ULL << 20, 0, 3661 } };
	char buf[96];
	assert_string_equal(budget_describe(&b, &u, BUDGET_CPU_SECONDS, buf, sizeof(buf)),
			    "cpu_seconds 61.2/60");
	assert_string_equal(budget_describe(&b, &u, BUDGET_MEMORY, buf, sizeof(buf)),
			    "memory 1.5G/1G");
	assert_string_equal(budget_describe(&b, &u, BUDGET_DISK, buf, sizeof(buf)), "disk 0/2G");
	assert_string_equal(budget_describe(&b, &u, BUDGET_WALL_TIME, buf, sizeof(buf)),
			    "wall_time 1h1m1s/1h");
}

static void test_limits_json(void **state)
{
	Budget b = { .set = 1u << BUDGET_CPU_SECONDS | 1u << BUDGET_DISK };
	b.limit[BUDGET_CPU_SECONDS] = 90;
	b.limit[BUDGET_DISK] = 1ULL << 30;
	json_t *j = budget_limits_to_json(&b);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "cpu_seconds")), 90);
	Budget back;
	assert_int_equal(budget_limits_from_json(j, "budget", &back, NULL), 0);
	assert_memory_equal(&back, &b, sizeof(b));
	json_decref(j);

	static const char *const bad[] = {
		"[]",
		"{\"cpu\": 1}",
		"{\"memory\": 0}",
		"{\"memory\": -5}",
		"{\"disk\": \"1G\"}",
		"{\"wall_time\": 1.5}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		BbxError err = BBX_ERROR_INIT;
		json_t *v = json_loads(bad[i], JSON_DECODE_ANY, NULL);
		assert_non_null(v);
		assert_int_equal(budget_limits_from_json(v, "budget", &back, &err), -EINVAL);
		assert_string_equal(bbx_error_kind_name(err.kind), "invalid");
		assert_non_null(strstr(err.message, "budget"));
		json_decref(v);
	}
}

static void test_use_json(void **state)
{
	Budget b = policy();
	BudgetUse u = { .used = { 45500000, 100, 3ULL << 30, 10 } };
	json_t *j = budget_use_to_json(&b, &u);
	assert_non_null(j);
	json_t *cpu = json_object_get(j, "cpu_seconds");
	assert_int_equal(json_integer_value(json_object_get(cpu, "limit")), 60);
	assert_true(json_real_value(json_object_get(cpu, "used")) == 45.5);
	assert_true(json_real_value(json_object_get(cpu, "left")) == 14.5);
	assert_int_equal(json_integer_value(json_object_get(cpu, "percent")), 75);
	assert_string_equal(json_string_value(json_object_get(cpu, "unit")), "seconds");
	json_t *disk = json_object_get(j, "disk");
	assert_int_equal(json_integer_value(json_object_get(disk, "left")), 0); /* never negative */
	assert_int_equal(json_integer_value(json_object_get(disk, "percent")), 150);
	assert_string_equal(json_string_value(json_object_get(disk, "unit")), "bytes");
	json_t *wall = json_object_get(j, "wall_time");
	assert_int_equal(json_integer_value(json_object_get(wall, "left")), 3590);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),	     cmocka_unit_test(test_narrow_only_lowers),
		cmocka_unit_test(test_check_within), cmocka_unit_test(test_thresholds),
		cmocka_unit_test(test_describe),     cmocka_unit_test(test_limits_json),
		cmocka_unit_test(test_use_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
