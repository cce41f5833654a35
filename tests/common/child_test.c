/* SPDX-License-Identifier: MIT */
/* child: real processes (/bin/sh) under the real loop. */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "child.h"
#include "loop.h"

struct result {
	char lines[8][128];
	int n_lines;
	int status;
	bool timed_out;
	bool exited;
};

static void on_line(struct child *c, const char *line, void *data)
{
	struct result *r = data;

	(void)c;
	if (r->n_lines < 8)
		snprintf(r->lines[r->n_lines++], sizeof(r->lines[0]), "%s", line);
}

static void on_exit_cb(struct child *c, int status, bool timed_out, void *data)
{
	struct result *r = data;

	(void)c;
	r->status = status;
	r->timed_out = timed_out;
	r->exited = true;
}

static void stop_loop(struct loop *loop, uint64_t id, void *data)
{
	(void)id;
	(void)data;
	loop_stop(loop);
}

static const struct child_ops ops = { on_line, on_exit_cb };

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	while (d && readdir(d))
		n++;
	if (d)
		closedir(d);
	return n;
}

static void run_until_exit(struct loop *loop, struct result *r)
{
	int i;

	for (i = 0; i < 200 && !r->exited; i++) {
		loop_add_timer(loop, 50, stop_loop, NULL);
		loop_run(loop);
	}
}

static void test_lines_and_status(void **state)
{
	struct loop *loop = loop_new();
	struct result r = { 0 };
	const char *argv[] = { "/bin/sh", "-c", "echo first; printf 'second\\r\\nlast'; exit 3",
		               NULL };
	int fds = count_fds();

	(void)state;
	assert_int_equal(child_spawn(loop, argv, 5000, 64, &ops, &r, NULL), 0);
	run_until_exit(loop, &r);
	assert_true(r.exited);
	assert_false(r.timed_out);
	assert_true(WIFEXITED(r.status));
	assert_int_equal(WEXITSTATUS(r.status), 3);
	assert_int_equal(r.n_lines, 3);
	assert_string_equal(r.lines[0], "first");
	assert_string_equal(r.lines[1], "second");
	assert_string_equal(r.lines[2], "last");
	assert_int_equal(count_fds(), fds); /* pipe and pidfd closed */
	loop_free(loop);
}

static void test_deadline_kills(void **state)
{
	struct loop *loop = loop_new();
	struct result r = { 0 };
	const char *argv[] = { "/bin/sh", "-c", "echo started; exec sleep 30", NULL };

	(void)state;
	assert_int_equal(child_spawn(loop, argv, 200, 64, &ops, &r, NULL), 0);
	run_until_exit(loop, &r);
	assert_true(r.exited);
	assert_true(r.timed_out);
	assert_true(WIFSIGNALED(r.status));
	assert_int_equal(WTERMSIG(r.status), SIGTERM);
	assert_int_equal(r.n_lines, 1);
	loop_free(loop);
}

static void test_overlong_line_is_cut(void **state)
{
	struct loop *loop = loop_new();
	struct result r = { 0 };
	const char *argv[] = { "/bin/sh", "-c",
		               "head -c 100000 /dev/zero | tr '\\0' x; echo; echo ok", NULL };

	(void)state;
	assert_int_equal(child_spawn(loop, argv, 5000, 16, &ops, &r, NULL), 0);
	run_until_exit(loop, &r);
	assert_true(r.exited);
	assert_int_equal(r.n_lines, 2);
	assert_int_equal(strlen(r.lines[0]), 16);
	assert_string_equal(r.lines[1], "ok");
	loop_free(loop);
}

/* The parent's blocked signals (the loop blocks SIGTERM for its signalfd) must not reach a
 * helper: it would outlive its agent, killable only by SIGKILL. */
static void test_signals_reset(void **state)
{
	struct loop *loop = loop_new();
	struct result r = { 0 };
	const char *argv[] = { "/bin/sh", "-c",
		               "grep -E '^Sig(Blk|Ign):' /proc/self/status | tr -d '\\t'", NULL };
	sigset_t block, old;

	(void)state;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	assert_int_equal(sigprocmask(SIG_BLOCK, &block, &old), 0);
	signal(SIGPIPE, SIG_IGN);
	assert_int_equal(child_spawn(loop, argv, 5000, 64, &ops, &r, NULL), 0);
	run_until_exit(loop, &r);
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	assert_true(r.exited);
	assert_int_equal(r.n_lines, 2);
	assert_string_equal(r.lines[0], "SigBlk:0000000000000000");
	/* bit n-1 is signal n: SIGPIPE stays ignored as in the parent (a helper writing to a socket
	 * the phone closed must get EPIPE, not die), SIGTERM is not ignored */
	assert_memory_equal(r.lines[1], "SigIgn:", 7);
	assert_int_not_equal(strtoull(r.lines[1] + 7, NULL, 16) & (1ULL << (SIGPIPE - 1)), 0);
	assert_int_equal(strtoull(r.lines[1] + 7, NULL, 16) & (1ULL << (SIGTERM - 1)), 0);
	loop_free(loop);
}

static void test_spawn_failure(void **state)
{
	struct loop *loop = loop_new();
	struct result r = { 0 };
	const char *argv[] = { "/nonexistent/helper", NULL };

	(void)state;
	assert_true(child_spawn(loop, argv, 1000, 64, &ops, &r, NULL) < 0);
	assert_false(r.exited);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_and_status),     cmocka_unit_test(test_deadline_kills),
		cmocka_unit_test(test_overlong_line_is_cut), cmocka_unit_test(test_signals_reset),
		cmocka_unit_test(test_spawn_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
