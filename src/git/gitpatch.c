/* SPDX-License-Identifier: MIT */
/*
 * Plain unified diffs rewritten into git's form for gitrepo_apply_patch().
 *
 * libgit2 parses only git-style patches (each file introduced by "diff --git"). Agents and
 * tools often produce `diff -u`/`diff -ruN` output instead, so such text is rewritten into
 * the git form: each "--- old" / "+++ new" pair gets a "diff --git" header, paths are taken
 * -p1 style, /dev/null or an empty side ("@@ -0,0" / "+0,0 @@", as diff -N writes it) marks
 * a created or deleted file, and lines between files ("diff -ruN ...", "Only in ...",
 * "Index: ...") are dropped. Hunk bodies are copied by counting the lengths in their "@@"
 * headers, so a removed line that happens to start with "-- " is never taken for a header.
 *
 * Text in, text out: no libgit2 and no repository here, so the converter is fuzzed on its
 * own (tests/fuzz/fuzz-gitpatch.c).
 */
#include "gitrepo.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "strbuf.h"

typedef struct Line {
	const char *p;
	size_t len;  /* without the '\n' */
	size_t next; /* offset of the following line */
} Line;

static bool line_at(const char *s, size_t n, size_t off, Line *ret)
{
	const char *nl;

	if (off >= n)
		return false;
	nl = memchr(s + off, '\n', n - off);
	ret->p = s + off;
	ret->len = nl ? (size_t)(nl - (s + off)) : n - off;
	ret->next = nl ? (size_t)(nl - s) + 1 : n;
	return true;
}

static bool line_starts(const Line *l, const char *prefix)
{
	size_t k = strlen(prefix);
	return l->len >= k && memcmp(l->p, prefix, k) == 0;
}

/* The path of a "--- "/"+++ " line: up to a tab (timestamp) or a NUL (which would end
 * the copy anyway, so the blanks before it must be trimmed too), trailing blanks and CR
 * removed. */
static char *header_path(const Line *l)
{
	const char *s = l->p + 4, *end = l->p + l->len;
	const char *tab = memchr(s, '\t', (size_t)(end - s));
	const char *nul = memchr(s, '\0', (size_t)(end - s));

	if (tab)
		end = tab;
	if (nul && nul < end)
		end = nul;
	while (end > s && (end[-1] == '\r' || end[-1] == ' '))
		end--;
	return strndup(s, (size_t)(end - s));
}

/* -p1: drop the first component ("a/x" -> "x"); a path without '/' is kept. */
static const char *strip_p1(const char *p)
{
	const char *slash = strchr(p, '/');
	return slash && slash[1] ? slash + 1 : p;
}

static int hunk_counts(const Line *l, unsigned long *old_n, unsigned long *new_n)
{
	unsigned long a, b = 1, c, d = 1;
	_cleanup_free_ char *h = strndup(l->p, l->len);

	if (!h)
		return -ENOMEM;
	if (sscanf(h, "@@ -%lu,%lu +%lu,%lu @@", &a, &b, &c, &d) == 4 ||
	    (b = 1, d = 1, sscanf(h, "@@ -%lu +%lu,%lu @@", &a, &c, &d) == 3) ||
	    (b = 1, d = 1, sscanf(h, "@@ -%lu,%lu +%lu @@", &a, &b, &c) == 3) ||
	    (b = 1, d = 1, sscanf(h, "@@ -%lu +%lu @@", &a, &c) == 2)) {
		*old_n = b;
		*new_n = d;
		return 0;
	}
	return -EINVAL;
}

bool gitrepo_patch_is_git_style(const char *s, size_t n)
{
	Line l;

	for (size_t off = 0; line_at(s, n, off, &l); off = l.next)
		if (line_starts(&l, "diff --git "))
			return true;
	return false;
}

int gitrepo_patch_to_git(const char *s, size_t n, StrBuf *out, BbxError *err)
{
	Line l, l2, h;
	size_t off = 0;

	while (line_at(s, n, off, &l)) {
		_cleanup_free_ char *oldp = NULL, *newp = NULL;
		const char *path;
		bool added, deleted;

		if (!line_starts(&l, "--- ") || !line_at(s, n, l.next, &l2) ||
		    !line_starts(&l2, "+++ ")) {
			off = l.next; /* text between files */
			continue;
		}
		oldp = header_path(&l);
		newp = header_path(&l2);
		if (!oldp || !newp)
			return -ENOMEM;
		off = l2.next;
		if (!*oldp || !*newp)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "malformed patch: file header without a path at "
					     "offset %zu",
					     (size_t)(l.p - s));
		added = strcmp(oldp, "/dev/null") == 0;
		deleted = strcmp(newp, "/dev/null") == 0;
		/* Only a hunk header says so: any other line after the header (the next file's
		 * "diff -ruN ...", say) may contain " +0,0 @@" too. */
		if (line_at(s, n, off, &h) && line_starts(&h, "@@ ") && !added && !deleted) {
			added = line_starts(&h, "@@ -0,0 ");
			deleted = !added && h.len >= 8 && memmem(h.p, h.len, " +0,0 @@", 8);
		}
		path = strip_p1(deleted ? oldp : newp);
		if (added && deleted)
			return bbx_error_set(err, -EINVAL, BBX_INVALID,
					     "malformed patch: %s is both created and deleted",
					     path);
		if (added) {
			if (strbuf_appendf(out,
					   "diff --git a/%s b/%s\nnew file mode 100644\n"
					   "--- /dev/null\n+++ b/%s\n",
					   path, path, path) < 0)
				return -ENOMEM;
		} else if (deleted) {
			if (strbuf_appendf(out,
					   "diff --git a/%s b/%s\ndeleted file mode 100644\n"
					   "--- a/%s\n+++ /dev/null\n",
					   path, path, path) < 0)
				return -ENOMEM;
		} else {
			const char *o =
				strchr(oldp, '/') && strchr(newp, '/') ? strip_p1(oldp) : path;
			if (strbuf_appendf(out, "diff --git a/%s b/%s\n--- a/%s\n+++ b/%s\n", o,
					   path, o, path) < 0)
				return -ENOMEM;
		}
		/* Hunks of this file. */
		while (line_at(s, n, off, &h) && line_starts(&h, "@@ ")) {
			unsigned long old_n, new_n;

			if (hunk_counts(&h, &old_n, &new_n) < 0)
				return bbx_error_set(err, -EINVAL, BBX_INVALID,
						     "malformed patch: bad hunk header for %s",
						     path);
			if (strbuf_append(out, h.p, h.len) < 0 || strbuf_putc(out, '\n') < 0)
				return -ENOMEM;
			off = h.next;
			while ((old_n > 0 || new_n > 0) && line_at(s, n, off, &h)) {
				char c = h.len ? h.p[0] : ' ';
				if (c == ' ' && old_n > 0 && new_n > 0) {
					old_n--;
					new_n--;
				} else if (c == '-' && old_n > 0) {
					old_n--;
				} else if (c == '+' && new_n > 0) {
					new_n--;
				} else if (c != '\\') {
					return bbx_error_set(
						err, -EINVAL, BBX_INVALID,
						"malformed patch: hunk of %s is cut short", path);
				}
				/* Some tools strip the space of empty context lines. */
				if ((h.len ? strbuf_append(out, h.p, h.len)
					   : strbuf_putc(out, ' ')) < 0 ||
				    strbuf_putc(out, '\n') < 0)
					return -ENOMEM;
				off = h.next;
			}
			if (old_n > 0 || new_n > 0)
				return bbx_error_set(err, -EINVAL, BBX_INVALID,
						     "malformed patch: hunk of %s is cut short",
						     path);
			/* "\ No newline at end of file" after the last line. */
			if (line_at(s, n, off, &h) && line_starts(&h, "\\")) {
				if (strbuf_append(out, h.p, h.len) < 0 ||
				    strbuf_putc(out, '\n') < 0)
					return -ENOMEM;
				off = h.next;
			}
		}
	}
	return 0;
}
