/* SPDX-License-Identifier: MIT */
/* fuzz_config: arbitrary bytes as an agent config file; no crash, no leak, no hang. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_config cfg;
	char err[AGENT_CONFIG_ERROR_MAX];
	FILE *f;

	agent_config_defaults(&cfg);
	if (agent_config_parse("fuzz", (const char *)data, size, &cfg, err, sizeof(err)) == 0) {
		f = fopen("/dev/null", "w");
		if (f) {
			agent_config_dump(&cfg, f);
			fclose(f);
		}
	}
	return 0;
}
