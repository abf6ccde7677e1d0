/* SPDX-License-Identifier: MIT */
/* The applications section: type, web, relationships, mounts, variables, hooks. */
#include "config-parse.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

static const char *const runtimes[] = { "python", "nodejs", "php", "golang", "ruby" };

/* ---- applications ---------------------------------------------------------------------- */

static void parse_type(Ctx *x, const YamlNode *n, const char *path, ConfigApplication *app)
{
	const char *colon;
	bool known = false;

	if (!cfg_want_string(x, n, path, &app->type) || !app->type)
		return;
	app->type_pos = (ConfigPosition){ n->line, n->column };
	colon = strchr(n->text, ':');
	if (!colon || colon == n->text || !colon[1] ||
	    strspn(colon + 1, "0123456789.") != strlen(colon + 1) || colon[1] == '.') {
		cfg_err(x, n, path,
			"invalid type '%.64s': expected RUNTIME:VERSION, e.g. python:3.11",
			n->text);
		return;
	}
	app->runtime = strndup(n->text, (size_t)(colon - n->text));
	app->runtime_version = cfg_strdup(x, colon + 1);
	if (!app->runtime) {
		x->r = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < ELEMENTSOF(runtimes); i++)
		known = known || !strcmp(app->runtime, runtimes[i]);
	if (!known)
		cfg_err(x, n, path,
			"unknown runtime '%.64s': expected one of python, nodejs, php, golang, "
			"ruby",
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
	if (!cfg_want_mapping(x, n, path))
		return;
	cfg_check_keys(x, n, path, keys);
	cmds = cfg_get(n, "commands");
	if (cmds && cfg_want_mapping(x, cmds, cfg_join(sub, path, "commands"))) {
		cfg_check_keys(x, cmds, sub, cmd_keys);
		if ((v = cfg_get(cmds, "start")))
			cfg_want_string(x, v, cfg_join(sub2, sub, "start"), &app->web_start);
		else
			cfg_err(x, cmds, cfg_join(sub2, sub, "start"), "missing required key");
	} else if (!cmds)
		cfg_err(x, n, cfg_join(sub, path, "commands.start"), "missing required key");
	if ((v = cfg_get(n, "port")) &&
	    cfg_want_uint(x, v, cfg_join(sub, path, "port"), 1, 65535, &port))
		app->web_port = (uint16_t)port;
	if ((v = cfg_get(n, "healthcheck")) &&
	    cfg_want_string(x, v, cfg_join(sub, path, "healthcheck"), NULL)) {
		if (!cfg_url_path_ok(v->text))
			cfg_err(x, v, sub,
				"invalid path '%.64s': expected an absolute URL path like /health",
				v->text);
		else {
			free(app->web_healthcheck);
			app->web_healthcheck = cfg_strdup(x, v->text);
		}
	}
}

static void parse_relationships(Ctx *x, const YamlNode *n, const char *path, ConfigApplication *app)
{
	char sub[PATH_MAX_LEN];

	if (!cfg_want_mapping(x, n, path))
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

		cfg_join(sub, path, k->text);
		if (!name_is_valid(k->text)) {
			cfg_err(x, k, sub,
				"invalid relationship name: expected 1-63 of [a-z0-9-_.]");
			continue;
		}
		rel = &app->relationships[app->n_relationships++];
		rel->name = cfg_strdup(x, k->text);
		if (yaml_node_is_null(v)) {
			/* "database:" alone names the service of the same name (Upsun does this).
			 */
			rel->service = cfg_strdup(x, k->text);
			continue;
		}
		if (!cfg_want_string(x, v, sub, NULL))
			continue;
		colon = strchr(v->text, ':');
		rel->service = colon ? strndup(v->text, (size_t)(colon - v->text))
				     : cfg_strdup(x, v->text);
		if (!rel->service) {
			x->r = -ENOMEM;
			continue;
		}
		if (colon)
			rel->endpoint = cfg_strdup(x, colon + 1);
		if (!name_is_valid(rel->service) || (colon && !name_is_valid(colon + 1)))
			cfg_err(x, v, sub,
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
			const YamlNode *v = cfg_get(n, b->path),
				       *s = v ? cfg_get(v, "source_path") : NULL;
			cfg_join(sub, path, b->path);
			cfg_err(x, s ? s : (v ? v : n), cfg_join(sub2, sub, "source_path"),
				"source '%.64s' is inside the source '%.64s' of mount %.64s: "
				"nested "
				"mount "
				"sources are not allowed (use sibling directories)",
				b->source_path, a->source_path, a->path);
		}
}

static void parse_mounts(Ctx *x, const YamlNode *n, const char *path, ConfigApplication *app)
{
	static const char *const keys[] = { "source", "source_path", NULL };
	char sub[PATH_MAX_LEN], sub2[PATH_MAX_LEN];

	if (!cfg_want_mapping(x, n, path))
		return;
	app->mounts = calloc(n->n_children / 2 + 1, sizeof(ConfigMount));
	if (!app->mounts) {
		x->r = -ENOMEM;
		return;
	}
	for (size_t i = 0; i + 1 < n->n_children; i += 2) {
		const YamlNode *k = n->children[i], *v = n->children[i + 1], *s;
		ConfigMount *m;

		cfg_join(sub, path, k->text);
		if (k->text[0] != '/' || !cfg_relative_path_ok(k->text + 1)) {
			cfg_err(x, k, sub,
				"invalid mount path: expected an absolute path without '..', "
				"e.g. /uploads");
			continue;
		}
		m = &app->mounts[app->n_mounts++];
		m->path = cfg_strdup(x, k->text);
		m->source = CONFIG_MOUNT_LOCAL;
		if (yaml_node_is_null(v) || !cfg_want_mapping(x, v, sub)) {
			if (yaml_node_is_null(v))
				cfg_err(x, v ? v : k, cfg_join(sub2, sub, "source"),
					"missing required key");
			continue;
		}
		cfg_check_keys(x, v, sub, keys);
		if ((s = cfg_get(v, "source"))) {
			if (cfg_want_string(x, s, cfg_join(sub2, sub, "source"), NULL)) {
				if (!strcmp(s->text, "local"))
					m->source = CONFIG_MOUNT_LOCAL;
				else if (!strcmp(s->text, "storage"))
					m->source = CONFIG_MOUNT_STORAGE;
				else if (!strcmp(s->text, "tmp"))
					m->source = CONFIG_MOUNT_TMP;
				else
					cfg_err(x, s, sub2,
						"invalid source '%.64s': expected local, storage "
						"or "
						"tmp",
						s->text);
			}
		} else
			cfg_err(x, v, cfg_join(sub2, sub, "source"), "missing required key");
		if ((s = cfg_get(v, "source_path")) &&
		    cfg_want_string(x, s, cfg_join(sub2, sub, "source_path"), NULL)) {
			if (!cfg_relative_path_ok(s->text))
				cfg_err(x, s, sub2,
					"invalid path '%.64s': expected a relative path "
					"without '..'",
					s->text);
			else
				m->source_path = cfg_normalize_relative(x, s->text);
		}
		if (!m->source_path)
			m->source_path = cfg_normalize_relative(x, k->text + 1);
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

	if (!cfg_want_mapping(x, n, path))
		return;
	cfg_check_keys(x, n, path, keys);
	env = cfg_get(n, "env");
	if (!env || !cfg_want_mapping(x, env, cfg_join(sub, path, "env")))
		return;
	app->env = calloc(env->n_children / 2 + 1, sizeof(ConfigVariable));
	if (!app->env) {
		x->r = -ENOMEM;
		return;
	}
	for (size_t i = 0; i + 1 < env->n_children; i += 2) {
		const YamlNode *k = env->children[i], *v = env->children[i + 1];
		cfg_join(sub2, sub, k->text);
		if (!env_name_ok(k->text)) {
			cfg_err(x, k, sub2,
				"invalid variable name: expected [A-Za-z_][A-Za-z0-9_]*");
			continue;
		}
		if (v->kind != YAML_SCALAR) {
			cfg_err(x, v, sub2, "expected a scalar value, got %s",
				yaml_kind_to_string(v));
			continue;
		}
		app->env[app->n_env].name = cfg_strdup(x, k->text);
		app->env[app->n_env].value = cfg_strdup(x, yaml_node_is_null(v) ? "" : v->text);
		app->n_env++;
	}
}

void cfg_parse_application(Ctx *x, const YamlNode *k, const YamlNode *n, ConfigApplication *app)
{
	static const char *const keys[] = { "source",	 "type",	  "web",
					    "hooks",	 "relationships", "mounts",
					    "variables", "resources",	  NULL };
	static const char *const source_keys[] = { "root", NULL };
	static const char *const hook_keys[] = { "build", "deploy", "post_deploy", NULL };
	char path[PATH_MAX_LEN], sub[PATH_MAX_LEN], sub2[PATH_MAX_LEN];
	const YamlNode *v, *w;

	cfg_join(path, "applications", k->text);
	app->name = cfg_strdup(x, k->text);
	app->web_port = CONFIG_DEFAULT_WEB_PORT;
	app->web_healthcheck = cfg_strdup(x, "/");
	app->source_root = cfg_strdup(x, ".");
	app->resources = (ConfigResources){ DEFAULT_APP_CPU, DEFAULT_APP_MEMORY };
	if (!cfg_named_mapping(x, k, n, path, "application", keys))
		return;

	if ((v = cfg_get(n, "source")) && cfg_want_mapping(x, v, cfg_join(sub, path, "source"))) {
		cfg_check_keys(x, v, sub, source_keys);
		if ((w = cfg_get(v, "root")) &&
		    cfg_want_string(x, w, cfg_join(sub2, sub, "root"), NULL)) {
			/* Upsun writes the repository root as "/": the one absolute path allowed.
			 */
			if (!strcmp(w->text, "/")) {
				free(app->source_root);
				app->source_root = cfg_strdup(x, ".");
			} else if (!cfg_relative_path_ok(w->text))
				cfg_err(x, w, sub2,
					"invalid path '%.64s': expected a path relative to the "
					"repository, without '..'",
					w->text);
			else {
				free(app->source_root);
				app->source_root = cfg_normalize_relative(x, w->text);
			}
		}
	}
	if ((v = cfg_get(n, "type")))
		parse_type(x, v, cfg_join(sub, path, "type"), app);
	else
		cfg_err(x, k, cfg_join(sub, path, "type"), "missing required key");
	if ((v = cfg_get(n, "web")))
		parse_web(x, v, cfg_join(sub, path, "web"), app);
	else if ((w = cfg_get_key_node(n, "web"))) {
		app->has_web = true;
		cfg_err(x, w, cfg_join(sub, path, "web.commands.start"), "missing required key");
	}
	if ((v = cfg_get(n, "hooks")) && cfg_want_mapping(x, v, cfg_join(sub, path, "hooks"))) {
		cfg_check_keys(x, v, sub, hook_keys);
		if ((w = cfg_get(v, "build")))
			cfg_want_string(x, w, cfg_join(sub2, sub, "build"), &app->hook_build);
		if ((w = cfg_get(v, "deploy")))
			cfg_want_string(x, w, cfg_join(sub2, sub, "deploy"), &app->hook_deploy);
		if ((w = cfg_get(v, "post_deploy")))
			cfg_want_string(x, w, cfg_join(sub2, sub, "post_deploy"),
					&app->hook_post_deploy);
	}
	if ((v = cfg_get(n, "relationships")))
		parse_relationships(x, v, cfg_join(sub, path, "relationships"), app);
	if ((v = cfg_get(n, "mounts")))
		parse_mounts(x, v, cfg_join(sub, path, "mounts"), app);
	if ((v = cfg_get(n, "variables")))
		parse_variables(x, v, cfg_join(sub, path, "variables"), app);
	if ((v = cfg_get(n, "resources")))
		cfg_parse_resources(x, v, cfg_join(sub, path, "resources"), &app->resources);
}
