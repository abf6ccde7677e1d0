/* SPDX-License-Identifier: MIT */
/*
 * Fuzz what a client controls before any lookup: the bearer token's format and checksum,
 * a verb list, a scope pattern, and glob matching of an environment name against it.
 * Input: "TOKEN\nVERBS\nPATTERN\nNAME" (missing parts are empty).
 */
#include "fuzz.h"

#include <stdlib.h>
#include <string.h>

#include "parse.h"
#include "principal.h"
#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';

	char *parts[4] = { buf, NULL, NULL, NULL };
	for (int i = 1; i < 4; i++) {
		char *nl = parts[i - 1] ? strchr(parts[i - 1], '\n') : NULL;
		if (!nl)
			break;
		*nl = '\0';
		parts[i] = nl + 1;
	}
	BbxError err = BBX_ERROR_INIT;
	(void)token_check_format(parts[0], &err);

	uint32_t verbs = 0;
	const char *bad = NULL;
	if (parts[1] && verbs_parse(parts[1], &verbs, &bad) == 0) {
		char *s = verbs_format(verbs);
		uint32_t again = 0;
		/* Formatting and parsing again is the identity. */
		if (s && verbs && (verbs_parse(s, &again, &bad) != 0 || again != verbs))
			abort();
		free(s);
	}
	if (parts[2]) {
		BbxError perr = BBX_ERROR_INIT;
		if (token_scope_pattern_check(parts[2], &perr) == 0 && parts[3])
			(void)glob_match(parts[2], parts[3]);
	}
	if (parts[3])
		(void)name_is_valid(parts[3]);
	free(buf);
	return 0;
}
