/* SPDX-License-Identifier: MIT */
/* branchbox deploy: build and start production from the production branch. */
#include <getopt.h>
#include <stdio.h>
#include <time.h>

#include "client.h"
#include "main.h"

int verb_deploy(int argc, char **argv)
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
			printf("Usage: branchbox deploy [--state DIR] [--json]\n"
			       "\n"
			       "Deploy production from the head of the production branch: on the "
			       "first\n"
			       "deploy create its volume and initialise its services; then check "
			       "the\n"
			       "commit out, run the build and deploy hooks and (re)start the "
			       "applications.\n"
			       "Production's data stays its own across deploys.\n");
			return EXIT_OK;
		default: return cli_usage_error("deploy", "bad option");
		}
	}
	if (optind < argc)
		return cli_usage_error("deploy", "unexpected argument '%s'", argv[optind]);
	if (!json)
		fprintf(stderr, "deploying production...\n");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	json_t *j = NULL;
	int ret = cli_call("deploy", state, "POST", "/v1/deploy", NULL, &j);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ret != EXIT_OK)
		return ret;
	if (json)
		cli_print_json(j);
	else
		fprintf(stderr, "production %s is %s at %.12s (%.2f s)\n",
			json_string_value(json_object_get(j, "name")),
			json_string_value(json_object_get(j, "state")),
			json_string_value(json_object_get(j, "commit")),
			(double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	json_decref(j);
	return EXIT_OK;
}
