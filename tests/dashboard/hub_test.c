/* SPDX-License-Identifier: MIT */
/* Tests of the live-update hub (dashboard/hub.c): order, ring overrun, timeouts, shutdown, and
 * a publisher thread racing several readers (run under TSan too). */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hub.h"

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void test_order_and_keys(void **state)
{
	struct hub *h = hub_new(8);
	struct hub_notice out[8];
	uint64_t seq;
	char longkey[200];

	(void)state;
	assert_non_null(h);
	seq = hub_next_seq(h);
	assert_int_equal(seq, 1);
	hub_publish(h, HUB_DEVICE, "udid-1");
	hub_publish(h, HUB_AGENT, "st-1");
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	hub_publish(h, HUB_COMMAND, longkey);
	hub_publish(h, HUB_SUMMARY, NULL);

	/* max bounds one call; the rest comes with the next */
	assert_int_equal(hub_wait(h, &seq, out, 3, 0), 3);
	assert_int_equal(seq, 4);
	assert_int_equal(out[0].seq, 1);
	assert_int_equal(out[0].kind, HUB_DEVICE);
	assert_string_equal(out[0].key, "udid-1");
	assert_int_equal(out[1].kind, HUB_AGENT);
	assert_string_equal(out[1].key, "st-1");
	assert_int_equal(out[2].kind, HUB_COMMAND);
	assert_int_equal(strlen(out[2].key), HUB_KEY_MAX - 1);
	assert_int_equal(hub_wait(h, &seq, out, 8, 0), 1);
	assert_int_equal(out[0].kind, HUB_SUMMARY);
	assert_string_equal(out[0].key, "");
	assert_int_equal(out[0].seq, 4);
	assert_int_equal(hub_next_seq(h), 5);
	hub_free(h);
}

static void test_timeout(void **state)
{
	struct hub *h = hub_new(4);
	struct hub_notice out[4];
	uint64_t seq;
	int64_t t0;

	(void)state;
	seq = hub_next_seq(h);
	t0 = mono_ms();
	assert_int_equal(hub_wait(h, &seq, out, 4, 150), 0);
	assert_true(mono_ms() - t0 >= 140);
	assert_int_equal(seq, 1);
	/* a reader from the future (bad Last-Event-ID) is brought back to the present */
	seq = 1000;
	assert_int_equal(hub_wait(h, &seq, out, 4, 0), 0);
	assert_int_equal(seq, 1);
	hub_free(h);
}

static void test_overrun_asks_for_resync(void **state)
{
	struct hub *h = hub_new(4);
	struct hub_notice out[4];
	uint64_t seq;
	char key[16];

	(void)state;
	seq = hub_next_seq(h);
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof(key), "d%d", i);
		hub_publish(h, HUB_DEVICE, key);
	}
	/* seq 1..6 were overwritten: the reader is told, then continues from the oldest kept */
	assert_int_equal(hub_wait(h, &seq, out, 4, 0), -ERANGE);
	assert_int_equal(seq, 7);
	assert_int_equal(hub_wait(h, &seq, out, 4, 0), 4);
	assert_string_equal(out[0].key, "d6");
	assert_string_equal(out[3].key, "d9");
	assert_int_equal(seq, 11);
	hub_free(h);
}

struct waiter {
	struct hub *h;
	int r;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;
	struct hub_notice out[4];
	uint64_t seq = hub_next_seq(w->h);

	w->r = hub_wait(w->h, &seq, out, 4, 10000);
	return NULL;
}

static void test_shutdown_wakes_waiters(void **state)
{
	struct hub *h = hub_new(4);
	struct waiter w[3];
	pthread_t t[3];
	int64_t t0 = mono_ms();

	(void)state;
	for (int i = 0; i < 3; i++) {
		w[i].h = h;
		w[i].r = 0;
		assert_int_equal(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
	}
	struct timespec nap = { 0, 50 * 1000000L };
	nanosleep(&nap, NULL);
	hub_shutdown(h);
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].r, -ESHUTDOWN);
	}
	/* woken at once, not at the 10 s timeout */
	assert_true(mono_ms() - t0 < 5000);
	hub_free(h);
}

#define RACE_N 20000

struct reader {
	struct hub *h;
	uint64_t seq;
	uint64_t seen;   /* notices received */
	uint64_t resync; /* -ERANGE answers */
	int bad_order;
};

static void *read_thread(void *arg)
{
	struct reader *rd = arg;
	struct hub_notice out[16];
	uint64_t last = 0;

	for (;;) {
		int r = hub_wait(rd->h, &rd->seq, out, 16, 1000);

		if (r == -ESHUTDOWN)
			break;
		if (r == -ERANGE) {
			rd->resync++;
			last = rd->seq - 1;
			continue;
		}
		for (int i = 0; i < r; i++) {
			if (out[i].seq != last + 1)
				rd->bad_order++;
			last = out[i].seq;
			rd->seen++;
		}
		if (last == RACE_N)
			break;
	}
	return NULL;
}

static void test_publisher_races_readers(void **state)
{
	struct hub *h = hub_new(64);
	struct reader rd[4];
	pthread_t t[4];
	char key[16];

	(void)state;
	for (int i = 0; i < 4; i++) {
		memset(&rd[i], 0, sizeof(rd[i]));
		rd[i].h = h;
		rd[i].seq = hub_next_seq(h);
		assert_int_equal(pthread_create(&t[i], NULL, read_thread, &rd[i]), 0);
	}
	for (int i = 1; i <= RACE_N; i++) {
		snprintf(key, sizeof(key), "u%d", i);
		hub_publish(h, HUB_DEVICE, key);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		/* every notice arrived in order, or a resync said which were skipped */
		assert_int_equal(rd[i].bad_order, 0);
		assert_true(rd[i].seen > 0);
		assert_true(rd[i].seen == RACE_N || rd[i].resync > 0);
		assert_int_equal(rd[i].seq, RACE_N + 1);
	}
	hub_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_and_keys),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_overrun_asks_for_resync),
		cmocka_unit_test(test_shutdown_wakes_waiters),
		cmocka_unit_test(test_publisher_races_readers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
