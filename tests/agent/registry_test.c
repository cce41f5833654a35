/* SPDX-License-Identifier: MIT */
/*
 * registry: republishing every known state after a connect (issue 8 item 3) is paced, a batch
 * of 20 per 100 ms tick, covers every device that has a state exactly once per pass, skips the
 * ones that never had one, and under a connection that flaps faster than a pass serves the
 * devices still waiting before it repeats the others (round robin).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "loop.h"
#include "registry.h"

#define DEVICES 50
#define BATCH   20
#define TICK_MS 100

struct ctx {
	struct loop *loop;
	int probed;
	int n;                    /* forced publishes recorded */
	int idx[4 * DEVICES];     /* device number of each */
	uint64_t at[4 * DEVICES]; /* loop time of each */
};

static int number_of(const char *udid)
{
	int n = -1;

	assert_int_equal(sscanf(udid, "00008110-%016X", (unsigned *)&n), 1);
	return n;
}

static void on_presence(void *data, struct registry_device *dev)
{
	(void)data;
	(void)dev;
}

static void on_probed(void *data, const char *udid, const struct device_facts *facts)
{
	struct ctx *c = data;

	(void)udid;
	(void)facts;
	c->probed++;
}

/* as the daemon's publish_state(): the device has a state from now on */
static void on_state(void *data, struct registry_device *dev, bool force)
{
	struct ctx *c = data;

	/* device 0 never gets a state: republishing must skip it */
	if (number_of(dev->udid) != 0)
		dev->pub.have_state = true;
	if (!force)
		return;
	assert_true(c->n < 4 * DEVICES);
	c->idx[c->n] = number_of(dev->udid);
	c->at[c->n] = loop_now_ms();
	c->n++;
}

static const struct registry_ops ops = {
	.presence = on_presence,
	.probed = on_probed,
	.state = on_state,
};

static void stop(struct loop *loop, uint64_t id, void *data)
{
	(void)id;
	(void)data;
	loop_stop(loop);
}

static void run_for(struct loop *loop, uint64_t ms)
{
	loop_add_timer(loop, ms, stop, NULL);
	loop_run(loop);
}

static void test_republish_paced(void **state)
{
	struct probe_config po = { .helper = "/bin/true", .concurrency = 8, .timeout_ms = 5000 };
	struct ctx c = { 0 };
	struct registry *reg;
	bool seen[DEVICES + 1] = { false };
	char udid[32];
	int i, first, waiting;

	(void)state;
	c.loop = loop_new();
	assert_non_null(c.loop);
	reg = registry_new(c.loop, &po, 3600, &ops, &c);
	assert_non_null(reg);
	for (i = 0; i <= DEVICES; i++) {
		snprintf(udid, sizeof(udid), "00008110-%016X", i);
		registry_on_device(DEVMON_ATTACHED, udid, reg);
	}
	for (i = 0; i < 100 && c.probed < DEVICES + 1; i++)
		run_for(c.loop, 50);
	assert_int_equal(c.probed, DEVICES + 1);
	assert_int_equal(c.n, 0);

	/* one pass: every device with a state once, 20 per tick */
	registry_republish(reg);
	run_for(c.loop, 3 * TICK_MS + TICK_MS / 2);
	assert_int_equal(c.n, DEVICES);
	for (i = 0; i < c.n; i++) {
		assert_true(c.idx[i] >= 1 && c.idx[i] <= DEVICES);
		assert_false(seen[c.idx[i]]);
		seen[c.idx[i]] = true;
		/* the i-th publish belongs to tick i / BATCH */
		assert_true(c.at[i] - c.at[0] >= (uint64_t)(i / BATCH) * TICK_MS);
		if (i % BATCH)
			assert_true(c.at[i] - c.at[i - 1] < TICK_MS / 2);
	}

	/* flapping: a new connect after the first tick of a pass */
	c.n = 0;
	registry_republish(reg);
	run_for(c.loop, TICK_MS / 2);
	assert_int_equal(c.n, BATCH);
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < c.n; i++)
		seen[c.idx[i]] = true;
	first = c.n;
	registry_republish(reg); /* every device marked again */
	run_for(c.loop, 4 * TICK_MS);
	/* the 30 still waiting come first, then the 20 served before the reconnect */
	waiting = DEVICES - BATCH;
	assert_int_equal(c.n, first + DEVICES);
	for (i = first; i < first + waiting; i++)
		assert_false(seen[c.idx[i]]);
	for (; i < c.n; i++)
		assert_true(seen[c.idx[i]]);

	registry_stop(reg, 1000);
	registry_free(reg);
	loop_free(c.loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_republish_paced),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
