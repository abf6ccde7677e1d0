/* SPDX-License-Identifier: MIT */
/*
 * branchbox-cli sandbox run: the same as `branchbox sandbox run` (sandbox-run.c), which the
 * small branchbox front binary (front.c) runs without exec'ing this one. Here the command
 * table has already parsed the line; the options are handed to sandbox_run_main() again as
 * one argv, so that there is one implementation of the sandbox verb.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "main.h"
#include "sandbox-run.h"

static int oom(void)
{
	fprintf(stderr, "branchbox sandbox run: out of memory\n");
	return 125;
}

int verb_sandbox_run(const CliArgs *a)
{
	size_t n = 2 + 2 * a->n_values + 1 + a->n_args;
	_cleanup_free_ char **argv = calloc(n + 1, sizeof(char *));
	_cleanup_free_ char **names = calloc(a->n_values + 1, sizeof(char *));
	size_t k = 0;
	int r;

	if (!argv || !names)
		return oom();
	argv[k++] = (char *)"sandbox";
	argv[k++] = (char *)"run";
	for (size_t i = 0; i < a->n_values; i++) {
		if (asprintf(&names[i], "--%s", a->values[i].option->name) < 0) {
			names[i] = NULL;
			r = oom();
			goto out;
		}
		argv[k++] = names[i];
		argv[k++] = (char *)a->values[i].value;
	}
	argv[k++] = (char *)"--";
	for (size_t i = 0; i < a->n_args; i++)
		argv[k++] = a->args[i];
	r = sandbox_run_main((int)k, argv);
out:
	for (size_t i = 0; i < a->n_values; i++)
		free(names[i]);
	return r;
}
