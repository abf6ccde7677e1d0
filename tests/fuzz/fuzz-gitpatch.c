/* SPDX-License-Identifier: MIT */
/*
 * Fuzz the converter of plain unified diffs (`diff -u`, `diff -ruN`) into git's form, which
 * takes an agent's patch text before libgit2 sees it. Any input gives git-style text or
 * -EINVAL with a message, and on success:
 *   - the result is git-style (or empty, when the input names no file);
 *   - it grows at most by a bounded factor (no amplification);
 *   - converting it again gives the same text: the converter reads back what it writes,
 *     so paths, created/deleted files and hunk bodies survive the rewrite unchanged.
 */
#include "fuzz.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gitrepo.h"
#include "strbuf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_strbuf_ StrBuf out = STRBUF_INIT;
	_cleanup_strbuf_ StrBuf again = STRBUF_INIT;
	BbxError err = BBX_ERROR_INIT;
	const char *s = (const char *)data;

	(void)gitrepo_patch_is_git_style(s, size);
	int r = gitrepo_patch_to_git(s, size, &out, &err);
	if (r < 0) {
		if (r != -EINVAL && r != -ENOMEM)
			abort();
		if (r == -EINVAL && !err.message[0])
			abort(); /* a refusal always says why */
		return 0;
	}
	if (out.len > 0 && !gitrepo_patch_is_git_style(out.buf, out.len))
		abort();
	/* A file header costs at least 10 input bytes ("--- X\n+++ Y\n") and at most about 6
	 * times that in output; a body line at most doubles (an empty context line). */
	if (out.len > 8 * size + 64)
		abort();
	if (gitrepo_patch_to_git(out.buf ? out.buf : "", out.len, &again, NULL) < 0)
		abort();
	if (again.len != out.len || (out.len && memcmp(again.buf, out.buf, out.len) != 0))
		abort();
	return 0;
}
