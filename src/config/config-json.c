/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>

#include "macro.h"

static void json_unrefp(json_t **j)
{
	json_decref(*j);
}
#define _cleanup_json_ _cleanup_(json_unrefp)

/* json_object_set_new() that remembers a failure, so building reads as a straight line. */
static void set(json_t *o, const char *key, json_t *v, bool *failed)
{
	if (!v || json_object_set_new(o, key, v) < 0)
		*failed = true;
}

static json_t *string_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

static json_t *resources_to_json(const ConfigResources *r, bool *failed)
{
	json_t *o = json_object();
	if (!o) {
		*failed = true;
		return NULL;
	}
	set(o, "cpu", json_real((double)r->cpu_millis / 1000.0), failed);
	set(o, "memory", json_integer((json_int_t)r->memory_bytes), failed);
	return o;
}

static json_t *step_to_json(const ConfigStep *st, bool *failed)
{
	json_t *o = json_object(), *sub;

	if (!o) {
		*failed = true;
		return NULL;
	}
	set(o, "name", string_or_null(st->name), failed);
	set(o, "timeout", json_integer((json_int_t)st->timeout_sec), failed);
	switch (st->kind) {
	case CONFIG_STEP_COMMAND:
		set(o, "command", string_or_null(st->command), failed);
		set(o, "service", string_or_null(st->service), failed);
		break;
	case CONFIG_STEP_HTTP:
		sub = json_object();
		if (sub) {
			set(sub, "path", string_or_null(st->http_path), failed);
			set(sub, "expect_status", json_integer(st->expect_status), failed);
			set(sub, "expect_body_contains", string_or_null(st->expect_body_contains),
			    failed);
		}
		set(o, "http", sub, failed);
		break;
	case CONFIG_STEP_SQL:
		/* Only validate steps come here; sanitize sql steps are flat. */
		{
			sub = json_object();
			if (sub) {
				set(sub, "service", string_or_null(st->service), failed);
				set(sub, "query", string_or_null(st->sql), failed);
				set(sub, "expect_rows",
				    st->has_expect_rows ? json_integer((json_int_t)st->expect_rows)
							: json_null(),
				    failed);
				set(sub, "expect_value", string_or_null(st->expect_value), failed);
			}
			set(o, "sql", sub, failed);
		}
		break;
	}
	return o;
}

static json_t *steps_to_json(const ConfigStep *steps, size_t n, bool sanitize, bool *failed)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++) {
		json_t *o;
		if (sanitize && steps[i].kind == CONFIG_STEP_SQL) {
			o = json_object();
			if (o) {
				set(o, "name", string_or_null(steps[i].name), failed);
				set(o, "timeout", json_integer((json_int_t)steps[i].timeout_sec),
				    failed);
				set(o, "sql", string_or_null(steps[i].sql), failed);
				set(o, "service", string_or_null(steps[i].service), failed);
			}
		} else
			o = step_to_json(&steps[i], failed);
		if (!o || json_array_append_new(a, o) < 0)
			*failed = true;
	}
	if (!a)
		*failed = true;
	return a;
}

static json_t *application_to_json(const ConfigApplication *a, bool *failed)
{
	json_t *o = json_object(), *sub, *sub2;

	if (!o) {
		*failed = true;
		return NULL;
	}
	sub = json_object();
	if (sub)
		set(sub, "root", string_or_null(a->source_root), failed);
	set(o, "source", sub, failed);
	set(o, "type", string_or_null(a->type), failed);
	set(o, "runtime", string_or_null(a->runtime), failed);
	set(o, "runtime_version", string_or_null(a->runtime_version), failed);
	if (a->has_web) {
		sub = json_object();
		if (sub) {
			sub2 = json_object();
			if (sub2)
				set(sub2, "start", string_or_null(a->web_start), failed);
			set(sub, "commands", sub2, failed);
			set(sub, "port", json_integer(a->web_port), failed);
			set(sub, "healthcheck", string_or_null(a->web_healthcheck), failed);
		}
		set(o, "web", sub, failed);
	} else
		set(o, "web", json_null(), failed);

	sub = json_object();
	if (sub) {
		set(sub, "build", string_or_null(a->hook_build), failed);
		set(sub, "deploy", string_or_null(a->hook_deploy), failed);
		set(sub, "post_deploy", string_or_null(a->hook_post_deploy), failed);
	}
	set(o, "hooks", sub, failed);

	sub = json_object();
	for (size_t i = 0; sub && i < a->n_relationships; i++) {
		sub2 = json_object();
		if (sub2) {
			set(sub2, "service", string_or_null(a->relationships[i].service), failed);
			set(sub2, "endpoint", string_or_null(a->relationships[i].endpoint), failed);
		}
		set(sub, a->relationships[i].name, sub2, failed);
	}
	set(o, "relationships", sub, failed);

	sub = json_object();
	for (size_t i = 0; sub && i < a->n_mounts; i++) {
		sub2 = json_object();
		if (sub2) {
			set(sub2, "source",
			    json_string(config_mount_source_to_string(a->mounts[i].source)),
			    failed);
			set(sub2, "source_path", string_or_null(a->mounts[i].source_path), failed);
		}
		set(sub, a->mounts[i].path, sub2, failed);
	}
	set(o, "mounts", sub, failed);

	sub = json_object();
	sub2 = json_object();
	for (size_t i = 0; sub2 && i < a->n_env; i++)
		set(sub2, a->env[i].name, string_or_null(a->env[i].value), failed);
	if (sub)
		set(sub, "env", sub2, failed);
	else
		json_decref(sub2);
	set(o, "variables", sub, failed);
	set(o, "resources", resources_to_json(&a->resources, failed), failed);
	return o;
}

json_t *config_to_json(const ProjectConfig *c)
{
	_cleanup_json_ json_t *o = json_object();
	json_t *sub, *sub2, *sub3;
	bool failed = false;

	if (!o || !c)
		return NULL;
	set(o, "file", string_or_null(c->file), &failed);

	sub = json_object();
	for (size_t i = 0; sub && i < c->n_applications; i++)
		set(sub, c->applications[i].name, application_to_json(&c->applications[i], &failed),
		    &failed);
	set(o, "applications", sub, &failed);

	sub = json_object();
	for (size_t i = 0; sub && i < c->n_services; i++) {
		const ConfigService *s = &c->services[i];
		sub2 = json_object();
		if (sub2) {
			set(sub2, "type", string_or_null(s->type), &failed);
			set(sub2, "kind", json_string(config_service_kind_to_string(s->kind)),
			    &failed);
			set(sub2, "version", string_or_null(s->version), &failed);
			set(sub2, "disk", json_integer((json_int_t)s->disk_bytes), &failed);
			set(sub2, "resources", resources_to_json(&s->resources, &failed), &failed);
			set(sub2, "configuration",
			    s->configuration ? json_deep_copy(s->configuration) : json_object(),
			    &failed);
		}
		set(sub, s->name, sub2, &failed);
	}
	set(o, "services", sub, &failed);

	sub = json_object();
	if (sub) {
		set(sub, "production_branch", string_or_null(c->production_branch), &failed);
		sub2 = json_object();
		if (sub2) {
			set(sub2, "profile", resources_to_json(&c->preview_profile, &failed),
			    &failed);
			set(sub2, "ttl", json_integer((json_int_t)c->preview_ttl_sec), &failed);
			sub3 = json_object();
			if (sub3) {
				set(sub3, "cpu_seconds",
				    json_integer((json_int_t)c->preview_budget.cpu_seconds),
				    &failed);
				set(sub3, "memory",
				    json_integer((json_int_t)c->preview_budget.memory_bytes),
				    &failed);
				set(sub3, "disk",
				    json_integer((json_int_t)c->preview_budget.disk_bytes),
				    &failed);
				set(sub3, "wall_time",
				    json_integer((json_int_t)c->preview_budget.wall_time_sec),
				    &failed);
			}
			set(sub2, "budget", sub3, &failed);
		}
		set(sub, "preview", sub2, &failed);
	}
	set(o, "environments", sub, &failed);

	set(o, "sanitize", steps_to_json(c->sanitize, c->n_sanitize, true, &failed), &failed);
	set(o, "validate", steps_to_json(c->validate, c->n_validate, false, &failed), &failed);

	sub = json_object();
	sub2 = json_array();
	for (size_t i = 0; sub2 && i < c->n_egress; i++) {
		sub3 = json_object();
		if (sub3) {
			set(sub3, "host", string_or_null(c->egress[i].host), &failed);
			set(sub3, "port",
			    c->egress[i].port ? json_integer(c->egress[i].port) : json_null(),
			    &failed);
		}
		if (!sub3 || json_array_append_new(sub2, sub3) < 0)
			failed = true;
	}
	if (sub)
		set(sub, "allow", sub2, &failed);
	else
		json_decref(sub2);
	set(o, "egress", sub, &failed);

	if (failed)
		return NULL;
	return TAKE_PTR(o);
}
