/* SPDX-License-Identifier: MIT */
/*
 * timefmt: RFC 3339 UTC timestamps and Apple's absolute time (seconds since 2001-01-01 UTC).
 * Pure functions, no locale, no time zone database.
 */
#ifndef CRADLE_TIMEFMT_H
#define CRADLE_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

/* Seconds between the Unix epoch and Apple's 2001-01-01T00:00:00Z. */
#define TIMEFMT_MAC_EPOCH_OFFSET 978307200LL

/* Long enough for "YYYY-MM-DDTHH:MM:SS.mmmZ" plus NUL. */
#define TIMEFMT_RFC3339_MAX 32

/* Writes "YYYY-MM-DDTHH:MM:SSZ" for Unix seconds. 0 or -EINVAL (buffer too small). */
int timefmt_rfc3339(int64_t unix_s, char *buf, size_t size);
/* Same with milliseconds: "YYYY-MM-DDTHH:MM:SS.mmmZ". */
int timefmt_rfc3339_ms(int64_t unix_ms, char *buf, size_t size);
/* Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)" into Unix seconds. 0 or -EINVAL. */
int timefmt_parse_rfc3339(const char *s, int64_t *ret_unix_s);

static inline int64_t timefmt_mac_to_unix(int64_t mac_s)
{
	return mac_s + TIMEFMT_MAC_EPOCH_OFFSET;
}

static inline int64_t timefmt_unix_to_mac(int64_t unix_s)
{
	return unix_s - TIMEFMT_MAC_EPOCH_OFFSET;
}

#endif
