/* SPDX-License-Identifier: MIT */
/*
 * Tests of common/log.c: identical lines in a row are collapsed into one line and a count
 * ("last message repeated N times"), as syslog does; different lines are all written. When
 * stderr is the journal's stream (JOURNAL_STREAM holds its device:inode, as systemd sets it)
 * every line starts with its syslog priority "<N>"; with the variable naming another file, a
 * malformed one or none, no prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

enum stream {
	STREAM_NONE,    /* JOURNAL_STREAM unset */
	STREAM_STDERR,  /* JOURNAL_STREAM = stderr's device:inode: the journal */
	STREAM_OTHER,   /* JOURNAL_STREAM = another real file's (a child that kept the variable) */
	STREAM_GARBAGE, /* malformed */
};

/* Sets JOURNAL_STREAM as told, fd being stderr now. */
static void set_stream(enum stream how, int fd)
{
	char path[] = "/tmp/log-test-other-XXXXXX", val[64];
	struct stat st;
	int other;

	switch (how) {
	case STREAM_NONE:
		unsetenv("JOURNAL_STREAM");
		return;
	case STREAM_STDERR:
		assert_int_equal(fstat(fd, &st), 0);
		break;
	case STREAM_OTHER:
		other = mkstemp(path);
		assert_true(other >= 0);
		assert_int_equal(fstat(other, &st), 0);
		close(other);
		unlink(path);
		break;
	case STREAM_GARBAGE:
		assert_int_equal(fstat(fd, &st), 0);
		snprintf(val, sizeof(val), "%llu:%llux", (unsigned long long)st.st_dev,
		         (unsigned long long)st.st_ino);
		setenv("JOURNAL_STREAM", val, 1);
		return;
	}
	snprintf(val, sizeof(val), "%llu:%llu", (unsigned long long)st.st_dev,
	         (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", val, 1);
}

/*
 * Runs the logging calls with stderr sent to a temp file, JOURNAL_STREAM set as told before
 * log_init() (which looks at it), and returns what was written.
 */
static char *capture_as(void (*fn)(void), enum stream how)
{
	char path[] = "/tmp/log-test-XXXXXX", *buf;
	int fd = mkstemp(path), saved = dup(STDERR_FILENO);
	off_t size;

	assert_true(fd >= 0 && saved >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	set_stream(how, fd);
	log_init("log-test", LOG_LEVEL_DEBUG);
	fn();
	log_flush();
	assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
	unsetenv("JOURNAL_STREAM");
	log_init("log-test", LOG_LEVEL_INFO);
	close(saved);
	size = lseek(fd, 0, SEEK_END);
	buf = calloc(1, (size_t)size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)size, 0), size);
	close(fd);
	unlink(path);
	return buf;
}

static char *capture(void (*fn)(void))
{
	return capture_as(fn, STREAM_NONE);
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

static void every_level(void)
{
	log_error("e");
	log_warn("w");
	log_notice("n");
	log_info("i");
	log_debug("d");
	log_warn_errno(-5, "x");
	log_warn_errno(-5, "x");
	log_info("last");
}

/* stderr is the journal: every line, the repeat count too, starts with its priority */
static void test_journal_prefixes(void **state)
{
	char *out = capture_as(every_level, STREAM_STDERR);

	(void)state;
	assert_string_equal(out, "<3>log-test: error: e\n"
	                         "<4>log-test: warn: w\n"
	                         "<5>log-test: notice: n\n"
	                         "<6>log-test: info: i\n"
	                         "<7>log-test: debug: d\n"
	                         "<4>log-test: warn: x: Input/output error\n"
	                         "<4>log-test: last message repeated 1 times\n"
	                         "<6>log-test: info: last\n");
	free(out);
}

/* JOURNAL_STREAM names another file, is malformed, or is unset: no prefix */
static void test_not_journal(void **state)
{
	static const enum stream hows[] = { STREAM_OTHER, STREAM_GARBAGE, STREAM_NONE };
	const char *want = "log-test: error: e\n"
	                   "log-test: warn: w\n"
	                   "log-test: notice: n\n"
	                   "log-test: info: i\n"
	                   "log-test: debug: d\n"
	                   "log-test: warn: x: Input/output error\n"
	                   "log-test: last message repeated 1 times\n"
	                   "log-test: info: last\n";

	(void)state;
	for (size_t i = 0; i < sizeof(hows) / sizeof(hows[0]); i++) {
		char *out = capture_as(every_level, hows[i]);

		assert_string_equal(out, want);
		free(out);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_repeats_collapsed),
		cmocka_unit_test(test_levels_differ),
		cmocka_unit_test(test_journal_prefixes),
		cmocka_unit_test(test_not_journal),
	};

	log_init("log-test", LOG_LEVEL_INFO);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
