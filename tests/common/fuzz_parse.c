/* SPDX-License-Identifier: MIT */
/*
 * fuzz_parse: arbitrary bytes as a duration, size, boolean and number. No crash, no read past
 * the string, and the results keep their promises (a duration fits in int64 milliseconds, a
 * plain number means the same to every parser that takes one).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t d, ms, z, u;
	char *s;
	bool b;
	int rd, rms, rz, ru;

	if (size > 256)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	rd = parse_duration(s, &d);
	rms = parse_duration_ms(s, &ms);
	rz = parse_size(s, &z);
	ru = parse_uint(s, &u);
	(void)parse_bool(s, &b);
	if (rd == 0 && d > PARSE_DURATION_MAX)
		abort();
	/* one grammar: seconds are the milliseconds of whole seconds */
	if (rd == 0 && (rms != 0 || ms != d * 1000))
		abort();
	if (rms == 0 && ms > (uint64_t)INT64_MAX)
		abort();
	/* a plain number is seconds to parse_duration and bytes to parse_size */
	if (ru == 0 && (rz != 0 || z != u || (rd == 0 && d != u)))
		abort();
	free(s);
	return 0;
}
