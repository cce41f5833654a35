/* SPDX-License-Identifier: MIT */
/*
 * fuzz_facts: the facts JSON parser (the probe helper's output as the agent reads it). Whatever
 * parses must survive a second round trip unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "facts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct device_facts a, b;
	char err[128];
	char *json;

	if (facts_from_json((const char *)data, size, &a, err, sizeof(err)) < 0)
		return 0;
	json = facts_to_json(&a);
	if (!json)
		return 0;
	if (facts_from_json(json, strlen(json), &b, err, sizeof(err)) != 0 ||
	    memcmp(&a, &b, sizeof(a)) != 0)
		abort();
	free(json);
	return 0;
}
