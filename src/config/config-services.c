/* SPDX-License-Identifier: MIT */
/* The services section: each service's type (a row of config-service-types.c), disk,
 * resources and free-form configuration. */
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

/* ---- services -------------------------------------------------------------------------- */

json_t *cfg_yaml_to_json(const YamlNode *n, unsigned depth)
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
			if (json_array_append_new(j, cfg_yaml_to_json(n->children[i], depth + 1)) <
			    0) {
				json_decref(j);
				return NULL;
			}
		return j;
	}
	j = json_object();
	for (size_t i = 0; j && i + 1 < n->n_children; i += 2)
		if (json_object_set_new(j, n->children[i]->text,
					cfg_yaml_to_json(n->children[i + 1], depth + 1)) < 0) {
			json_decref(j);
			return NULL;
		}
	return j;
}

/* "postgresql or redis": the types config accepts (sql_only: those that take SQL). */
const char *cfg_service_type_names(char *buf, size_t size, bool sql_only)
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

void cfg_parse_service(Ctx *x, const YamlNode *k, const YamlNode *n, ConfigService *svc)
{
	char names[128];
	static const char *const keys[] = { "type", "disk", "resources", "configuration", NULL };
	char path[PATH_MAX_LEN], sub[PATH_MAX_LEN];
	const YamlNode *v;

	cfg_join(path, "services", k->text);
	svc->name = cfg_strdup(x, k->text);
	svc->disk_bytes = DEFAULT_SERVICE_DISK;
	svc->resources = (ConfigResources){ DEFAULT_SERVICE_CPU, DEFAULT_SERVICE_MEMORY };
	svc->kind = _CONFIG_SERVICE_KIND_MAX;
	if (!cfg_named_mapping(x, k, n, path, "service", keys))
		return;
	if ((v = cfg_get(n, "type")) &&
	    cfg_want_string(x, v, cfg_join(sub, path, "type"), &svc->type)) {
		const char *colon = strchr(v->text, ':');
		size_t len = colon ? (size_t)(colon - v->text) : 0;
		for (size_t i = 0; colon && i < _CONFIG_SERVICE_KIND_MAX; i++)
			if (strlen(config_service_types[i].name) == len &&
			    !strncmp(config_service_types[i].name, v->text, len))
				svc->kind = config_service_types[i].kind;
		if (!colon || !colon[1] || colon[1] == '.' ||
		    strspn(colon + 1, "0123456789.") != strlen(colon + 1))
			cfg_err(x, v, sub,
				"invalid type '%.64s': expected SERVICE:VERSION, e.g. %s:%s",
				v->text, config_service_types[0].name,
				config_service_types[0].example_version);
		else if (svc->kind == _CONFIG_SERVICE_KIND_MAX)
			cfg_err(x, v, sub, "unknown service type '%.*s': expected %s",
				(int)(len > 64 ? 64 : len), v->text,
				cfg_service_type_names(names, sizeof(names), false));
		else
			svc->version = cfg_strdup(x, colon + 1);
	} else if (!v)
		cfg_err(x, k, cfg_join(sub, path, "type"), "missing required key");
	if ((v = cfg_get(n, "disk")))
		svc->disk_set = cfg_want_size(x, v, cfg_join(sub, path, "disk"), &svc->disk_bytes);
	if ((v = cfg_get(n, "resources")))
		cfg_parse_resources(x, v, cfg_join(sub, path, "resources"), &svc->resources);
	if ((v = cfg_get(n, "configuration")) &&
	    cfg_want_mapping(x, v, cfg_join(sub, path, "configuration"))) {
		json_decref(svc->configuration);
		svc->configuration = cfg_yaml_to_json(v, 0);
		if (!svc->configuration)
			x->r = -ENOMEM;
	}
	if (!svc->configuration && !(svc->configuration = json_object()))
		x->r = -ENOMEM;
}

void cfg_check_sql_service(Ctx *x, const YamlNode *v, const char *path)
{
	char names[128];
	const ConfigService *s = config_find_service(x->c, v->text);

	if (!s)
		cfg_err(x, v, path, "service '%.64s' is not defined under services", v->text);
	else if (config_service_type(s->kind) && !config_service_type(s->kind)->sql)
		cfg_err(x, v, path,
			"service '%.64s' is %s, not %s: sql steps need a service that takes SQL",
			v->text, config_service_kind_to_string(s->kind),
			cfg_service_type_names(names, sizeof(names), true));
}
