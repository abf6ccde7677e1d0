/* SPDX-License-Identifier: MIT */
/*
 * The CLI's command rows and its one option parser.
 *
 * A command is one row (CliCommand): the words that name it after "branchbox" ("env create"),
 * a one-line summary, the synopsis and count of its arguments, its options (CliOption rows),
 * which global options it takes and its handler. A row without a handler is a group
 * ("env"): its help lists the rows below it. The global options --state DIR, --json and
 * -h/--help are accepted before or after the command words; --state and --json only on the
 * rows whose flags say so. Every option is accepted as "--name value" and "--name=value";
 * "--" ends the options.
 *
 * Nothing here prints except the help functions (to the FILE given), and nothing exits.
 * Errors come back as -EINVAL with the message in a BbxError naming the option and the
 * command. Not thread-safe: nothing in the CLI runs on more than one thread.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "error.h"

#define CLI_ARGS_ANY UINT_MAX

/* One option of a command; an array of them ends with a row whose name is NULL. */
typedef struct CliOption {
	const char *name;  /* long name, without "--" */
	char short_name;   /* single-letter alias, '\0' for none */
	const char *value; /* name of its value in the help ("DIR"); NULL for a flag */
	const char *help;  /* what it does; '\n' starts a continuation line */
} CliOption;

typedef enum CliCommandFlags {
	CLI_STATE = 1 << 0,	    /* takes --state DIR */
	CLI_JSON = 1 << 1,	    /* takes --json */
	CLI_OPTIONS_FIRST = 1 << 2, /* options end at the first argument ("sandbox run CMD -x") */
} CliCommandFlags;

typedef struct CliArgs CliArgs;

typedef struct CliCommand {
	const char *path;     /* the words after "branchbox": "env create" */
	const char *summary;  /* one line, lower case, no final period */
	const char *synopsis; /* its arguments for the usage line ("NAME [PROCESS]"), or NULL */
	unsigned min_args, max_args;  /* how many arguments (CLI_ARGS_ANY: no upper bound) */
	unsigned flags;		      /* CliCommandFlags */
	const CliOption *options;     /* its own options, or NULL */
	const char *description;      /* more help text after the summary, or NULL */
	int (*run)(const CliArgs *a); /* NULL for a group */
} CliCommand;

typedef struct CliOptionValue {
	const CliOption *option;
	const char *value; /* "" for a flag */
} CliOptionValue;

/* What one command line said. Strings point into argv. */
struct CliArgs {
	const CliCommand *command; /* NULL when no command word was given */
	const char *state;	   /* --state DIR, or NULL */
	bool json;		   /* --json */
	bool help;		   /* -h/--help before "--" */
	char **args;		   /* the arguments, in order, without the options; NULL-ended */
	size_t n_args;
	CliOptionValue *values; /* every option of the row given, in order (repeats kept) */
	size_t n_values;
};

/* The global options, for help and for the tests. */
extern const CliOption cli_global_options[];

/*
 * Parse argv (argv[0] is the program) against table. On success *ret holds the command and
 * its arguments; the caller releases it with cli_args_done(). On -EINVAL err names what was
 * wrong; ret->command still names the command being parsed, when one was found, so that
 * the caller can point at its help (ret must still be released). -ENOMEM on allocation
 * failure. Help (-h) is not an error: ret->help is set and no argument count is checked.
 */
int cli_parse(const CliCommand *table, size_t n_table, int argc, char **argv, CliArgs *ret,
	      BbxError *err);
void cli_args_done(CliArgs *a);

/* The row whose path is the given words, or NULL. */
const CliCommand *cli_find(const CliCommand *table, size_t n_table, char *const *words,
			   size_t n_words);
/* Is row a group (no handler)? */
bool cli_command_is_group(const CliCommand *c);
/* The last word of a row's path: "create" for "env create". */
const char *cli_command_word(const CliCommand *c);

/* The last value given for the option called name ("" for a flag), or NULL. */
const char *cli_arg_value(const CliArgs *a, const char *name);
/* Whether the option called name was given. */
bool cli_arg_flag(const CliArgs *a, const char *name);
/* Each value given for name, in order: for (size_t i = 0; (v = cli_arg_next(a, n, &i));) */
const char *cli_arg_next(const CliArgs *a, const char *name, size_t *iter);

/* "branchbox --help": every row with its summary. */
void cli_help_all(FILE *f, const CliCommand *table, size_t n_table);
/* "branchbox PATH --help": usage, summary, description, options (a group: its rows). */
void cli_help_command(FILE *f, const CliCommand *table, size_t n_table, const CliCommand *c);
/* The usage line of a row, without "Usage: ". */
void cli_usage_line(FILE *f, const CliCommand *c);
