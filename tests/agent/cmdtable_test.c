/* SPDX-License-Identifier: MIT */
/*
 * Tests of the persistent command table (agent/cmdtable.c): persistence across reopen, a kill -9
 * right after a put, torn and damaged files (each fails closed: the replay_unknown watermark),
 * the count bound (busy, never an eviction) and the age bound, compaction, and O(1) lookups at
 * the hard cap.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "cmdtable.h"
#include "log.h"

#define T0       1768442400000LL
#define HOUR_MS  (3600 * 1000LL)
#define REC_SIZE 96
#define HDR_SIZE 16

struct fixture {
	char dir[64];
	char path[128];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cmdtable-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/cmdtable", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[160];

	unlink(f->path);
	snprintf(p, sizeof(p), "%s.guard", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s.tmp", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s.corrupt", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void id_n(int n, char *id)
{
	snprintf(id, COMMAND_ID_MAX, "%08x-0000-4000-8000-%012d", (unsigned)n * 2654435761u, n);
}

static off_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static void test_put_get_reopen(void **state)
{
	struct fixture *f = *state;
	struct cmdtable *t = NULL;
	const struct cmdtable_entry *e;
	char id[COMMAND_ID_MAX];

	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0, &t), 0);
	assert_int_equal(cmdtable_count(t), 0);
	assert_int_equal(file_size(f->path), HDR_SIZE);
	id_n(1, id);
	assert_null(cmdtable_get(t, id));
	assert_int_equal(cmdtable_put(t, id, COMMAND_STATUS_ACCEPTED, NULL, -1, T0), 0);
	assert_int_equal(cmdtable_put(t, id, COMMAND_STATUS_IN_PROGRESS, NULL, 40, T0 + 10), 0);
	assert_int_equal(
	        cmdtable_put(t, id, COMMAND_STATUS_FAILED, "passcode_required", -1, T0 + 20), 0);
	id_n(2, id);
	assert_int_equal(cmdtable_put(t, id, COMMAND_STATUS_REJECTED, "rate_limited", -1, T0 + 30),
	                 0);
	assert_int_equal(cmdtable_put(t, "not-a-uuid", COMMAND_STATUS_ACCEPTED, NULL, -1, T0),
	                 -EINVAL);
	assert_int_equal(cmdtable_put(t, id, COMMAND_STATUS_IN_PROGRESS, NULL, 101, T0), -EINVAL);
	assert_int_equal(cmdtable_count(t), 2);
	assert_int_equal(file_size(f->path), HDR_SIZE + 4 * REC_SIZE);
	cmdtable_free(t);

	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 1000, &t), 0);
	assert_int_equal(cmdtable_count(t), 2);
	id_n(1, id);
	e = cmdtable_get(t, id);
	assert_non_null(e);
	assert_int_equal(e->status, COMMAND_STATUS_FAILED);
	assert_string_equal(e->code, "passcode_required");
	assert_int_equal(e->created_ms, T0);
	assert_int_equal(e->updated_ms, T0 + 20);
	id_n(2, id);
	/* lookups ignore case */
	for (char *p = id; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	e = cmdtable_get(t, id);
	assert_non_null(e);
	assert_int_equal(e->status, COMMAND_STATUS_REJECTED);
	assert_string_equal(e->code, "rate_limited");
	cmdtable_free(t);
}

/* The record is on disk when put returns: a kill -9 right after loses nothing. */
static void test_kill9(void **state)
{
	struct fixture *f = *state;
	struct cmdtable *t = NULL;
	const struct cmdtable_entry *e;
	char id[COMMAND_ID_MAX];
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct cmdtable *ct = NULL;
		char cid[COMMAND_ID_MAX];

		if (cmdtable_open(f->path, 100, 24 * HOUR_MS, T0, &ct) < 0)
			_exit(1);
		for (int i = 0; i < 5; i++) {
			id_n(i, cid);
			if (cmdtable_put(ct, cid, COMMAND_STATUS_SUCCEEDED, NULL, -1, T0) < 0)
				_exit(1);
		}
		kill(getpid(), SIGKILL);
		_exit(2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0, &t), 0);
	assert_int_equal(cmdtable_count(t), 5);
	id_n(4, id);
	e = cmdtable_get(t, id);
	assert_non_null(e);
	assert_int_equal(e->status, COMMAND_STATUS_SUCCEEDED);
	cmdtable_free(t);
}

/* After a restart, executions the old process left unfinished become failed, final ones stay. */
static void count_failed(const struct cmdtable_entry *e, void *data)
{
	int *n = data;

	assert_int_equal(e->status, COMMAND_STATUS_FAILED);
	assert_string_equal(e->code, "agent_restarted");
	(*n)++;
}

/* Each unfinished command is reported once (before its record), then never again. */
static void test_fail_unfinished(void **state)
{
	int reported = 0;
	struct fixture *f = *state;
	struct cmdtable *t = NULL;
	const struct cmdtable_entry *e;
	char a[COMMAND_ID_MAX], b[COMMAND_ID_MAX], c[COMMAND_ID_MAX];

	id_n(1, a);
	id_n(2, b);
	id_n(3, c);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0, &t), 0);
	assert_int_equal(cmdtable_put(t, a, COMMAND_STATUS_ACCEPTED, NULL, -1, T0), 0);
	assert_int_equal(cmdtable_put(t, b, COMMAND_STATUS_IN_PROGRESS, NULL, 30, T0), 0);
	assert_int_equal(cmdtable_put(t, c, COMMAND_STATUS_SUCCEEDED, NULL, -1, T0), 0);
	cmdtable_free(t);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 5, &t), 0);
	assert_int_equal(
	        cmdtable_fail_unfinished(t, "agent_restarted", T0 + 5, count_failed, &reported), 2);
	assert_int_equal(reported, 2);
	e = cmdtable_get(t, a);
	assert_int_equal(e->status, COMMAND_STATUS_FAILED);
	assert_string_equal(e->code, "agent_restarted");
	assert_int_equal(cmdtable_get(t, b)->status, COMMAND_STATUS_FAILED);
	assert_int_equal(cmdtable_get(t, c)->status, COMMAND_STATUS_SUCCEEDED);
	assert_int_equal(cmdtable_fail_unfinished(t, "agent_restarted", T0 + 6, NULL, NULL), 0);
	cmdtable_free(t);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 7, &t), 0);
	assert_int_equal(
	        cmdtable_fail_unfinished(t, "agent_restarted", T0 + 7, count_failed, &reported), 0);
	assert_int_equal(reported, 2);
	cmdtable_free(t);
}

/* Puts n accepted ids 0..n-1 at T0 and closes the table. */
static void fill(struct fixture *f, int n)
{
	struct cmdtable *t = NULL;
	char id[COMMAND_ID_MAX];
	int i;

	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0, &t), 0);
	assert_int_equal(cmdtable_unknown_before(t), 0);
	for (i = 0; i < n; i++) {
		id_n(i, id);
		assert_int_equal(cmdtable_put(t, id, COMMAND_STATUS_ACCEPTED, NULL, -1, T0), 0);
	}
	cmdtable_free(t);
}

/* Reopens at T0 + 1000 and checks it failed closed then (and only then), keeping `count` ids. */
static void expect_fail_closed(struct fixture *f, size_t count)
{
	struct cmdtable *t = NULL;

	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 1000, &t), 0);
	assert_int_equal(cmdtable_count(t), count);
	assert_int_equal(cmdtable_unknown_before(t), T0 + 1000);
	cmdtable_free(t);
	/* the watermark is durable, and a clean reopen does not move it */
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 2000, &t), 0);
	assert_int_equal(cmdtable_count(t), count);
	assert_int_equal(cmdtable_unknown_before(t), T0 + 1000);
	cmdtable_free(t);
}

/* A partial record at the end (a power cut, or a cut file): the ids before it kept, fail closed. */
static void test_torn_tail(void **state)
{
	struct fixture *f = *state;
	struct cmdtable *t = NULL;
	char id[COMMAND_ID_MAX];

	fill(f, 3);
	assert_int_equal(truncate(f->path, HDR_SIZE + 2 * REC_SIZE + 50), 0);
	expect_fail_closed(f, 2);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 3000, &t), 0);
	id_n(2, id);
	assert_null(cmdtable_get(t, id));
	/* the file is aligned again, so the next append is readable */
	assert_int_equal(cmdtable_put(t, id, COMMAND_STATUS_SUCCEEDED, NULL, -1, T0), 0);
	cmdtable_free(t);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 3000, &t), 0);
	assert_int_equal(cmdtable_count(t), 3);
	assert_non_null(cmdtable_get(t, id));
	assert_int_equal(cmdtable_unknown_before(t), T0 + 1000);
	cmdtable_free(t);
}

/* A cut exactly at a record boundary: fewer records than the guard vouches for. */
static void test_truncated(void **state)
{
	struct fixture *f = *state;

	fill(f, 8);
	assert_int_equal(truncate(f->path, HDR_SIZE + 5 * REC_SIZE), 0);
	expect_fail_closed(f, 5);
}

static void test_zero_length(void **state)
{
	struct fixture *f = *state;

	fill(f, 8);
	assert_int_equal(truncate(f->path, 0), 0);
	expect_fail_closed(f, 0);
}

static void test_deleted(void **state)
{
	struct fixture *f = *state;
	struct cmdtable *t = NULL;
	char guard[160];

	fill(f, 8);
	assert_int_equal(unlink(f->path), 0);
	expect_fail_closed(f, 0);
	/* the guard gone instead, or damaged */
	snprintf(guard, sizeof(guard), "%s.guard", f->path);
	assert_int_equal(unlink(guard), 0);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 5000, &t), 0);
	assert_int_equal(cmdtable_unknown_before(t), T0 + 5000);
	cmdtable_free(t);
	assert_int_equal(truncate(guard, 20), 0);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 6000, &t), 0);
	assert_int_equal(cmdtable_unknown_before(t), T0 + 6000);
	cmdtable_free(t);
	/* both gone is a new installation (the daemon checks agent.state for that case) */
	assert_int_equal(unlink(guard), 0);
	assert_int_equal(unlink(f->path), 0);
	fill(f, 1);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 7000, &t), 0);
	assert_int_equal(cmdtable_unknown_before(t), 0);
	assert_int_equal(cmdtable_mark_unknown(t, T0 + 7000), 0);
	cmdtable_free(t);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 8000, &t), 0);
	assert_int_equal(cmdtable_unknown_before(t), T0 + 7000);
	assert_int_equal(cmdtable_count(t), 1);
	cmdtable_free(t);
}

/* With no room to write (RLIMIT_FSIZE 0: writes fail with EFBIG), a new or damaged table still
 * opens: the agent starts on a full disk, fails closed in memory, and writes once room is back. */
static void test_no_room(void **state)
{
	struct fixture *f = *state;
	struct cmdtable *t = NULL;
	struct rlimit old, lim;
	char id[COMMAND_ID_MAX];

	id_n(1, id);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 0;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0, &t), 0);
	assert_true(cmdtable_put(t, id, COMMAND_STATUS_ACCEPTED, NULL, -1, T0) < 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(cmdtable_put(t, id, COMMAND_STATUS_ACCEPTED, NULL, -1, T0), 0);
	cmdtable_free(t);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0, &t), 0);
	assert_int_equal(cmdtable_count(t), 1);
	assert_int_equal(cmdtable_unknown_before(t), 0);
	cmdtable_free(t);

	/* damaged while full: the watermark holds in memory, and is found again later */
	assert_int_equal(truncate(f->path, 0), 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 1000, &t), 0);
	assert_int_equal(cmdtable_unknown_before(t), T0 + 1000);
	cmdtable_free(t);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 2000, &t), 0);
	assert_true(cmdtable_unknown_before(t) >= T0 + 1000);
	cmdtable_free(t);
}

/* A damaged record (bad CRC) is skipped; the records on both sides are kept; fail closed. */
static void test_bad_crc(void **state)
{
	struct fixture *f = *state;
	struct cmdtable *t = NULL;
	char id[COMMAND_ID_MAX];
	int fd;

	fill(f, 8);
	fd = open(f->path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, HDR_SIZE + 2 * REC_SIZE + 40), 1);
	close(fd);
	expect_fail_closed(f, 7);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0 + 3000, &t), 0);
	id_n(2, id);
	assert_null(cmdtable_get(t, id));
	id_n(7, id);
	assert_non_null(cmdtable_get(t, id));
	cmdtable_free(t);
}

/* A file that is not a command table is moved aside, and the agent starts with an empty one. */
static void test_bad_header(void **state)
{
	struct fixture *f = *state;
	struct cmdtable *t = NULL;
	char aside[160];
	FILE *fp = fopen(f->path, "w");

	assert_non_null(fp);
	fputs("this is not a command table, just some text that is long enough\n", fp);
	fclose(fp);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0, &t), 0);
	assert_int_equal(cmdtable_count(t), 0);
	snprintf(aside, sizeof(aside), "%s.corrupt", f->path);
	assert_int_equal(access(aside, F_OK), 0);
	assert_int_equal(file_size(f->path), HDR_SIZE);
	cmdtable_free(t);

	/* a file shorter than the header too */
	fp = fopen(f->path, "w");
	fputs("CRD", fp);
	fclose(fp);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0, &t), 0);
	assert_int_equal(cmdtable_count(t), 0);
	cmdtable_free(t);
}

/* A full table refuses a new id (busy) and forgets none of its live ones; age frees space. */
static void test_count_bound(void **state)
{
	struct fixture *f = *state;
	struct cmdtable *t = NULL;
	char id[COMMAND_ID_MAX];
	int i;

	assert_int_equal(cmdtable_open(f->path, 4, 24 * HOUR_MS, T0, &t), 0);
	for (i = 0; i < 6; i++) {
		id_n(i, id);
		assert_int_equal(cmdtable_put(t, id, COMMAND_STATUS_ACCEPTED, NULL, -1, T0 + i),
		                 i < 4 ? 0 : -EBUSY);
	}
	assert_int_equal(cmdtable_count(t), 4);
	for (i = 0; i < 6; i++) {
		id_n(i, id);
		if (i < 4)
			assert_non_null(cmdtable_get(t, id));
		else
			assert_null(cmdtable_get(t, id));
	}
	/* a known id still takes its later states */
	id_n(0, id);
	assert_int_equal(cmdtable_put(t, id, COMMAND_STATUS_SUCCEEDED, NULL, -1, T0 + 10), 0);
	cmdtable_free(t);
	assert_int_equal(cmdtable_open(f->path, 4, 24 * HOUR_MS, T0, &t), 0);
	assert_int_equal(cmdtable_count(t), 4);
	assert_int_equal(cmdtable_unknown_before(t), 0);
	id_n(0, id);
	assert_int_equal(cmdtable_get(t, id)->status, COMMAND_STATUS_SUCCEEDED);
	/* once the oldest is past the retention, a new id fits */
	id_n(5, id);
	assert_int_equal(
	        cmdtable_put(t, id, COMMAND_STATUS_ACCEPTED, NULL, -1, T0 + 24 * HOUR_MS + 1), 0);
	id_n(0, id);
	assert_null(cmdtable_get(t, id));
	cmdtable_free(t);
	assert_int_equal(cmdtable_open(f->path, 0, 24 * HOUR_MS, T0, &t), -EINVAL);
	assert_int_equal(cmdtable_open(f->path, CMDTABLE_ENTRIES_MAX + 1, 24 * HOUR_MS, T0, &t),
	                 -EINVAL);
}

static void test_age_bound(void **state)
{
	struct fixture *f = *state;
	struct cmdtable *t = NULL;
	char a[COMMAND_ID_MAX], b[COMMAND_ID_MAX];

	id_n(1, a);
	id_n(2, b);
	assert_int_equal(cmdtable_open(f->path, 100, HOUR_MS, T0, &t), 0);
	assert_int_equal(cmdtable_put(t, a, COMMAND_STATUS_ACCEPTED, NULL, -1, T0), 0);
	assert_int_equal(cmdtable_put(t, b, COMMAND_STATUS_ACCEPTED, NULL, -1, T0 + HOUR_MS / 2),
	                 0);
	/* an update does not make an entry younger: age counts from the first status */
	assert_int_equal(cmdtable_put(t, a, COMMAND_STATUS_SUCCEEDED, NULL, -1, T0 + HOUR_MS / 2),
	                 0);
	assert_int_equal(cmdtable_prune(t, T0 + HOUR_MS), 0);
	assert_int_equal(cmdtable_prune(t, T0 + HOUR_MS + 1), 1);
	assert_null(cmdtable_get(t, a));
	assert_non_null(cmdtable_get(t, b));
	cmdtable_free(t);
	/* on open, old entries are forgotten as well */
	assert_int_equal(cmdtable_open(f->path, 100, HOUR_MS, T0 + HOUR_MS + 1, &t), 0);
	assert_int_equal(cmdtable_count(t), 1);
	cmdtable_free(t);
	assert_int_equal(cmdtable_open(f->path, 100, HOUR_MS, T0 + 2 * HOUR_MS, &t), 0);
	assert_int_equal(cmdtable_count(t), 0);
	cmdtable_free(t);
}

/* Many updates of few ids: the log is compacted and stays small; values survive. */
static void test_compaction(void **state)
{
	struct fixture *f = *state;
	struct cmdtable *t = NULL;
	const struct cmdtable_entry *e;
	char id[COMMAND_ID_MAX];
	int i;

	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0, &t), 0);
	for (i = 0; i < 1000; i++) {
		id_n(i % 3, id);
		assert_int_equal(
		        cmdtable_put(t, id, COMMAND_STATUS_IN_PROGRESS, NULL, i % 101, T0 + i), 0);
		assert_true(cmdtable_log_records(t) <= 2 * 3 + 64 + 1);
	}
	assert_true(file_size(f->path) <= HDR_SIZE + (2 * 3 + 64 + 1) * REC_SIZE);
	assert_int_equal(file_size(f->path), HDR_SIZE + (off_t)cmdtable_log_records(t) * REC_SIZE);
	cmdtable_free(t);
	assert_int_equal(cmdtable_open(f->path, 100, 24 * HOUR_MS, T0, &t), 0);
	assert_int_equal(cmdtable_count(t), 3);
	id_n(999 % 3, id);
	e = cmdtable_get(t, id);
	assert_non_null(e);
	assert_int_equal(e->progress, 999 % 101);
	assert_int_equal(e->created_ms, T0 + 999 % 3);
	cmdtable_free(t);
}

/*
 * At the hard cap, loading, refusing and looking up stay cheap: report the figures. The file
 * lives on /dev/shm (tmpfs, where fdatasync costs nothing) when there is one, so this measures
 * the table and not the disk.
 */
static void test_scale(void **state)
{
	struct fixture *f = *state;
	struct cmdtable *t = NULL;
	struct timespec a, b;
	char id[COMMAND_ID_MAX], dir[64] = "/dev/shm/cmdtable-scale-XXXXXX", path[128];
	int i, n = CMDTABLE_ENTRIES_MAX, extra = 5000, found = 0;
	double lookup_ns, open_ms, put_us;

	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof(dir), "%s", f->dir);
		n = 2000; /* each put is a real fdatasync here */
		extra = 100;
	}
	snprintf(path, sizeof(path), "%s/cmdtable", dir);
	assert_int_equal(cmdtable_open(path, (size_t)n, 24 * HOUR_MS, T0, &t), 0);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < n + extra; i++) {
		id_n(i, id);
		assert_int_equal(cmdtable_put(t, id, COMMAND_STATUS_ACCEPTED, NULL, -1, T0 + i),
		                 i < n ? 0 : -EBUSY);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	put_us = ((double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3) /
	         (n + extra);
	assert_int_equal(cmdtable_count(t), n);
	cmdtable_free(t);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(cmdtable_open(path, (size_t)n, 24 * HOUR_MS, T0, &t), 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	open_ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	assert_int_equal(cmdtable_count(t), n);
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (i = 0; i < n + extra; i++) {
		id_n(i, id);
		found += cmdtable_get(t, id) != NULL;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	lookup_ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) /
	            (n + extra);
	assert_int_equal(found, n); /* the `extra` were refused, none evicted */
	id_n(0, id);
	assert_non_null(cmdtable_get(t, id));
	id_n(n, id);
	assert_null(cmdtable_get(t, id));
	print_message("cmdtable (%s): %d entries, put %.1f us, open %.1f ms, lookup %.0f ns\n", dir,
	              n, put_us, open_ms, lookup_ns);
	cmdtable_free(t);
	unlink(path);
	snprintf(path, sizeof(path), "%s/cmdtable.tmp", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/cmdtable.guard", dir);
	unlink(path);
	if (strcmp(dir, f->dir) != 0)
		rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_put_get_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kill9, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fail_unfinished, setup, teardown),
		cmocka_unit_test_setup_teardown(test_torn_tail, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_crc, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zero_length, setup, teardown),
		cmocka_unit_test_setup_teardown(test_deleted, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_room, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_header, setup, teardown),
		cmocka_unit_test_setup_teardown(test_count_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_age_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scale, setup, teardown),
	};

	log_init("cmdtable-test", LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
