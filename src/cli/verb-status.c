/* SPDX-License-Identifier: MIT */
/* branchbox status: is the daemon there, and who am I to it. */
#include <stdio.h>

#include "client.h"
#include "main.h"

int verb_status(const CliArgs *a)
{
	json_t *j = NULL;
	int ret = cli_call(a->command->path, a->state, "GET", "/v1/version", NULL, &j);
	if (ret != EXIT_OK)
		return ret;
	if (a->json)
		cli_print_json(j);
	else
		printf("daemon: running, version %s\nyou are: %s (%s)\n",
		       json_string_value(json_object_get(j, "version")),
		       json_string_value(json_object_get(j, "principal")),
		       json_string_value(json_object_get(j, "kind")));
	json_decref(j);
	return EXIT_OK;
}
