/* SPDX-License-Identifier: MIT */
/* strmap: put, replace, get, remove (backward shift keeps chains intact), growth, clear. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "strmap.h"

static void count(const char *key, void *value, void *ctx)
{
	(void)key;
	(void)value;
	(*(size_t *)ctx)++;
}

static void test_map(void **state)
{
	struct strmap *m = strmap_new();
	char key[32];
	void *old;
	size_t n = 0;

	(void)state;
	assert_non_null(m);
	for (intptr_t i = 1; i <= 20000; i++) {
		snprintf(key, sizeof(key), "k%ld", (long)i);
		assert_int_equal(strmap_put(m, key, (void *)i, &old), 0);
		assert_null(old);
	}
	assert_int_equal(strmap_size(m), 20000);
	assert_int_equal(strmap_put(m, "k7", (void *)70, &old), 0);
	assert_ptr_equal(old, (void *)7);
	assert_ptr_equal(strmap_get(m, "k7"), (void *)70);
	assert_null(strmap_get(m, "nope"));
	/* remove every odd key: the even ones must all still be found */
	for (intptr_t i = 1; i <= 20000; i += 2) {
		snprintf(key, sizeof(key), "k%ld", (long)i);
		assert_non_null(strmap_remove(m, key));
	}
	assert_null(strmap_remove(m, "k1"));
	for (intptr_t i = 2; i <= 20000; i += 2) {
		snprintf(key, sizeof(key), "k%ld", (long)i);
		assert_ptr_equal(strmap_get(m, key), (void *)i);
	}
	strmap_foreach(m, count, &n);
	assert_int_equal(n, 10000);
	strmap_clear(m, NULL);
	assert_int_equal(strmap_size(m), 0);
	assert_null(strmap_get(m, "k2"));
	strmap_free(m, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_map) };

	return cmocka_run_group_tests(tests, NULL, NULL);
}
