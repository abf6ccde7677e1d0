/* SPDX-License-Identifier: MIT */
/*
 * Ceilings: the sums an environment's cgroup carries, a preview's disk allowance, the pool
 * reserve and the decision to admit one more preview, with the messages a refusal gives.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ceilings.h"
#include "config.h"
#include "macro.h"

#define MiB (1ULL << 20)
#define GiB (1ULL << 30)

static ProjectConfig *parse(const char *yaml)
{
	ProjectConfig *c = NULL;
	ConfigDiagnostics d;
	config_diagnostics_init(&d);
	int r = config_parse_buffer(yaml, strlen(yaml), "config.yaml", &c, &d);
	if (r < 0)
		fail_msg("config: %s", d.n_items ? d.items[0].message : "?");
	config_diagnostics_done(&d);
	return c;
}

static const char two_services[] =
	"applications:\n"
	"  web:\n"
	"    type: python:3.11\n"
	"    web: {commands: {start: x}}\n"
	"    resources: {cpu: 1, memory: 512M}\n"
	"  worker:\n"
	"    type: python:3.11\n"
	"    resources: {cpu: 2, memory: 1G}\n"
	"services:\n"
	"  db: {type: postgresql:15, disk: 256M, resources: {cpu: 0.5, memory: 256M}}\n"
	"  cache: {type: redis:7, disk: 128M, resources: {cpu: 0.25, memory: 64M}}\n"
	"environments:\n"
	"  preview:\n"
	"    profile: {cpu: 0.25, memory: 128M}\n"
	"    budget: {disk: 1G}\n";

static void test_environment_sum(void **state)
{
	_cleanup_(config_freep) ProjectConfig *c = parse(two_services);
	CeilingLimits l;

	ceilings_service(&c->services[0], &l);
	assert_int_equal(l.memory_bytes, 256 * MiB);
	assert_int_equal(l.pids, CEILING_SERVICE_PIDS);
	assert_int_equal(l.cpu_millis, 500);
	ceilings_application(c, &c->applications[1], false, &l);
	assert_int_equal(l.memory_bytes, GiB);
	assert_int_equal(l.cpu_millis, 2000);
	ceilings_application(c, &c->applications[1], true, &l);
	assert_int_equal(l.memory_bytes, 128 * MiB);
	assert_int_equal(l.cpu_millis, 250);

	/*
	 * Production: db + cache + web (the worker has no web process), plus the largest
	 * application one-shot (the worker's: 1G, 2 CPUs) and the largest service one-shot.
	 */
	ceilings_environment(c, false, &l);
	assert_int_equal(l.memory_bytes, 256 * MiB + 64 * MiB + 512 * MiB + GiB + 256 * MiB);
	assert_int_equal(l.pids, 3 * CEILING_SERVICE_PIDS + 2 * CEILING_APP_PIDS);
	assert_int_equal(l.cpu_millis, 500 + 250 + 1000 + 2000 + 500);
	/* A preview: every application process has the preview profile. */
	ceilings_environment(c, true, &l);
	assert_int_equal(l.memory_bytes, 256 * MiB + 64 * MiB + 128 * MiB + 128 * MiB + 256 * MiB);
	assert_int_equal(l.cpu_millis, 500 + 250 + 250 + 250 + 500);
	/* Each process's limit is within the sum, or a cgroup v1 parent would refuse it. */
	for (size_t i = 0; i < c->n_applications; i++) {
		CeilingLimits one;
		ceilings_application(c, &c->applications[i], false, &one);
		ceilings_environment(c, false, &l);
		assert_true(one.memory_bytes <= l.memory_bytes && one.cpu_millis <= l.cpu_millis &&
			    one.pids <= l.pids);
	}

	/* One unbounded process makes the sum unbounded for that resource only. */
	c->applications[0].resources.memory_bytes = 0;
	ceilings_environment(c, false, &l);
	assert_int_equal(l.memory_bytes, 0);
	assert_true(l.cpu_millis > 0 && l.pids > 0);
}

static void test_preview_disk(void **state)
{
	_cleanup_(config_freep) ProjectConfig *c = parse(two_services);
	assert_int_equal(ceilings_preview_disk(c), 384 * MiB);
	/* Without services: the preview budget's disk. */
	_cleanup_(config_freep) ProjectConfig *bare =
		parse("applications:\n"
		      "  web: {type: python:3.11}\n"
		      "environments: {preview: {budget: {disk: 3G}}}\n");
	assert_int_equal(ceilings_preview_disk(bare), 3 * GiB);
}

static void test_reserve(void **state)
{
	PoolReserve r;
	char buf[32];
	assert_int_equal(pool_reserve_parse("10%", &r), 0);
	assert_int_equal(r.percent, 10);
	assert_int_equal(pool_reserve_bytes(&r, 64 * GiB), 64 * GiB / 10);
	assert_string_equal(pool_reserve_format(&r, buf, sizeof(buf)), "10%");
	assert_int_equal(pool_reserve_parse("8G", &r), 0);
	assert_int_equal(r.percent, 0);
	assert_int_equal(pool_reserve_bytes(&r, 64 * GiB), 8 * GiB);
	assert_int_equal(pool_reserve_parse("0", &r), 0);
	assert_int_equal(pool_reserve_bytes(&r, 64 * GiB), 0);
	assert_int_equal(pool_reserve_parse("0%", &r), 0);
	assert_int_equal(pool_reserve_bytes(&r, 64 * GiB), 0);
	const char *const bad[] = { "", "%", "91%", "-1%", "ten", "1.5%", "5%%", "G" };
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		assert_int_equal(pool_reserve_parse(bad[i], &r), -EINVAL);
}

static void test_admission(void **state)
{
	PreviewAdmission a = { .previews = 3,
			       .max_previews = 4,
			       .token_id = "tok-1",
			       .principal = "bot",
			       .token_previews = 1,
			       .max_per_token = 2,
			       .disk_bytes = GiB,
			       .disk_enforced = true,
			       .pool_size = 64 * GiB,
			       .pool_free = 60 * GiB,
			       .promised_bytes = 2 * GiB,
			       .reserve = { .percent = 10 } };
	BbxError err = BBX_ERROR_INIT;
	assert_int_equal(ceilings_admit_preview(&a, &err), 0);

	a.previews = 4;
	assert_int_equal(ceilings_admit_preview(&a, &err), -EDQUOT);
	assert_string_equal(bbx_error_kind_name(err.kind), "limit_reached");
	assert_string_equal(err.message, "4 previews exist, the most this daemon allows (serve "
					 "--max-previews 4): destroy one first");

	a.previews = 3;
	a.token_previews = 2;
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(ceilings_admit_preview(&a, &err), -EDQUOT);
	assert_string_equal(err.message,
			    "token tok-1 (bot) has 2 previews, the most one token may "
			    "have (serve --max-previews-per-token 2): destroy one first");
	/* The local administrator has no token: only the total bounds it. */
	a.token_id = NULL;
	assert_int_equal(ceilings_admit_preview(&a, NULL), 0);

	/* 64 GiB pool, 10% reserved (6.4 GiB), 8 GiB free: 2 GiB promised and 1 GiB asked would
	 * leave 5 GiB, less than the reserve; with nothing promised, 7 GiB are left. */
	a.pool_free = 8 * GiB;
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(ceilings_admit_preview(&a, &err), -EDQUOT);
	assert_string_equal(err.message, "the pool keeps 6.4G free for production (serve "
					 "--pool-reserve 10%): it has 8G free, previews may still "
					 "write 2G, and this one may write 1G");
	a.promised_bytes = 0;
	assert_int_equal(ceilings_admit_preview(&a, NULL), 0);
	/* A pool that cannot enforce the quota says so in the refusal. */
	a.disk_enforced = false;
	a.reserve = (PoolReserve){ .bytes = 7 * GiB + 1 };
	err = (BbxError)BBX_ERROR_INIT;
	assert_int_equal(ceilings_admit_preview(&a, &err), -EDQUOT);
	assert_non_null(strstr(err.message, "(not enforced by this pool's driver)"));
	/* Overflowing sums refuse rather than wrap. */
	a.promised_bytes = UINT64_MAX - 1;
	a.reserve = (PoolReserve){ 0 };
	assert_int_equal(ceilings_admit_preview(&a, NULL), -EDQUOT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_environment_sum),
		cmocka_unit_test(test_preview_disk),
		cmocka_unit_test(test_reserve),
		cmocka_unit_test(test_admission),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
