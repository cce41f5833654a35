/* SPDX-License-Identifier: MIT */
/* parse: every accepted form, and junk, signs, blanks and overflow refused with the right code. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "macro.h"
#include "parse.h"

static void test_duration(void **state)
{
	static const struct {
		const char *s;
		uint64_t want;
	} good[] = {
		{ "0", 0 },
		{ "30", 30 },
		{ "30s", 30 },
		{ "5m", 300 },
		{ "72h", 259200 },
		{ "2d", 172800 },
		{ "1h30m", 5400 },
		{ "2d12h", 216000 },
		{ "1d1h1m1s", 90061 },
		{ "90m", 5400 },
		{ "0s", 0 },
		{ "007s", 7 },
		{ "1m30s", 90 },
		{ "9223372036854775", PARSE_DURATION_MAX },
		{ "106751991167d7h", 9223372036854000 },
	};
	static const struct {
		const char *s;
		int want;
	} bad[] = {
		{ "", -EINVAL },
		{ "s", -EINVAL },
		{ "-5s", -EINVAL },
		{ "+5s", -EINVAL },
		{ " 5s", -EINVAL },
		{ "5s ", -EINVAL },
		{ "5 s", -EINVAL },
		{ "5x", -EINVAL },
		{ "5S", -EINVAL },
		{ "1h30", -EINVAL },
		{ "30m1h", -EINVAL },
		{ "1m1m", -EINVAL },
		{ "5ms", -EINVAL },
		{ "1.5h", -EINVAL },
		{ "0x10", -EINVAL },
		{ "1h-30m", -EINVAL },
		{ "5ss", -EINVAL },
		{ "9223372036854776", -ERANGE },     /* one past PARSE_DURATION_MAX */
		{ "99999999999999999999", -ERANGE }, /* past UINT64_MAX */
		{ "9999999999999999d", -ERANGE },    /* the multiplication overflows */
		{ "106751991167d8h", -ERANGE },      /* the sum passes the maximum */
	};
	uint64_t v;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		v = 12345;
		if (parse_duration(good[i].s, &v) != 0 || v != good[i].want)
			fail_msg("parse_duration('%s') = %llu, want %llu", good[i].s,
			         (unsigned long long)v, (unsigned long long)good[i].want);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int r;

		v = 12345;
		r = parse_duration(bad[i].s, &v);
		if (r != bad[i].want || v != 12345)
			fail_msg("parse_duration('%s') = %d, want %d (and output untouched)",
			         bad[i].s, r, bad[i].want);
	}
	assert_int_equal(parse_duration(NULL, &v), -EINVAL);
}

static void test_duration_ms(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(parse_duration_ms("1500ms", &v), 0);
	assert_int_equal(v, 1500);
	assert_int_equal(parse_duration_ms("1s500ms", &v), 0);
	assert_int_equal(v, 1500);
	assert_int_equal(parse_duration_ms("30", &v), 0); /* bare: seconds */
	assert_int_equal(v, 30000);
	assert_int_equal(parse_duration_ms("1m", &v), 0); /* minutes, not a truncated "ms" */
	assert_int_equal(v, 60000);
	assert_int_equal(parse_duration_ms("1m1ms", &v), 0);
	assert_int_equal(v, 60001);
	assert_int_equal(parse_duration_ms("0ms", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_duration_ms("500ms1s", &v), -EINVAL);
	assert_int_equal(parse_duration_ms("1msx", &v), -EINVAL);
	assert_int_equal(parse_duration_ms("1mss", &v), -EINVAL);
	assert_int_equal(parse_duration_ms("1ms1ms", &v), -EINVAL);
	assert_int_equal(parse_duration_ms("9223372036854775807ms", &v), 0);
	assert_int_equal(v, INT64_MAX);
	assert_int_equal(parse_duration_ms("9223372036854775808ms", &v), -ERANGE);
	/* whole seconds only where the result is in seconds */
	assert_int_equal(parse_duration("1500ms", &v), -EINVAL);
	assert_int_equal(parse_duration("2000ms", &v), 0);
	assert_int_equal(v, 2);
}

static void test_size(void **state)
{
	uint64_t v = 0;

	(void)state;
	assert_int_equal(parse_size("0", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(parse_size("512", &v), 0);
	assert_int_equal(v, 512);
	assert_int_equal(parse_size("64K", &v), 0);
	assert_int_equal(v, 64 * 1024);
	assert_int_equal(parse_size("16M", &v), 0);
	assert_int_equal(v, 16 * 1024 * 1024);
	assert_int_equal(parse_size("1G", &v), 0);
	assert_int_equal(v, 1ULL << 30);
	assert_int_equal(parse_size("2T", &v), 0);
	assert_int_equal(v, 2ULL << 40);
	assert_int_equal(parse_size("16777215T", &v), 0);
	assert_int_equal(v, 16777215ULL << 40);
	assert_int_equal(parse_size("16777216T", &v), -ERANGE);
	assert_int_equal(parse_size("18446744073709551616", &v), -ERANGE);
	assert_int_equal(parse_size("18446744073709551615", &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(parse_size("1k", &v), -EINVAL);
	assert_int_equal(parse_size("1KB", &v), -EINVAL);
	assert_int_equal(parse_size("1KK", &v), -EINVAL);
	assert_int_equal(parse_size("K", &v), -EINVAL);
	assert_int_equal(parse_size("-1", &v), -EINVAL);
	assert_int_equal(parse_size("", &v), -EINVAL);
	assert_int_equal(parse_size("1 K", &v), -EINVAL);
	assert_int_equal(parse_size("1.5G", &v), -EINVAL);
}

static void test_bool_and_uint(void **state)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };
	static const char *const junk[] = {
		"", "TRUE", "True", "y", "2", "truex", " true", "nope"
	};
	uint64_t u = 0;
	bool b;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		b = false;
		assert_int_equal(parse_bool(yes[i], &b), 0);
		assert_true(b);
		assert_int_equal(parse_bool(no[i], &b), 0);
		assert_false(b);
	}
	for (size_t i = 0; i < ARRAY_SIZE(junk); i++)
		if (parse_bool(junk[i], &b) != -EINVAL)
			fail_msg("parse_bool('%s') accepted", junk[i]);
	assert_int_equal(parse_uint("42", &u), 0);
	assert_int_equal(u, 42);
	assert_int_equal(parse_uint("18446744073709551615", &u), 0);
	assert_int_equal(u, UINT64_MAX);
	assert_int_equal(parse_uint("18446744073709551616", &u), -ERANGE);
	assert_int_equal(parse_uint("4 4", &u), -EINVAL);
	assert_int_equal(parse_uint("-1", &u), -EINVAL);
	assert_int_equal(parse_uint("1s", &u), -EINVAL);
	assert_int_equal(parse_uint("", &u), -EINVAL);
}

/* The scheme alone says TLS; a scheme without a host, or an unknown one, is no broker URL. */
static void test_broker_url(void **state)
{
	static const char *const tls[] = { "ssl://h:8883", "mqtts://h", "wss://h:443/mqtt" };
	static const char *const plain[] = { "tcp://h:1883", "mqtt://127.0.0.1:1883", "ws://h" };
	static const char *const junk[] = { "",        "h:1883",      "http://h",
		                            "ssl://",  "tcp://:1883", "ssl:///x",
		                            "SSL://h", "ssl:/h" };

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(tls); i++)
		assert_int_equal(parse_broker_url_tls(tls[i]), 1);
	for (size_t i = 0; i < ARRAY_SIZE(plain); i++)
		assert_int_equal(parse_broker_url_tls(plain[i]), 0);
	for (size_t i = 0; i < ARRAY_SIZE(junk); i++)
		if (parse_broker_url_tls(junk[i]) != -EINVAL)
			fail_msg("parse_broker_url_tls('%s') accepted", junk[i]);
	assert_int_equal(parse_broker_url_tls(NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_duration),   cmocka_unit_test(test_duration_ms),
		cmocka_unit_test(test_size),       cmocka_unit_test(test_bool_and_uint),
		cmocka_unit_test(test_broker_url),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
