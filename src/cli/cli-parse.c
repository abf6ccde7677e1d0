/* SPDX-License-Identifier: MIT */
#include "cli-parse.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

#define HELP_COLUMN 24

enum { GLOBAL_STATE, GLOBAL_JSON, GLOBAL_HELP };

/* clang-format off */
const CliOption cli_global_options[] = {
	[GLOBAL_STATE] = { "state", 0, "DIR", "state directory (default $BRANCHBOX_STATE or /var/lib/branchbox)" },
	[GLOBAL_JSON] = { "json", 0, NULL, "machine-readable output (JSON)" },
	[GLOBAL_HELP] = { "help", 'h', NULL, "show this help" },
	{},
};
/* clang-format on */

bool cli_command_is_group(const CliCommand *c)
{
	return c && !c->run;
}

const char *cli_command_word(const CliCommand *c)
{
	const char *w = strrchr(c->path, ' ');
	return w ? w + 1 : c->path;
}

/* Is row's path prefix itself or one of the rows below it? "" is above every row. */
static bool row_under(const CliCommand *row, const char *prefix)
{
	size_t n = strlen(prefix);
	if (n == 0)
		return true;
	return !strncmp(row->path, prefix, n) && (row->path[n] == '\0' || row->path[n] == ' ');
}

/* Is row a direct child of prefix ("" for the top level)? */
static bool row_child_of(const CliCommand *row, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *rest = row->path;
	if (n > 0) {
		if (strncmp(row->path, prefix, n) || row->path[n] != ' ')
			return false;
		rest = row->path + n + 1;
	}
	return *rest && !strchr(rest, ' ');
}

static const CliCommand *find_child(const CliCommand *table, size_t n_table, const char *prefix,
				    const char *word)
{
	size_t np = strlen(prefix), nw = strlen(word);
	for (size_t i = 0; i < n_table; i++) {
		const char *p = table[i].path;
		if (np > 0) {
			if (strncmp(p, prefix, np) || p[np] != ' ')
				continue;
			p += np + 1;
		}
		if (!strncmp(p, word, nw) && p[nw] == '\0')
			return &table[i];
	}
	return NULL;
}

const CliCommand *cli_find(const CliCommand *table, size_t n_table, char *const *words,
			   size_t n_words)
{
	const CliCommand *c = NULL;
	for (size_t i = 0; i < n_words; i++) {
		c = find_child(table, n_table, c ? c->path : "", words[i]);
		if (!c)
			return NULL;
	}
	return c;
}

/* The option of list named by token ("--name", "--name=v" or "-x"), or NULL. */
static const CliOption *option_in(const CliOption *list, const char *token)
{
	if (!list)
		return NULL;
	if (token[1] != '-') {
		if (!token[1] || token[2])
			return NULL;
		for (const CliOption *o = list; o->name; o++)
			if (o->short_name && o->short_name == token[1])
				return o;
		return NULL;
	}
	const char *name = token + 2;
	size_t n = strcspn(name, "=");
	for (const CliOption *o = list; o->name; o++)
		if (strlen(o->name) == n && !strncmp(o->name, name, n))
			return o;
	return NULL;
}

/*
 * While the command words are still being read, does token take the next word as its
 * value? It does when a global option or an option of any row below prefix does.
 */
static bool takes_value(const CliCommand *table, size_t n_table, const char *prefix,
			const char *token)
{
	if (token[1] == '-' && strchr(token, '='))
		return false;
	const CliOption *o = option_in(cli_global_options, token);
	if (o)
		return o->value != NULL;
	for (size_t i = 0; i < n_table; i++)
		if (row_under(&table[i], prefix) && (o = option_in(table[i].options, token)))
			return o->value != NULL;
	return false;
}

/* The option token names for command c: a global one it takes, or one of its own. */
static const CliOption *lookup(const CliCommand *c, const char *token)
{
	const CliOption *o = option_in(cli_global_options, token);
	if (o) {
		/* Before the command is known, or on a group, every global option is accepted
		 * so that the error is about the missing command. */
		bool leaf = c && c->run;
		if (o == &cli_global_options[GLOBAL_STATE] && leaf && !(c->flags & CLI_STATE))
			return NULL;
		if (o == &cli_global_options[GLOBAL_JSON] && leaf && !(c->flags & CLI_JSON))
			return NULL;
		return o;
	}
	return c ? option_in(c->options, token) : NULL;
}

static int list_children(const CliCommand *table, size_t n_table, const CliCommand *group,
			 char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n_table; i++) {
		if (!row_child_of(&table[i], group->path))
			continue;
		const char *word = table[i].path + strlen(group->path) + 1;
		int n = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", word);
		if (n < 0 || (size_t)n >= size - used)
			break;
		used += (size_t)n;
	}
	return 0;
}

int cli_parse(const CliCommand *table, size_t n_table, int argc, char **argv, CliArgs *ret,
	      BbxError *err)
{
	size_t cap = argc > 0 ? (size_t)argc : 1;
	_cleanup_free_ char **rest = calloc(cap, sizeof(char *));
	size_t n_rest = 0;
	int i;

	*ret = (CliArgs){ 0 };
	ret->args = calloc(cap, sizeof(char *));
	ret->values = calloc(cap, sizeof(CliOptionValue));
	if (!rest || !ret->args || !ret->values)
		return -ENOMEM;

	/* The command words, with any options between them set aside for later. */
	for (i = 1; i < argc; i++) {
		const char *t = argv[i];
		if (!strcmp(t, "--"))
			break;
		if (t[0] == '-' && t[1]) {
			rest[n_rest++] = argv[i];
			if (takes_value(table, n_table, ret->command ? ret->command->path : "",
					t) &&
			    i + 1 < argc)
				rest[n_rest++] = argv[++i];
			continue;
		}
		if (ret->command && ret->command->run)
			break;
		const CliCommand *c =
			find_child(table, n_table, ret->command ? ret->command->path : "", t);
		if (!c) {
			if (!ret->command)
				return bbx_error_set(
					err, -EINVAL, BBX_INVALID,
					"unknown verb '%s'; run 'branchbox --help' for "
					"the list",
					t);
			char names[512];
			list_children(table, n_table, ret->command, names, sizeof(names));
			return bbx_error_set(err, -EINVAL, BBX_INVALID, "unknown command '%s' (%s)",
					     t, names);
		}
		ret->command = c;
	}
	for (; i < argc; i++)
		rest[n_rest++] = argv[i];

	const CliCommand *c = ret->command;
	bool options_end = false;
	for (size_t k = 0; k < n_rest; k++) {
		char *t = rest[k];
		if (options_end || t[0] != '-' || !t[1] ||
		    (c && (c->flags & CLI_OPTIONS_FIRST) && ret->n_args > 0)) {
			ret->args[ret->n_args++] = t;
			continue;
		}
		if (!strcmp(t, "--")) {
			options_end = true;
			continue;
		}
		const CliOption *o = lookup(c, t);
		if (!o) {
			int n = (int)strcspn(t, "=");
			return bbx_error_set(err, -EINVAL, BBX_INVALID, "unknown option '%.*s'", n,
					     t);
		}
		const char *eq = t[1] == '-' ? strchr(t, '=') : NULL;
		const char *v = "";
		if (o->value) {
			if (eq)
				v = eq + 1;
			else if (k + 1 < n_rest)
				v = rest[++k];
			else
				return bbx_error_set(err, -EINVAL, BBX_INVALID,
						     "option '--%s' needs a value (%s)", o->name,
						     o->value);
		} else if (eq)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "option '--%s' takes no value", o->name);

		if (o == &cli_global_options[GLOBAL_HELP])
			ret->help = true;
		else if (o == &cli_global_options[GLOBAL_STATE])
			ret->state = v;
		else if (o == &cli_global_options[GLOBAL_JSON])
			ret->json = true;
		else
			ret->values[ret->n_values++] = (CliOptionValue){ o, v };
	}

	if (ret->help)
		return 0;
	if (!c) {
		if (ret->n_args > 0)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "unknown verb '%s'; run 'branchbox --help' for the "
					     "list",
					     ret->args[0]);
		return bbx_error_set(err, -EINVAL, BBX_INVALID,
				     "missing verb; run 'branchbox --help' for the list");
	}
	if (!c->run) {
		char names[512];
		list_children(table, n_table, c, names, sizeof(names));
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "missing command (%s)", names);
	}
	if (ret->n_args < c->min_args)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "missing argument: expected %s",
				     c->synopsis ? c->synopsis : "none");
	if (c->max_args != CLI_ARGS_ANY && ret->n_args > c->max_args)
		return bbx_error_set(err, -EINVAL, BBX_INVALID, "unexpected argument '%s'",
				     ret->args[c->max_args]);
	return 0;
}

void cli_args_done(CliArgs *a)
{
	free(a->args);
	free(a->values);
	*a = (CliArgs){ 0 };
}

#ifndef NDEBUG
static bool declared(const CliCommand *c, const char *name)
{
	for (const CliOption *o = c->options; o && o->name; o++)
		if (!strcmp(o->name, name))
			return true;
	return false;
}
#endif

const char *cli_arg_next(const CliArgs *a, const char *name, size_t *iter)
{
	/* Asking for an option the row does not declare is a bug in the verb. */
	assert(declared(a->command, name));
	for (; *iter < a->n_values; (*iter)++)
		if (!strcmp(a->values[*iter].option->name, name))
			return a->values[(*iter)++].value;
	return NULL;
}

const char *cli_arg_value(const CliArgs *a, const char *name)
{
	const char *last = NULL, *v;
	size_t i = 0;
	while ((v = cli_arg_next(a, name, &i)))
		last = v;
	return last;
}

bool cli_arg_flag(const CliArgs *a, const char *name)
{
	return cli_arg_value(a, name) != NULL;
}

/* Text with '\n' continuation lines, each indented to HELP_COLUMN after the first. */
static void print_wrapped(FILE *f, const char *text)
{
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		fprintf(f, "%.*s\n", (int)n, p);
		p += n;
		if (*p == '\n') {
			p++;
			fprintf(f, "%*s", HELP_COLUMN, "");
		}
	}
}

static void print_option(FILE *f, const CliOption *o)
{
	char head[128];
	if (o->short_name)
		snprintf(head, sizeof(head), "  -%c, --%s%s%s", o->short_name, o->name,
			 o->value ? " " : "", o->value ? o->value : "");
	else
		snprintf(head, sizeof(head), "  --%s%s%s", o->name, o->value ? " " : "",
			 o->value ? o->value : "");
	if (strlen(head) + 2 > HELP_COLUMN)
		fprintf(f, "%s\n%*s", head, HELP_COLUMN, "");
	else
		fprintf(f, "%-*s", HELP_COLUMN, head);
	print_wrapped(f, o->help);
}

static bool has_options(const CliCommand *c)
{
	return (c->options && c->options->name) || (c->flags & CLI_STATE);
}

void cli_usage_line(FILE *f, const CliCommand *c)
{
	bool first = c->flags & CLI_OPTIONS_FIRST;
	const char *syn = c->synopsis ? c->synopsis : "";
	/* Options go before a "--" in the synopsis ("NAME -- CMD [ARGS...]"). */
	const char *dashes = strstr(syn, "--");
	int head = dashes ? (int)(dashes - syn) : (int)strlen(syn);

	fprintf(f, "branchbox %s", c->path);
	if (!c->run)
		fprintf(f, " COMMAND");
	if (first && has_options(c))
		fprintf(f, " [OPTIONS]");
	while (head > 0 && syn[head - 1] == ' ')
		head--;
	if (head > 0)
		fprintf(f, " %.*s", head, syn);
	if (c->flags & CLI_JSON)
		fprintf(f, " [--json]");
	if (!first && (has_options(c) || !c->run))
		fprintf(f, " [OPTIONS]");
	if (dashes)
		fprintf(f, " %s", dashes);
	fputc('\n', f);
}

static void print_sentence(FILE *f, const char *s)
{
	fprintf(f, "%c%s.\n", toupper((unsigned char)s[0]), s + 1);
}

void cli_help_command(FILE *f, const CliCommand *table, size_t n_table, const CliCommand *c)
{
	fprintf(f, "Usage: ");
	cli_usage_line(f, c);
	fputc('\n', f);
	print_sentence(f, c->summary);
	if (c->description)
		fprintf(f, "\n%s", c->description);

	if (!c->run) {
		fprintf(f, "\nCommands:\n");
		for (size_t i = 0; i < n_table; i++) {
			if (!row_child_of(&table[i], c->path))
				continue;
			fprintf(f, "  ");
			cli_usage_line(f, &table[i]);
			fprintf(f, "      %s\n", table[i].summary);
		}
		fprintf(f, "\nRun 'branchbox %s COMMAND --help' for the options of a command.\n",
			c->path);
		return;
	}

	fprintf(f, "\nOptions:\n");
	for (const CliOption *o = c->options; o && o->name; o++)
		print_option(f, o);
	if (c->flags & CLI_STATE)
		print_option(f, &cli_global_options[GLOBAL_STATE]);
	if (c->flags & CLI_JSON)
		print_option(f, &cli_global_options[GLOBAL_JSON]);
	print_option(f, &cli_global_options[GLOBAL_HELP]);
}

void cli_help_all(FILE *f, const CliCommand *table, size_t n_table)
{
	fprintf(f, "Usage: branchbox VERB [OPTIONS]\n"
		   "\n"
		   "Zero-trust copy-on-write preview environments for AI agents.\n"
		   "\n"
		   "Verbs:\n");
	for (size_t i = 0; i < n_table; i++) {
		const CliCommand *c = &table[i];
		int depth = 0;
		for (const char *p = c->path; *p; p++)
			depth += *p == ' ';
		int width = HELP_COLUMN - 2 - 2 * depth;
		fprintf(f, "  %*s%-*s %s\n", 2 * depth, "", width - 1, c->path, c->summary);
	}
	fprintf(f,
		"\n"
		"Global options, before or after the verb: --state DIR, --json, -h/--help.\n"
		"Run 'branchbox VERB --help' or 'branchbox help VERB' for the options of a verb.\n"
		"Environment: BRANCHBOX_STATE (state dir, default /var/lib/branchbox),\n"
		"             BRANCHBOX_URL and BRANCHBOX_TOKEN (reach a daemon over HTTP).\n");
}
