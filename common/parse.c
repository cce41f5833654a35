/* SPDX-License-Identifier: MIT */
/* parse: see parse.h. Explicit digit loops: no locale, no strtoull() sign or blank quirks. */
#include "parse.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "macro.h"

struct parse_unit {
	const char *suffix;
	uint64_t mult;
};

/* largest first: the order a combined duration must follow (multipliers in ms) */
static const struct parse_unit duration_units[] = {
	{ "d", 86400000 }, { "h", 3600000 }, { "m", 60000 }, { "s", 1000 }, { "ms", 1 },
};

static const struct parse_unit size_units[] = {
	{ "K", 1ULL << 10 },
	{ "M", 1ULL << 20 },
	{ "G", 1ULL << 30 },
	{ "T", 1ULL << 40 },
};

#define PARSE_DURATION_MS_MAX ((uint64_t)INT64_MAX)

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Leading decimal digits of s (NULL is -EINVAL); *end points after them. */
static int parse_digits(const char *s, uint64_t *ret, const char **end)
{
	uint64_t v = 0;
	const char *q = s;

	if (!q || !is_digit(*q))
		return -EINVAL;
	for (; is_digit(*q); q++) {
		unsigned d = (unsigned)(*q - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	*end = q;
	return 0;
}

/* The unit at the start of s among units[from..]: its index, and its length in *ret_len. */
static size_t find_unit(const char *s, size_t from, size_t *ret_len)
{
	size_t best = ARRAY_SIZE(duration_units), best_len = 0;

	/* the longest suffix that matches: "ms" is not "m" followed by junk */
	for (size_t i = from; i < ARRAY_SIZE(duration_units); i++) {
		size_t n = strlen(duration_units[i].suffix);

		if (n > best_len && strncmp(s, duration_units[i].suffix, n) == 0) {
			best = i;
			best_len = n;
		}
	}
	*ret_len = best_len;
	return best;
}

int parse_duration_ms(const char *s, uint64_t *ret_ms)
{
	size_t next_unit = 0; /* index of the largest unit still allowed */
	uint64_t total = 0, v;
	const char *end;
	int r;

	r = parse_digits(s, &v, &end);
	if (r < 0)
		return r;
	if (*end == '\0') {
		/* a bare number is seconds */
		if (v > PARSE_DURATION_MAX)
			return -ERANGE;
		*ret_ms = v * 1000;
		return 0;
	}
	for (;;) {
		size_t len, i = find_unit(end, next_unit, &len);

		/* an unknown unit, or one out of order or repeated ("1m1h", "1m1m") */
		if (i == ARRAY_SIZE(duration_units))
			return -EINVAL;
		if (v > PARSE_DURATION_MS_MAX / duration_units[i].mult)
			return -ERANGE;
		if (total > PARSE_DURATION_MS_MAX - v * duration_units[i].mult)
			return -ERANGE;
		total += v * duration_units[i].mult;
		next_unit = i + 1;
		s = end + len;
		if (*s == '\0')
			break;
		/* every further part needs its own unit: "1h30" is a typo, not 1h30s */
		r = parse_digits(s, &v, &end);
		if (r < 0)
			return r;
		if (*end == '\0')
			return -EINVAL;
	}
	*ret_ms = total;
	return 0;
}

int parse_duration(const char *s, uint64_t *ret_s)
{
	uint64_t ms;
	int r;

	r = parse_duration_ms(s, &ms);
	if (r < 0)
		return r;
	/* seconds are the resolution here: 1500ms would be silently rounded */
	if (ms % 1000 != 0)
		return -EINVAL;
	*ret_s = ms / 1000;
	return 0;
}

/* Digits with at most one of units (n of them) after them; bare digits are taken as they are. */
static int parse_scaled(const char *s, const struct parse_unit *units, size_t n, uint64_t *ret)
{
	const char *end;
	uint64_t v;
	int r;

	r = parse_digits(s, &v, &end);
	if (r < 0)
		return r;
	if (*end == '\0') {
		*ret = v;
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(units[i].suffix, end) != 0)
			continue;
		if (v > UINT64_MAX / units[i].mult)
			return -ERANGE;
		*ret = v * units[i].mult;
		return 0;
	}
	return -EINVAL;
}

int parse_uint(const char *s, uint64_t *ret)
{
	return parse_scaled(s, NULL, 0, ret);
}

int parse_size(const char *s, uint64_t *ret_bytes)
{
	return parse_scaled(s, size_units, ARRAY_SIZE(size_units), ret_bytes);
}

int parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* Paho's schemes (MQTTAsync_createWithOptions() accepts these and no others). */
static const struct {
	const char *prefix;
	bool tls;
} broker_schemes[] = {
	{ "tcp://", false }, { "mqtt://", false }, { "ws://", false },
	{ "ssl://", true },  { "mqtts://", true }, { "wss://", true },
};

int parse_broker_url_tls(const char *url)
{
	if (!url)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(broker_schemes); i++) {
		size_t n = strlen(broker_schemes[i].prefix);

		if (strncmp(url, broker_schemes[i].prefix, n) != 0)
			continue;
		if (url[n] == '\0' || url[n] == ':' || url[n] == '/')
			return -EINVAL;
		return broker_schemes[i].tls ? 1 : 0;
	}
	return -EINVAL;
}
