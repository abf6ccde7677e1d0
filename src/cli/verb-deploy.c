/* SPDX-License-Identifier: MIT */
/* branchbox deploy: build and start production from the production branch. */
#include <stdio.h>
#include <time.h>

#include "client.h"
#include "main.h"

int verb_deploy(const CliArgs *a)
{
	bool json = a->json;

	if (!json)
		fprintf(stderr, "deploying production...\n");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	json_t *j = NULL;
	int ret = cli_call(a->command->path, a->state, "POST", "/v1/deploy", NULL, &j);
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
