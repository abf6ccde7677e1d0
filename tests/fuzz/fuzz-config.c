/* SPDX-License-Identifier: MIT */
/* Fuzz the project config parser: any input must give a config or diagnostics, never a crash,
 * a leak or undefined behaviour, and everything produced must serialize. */
#include "fuzz.h"

#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ConfigDiagnostics diag;
	ProjectConfig *c = NULL;

	config_diagnostics_init(&diag);
	if (config_parse_buffer((const char *)data, size, "fuzz/config.yaml", &c, &diag) == 0) {
		json_t *j = config_to_json(c);
		if (!j)
			abort(); /* a parsed config always serializes (only -ENOMEM may fail) */
		free(json_dumps(j, JSON_COMPACT));
		json_decref(j);
		config_free(c);
	}
	for (size_t i = 0; i < diag.n_items; i++) {
		json_t *j = config_diagnostic_to_json(&diag.items[i]);
		if (!j)
			abort(); /* messages quote the input: they must stay valid UTF-8 */
		json_decref(j);
		free(config_diagnostic_format(&diag.items[i]));
	}
	config_diagnostics_done(&diag);
	return 0;
}
