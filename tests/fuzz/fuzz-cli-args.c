/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the CLI's option parser with any command line: the input is the words after
 * "branchbox", one a line (at most 64). Whatever it says, a parse that succeeds names a
 * row, gives it only options that row declares and an argument count within the row's
 * bounds (help aside), hands over only words of argv, and keeps an option-looking word
 * as an argument only after "--" or the first argument of an options-first row. A parse
 * that fails says why. Help generation for the row found must not fault either.
 */
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-parse.h"
#include "macro.h"

#define MAX_WORDS 64

static int run_nothing(const CliArgs *a)
{
	(void)a;
	return 0;
}

/* clang-format off */
static const CliOption create_options[] = {
	{ "from", 0, "PARENT", "clone PARENT" },
	{ "follow", 'f', NULL, "a flag" },
	{},
};
static const CliOption run_options[] = {
	{ "memory", 'm', "BYTES", "memory limit" },
	{},
};
static const CliCommand table[] = {
	{ "status", "is the daemon there", NULL, 0, 0, CLI_STATE | CLI_JSON, NULL, NULL, run_nothing },
	{ "env", "environments", NULL, 0, 0, 0, NULL, NULL, NULL },
	{ "env create", "make one", "NAME", 1, 1, CLI_STATE | CLI_JSON, create_options, NULL, run_nothing },
	{ "env exec", "run in one", "NAME -- CMD [ARGS...]", 2, CLI_ARGS_ANY, CLI_STATE, create_options, NULL, run_nothing },
	{ "sandbox", "sandboxes", NULL, 0, 0, 0, NULL, NULL, NULL },
	{ "sandbox run", "run a command", "-- CMD [ARGS...]", 1, CLI_ARGS_ANY, CLI_OPTIONS_FIRST, run_options, NULL, run_nothing },
	{ "help", "help", "[VERB...]", 0, CLI_ARGS_ANY, 0, NULL, NULL, run_nothing },
};
/* clang-format on */

static bool in_argv(char *const *argv, int argc, const char *s)
{
	for (int i = 0; i < argc; i++)
		if (argv[i] == s)
			return true;
	return false;
}

/* A value is a word of argv or the part of one after '='. */
static bool points_into_argv(char *const *argv, int argc, const char *s)
{
	for (int i = 0; i < argc; i++)
		if (s >= argv[i] && s <= argv[i] + strlen(argv[i]))
			return true;
	return false;
}

static bool declared(const CliCommand *c, const CliOption *o)
{
	for (const CliOption *d = c->options; d && d->name; d++)
		if (d == o)
			return true;
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *in = malloc(size + 1);
	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';

	char *argv[MAX_WORDS + 2];
	int argc = 0;
	argv[argc++] = (char *)"branchbox";
	for (char *p = in; argc <= MAX_WORDS;) {
		argv[argc++] = p;
		char *nl = strchr(p, '\n');
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	argv[argc] = NULL;

	CliArgs a;
	BbxError err = BBX_ERROR_INIT;
	int r = cli_parse(table, ELEMENTSOF(table), argc, argv, &a, &err);
	if (r < 0) {
		if (!err.message[0])
			abort();
	} else {
		const CliCommand *c = a.command;
		if (!c && !a.help)
			abort();
		if (c && !a.help) {
			if (!c->run || a.n_args < c->min_args ||
			    (c->max_args != CLI_ARGS_ANY && a.n_args > c->max_args))
				abort();
		}
		if (a.args[a.n_args] != NULL)
			abort();
		for (size_t i = 0; i < a.n_values; i++)
			if (!declared(c, a.values[i].option) ||
			    (a.values[i].option->value && !a.values[i].value))
				abort();
		/* Words that look like options are arguments only after "--" or, on an
		 * options-first row, after its first argument. */
		bool dashdash = false;
		for (int i = 1; i < argc; i++)
			dashdash |= !strcmp(argv[i], "--");
		for (size_t i = 0; i < a.n_args; i++) {
			if (!in_argv(argv, argc, a.args[i]))
				abort();
			if (a.args[i][0] == '-' && a.args[i][1] && !dashdash &&
			    !(c && (c->flags & CLI_OPTIONS_FIRST) && i > 0))
				abort();
		}
		if (a.state && !points_into_argv(argv, argc, a.state))
			abort();
		for (size_t i = 0; i < a.n_values; i++)
			if (a.values[i].option->value &&
			    !points_into_argv(argv, argc, a.values[i].value))
				abort();
	}
	FILE *f = fopen("/dev/null", "w");
	if (f) {
		if (a.command)
			cli_help_command(f, table, ELEMENTSOF(table), a.command);
		else
			cli_help_all(f, table, ELEMENTSOF(table));
		fclose(f);
	}
	cli_args_done(&a);
	free(in);
	return 0;
}
