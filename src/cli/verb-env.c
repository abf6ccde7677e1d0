/* SPDX-License-Identifier: MIT */
/* branchbox env ...: environments, as a client of the daemon's /v1/environments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "main.h"
#include "parse.h"
#include "strv.h"

static const char *str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "-";
}

/* One dimension's numbers in its unit: "12.3s", "1.5G", "1h2m". */
static void budget_value(json_t *v, const char *dim, char *buf, size_t size)
{
	if (!strcmp(dim, "cpu_seconds")) {
		if (json_is_integer(v))
			snprintf(buf, size, "%llds", (long long)json_integer_value(v));
		else
			snprintf(buf, size, "%.1fs", json_number_value(v));
		return;
	}
	uint64_t n = json_is_integer(v) && json_integer_value(v) > 0
			     ? (uint64_t)json_integer_value(v)
			     : 0;
	if (!strcmp(dim, "wall_time"))
		format_duration(n, buf, size);
	else
		format_size(n, buf, size);
}

static void print_budget(json_t *b, const char *indent)
{
	static const char *const dims[] = { "cpu_seconds", "memory", "disk", "wall_time" };
	printf("%s%-12s %-10s %-10s %-10s %s\n", indent, "BUDGET", "USED", "LIMIT", "LEFT",
	       "USED%");
	for (size_t i = 0; i < ELEMENTSOF(dims); i++) {
		json_t *d = json_object_get(b, dims[i]);
		if (!d)
			continue;
		char used[32], limit[32], left[32];
		budget_value(json_object_get(d, "used"), dims[i], used, sizeof(used));
		budget_value(json_object_get(d, "limit"), dims[i], limit, sizeof(limit));
		budget_value(json_object_get(d, "left"), dims[i], left, sizeof(left));
		printf("%s%-12s %-10s %-10s %-10s %lld%%\n", indent, dims[i], used, limit, left,
		       (long long)json_integer_value(json_object_get(d, "percent")));
	}
	printf("%sstate: %s", indent, str(b, "state"));
	if (json_is_string(json_object_get(b, "exhausted")))
		printf(" (%s)", str(b, "exhausted"));
	printf("; limits from %s\n", str(b, "source"));
}

static void print_info(json_t *e)
{
	printf("name:     %s (%s)\n", str(e, "name"), str(e, "kind"));
	printf("state:    %s\n", str(e, "state"));
	printf("branch:   %s at %.12s\n", str(e, "branch"), str(e, "commit"));
	if (json_is_string(json_object_get(e, "parent")))
		printf("parent:   %s\n", str(e, "parent"));
	json_t *exp = json_object_get(e, "expires_at");
	if (json_is_integer(exp)) {
		long left = (long)(json_integer_value(exp) - time(NULL));
		printf("expires:  in %lds\n", left > 0 ? left : 0);
	}
	if (json_is_string(json_object_get(e, "error")))
		printf("error:    %s\n", str(e, "error"));
	printf("preview:  %s\n", str(e, "preview_path"));
	json_t *procs = json_object_get(e, "processes"), *p;
	size_t i;
	if (json_array_size(procs)) {
		printf("processes:\n");
		json_array_foreach(procs, i, p)
			printf("  %-12s %-12s %-10s port %-6lld pid %-8lld restarts %lld\n",
			       str(p, "name"), str(p, "kind"), str(p, "state"),
			       (long long)json_integer_value(json_object_get(p, "port")),
			       (long long)json_integer_value(json_object_get(p, "pid")),
			       (long long)json_integer_value(json_object_get(p, "restarts")));
	}
	json_t *vol = json_object_get(e, "volume");
	if (vol && json_is_integer(json_object_get(vol, "exclusive_bytes")))
		printf("volume:   %lld bytes exclusive\n",
		       (long long)json_integer_value(json_object_get(vol, "exclusive_bytes")));
	json_t *budget = json_object_get(e, "budget");
	if (json_is_object(budget)) {
		printf("budget:\n");
		print_budget(budget, "  ");
	}
	json_t *ceil = json_object_get(e, "ceilings");
	if (ceil) {
		char mem[32] = "unbounded", disk[32] = "unbounded", pids[32] = "unbounded",
		     cpu[32] = "unbounded";
		json_t *v;
		if (json_is_integer(v = json_object_get(ceil, "memory_bytes")))
			format_size((uint64_t)json_integer_value(v), mem, sizeof(mem));
		if (json_is_integer(v = json_object_get(ceil, "pids")))
			snprintf(pids, sizeof(pids), "%lld", (long long)json_integer_value(v));
		if (json_is_number(v = json_object_get(ceil, "cpu")))
			snprintf(cpu, sizeof(cpu), "%g", json_number_value(v));
		printf("ceilings: memory %s, %s processes, %s CPUs in all\n", mem, pids, cpu);
		if (json_is_integer(v = json_object_get(ceil, "disk_bytes")))
			format_size((uint64_t)json_integer_value(v), disk, sizeof(disk));
		if (json_object_get(ceil, "disk_bytes"))
			printf("disk:     %s beyond the clone%s%s\n", disk,
			       json_is_string(json_object_get(ceil, "disk_not_enforced"))
				       ? ", NOT ENFORCED: "
				       : "",
			       json_is_string(json_object_get(ceil, "disk_not_enforced"))
				       ? str(ceil, "disk_not_enforced")
				       : "");
	}
}

static char *env_path(const char *name, const char *suffix)
{
	_cleanup_free_ char *esc = cli_escape_segment(name);
	char *p = NULL;
	if (!esc || asprintf(&p, "/v1/environments/%s%s", esc, suffix ? suffix : "") < 0)
		return NULL;
	return p;
}

static int print_result(const CliArgs *a, json_t *j, void (*print)(json_t *))
{
	if (a->json)
		cli_print_json(j);
	else
		print(j);
	json_decref(j);
	return EXIT_OK;
}

int verb_env_list(const CliArgs *a)
{
	json_t *j = NULL;
	int ret = cli_call(a->command->path, a->state, "GET", "/v1/environments", NULL, &j);
	if (ret != EXIT_OK)
		return ret;
	json_t *list = json_object_get(j, "environments"), *e;
	size_t i;
	if (a->json)
		cli_print_json(list);
	else {
		printf("%-24s %-10s %-10s %-24s %s\n", "NAME", "KIND", "STATE", "BRANCH", "COMMIT");
		json_array_foreach(list, i, e)
			printf("%-24s %-10s %-10s %-24s %.12s\n", str(e, "name"), str(e, "kind"),
			       str(e, "state"), str(e, "branch"), str(e, "commit"));
	}
	json_decref(j);
	return EXIT_OK;
}

int verb_env_create(const CliArgs *a)
{
	const char *name = a->args[0], *from = cli_arg_value(a, "from");
	const char *branch = cli_arg_value(a, "branch");
	json_t *j = NULL;

	json_t *body = json_pack("{s:s}", "name", name);
	if (!body)
		return EXIT_FAILURE_;
	if (from)
		json_object_set_new(body, "from", json_string(from));
	if (branch)
		json_object_set_new(body, "branch", json_string(branch));
	if (!a->json)
		fprintf(stderr, "creating %s from %s (snapshot, sanitize, start)...\n", name,
			from ? from : "production");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int ret = cli_call(a->command->path, a->state, "POST", "/v1/environments", body, &j);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	if (a->json)
		cli_print_json(j);
	else {
		print_info(j);
		fprintf(stderr, "ready in %.2f s\n",
			(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	}
	json_decref(j);
	return EXIT_OK;
}

static void print_nothing(json_t *j)
{
	(void)j;
}

/* env info, stop, start and destroy: one request each, answered with the environment. */
int verb_env_show(const CliArgs *a)
{
	const char *cmd = cli_command_word(a->command), *name = a->args[0];
	bool info = !strcmp(cmd, "info"), destroy = !strcmp(cmd, "destroy");
	const char *method = info ? "GET" : destroy ? "DELETE" : "POST";
	json_t *j = NULL;

	_cleanup_free_ char *path = env_path(name, !strcmp(cmd, "stop")	   ? "/stop"
						   : !strcmp(cmd, "start") ? "/start"
									   : NULL);
	if (!path)
		return EXIT_FAILURE_;
	int ret = cli_call(a->command->path, a->state, method, path, NULL, &j);
	if (ret != EXIT_OK)
		return ret;
	if (destroy && !a->json)
		printf("destroyed %s\n", name);
	return print_result(a, j, destroy ? print_nothing : print_info);
}

static void print_budget_of(json_t *j)
{
	print_budget(json_object_get(j, "budget"), "");
}

int verb_env_budget(const CliArgs *a)
{
	json_t *j = NULL;
	_cleanup_free_ char *path = env_path(a->args[0], "/budget");
	int ret =
		path ? cli_call(a->command->path, a->state, "GET", path, NULL, &j) : EXIT_FAILURE_;
	if (ret != EXIT_OK)
		return ret;
	return print_result(a, j, print_budget_of);
}

int verb_env_logs(const CliArgs *a)
{
	const char *name = a->args[0], *process = a->n_args > 1 ? a->args[1] : NULL;
	bool follow = cli_arg_flag(a, "follow");
	long long offset = -65536;

	for (;;) {
		_cleanup_free_ char *base = env_path(name, "/logs");
		_cleanup_free_ char *path = NULL;
		json_t *j = NULL;
		if (!base || asprintf(&path, "%s?offset=%lld%s%s", base, offset,
				      process ? "&process=" : "", process ? process : "") < 0)
			return EXIT_FAILURE_;
		int ret = cli_call(a->command->path, a->state, "GET", path, NULL, &j);
		if (ret != EXIT_OK)
			return ret;
		if (a->json && !follow)
			cli_print_json(j);
		else {
			fputs(str(j, "text"), stdout);
			fflush(stdout);
		}
		offset = (long long)json_integer_value(json_object_get(j, "next_offset"));
		json_decref(j);
		if (!follow)
			return EXIT_OK;
		usleep(500 * 1000);
	}
}

int verb_env_exec(const CliArgs *a)
{
	const char *app = cli_arg_value(a, "app"), *timeout = cli_arg_value(a, "timeout");
	long secs = 0;
	json_t *j = NULL;

	if (timeout) {
		char *end;
		secs = strtol(timeout, &end, 10);
		if (!*timeout || *end || secs < 1 || secs > 3600)
			return cli_usage_error(a->command->path,
					       "--timeout %s: seconds between 1 and 3600", timeout);
	}
	json_t *argvj = json_array();
	for (size_t i = 1; argvj && i < a->n_args; i++)
		json_array_append_new(argvj, json_string(a->args[i]));
	json_t *body = json_pack("{s:o}", "command", argvj);
	if (!body)
		return EXIT_FAILURE_;
	if (app)
		json_object_set_new(body, "application", json_string(app));
	if (secs)
		json_object_set_new(body, "timeout", json_integer(secs));
	if (!isatty(STDIN_FILENO)) {
		/* Pass piped input along (bounded by the request size limit). */
		char *in = NULL;
		size_t n = 0;
		FILE *m = open_memstream(&in, &n);
		char buf[8192];
		size_t k;
		while (m && (k = fread(buf, 1, sizeof(buf), stdin)) > 0)
			fwrite(buf, 1, k, m);
		if (m)
			fclose(m);
		if (n)
			json_object_set_new(body, "stdin", json_stringn(in, n));
		free(in);
	}
	_cleanup_free_ char *path = env_path(a->args[0], "/exec");
	int ret =
		path ? cli_call(a->command->path, a->state, "POST", path, body, &j) : EXIT_FAILURE_;
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	if (a->json)
		cli_print_json(j);
	else
		fputs(str(j, "output"), stdout);
	int code = (int)json_integer_value(json_object_get(j, "exit_code"));
	json_decref(j);
	return code;
}
