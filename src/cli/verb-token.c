/* SPDX-License-Identifier: MIT */
/* branchbox token: mint, list and revoke scoped bearer tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "main.h"
#include "parse.h"
#include "principal.h"

/* Each --budget-* option given narrows one dimension of the budget. */
static int budget_options(const CliArgs *a, json_t *budget)
{
	static const struct {
		const char *option, *key;
		bool size;
	} dims[] = {
		{ "budget-cpu-seconds", "cpu_seconds", false },
		{ "budget-memory", "memory", true },
		{ "budget-disk", "disk", true },
		{ "budget-wall-time", "wall_time", false },
	};
	for (size_t i = 0; i < ELEMENTSOF(dims); i++) {
		const char *value = cli_arg_value(a, dims[i].option);
		uint64_t v = 0;
		if (!value)
			continue;
		if ((dims[i].size ? parse_size(value, &v) : parse_duration(value, &v)) < 0 ||
		    v == 0 || v > INT64_MAX)
			return cli_usage_error(a->command->path, "--%s %s: expected %s",
					       dims[i].option, value,
					       dims[i].size ? "a size like 512M or 2G"
							    : "a duration like 90s, 30m or 2h");
		json_object_set_new(budget, dims[i].key, json_integer((json_int_t)v));
	}
	return EXIT_OK;
}

int verb_token_create(const CliArgs *a)
{
	const char *verb = a->command->path, *agent = cli_arg_value(a, "agent");
	const char *human = cli_arg_value(a, "human"), *verbs = cli_arg_value(a, "verbs");
	const char *ttl = cli_arg_value(a, "ttl"), *kind = agent ? "agent" : "human";
	const char *name = agent ? agent : human, *glob;

	if (agent && human)
		return cli_usage_error(verb, "give exactly one of --agent and --human");
	if (!name || !verbs || !cli_arg_flag(a, "env"))
		return cli_usage_error(verb, "needs --agent or --human NAME, --env GLOB and "
					     "--verbs LIST");
	uint32_t bits;
	const char *bad = NULL;
	if (verbs_parse(verbs, &bits, &bad) < 0)
		return cli_usage_error(verb, "--verbs: unknown verb '%s'", bad ? bad : "");
	uint64_t secs = 0;
	if (ttl && (parse_duration(ttl, &secs) < 0 || secs == 0 || secs > INT64_MAX / 2))
		return cli_usage_error(verb, "--ttl %s: expected a duration like 30m, 12h or 7d",
				       ttl);
	json_t *budget = json_object();
	if (!budget)
		return EXIT_FAILURE_;
	int r = budget_options(a, budget);
	if (r != EXIT_OK) {
		json_decref(budget);
		return r;
	}
	json_t *envs = json_array();
	for (size_t i = 0; envs && (glob = cli_arg_next(a, "env", &i));)
		json_array_append_new(envs, json_string(glob));
	json_t *verbs_j = json_array();
	for (uint32_t b = 1; b & VERB_ALL; b <<= 1)
		if (bits & b)
			json_array_append_new(verbs_j, json_string(verb_to_string(b)));
	json_t *body = json_pack("{s:s,s:s,s:o,s:o}", "kind", kind, "name", name, "scopes", envs,
				 "verbs", verbs_j);
	if (secs)
		json_object_set_new(body, "ttl_seconds", json_integer((json_int_t)secs));
	if (json_object_size(budget))
		json_object_set_new(body, "budget", budget);
	else
		json_decref(budget);

	json_t *j = NULL;
	int ret = cli_call(verb, a->state, "POST", "/v1/tokens", body, &j);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	if (a->json)
		cli_print_json(j);
	else {
		json_t *exp = json_object_get(j, "expires_at");
		printf("%s\n", json_string_value(json_object_get(j, "token")));
		fflush(stdout);
		fprintf(stderr, "token %s (%s %s) created; it is shown only this once.\n",
			json_string_value(json_object_get(j, "id")), kind, name);
		if (json_is_integer(exp)) {
			time_t t = (time_t)json_integer_value(exp);
			char buf[64];
			struct tm tm;
			gmtime_r(&t, &tm);
			strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", &tm);
			fprintf(stderr, "expires: %s\n", buf);
		}
		json_t *budget_j = json_object_get(j, "budget");
		if (json_object_size(budget_j)) {
			_cleanup_free_ char *b =
				json_dumps(budget_j, JSON_COMPACT | JSON_SORT_KEYS);
			fprintf(stderr, "budget of its previews at most: %s\n", b ? b : "?");
		}
	}
	json_decref(j);
	return EXIT_OK;
}

int verb_token_list(const CliArgs *a)
{
	json_t *j = NULL;
	int ret = cli_call(a->command->path, a->state, "GET", "/v1/tokens", NULL, &j);
	if (ret != EXIT_OK)
		return ret;
	if (a->json)
		cli_print_json(j);
	else {
		size_t i;
		json_t *t;
		printf("%-18s %-6s %-20s %-8s %s\n", "ID", "KIND", "NAME", "STATE", "SCOPES");
		json_array_foreach(json_object_get(j, "tokens"), i, t)
		{
			json_t *exp = json_object_get(t, "expires_at");
			const char *st =
				!json_is_null(json_object_get(t, "revoked_at")) ? "revoked"
				: json_is_integer(exp) && json_integer_value(exp) <= time(NULL)
					? "expired"
					: "active";
			_cleanup_free_ char *scopes =
				json_dumps(json_object_get(t, "scopes"), JSON_COMPACT);
			printf("%-18s %-6s %-20s %-8s %s\n",
			       json_string_value(json_object_get(t, "id")),
			       json_string_value(json_object_get(t, "kind")),
			       json_string_value(json_object_get(t, "name")), st,
			       scopes ? scopes : "");
		}
	}
	json_decref(j);
	return EXIT_OK;
}

int verb_token_revoke(const CliArgs *a)
{
	_cleanup_free_ char *id = cli_escape_segment(a->args[0]);
	char path[256];
	if (!id || snprintf(path, sizeof(path), "/v1/tokens/%s", id) >= (int)sizeof(path))
		return cli_usage_error(a->command->path, "token id too long");
	int ret = cli_call(a->command->path, a->state, "DELETE", path, NULL, NULL);
	if (ret == EXIT_OK)
		printf("revoked %s\n", a->args[0]);
	return ret;
}
