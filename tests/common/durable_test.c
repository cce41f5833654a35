/* SPDX-License-Identifier: MIT */
/*
 * durable: whole-file replacement (content, mode, no temp file left, a stale or planted temp
 * file, an abandoned replacement leaves the old file), the fd handed over after a commit,
 * positioned I/O and the CRC.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "durable.h"

struct paths {
	char dir[64];
	char file[128];
	char tmp[136];
};

static int setup(void **state)
{
	struct paths *p = calloc(1, sizeof(*p));

	if (!p)
		return -1;
	snprintf(p->dir, sizeof(p->dir), "/tmp/durable-test-XXXXXX");
	if (!mkdtemp(p->dir))
		return -1;
	snprintf(p->file, sizeof(p->file), "%s/state", p->dir);
	snprintf(p->tmp, sizeof(p->tmp), "%s.tmp", p->file);
	*state = p;
	return 0;
}

static int teardown(void **state)
{
	struct paths *p = *state;
	char other[160];

	snprintf(other, sizeof(other), "%s/other", p->dir);
	unlink(p->file);
	unlink(p->tmp);
	unlink(other);
	rmdir(p->dir);
	free(p);
	return 0;
}

static void expect_content(const char *path, const char *want)
{
	char buf[256] = { 0 };
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_int_equal(n, (ssize_t)strlen(want));
	assert_string_equal(buf, want);
}

static void test_replace(void **state)
{
	struct paths *p = *state;
	struct stat st;

	assert_int_equal(durable_replace(p->file, "one\n", 4, 0600), 0);
	expect_content(p->file, "one\n");
	assert_int_equal(stat(p->file, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(access(p->tmp, F_OK), -1);
	assert_int_equal(durable_replace(p->file, "second\n", 7, 0600), 0);
	expect_content(p->file, "second\n");
	assert_int_equal(durable_replace(p->file, "", 0, 0600), 0);
	expect_content(p->file, "");
	assert_int_equal(durable_replace("/nonexistent-dir/x", "a", 1, 0600), -ENOENT);
}

static void test_stale_and_planted_temp(void **state)
{
	struct paths *p = *state;
	char other[160];
	int fd;

	/* a temp file left by a crash is replaced, not appended to */
	fd = open(p->tmp, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "garbage garbage garbage", 23), 23);
	close(fd);
	assert_int_equal(durable_replace(p->file, "ok", 2, 0600), 0);
	expect_content(p->file, "ok");
	/* a symlink planted at the temp name is removed, its target left alone */
	snprintf(other, sizeof(other), "%s/other", p->dir);
	assert_int_equal(durable_replace(other, "victim", 6, 0600), 0);
	assert_int_equal(symlink(other, p->tmp), 0);
	assert_int_equal(durable_replace(p->file, "new", 3, 0600), 0);
	expect_content(p->file, "new");
	expect_content(other, "victim");
}

static void test_abandon_and_take_fd(void **state)
{
	struct paths *p = *state;
	struct durable_file df;
	char buf[8] = { 0 };
	int fd;

	assert_int_equal(durable_replace(p->file, "old", 3, 0600), 0);
	/* abandoned before the commit: the old content stays, the temp file goes */
	assert_int_equal(durable_file_open(&df, p->file, 0600), 0);
	assert_int_equal(durable_pwrite_all(df.fd, "half", 4, 0), 0);
	durable_file_close(&df);
	durable_file_close(&df); /* idempotent */
	expect_content(p->file, "old");
	assert_int_equal(access(p->tmp, F_OK), -1);

	/* committed, then kept open: the fd now is the file at path */
	assert_int_equal(durable_file_open(&df, p->file, 0600), 0);
	assert_int_equal(durable_pwrite_all(df.fd, "head", 4, 0), 0);
	assert_int_equal(durable_file_commit(&df), 0);
	assert_true(df.committed);
	assert_int_equal(durable_file_commit(&df), -EBADF);
	fd = durable_file_take_fd(&df);
	durable_file_close(&df);
	assert_true(fd >= 0);
	assert_int_equal(durable_pwrite_all(fd, "tail", 4, 4), 0);
	assert_int_equal(durable_pread_all(fd, buf, 8, 0), 0);
	assert_memory_equal(buf, "headtail", 8);
	assert_int_equal(durable_pread_all(fd, buf, 2, 7), -ENODATA);
	close(fd);
	expect_content(p->file, "headtail");
}

static void test_crc_and_le(void **state)
{
	uint8_t b[8];

	(void)state;
	assert_int_equal(durable_crc32("123456789", 9), 0xcbf43926u);
	assert_int_equal(durable_crc32("", 0), 0);
	durable_put_le(b, 0x0102030405060708ULL, 8);
	assert_int_equal(b[0], 0x08);
	assert_int_equal(b[7], 0x01);
	assert_int_equal(durable_get_le(b, 8), 0x0102030405060708ULL);
	assert_int_equal(durable_get_le(b, 2), 0x0708);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_and_planted_temp, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abandon_and_take_fd, setup, teardown),
		cmocka_unit_test(test_crc_and_le),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
