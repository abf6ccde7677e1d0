/* SPDX-License-Identifier: MIT */
/*
 * The libFuzzer entry point every fuzz target defines. The same function is linked either
 * with libFuzzer (-Dfuzz=true) or with corpus-runner.c, which replays a corpus once.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Read by LeakSanitizer at startup (lsan-suppressions.c). */
const char *__lsan_default_suppressions(void);
