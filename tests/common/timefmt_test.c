/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "timefmt.h"

static void test_format(void **state)
{
	char buf[TIMEFMT_RFC3339_MAX];

	(void)state;
	assert_int_equal(timefmt_rfc3339(0, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	/* 769034247 Apple seconds (the iOS 18.4.1 dump in the protocol notes; checked with python)
	 */
	assert_int_equal(timefmt_rfc3339(timefmt_mac_to_unix(769034247), buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2025-05-15T20:37:27Z");
	assert_int_equal(timefmt_rfc3339_ms(951782400123LL, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "2000-02-29T00:00:00.123Z");
	assert_int_equal(timefmt_rfc3339(-1, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "1969-12-31T23:59:59Z");
	assert_int_equal(timefmt_rfc3339(0, buf, 10), -22);
}

static void test_parse(void **state)
{
	int64_t t;

	(void)state;
	assert_int_equal(timefmt_parse_rfc3339("2025-05-15T20:37:27Z", &t), 0);
	assert_int_equal(t, 769034247 + TIMEFMT_MAC_EPOCH_OFFSET);
	assert_int_equal(timefmt_parse_rfc3339("2025-05-15T22:37:27.5+02:00", &t), 0);
	assert_int_equal(t, 769034247 + TIMEFMT_MAC_EPOCH_OFFSET);
	assert_int_equal(timefmt_parse_rfc3339("2025-13-15T21:17:27Z", &t), -22);
	assert_int_equal(timefmt_parse_rfc3339("2025-05-15T21:17:27", &t), -22);
	assert_int_equal(timefmt_parse_rfc3339("2025-05-15T21:17:27Zjunk", &t), -22);
	assert_int_equal(timefmt_parse_rfc3339("", &t), -22);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
