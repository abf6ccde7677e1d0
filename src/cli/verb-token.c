/* SPDX-License-Identifier: MIT */
/* branchbox token: mint, list and revoke scoped bearer tokens. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "main.h"
#include "parse.h"
#include "principal.h"

static const char *leading_state;

static void token_help(void)
{
	printf("Usage: branchbox token create (--agent NAME | --human NAME) --env GLOB... --verbs "
	       "LIST\n"
	       "                              [--ttl DURATION] [--budget-cpu-seconds DURATION]\n"
	       "                              [--budget-memory SIZE] [--budget-disk SIZE]\n"
	       "                              [--budget-wall-time DURATION] [--json] [--state "
	       "DIR]\n"
	       "       branchbox token list [--json] [--state DIR]\n"
	       "       branchbox token revoke ID [--state DIR]\n"
	       "\n"
	       "Mint, list and revoke bearer tokens. A new token is printed once, alone on its "
	       "line\n"
	       "on stdout (details on stderr); only its digest is stored.\n"
	       "\n"
	       "  --agent NAME     a token for an AI agent: must expire, never reaches "
	       "production,\n"
	       "                   never holds proposal:review, proposal:merge, audit:read, "
	       "token:admin\n"
	       "  --human NAME     a token for a person\n"
	       "  --env GLOB       an environment name or glob it may see (repeat for more)\n"
	       "  --verbs LIST     comma-separated: "
	       "env:read,env:create,env:exec,env:write,env:destroy,\n"
	       "                   "
	       "proposal:submit,proposal:review,proposal:merge,audit:read,token:admin\n"
	       "  --ttl DURATION   lifetime, e.g. 30m, 12h, 7d (agents: required, at most 30d)\n"
	       "  --budget-cpu-seconds DURATION, --budget-memory SIZE, --budget-disk SIZE,\n"
	       "  --budget-wall-time DURATION\n"
	       "                   narrow the budget of each preview this token creates below\n"
	       "                   production's (environments.preview.budget); never widens it.\n"
	       "                   A token minted by a token stays within its creator's budget.\n"
	       "  --json           print {id, token, ...} as JSON\n"
	       "\n"
	       "Minting, listing and revoking need token:admin (or root on the local socket).\n");
}

/* --budget-cpu-seconds (C), --budget-memory (M), --budget-disk (D), --budget-wall-time (W). */
static int budget_option(json_t *budget, int opt, const char *value)
{
	const char *key = opt == 'C'   ? "cpu_seconds"
			  : opt == 'M' ? "memory"
			  : opt == 'D' ? "disk"
				       : "wall_time";
	const char *flag = opt == 'C'	? "--budget-cpu-seconds"
			   : opt == 'M' ? "--budget-memory"
			   : opt == 'D' ? "--budget-disk"
					: "--budget-wall-time";
	bool size = opt == 'M' || opt == 'D';
	uint64_t v = 0;
	if ((size ? parse_size(value, &v) : parse_duration(value, &v)) < 0 || v == 0 ||
	    v > INT64_MAX)
		return cli_usage_error("token", "%s %s: expected %s", flag, value,
				       size ? "a size like 512M or 2G"
					    : "a duration like 90s, 30m or 2h");
	json_object_set_new(budget, key, json_integer((json_int_t)v));
	return EXIT_OK;
}

static int token_create(int argc, char **argv)
{
	static const struct option options[] = {
		{ "agent", required_argument, NULL, 'a' },
		{ "human", required_argument, NULL, 'H' },
		{ "env", required_argument, NULL, 'e' },
		{ "verbs", required_argument, NULL, 'V' },
		{ "ttl", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ "state", required_argument, NULL, 's' },
		{ "budget-cpu-seconds", required_argument, NULL, 'C' },
		{ "budget-memory", required_argument, NULL, 'M' },
		{ "budget-disk", required_argument, NULL, 'D' },
		{ "budget-wall-time", required_argument, NULL, 'W' },
		{}
	};
	const char *name = NULL, *kind = NULL, *verbs = NULL, *ttl = NULL, *state = leading_state;
	bool json = false;
	json_t *envs = json_array();
	json_t *budget = json_object();
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "a:H:e:V:t:js:C:M:D:W:", options, NULL)) >= 0) {
		switch (c) {
		case 'a':
		case 'H':
			if (kind) {
				json_decref(envs);
				return cli_usage_error("token",
						       "give exactly one of --agent and --human");
			}
			kind = c == 'a' ? "agent" : "human";
			name = optarg;
			break;
		case 'e': json_array_append_new(envs, json_string(optarg)); break;
		case 'V': verbs = optarg; break;
		case 't': ttl = optarg; break;
		case 'j': json = true; break;
		case 's': state = optarg; break;
		case 'C':
		case 'M':
		case 'D':
		case 'W': {
			int r = budget_option(budget, c, optarg);
			if (r != EXIT_OK) {
				json_decref(envs);
				json_decref(budget);
				return r;
			}
			break;
		}
		default:
			json_decref(envs);
			json_decref(budget);
			return cli_usage_error("token", "bad option");
		}
	}
	if (optind < argc || !kind || !verbs || json_array_size(envs) == 0) {
		json_decref(budget);
		json_decref(envs);
		return cli_usage_error(
			"token",
			"create needs --agent or --human NAME, --env GLOB and --verbs LIST");
	}
	uint32_t bits;
	const char *bad = NULL;
	if (verbs_parse(verbs, &bits, &bad) < 0) {
		json_decref(envs);
		json_decref(budget);
		return cli_usage_error("token", "--verbs: unknown verb '%s'", bad ? bad : "");
	}
	uint64_t secs = 0;
	if (ttl && (parse_duration(ttl, &secs) < 0 || secs == 0 || secs > INT64_MAX / 2)) {
		json_decref(envs);
		json_decref(budget);
		return cli_usage_error("token", "--ttl %s: expected a duration like 30m, 12h or 7d",
				       ttl);
	}
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
	int ret = cli_call("token", state, "POST", "/v1/tokens", body, &j);
	json_decref(body);
	if (ret != EXIT_OK)
		return ret;
	if (json)
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

static int token_list(int argc, char **argv)
{
	static const struct option options[] = { { "json", no_argument, NULL, 'j' },
						 { "state", required_argument, NULL, 's' },
						 {} };
	const char *state = leading_state;
	bool json = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "js:", options, NULL)) >= 0) {
		switch (c) {
		case 'j': json = true; break;
		case 's': state = optarg; break;
		default: return cli_usage_error("token", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("token", "unexpected argument '%s'", argv[optind]);
	json_t *j = NULL;
	int ret = cli_call("token", state, "GET", "/v1/tokens", NULL, &j);
	if (ret != EXIT_OK)
		return ret;
	if (json)
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

static int token_revoke(int argc, char **argv)
{
	static const struct option options[] = { { "state", required_argument, NULL, 's' }, {} };
	const char *state = leading_state;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:", options, NULL)) >= 0) {
		switch (c) {
		case 's': state = optarg; break;
		default: return cli_usage_error("token", "bad option");
		}
	}
	if (optind + 1 != argc)
		return cli_usage_error("token", "revoke takes exactly one token id");
	_cleanup_free_ char *id = cli_escape_segment(argv[optind]);
	char path[256];
	if (!id || snprintf(path, sizeof(path), "/v1/tokens/%s", id) >= (int)sizeof(path))
		return cli_usage_error("token", "token id too long");
	int ret = cli_call("token", state, "DELETE", path, NULL, NULL);
	if (ret == EXIT_OK)
		printf("revoked %s\n", argv[optind]);
	return ret;
}

/* "--state DIR" may come before the subcommand (branchbox token --state DIR list). */
const char *cli_take_leading_state(int *argc, char **argv)
{
	const char *state = NULL;
	while (*argc >= 2 && argv[1][0] == '-') {
		if (!strcmp(argv[1], "--state") && *argc >= 3) {
			state = argv[2];
			memmove(argv + 1, argv + 3, sizeof(char *) * (size_t)(*argc - 2));
			*argc -= 2;
		} else if (!strncmp(argv[1], "--state=", 8)) {
			state = argv[1] + 8;
			memmove(argv + 1, argv + 2, sizeof(char *) * (size_t)(*argc - 1));
			*argc -= 1;
		} else
			break;
	}
	return state;
}

int verb_token(int argc, char **argv)
{
	leading_state = cli_take_leading_state(&argc, argv);
	if (argc < 2 || cli_wants_help(argc, argv)) {
		token_help();
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	if (!strcmp(argv[1], "create"))
		return token_create(argc - 1, argv + 1);
	if (!strcmp(argv[1], "list"))
		return token_list(argc - 1, argv + 1);
	if (!strcmp(argv[1], "revoke"))
		return token_revoke(argc - 1, argv + 1);
	return cli_usage_error("token", "unknown subcommand '%s' (create, list, revoke)", argv[1]);
}
