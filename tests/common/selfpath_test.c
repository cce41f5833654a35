/* SPDX-License-Identifier: MIT */
/*
 * selfpath: a sibling of the running executable when it exists, CRADLE_LIBEXECDIR when it does
 * not (the installed layout), and a buffer too small refused, never cut.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "selfpath.h"

static void test_sibling(void **state)
{
	char self[PATH_MAX], buf[PATH_MAX + 32], small[4];
	const char *me;
	ssize_t n;

	(void)state;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	/* an existing sibling: this test binary itself */
	me = strrchr(self, '/') + 1;
	assert_int_equal(selfpath_sibling(buf, sizeof(buf), me), 0);
	assert_string_equal(buf, self);
	assert_int_equal(access(buf, X_OK), 0);
	assert_int_equal(selfpath_sibling(small, sizeof(small), me), -ENAMETOOLONG);
}

static void test_libexecdir(void **state)
{
	char want[PATH_MAX + 32], buf[PATH_MAX + 32], small[4];

	(void)state;
	/* no such sibling: the installed helpers' directory */
	snprintf(want, sizeof(want), "%s/cradle-no-such-helper", CRADLE_LIBEXECDIR);
	assert_int_equal(selfpath_sibling(buf, sizeof(buf), "cradle-no-such-helper"), 0);
	assert_string_equal(buf, want);
	assert_int_equal(selfpath_sibling(small, sizeof(small), "cradle-no-such-helper"),
	                 -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sibling),
		cmocka_unit_test(test_libexecdir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
