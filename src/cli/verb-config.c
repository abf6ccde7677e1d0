/* SPDX-License-Identifier: MIT */
/*
 * branchbox config check|show [DIR] [--json]: read the project config locally, without the
 * daemon, and report every problem with its FILE:LINE:COL.
 */
#include "main.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "macro.h"
#include "parse.h"

static int log_oom(void)
{
	log_error("config: out of memory");
	return EXIT_FAILURE_;
}

static void print_diagnostics(const ConfigDiagnostics *diag, FILE *f, bool notes)
{
	for (size_t i = 0; i < diag->n_items; i++) {
		const ConfigDiagnostic *d = &diag->items[i];
		if ((d->severity == CONFIG_SEVERITY_NOTE) != notes)
			continue;
		_cleanup_free_ char *line = config_diagnostic_format(d);
		fprintf(f, "%s\n", line ? line : d->message);
	}
	if (!notes && diag->truncated)
		fprintf(f, "%s: too many errors, stopped after %zu\n", diag->file ? diag->file : "",
			diag->n_errors);
}

static int print_json(json_t *j)
{
	_cleanup_free_ char *s = NULL;

	if (!j)
		return log_oom();
	s = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	if (!s)
		return log_oom();
	printf("%s\n", s);
	return 0;
}

static int check_json(const ConfigDiagnostics *diag, bool ok)
{
	json_t *o = json_object(), *errors = json_array(), *notes = json_array();

	for (size_t i = 0; errors && notes && i < diag->n_items; i++)
		json_array_append_new(diag->items[i].severity == CONFIG_SEVERITY_NOTE ? notes
										      : errors,
				      config_diagnostic_to_json(&diag->items[i]));
	if (!o || !errors || !notes) {
		json_decref(o);
		json_decref(errors);
		json_decref(notes);
		return log_oom();
	}
	json_object_set_new(o, "ok", json_boolean(ok));
	json_object_set_new(o, "file", diag->file ? json_string(diag->file) : json_null());
	json_object_set_new(o, "errors", errors);
	json_object_set_new(o, "notes", notes);
	json_object_set_new(o, "truncated", json_boolean(diag->truncated));
	return print_json(o);
}

static void print_resources(const char *label, const ConfigResources *r)
{
	char mem[32];
	printf("%scpu %g, memory %s", label, r->cpu_millis / 1000.0,
	       format_size(r->memory_bytes, mem, sizeof(mem)));
}

static void print_steps(const char *title, const ConfigStep *steps, size_t n)
{
	char dur[32];

	if (n == 0)
		return;
	printf("%s:\n", title);
	for (size_t i = 0; i < n; i++) {
		const ConfigStep *s = &steps[i];
		printf("  %s (timeout %s): ", s->name,
		       format_duration(s->timeout_sec, dur, sizeof(dur)));
		switch (s->kind) {
		case CONFIG_STEP_COMMAND:
			printf("command%s%s: %s\n", s->service ? " in " : "",
			       s->service ? s->service : "", s->command);
			break;
		case CONFIG_STEP_HTTP:
			printf("GET %s expects %u%s%s\n", s->http_path, s->expect_status,
			       s->expect_body_contains ? " containing " : "",
			       s->expect_body_contains ? s->expect_body_contains : "");
			break;
		case CONFIG_STEP_SQL:
			printf("sql on %s: %s", s->service, s->sql);
			if (s->has_expect_rows)
				printf(" (expects %llu rows)", (unsigned long long)s->expect_rows);
			if (s->expect_value)
				printf(" (expects '%s')", s->expect_value);
			printf("\n");
			break;
		}
	}
}

static void print_summary(const ProjectConfig *c)
{
	char a[32], b[32], d[32], e[32];

	printf("file: %s\nproduction branch: %s\n", c->file, c->production_branch);
	printf("applications:\n");
	for (size_t i = 0; i < c->n_applications; i++) {
		const ConfigApplication *app = &c->applications[i];
		printf("  %s: %s, root %s, ", app->name, app->type, app->source_root);
		print_resources("", &app->resources);
		printf("\n");
		if (app->has_web)
			printf("    web: port %u, healthcheck %s, start: %s\n", app->web_port,
			       app->web_healthcheck, app->web_start);
		for (size_t j = 0; j < app->n_relationships; j++)
			printf("    relationship %s -> %s%s%s\n", app->relationships[j].name,
			       app->relationships[j].service,
			       app->relationships[j].endpoint ? ":" : "",
			       app->relationships[j].endpoint ? app->relationships[j].endpoint
							      : "");
		for (size_t j = 0; j < app->n_mounts; j++)
			printf("    mount %s (%s: %s)\n", app->mounts[j].path,
			       config_mount_source_to_string(app->mounts[j].source),
			       app->mounts[j].source_path);
		for (size_t j = 0; j < app->n_env; j++)
			printf("    env %s=%s\n", app->env[j].name, app->env[j].value);
		if (app->hook_build)
			printf("    hook build: %zu bytes\n", strlen(app->hook_build));
		if (app->hook_deploy)
			printf("    hook deploy: %zu bytes\n", strlen(app->hook_deploy));
		if (app->hook_post_deploy)
			printf("    hook post_deploy: %zu bytes\n", strlen(app->hook_post_deploy));
	}
	if (c->n_services > 0)
		printf("services:\n");
	for (size_t i = 0; i < c->n_services; i++) {
		const ConfigService *s = &c->services[i];
		printf("  %s: %s, disk %s, ", s->name, s->type,
		       format_size(s->disk_bytes, a, sizeof(a)));
		print_resources("", &s->resources);
		printf("\n");
	}
	print_resources("preview: ", &c->preview_profile);
	printf(", ttl %s\n", format_duration(c->preview_ttl_sec, a, sizeof(a)));
	printf("preview budget: cpu %s, memory %s, disk %s, wall time %s\n",
	       format_duration(c->preview_budget.cpu_seconds, a, sizeof(a)),
	       format_size(c->preview_budget.memory_bytes, b, sizeof(b)),
	       format_size(c->preview_budget.disk_bytes, d, sizeof(d)),
	       format_duration(c->preview_budget.wall_time_sec, e, sizeof(e)));
	print_steps("sanitize", c->sanitize, c->n_sanitize);
	print_steps("validate", c->validate, c->n_validate);
	printf("egress:%s\n", c->n_egress ? "" : " none");
	for (size_t i = 0; i < c->n_egress; i++) {
		bool v6 = strchr(c->egress[i].host, ':') != NULL;
		if (c->egress[i].port)
			printf("  %s%s%s:%u\n", v6 ? "[" : "", c->egress[i].host, v6 ? "]" : "",
			       c->egress[i].port);
		else
			printf("  %s\n", c->egress[i].host);
	}
}

/* config check and config show. */
int verb_config(const CliArgs *a)
{
	_cleanup_(config_freep) ProjectConfig *c = NULL;
	ConfigDiagnostics diag;
	bool check = !strcmp(cli_command_word(a->command), "check");
	const char *dir = a->n_args ? a->args[0] : ".";
	const char *runtime_root = (check ? cli_arg_value(a, "runtime-root") : NULL) ?: "/";
	int r;

	config_diagnostics_init(&diag);
	r = config_load_dir(dir, &c, &diag);
	if (r >= 0 && check)
		r = config_check_runtimes(c, runtime_root, &diag);
	if (r == -ENOMEM) {
		config_diagnostics_done(&diag);
		return log_oom();
	}

	if (check) {
		if (a->json)
			check_json(&diag, r >= 0);
		else {
			print_diagnostics(&diag, stderr, true);
			if (r >= 0)
				printf("%s: ok\n", diag.file);
			else
				print_diagnostics(&diag, stdout, false);
		}
	} else if (r < 0) {
		if (a->json)
			check_json(&diag, false);
		else
			print_diagnostics(&diag, stderr, false);
	} else if (a->json)
		print_json(config_to_json(c));
	else {
		print_diagnostics(&diag, stderr, true);
		print_summary(c);
	}
	config_diagnostics_done(&diag);
	return r >= 0 ? EXIT_OK : EXIT_FAILURE_;
}
