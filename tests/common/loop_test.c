/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

struct ctx {
	int fired[4];
	int posts;
	int reads;
	int pipefd[2];
};

static void on_timer(struct loop *loop, uint64_t id, void *data)
{
	struct ctx *c = data;

	(void)id;
	c->fired[0]++;
	if (c->fired[0] == 3)
		loop_stop(loop);
}

static void on_never(struct loop *loop, uint64_t id, void *data)
{
	struct ctx *c = data;

	(void)loop;
	(void)id;
	c->fired[1]++;
}

static void test_timers(void **state)
{
	struct loop *loop = loop_new();
	struct ctx c = { 0 };
	uint64_t never;

	(void)state;
	assert_non_null(loop);
	loop_add_timer(loop, 1, on_timer, &c);
	never = loop_add_timer(loop, 5, on_never, &c);
	loop_add_timer(loop, 2, on_timer, &c);
	loop_add_timer(loop, 20, on_timer, &c);
	loop_cancel_timer(loop, never);
	assert_int_equal(loop_run(loop), 0);
	assert_int_equal(c.fired[0], 3);
	assert_int_equal(c.fired[1], 0);
	loop_free(loop);
}

static void on_post(struct loop *loop, void *data)
{
	struct ctx *c = data;

	if (++c->posts == 100)
		loop_stop(loop);
}

struct poster {
	struct loop *loop;
	struct ctx *c;
};

static void *post_thread(void *arg)
{
	struct poster *p = arg;
	int i;

	for (i = 0; i < 100; i++)
		loop_post(p->loop, on_post, p->c);
	return NULL;
}

static void test_post_from_thread(void **state)
{
	struct loop *loop = loop_new();
	struct ctx c = { 0 };
	struct poster p = { loop, &c };
	pthread_t th;

	(void)state;
	assert_int_equal(pthread_create(&th, NULL, post_thread, &p), 0);
	assert_int_equal(loop_run(loop), 0);
	pthread_join(th, NULL);
	assert_int_equal(c.posts, 100);
	loop_free(loop);
}

static void on_read(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct ctx *c = data;
	char b;

	(void)events;
	if (read(fd, &b, 1) == 1)
		c->reads++;
	/* removing itself from inside its own callback must be safe */
	loop_del_fd(loop, fd);
	loop_stop(loop);
}

static void test_fd_self_removal(void **state)
{
	struct loop *loop = loop_new();
	struct ctx c = { 0 };

	(void)state;
	assert_int_equal(pipe(c.pipefd), 0);
	assert_int_equal(loop_add_fd(loop, c.pipefd[0], EPOLLIN, on_read, &c), 0);
	assert_int_equal(loop_add_fd(loop, c.pipefd[0], EPOLLIN, on_read, &c), -17);
	assert_int_equal(write(c.pipefd[1], "x", 1), 1);
	assert_int_equal(loop_run(loop), 0);
	assert_int_equal(c.reads, 1);
	close(c.pipefd[0]);
	close(c.pipefd[1]);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timers),
		cmocka_unit_test(test_post_from_thread),
		cmocka_unit_test(test_fd_self_removal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
