/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libfyaml.h>

#include "config.h"
#include "file-util.h"
#include "macro.h"
#include "strbuf.h"

#define FILE_NAME ".branchbox/config.yaml"

static ProjectConfig *parse_ok(const char *yaml)
{
	ProjectConfig *c = NULL;
	ConfigDiagnostics diag;
	int r;

	config_diagnostics_init(&diag);
	r = config_parse_buffer(yaml, strlen(yaml), FILE_NAME, &c, &diag);
	for (size_t i = 0; r < 0 && i < diag.n_items; i++) {
		_cleanup_free_ char *s = config_diagnostic_format(&diag.items[i]);
		print_message("# unexpected: %s\n", s);
	}
	assert_int_equal(r, 0);
	assert_non_null(c);
	assert_int_equal(diag.n_errors, 0);
	config_diagnostics_done(&diag);
	return c;
}

/* Parse yaml, expect failure, and find the diagnostic at line:col with path and message. */
static void expect_error_full(const char *yaml, size_t size, int code, unsigned line, unsigned col,
			      const char *path, const char *message)
{
	ProjectConfig *c = NULL;
	ConfigDiagnostics diag;
	bool found = false;
	int r;

	config_diagnostics_init(&diag);
	r = config_parse_buffer(yaml, size, FILE_NAME, &c, &diag);
	assert_int_equal(r, code);
	assert_null(c);
	assert_true(diag.n_errors > 0);
	for (size_t i = 0; i < diag.n_items; i++) {
		const ConfigDiagnostic *d = &diag.items[i];
		if (d->line == line && d->column == col && !strcmp(d->path, path) &&
		    strstr(d->message, message))
			found = true;
	}
	if (!found)
		for (size_t i = 0; i < diag.n_items; i++) {
			_cleanup_free_ char *s = config_diagnostic_format(&diag.items[i]);
			print_message("# got: %s\n", s);
		}
	assert_true(found);
	config_diagnostics_done(&diag);
}

static void expect_error(const char *yaml, unsigned line, unsigned col, const char *path,
			 const char *message)
{
	expect_error_full(yaml, strlen(yaml), -EINVAL, line, col, path, message);
}

static const char *const full_yaml =
	"applications:\n"
	"  web:\n"
	"    source:\n"
	"      root: ./app/\n"
	"    type: python:3.11\n"
	"    web:\n"
	"      commands:\n"
	"        start: gunicorn -b 0.0.0.0:$PORT app:app\n"
	"      port: 8080\n"
	"      healthcheck: /health\n"
	"    hooks:\n"
	"      build: |\n"
	"        pip install -r requirements.txt\n"
	"        echo built\n"
	"      deploy: python manage.py migrate\n"
	"      post_deploy: echo done\n"
	"    relationships:\n"
	"      database: \"db:postgresql\"\n"
	"      cache: cache\n"
	"      db:\n"
	"    mounts:\n"
	"      \"/uploads\": {source: storage, source_path: files/uploads}\n"
	"      \"/tmp/cache\": {source: tmp}\n"
	"    variables:\n"
	"      env:\n"
	"        DEBUG: 1\n"
	"        NAME: \"x y\"\n"
	"        FLAG: true\n"
	"    resources: {cpu: 0.5, memory: 256M}\n"
	"  worker:\n"
	"    type: nodejs:20\n"
	"services:\n"
	"  db:\n"
	"    type: postgresql:15\n"
	"    disk: 2G\n"
	"    resources: {cpu: 1, memory: 1G}\n"
	"    configuration:\n"
	"      extensions: [pg_trgm, 3]\n"
	"      max_connections: 50\n"
	"      ratio: 0.5\n"
	"      on: false\n"
	"  cache:\n"
	"    type: redis:7.0\n"
	"environments:\n"
	"  production_branch: prod\n"
	"  preview:\n"
	"    profile: {cpu: 0.25, memory: 128M}\n"
	"    ttl: 2h\n"
	"    budget: {cpu_seconds: 30m, memory: 512M, disk: 1G, wall_time: 1h30m}\n"
	"sanitize:\n"
	"  - sql: \"UPDATE users SET email = id || '@example.invalid'\"\n"
	"    service: db\n"
	"    name: mask-emails\n"
	"  - command: ./scripts/scrub\n"
	"    service: cache\n"
	"    timeout: 10m\n"
	"validate:\n"
	"  - command: pytest -q\n"
	"  - name: health\n"
	"    http: {path: /health, expect_status: 204, expect_body_contains: ok}\n"
	"    timeout: 30s\n"
	"  - sql: {service: db, query: \"select count(*) from users\", expect_rows: 1}\n"
	"  - sql: {service: db, query: \"select 1\", expect_value: \"1\"}\n"
	"egress:\n"
	"  allow:\n"
	"    - api.example.com:443\n"
	"    - \"*.pypi.org\"\n"
	"    - 192.0.2.10:8080\n"
	"    - \"[2001:db8::1]:443\"\n"
	"    - 2001:db8::2\n";

static void test_full(void **state)
{
	_cleanup_(config_freep) ProjectConfig *c = parse_ok(full_yaml);
	const ConfigApplication *web, *worker;
	const ConfigService *db;

	assert_int_equal(c->n_applications, 2);
	web = config_find_application(c, "web");
	worker = config_find_application(c, "worker");
	assert_non_null(web);
	assert_non_null(worker);
	assert_string_equal(web->source_root, "app");
	assert_string_equal(web->runtime, "python");
	assert_string_equal(web->runtime_version, "3.11");
	assert_int_equal(web->type_pos.line, 5);
	assert_int_equal(web->type_pos.column, 11);
	assert_true(web->has_web);
	assert_string_equal(web->web_start, "gunicorn -b 0.0.0.0:$PORT app:app");
	assert_int_equal(web->web_port, 8080);
	assert_string_equal(web->web_healthcheck, "/health");
	assert_string_equal(web->hook_build, "pip install -r requirements.txt\necho built\n");
	assert_string_equal(web->hook_deploy, "python manage.py migrate");
	assert_string_equal(web->hook_post_deploy, "echo done");
	assert_int_equal(web->n_relationships, 3);
	assert_string_equal(web->relationships[0].service, "db");
	assert_string_equal(web->relationships[0].endpoint, "postgresql");
	assert_null(web->relationships[1].endpoint);
	assert_string_equal(web->relationships[2].service, "db");
	assert_int_equal(web->n_mounts, 2);
	assert_int_equal(web->mounts[0].source, CONFIG_MOUNT_STORAGE);
	assert_string_equal(web->mounts[0].source_path, "files/uploads");
	assert_int_equal(web->mounts[1].source, CONFIG_MOUNT_TMP);
	assert_string_equal(web->mounts[1].source_path, "tmp/cache");
	assert_int_equal(web->n_env, 3);
	assert_string_equal(web->env[0].value, "1");
	assert_string_equal(web->env[2].value, "true");
	assert_int_equal(web->resources.cpu_millis, 500);
	assert_int_equal(web->resources.memory_bytes, 256ULL << 20);
	assert_false(worker->has_web);

	db = config_find_service(c, "db");
	assert_non_null(db);
	assert_int_equal(db->kind, CONFIG_SERVICE_POSTGRESQL);
	assert_string_equal(db->version, "15");
	assert_int_equal(db->disk_bytes, 2ULL << 30);
	assert_int_equal(config_find_service(c, "cache")->kind, CONFIG_SERVICE_REDIS);

	assert_string_equal(c->production_branch, "prod");
	assert_int_equal(c->preview_profile.cpu_millis, 250);
	assert_int_equal(c->preview_ttl_sec, 7200);
	assert_int_equal(c->preview_budget.cpu_seconds, 1800);
	assert_int_equal(c->preview_budget.wall_time_sec, 5400);
	assert_int_equal(c->n_sanitize, 2);
	assert_int_equal(c->sanitize[0].kind, CONFIG_STEP_SQL);
	assert_string_equal(c->sanitize[0].name, "mask-emails");
	assert_int_equal(c->sanitize[1].kind, CONFIG_STEP_COMMAND);
	assert_string_equal(c->sanitize[1].name, "sanitize-2");
	assert_int_equal(c->sanitize[1].timeout_sec, 600);
	assert_int_equal(c->n_validate, 4);
	assert_int_equal(c->validate[1].kind, CONFIG_STEP_HTTP);
	assert_int_equal(c->validate[1].expect_status, 204);
	assert_int_equal(c->validate[1].timeout_sec, 30);
	assert_true(c->validate[2].has_expect_rows);
	assert_int_equal(c->validate[2].expect_rows, 1);
	assert_string_equal(c->validate[3].expect_value, "1");
	assert_int_equal(c->n_egress, 5);
	assert_string_equal(c->egress[0].host, "api.example.com");
	assert_int_equal(c->egress[0].port, 443);
	assert_string_equal(c->egress[1].host, "*.pypi.org");
	assert_int_equal(c->egress[1].port, 0);
	assert_string_equal(c->egress[3].host, "2001:db8::1");
	assert_int_equal(c->egress[3].port, 443);
	assert_string_equal(c->egress[4].host, "2001:db8::2");

	json_t *j = config_to_json(c);
	assert_non_null(j);
	json_t *conf = json_object_get(
		json_object_get(json_object_get(json_object_get(j, "services"), "db"),
				"configuration"),
		"max_connections");
	assert_int_equal(json_integer_value(conf), 50);
	assert_true(json_is_false(json_object_get(
		json_object_get(json_object_get(json_object_get(j, "services"), "db"),
				"configuration"),
		"on")));
	assert_int_equal(
		json_integer_value(json_object_get(
			json_object_get(json_object_get(json_object_get(j, "applications"), "web"),
					"resources"),
			"memory")),
		256 << 20);
	json_decref(j);
}

static void test_minimal_defaults_json(void **state)
{
	_cleanup_(config_freep) ProjectConfig *c = parse_ok("applications:\n"
							    "  web:\n"
							    "    type: python:3.11\n"
							    "    web:\n"
							    "      commands: {start: ./run}\n");
	json_t *j = config_to_json(c);
	json_error_t e;
	json_t *want = json_loads(
		"{\"file\": \".branchbox/config.yaml\","
		" \"applications\": {\"web\": {"
		"   \"source\": {\"root\": \".\"}, \"type\": \"python:3.11\", \"runtime\": "
		"\"python\","
		"   \"runtime_version\": \"3.11\","
		"   \"web\": {\"commands\": {\"start\": \"./run\"}, \"port\": 8000,"
		"            \"healthcheck\": \"/\"},"
		"   \"hooks\": {\"build\": null, \"deploy\": null, \"post_deploy\": null},"
		"   \"relationships\": {}, \"mounts\": {}, \"variables\": {\"env\": {}},"
		"   \"resources\": {\"cpu\": 1.0, \"memory\": 536870912}}},"
		" \"services\": {},"
		" \"environments\": {\"production_branch\": \"main\", \"preview\": {"
		"   \"profile\": {\"cpu\": 0.5, \"memory\": 268435456}, \"ttl\": 86400,"
		"   \"budget\": {\"cpu_seconds\": 3600, \"memory\": 1073741824,"
		"              \"disk\": 2147483648, \"wall_time\": 86400}}},"
		" \"sanitize\": [], \"validate\": [], \"egress\": {\"allow\": []}}",
		0, &e);
	assert_non_null(want);
	assert_non_null(j);
	if (!json_equal(j, want)) {
		_cleanup_free_ char *s = json_dumps(j, JSON_INDENT(1));
		print_message("# got %s\n", s);
	}
	assert_true(json_equal(j, want));
	json_decref(j);
	json_decref(want);
}

static void test_step_defaults_json(void **state)
{
	_cleanup_(config_freep) ProjectConfig *c =
		parse_ok("applications: {web: {type: \"python:3.11\"}}\n"
			 "services: {db: {type: \"postgresql:15\"}}\n"
			 "validate:\n"
			 "  - http: {}\n"
			 "  - sql: {service: db, query: select 1}\n");
	json_t *j = config_to_json(c), *v;

	v = json_array_get(json_object_get(j, "validate"), 0);
	assert_string_equal(json_string_value(json_object_get(v, "name")), "validate-1");
	assert_int_equal(json_integer_value(json_object_get(v, "timeout")), 300);
	assert_string_equal(json_string_value(json_object_get(json_object_get(v, "http"), "path")),
			    "/");
	assert_int_equal(
		json_integer_value(json_object_get(json_object_get(v, "http"), "expect_status")),
		200);
	v = json_array_get(json_object_get(j, "validate"), 1);
	assert_true(json_is_null(json_object_get(json_object_get(v, "sql"), "expect_rows")));
	v = json_object_get(json_object_get(json_object_get(j, "services"), "db"), "disk");
	assert_int_equal(json_integer_value(v), 1 << 30);
	json_decref(j);
}

static void test_unknown_key(void **state)
{
	expect_error("applications:\n  web:\n    type: python:3.11\n    colour: blue\n", 4, 5,
		     "applications.web.colour", "unknown key");
	expect_error("applications: {web: {type: \"python:3.11\"}}\nroutez: {}\n", 2, 1, "routez",
		     "unknown key");
}

static void test_wrong_type(void **state)
{
	expect_error("applications:\n  web:\n    type: python:3.11\n    web:\n      commands:\n"
		     "        start: [a, b]\n",
		     6, 16, "applications.web.web.commands.start",
		     "expected a string, got a sequence");
	expect_error("applications: [web]\n", 1, 15, "applications",
		     "expected a mapping, got a sequence");
	expect_error("applications: {web: {type: \"python:3.11\"}}\nvalidate: {a: 1}\n", 2, 11,
		     "validate", "expected a list, got a mapping");
}

static void test_duplicate_key(void **state)
{
	expect_error("applications:\n  web:\n    type: python:3.11\n    type: nodejs:20\n", 4, 5,
		     "", "duplicate key 'type' (first defined at line 3)");
	/* Every duplicate is reported, not only the first. */
	ConfigDiagnostics diag;
	ProjectConfig *c = NULL;
	const char *y = "a: 1\na: 2\nb: 1\nb: 2\n";
	config_diagnostics_init(&diag);
	assert_int_equal(config_parse_buffer(y, strlen(y), FILE_NAME, &c, &diag), -EINVAL);
	assert_int_equal(diag.n_errors, 2);
	assert_int_equal(diag.items[1].line, 4);
	config_diagnostics_done(&diag);
}

/*
 * Why the parser checks duplicates itself: libfyaml rejects them in its document loader
 * (unless FYPCF_ALLOW_DUPLICATE_KEYS), but its event stream, which the config parser uses to
 * keep positions and bound aliases, lets them through. If a libfyaml update changes either
 * side, this test says so.
 */
static void discard_output(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
}

static void test_libfyaml_duplicate_keys(void **state)
{
	static const char yaml[] = "a: 1\na: 2\n";
	struct fy_diag_cfg dcfg;
	struct fy_diag *diag;
	struct fy_document *doc;
	struct fy_parser *p;
	struct fy_event *e;
	size_t scalars = 0;

	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.output_fn = discard_output; /* keep the expected error off the test output */
	diag = fy_diag_create(&dcfg);
	assert_non_null(diag);
	struct fy_parse_cfg cfg = { .flags = FYPCF_QUIET, .diag = diag };
	doc = fy_document_build_from_string(&cfg, yaml, sizeof(yaml) - 1);
	assert_null(doc);
	cfg.flags = FYPCF_QUIET | FYPCF_ALLOW_DUPLICATE_KEYS;
	doc = fy_document_build_from_string(&cfg, yaml, sizeof(yaml) - 1);
	assert_non_null(doc);
	fy_document_destroy(doc);

	cfg.flags = FYPCF_QUIET;
	p = fy_parser_create(&cfg);
	assert_non_null(p);
	assert_int_equal(fy_parser_set_string(p, yaml, sizeof(yaml) - 1), 0);
	while ((e = fy_parser_parse(p))) {
		scalars += e->type == FYET_SCALAR;
		fy_parser_event_free(p, e);
	}
	assert_false(fy_parser_get_stream_error(p));
	assert_int_equal(scalars, 4);
	fy_parser_destroy(p);
	fy_diag_destroy(diag);
}

static void test_dangling_relationship(void **state)
{
	expect_error("applications:\n  web:\n    type: python:3.11\n    relationships:\n"
		     "      database: \"db:postgresql\"\n",
		     5, 17, "applications.web.relationships.database",
		     "service 'db' is not defined under services");
	expect_error("applications: {web: {type: \"python:3.11\"}}\n"
		     "services: {cache: {type: \"redis:7\"}}\n"
		     "sanitize:\n  - sql: delete from users\n    service: cache\n",
		     5, 14, "sanitize[0].service", "service 'cache' is redis, not postgresql");
	expect_error("applications: {web: {type: \"python:3.11\"}}\n"
		     "validate:\n  - sql: {service: nope, query: select 1}\n",
		     3, 20, "validate[0].sql.service", "service 'nope' is not defined");
}

static void test_bad_values(void **state)
{
	const char *pre = "applications:\n  web:\n    type: python:3.11\n";
	char buf[512];

	snprintf(buf, sizeof(buf), "%s    resources: {memory: 12Q}\n", pre);
	expect_error(buf, 4, 25, "applications.web.resources.memory", "invalid size '12Q'");
	snprintf(buf, sizeof(buf), "%s    resources: {cpu: 0.0001}\n", pre);
	expect_error(buf, 4, 22, "applications.web.resources.cpu", "invalid cpu '0.0001'");
	snprintf(buf, sizeof(buf), "%s    resources: {cpu: -1}\n", pre);
	expect_error(buf, 4, 22, "applications.web.resources.cpu", "invalid cpu '-1'");
	snprintf(buf, sizeof(buf), "%s    web: {commands: {start: x}, port: 70000}\n", pre);
	expect_error(buf, 4, 39, "applications.web.web.port",
		     "expected an integer from 1 to 65535");
	snprintf(buf, sizeof(buf), "%s    web: {commands: {start: x}, port: 0}\n", pre);
	expect_error(buf, 4, 39, "applications.web.web.port", "invalid value '0'");
	snprintf(buf, sizeof(buf), "%senvironments:\n  preview:\n    ttl: forever\n", pre);
	expect_error(buf, 6, 10, "environments.preview.ttl", "invalid duration 'forever'");
	snprintf(buf, sizeof(buf), "%senvironments: {preview: {budget: {wall_time: 1h1h}}}\n", pre);
	expect_error(buf, 4, 46, "environments.preview.budget.wall_time",
		     "invalid duration '1h1h'");
	snprintf(buf, sizeof(buf), "%sservices:\n  db: {type: \"postgresql:15\", disk: lots}\n",
		 pre);
	expect_error(buf, 5, 37, "services.db.disk", "invalid size 'lots'");
	snprintf(buf, sizeof(buf), "%sservices:\n  db: {type: \"mysql:8\"}\n", pre);
	expect_error(buf, 5, 14, "services.db.type", "unknown service type 'mysql'");
	snprintf(buf, sizeof(buf), "%s    source: {root: ../etc}\n", pre);
	expect_error(buf, 4, 20, "applications.web.source.root", "without '..'");
	snprintf(buf, sizeof(buf), "%s    source: {root: /etc}\n", pre);
	expect_error(buf, 4, 20, "applications.web.source.root", "invalid path");
	snprintf(buf, sizeof(buf), "%s    mounts: {\"/../x\": {source: local}}\n", pre);
	expect_error(buf, 4, 14, "applications.web.mounts./../x", "invalid mount path");
	expect_error("applications:\n  web:\n    type: python\n", 3, 11, "applications.web.type",
		     "expected RUNTIME:VERSION");
	expect_error("applications:\n  web:\n    type: cobol:85\n", 3, 11, "applications.web.type",
		     "unknown runtime 'cobol'");
}

static void test_bad_egress(void **state)
{
	const char *pre = "applications: {web: {type: \"python:3.11\"}}\negress:\n  allow:\n";
	static const char *const bad[] = {
		"bad_host!", "-a.com",	   "a..com", "999.1.1.1",
		"\"[::1\"",  "\"a.com:\"", "\"\"",   "\"exa mple.com\""
	};
	char buf[512];

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		snprintf(buf, sizeof(buf), "%s    - ok.example.com\n    - %s\n", pre, bad[i]);
		expect_error(buf, 5, 7, "egress.allow[1]", "invalid");
	}
	snprintf(buf, sizeof(buf), "%s    - ok.example.com:0\n", pre);
	expect_error(buf, 4, 7, "egress.allow[0]", "invalid port in 'ok.example.com:0'");
	snprintf(buf, sizeof(buf), "%s    - ok.example.com:65536\n", pre);
	expect_error(buf, 4, 7, "egress.allow[0]", "expected 1 to 65535");
}

static void test_missing_required(void **state)
{
	expect_error("applications:\n  web:\n    type: python:3.11\n    web:\n      port: 80\n", 5,
		     7, "applications.web.web.commands.start", "missing required key");
	expect_error("applications:\n  web:\n    type: python:3.11\n    web:\n      commands: {}\n",
		     5, 17, "applications.web.web.commands.start", "missing required key");
	expect_error("applications:\n  web:\n    source: {root: .}\n", 2, 3,
		     "applications.web.type", "missing required key");
	expect_error("services: {}\n", 1, 1, "applications", "missing required key");
	expect_error("", 0, 0, "applications", "missing required key");
	expect_error("applications: {web: {type: \"python:3.11\"}}\n"
		     "services: {db: {type: \"postgresql:15\"}}\n"
		     "validate:\n  - name: x\n",
		     4, 5, "validate[0]", "expected exactly one of 'command', 'http' or 'sql'");
}

static void test_bad_name(void **state)
{
	expect_error("applications:\n  Web:\n    type: python:3.11\n", 2, 3, "applications.Web",
		     "invalid application name");
	expect_error("applications: {web: {type: \"python:3.11\"}}\nservices:\n"
		     "  ../db: {type: \"redis:7\"}\n",
		     3, 3, "services.../db", "invalid service name");
}

static void test_alias_bomb(void **state)
{
	const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
			   "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
			   "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
			   "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
			   "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
			   "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
			   "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
			   "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n"
			   "i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h, *h]\n";
	expect_error(bomb, 4, 36, "", "more than 10000 YAML nodes once aliases are expanded");

	/* Aliases below the budget work, and are shared. */
	_cleanup_(config_freep) ProjectConfig *c =
		parse_ok("applications:\n"
			 "  web: &app {type: \"python:3.11\", resources: {cpu: 2}}\n"
			 "  worker: *app\n");
	assert_int_equal(c->n_applications, 2);
	assert_int_equal(c->applications[1].resources.cpu_millis, 2000);

	expect_error("applications: {web: *nope}\n", 1, 21, "", "unknown alias '*nope'");
}

static void test_merge_keys(void **state)
{
	_cleanup_(config_freep) ProjectConfig *c = parse_ok("x-defaults: &defaults\n"
							    "  type: python:3.11\n"
							    "  resources: {cpu: 2, memory: 1G}\n"
							    "x-web: &web\n"
							    "  web: {commands: {start: ./serve}}\n"
							    "  type: nodejs:20\n"
							    "applications:\n"
							    "  web:\n"
							    "    <<: [*defaults, *web]\n"
							    "    resources: {cpu: 0.5}\n"
							    "  worker:\n"
							    "    <<: *defaults\n"
							    "routes: {}\n");
	const ConfigApplication *web = config_find_application(c, "web");
	const ConfigApplication *worker = config_find_application(c, "worker");

	assert_non_null(web);
	assert_non_null(worker);
	/* Explicit keys win, then the first merged mapping. */
	assert_string_equal(web->type, "python:3.11");
	assert_int_equal(web->resources.cpu_millis, 500);
	assert_true(web->has_web);
	assert_string_equal(web->web_start, "./serve");
	assert_int_equal(worker->resources.cpu_millis, 2000);
	assert_int_equal(worker->resources.memory_bytes, 1ULL << 30);

	expect_error("applications:\n  web:\n    <<: [1]\n    type: python:3.11\n", 3, 10, "",
		     "merge key '<<' needs a mapping");
}

static void test_too_deep(void **state)
{
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;

	assert_int_equal(
		strbuf_puts(&sb, "applications: {web: {type: \"python:3.11\"}}\n"
				 "services: {db: {type: \"postgresql:15\", configuration: {a: "),
		0);
	for (int i = 0; i < 70; i++)
		assert_int_equal(strbuf_putc(&sb, '['), 0);
	for (int i = 0; i < 70; i++)
		assert_int_equal(strbuf_putc(&sb, ']'), 0);
	assert_int_equal(strbuf_puts(&sb, "}}}\n"), 0);
	/* 4 mappings deep when the sequences start: the 61st '[' is level 65. */
	expect_error(sb.buf, 2, 58 + 61, "", "nesting deeper than 64 levels");

	/* Just below the limit is fine and kept as JSON. */
	strbuf_reset(&sb);
	assert_int_equal(
		strbuf_puts(&sb, "applications: {web: {type: \"python:3.11\"}}\n"
				 "services: {db: {type: \"postgresql:15\", configuration: {a: "),
		0);
	for (int i = 0; i < 60; i++)
		assert_int_equal(strbuf_putc(&sb, '['), 0);
	for (int i = 0; i < 60; i++)
		assert_int_equal(strbuf_putc(&sb, ']'), 0);
	assert_int_equal(strbuf_puts(&sb, "}}}\n"), 0);
	ProjectConfig *c = parse_ok(sb.buf);
	json_t *j = config_to_json(c);
	assert_non_null(j);
	json_decref(j);
	config_free(c);
}

static void test_oversize(void **state)
{
	size_t n = CONFIG_MAX_INPUT + 1;
	_cleanup_free_ char *big = malloc(n);
	assert_non_null(big);
	memset(big, '#', n);
	expect_error_full(big, n, -EFBIG, 0, 0, "", "file too large");
}

static void test_syntax_error(void **state)
{
	expect_error("applications:\n  web: [\n", 3, 1, "", "YAML syntax error");
	expect_error("applications:\n  web: {type: \"python:3.11\"\n  x: 1\n", 3, 3, "",
		     "YAML syntax error");
	expect_error("a: \"\\x00\"\n", 1, 4, "", "NUL character");
	/* Keys cut short by a NUL escape are compared as what was kept (found by fuzzing). */
	expect_error("\"\\0ab\": 1\n\"\\0cd\": 2\n<<: {\"\\0ef\": 3}\n", 2, 1, "", "NUL character");
}

static void test_two_documents(void **state)
{
	expect_error("applications: {web: {type: \"python:3.11\"}}\n---\nfoo: 1\n", 2, 1, "",
		     "only one YAML document");
	expect_error("applications: {web: {type: \"python:3.11\"}}\n...\nfoo: 1\n", 3, 1, "",
		     "only one YAML document");
}

static void test_all_errors_collected(void **state)
{
	ConfigDiagnostics diag;
	ProjectConfig *c = NULL;
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;

	config_diagnostics_init(&diag);
	const char *y = "applications:\n"
			"  web:\n"
			"    type: python:3.11\n"
			"    colour: 1\n"
			"    resources: {memory: x}\n"
			"egress: {allow: [\"a b\"]}\n";
	assert_int_equal(config_parse_buffer(y, strlen(y), FILE_NAME, &c, &diag), -EINVAL);
	assert_int_equal(diag.n_errors, 3);
	_cleanup_free_ char *s = config_diagnostic_format(&diag.items[0]);
	assert_string_equal(s, ".branchbox/config.yaml:4:5: applications.web.colour: unknown key");
	assert_int_equal(diag.items[1].line, 5);
	assert_int_equal(diag.items[2].line, 6);
	json_t *j = config_diagnostic_to_json(&diag.items[0]);
	assert_int_equal(json_integer_value(json_object_get(j, "line")), 4);
	assert_string_equal(json_string_value(json_object_get(j, "path")),
			    "applications.web.colour");
	json_decref(j);
	config_diagnostics_done(&diag);

	/* The limit: many errors stop at CONFIG_DIAG_MAX and say so. */
	assert_int_equal(strbuf_puts(&sb, "applications:\n  web:\n    type: python:3.11\n"), 0);
	for (int i = 0; i < 80; i++)
		assert_int_equal(strbuf_appendf(&sb, "    k%d: 1\n", i), 0);
	config_diagnostics_init(&diag);
	assert_int_equal(config_parse_buffer(sb.buf, sb.len, FILE_NAME, &c, &diag), -EINVAL);
	assert_int_equal(diag.n_errors, CONFIG_DIAG_MAX);
	assert_true(diag.truncated);
	config_diagnostics_done(&diag);
}

static void test_invalid_utf8(void **state)
{
	/* Whichever layer notices first (libfyaml or ours), it is an error at its position. */
	expect_error("applications: {web: {type: \"python:3.11\"}}\nx: \"\xff\xfe\"\n", 2, 5, "",
		     "invalid UTF-8 (byte 0xff)");
	expect_error("x: \"\xc3\xa9\xc3\"\n", 1, 6, "", "invalid UTF-8 (byte 0xc3)");
	/* libfyaml 0.7.12 loops forever on this one; it must never reach it. */
	expect_error("%\xff\n", 1, 2, "", "invalid UTF-8");
	expect_error_full("a: 1\n\0b: 2\n", 11, -EINVAL, 2, 1, "", "NUL byte");
	expect_error("applications: {web: {type: \"python:3.11\"}}\nx: \"\\ud800\"\n", 2, 5, "",
		     "UTF8");
}

static char *make_tree(void)
{
	char *dir = strdup("/tmp/test-config-XXXXXX");
	assert_non_null(dir);
	assert_non_null(mkdtemp(dir));
	return dir;
}

static void write_at(const char *dir, const char *rel, const char *content, mode_t mode)
{
	_cleanup_free_ char *path = NULL, *parent = NULL;
	assert_true(asprintf(&path, "%s/%s", dir, rel) > 0);
	parent = strdup(path);
	*strrchr(parent, '/') = '\0';
	assert_int_equal(mkdir_p(parent, 0755), 0);
	assert_int_equal(write_file_atomic(path, content, strlen(content), mode), 0);
}

static void test_load_dir(void **state)
{
	_cleanup_free_ char *dir = make_tree();
	ConfigDiagnostics diag;
	ProjectConfig *c = NULL;

	config_diagnostics_init(&diag);
	assert_int_equal(config_load_dir(dir, &c, &diag), -ENOENT);
	assert_int_equal(diag.n_errors, 1);
	config_diagnostics_done(&diag);

	/* An Upsun-style file alone is used; its routes are accepted and noted as ignored. */
	write_at(dir, ".upsun/config.yaml",
		 "routes:\n"
		 "  \"https://{default}/\": {type: upstream, upstream: \"app:http\"}\n"
		 "services:\n"
		 "  database:\n"
		 "    type: postgresql:15\n"
		 "applications:\n"
		 "  app:\n"
		 "    source:\n"
		 "      root: \"/\"\n"
		 "    type: \"python:3.11\"\n"
		 "    relationships:\n"
		 "      database:\n"
		 "    mounts:\n"
		 "      \"/.cache\":\n"
		 "        source: storage\n"
		 "        source_path: cache\n"
		 "    hooks:\n"
		 "      build: pip install -r requirements.txt\n"
		 "    web:\n"
		 "      commands:\n"
		 "        start: gunicorn app:app\n",
		 0644);
	config_diagnostics_init(&diag);
	assert_int_equal(config_load_dir(dir, &c, &diag), 0);
	/* Upsun writes source.root as "/" for the repository root. */
	assert_string_equal(c->applications[0].source_root, ".");
	assert_string_equal(c->applications[0].mounts[0].source_path, "cache");
	config_free(c);
	c = NULL;
	config_diagnostics_done(&diag);

	write_at(dir, ".upsun/config.yaml",
		 "routes:\n"
		 "  \"https://{default}/\": {type: upstream, upstream: \"app:http\"}\n"
		 "services:\n"
		 "  database:\n"
		 "    type: postgresql:15\n"
		 "applications:\n"
		 "  app:\n"
		 "    type: \"python:3.11\"\n"
		 "    relationships:\n"
		 "      database:\n"
		 "    web:\n"
		 "      commands:\n"
		 "        start: gunicorn app:app\n",
		 0644);
	config_diagnostics_init(&diag);
	assert_int_equal(config_load_dir(dir, &c, &diag), 0);
	assert_int_equal(diag.n_errors, 0);
	assert_int_equal(diag.n_items, 1);
	assert_int_equal(diag.items[0].severity, CONFIG_SEVERITY_NOTE);
	assert_string_equal(diag.items[0].path, "routes");
	assert_non_null(strstr(c->file, "/.upsun/config.yaml"));
	assert_string_equal(c->applications[0].relationships[0].service, "database");
	config_free(c);
	c = NULL;
	config_diagnostics_done(&diag);

	/* Both: .branchbox wins, with a note. */
	write_at(dir, ".branchbox/config.yaml", "applications: {web: {type: \"nodejs:20\"}}\n",
		 0644);
	config_diagnostics_init(&diag);
	assert_int_equal(config_load_dir(dir, &c, &diag), 0);
	assert_non_null(strstr(c->file, "/.branchbox/config.yaml"));
	assert_non_null(strstr(diag.file, "/.branchbox/config.yaml"));
	assert_int_equal(diag.n_items, 1);
	assert_int_equal(diag.items[0].severity, CONFIG_SEVERITY_NOTE);
	assert_non_null(strstr(diag.items[0].message, "using .branchbox/config.yaml"));
	config_free(c);
	c = NULL;
	config_diagnostics_done(&diag);
	assert_int_equal(rm_rf(dir), 0);
}

static void test_load_dir_untrusted_tree(void **state)
{
	_cleanup_free_ char *dir = make_tree(), *link = NULL, *upsun = NULL, *big = NULL;
	ConfigDiagnostics diag;
	ProjectConfig *c = NULL;

	/* A symlinked config (an agent can commit one) is refused, never followed. */
	write_at(dir, "secret.yaml", "applications: {web: {type: \"python:3.11\"}}\n", 0644);
	assert_true(asprintf(&link, "%s/.branchbox/config.yaml", dir) > 0);
	assert_int_equal(mkdir_p(dir, 0755), 0);
	write_at(dir, ".branchbox/placeholder", "", 0644);
	assert_int_equal(symlink("../secret.yaml", link), 0);
	config_diagnostics_init(&diag);
	assert_int_equal(config_load_dir(dir, &c, &diag), -ELOOP);
	assert_null(c);
	assert_int_equal(diag.n_errors, 1);
	assert_string_equal(diag.items[0].message, "refusing to follow a symlink");
	config_diagnostics_done(&diag);

	/* ...and does not make the .upsun file next to it the config either. */
	write_at(dir, ".upsun/config.yaml", "applications: {web: {type: \"python:3.11\"}}\n", 0644);
	config_diagnostics_init(&diag);
	assert_int_equal(config_load_dir(dir, &c, &diag), -ELOOP);
	config_diagnostics_done(&diag);

	/* A symlinked directory on the way is refused the same way. */
	assert_int_equal(unlink(link), 0);
	assert_true(asprintf(&upsun, "%s/.upsun", dir) > 0);
	assert_int_equal(rm_rf(upsun), 0);
	assert_int_equal(symlink("/etc", upsun), 0);
	config_diagnostics_init(&diag);
	assert_int_equal(config_load_dir(dir, &c, &diag), -ELOOP);
	config_diagnostics_done(&diag);
	assert_int_equal(unlink(upsun), 0);

	/* A directory where the file should be. */
	assert_int_equal(mkdir(link, 0755), 0);
	config_diagnostics_init(&diag);
	assert_int_equal(config_load_dir(dir, &c, &diag), -EBADFD);
	assert_string_equal(diag.items[0].message, "not a regular file");
	config_diagnostics_done(&diag);
	assert_int_equal(rmdir(link), 0);

	/* Past the size limit. */
	big = malloc(CONFIG_MAX_INPUT + 2);
	assert_non_null(big);
	memset(big, '#', CONFIG_MAX_INPUT + 1);
	big[CONFIG_MAX_INPUT + 1] = '\0';
	write_at(dir, ".branchbox/config.yaml", big, 0644);
	config_diagnostics_init(&diag);
	assert_int_equal(config_load_dir(dir, &c, &diag), -EFBIG);
	assert_non_null(strstr(diag.items[0].message, "file too large"));
	config_diagnostics_done(&diag);
	assert_int_equal(rm_rf(dir), 0);
}

static void test_runtimes(void **state)
{
	_cleanup_free_ char *root = make_tree();
	ConfigDiagnostics diag;
	ProjectConfig *c = NULL;
	const char *y = "applications:\n"
			"  web:\n"
			"    type: python:3.12\n"
			"  api:\n"
			"    type: python:3.11\n"
			"  front:\n"
			"    type: nodejs:20\n"
			"  old:\n"
			"    type: nodejs:18\n"
			"  svc:\n"
			"    type: golang:1.22\n";

	write_at(root, "usr/bin/python3.11", "", 0755);
	write_at(root, "usr/bin/python3.9", "", 0755);
	write_at(root, "usr/bin/python3", "", 0755);
	write_at(root, "usr/bin/node", "#!/bin/sh\necho v20.11.1\n", 0755);
	write_at(root, "usr/lib/go-1.19/bin/go", "", 0755);

	config_diagnostics_init(&diag);
	assert_int_equal(config_parse_buffer(y, strlen(y), FILE_NAME, &c, &diag), 0);
	assert_int_equal(config_check_runtimes(c, root, &diag), -ENOENT);
	assert_int_equal(diag.n_errors, 3);
	_cleanup_free_ char *s0 = config_diagnostic_format(&diag.items[0]);
	_cleanup_free_ char *s1 = config_diagnostic_format(&diag.items[1]);
	_cleanup_free_ char *s2 = config_diagnostic_format(&diag.items[2]);
	assert_string_equal(s0, ".branchbox/config.yaml:3:11: applications.web.type: runtime "
				"python:3.12 is not installed on this host (found python3.11, "
				"python3.9)");
	assert_string_equal(s1, ".branchbox/config.yaml:9:11: applications.old.type: runtime "
				"nodejs:18 is not installed on this host (found nodejs v20.11.1)");
	assert_string_equal(s2, ".branchbox/config.yaml:11:11: applications.svc.type: runtime "
				"golang:1.22 is not installed on this host (found go-1.19)");
	config_free(c);
	config_diagnostics_done(&diag);
	assert_int_equal(rm_rf(root), 0);
}

static void test_nested_mounts(void **state)
{
	const char *pre = "applications:\n  web:\n    type: python:3.11\n    mounts:\n";
	char buf[512];
	ProjectConfig *c = NULL;

	snprintf(buf, sizeof(buf),
		 "%s      \"/a\": {source: storage, source_path: x}\n"
		 "      \"/b\": {source: storage, source_path: x/y}\n",
		 pre);
	expect_error(buf, 6, 44, "applications.web.mounts./b.source_path",
		     "source 'x/y' is inside the source 'x' of mount /a");
	/* local and storage share the volume's mounts directory. */
	snprintf(buf, sizeof(buf),
		 "%s      \"/b\": {source: local, source_path: x/y/z}\n"
		 "      \"/a\": {source: storage, source_path: x}\n",
		 pre);
	expect_error(buf, 5, 42, "applications.web.mounts./b.source_path", "nested mount sources");
	/* The default source_path is the mount path. */
	snprintf(buf, sizeof(buf),
		 "%s      \"/data\": {source: storage}\n"
		 "      \"/data/cache\": {source: storage}\n",
		 pre);
	expect_error(buf, 6, 22, "applications.web.mounts./data/cache.source_path",
		     "source 'data/cache' is inside the source 'data'");
	/* Siblings, a common prefix that is not a path prefix, and tmp beside storage: fine. */
	snprintf(buf, sizeof(buf),
		 "%s      \"/a\": {source: storage, source_path: x/a}\n"
		 "      \"/b\": {source: storage, source_path: x/b}\n"
		 "      \"/c\": {source: storage, source_path: xy}\n"
		 "      \"/d\": {source: tmp, source_path: x/a/deeper}\n",
		 pre);
	assert_int_equal(config_parse_buffer(buf, strlen(buf), FILE_NAME, &c, NULL), 0);
	config_free(c);
}

/* Apply production's policy to a branch config; expect refusal naming path and message. */
static void expect_policy(const char *prod_yaml, const char *branch_yaml, const char *path,
			  const char *message)
{
	_cleanup_(config_freep) ProjectConfig *prod = parse_ok(prod_yaml);
	_cleanup_(config_freep) ProjectConfig *branch = parse_ok(branch_yaml);
	ConfigDiagnostics diag;
	bool found = false;

	config_diagnostics_init(&diag);
	int r = config_apply_production_policy(prod, branch, &diag);
	if (!path) {
		assert_int_equal(r, 0);
		assert_int_equal(diag.n_items, 0);
	} else {
		assert_int_equal(r, -EPERM);
		for (size_t i = 0; i < diag.n_items; i++) {
			_cleanup_free_ char *s = config_diagnostic_format(&diag.items[i]);
			print_message("# %s\n", s);
			found |= !strcmp(diag.items[i].path, path) &&
				 strstr(diag.items[i].message, message) != NULL;
		}
		assert_true(found);
	}
	config_diagnostics_done(&diag);
}

#define APP "applications: {web: {type: \"python:3.11\"}}\n"

static void test_production_policy(void **state)
{
	const char *prod =
		APP "services: {db: {type: \"postgresql:15\", disk: 1G, "
		    "resources: {cpu: 0.5, memory: 256M}}}\n"
		    "environments: {preview: {profile: {cpu: 0.5, memory: 256M}, ttl: 2h, "
		    "budget: {cpu_seconds: 10m, disk: 1G}}}\n"
		    "egress: {allow: [api.example.com:443, \"pypi.org\"]}\n";

	/* Widening is refused, naming the key and both values. */
	expect_policy(prod, APP "environments: {preview: {ttl: 3h}}\n", "environments.preview.ttl",
		      "the branch asks for 3h, more than production's config allows (2h)");
	expect_policy(prod, APP "environments: {preview: {profile: {memory: 1G}}}\n",
		      "environments.preview.profile.memory", "asks for 1G");
	expect_policy(prod, APP "environments: {preview: {profile: {cpu: 2}}}\n",
		      "environments.preview.profile.cpu",
		      "asks for 2 CPU, more than production's config allows (0.5 CPU)");
	expect_policy(prod, APP "environments: {preview: {budget: {cpu_seconds: 1h}}}\n",
		      "environments.preview.budget.cpu_seconds", "allows (10m)");
	expect_policy(prod, APP "services: {db: {type: \"postgresql:15\", disk: 5G}}\n",
		      "services.db.disk", "asks for 5G");
	expect_policy(prod,
		      APP "services: {db: {type: \"postgresql:15\", resources: {memory: 2G}}}\n",
		      "services.db.resources.memory", "asks for 2G");
	expect_policy(prod, APP "services: {extra: {type: \"redis:7\", resources: {cpu: 4}}}\n",
		      "services.extra.resources.cpu", "asks for 4 CPU");
	expect_policy(prod, APP "egress: {allow: [\"evil.example.com:443\"]}\n", "egress.allow[0]",
		      "evil.example.com port 443 is not allowed");
	expect_policy(prod, APP "egress: {allow: [\"api.example.com\"]}\n", "egress.allow[0]",
		      "api.example.com (any port) is not allowed");
	expect_policy(prod,
		      "applications: {web: {type: \"python:3.11\", mounts: {\"/u\": {source: "
		      "storage}}}}\n",
		      "applications.web.mounts./u.source", "'storage' mounts are not used");

	/* Narrowing, unset keys and allowed rules pass. */
	expect_policy(prod,
		      APP "environments: {preview: {ttl: 1h, profile: {memory: 128M}}}\n"
			  "egress: {allow: [api.example.com:443, pypi.org:443]}\n"
			  "services: {db: {type: \"postgresql:15\", disk: 512M}}\n",
		      NULL, NULL);
	expect_policy(
		prod,
		"applications: {web: {type: \"python:3.11\", mounts: {\"/t\": {source: tmp}}}}\n",
		NULL, NULL);

	/* What the branch leaves to a default takes production's value when that is lower. */
	_cleanup_(config_freep) ProjectConfig *p = parse_ok(prod);
	_cleanup_(config_freep) ProjectConfig *b =
		parse_ok(APP "services: {db: {type: \"postgresql:15\"}}\n");
	assert_true(b->preview_ttl_sec > p->preview_ttl_sec);
	assert_int_equal(config_apply_production_policy(p, b, NULL), 0);
	assert_int_equal(b->preview_ttl_sec, 2 * 3600);
	assert_int_equal(b->preview_budget.cpu_seconds, 600);
	assert_int_equal(b->services[0].disk_bytes, 1ULL << 30);
	assert_int_equal(b->preview_profile.memory_bytes, 256ULL << 20);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_minimal_defaults_json),
		cmocka_unit_test(test_step_defaults_json),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_duplicate_key),
		cmocka_unit_test(test_libfyaml_duplicate_keys),
		cmocka_unit_test(test_dangling_relationship),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_bad_egress),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_bad_name),
		cmocka_unit_test(test_alias_bomb),
		cmocka_unit_test(test_merge_keys),
		cmocka_unit_test(test_too_deep),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_two_documents),
		cmocka_unit_test(test_all_errors_collected),
		cmocka_unit_test(test_invalid_utf8),
		cmocka_unit_test(test_load_dir),
		cmocka_unit_test(test_load_dir_untrusted_tree),
		cmocka_unit_test(test_runtimes),
		cmocka_unit_test(test_nested_mounts),
		cmocka_unit_test(test_production_policy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
