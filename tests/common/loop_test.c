/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"
#include "macro.h"

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

/* ---- mailboxes ---- */

#define THREADS    4
#define PER_THREAD 2000

struct msg {
	int thread;
	int seq;
};

struct box {
	struct loop *loop;
	struct loop_mailbox *mb;
	int delivered;
	int dropped; /* drop() calls */
	uint64_t overflowed;
	int overflow_reports;
	int last_seq[THREADS];
	int order[64]; /* seq of each delivery (thread 0 tests), -1 = overflow report */
	int n_order;
	int free_at; /* free the mailbox from inside the delivery of this seq (0 = never) */
	bool out_of_order;
};

static void box_deliver(struct loop *loop, void *data, void *ctx)
{
	struct msg *m = data;
	struct box *b = ctx;

	(void)loop;
	if (m->seq <= b->last_seq[m->thread])
		b->out_of_order = true;
	b->last_seq[m->thread] = m->seq;
	b->delivered++;
	if (b->n_order < (int)ARRAY_SIZE(b->order))
		b->order[b->n_order++] = m->seq;
	if (b->free_at && m->seq == b->free_at)
		b->mb = loop_mailbox_free(b->mb);
	free(m);
}

static void box_drop(void *data, void *ctx)
{
	struct box *b = ctx;

	__atomic_fetch_add(&b->dropped, 1, __ATOMIC_RELAXED);
	free(data);
}

static void box_overflow(struct loop *loop, uint64_t n, void *ctx)
{
	struct box *b = ctx;

	(void)loop;
	b->overflowed += n;
	b->overflow_reports++;
	if (b->n_order < (int)ARRAY_SIZE(b->order))
		b->order[b->n_order++] = -1;
}

static const struct loop_mailbox_ops box_ops = { box_deliver, box_drop, box_overflow };

static int box_post(struct box *b, int thread, int seq)
{
	struct msg *m = malloc(sizeof(*m));

	if (m)
		*m = (struct msg){ thread, seq };
	return loop_mailbox_post(b->mb, m);
}

static void box_init(struct box *b, struct loop *loop, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->loop = loop;
	b->mb = loop_mailbox_new(loop, max, &box_ops, b);
	assert_non_null(b->mb);
}

static void stop_now(struct loop *loop, void *data)
{
	(void)data;
	loop_stop(loop);
}

struct producer {
	struct box *b;
	int thread;
	int refused;
	int *running;
};

static void *producer_thread(void *arg)
{
	struct producer *p = arg;

	for (int i = 1; i <= PER_THREAD; i++)
		if (box_post(p->b, p->thread, i) < 0)
			p->refused++;
	/* the last one out posts the stop: FIFO, so it comes after everything accepted */
	if (__atomic_sub_fetch(p->running, 1, __ATOMIC_ACQ_REL) == 0)
		assert_int_equal(loop_post(p->b->loop, stop_now, NULL), 0);
	return NULL;
}

static void run_producers(size_t max, struct box *b, int *ret_refused)
{
	struct loop *loop = loop_new();
	struct producer p[THREADS];
	pthread_t th[THREADS];
	int running = THREADS;

	assert_non_null(loop);
	box_init(b, loop, max);
	for (int i = 0; i < THREADS; i++) {
		p[i] = (struct producer){ b, i, 0, &running };
		assert_int_equal(pthread_create(&th[i], NULL, producer_thread, &p[i]), 0);
	}
	assert_int_equal(loop_run(loop), 0);
	*ret_refused = 0;
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		*ret_refused += p[i].refused;
	}
	b->mb = loop_mailbox_free(b->mb);
	loop_free(loop);
}

/* Threads posting at once: every message delivered once, each thread's in its order. */
static void test_mailbox_threads_order(void **state)
{
	struct box b;
	int refused;

	(void)state;
	run_producers(THREADS * PER_THREAD, &b, &refused);
	assert_int_equal(refused, 0);
	assert_int_equal(b.delivered, THREADS * PER_THREAD);
	assert_false(b.out_of_order);
	assert_int_equal(b.dropped, 0);
	assert_int_equal(b.overflow_reports, 0);
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(b.last_seq[i], PER_THREAD);
}

/* A small mailbox under the same load: every message is delivered or counted, none lost. */
static void test_mailbox_threads_overflow(void **state)
{
	struct box b;
	int refused;

	(void)state;
	run_producers(16, &b, &refused);
	print_message("%d of %d refused, %d overflow reports\n", refused, THREADS * PER_THREAD,
	              b.overflow_reports);
	assert_false(b.out_of_order);
	assert_int_equal(b.delivered + refused, THREADS * PER_THREAD);
	assert_int_equal(b.dropped, refused);
	assert_int_equal(b.overflowed, (uint64_t)refused);
	/* one report per burst of refusals, not one per message */
	assert_true(b.overflow_reports <= refused);
	if (refused)
		assert_true(b.overflow_reports >= 1);
}

/* The overflow report comes in its place: after what was accepted before the refusal. */
static void test_mailbox_overflow_in_order(void **state)
{
	struct loop *loop = loop_new();
	struct loop_mailbox_stats st;
	struct box b;

	(void)state;
	box_init(&b, loop, 4);
	for (int i = 1; i <= 4; i++)
		assert_int_equal(box_post(&b, 0, i), 0);
	assert_int_equal(box_post(&b, 0, 5), -ENOBUFS);
	assert_int_equal(box_post(&b, 0, 6), -ENOBUFS);
	assert_int_equal(loop_mailbox_post(b.mb, NULL), -ENOMEM); /* could not build one */
	assert_int_equal(b.dropped, 2);
	loop_mailbox_get_stats(b.mb, &st);
	assert_int_equal(st.queued, 4);
	assert_int_equal(st.posted, 4);
	assert_int_equal(st.dropped, 3);
	/* flush delivers what waits (no loop_run needed): 1..4, then the report */
	loop_mailbox_flush(b.mb);
	assert_int_equal(b.n_order, 5);
	assert_int_equal(b.order[3], 4);
	assert_int_equal(b.order[4], -1);
	assert_int_equal(b.overflowed, 3);
	/* room again: accepted, and delivered by the running loop */
	assert_int_equal(box_post(&b, 0, 7), 0);
	assert_int_equal(loop_post(loop, stop_now, NULL), 0);
	assert_int_equal(loop_run(loop), 0);
	assert_int_equal(b.order[5], 7);
	assert_int_equal(b.delivered, 5);
	loop_mailbox_free(b.mb);
	loop_free(loop);
}

/* Freeing a mailbox drops what waits in it (no callback into a freed owner, no leak). */
static void test_mailbox_free_drops(void **state)
{
	struct loop *loop = loop_new();
	struct box a, b, c;

	(void)state;
	box_init(&a, loop, 8);
	box_init(&b, loop, 8);
	box_init(&c, loop, 8);
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(box_post(&a, 0, i), 0);
		assert_int_equal(box_post(&b, 0, i), 0);
		assert_int_equal(box_post(&c, 0, i), 0);
	}
	a.mb = loop_mailbox_free(a.mb);
	assert_int_equal(a.dropped, 3);
	/* freed from inside its own delivery: the rest is dropped, not delivered */
	b.free_at = 2;
	assert_int_equal(loop_post(loop, stop_now, NULL), 0);
	assert_int_equal(loop_run(loop), 0);
	assert_int_equal(a.delivered, 0);
	assert_int_equal(b.delivered, 2);
	assert_int_equal(b.dropped, 1);
	assert_null(b.mb);
	assert_int_equal(c.delivered, 3);
	/* left open at loop_free(): its messages are dropped there */
	assert_int_equal(box_post(&c, 0, 4), 0);
	assert_int_equal(box_post(&c, 0, 5), 0);
	loop_free(loop);
	assert_int_equal(c.dropped, 2);
}

/* The same from inside loop_mailbox_flush(): the flush stops there, the rest is dropped. */
static void test_mailbox_free_in_flush(void **state)
{
	struct loop *loop = loop_new();
	struct box b;

	(void)state;
	box_init(&b, loop, 8);
	for (int i = 1; i <= 4; i++)
		assert_int_equal(box_post(&b, 0, i), 0);
	b.free_at = 2;
	loop_mailbox_flush(b.mb);
	assert_null(b.mb);
	assert_int_equal(b.delivered, 2);
	assert_int_equal(b.dropped, 2);
	loop_free(loop);
}

static void stop_timer(struct loop *loop, uint64_t id, void *data)
{
	(void)id;
	(void)data;
	loop_stop(loop);
}

static void count_post(struct loop *loop, void *data)
{
	(void)loop;
	(*(int *)data)++;
}

/* loop_post() is bounded too, and its refusal leaves data to the caller. */
static void test_post_bounded(void **state)
{
	struct loop *loop = loop_new();
	struct loop_mailbox_stats st;
	int n = 0, i;

	(void)state;
	for (i = 0; i < LOOP_POST_MAX; i++)
		assert_int_equal(loop_post(loop, count_post, &n), 0);
	assert_int_equal(loop_post(loop, count_post, &n), -ENOBUFS);
	assert_int_equal(loop_post(loop, stop_now, NULL), -ENOBUFS);
	loop_post_get_stats(loop, &st);
	assert_int_equal(st.queued, LOOP_POST_MAX);
	assert_int_equal(st.posted, LOOP_POST_MAX);
	assert_int_equal(st.dropped, 2);
	/* all delivered, in batches that let the fds and timers in between */
	assert_true(loop_add_timer(loop, 50, stop_timer, NULL) > 0);
	assert_int_equal(loop_run(loop), 0);
	assert_int_equal(n, LOOP_POST_MAX);
	loop_post_get_stats(loop, &st);
	assert_int_equal(st.queued, 0);
	loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timers),
		cmocka_unit_test(test_post_from_thread),
		cmocka_unit_test(test_fd_self_removal),
		cmocka_unit_test(test_mailbox_threads_order),
		cmocka_unit_test(test_mailbox_threads_overflow),
		cmocka_unit_test(test_mailbox_overflow_in_order),
		cmocka_unit_test(test_mailbox_free_drops),
		cmocka_unit_test(test_mailbox_free_in_flush),
		cmocka_unit_test(test_post_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
