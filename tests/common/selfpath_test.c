/* SPDX-License-Identifier: MIT */
/* selfpath: a sibling of the running executable, and a buffer too small refused, never cut. */
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
	char self[PATH_MAX], want[PATH_MAX + 32], buf[PATH_MAX + 32], small[4];
	ssize_t n;

	(void)state;
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	assert_true(n > 0);
	self[n] = '\0';
	*strrchr(self, '/') = '\0';
	snprintf(want, sizeof(want), "%s/cradle-helper", self);
	assert_int_equal(selfpath_sibling(buf, sizeof(buf), "cradle-helper"), 0);
	assert_string_equal(buf, want);
	/* the sibling is in the same directory as this test binary, which exists */
	*strrchr(buf, '/') = '\0';
	assert_int_equal(access(buf, X_OK), 0);
	assert_int_equal(selfpath_sibling(small, sizeof(small), "cradle-helper"), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sibling),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
