/* SPDX-License-Identifier: MIT */
/* fuzz_scenario: the scenario parser on arbitrary bytes (JSON, types, paths, timeline). */
#include <stddef.h>
#include <stdint.h>

#include "scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scenario sc = { 0 };
	char err[SCENARIO_ERR_MAX];

	if (size > (1u << 20))
		return 0;
	(void)scenario_parse(&sc, (const char *)data, size, err, sizeof(err));
	scenario_free(&sc);
	return 0;
}
