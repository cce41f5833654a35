/* SPDX-License-Identifier: MIT */
/*
 * Tests of common/log.c: identical lines in a row are collapsed into one line and a count
 * ("last message repeated N times"), as syslog does; different lines are all written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

/* Runs the logging calls with stderr sent to a temp file and returns what was written. */
static char *capture(void (*fn)(void))
{
	char path[] = "/tmp/log-test-XXXXXX", *buf;
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	off_t size;

	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	fn();
	log_flush();
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	close(saved);
	size = lseek(fd, 0, SEEK_END);
	buf = calloc(1, (size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
	close(fd);
	unlink(path);
	return buf;
}

static void flood(void)
{
	int i;

	for (i = 0; i < 1000; i++)
		log_notice("cmd: rejected (%s)", "busy");
	log_notice("something else %d", 1);
	log_notice("something else %d", 2);
	log_notice("cmd: rejected (%s)", "busy");
	log_notice("cmd: rejected (%s)", "busy");
	log_notice("cmd: rejected (%s)", "busy");
}

static void test_repeats_collapsed(void **state)
{
	char *out = capture(flood);

	(void)state;
	assert_string_equal(out, "log-test: notice: cmd: rejected (busy)\n"
	                         "log-test: last message repeated 999 times\n"
	                         "log-test: notice: something else 1\n"
	                         "log-test: notice: something else 2\n"
	                         "log-test: notice: cmd: rejected (busy)\n"
	                         "log-test: last message repeated 2 times\n");
	free(out);
}

static void levels(void)
{
	log_notice("same text");
	log_warn("same text");
	log_warn_errno(-5, "same text");
}

/* the level and the errno text are part of the line */
static void test_levels_differ(void **state)
{
	char *out = capture(levels);

	(void)state;
	assert_string_equal(out, "log-test: notice: same text\n"
	                         "log-test: warn: same text\n"
	                         "log-test: warn: same text: Input/output error\n");
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repeats_collapsed),
		cmocka_unit_test(test_levels_differ),
	};

	log_init("log-test", LOG_LEVEL_INFO);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
