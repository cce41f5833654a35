/* SPDX-License-Identifier: MIT */
/*
 * jsontext: see jsontext.h. One pass over the bytes. Backslashes only occur inside strings in
 * valid JSON (anything else is cJSON's to refuse), so the scan need not track strings: it only
 * has to pair each backslash with the byte it escapes, so that "\\" (one escaped backslash)
 * does not make the next character look escaped.
 */
#include "jsontext.h"

#include <errno.h>
#include <string.h>

int jsontext_check_nul(const char *json, size_t len)
{
	size_t i;

	if (!json)
		return len ? -EINVAL : 0;
	for (i = 0; i < len; i++) {
		if (json[i] == '\0')
			return -EBADMSG;
		if (json[i] != '\\' || i + 1 >= len)
			continue;
		if (json[i + 1] == '\\') {
			i++; /* an escaped backslash: the byte after it starts afresh */
			continue;
		}
		if (len - i >= 6 && memcmp(json + i + 1, "u0000", 5) == 0)
			return -EBADMSG;
	}
	return 0;
}
