/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config-yaml.h"
#include "file-util.h"
#include "macro.h"
#include "parse.h"

/* Defaults: a preview gets less than an application in production by default. */
#define DEFAULT_APP_CPU 1000
#define DEFAULT_APP_MEMORY (512ULL << 20)
#define DEFAULT_SERVICE_CPU 500
#define DEFAULT_SERVICE_MEMORY (256ULL << 20)
#define DEFAULT_SERVICE_DISK (1ULL << 30)
#define DEFAULT_PREVIEW_CPU 500
#define DEFAULT_PREVIEW_MEMORY (256ULL << 20)
#define DEFAULT_PREVIEW_TTL (24 * 3600)
#define DEFAULT_BUDGET_CPU_SECONDS 3600
#define DEFAULT_BUDGET_MEMORY (1ULL << 30)
#define DEFAULT_BUDGET_DISK (2ULL << 30)
#define DEFAULT_BUDGET_WALL_TIME (24 * 3600)

#define PATH_MAX_LEN 256

static const char *const runtimes[] = { "python", "nodejs", "php", "golang", "ruby" };

typedef struct Ctx {
	const char *file;
	ConfigDiagnostics *diag;
	ProjectConfig *c;
	size_t errors;
	int r; /* -ENOMEM, sticky */
} Ctx;

static void verr(Ctx *x, const YamlNode *n, const char *path, const char *fmt, va_list ap)
	_printf_(4, 0);
static void verr(Ctx *x, const YamlNode *n, const char *path, const char *fmt, va_list ap)
{
	char msg[768];

	x->errors++;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (config_diagnostics_add(x->diag, CONFIG_SEVERITY_ERROR, x->file, n ? n->line : 0,
				   n ? n->column : 0, path, "%s", msg) < 0)
		x->r = -ENOMEM;
}

static void err(Ctx *x, const YamlNode *n, const char *path, const char *fmt, ...) _printf_(4, 5);
static void err(Ctx *x, const YamlNode *n, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verr(x, n, path, fmt, ap);
	va_end(ap);
}

static void note(Ctx *x, const YamlNode *n, const char *path, const char *fmt, ...) _printf_(4, 5);
static void note(Ctx *x, const YamlNode *n, const char *path, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (config_diagnostics_add(x->diag, CONFIG_SEVERITY_NOTE, x->file, n ? n->line : 0,
				   n ? n->column : 0, path, "%s", msg) < 0)
		x->r = -ENOMEM;
}

/* Key paths longer than the buffer are cut: they only serve to name the key in a message. */
static void path_put(char *buf, size_t *n, const char *s)
{
	while (*s && *n < PATH_MAX_LEN - 1)
		buf[(*n)++] = *s++;
	buf[*n] = '\0';
}

static const char *join(char *buf, const char *parent, const char *key)
{
	size_t n = 0;

	buf[0] = '\0';
	path_put(buf, &n, parent);
	if (parent[0])
		path_put(buf, &n, ".");
	path_put(buf, &n, key);
	return buf;
}

static const char *join_index(char *buf, const char *parent, size_t i)
{
	char idx[32];
	size_t n = 0;

	(void)snprintf(idx, sizeof(idx), "[%zu]", i);
	buf[0] = '\0';
	path_put(buf, &n, parent);
	path_put(buf, &n, idx);
	return buf;
}

static char *xstrdup(Ctx *x, const char *s)
{
	char *d;
	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		x->r = -ENOMEM;
	return d;
}

/* ---- typed accessors: each reports its own error and returns false on a bad value ------ */

static bool want_mapping(Ctx *x, const YamlNode *n, const char *path)
{
	if (n->kind == YAML_MAPPING)
		return true;
	err(x, n, path, "expected a mapping, got %s", yaml_kind_to_string(n));
	return false;
}

static bool want_sequence(Ctx *x, const YamlNode *n, const char *path)
{
	if (n->kind == YAML_SEQUENCE)
		return true;
	err(x, n, path, "expected a list, got %s", yaml_kind_to_string(n));
	return false;
}

static bool want_string(Ctx *x, const YamlNode *n, const char *path, char **ret)
{
	if (n->kind != YAML_SCALAR || yaml_node_is_null(n)) {
		err(x, n, path, "expected a string, got %s", yaml_kind_to_string(n));
		return false;
	}
	if (ret) {
		free(*ret);
		*ret = xstrdup(x, n->text);
	}
	return true;
}

static bool want_scalar(Ctx *x, const YamlNode *n, const char *path)
{
	if (n->kind == YAML_SCALAR && !yaml_node_is_null(n))
		return true;
	err(x, n, path, "expected a value, got %s", yaml_kind_to_string(n));
	return false;
}

static bool want_uint(Ctx *x, const YamlNode *n, const char *path, uint64_t min, uint64_t max,
		      uint64_t *ret)
{
	uint64_t v;

	if (!want_scalar(x, n, path))
		return false;
	if (parse_uint64(n->text, &v) < 0 || v < min || v > max) {
		err(x, n, path, "invalid value '%.64s': expected an integer from %llu to %llu",
		    n->text, (unsigned long long)min, (unsigned long long)max);
		return false;
	}
	*ret = v;
	return true;
}

static bool want_size(Ctx *x, const YamlNode *n, const char *path, uint64_t *ret)
{
	uint64_t v;

	if (!want_scalar(x, n, path))
		return false;
	if (parse_size(n->text, &v) < 0 || v == 0) {
		err(x, n, path, "invalid size '%.64s': expected e.g. 512M, 2G or a number of bytes",
		    n->text);
		return false;
	}
	*ret = v;
	return true;
}

static bool want_duration(Ctx *x, const YamlNode *n, const char *path, uint64_t *ret)
{
	uint64_t v;

	if (!want_scalar(x, n, path))
		return false;
	if (parse_duration(n->text, &v) < 0 || v == 0) {
		err(x, n, path,
		    "invalid duration '%.64s': expected e.g. 30s, 15m, 1h30m, 7d or a number of "
		    "seconds",
		    n->text);
		return false;
	}
	*ret = v;
	return true;
}

static bool want_cpu(Ctx *x, const YamlNode *n, const char *path, uint32_t *ret)
{
	uint32_t v;

	if (!want_scalar(x, n, path))
		return false;
	if (parse_cpu(n->text, &v) < 0) {
		err(x, n, path,
		    "invalid cpu '%.64s': expected a number of CPUs above 0 with at most 3 "
		    "decimals, "
		    "e.g. 0.5",
		    n->text);
		return false;
	}
	*ret = v;
	return true;
}

/* Reject keys outside allowed (NULL-terminated); reports each at the key's position. */
static void check_keys(Ctx *x, const YamlNode *map, const char *path, const char *const *allowed)
{
	char sub[PATH_MAX_LEN];

	for (size_t i = 0; i + 1 < map->n_children; i += 2) {
		const YamlNode *k = map->children[i];
		/* Top-level "x-..." keys are free-form, a place for anchors (as in compose files).
		 */
		bool ok = !path[0] && !strncmp(k->text, "x-", 2);
		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(k->text, *a)) {
				ok = true;
				break;
			}
		if (!ok)
			err(x, k, join(sub, path, k->text), "unknown key");
	}
}

/* The value of key, or NULL when absent or null (an empty "key:" means "use the default"). */
static const YamlNode *get(const YamlNode *map, const char *key)
{
	for (size_t i = 0; i + 1 < map->n_children; i += 2)
		if (!strcmp(map->children[i]->text, key))
			return yaml_node_is_null(map->children[i + 1]) ? NULL
								       : map->children[i + 1];
	return NULL;
}

static const YamlNode *get_key_node(const YamlNode *map, const char *key)
{
	for (size_t i = 0; i + 1 < map->n_children; i += 2)
		if (!strcmp(map->children[i]->text, key))
			return map->children[i];
	return NULL;
}

/* A relative path inside the repository: no leading '/', no ".." component. */
static bool relative_path_ok(const char *s)
{
	if (!*s || s[0] == '/' || strlen(s) > 4096)
		return false;
	for (const char *p = s; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return false;
		p += n;
		if (*p == '/')
			p++;
	}
	return true;
}

static char *normalize_relative(Ctx *x, const char *s)
{
	char *d;
	size_t n;

	while (s[0] == '.' && s[1] == '/')
		s += 2;
	d = xstrdup(x, *s ? s : ".");
	if (!d)
		return NULL;
	n = strlen(d);
	while (n > 1 && d[n - 1] == '/')
		d[--n] = '\0';
	return d;
}

static bool url_path_ok(const char *s)
{
	if (s[0] != '/' || strlen(s) > 2048)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

/* ---- resources ------------------------------------------------------------------------- */

static void parse_resources(Ctx *x, const YamlNode *n, const char *path, ConfigResources *res)
{
	static const char *const keys[] = { "cpu", "memory", NULL };
	char sub[PATH_MAX_LEN];
	const YamlNode *v;

	if (!want_mapping(x, n, path))
		return;
	check_keys(x, n, path, keys);
	if ((v = get(n, "cpu")) && want_cpu(x, v, join(sub, path, "cpu"), &res->cpu_millis))
		res->set |= CONFIG_SET_CPU;
	if ((v = get(n, "memory")) &&
	    want_size(x, v, join(sub, path, "memory"), &res->memory_bytes))
		res->set |= CONFIG_SET_MEMORY;
}

/* ---- applications ---------------------------------------------------------------------- */

static void parse_type(Ctx *x, const YamlNode *n, const char *path, ConfigApplication *app)
{
	const char *colon;
	bool known = false;

	if (!want_string(x, n, path, &app->type) || !app->type)
		return;
	app->type_pos = (ConfigPosition){ n->line, n->column };
	colon = strchr(n->text, ':');
	if (!colon || colon == n->text || !colon[1] ||
	    strspn(colon + 1, "0123456789.") != strlen(colon + 1) || colon[1] == '.') {
		err(x, n, path, "invalid type '%.64s': expected RUNTIME:VERSION, e.g. python:3.11",
		    n->text);
		return;
	}
	app->runtime = strndup(n->text, (size_t)(colon - n->text));
	app->runtime_version = xstrdup(x, colon + 1);
	if (!app->runtime) {
		x->r = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < ELEMENTSOF(runtimes); i++)
		known = known || !strcmp(app->runtime, runtimes[i]);
	if (!known)
		err(x, n, path,
		    "unknown runtime '%.64s': expected one of python, nodejs, php, golang, ruby",
		    app->runtime);
}

static void parse_web(Ctx *x, const YamlNode *n, const char *path, ConfigApplication *app)
{
	static const char *const keys[] = { "commands", "port", "healthcheck", NULL };
	static const char *const cmd_keys[] = { "start", NULL };
	char sub[PATH_MAX_LEN], sub2[PATH_MAX_LEN];
	const YamlNode *v, *cmds;
	uint64_t port;

	app->has_web = true;
	if (!want_mapping(x, n, path))
		return;
	check_keys(x, n, path, keys);
	cmds = get(n, "commands");
	if (cmds && want_mapping(x, cmds, join(sub, path, "commands"))) {
		check_keys(x, cmds, sub, cmd_keys);
		if ((v = get(cmds, "start")))
			want_string(x, v, join(sub2, sub, "start"), &app->web_start);
		else
			err(x, cmds, join(sub2, sub, "start"), "missing required key");
	} else if (!cmds)
		err(x, n, join(sub, path, "commands.start"), "missing required key");
	if ((v = get(n, "port")) && want_uint(x, v, join(sub, path, "port"), 1, 65535, &port))
		app->web_port = (uint16_t)port;
	if ((v = get(n, "healthcheck")) &&
	    want_string(x, v, join(sub, path, "healthcheck"), NULL)) {
		if (!url_path_ok(v->text))
			err(x, v, sub,
			    "invalid path '%.64s': expected an absolute URL path like /health",
			    v->text);
		else {
			free(app->web_healthcheck);
			app->web_healthcheck = xstrdup(x, v->text);
		}
	}
}

static void parse_relationships(Ctx *x, const YamlNode *n, const char *path, ConfigApplication *app)
{
	char sub[PATH_MAX_LEN];

	if (!want_mapping(x, n, path))
		return;
	app->relationships = calloc(n->n_children / 2 + 1, sizeof(ConfigRelationship));
	if (!app->relationships) {
		x->r = -ENOMEM;
		return;
	}
	for (size_t i = 0; i + 1 < n->n_children; i += 2) {
		const YamlNode *k = n->children[i], *v = n->children[i + 1];
		ConfigRelationship *rel;
		const char *colon;

		join(sub, path, k->text);
		if (!name_is_valid(k->text)) {
			err(x, k, sub, "invalid relationship name: expected 1-63 of [a-z0-9-_.]");
			continue;
		}
		rel = &app->relationships[app->n_relationships++];
		rel->name = xstrdup(x, k->text);
		if (yaml_node_is_null(v)) {
			/* "database:" alone names the service of the same name (Upsun does this).
			 */
			rel->service = xstrdup(x, k->text);
			continue;
		}
		if (!want_string(x, v, sub, NULL))
			continue;
		colon = strchr(v->text, ':');
		rel->service =
			colon ? strndup(v->text, (size_t)(colon - v->text)) : xstrdup(x, v->text);
		if (!rel->service) {
			x->r = -ENOMEM;
			continue;
		}
		if (colon)
			rel->endpoint = xstrdup(x, colon + 1);
		if (!name_is_valid(rel->service) || (colon && !name_is_valid(colon + 1)))
			err(x, v, sub,
			    "invalid relationship '%.64s': expected \"service\" or "
			    "\"service:endpoint\"",
			    v->text);
	}
}

/* Whether b lies strictly inside a: "x" contains "x/y", not "xy" nor "x". */
static bool path_strictly_inside(const char *a, const char *b)
{
	size_t n = strlen(a);
	if (!strcmp(a, "."))
		return strcmp(b, ".") != 0;
	return strncmp(a, b, n) == 0 && b[n] == '/';
}

/*
 * Two mounts whose sources nest (x and x/y) would let the application replace x/y, through
 * the outer mount, with a symlink or anything else before the inner one is bound: refused
 * here, so no host-side step ever has to bind a path the sandbox controls.
 * local and storage mounts share one directory of the volume; tmp mounts have their own.
 */
static void check_nested_mounts(Ctx *x, const YamlNode *n, const char *path,
				const ConfigApplication *app)
{
	char sub[PATH_MAX_LEN], sub2[PATH_MAX_LEN];

	for (size_t i = 0; i < app->n_mounts; i++)
		for (size_t j = 0; j < app->n_mounts; j++) {
			const ConfigMount *a = &app->mounts[i], *b = &app->mounts[j];
			bool tmp_a = a->source == CONFIG_MOUNT_TMP,
			     tmp_b = b->source == CONFIG_MOUNT_TMP;
			if (i == j || tmp_a != tmp_b || !a->source_path || !b->source_path ||
			    !path_strictly_inside(a->source_path, b->source_path))
				continue;
			const YamlNode *v = get(n, b->path), *s = v ? get(v, "source_path") : NULL;
			join(sub, path, b->path);
			err(x, s ? s : (v ? v : n), join(sub2, sub, "source_path"),
			    "source '%.64s' is inside the source '%.64s' of mount %.64s: nested "
			    "mount "
			    "sources are not allowed (use sibling directories)",
			    b->source_path, a->source_path, a->path);
		}
}

static void parse_mounts(Ctx *x, const YamlNode *n, const char *path, ConfigApplication *app)
{
	static const char *const keys[] = { "source", "source_path", NULL };
	char sub[PATH_MAX_LEN], sub2[PATH_MAX_LEN];

	if (!want_mapping(x, n, path))
		return;
	app->mounts = calloc(n->n_children / 2 + 1, sizeof(ConfigMount));
	if (!app->mounts) {
		x->r = -ENOMEM;
		return;
	}
	for (size_t i = 0; i + 1 < n->n_children; i += 2) {
		const YamlNode *k = n->children[i], *v = n->children[i + 1], *s;
		ConfigMount *m;

		join(sub, path, k->text);
		if (k->text[0] != '/' || !relative_path_ok(k->text + 1)) {
			err(x, k, sub,
			    "invalid mount path: expected an absolute path without '..', "
			    "e.g. /uploads");
			continue;
		}
		m = &app->mounts[app->n_mounts++];
		m->path = xstrdup(x, k->text);
		m->source = CONFIG_MOUNT_LOCAL;
		if (yaml_node_is_null(v) || !want_mapping(x, v, sub)) {
			if (yaml_node_is_null(v))
				err(x, v ? v : k, join(sub2, sub, "source"),
				    "missing required key");
			continue;
		}
		check_keys(x, v, sub, keys);
		if ((s = get(v, "source"))) {
			if (want_string(x, s, join(sub2, sub, "source"), NULL)) {
				if (!strcmp(s->text, "local"))
					m->source = CONFIG_MOUNT_LOCAL;
				else if (!strcmp(s->text, "storage"))
					m->source = CONFIG_MOUNT_STORAGE;
				else if (!strcmp(s->text, "tmp"))
					m->source = CONFIG_MOUNT_TMP;
				else
					err(x, s, sub2,
					    "invalid source '%.64s': expected local, storage or "
					    "tmp",
					    s->text);
			}
		} else
			err(x, v, join(sub2, sub, "source"), "missing required key");
		if ((s = get(v, "source_path")) &&
		    want_string(x, s, join(sub2, sub, "source_path"), NULL)) {
			if (!relative_path_ok(s->text))
				err(x, s, sub2,
				    "invalid path '%.64s': expected a relative path "
				    "without '..'",
				    s->text);
			else
				m->source_path = normalize_relative(x, s->text);
		}
		if (!m->source_path)
			m->source_path = normalize_relative(x, k->text + 1);
	}
	check_nested_mounts(x, n, path, app);
}

static bool env_name_ok(const char *s)
{
	if (!(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (const char *p = s; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_'))
			return false;
	return strlen(s) <= 255;
}

static void parse_variables(Ctx *x, const YamlNode *n, const char *path, ConfigApplication *app)
{
	static const char *const keys[] = { "env", NULL };
	char sub[PATH_MAX_LEN], sub2[PATH_MAX_LEN];
	const YamlNode *env;

	if (!want_mapping(x, n, path))
		return;
	check_keys(x, n, path, keys);
	env = get(n, "env");
	if (!env || !want_mapping(x, env, join(sub, path, "env")))
		return;
	app->env = calloc(env->n_children / 2 + 1, sizeof(ConfigVariable));
	if (!app->env) {
		x->r = -ENOMEM;
		return;
	}
	for (size_t i = 0; i + 1 < env->n_children; i += 2) {
		const YamlNode *k = env->children[i], *v = env->children[i + 1];
		join(sub2, sub, k->text);
		if (!env_name_ok(k->text)) {
			err(x, k, sub2, "invalid variable name: expected [A-Za-z_][A-Za-z0-9_]*");
			continue;
		}
		if (v->kind != YAML_SCALAR) {
			err(x, v, sub2, "expected a scalar value, got %s", yaml_kind_to_string(v));
			continue;
		}
		app->env[app->n_env].name = xstrdup(x, k->text);
		app->env[app->n_env].value = xstrdup(x, yaml_node_is_null(v) ? "" : v->text);
		app->n_env++;
	}
}

static void parse_application(Ctx *x, const YamlNode *k, const YamlNode *n, ConfigApplication *app)
{
	static const char *const keys[] = { "source",	 "type",	  "web",
					    "hooks",	 "relationships", "mounts",
					    "variables", "resources",	  NULL };
	static const char *const source_keys[] = { "root", NULL };
	static const char *const hook_keys[] = { "build", "deploy", "post_deploy", NULL };
	char path[PATH_MAX_LEN], sub[PATH_MAX_LEN], sub2[PATH_MAX_LEN];
	const YamlNode *v, *w;

	join(path, "applications", k->text);
	app->name = xstrdup(x, k->text);
	app->web_port = CONFIG_DEFAULT_WEB_PORT;
	app->web_healthcheck = xstrdup(x, "/");
	app->source_root = xstrdup(x, ".");
	app->resources = (ConfigResources){ DEFAULT_APP_CPU, DEFAULT_APP_MEMORY };
	if (!name_is_valid(k->text))
		err(x, k, path,
		    "invalid application name: expected 1-63 of [a-z0-9-_.], starting with a "
		    "letter "
		    "or digit");
	if (yaml_node_is_null(n)) {
		err(x, k, join(sub, path, "type"), "missing required key");
		return;
	}
	if (!want_mapping(x, n, path))
		return;
	check_keys(x, n, path, keys);

	if ((v = get(n, "source")) && want_mapping(x, v, join(sub, path, "source"))) {
		check_keys(x, v, sub, source_keys);
		if ((w = get(v, "root")) && want_string(x, w, join(sub2, sub, "root"), NULL)) {
			/* Upsun writes the repository root as "/": the one absolute path allowed.
			 */
			if (!strcmp(w->text, "/")) {
				free(app->source_root);
				app->source_root = xstrdup(x, ".");
			} else if (!relative_path_ok(w->text))
				err(x, w, sub2,
				    "invalid path '%.64s': expected a path relative to the "
				    "repository, without '..'",
				    w->text);
			else {
				free(app->source_root);
				app->source_root = normalize_relative(x, w->text);
			}
		}
	}
	if ((v = get(n, "type")))
		parse_type(x, v, join(sub, path, "type"), app);
	else
		err(x, k, join(sub, path, "type"), "missing required key");
	if ((v = get(n, "web")))
		parse_web(x, v, join(sub, path, "web"), app);
	else if ((w = get_key_node(n, "web"))) {
		app->has_web = true;
		err(x, w, join(sub, path, "web.commands.start"), "missing required key");
	}
	if ((v = get(n, "hooks")) && want_mapping(x, v, join(sub, path, "hooks"))) {
		check_keys(x, v, sub, hook_keys);
		if ((w = get(v, "build")))
			want_string(x, w, join(sub2, sub, "build"), &app->hook_build);
		if ((w = get(v, "deploy")))
			want_string(x, w, join(sub2, sub, "deploy"), &app->hook_deploy);
		if ((w = get(v, "post_deploy")))
			want_string(x, w, join(sub2, sub, "post_deploy"), &app->hook_post_deploy);
	}
	if ((v = get(n, "relationships")))
		parse_relationships(x, v, join(sub, path, "relationships"), app);
	if ((v = get(n, "mounts")))
		parse_mounts(x, v, join(sub, path, "mounts"), app);
	if ((v = get(n, "variables")))
		parse_variables(x, v, join(sub, path, "variables"), app);
	if ((v = get(n, "resources")))
		parse_resources(x, v, join(sub, path, "resources"), &app->resources);
}

/* ---- services -------------------------------------------------------------------------- */

static json_t *yaml_to_json(const YamlNode *n, unsigned depth)
{
	json_t *j;

	if (depth > YAML_MAX_DEPTH)
		return NULL; /* cannot happen: the parser refuses deeper documents */
	if (n->kind == YAML_SCALAR) {
		int64_t i;
		if (!n->plain)
			return json_string(n->text);
		if (yaml_node_is_null(n))
			return json_null();
		if (!strcmp(n->text, "true") || !strcmp(n->text, "false"))
			return json_boolean(n->text[0] == 't');
		if (parse_int64(n->text, &i) == 0)
			return json_integer(i);
		if (n->len > 0 && n->len < 64 && strspn(n->text, "0123456789.-+eE") == n->len) {
			char *end;
			errno = 0;
			double d = strtod(n->text, &end);
			if (!*end && errno == 0)
				return json_real(d);
		}
		return json_string(n->text);
	}
	if (n->kind == YAML_SEQUENCE) {
		j = json_array();
		for (size_t i = 0; j && i < n->n_children; i++)
			if (json_array_append_new(j, yaml_to_json(n->children[i], depth + 1)) < 0) {
				json_decref(j);
				return NULL;
			}
		return j;
	}
	j = json_object();
	for (size_t i = 0; j && i + 1 < n->n_children; i += 2)
		if (json_object_set_new(j, n->children[i]->text,
					yaml_to_json(n->children[i + 1], depth + 1)) < 0) {
			json_decref(j);
			return NULL;
		}
	return j;
}

/* "postgresql or redis": the types config accepts (sql_only: those that take SQL). */
static const char *service_type_names(char *buf, size_t size, bool sql_only)
{
	size_t len = 0, n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < _CONFIG_SERVICE_KIND_MAX; i++) {
		if (sql_only && !config_service_types[i].sql)
			continue;
		int k = snprintf(buf + len, size - len, "%s%s", n++ ? " or " : "",
				 config_service_types[i].name);
		if (k < 0 || (size_t)k >= size - len)
			break;
		len += (size_t)k;
	}
	return buf;
}

static void parse_service(Ctx *x, const YamlNode *k, const YamlNode *n, ConfigService *svc)
{
	char names[128];
	static const char *const keys[] = { "type", "disk", "resources", "configuration", NULL };
	char path[PATH_MAX_LEN], sub[PATH_MAX_LEN];
	const YamlNode *v;

	join(path, "services", k->text);
	svc->name = xstrdup(x, k->text);
	svc->disk_bytes = DEFAULT_SERVICE_DISK;
	svc->resources = (ConfigResources){ DEFAULT_SERVICE_CPU, DEFAULT_SERVICE_MEMORY };
	svc->kind = _CONFIG_SERVICE_KIND_MAX;
	if (!name_is_valid(k->text))
		err(x, k, path,
		    "invalid service name: expected 1-63 of [a-z0-9-_.], starting with a letter or "
		    "digit");
	if (yaml_node_is_null(n)) {
		err(x, k, join(sub, path, "type"), "missing required key");
		return;
	}
	if (!want_mapping(x, n, path))
		return;
	check_keys(x, n, path, keys);
	if ((v = get(n, "type")) && want_string(x, v, join(sub, path, "type"), &svc->type)) {
		const char *colon = strchr(v->text, ':');
		size_t len = colon ? (size_t)(colon - v->text) : 0;
		for (size_t i = 0; colon && i < _CONFIG_SERVICE_KIND_MAX; i++)
			if (strlen(config_service_types[i].name) == len &&
			    !strncmp(config_service_types[i].name, v->text, len))
				svc->kind = config_service_types[i].kind;
		if (!colon || !colon[1] || colon[1] == '.' ||
		    strspn(colon + 1, "0123456789.") != strlen(colon + 1))
			err(x, v, sub, "invalid type '%.64s': expected SERVICE:VERSION, e.g. %s:%s",
			    v->text, config_service_types[0].name,
			    config_service_types[0].example_version);
		else if (svc->kind == _CONFIG_SERVICE_KIND_MAX)
			err(x, v, sub, "unknown service type '%.*s': expected %s",
			    (int)(len > 64 ? 64 : len), v->text,
			    service_type_names(names, sizeof(names), false));
		else
			svc->version = xstrdup(x, colon + 1);
	} else if (!v)
		err(x, k, join(sub, path, "type"), "missing required key");
	if ((v = get(n, "disk")))
		svc->disk_set = want_size(x, v, join(sub, path, "disk"), &svc->disk_bytes);
	if ((v = get(n, "resources")))
		parse_resources(x, v, join(sub, path, "resources"), &svc->resources);
	if ((v = get(n, "configuration")) && want_mapping(x, v, join(sub, path, "configuration"))) {
		json_decref(svc->configuration);
		svc->configuration = yaml_to_json(v, 0);
		if (!svc->configuration)
			x->r = -ENOMEM;
	}
	if (!svc->configuration && !(svc->configuration = json_object()))
		x->r = -ENOMEM;
}

/* ---- environments, steps, egress ------------------------------------------------------- */

static void parse_environments(Ctx *x, const YamlNode *n)
{
	static const char *const keys[] = { "production_branch", "preview", NULL };
	static const char *const preview_keys[] = { "profile", "ttl", "budget", NULL };
	static const char *const budget_keys[] = { "cpu_seconds", "memory", "disk", "wall_time",
						   NULL };
	ProjectConfig *c = x->c;
	const YamlNode *v, *p, *b;

	if (!want_mapping(x, n, "environments"))
		return;
	check_keys(x, n, "environments", keys);
	if ((v = get(n, "production_branch")) &&
	    want_string(x, v, "environments.production_branch", NULL)) {
		/* A git ref name component: keep it simple and safe for paths and URLs. */
		if (strspn(v->text,
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./") !=
			    v->len ||
		    strstr(v->text, "..") || v->text[0] == '/' || v->text[0] == '-' || v->len > 200)
			err(x, v, "environments.production_branch", "invalid branch name '%.64s'",
			    v->text);
		else {
			free(c->production_branch);
			c->production_branch = xstrdup(x, v->text);
		}
	}
	p = get(n, "preview");
	if (!p || !want_mapping(x, p, "environments.preview"))
		return;
	check_keys(x, p, "environments.preview", preview_keys);
	if ((v = get(p, "profile")))
		parse_resources(x, v, "environments.preview.profile", &c->preview_profile);
	if ((v = get(p, "ttl")))
		c->preview_ttl_set =
			want_duration(x, v, "environments.preview.ttl", &c->preview_ttl_sec);
	b = get(p, "budget");
	if (!b || !want_mapping(x, b, "environments.preview.budget"))
		return;
	check_keys(x, b, "environments.preview.budget", budget_keys);
	if ((v = get(b, "cpu_seconds")) &&
	    want_duration(x, v, "environments.preview.budget.cpu_seconds",
			  &c->preview_budget.cpu_seconds))
		c->preview_budget.set |= CONFIG_SET_CPU_SECONDS;
	if ((v = get(b, "memory")) &&
	    want_size(x, v, "environments.preview.budget.memory", &c->preview_budget.memory_bytes))
		c->preview_budget.set |= CONFIG_SET_MEMORY;
	if ((v = get(b, "disk")) &&
	    want_size(x, v, "environments.preview.budget.disk", &c->preview_budget.disk_bytes))
		c->preview_budget.set |= CONFIG_SET_DISK;
	if ((v = get(b, "wall_time")) &&
	    want_duration(x, v, "environments.preview.budget.wall_time",
			  &c->preview_budget.wall_time_sec))
		c->preview_budget.set |= CONFIG_SET_WALL_TIME;
}

static void check_sql_service(Ctx *x, const YamlNode *v, const char *path)
{
	char names[128];
	const ConfigService *s = config_find_service(x->c, v->text);

	if (!s)
		err(x, v, path, "service '%.64s' is not defined under services", v->text);
	else if (config_service_type(s->kind) && !config_service_type(s->kind)->sql)
		err(x, v, path,
		    "service '%.64s' is %s, not %s: sql steps need a service that takes SQL",
		    v->text, config_service_kind_to_string(s->kind),
		    service_type_names(names, sizeof(names), true));
}

static void parse_step_common(Ctx *x, const YamlNode *n, const char *path, ConfigStep *st,
			      const char *prefix, size_t index)
{
	char sub[PATH_MAX_LEN];
	const YamlNode *v;

	st->timeout_sec = CONFIG_DEFAULT_STEP_TIMEOUT;
	if ((v = get(n, "name")) && want_string(x, v, join(sub, path, "name"), NULL)) {
		if (!name_is_valid(v->text))
			err(x, v, sub, "invalid step name: expected 1-63 of [a-z0-9-_.]");
		else
			st->name = xstrdup(x, v->text);
	}
	if (!st->name && asprintf(&st->name, "%s-%zu", prefix, index + 1) < 0) {
		st->name = NULL;
		x->r = -ENOMEM;
	}
	if ((v = get(n, "timeout")))
		want_duration(x, v, join(sub, path, "timeout"), &st->timeout_sec);
}

static void parse_sanitize_step(Ctx *x, const YamlNode *n, const char *path, ConfigStep *st,
				size_t index)
{
	static const char *const keys[] = { "name", "command", "sql", "service", "timeout", NULL };
	char sub[PATH_MAX_LEN], names[128];
	const YamlNode *cmd, *sql, *svc;

	check_keys(x, n, path, keys);
	parse_step_common(x, n, path, st, "sanitize", index);
	cmd = get(n, "command");
	sql = get(n, "sql");
	svc = get(n, "service");
	if (!!cmd == !!sql) {
		err(x, n, path, "expected exactly one of 'command' or 'sql'");
		return;
	}
	if (cmd) {
		st->kind = CONFIG_STEP_COMMAND;
		want_string(x, cmd, join(sub, path, "command"), &st->command);
		if (svc && want_string(x, svc, join(sub, path, "service"), &st->service) &&
		    !config_find_service(x->c, svc->text))
			err(x, svc, sub, "service '%.64s' is not defined under services",
			    svc->text);
		return;
	}
	st->kind = CONFIG_STEP_SQL;
	want_string(x, sql, join(sub, path, "sql"), &st->sql);
	if (!svc)
		err(x, n, join(sub, path, "service"),
		    "missing required key (sql steps name a service that takes SQL: %s)",
		    service_type_names(names, sizeof(names), true));
	else if (want_string(x, svc, join(sub, path, "service"), &st->service))
		check_sql_service(x, svc, sub);
}

static void parse_validate_step(Ctx *x, const YamlNode *n, const char *path, ConfigStep *st,
				size_t index)
{
	static const char *const keys[] = { "name", "command", "http", "sql", "timeout", NULL };
	static const char *const http_keys[] = { "path", "expect_status", "expect_body_contains",
						 NULL };
	static const char *const sql_keys[] = { "service", "query", "expect_rows", "expect_value",
						NULL };
	char sub[PATH_MAX_LEN], sub2[PATH_MAX_LEN];
	const YamlNode *cmd, *http, *sql, *v;
	uint64_t u;

	check_keys(x, n, path, keys);
	parse_step_common(x, n, path, st, "validate", index);
	cmd = get(n, "command");
	http = get(n, "http");
	sql = get(n, "sql");
	if (!!cmd + !!http + !!sql != 1) {
		err(x, n, path, "expected exactly one of 'command', 'http' or 'sql'");
		return;
	}
	if (cmd) {
		st->kind = CONFIG_STEP_COMMAND;
		want_string(x, cmd, join(sub, path, "command"), &st->command);
	} else if (http) {
		st->kind = CONFIG_STEP_HTTP;
		st->expect_status = 200;
		if (!want_mapping(x, http, join(sub, path, "http")))
			return;
		check_keys(x, http, sub, http_keys);
		if ((v = get(http, "path")) && want_string(x, v, join(sub2, sub, "path"), NULL)) {
			if (!url_path_ok(v->text))
				err(x, v, sub2,
				    "invalid path '%.64s': expected an absolute URL path", v->text);
			else
				st->http_path = xstrdup(x, v->text);
		} else if (!v)
			st->http_path = xstrdup(x, "/");
		if ((v = get(http, "expect_status")) &&
		    want_uint(x, v, join(sub2, sub, "expect_status"), 100, 599, &u))
			st->expect_status = (unsigned)u;
		if ((v = get(http, "expect_body_contains")))
			want_string(x, v, join(sub2, sub, "expect_body_contains"),
				    &st->expect_body_contains);
	} else {
		st->kind = CONFIG_STEP_SQL;
		if (!want_mapping(x, sql, join(sub, path, "sql")))
			return;
		check_keys(x, sql, sub, sql_keys);
		if ((v = get(sql, "service"))) {
			if (want_string(x, v, join(sub2, sub, "service"), &st->service))
				check_sql_service(x, v, sub2);
		} else
			err(x, sql, join(sub2, sub, "service"), "missing required key");
		if ((v = get(sql, "query")))
			want_string(x, v, join(sub2, sub, "query"), &st->sql);
		else
			err(x, sql, join(sub2, sub, "query"), "missing required key");
		if (get(sql, "expect_rows") && get(sql, "expect_value"))
			err(x, get(sql, "expect_value"), join(sub2, sub, "expect_value"),
			    "expect_rows and expect_value are exclusive");
		else if ((v = get(sql, "expect_rows")) &&
			 want_uint(x, v, join(sub2, sub, "expect_rows"), 0, UINT32_MAX, &u)) {
			st->has_expect_rows = true;
			st->expect_rows = u;
		} else if ((v = get(sql, "expect_value")))
			want_string(x, v, join(sub2, sub, "expect_value"), &st->expect_value);
	}
}

static void parse_steps(Ctx *x, const YamlNode *n, const char *path, ConfigStep **ret,
			size_t *ret_n, bool validate)
{
	char sub[PATH_MAX_LEN];

	if (!want_sequence(x, n, path))
		return;
	*ret = calloc(n->n_children + 1, sizeof(ConfigStep));
	if (!*ret) {
		x->r = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < n->n_children; i++) {
		const YamlNode *s = n->children[i];
		ConfigStep *st = &(*ret)[*ret_n];

		join_index(sub, path, i);
		if (!want_mapping(x, s, sub))
			continue;
		(*ret_n)++;
		if (validate)
			parse_validate_step(x, s, sub, st, i);
		else
			parse_sanitize_step(x, s, sub, st, i);
		for (size_t j = 0; st->name && j + 1 < *ret_n; j++)
			if ((*ret)[j].name && !strcmp((*ret)[j].name, st->name)) {
				const YamlNode *nn = get(s, "name");
				err(x, nn ? nn : s, sub, "duplicate step name '%s'", st->name);
				break;
			}
	}
}

/* host[:port], host a DNS name (optionally "*." wildcard) or an IP literal ([v6]:port). */
static int parse_egress(const char *s, char **ret_host, uint16_t *ret_port)
{
	_cleanup_free_ char *host = NULL;
	const char *port = NULL;
	unsigned char buf[sizeof(struct in6_addr)];
	uint32_t p = 0;

	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end)
			return -EINVAL;
		host = strndup(s + 1, (size_t)(end - s - 1));
		if (!host)
			return -ENOMEM;
		if (inet_pton(AF_INET6, host, buf) != 1)
			return -EINVAL;
		if (end[1] == ':')
			port = end + 2;
		else if (end[1])
			return -EINVAL;
	} else if (strchr(s, ':') != strrchr(s, ':')) {
		host = strdup(s); /* bare IPv6: no port possible */
		if (!host)
			return -ENOMEM;
		if (inet_pton(AF_INET6, host, buf) != 1)
			return -EINVAL;
	} else {
		const char *colon = strchr(s, ':');
		host = colon ? strndup(s, (size_t)(colon - s)) : strdup(s);
		if (!host)
			return -ENOMEM;
		if (colon)
			port = colon + 1;
		if (inet_pton(AF_INET, host, buf) != 1) {
			/* A DNS name: labels of [a-z0-9-], no leading/trailing '-', last not
			 * numeric. */
			size_t len = strlen(host);
			const char *h = host, *last = host;
			if (len == 0 || len > 253)
				return -EINVAL;
			if (h[0] == '*' && h[1] == '.')
				h += 2;
			for (const char *q = h; *q;) {
				size_t n = strcspn(q, ".");
				if (n == 0 || n > 63 || q[0] == '-' || q[n - 1] == '-')
					return -EINVAL;
				for (size_t i = 0; i < n; i++)
					if (!isalnum((unsigned char)q[i]) && q[i] != '-')
						return -EINVAL;
				last = q;
				q += n;
				if (*q == '.' && !*++q)
					return -EINVAL;
			}
			if (strspn(last, "0123456789.") == strlen(last))
				return -EINVAL;
			for (char *q = host; *q; q++)
				*q = (char)tolower((unsigned char)*q);
		}
	}
	if (port && (parse_uint32(port, &p) < 0 || p < 1 || p > 65535))
		return -ERANGE;
	*ret_host = TAKE_PTR(host);
	*ret_port = (uint16_t)p;
	return 0;
}

static void parse_egress_section(Ctx *x, const YamlNode *n)
{
	static const char *const keys[] = { "allow", NULL };
	char sub[PATH_MAX_LEN];
	const YamlNode *allow;
	ProjectConfig *c = x->c;

	if (!want_mapping(x, n, "egress"))
		return;
	check_keys(x, n, "egress", keys);
	allow = get(n, "allow");
	if (!allow || !want_sequence(x, allow, "egress.allow"))
		return;
	c->egress = calloc(allow->n_children + 1, sizeof(ConfigEgressRule));
	if (!c->egress) {
		x->r = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < allow->n_children; i++) {
		const YamlNode *v = allow->children[i];
		ConfigEgressRule *rule = &c->egress[c->n_egress];
		int r;

		join_index(sub, "egress.allow", i);
		if (!want_string(x, v, sub, NULL))
			continue;
		r = parse_egress(v->text, &rule->host, &rule->port);
		if (r == -ENOMEM)
			x->r = r;
		else if (r == -ERANGE)
			err(x, v, sub, "invalid port in '%.64s': expected 1 to 65535", v->text);
		else if (r < 0)
			err(x, v, sub,
			    "invalid host '%.64s': expected a DNS name or an IP address, with an "
			    "optional :port",
			    v->text);
		else
			c->n_egress++;
	}
}

/* ---- top level ------------------------------------------------------------------------- */

static void parse_named(Ctx *x, const YamlNode *n, const char *path, bool services)
{
	ProjectConfig *c = x->c;
	size_t count;

	if (!want_mapping(x, n, path))
		return;
	count = n->n_children / 2;
	if (services) {
		c->services = calloc(count + 1, sizeof(ConfigService));
		if (!c->services) {
			x->r = -ENOMEM;
			return;
		}
	} else {
		c->applications = calloc(count + 1, sizeof(ConfigApplication));
		if (!c->applications) {
			x->r = -ENOMEM;
			return;
		}
	}
	for (size_t i = 0; i + 1 < n->n_children; i += 2) {
		if (services)
			parse_service(x, n->children[i], n->children[i + 1],
				      &c->services[c->n_services++]);
		else
			parse_application(x, n->children[i], n->children[i + 1],
					  &c->applications[c->n_applications++]);
	}
}

/* Relationships may name services defined after the application: checked once all are in. */
static void check_relationships(Ctx *x, const YamlNode *root)
{
	const YamlNode *apps = get(root, "applications");
	char path[PATH_MAX_LEN];

	if (!apps || apps->kind != YAML_MAPPING)
		return;
	for (size_t i = 0; i < x->c->n_applications; i++) {
		const ConfigApplication *app = &x->c->applications[i];
		const YamlNode *an = get(apps, app->name), *rels;
		if (!an || an->kind != YAML_MAPPING)
			continue;
		rels = get(an, "relationships");
		if (!rels || rels->kind != YAML_MAPPING)
			continue;
		for (size_t j = 0; j < app->n_relationships; j++) {
			const ConfigRelationship *rel = &app->relationships[j];
			const YamlNode *v, *k;
			if (!rel->service || config_find_service(x->c, rel->service))
				continue;
			k = get_key_node(rels, rel->name);
			v = get(rels, rel->name);
			snprintf(path, sizeof(path), "applications.%s.relationships.%s", app->name,
				 rel->name);
			err(x, v ? v : k, path, "service '%.64s' is not defined under services",
			    rel->service);
		}
	}
}

static int config_build(Ctx *x, const YamlNode *root)
{
	static const char *const keys[] = { "applications", "services", "environments", "sanitize",
					    "validate",	    "egress",	"routes",	NULL };
	ProjectConfig *c = x->c;
	const YamlNode *v;

	c->production_branch = xstrdup(x, CONFIG_DEFAULT_PRODUCTION_BRANCH);
	c->preview_profile = (ConfigResources){ DEFAULT_PREVIEW_CPU, DEFAULT_PREVIEW_MEMORY };
	c->preview_ttl_sec = DEFAULT_PREVIEW_TTL;
	c->preview_budget = (ConfigBudget){ DEFAULT_BUDGET_CPU_SECONDS, DEFAULT_BUDGET_MEMORY,
					    DEFAULT_BUDGET_DISK, DEFAULT_BUDGET_WALL_TIME };
	if (!root || yaml_node_is_null(root)) {
		err(x, root, "applications", "missing required key (the file is empty)");
		return x->r;
	}
	if (!want_mapping(x, root, ""))
		return x->r;
	check_keys(x, root, "", keys);

	/* Services first so that steps can check the services they name. */
	if ((v = get(root, "services")))
		parse_named(x, v, "services", true);
	if ((v = get(root, "applications")))
		parse_named(x, v, "applications", false);
	else
		err(x, root, "applications", "missing required key");
	if (c->n_applications == 0 && v && v->kind == YAML_MAPPING)
		err(x, v, "applications", "at least one application is required");
	check_relationships(x, root);
	if ((v = get(root, "environments")))
		parse_environments(x, v);
	if ((v = get(root, "sanitize")))
		parse_steps(x, v, "sanitize", &c->sanitize, &c->n_sanitize, false);
	if ((v = get(root, "validate")))
		parse_steps(x, v, "validate", &c->validate, &c->n_validate, true);
	if ((v = get(root, "egress")))
		parse_egress_section(x, v);
	/* Checked and governed (config-policy.c), but nothing acts on them yet: say so. */
	if ((v = get_key_node(root, "validate")))
		note(x, v, "validate",
		     "checked, but not run yet: nothing executes validate steps today");
	if ((v = get_key_node(root, "egress")))
		note(x, v, "egress",
		     "checked, but not enforced yet: environments have loopback only, no egress "
		     "proxy runs");
	if ((v = get_key_node(root, "routes")))
		note(x, v, "routes",
		     "ignored: previews are reached through the branchbox preview proxy");
	return x->r;
}

static int cmp_diagnostic(const void *a, const void *b)
{
	const ConfigDiagnostic *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->column != y->column)
		return x->column < y->column ? -1 : 1;
	return 0;
}

int config_parse_buffer(const char *data, size_t size, const char *filename, ProjectConfig **ret,
			ConfigDiagnostics *diag)
{
	_cleanup_(yaml_document_freep) YamlDocument *doc = NULL;
	_cleanup_(config_freep) ProjectConfig *c = NULL;
	ConfigDiagnostics local;
	Ctx x;
	size_t before, first;
	int r;

	if (!filename)
		filename = ".branchbox/config.yaml";
	if (!diag) {
		config_diagnostics_init(&local);
		r = config_parse_buffer(data, size, filename, ret, &local);
		config_diagnostics_done(&local);
		return r;
	}
	free(diag->file);
	diag->file = strdup(filename);
	if (!diag->file)
		return -ENOMEM;
	before = diag->n_errors;
	first = diag->n_items;
	if (size > CONFIG_MAX_INPUT) {
		r = config_diagnostics_add(diag, CONFIG_SEVERITY_ERROR, filename, 0, 0, "",
					   "file too large: %zu bytes, the limit is %d bytes", size,
					   CONFIG_MAX_INPUT);
		return r < 0 ? r : -EFBIG;
	}
	r = yaml_document_parse(data, size, filename, &doc, diag);
	if (r < 0)
		return r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->file = strdup(filename);
	if (!c->file)
		return -ENOMEM;
	x = (Ctx){ .file = filename, .diag = diag, .c = c };
	r = config_build(&x, doc->root);
	if (r < 0)
		return r;
	/* Report in file order, whatever order the sections were checked in. */
	if (diag->n_items > first)
		qsort(diag->items + first, diag->n_items - first, sizeof(ConfigDiagnostic),
		      cmp_diagnostic);
	if (x.errors > 0 || diag->n_errors > before)
		return -EINVAL;
	*ret = TAKE_PTR(c);
	return 0;
}

/*
 * Open dir/rel for reading without leaving dir: the project tree may be written by an agent,
 * and a config.yaml that is a symlink to /etc/shadow must not be read (its lines would come
 * back quoted in error messages). -ENOENT when absent, -ELOOP for a symlink on the way,
 * -EBADFD when it is not a regular file.
 */
static int open_beneath(int dirfd, const char *rel)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	fd = (int)syscall(SYS_openat2, dirfd, rel, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS) {
		/* No openat2 (valgrind, kernels before 5.6): rel is "DIR/FILE", so refusing a
		 * symlink at each of its two components is the same guarantee. */
		_cleanup_free_ char *first = strndup(rel, strcspn(rel, "/"));
		_cleanup_close_ int sub = -EBADF;
		if (!first)
			return -ENOMEM;
		sub = openat(dirfd, first, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			struct stat lst;
			if (errno == ENOTDIR &&
			    fstatat(dirfd, first, &lst, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(lst.st_mode))
				return -ELOOP;
			return negative_errno();
		}
		fd = openat(sub, rel + strlen(first) + 1, how.flags | O_NOFOLLOW);
	}
	if (fd < 0)
		return negative_errno();
	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (!S_ISREG(st.st_mode))
		return -EBADFD;
	return TAKE_FD(fd);
}

static int load_error(ConfigDiagnostics *diag, const char *file, int code, const char *fmt, ...)
	_printf_(4, 5);
static int load_error(ConfigDiagnostics *diag, const char *file, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int r;

	if (!diag)
		return code;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	free(diag->file);
	diag->file = strdup(file);
	if (!diag->file)
		return -ENOMEM;
	r = config_diagnostics_add(diag, CONFIG_SEVERITY_ERROR, file, 0, 0, "", "%s", msg);
	return r < 0 ? r : code;
}

static const char *open_error(int r)
{
	switch (r) {
	case -ELOOP: return "refusing to follow a symlink";
	case -EXDEV: return "refusing a path that leaves the project directory";
	case -EBADFD: return "not a regular file";
	default: return strerror(-r);
	}
}

int config_load_dir(const char *dir, ProjectConfig **ret, ConfigDiagnostics *diag)
{
	_cleanup_free_ char *bbx = NULL, *upsun = NULL, *data = NULL;
	_cleanup_close_ int dfd = -EBADF, fd_bbx = -EBADF, fd_upsun = -EBADF;
	const char *chosen;
	size_t size = 0;
	int r, fd;

	if (asprintf(&bbx, "%s/.branchbox/config.yaml", dir) < 0) {
		bbx = NULL;
		return -ENOMEM;
	}
	if (asprintf(&upsun, "%s/.upsun/config.yaml", dir) < 0) {
		upsun = NULL;
		return -ENOMEM;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = negative_errno();
		return load_error(diag, bbx, r, "cannot open project directory %s: %s", dir,
				  strerror(-r));
	}
	fd_bbx = open_beneath(dfd, ".branchbox/config.yaml");
	fd_upsun = open_beneath(dfd, ".upsun/config.yaml");
	if (fd_bbx == -ENOENT && fd_upsun == -ENOENT)
		return load_error(diag, bbx, -ENOENT,
				  "no config file: neither .branchbox/config.yaml nor "
				  ".upsun/config.yaml exists in %s",
				  dir);
	/* Anything at .branchbox/config.yaml, even unreadable, wins: never fall back silently. */
	if (fd_bbx != -ENOENT) {
		chosen = bbx;
		fd = fd_bbx;
	} else {
		chosen = upsun;
		fd = fd_upsun;
	}
	if (fd < 0)
		return load_error(diag, chosen, fd, "%s", open_error(fd));
	if (fd_bbx >= 0 && fd_upsun != -ENOENT && diag) {
		r = config_diagnostics_add(diag, CONFIG_SEVERITY_NOTE, bbx, 0, 0, "",
					   "both .branchbox/config.yaml and .upsun/config.yaml "
					   "exist; using .branchbox/config.yaml");
		if (r < 0)
			return r;
	}
	r = read_full_fd(fd, CONFIG_MAX_INPUT, &data, &size);
	if (r == -EFBIG)
		return load_error(diag, chosen, -EFBIG, "file too large: the limit is %d bytes",
				  CONFIG_MAX_INPUT);
	if (r < 0)
		return load_error(diag, chosen, r, "cannot read: %s", strerror(-r));
	return config_parse_buffer(data, size, chosen, ret, diag);
}

/* ---- lifetime and lookups -------------------------------------------------------------- */

static void step_done(ConfigStep *st)
{
	free(st->name);
	free(st->command);
	free(st->service);
	free(st->sql);
	free(st->http_path);
	free(st->expect_body_contains);
	free(st->expect_value);
}

void config_free(ProjectConfig *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_applications; i++) {
		ConfigApplication *a = &c->applications[i];
		free(a->name);
		free(a->source_root);
		free(a->type);
		free(a->runtime);
		free(a->runtime_version);
		free(a->web_start);
		free(a->web_healthcheck);
		free(a->hook_build);
		free(a->hook_deploy);
		free(a->hook_post_deploy);
		for (size_t j = 0; j < a->n_relationships; j++) {
			free(a->relationships[j].name);
			free(a->relationships[j].service);
			free(a->relationships[j].endpoint);
		}
		free(a->relationships);
		for (size_t j = 0; j < a->n_mounts; j++) {
			free(a->mounts[j].path);
			free(a->mounts[j].source_path);
		}
		free(a->mounts);
		for (size_t j = 0; j < a->n_env; j++) {
			free(a->env[j].name);
			free(a->env[j].value);
		}
		free(a->env);
	}
	free(c->applications);
	for (size_t i = 0; i < c->n_services; i++) {
		free(c->services[i].name);
		free(c->services[i].type);
		free(c->services[i].version);
		json_decref(c->services[i].configuration);
	}
	free(c->services);
	for (size_t i = 0; i < c->n_sanitize; i++)
		step_done(&c->sanitize[i]);
	free(c->sanitize);
	for (size_t i = 0; i < c->n_validate; i++)
		step_done(&c->validate[i]);
	free(c->validate);
	for (size_t i = 0; i < c->n_egress; i++)
		free(c->egress[i].host);
	free(c->egress);
	free(c->production_branch);
	free(c->file);
	free(c);
}

const ConfigApplication *config_find_application(const ProjectConfig *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n_applications; i++)
		if (c->applications[i].name && !strcmp(c->applications[i].name, name))
			return &c->applications[i];
	return NULL;
}

const ConfigService *config_find_service(const ProjectConfig *c, const char *name)
{
	for (size_t i = 0; c && name && i < c->n_services; i++)
		if (c->services[i].name && !strcmp(c->services[i].name, name))
			return &c->services[i];
	return NULL;
}

const char *config_mount_source_to_string(ConfigMountSource s)
{
	switch (s) {
	case CONFIG_MOUNT_LOCAL: return "local";
	case CONFIG_MOUNT_STORAGE: return "storage";
	case CONFIG_MOUNT_TMP: return "tmp";
	}
	return "unknown";
}
