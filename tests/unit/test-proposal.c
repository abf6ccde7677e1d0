/* SPDX-License-Identifier: MIT */
/* The pure parts of proposals: the config diff a reviewer sees, and the evidence digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "config.h"
#include "proposal.h"

#define BASE                                                                                       \
	"applications:\n"                                                                          \
	"  web:\n"                                                                                 \
	"    type: \"python:3.11\"\n"                                                              \
	"    web: {commands: {start: \"python3 app.py\"}}\n"                                       \
	"    hooks: {deploy: \"python3 migrate.py\"}\n"                                            \
	"services:\n"                                                                              \
	"  db: {type: \"postgresql:15\"}\n"                                                        \
	"environments:\n"                                                                          \
	"  preview: {ttl: 24h}\n"

static ProjectConfig *parse(const char *yaml)
{
	ProjectConfig *c = NULL;
	assert_int_equal(config_parse_buffer(yaml, strlen(yaml), "config.yaml", &c, NULL), 0);
	return c;
}

static json_t *find(json_t *diff, const char *prefix, const char *change)
{
	size_t i;
	json_t *c;
	json_array_foreach(diff, i, c)
	{
		const char *p = json_string_value(json_object_get(c, "path"));
		if (!strncmp(p, prefix, strlen(prefix)) &&
		    !strcmp(json_string_value(json_object_get(c, "change")), change))
			return c;
	}
	return NULL;
}

static void test_config_diff(void **state)
{
	ProjectConfig *prod = parse(BASE "validate:\n"
					 "  - {name: unit, command: \"pytest\"}\n"
					 "  - {name: health, http: {path: /healthz}}\n");
	/* The branch drops a check, adds its own, lengthens the TTL and changes a hook. */
	ProjectConfig *branch = parse("applications:\n"
				      "  web:\n"
				      "    type: \"python:3.11\"\n"
				      "    web: {commands: {start: \"python3 app.py\"}}\n"
				      "    hooks: {deploy: \"python3 migrate.py --fast\"}\n"
				      "services:\n"
				      "  db: {type: \"postgresql:15\"}\n"
				      "environments:\n"
				      "  preview: {ttl: 48h}\n"
				      "validate:\n"
				      "  - {name: unit, command: \"pytest\"}\n"
				      "  - {name: mine, command: \"true\"}\n");
	json_t *diff = proposal_config_diff(prod, branch);
	assert_non_null(diff);

	json_t *c = find(diff, "validate[", "removed");
	assert_non_null(c);
	assert_true(json_is_true(json_object_get(c, "governed")));
	assert_true(json_is_true(json_object_get(c, "widens")));
	c = find(diff, "validate[", "added");
	assert_non_null(c);
	assert_true(json_is_true(json_object_get(c, "governed")));
	assert_false(json_is_true(json_object_get(c, "widens")));
	c = find(diff, "environments.preview.ttl", "changed");
	assert_non_null(c);
	assert_true(json_is_true(json_object_get(c, "widens")));
	c = find(diff, "applications.web.hooks.deploy", "changed");
	assert_non_null(c);
	assert_false(json_is_true(json_object_get(c, "governed")));
	/* Nothing else changed, and the same config is no change at all. */
	assert_int_equal(json_array_size(diff), 4);
	json_decref(diff);
	diff = proposal_config_diff(prod, prod);
	assert_int_equal(json_array_size(diff), 0);
	json_decref(diff);
	config_free(prod);
	config_free(branch);
}

static void test_digest(void **state)
{
	char a[65], b[65];
	json_t *x = json_pack("{s:i,s:s}", "b", 1, "a", "x");
	json_t *y = json_pack("{s:s,s:i}", "a", "x", "b", 1);
	assert_int_equal(proposal_json_digest(x, a), 0);
	assert_int_equal(proposal_json_digest(y, b), 0);
	/* Canonical: key order does not matter, content does. */
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 64);
	json_object_set_new(y, "b", json_integer(2));
	assert_int_equal(proposal_json_digest(y, b), 0);
	assert_string_not_equal(a, b);
	json_decref(x);
	json_decref(y);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_diff),
		cmocka_unit_test(test_digest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
