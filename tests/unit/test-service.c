/* SPDX-License-Identifier: MIT */
/* The service-type tables: config's data rows and core's ServiceTypes agree, and the hooks
 * that used to be special cases by name (url variables, quiesce, PATH) come from the type. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "macro.h"
#include "service.h"
#include "strv.h"

static void test_tables_agree(void **state)
{
	(void)state;
	BbxError err = { 0 };
	assert_int_equal(service_types_check(&err), 0);
	for (size_t k = 0; k < _CONFIG_SERVICE_KIND_MAX; k++) {
		const ServiceType *t = service_type_for((ConfigServiceKind)k);
		const ConfigServiceType *c = config_service_type((ConfigServiceKind)k);
		assert_non_null(t);
		assert_non_null(c);
		assert_string_equal(t->name, c->name);
		assert_int_equal(t->kind, k);
		assert_int_equal(!!t->sql_command, c->sql);
	}
	assert_null(service_type_for(_CONFIG_SERVICE_KIND_MAX));
	assert_null(config_service_type(_CONFIG_SERVICE_KIND_MAX));
}

static ConfigService svc_of(ConfigServiceKind kind, const char *type, const char *version)
{
	return (ConfigService){
		.name = (char *)"db", .type = (char *)type, .kind = kind, .version = (char *)version
	};
}

static void test_url_hooks(void **state)
{
	(void)state;
	ConfigService pc = svc_of(CONFIG_SERVICE_POSTGRESQL, "postgresql:15", "15");
	ServiceRuntime pg = { .config = &pc, .port = 5433, .password = "pw" };
	const ServiceType *t = service_type_for(CONFIG_SERVICE_POSTGRESQL);
	_cleanup_free_ char *url = NULL;
	assert_int_equal(t->url(&pg, "database", &url), 0);
	assert_string_equal(url, "postgresql://main:pw@database:5433/main");
	assert_string_equal(t->url_variable, "DATABASE_URL");
	/* The relationship carries the same URL as the hook. */
	json_t *rel = t->relationship(&pg, "database");
	assert_non_null(rel);
	assert_string_equal(json_string_value(json_object_get(rel, "url")), url);
	json_decref(rel);

	ConfigService rc = svc_of(CONFIG_SERVICE_REDIS, "redis:7", "7");
	ServiceRuntime rd = { .config = &rc, .port = 6379, .password = "pw2" };
	t = service_type_for(CONFIG_SERVICE_REDIS);
	_cleanup_free_ char *rurl = NULL;
	assert_int_equal(t->url(&rd, "cache", &rurl), 0);
	assert_string_equal(rurl, "redis://:pw2@cache:6379");
	assert_string_equal(t->url_variable, "REDIS_URL");
}

static void test_quiesce_and_path(void **state)
{
	(void)state;
	ConfigService pc = svc_of(CONFIG_SERVICE_POSTGRESQL, "postgresql:15", "15");
	ServiceRuntime pg = { .config = &pc, .port = 5432, .password = "pw" };
	snprintf(pg.data_path, sizeof(pg.data_path), "/srv/db");
	char path[600];

	service_path_variable(&pg, path, sizeof(path));
	assert_string_equal(path, "PATH=/usr/lib/postgresql/15/bin:" SERVICE_DEFAULT_PATH);
	const ServiceType *t = service_type_for(CONFIG_SERVICE_POSTGRESQL);
	assert_non_null(t->quiesce);
	ServiceCommand cmd = { 0 };
	BbxError err = { 0 };
	int r = t->quiesce(&pg, &cmd, &err);
	if (r == 0) { /* psql is installed: the one-shot sends a CHECKPOINT */
		assert_non_null(cmd.argv);
		assert_string_equal(cmd.stdin_data, "CHECKPOINT;");
	} else
		assert_int_equal(r, -ENOENT);
	service_command_done(&cmd);

	ConfigService rc = svc_of(CONFIG_SERVICE_REDIS, "redis:7", "7");
	ServiceRuntime rd = { .config = &rc };
	service_path_variable(&rd, path, sizeof(path));
	assert_string_equal(path, "PATH=" SERVICE_DEFAULT_PATH);
	assert_null(service_type_for(CONFIG_SERVICE_REDIS)->quiesce);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables_agree),
		cmocka_unit_test(test_url_hooks),
		cmocka_unit_test(test_quiesce_and_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
