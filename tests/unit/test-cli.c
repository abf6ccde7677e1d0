/* SPDX-License-Identifier: MIT */
/* The CLI's option parser and help generation, over a table shaped like the real one. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli-parse.h"
#include "macro.h"

static int run_nothing(const CliArgs *a)
{
	(void)a;
	return 0;
}

/* clang-format off */
static const CliOption create_options[] = {
	{ "from", 0, "PARENT", "clone PARENT" },
	{ "env", 0, "GLOB", "repeatable" },
	{ "follow", 0, NULL, "a flag" },
	{},
};
static const CliOption run_options[] = {
	{ "memory", 0, "BYTES", "memory limit" },
	{ "verbose", 'v', NULL, "chatty" },
	{},
};
static const CliCommand table[] = {
	{ "status", "is the daemon there", NULL, 0, 0, CLI_STATE | CLI_JSON, NULL, NULL, run_nothing },
	{ "env", "environments", NULL, 0, 0, 0, NULL, "More about environments.\n", NULL },
	{ "env create", "make one", "NAME", 1, 1, CLI_STATE | CLI_JSON, create_options, NULL, run_nothing },
	{ "env list", "list them", NULL, 0, 0, CLI_STATE | CLI_JSON, NULL, NULL, run_nothing },
	{ "env exec", "run in one", "NAME -- CMD [ARGS...]", 2, CLI_ARGS_ANY, CLI_STATE, create_options, NULL, run_nothing },
	{ "sandbox", "sandboxes", NULL, 0, 0, 0, NULL, NULL, NULL },
	{ "sandbox run", "run a command", "-- CMD [ARGS...]", 1, CLI_ARGS_ANY, CLI_OPTIONS_FIRST, run_options, NULL, run_nothing },
	{ "version", "print the version", NULL, 0, 0, 0, NULL, NULL, run_nothing },
};
/* clang-format on */

/* Parse a NULL-ended list of words after "branchbox". */
static int parse(CliArgs *a, BbxError *err, ...)
{
	static char *argv[64];
	va_list ap;
	int argc = 0;

	argv[argc++] = (char *)"branchbox";
	va_start(ap, err);
	for (char *w; (w = va_arg(ap, char *));)
		argv[argc++] = w;
	va_end(ap);
	argv[argc] = NULL;
	*err = (BbxError)BBX_ERROR_INIT;
	return cli_parse(table, ELEMENTSOF(table), argc, argv, a, err);
}

static void test_global_options_before_and_after_the_verb(void **state)
{
	CliArgs a;
	BbxError err;

	assert_int_equal(parse(&a, &err, "--state", "/s", "env", "list", "--json", NULL), 0);
	assert_string_equal(a.command->path, "env list");
	assert_string_equal(a.state, "/s");
	assert_true(a.json);
	assert_int_equal(a.n_args, 0);
	cli_args_done(&a);

	/* Between the verb and its sub-verb, the way "token --state DIR list" was written. */
	assert_int_equal(parse(&a, &err, "env", "--state", "/t", "list", NULL), 0);
	assert_string_equal(a.command->path, "env list");
	assert_string_equal(a.state, "/t");
	assert_false(a.json);
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "--json", "status", "--state=/u", NULL), 0);
	assert_string_equal(a.command->path, "status");
	assert_string_equal(a.state, "/u");
	assert_true(a.json);
	cli_args_done(&a);

	/* A row option before the sub-verb: its value is not taken for a command word. */
	assert_int_equal(parse(&a, &err, "env", "--from", "list", "create", "x", NULL), 0);
	assert_string_equal(a.command->path, "env create");
	assert_string_equal(cli_arg_value(&a, "from"), "list");
	assert_int_equal(a.n_args, 1);
	assert_string_equal(a.args[0], "x");
	cli_args_done(&a);
}

static void test_option_values_both_spellings_and_repeats(void **state)
{
	CliArgs a;
	BbxError err;

	assert_int_equal(parse(&a, &err, "env", "create", "--from=prod", "x", "--env", "a*",
			       "--env=b*", "--follow", NULL),
			 0);
	assert_string_equal(cli_arg_value(&a, "from"), "prod");
	assert_true(cli_arg_flag(&a, "follow"));
	size_t i = 0;
	assert_string_equal(cli_arg_next(&a, "env", &i), "a*");
	assert_string_equal(cli_arg_next(&a, "env", &i), "b*");
	assert_null(cli_arg_next(&a, "env", &i));
	assert_string_equal(cli_arg_value(&a, "env"), "b*");
	assert_string_equal(a.args[0], "x");
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "env", "create", "x", "--from", "prod", NULL), 0);
	assert_string_equal(cli_arg_value(&a, "from"), "prod");
	assert_false(cli_arg_flag(&a, "follow"));
	assert_null(cli_arg_value(&a, "env"));
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "sandbox", "run", "-v", "--", "true", NULL), 0);
	assert_true(cli_arg_flag(&a, "verbose"));
	cli_args_done(&a);
}

static void test_errors_name_the_option(void **state)
{
	CliArgs a;
	BbxError err;

	assert_int_equal(parse(&a, &err, "env", "create", "x", "--bogus=1", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "unknown option '--bogus'"));
	assert_string_equal(a.command->path, "env create");
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "env", "create", "x", "--from", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "'--from' needs a value"));
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "env", "create", "x", "--follow=yes", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "'--follow' takes no value"));
	cli_args_done(&a);

	/* --json and --state only where the row takes them. */
	assert_int_equal(parse(&a, &err, "version", "--state", "/s", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "'--state'"));
	cli_args_done(&a);
	assert_int_equal(parse(&a, &err, "env", "exec", "n", "--json", "--", "ls", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "'--json'"));
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "-x", "status", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "'-x'"));
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "frob", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "unknown verb 'frob'"));
	assert_null(a.command);
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "env", "frob", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "unknown command 'frob' (create, list, exec)"));
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "env", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "missing command (create, list, exec)"));
	assert_string_equal(a.command->path, "env");
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "env", "create", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "missing argument: expected NAME"));
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "env", "create", "x", "y", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "unexpected argument 'y'"));
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "--json", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "missing verb"));
	cli_args_done(&a);
}

static void test_double_dash_ends_options(void **state)
{
	CliArgs a;
	BbxError err;

	assert_int_equal(parse(&a, &err, "sandbox", "run", "--memory", "1M", "--", "cmd",
			       "--not-an-option", "--help", NULL),
			 0);
	assert_false(a.help);
	assert_string_equal(cli_arg_value(&a, "memory"), "1M");
	assert_int_equal(a.n_args, 3);
	assert_string_equal(a.args[0], "cmd");
	assert_string_equal(a.args[1], "--not-an-option");
	assert_string_equal(a.args[2], "--help");
	assert_null(a.args[3]);
	cli_args_done(&a);

	/* Options end at the command of an options-first row, without "--". */
	assert_int_equal(parse(&a, &err, "sandbox", "run", "sh", "-c", "--memory", NULL), 0);
	assert_null(cli_arg_value(&a, "memory"));
	assert_int_equal(a.n_args, 3);
	assert_string_equal(a.args[1], "-c");
	cli_args_done(&a);

	/* Options between the arguments, then the command after "--". */
	assert_int_equal(parse(&a, &err, "env", "exec", "n", "--from", "p", "--", "ls", "-l", NULL),
			 0);
	assert_string_equal(cli_arg_value(&a, "from"), "p");
	assert_int_equal(a.n_args, 3);
	assert_string_equal(a.args[0], "n");
	assert_string_equal(a.args[1], "ls");
	assert_string_equal(a.args[2], "-l");
	cli_args_done(&a);

	/* Without "--", an option-looking word after the arguments is still an option. */
	assert_int_equal(parse(&a, &err, "env", "exec", "n", "ls", "-l", NULL), -EINVAL);
	assert_non_null(strstr(err.message, "'-l'"));
	cli_args_done(&a);
}

static void test_help_anywhere_before_double_dash(void **state)
{
	CliArgs a;
	BbxError err;

	/* Help skips the argument count: "env create --help" has no NAME. */
	assert_int_equal(parse(&a, &err, "env", "create", "--help", NULL), 0);
	assert_true(a.help);
	assert_string_equal(a.command->path, "env create");
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "-h", "env", NULL), 0);
	assert_true(a.help);
	assert_string_equal(a.command->path, "env");
	cli_args_done(&a);

	assert_int_equal(parse(&a, &err, "--help", NULL), 0);
	assert_true(a.help);
	assert_null(a.command);
	cli_args_done(&a);
}

static char *capture(void (*fn)(FILE *, const CliCommand *), const CliCommand *c)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *f = open_memstream(&buf, &n);
	assert_non_null(f);
	fn(f, c);
	fclose(f);
	return buf;
}

static void help_all(FILE *f, const CliCommand *c)
{
	(void)c;
	cli_help_all(f, table, ELEMENTSOF(table));
}

static void help_one(FILE *f, const CliCommand *c)
{
	cli_help_command(f, table, ELEMENTSOF(table), c);
}

static void test_help_lists_every_row(void **state)
{
	_cleanup_free_ char *all = capture(help_all, NULL);
	for (size_t i = 0; i < ELEMENTSOF(table); i++) {
		char line[256];
		snprintf(line, sizeof(line), "%s ", table[i].path);
		assert_non_null(strstr(all, line));
		assert_non_null(strstr(all, table[i].summary));
	}

	/* A group lists the usage line and summary of each row below it, not others. */
	_cleanup_free_ char *env = capture(help_one, &table[1]);
	assert_non_null(strstr(env, "Usage: branchbox env COMMAND"));
	assert_non_null(strstr(env, "More about environments."));
	assert_non_null(
		strstr(env, "branchbox env create NAME [--json] [OPTIONS]\n      make one"));
	assert_non_null(strstr(env, "branchbox env list [--json] [OPTIONS]"));
	assert_non_null(strstr(env, "branchbox env exec NAME [OPTIONS] -- CMD [ARGS...]"));
	assert_null(strstr(env, "sandbox"));

	/* A row lists its own options, the global ones it takes, and --help. */
	_cleanup_free_ char *create = capture(help_one, &table[2]);
	assert_non_null(strstr(create, "Make one."));
	assert_non_null(strstr(create, "--from PARENT"));
	assert_non_null(strstr(create, "--state DIR"));
	assert_non_null(strstr(create, "--json"));
	assert_non_null(strstr(create, "-h, --help"));
	_cleanup_free_ char *run = capture(help_one, &table[6]);
	assert_non_null(strstr(run, "Usage: branchbox sandbox run [OPTIONS] -- CMD [ARGS...]"));
	assert_non_null(strstr(run, "-v, --verbose"));
	assert_null(strstr(run, "--state"));
	assert_null(strstr(run, "--json"));
}

static void test_find(void **state)
{
	char *words[] = { (char *)"env", (char *)"exec" };
	assert_ptr_equal(cli_find(table, ELEMENTSOF(table), words, 2), &table[4]);
	assert_ptr_equal(cli_find(table, ELEMENTSOF(table), words, 1), &table[1]);
	char *bad[] = { (char *)"exec" };
	assert_null(cli_find(table, ELEMENTSOF(table), bad, 1));
	assert_string_equal(cli_command_word(&table[4]), "exec");
	assert_true(cli_command_is_group(&table[5]));
	assert_false(cli_command_is_group(&table[6]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_global_options_before_and_after_the_verb),
		cmocka_unit_test(test_option_values_both_spellings_and_repeats),
		cmocka_unit_test(test_errors_name_the_option),
		cmocka_unit_test(test_double_dash_ends_options),
		cmocka_unit_test(test_help_anywhere_before_double_dash),
		cmocka_unit_test(test_help_lists_every_row),
		cmocka_unit_test(test_find),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
