/* SPDX-License-Identifier: MIT */
/* branchbox status: is the daemon there, and who am I to it. */
#include <getopt.h>
#include <stdio.h>

#include "client.h"
#include "main.h"

int verb_status(int argc, char **argv)
{
	static const struct option options[] = { { "state", required_argument, NULL, 's' },
						 { "json", no_argument, NULL, 'j' },
						 { "help", no_argument, NULL, 'h' },
						 {} };
	const char *state = NULL;
	bool json = false;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "s:jh", options, NULL)) >= 0) {
		switch (c) {
		case 's': state = optarg; break;
		case 'j': json = true; break;
		case 'h':
			printf("Usage: branchbox status [--state DIR] [--json]\n"
			       "\n"
			       "Check that the daemon answers and show who it takes you for.\n"
			       "Exit status 3 when the daemon is not running.\n");
			return EXIT_OK;
		default: return cli_usage_error("status", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("status", "unexpected argument '%s'", argv[optind]);

	json_t *j = NULL;
	int ret = cli_call("status", state, "GET", "/v1/version", NULL, &j);
	if (ret != EXIT_OK)
		return ret;
	if (json)
		cli_print_json(j);
	else
		printf("daemon: running, version %s\nyou are: %s (%s)\n",
		       json_string_value(json_object_get(j, "version")),
		       json_string_value(json_object_get(j, "principal")),
		       json_string_value(json_object_get(j, "kind")));
	json_decref(j);
	return EXIT_OK;
}
