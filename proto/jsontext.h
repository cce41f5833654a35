/* SPDX-License-Identifier: MIT */
/*
 * jsontext: the check on raw JSON text that every decoder of untrusted JSON makes before cJSON
 * sees it.
 *
 * cJSON (1.7.15) keeps strings NUL-terminated and decodes the escape \u0000 into a NUL byte, so
 * "backup.icloud.enable\u0000.evil" reads in C as "backup.icloud.enable" while a JSON Schema
 * validator, a logger or another parser sees the whole value. A raw NUL byte does the same (and
 * cJSON_ParseWithLength also stops at one). Refusing both before parsing makes the length of
 * every decoded string (member names included) its length in the text: what the agent acts on is
 * what everyone else sees. JSON has no other way to spell a NUL (a surrogate pair never decodes
 * to U+0000), so these two are the whole check.
 *
 * Threading: none (a pure function).
 */
#ifndef CRADLE_PROTO_JSONTEXT_H
#define CRADLE_PROTO_JSONTEXT_H

#include <stddef.h>

/* What decoders say when jsontext_check_nul() refuses a text. */
#define JSONTEXT_NUL_ERR "a NUL byte or a \\u0000 escape"

/*
 * 0 when json[0..len) holds neither a NUL byte nor the escape \u0000 (an escaped backslash
 * followed by "u0000", i.e. the text \\u0000, is fine: it decodes to the six characters
 * "\u0000"); -EBADMSG otherwise, -EINVAL for a NULL json with len > 0.
 */
int jsontext_check_nul(const char *json, size_t len);

#endif
