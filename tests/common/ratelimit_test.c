/* SPDX-License-Identifier: MIT */
/* Tests of the per-key GCRA rate limiter (agent/ratelimit.c): burst, refill, bounded keys. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ratelimit.h"

static void test_burst_and_refill(void **state)
{
	struct ratelimit *rl = NULL;
	uint64_t retry = 0;
	int i;

	(void)state;
	/* 3 per minute: burst 3, one token back every 20 s */
	assert_int_equal(ratelimit_new(8, 3, 20000, &rl), 0);
	for (i = 0; i < 3; i++)
		assert_int_equal(ratelimit_take(rl, "dev-a", 1000, NULL), 0);
	assert_false(ratelimit_check(rl, "dev-a", 1000));
	assert_int_equal(ratelimit_take(rl, "dev-a", 1000, &retry), -EAGAIN);
	assert_int_equal(retry, 20000);
	/* a refused take costs nothing: one token is back exactly 20 s later */
	assert_int_equal(ratelimit_take(rl, "dev-a", 20999, NULL), -EAGAIN);
	assert_int_equal(ratelimit_take(rl, "dev-a", 21000, NULL), 0);
	assert_int_equal(ratelimit_take(rl, "dev-a", 21000, NULL), -EAGAIN);
	/* other keys are independent */
	assert_true(ratelimit_check(rl, "dev-b", 1000));
	assert_int_equal(ratelimit_take(rl, "dev-b", 1000, NULL), 0);
	/* a long pause refills to the burst, never beyond it */
	for (i = 0; i < 3; i++)
		assert_int_equal(ratelimit_take(rl, "dev-a", 10000000, NULL), 0);
	assert_int_equal(ratelimit_take(rl, "dev-a", 10000000, NULL), -EAGAIN);
	ratelimit_free(rl);
}

static void test_bad_args(void **state)
{
	struct ratelimit *rl = NULL;
	char long_key[RATELIMIT_KEY_MAX + 1];

	(void)state;
	assert_int_equal(ratelimit_new(0, 1, 1000, &rl), -EINVAL);
	assert_int_equal(ratelimit_new(8, 0, 1000, &rl), -EINVAL);
	assert_int_equal(ratelimit_new(8, 1, 0, &rl), -EINVAL);
	assert_int_equal(ratelimit_new(8, 1, 1000, &rl), 0);
	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	assert_int_equal(ratelimit_take(rl, long_key, 0, NULL), -EINVAL);
	assert_int_equal(ratelimit_take(rl, "", 0, NULL), -EINVAL);
	assert_false(ratelimit_check(rl, NULL, 0));
	ratelimit_free(rl);
}

/* With a full key table, a key with a full bucket is forgotten first: no limit is lost. */
static void test_bounded_keys(void **state)
{
	struct ratelimit *rl = NULL;
	char key[16];
	int i;

	(void)state;
	assert_int_equal(ratelimit_new(4, 1, 60000, &rl), 0);
	assert_int_equal(ratelimit_take(rl, "busy", 100000, NULL), 0);
	for (i = 0; i < 3; i++) {
		snprintf(key, sizeof(key), "idle-%d", i);
		assert_int_equal(ratelimit_take(rl, key, 0, NULL), 0);
	}
	/* idle-* are full again at t = 100000 (60 s later); busy is not */
	for (i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "new-%d", i);
		assert_int_equal(ratelimit_take(rl, key, 100000 + (uint64_t)i * 60000, NULL), 0);
		assert_int_equal(ratelimit_take(rl, "busy", 100001 + (uint64_t)i * 60000, NULL),
		                 i == 0 ? -EAGAIN : 0);
	}
	ratelimit_free(rl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_and_refill),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_bounded_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
