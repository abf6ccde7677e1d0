/* SPDX-License-Identifier: MIT */
/* Diagnostics, key paths and the typed accessors every section parser uses. */
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

void cfg_err(Ctx *x, const YamlNode *n, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	verr(x, n, path, fmt, ap);
	va_end(ap);
}

void cfg_note(Ctx *x, const YamlNode *n, const char *path, const char *fmt, ...)
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

const char *cfg_join(char *buf, const char *parent, const char *key)
{
	size_t n = 0;

	buf[0] = '\0';
	path_put(buf, &n, parent);
	if (parent[0])
		path_put(buf, &n, ".");
	path_put(buf, &n, key);
	return buf;
}

const char *cfg_join_index(char *buf, const char *parent, size_t i)
{
	char idx[32];
	size_t n = 0;

	(void)snprintf(idx, sizeof(idx), "[%zu]", i);
	buf[0] = '\0';
	path_put(buf, &n, parent);
	path_put(buf, &n, idx);
	return buf;
}

char *cfg_strdup(Ctx *x, const char *s)
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

bool cfg_want_mapping(Ctx *x, const YamlNode *n, const char *path)
{
	if (n->kind == YAML_MAPPING)
		return true;
	cfg_err(x, n, path, "expected a mapping, got %s", yaml_kind_to_string(n));
	return false;
}

bool cfg_want_sequence(Ctx *x, const YamlNode *n, const char *path)
{
	if (n->kind == YAML_SEQUENCE)
		return true;
	cfg_err(x, n, path, "expected a list, got %s", yaml_kind_to_string(n));
	return false;
}

bool cfg_want_string(Ctx *x, const YamlNode *n, const char *path, char **ret)
{
	if (n->kind != YAML_SCALAR || yaml_node_is_null(n)) {
		cfg_err(x, n, path, "expected a string, got %s", yaml_kind_to_string(n));
		return false;
	}
	if (ret) {
		free(*ret);
		*ret = cfg_strdup(x, n->text);
	}
	return true;
}

bool cfg_want_scalar(Ctx *x, const YamlNode *n, const char *path)
{
	if (n->kind == YAML_SCALAR && !yaml_node_is_null(n))
		return true;
	cfg_err(x, n, path, "expected a value, got %s", yaml_kind_to_string(n));
	return false;
}

bool cfg_want_uint(Ctx *x, const YamlNode *n, const char *path, uint64_t min, uint64_t max,
		   uint64_t *ret)
{
	uint64_t v;

	if (!cfg_want_scalar(x, n, path))
		return false;
	if (parse_uint64(n->text, &v) < 0 || v < min || v > max) {
		cfg_err(x, n, path, "invalid value '%.64s': expected an integer from %llu to %llu",
			n->text, (unsigned long long)min, (unsigned long long)max);
		return false;
	}
	*ret = v;
	return true;
}

/* A scalar that parse() reads as a non-zero quantity; else an error: "invalid WHAT 'text':
 * expected EXAMPLES". */
static bool want_quantity(Ctx *x, const YamlNode *n, const char *path,
			  int (*parse)(const char *s, uint64_t *ret), const char *what,
			  const char *examples, uint64_t *ret)
{
	uint64_t v;

	if (!cfg_want_scalar(x, n, path))
		return false;
	if (parse(n->text, &v) < 0 || v == 0) {
		cfg_err(x, n, path, "invalid %s '%.64s': expected %s", what, n->text, examples);
		return false;
	}
	*ret = v;
	return true;
}

bool cfg_want_size(Ctx *x, const YamlNode *n, const char *path, uint64_t *ret)
{
	return want_quantity(x, n, path, parse_size, "size", "e.g. 512M, 2G or a number of bytes",
			     ret);
}

bool cfg_want_duration(Ctx *x, const YamlNode *n, const char *path, uint64_t *ret)
{
	return want_quantity(x, n, path, parse_duration, "duration",
			     "e.g. 30s, 15m, 1h30m, 7d or a number of seconds", ret);
}

bool cfg_want_cpu(Ctx *x, const YamlNode *n, const char *path, uint32_t *ret)
{
	uint32_t v;

	if (!cfg_want_scalar(x, n, path))
		return false;
	if (parse_cpu(n->text, &v) < 0) {
		cfg_err(x, n, path,
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
void cfg_check_keys(Ctx *x, const YamlNode *map, const char *path, const char *const *allowed)
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
			cfg_err(x, k, cfg_join(sub, path, k->text), "unknown key");
	}
}

/* The value of key, or NULL when absent or null (an empty "key:" means "use the default"). */
const YamlNode *cfg_get(const YamlNode *map, const char *key)
{
	for (size_t i = 0; i + 1 < map->n_children; i += 2)
		if (!strcmp(map->children[i]->text, key))
			return yaml_node_is_null(map->children[i + 1]) ? NULL
								       : map->children[i + 1];
	return NULL;
}

const YamlNode *cfg_get_key_node(const YamlNode *map, const char *key)
{
	for (size_t i = 0; i + 1 < map->n_children; i += 2)
		if (!strcmp(map->children[i]->text, key))
			return map->children[i];
	return NULL;
}

/* A relative path inside the repository: no leading '/', no ".." component. */
bool cfg_relative_path_ok(const char *s)
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

char *cfg_normalize_relative(Ctx *x, const char *s)
{
	char *d;
	size_t n;

	while (s[0] == '.' && s[1] == '/')
		s += 2;
	d = cfg_strdup(x, *s ? s : ".");
	if (!d)
		return NULL;
	n = strlen(d);
	while (n > 1 && d[n - 1] == '/')
		d[--n] = '\0';
	return d;
}

bool cfg_url_path_ok(const char *s)
{
	if (s[0] != '/' || strlen(s) > 2048)
		return false;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= ' ' || *p == 0x7f)
			return false;
	return true;
}

/* ---- resources ------------------------------------------------------------------------- */

void cfg_parse_resources(Ctx *x, const YamlNode *n, const char *path, ConfigResources *res)
{
	static const char *const keys[] = { "cpu", "memory", NULL };
	char sub[PATH_MAX_LEN];
	const YamlNode *v;

	if (!cfg_want_mapping(x, n, path))
		return;
	cfg_check_keys(x, n, path, keys);
	if ((v = cfg_get(n, "cpu")) &&
	    cfg_want_cpu(x, v, cfg_join(sub, path, "cpu"), &res->cpu_millis))
		res->set |= CONFIG_SET_CPU;
	if ((v = cfg_get(n, "memory")) &&
	    cfg_want_size(x, v, cfg_join(sub, path, "memory"), &res->memory_bytes))
		res->set |= CONFIG_SET_MEMORY;
}

bool cfg_named_mapping(Ctx *x, const YamlNode *k, const YamlNode *n, const char *path,
		       const char *what, const char *const *keys)
{
	char sub[PATH_MAX_LEN];

	if (!name_is_valid(k->text))
		cfg_err(x, k, path,
			"invalid %s name: expected 1-63 of [a-z0-9-_.], starting with a letter or "
			"digit",
			what);
	if (yaml_node_is_null(n)) {
		cfg_err(x, k, cfg_join(sub, path, "type"), "missing required key");
		return false;
	}
	if (!cfg_want_mapping(x, n, path))
		return false;
	cfg_check_keys(x, n, path, keys);
	return true;
}
