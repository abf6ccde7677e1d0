/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config-yaml.h"
#include "macro.h"
#include "strbuf.h"

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when it is not one. */
size_t config_utf8_seq(const unsigned char *p, size_t n)
{
	size_t k = *p < 0x80		 ? 1
		   : (*p & 0xe0) == 0xc0 ? 2
		   : (*p & 0xf0) == 0xe0 ? 3
		   : (*p & 0xf8) == 0xf0 ? 4
					 : 0;
	unsigned cp;

	if (k == 0 || k > n || (k == 2 && *p < 0xc2) || (k == 4 && *p > 0xf4))
		return 0;
	for (size_t i = 1; i < k; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	if (k == 3) {
		cp = ((p[0] & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) | (p[2] & 0x3fu);
		if (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
	}
	if (k == 4) {
		cp = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3fu) << 12);
		if (cp < 0x10000 || cp > 0x10ffff)
			return 0;
	}
	return k;
}

bool config_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t k = config_utf8_seq(p + i, len - i);
		if (k == 0 || p[i] == 0)
			return false;
		i += k;
	}
	return true;
}

/*
 * Messages quote pieces of the input, possibly cut short, and must stay valid UTF-8 for JSON
 * output: replace every byte that does not start a complete, valid sequence with '?'.
 */
static void utf8_scrub(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t len = strlen(s);

	for (size_t i = 0; i < len;) {
		size_t k = config_utf8_seq(p + i, len - i);
		if (k == 0) {
			p[i++] = '?';
			continue;
		}
		i += k;
	}
}

void config_diagnostics_init(ConfigDiagnostics *diag)
{
	*diag = (ConfigDiagnostics){ .max_errors = CONFIG_DIAG_MAX };
}

void config_diagnostics_done(ConfigDiagnostics *diag)
{
	if (!diag)
		return;
	for (size_t i = 0; i < diag->n_items; i++) {
		free(diag->items[i].file);
		free(diag->items[i].path);
		free(diag->items[i].message);
	}
	free(diag->items);
	free(diag->file);
	config_diagnostics_init(diag);
}

int config_diagnostics_add(ConfigDiagnostics *diag, ConfigSeverity severity, const char *file,
			   unsigned line, unsigned column, const char *path, const char *fmt, ...)
{
	size_t max;
	va_list ap;
	ConfigDiagnostic d = { .severity = severity, .line = line, .column = column };

	if (!diag)
		return 0;
	max = diag->max_errors ? diag->max_errors : CONFIG_DIAG_MAX;
	if (severity == CONFIG_SEVERITY_ERROR && diag->n_errors >= max) {
		/* Still counted as a failure by the callers: they track errors themselves. */
		diag->truncated = true;
		return 0;
	}
	ConfigDiagnostic *items = reallocarray(diag->items, diag->n_items + 1, sizeof(*items));
	if (!items)
		return -ENOMEM;
	diag->items = items;

	d.file = strdup(file ? file : "");
	d.path = strdup(path ? path : "");
	va_start(ap, fmt);
	int k = vasprintf(&d.message, fmt, ap);
	va_end(ap);
	if (k < 0)
		d.message = NULL;
	if (!d.file || !d.path || !d.message) {
		free(d.file);
		free(d.path);
		free(d.message);
		return -ENOMEM;
	}
	utf8_scrub(d.file);
	utf8_scrub(d.path);
	utf8_scrub(d.message);
	diag->items[diag->n_items++] = d;
	if (severity == CONFIG_SEVERITY_ERROR)
		diag->n_errors++;
	return 0;
}

char *config_diagnostic_format(const ConfigDiagnostic *d)
{
	_cleanup_strbuf_ StrBuf sb = STRBUF_INIT;
	int r;

	r = strbuf_puts(&sb, d->file);
	if (r >= 0 && d->line > 0)
		r = strbuf_appendf(&sb, ":%u", d->line);
	if (r >= 0 && d->line > 0 && d->column > 0)
		r = strbuf_appendf(&sb, ":%u", d->column);
	if (r >= 0 && d->severity == CONFIG_SEVERITY_NOTE)
		r = strbuf_puts(&sb, ": note");
	if (r >= 0 && d->path[0])
		r = strbuf_appendf(&sb, ": %s", d->path);
	if (r >= 0)
		r = strbuf_appendf(&sb, ": %s", d->message);
	if (r < 0)
		return NULL;
	return strbuf_detach(&sb);
}

json_t *config_diagnostic_to_json(const ConfigDiagnostic *d)
{
	json_t *o =
		json_pack("{s:s, s:I, s:I, s:s, s:s}", "file", d->file, "line", (json_int_t)d->line,
			  "column", (json_int_t)d->column, "path", d->path, "message", d->message);
	if (o && d->severity == CONFIG_SEVERITY_NOTE &&
	    json_object_set_new(o, "severity", json_string("note")) < 0) {
		json_decref(o);
		return NULL;
	}
	return o;
}
