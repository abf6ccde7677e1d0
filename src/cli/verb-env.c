/* SPDX-License-Identifier: MIT */
/* branchbox env ...: environments, as a client of the daemon's /v1/environments. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client.h"
#include "main.h"
#include "parse.h"
#include "strv.h"

static void env_help(void)
{
	printf("Usage: branchbox env COMMAND [OPTIONS]\n"
	       "\n"
	       "Environments: production and its copy-on-write previews.\n"
	       "\n"
	       "Commands:\n"
	       "  create NAME [--from PARENT] [--branch B]  clone PARENT (default production) for "
	       "branch B\n"
	       "                                            (default NAME), sanitize it, start it\n"
	       "  list [--json]                             environments you can see\n"
	       "  info NAME [--json]                        state, commit, processes, volume "
	       "usage\n"
	       "  logs NAME [PROCESS] [--follow]            a process's output (default: the "
	       "application)\n"
	       "  exec NAME [--app A] [--timeout S] -- CMD  run CMD inside NAME like its "
	       "application runs\n"
	       "  budget NAME [--json]                      a preview's budget: for CPU seconds, "
	       "peak memory,\n"
	       "                                            disk written beyond its clone and wall "
	       "time, the\n"
	       "                                            limit, what was used, what is left, "
	       "per cent used\n"
	       "  stop NAME | start NAME                    stop or start its processes (data "
	       "stays)\n"
	       "  destroy NAME                              remove it: processes, network, volume, "
	       "code\n"
	       "  files|cat|write|diff|config|services NAME  its files, code changes, config and "
	       "services\n"
	       "                                            (see 'branchbox env files --help')\n"
	       "\n"
	       "A preview is stopped when it uses up any part of its budget (its data is kept "
	       "until it\n"
	       "expires, and it cannot be started again); at 80%% the audit log records a "
	       "warning.\n"
	       "\n"
	       "Common options: --state DIR (local daemon), --json (machine-readable output).\n"
	       "Over HTTP, set BRANCHBOX_URL and BRANCHBOX_TOKEN.\n");
}

typedef struct EnvArgs {
	const char *state;
	const char *from;
	const char *branch;
	const char *app;
	long timeout;
	bool json;
	bool follow;
	int optind;
} EnvArgs;

static int parse(const char *verb, int argc, char **argv, EnvArgs *a)
{
	static const struct option options[] = { { "state", required_argument, NULL, 's' },
						 { "from", required_argument, NULL, 'f' },
						 { "branch", required_argument, NULL, 'b' },
						 { "app", required_argument, NULL, 'a' },
						 { "timeout", required_argument, NULL, 't' },
						 { "json", no_argument, NULL, 'j' },
						 { "follow", no_argument, NULL, 'F' },
						 { "help", no_argument, NULL, 'h' },
						 {} };
	int c;
	memset(a, 0, sizeof(*a));
	optind = 1;
	while ((c = getopt_long(argc, argv, "s:f:b:a:t:jFh", options, NULL)) >= 0) {
		switch (c) {
		case 's': a->state = optarg; break;
		case 'f': a->from = optarg; break;
		case 'b': a->branch = optarg; break;
		case 'a': a->app = optarg; break;
		case 't': {
			char *end;
			a->timeout = strtol(optarg, &end, 10);
			if (*end || a->timeout < 1 || a->timeout > 3600)
				return cli_usage_error(verb,
						       "--timeout: seconds between 1 and 3600");
			break;
		}
		case 'j': a->json = true; break;
		case 'F': a->follow = true; break;
		case 'h': env_help(); return -1;
		default: return cli_usage_error(verb, "bad option");
		}
	}
	a->optind = optind;
	return EXIT_OK;
}

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

static int need_name(const char *verb, int argc, char **argv, const EnvArgs *a, const char **ret)
{
	if (a->optind >= argc)
		return cli_usage_error(verb, "missing environment NAME");
	*ret = argv[a->optind];
	return EXIT_OK;
}

int verb_env(int argc, char **argv)
{
	EnvArgs a;
	json_t *j = NULL;
	const char *name = NULL;
	int ret;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		env_help();
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	/* Options may come before the command ("env --state DIR list"): move them after it. */
	int ci = 1;
	while (ci < argc && argv[ci][0] == '-' && strcmp(argv[ci], "--"))
		ci += (!strcmp(argv[ci], "--state") || !strcmp(argv[ci], "--from") ||
		       !strcmp(argv[ci], "--branch") || !strcmp(argv[ci], "--app") ||
		       !strcmp(argv[ci], "--timeout") || !strcmp(argv[ci], "--root") ||
		       !strcmp(argv[ci], "--offset") || !strcmp(argv[ci], "--limit") ||
		       !strcmp(argv[ci], "--mode") || !strcmp(argv[ci], "--against") ||
		       !strcmp(argv[ci], "--max-patch"))
			      ? 2
			      : 1;
	if (ci >= argc)
		return cli_usage_error("env", "missing command; see 'branchbox env --help'");
	if (ci > 1) {
		char *c0 = argv[ci];
		memmove(&argv[2], &argv[1], (size_t)(ci - 1) * sizeof(char *));
		argv[1] = c0;
	}
	const char *cmd = argv[1];
	if (env_files_command(cmd))
		return verb_env_files(argc - 1, argv + 1);
	char verb[64];
	snprintf(verb, sizeof(verb), "env %s", cmd);
	ret = parse(verb, argc - 1, argv + 1, &a);
	if (ret < 0)
		return EXIT_OK;
	if (ret != EXIT_OK)
		return ret;
	argc--;
	argv++;

	if (!strcmp(cmd, "list")) {
		if (a.optind < argc)
			return cli_usage_error(verb, "unexpected argument '%s'", argv[a.optind]);
		ret = cli_call(verb, a.state, "GET", "/v1/environments", NULL, &j);
		if (ret != EXIT_OK)
			return ret;
		json_t *list = json_object_get(j, "environments"), *e;
		size_t i;
		if (a.json)
			cli_print_json(list);
		else {
			printf("%-24s %-10s %-10s %-24s %s\n", "NAME", "KIND", "STATE", "BRANCH",
			       "COMMIT");
			json_array_foreach(list, i, e) printf(
				"%-24s %-10s %-10s %-24s %.12s\n", str(e, "name"), str(e, "kind"),
				str(e, "state"), str(e, "branch"), str(e, "commit"));
		}
		json_decref(j);
		return EXIT_OK;
	}

	if ((ret = need_name(verb, argc, argv, &a, &name)) != EXIT_OK)
		return ret;
	_cleanup_free_ char *path = NULL;

	if (!strcmp(cmd, "create")) {
		if (a.optind + 1 < argc)
			return cli_usage_error(verb, "unexpected argument '%s'",
					       argv[a.optind + 1]);
		json_t *body = json_pack("{s:s}", "name", name);
		if (a.from)
			json_object_set_new(body, "from", json_string(a.from));
		if (a.branch)
			json_object_set_new(body, "branch", json_string(a.branch));
		if (!a.json)
			fprintf(stderr, "creating %s from %s (snapshot, sanitize, start)...\n",
				name, a.from ? a.from : "production");
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		ret = cli_call(verb, a.state, "POST", "/v1/environments", body, &j);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		json_decref(body);
		if (ret != EXIT_OK)
			return ret;
		if (a.json)
			cli_print_json(j);
		else {
			print_info(j);
			fprintf(stderr, "ready in %.2f s\n",
				(double)(t1.tv_sec - t0.tv_sec) +
					(double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
		}
		json_decref(j);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "info") || !strcmp(cmd, "destroy") || !strcmp(cmd, "stop") ||
	    !strcmp(cmd, "start")) {
		if (a.optind + 1 < argc)
			return cli_usage_error(verb, "unexpected argument '%s'",
					       argv[a.optind + 1]);
		const char *method = !strcmp(cmd, "info")      ? "GET"
				     : !strcmp(cmd, "destroy") ? "DELETE"
							       : "POST";
		path = env_path(name, !strcmp(cmd, "stop")    ? "/stop"
				      : !strcmp(cmd, "start") ? "/start"
							      : NULL);
		if (!path)
			return EXIT_FAILURE_;
		ret = cli_call(verb, a.state, method, path, NULL, &j);
		if (ret != EXIT_OK)
			return ret;
		if (a.json)
			cli_print_json(j);
		else if (!strcmp(cmd, "destroy"))
			printf("destroyed %s\n", name);
		else
			print_info(j);
		json_decref(j);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "budget")) {
		if (a.optind + 1 < argc)
			return cli_usage_error(verb, "unexpected argument '%s'",
					       argv[a.optind + 1]);
		path = env_path(name, "/budget");
		ret = path ? cli_call(verb, a.state, "GET", path, NULL, &j) : EXIT_FAILURE_;
		if (ret != EXIT_OK)
			return ret;
		if (a.json)
			cli_print_json(j);
		else
			print_budget(json_object_get(j, "budget"), "");
		json_decref(j);
		return EXIT_OK;
	}
	if (!strcmp(cmd, "logs")) {
		const char *process = a.optind + 1 < argc ? argv[a.optind + 1] : NULL;
		long long offset = -65536;
		for (;;) {
			free(path);
			path = NULL;
			_cleanup_free_ char *base = env_path(name, "/logs");
			if (!base ||
			    asprintf(&path, "%s?offset=%lld%s%s", base, offset,
				     process ? "&process=" : "", process ? process : "") < 0)
				return EXIT_FAILURE_;
			ret = cli_call(verb, a.state, "GET", path, NULL, &j);
			if (ret != EXIT_OK)
				return ret;
			if (a.json && !a.follow)
				cli_print_json(j);
			else {
				fputs(str(j, "text"), stdout);
				fflush(stdout);
			}
			offset = (long long)json_integer_value(json_object_get(j, "next_offset"));
			json_decref(j);
			j = NULL;
			if (!a.follow)
				return EXIT_OK;
			usleep(500 * 1000);
		}
	}
	if (!strcmp(cmd, "exec")) {
		int first = a.optind + 1;
		if (first < argc && !strcmp(argv[first], "--"))
			first++;
		if (first >= argc)
			return cli_usage_error(
				verb, "missing command: branchbox env exec NAME -- CMD [ARGS]");
		json_t *argvj = json_array();
		for (int i = first; i < argc; i++)
			json_array_append_new(argvj, json_string(argv[i]));
		json_t *body = json_pack("{s:o}", "command", argvj);
		if (a.app)
			json_object_set_new(body, "application", json_string(a.app));
		if (a.timeout)
			json_object_set_new(body, "timeout", json_integer(a.timeout));
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
		path = env_path(name, "/exec");
		ret = path ? cli_call(verb, a.state, "POST", path, body, &j) : EXIT_FAILURE_;
		json_decref(body);
		if (ret != EXIT_OK)
			return ret;
		if (a.json)
			cli_print_json(j);
		else
			fputs(str(j, "output"), stdout);
		int code = (int)json_integer_value(json_object_get(j, "exit_code"));
		json_decref(j);
		return code;
	}
	return cli_usage_error("env", "unknown command '%s'", cmd);
}
