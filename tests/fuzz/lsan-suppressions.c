/* SPDX-License-Identifier: MIT */
/*
 * LeakSanitizer suppressions built into every fuzz binary and corpus runner, so a run by hand
 * behaves like `make check` and `make fuzz`.
 *
 * libfyaml 0.7.12 (Debian 12) leaks a 2 KiB buffer it allocates for a scalar's processed
 * text when the stream then ends in a syntax error (reproducer:
 * corpus/config/regress-libfyaml-leak.yaml). The allocation and the leak are both inside the
 * library; our own allocations never have libfyaml on their stack, so this hides nothing of
 * ours.
 */
#include "fuzz.h"

const char *__lsan_default_suppressions(void)
{
	return "leak:libfyaml.so\n";
}
