/* SPDX-License-Identifier: MIT */
/* The environments section, production's sanitize and validate steps, and egress. */
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

/* ---- environments, steps, egress ------------------------------------------------------- */

void cfg_parse_environments(Ctx *x, const YamlNode *n)
{
	static const char *const keys[] = { "production_branch", "preview", NULL };
	static const char *const preview_keys[] = { "profile", "ttl", "budget", NULL };
	static const char *const budget_keys[] = { "cpu_seconds", "memory", "disk", "wall_time",
						   NULL };
	ProjectConfig *c = x->c;
	const YamlNode *v, *p, *b;

	if (!cfg_want_mapping(x, n, "environments"))
		return;
	cfg_check_keys(x, n, "environments", keys);
	if ((v = cfg_get(n, "production_branch")) &&
	    cfg_want_string(x, v, "environments.production_branch", NULL)) {
		/* A git ref name component: keep it simple and safe for paths and URLs. */
		if (strspn(v->text,
			   "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./") !=
			    v->len ||
		    strstr(v->text, "..") || v->text[0] == '/' || v->text[0] == '-' || v->len > 200)
			cfg_err(x, v, "environments.production_branch",
				"invalid branch name '%.64s'", v->text);
		else {
			free(c->production_branch);
			c->production_branch = cfg_strdup(x, v->text);
		}
	}
	p = cfg_get(n, "preview");
	if (!p || !cfg_want_mapping(x, p, "environments.preview"))
		return;
	cfg_check_keys(x, p, "environments.preview", preview_keys);
	if ((v = cfg_get(p, "profile")))
		cfg_parse_resources(x, v, "environments.preview.profile", &c->preview_profile);
	if ((v = cfg_get(p, "ttl")))
		c->preview_ttl_set =
			cfg_want_duration(x, v, "environments.preview.ttl", &c->preview_ttl_sec);
	b = cfg_get(p, "budget");
	if (!b || !cfg_want_mapping(x, b, "environments.preview.budget"))
		return;
	cfg_check_keys(x, b, "environments.preview.budget", budget_keys);
	if ((v = cfg_get(b, "cpu_seconds")) &&
	    cfg_want_duration(x, v, "environments.preview.budget.cpu_seconds",
			      &c->preview_budget.cpu_seconds))
		c->preview_budget.set |= CONFIG_SET_CPU_SECONDS;
	if ((v = cfg_get(b, "memory")) && cfg_want_size(x, v, "environments.preview.budget.memory",
							&c->preview_budget.memory_bytes))
		c->preview_budget.set |= CONFIG_SET_MEMORY;
	if ((v = cfg_get(b, "disk")) &&
	    cfg_want_size(x, v, "environments.preview.budget.disk", &c->preview_budget.disk_bytes))
		c->preview_budget.set |= CONFIG_SET_DISK;
	if ((v = cfg_get(b, "wall_time")) &&
	    cfg_want_duration(x, v, "environments.preview.budget.wall_time",
			      &c->preview_budget.wall_time_sec))
		c->preview_budget.set |= CONFIG_SET_WALL_TIME;
}

static void parse_step_common(Ctx *x, const YamlNode *n, const char *path, ConfigStep *st,
			      const char *prefix, size_t index)
{
	char sub[PATH_MAX_LEN];
	const YamlNode *v;

	st->timeout_sec = CONFIG_DEFAULT_STEP_TIMEOUT;
	if ((v = cfg_get(n, "name")) && cfg_want_string(x, v, cfg_join(sub, path, "name"), NULL)) {
		if (!name_is_valid(v->text))
			cfg_err(x, v, sub, "invalid step name: expected 1-63 of [a-z0-9-_.]");
		else
			st->name = cfg_strdup(x, v->text);
	}
	if (!st->name && asprintf(&st->name, "%s-%zu", prefix, index + 1) < 0) {
		st->name = NULL;
		x->r = -ENOMEM;
	}
	if ((v = cfg_get(n, "timeout")))
		cfg_want_duration(x, v, cfg_join(sub, path, "timeout"), &st->timeout_sec);
}

static void parse_sanitize_step(Ctx *x, const YamlNode *n, const char *path, ConfigStep *st,
				size_t index)
{
	static const char *const keys[] = { "name", "command", "sql", "service", "timeout", NULL };
	char sub[PATH_MAX_LEN], names[128];
	const YamlNode *cmd, *sql, *svc;

	cfg_check_keys(x, n, path, keys);
	parse_step_common(x, n, path, st, "sanitize", index);
	cmd = cfg_get(n, "command");
	sql = cfg_get(n, "sql");
	svc = cfg_get(n, "service");
	if (!!cmd == !!sql) {
		cfg_err(x, n, path, "expected exactly one of 'command' or 'sql'");
		return;
	}
	if (cmd) {
		st->kind = CONFIG_STEP_COMMAND;
		cfg_want_string(x, cmd, cfg_join(sub, path, "command"), &st->command);
		if (svc && cfg_want_string(x, svc, cfg_join(sub, path, "service"), &st->service) &&
		    !config_find_service(x->c, svc->text))
			cfg_err(x, svc, sub, "service '%.64s' is not defined under services",
				svc->text);
		return;
	}
	st->kind = CONFIG_STEP_SQL;
	cfg_want_string(x, sql, cfg_join(sub, path, "sql"), &st->sql);
	if (!svc)
		cfg_err(x, n, cfg_join(sub, path, "service"),
			"missing required key (sql steps name a service that takes SQL: %s)",
			cfg_service_type_names(names, sizeof(names), true));
	else if (cfg_want_string(x, svc, cfg_join(sub, path, "service"), &st->service))
		cfg_check_sql_service(x, svc, sub);
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

	cfg_check_keys(x, n, path, keys);
	parse_step_common(x, n, path, st, "validate", index);
	cmd = cfg_get(n, "command");
	http = cfg_get(n, "http");
	sql = cfg_get(n, "sql");
	if (!!cmd + !!http + !!sql != 1) {
		cfg_err(x, n, path, "expected exactly one of 'command', 'http' or 'sql'");
		return;
	}
	if (cmd) {
		st->kind = CONFIG_STEP_COMMAND;
		cfg_want_string(x, cmd, cfg_join(sub, path, "command"), &st->command);
	} else if (http) {
		st->kind = CONFIG_STEP_HTTP;
		st->expect_status = 200;
		if (!cfg_want_mapping(x, http, cfg_join(sub, path, "http")))
			return;
		cfg_check_keys(x, http, sub, http_keys);
		if ((v = cfg_get(http, "path")) &&
		    cfg_want_string(x, v, cfg_join(sub2, sub, "path"), NULL)) {
			if (!cfg_url_path_ok(v->text))
				cfg_err(x, v, sub2,
					"invalid path '%.64s': expected an absolute URL path",
					v->text);
			else
				st->http_path = cfg_strdup(x, v->text);
		} else if (!v)
			st->http_path = cfg_strdup(x, "/");
		if ((v = cfg_get(http, "expect_status")) &&
		    cfg_want_uint(x, v, cfg_join(sub2, sub, "expect_status"), 100, 599, &u))
			st->expect_status = (unsigned)u;
		if ((v = cfg_get(http, "expect_body_contains")))
			cfg_want_string(x, v, cfg_join(sub2, sub, "expect_body_contains"),
					&st->expect_body_contains);
	} else {
		st->kind = CONFIG_STEP_SQL;
		if (!cfg_want_mapping(x, sql, cfg_join(sub, path, "sql")))
			return;
		cfg_check_keys(x, sql, sub, sql_keys);
		if ((v = cfg_get(sql, "service"))) {
			if (cfg_want_string(x, v, cfg_join(sub2, sub, "service"), &st->service))
				cfg_check_sql_service(x, v, sub2);
		} else
			cfg_err(x, sql, cfg_join(sub2, sub, "service"), "missing required key");
		if ((v = cfg_get(sql, "query")))
			cfg_want_string(x, v, cfg_join(sub2, sub, "query"), &st->sql);
		else
			cfg_err(x, sql, cfg_join(sub2, sub, "query"), "missing required key");
		if (cfg_get(sql, "expect_rows") && cfg_get(sql, "expect_value"))
			cfg_err(x, cfg_get(sql, "expect_value"),
				cfg_join(sub2, sub, "expect_value"),
				"expect_rows and expect_value are exclusive");
		else if ((v = cfg_get(sql, "expect_rows")) &&
			 cfg_want_uint(x, v, cfg_join(sub2, sub, "expect_rows"), 0, UINT32_MAX,
				       &u)) {
			st->has_expect_rows = true;
			st->expect_rows = u;
		} else if ((v = cfg_get(sql, "expect_value")))
			cfg_want_string(x, v, cfg_join(sub2, sub, "expect_value"),
					&st->expect_value);
	}
}

void cfg_parse_steps(Ctx *x, const YamlNode *n, const char *path, ConfigStep **ret, size_t *ret_n,
		     bool validate)
{
	char sub[PATH_MAX_LEN];

	if (!cfg_want_sequence(x, n, path))
		return;
	*ret = calloc(n->n_children + 1, sizeof(ConfigStep));
	if (!*ret) {
		x->r = -ENOMEM;
		return;
	}
	for (size_t i = 0; i < n->n_children; i++) {
		const YamlNode *s = n->children[i];
		ConfigStep *st = &(*ret)[*ret_n];

		cfg_join_index(sub, path, i);
		if (!cfg_want_mapping(x, s, sub))
			continue;
		(*ret_n)++;
		if (validate)
			parse_validate_step(x, s, sub, st, i);
		else
			parse_sanitize_step(x, s, sub, st, i);
		for (size_t j = 0; st->name && j + 1 < *ret_n; j++)
			if ((*ret)[j].name && !strcmp((*ret)[j].name, st->name)) {
				const YamlNode *nn = cfg_get(s, "name");
				cfg_err(x, nn ? nn : s, sub, "duplicate step name '%s'", st->name);
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

void cfg_parse_egress_section(Ctx *x, const YamlNode *n)
{
	static const char *const keys[] = { "allow", NULL };
	char sub[PATH_MAX_LEN];
	const YamlNode *allow;
	ProjectConfig *c = x->c;

	if (!cfg_want_mapping(x, n, "egress"))
		return;
	cfg_check_keys(x, n, "egress", keys);
	allow = cfg_get(n, "allow");
	if (!allow || !cfg_want_sequence(x, allow, "egress.allow"))
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

		cfg_join_index(sub, "egress.allow", i);
		if (!cfg_want_string(x, v, sub, NULL))
			continue;
		r = parse_egress(v->text, &rule->host, &rule->port);
		if (r == -ENOMEM)
			x->r = r;
		else if (r == -ERANGE)
			cfg_err(x, v, sub, "invalid port in '%.64s': expected 1 to 65535", v->text);
		else if (r < 0)
			cfg_err(x, v, sub,
				"invalid host '%.64s': expected a DNS name or an IP address, with "
				"an "
				"optional :port",
				v->text);
		else
			c->n_egress++;
	}
}
