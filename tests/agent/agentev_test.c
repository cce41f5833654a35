/* SPDX-License-Identifier: MIT */
/*
 * agentev: the decisions behind agent-level events, with the real loop, real timers and a real
 * outbox in a temporary directory. The emit callback does what the daemon does (encode, put
 * into the outbox, check the outbox again), so reentrancy is exercised too; the end-to-end path
 * through the broker is tests/agent/agent_events_test.py.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agentev.h"
#include "loop.h"
#include "outbox.h"

#define MAX_EV 64

struct ctx {
	struct loop *loop;
	struct agentev *ae;
	struct outbox *ob; /* NULL: the emit callback only records */
	struct proto_agent_event ev[MAX_EV];
	char key[MAX_EV][32];
	int n;
};

static char dir[256];

static void on_emit(void *data, struct proto_agent_event *ev, const char *key)
{
	struct ctx *c = data;
	char *json;

	assert_true(c->n < MAX_EV);
	c->ev[c->n] = *ev;
	snprintf(c->key[c->n], sizeof(c->key[0]), "%s", key ? key : "");
	c->n++;
	if (!c->ob)
		return;
	/* as the daemon: number, encode, store, look at the outbox again */
	snprintf(ev->h.agent, sizeof(ev->h.agent), "st-test");
	ev->h.seq = c->n;
	json = proto_agent_event_encode(ev);
	assert_non_null(json);
	outbox_put(c->ob, "cradle/v1/agent/st-test/event", json, strlen(json), false, 1, key, NULL);
	free(json);
	agentev_outbox_check(c->ae);
}

static void stop(struct loop *loop, uint64_t id, void *data)
{
	(void)id;
	(void)data;
	loop_stop(loop);
}

static void run_for(struct ctx *c, uint64_t ms)
{
	loop_add_timer(c->loop, ms, stop, NULL);
	loop_run(c->loop);
}

static int count_of(const struct ctx *c, enum proto_agent_event_kind k, const char *reason)
{
	int i, n = 0;

	for (i = 0; i < c->n; i++)
		if (c->ev[i].event == k &&
		    (!reason || strcmp(c->ev[i].security.reason, reason) == 0))
			n++;
	return n;
}

static void test_security_windows(void **state)
{
	struct agentev_config cfg = { .security_interval_ms = 300 };
	struct ctx c = { 0 };
	int i;

	(void)state;
	c.loop = loop_new();
	c.ae = agentev_new(c.loop, &cfg, on_emit, &c);
	assert_non_null(c.ae);

	/* the first refusal is news: published at once, count 1, with its explanation */
	agentev_command_rejected(c.ae, "wrong_agent", "command for agent 'x'");
	assert_int_equal(c.n, 1);
	assert_int_equal(c.ev[0].event, PROTO_AGENT_EVENT_SECURITY_REJECTED);
	assert_string_equal(c.ev[0].security.reason, "wrong_agent");
	assert_int_equal(c.ev[0].security.count, 1);
	assert_int_equal(c.ev[0].security.interval_s, 0); /* 300 ms rounds down */
	assert_string_equal(c.ev[0].security.detail, "command for agent 'x'");
	assert_string_equal(c.key[0], "");
	/* a flood within the window: counted, not published */
	for (i = 0; i < 1000; i++)
		agentev_command_rejected(c.ae, "wrong_agent", i == 999 ? "last\x01" : "x");
	agentev_command_rejected(c.ae, "oversize", NULL);
	agentev_command_rejected(c.ae, "internal", "disk full"); /* not a security matter */
	agentev_command_rejected(c.ae, "Not A Code/+", NULL);
	assert_int_equal(c.n, 3); /* wrong_agent, oversize and unknown, each at once */
	assert_int_equal(count_of(&c, PROTO_AGENT_EVENT_SECURITY_REJECTED, "unknown"), 1);
	assert_int_equal(count_of(&c, PROTO_AGENT_EVENT_SECURITY_REJECTED, "internal"), 0);

	/* the window ends: one event with the 1000, its explanation sanitized */
	run_for(&c, 450);
	assert_int_equal(c.n, 4);
	assert_string_equal(c.ev[3].security.reason, "wrong_agent");
	assert_int_equal(c.ev[3].security.count, 1000);
	assert_string_equal(c.ev[3].security.detail, "last?");
	assert_true(c.ev[3].security.first_at <= c.ev[3].security.last_at);

	/* a quiet window closes it: the next refusal is published at once again */
	run_for(&c, 700);
	assert_int_equal(c.n, 4);
	agentev_command_rejected(c.ae, "wrong_agent", NULL);
	assert_int_equal(c.n, 5);
	assert_int_equal(c.ev[4].security.count, 1);

	/* counts still pending at shutdown are published by agentev_flush() */
	agentev_command_rejected(c.ae, "wrong_agent", NULL);
	agentev_command_rejected(c.ae, "wrong_agent", NULL);
	assert_int_equal(c.n, 5);
	agentev_flush(c.ae);
	assert_int_equal(c.n, 6);
	assert_int_equal(c.ev[5].security.count, 2);
	run_for(&c, 400);
	assert_int_equal(c.n, 6); /* nothing left to report */
	agentev_free(c.ae);
	loop_free(c.loop);
}

static void test_usbmuxd(void **state)
{
	struct agentev_config cfg = { 0 };
	struct ctx c = { 0 };

	(void)state;
	c.loop = loop_new();
	c.ae = agentev_new(c.loop, &cfg, on_emit, &c);
	assert_non_null(c.ae);
	/* away at start (no phone plugged): nothing was lost */
	agentev_usbmuxd(c.ae, false, 0);
	agentev_usbmuxd(c.ae, true, 3);
	assert_int_equal(c.n, 0);
	agentev_usbmuxd(c.ae, true, 5);
	/* lost: the phones of the last listing that worked, not the 0 of the failed one */
	agentev_usbmuxd(c.ae, false, 0);
	agentev_usbmuxd(c.ae, false, 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.ev[0].event, PROTO_AGENT_EVENT_USBMUXD_LOST);
	assert_int_equal(c.ev[0].usbmuxd.devices, 5);
	agentev_usbmuxd(c.ae, true, 2);
	agentev_usbmuxd(c.ae, true, 2);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.ev[1].event, PROTO_AGENT_EVENT_USBMUXD_BACK);
	assert_int_equal(c.ev[1].usbmuxd.devices, 2);
	assert_true(c.ev[1].usbmuxd.down_s >= 0 && c.ev[1].usbmuxd.down_s < 5);
	agentev_free(c.ae);
	loop_free(c.loop);
}

static void test_disk(void **state)
{
	struct agentev_config cfg = { .disk_path = dir, .disk_check_ms = 50 };
	struct ctx c = { 0 };

	(void)state;
	c.loop = loop_new();
	/* a floor above any real free space: disk_low at the first check, once */
	cfg.disk_low_free = 1ULL << 60;
	c.ae = agentev_new(c.loop, &cfg, on_emit, &c);
	run_for(&c, 300);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.ev[0].event, PROTO_AGENT_EVENT_DISK_LOW);
	assert_string_equal(c.ev[0].disk.path, dir);
	assert_true(c.ev[0].disk.free_bytes < c.ev[0].disk.floor_bytes);
	assert_true(c.ev[0].disk.total_bytes >= c.ev[0].disk.free_bytes);
	agentev_free(c.ae);

	/* a floor of one byte: never low; a path that does not exist: no event, no crash */
	c.n = 0;
	cfg.disk_low_free = 1;
	c.ae = agentev_new(c.loop, &cfg, on_emit, &c);
	run_for(&c, 150);
	agentev_free(c.ae);
	cfg.disk_path = "/nonexistent/cradle";
	cfg.disk_low_free = 1ULL << 60;
	c.ae = agentev_new(c.loop, &cfg, on_emit, &c);
	run_for(&c, 150);
	agentev_free(c.ae);
	assert_int_equal(c.n, 0);
	/* 0 turns the check off */
	cfg.disk_path = dir;
	cfg.disk_low_free = 0;
	c.ae = agentev_new(c.loop, &cfg, on_emit, &c);
	run_for(&c, 150);
	assert_int_equal(c.n, 0);
	agentev_free(c.ae);
	loop_free(c.loop);
}

/* A failed outbox write is disk_low at once, whatever the floor; disk_ok once writes work. */
static void test_disk_write_failed(void **state)
{
	struct agentev_config cfg = { .disk_path = dir, .disk_check_ms = 50 };
	struct outbox_damage dmg = { 0 };
	struct ctx c = { 0 };

	(void)state;
	c.loop = loop_new();
	c.ae = agentev_new(c.loop, &cfg, on_emit, &c); /* no floor: no periodic check */
	agentev_write_failed(c.ae, true, 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.ev[0].event, PROTO_AGENT_EVENT_DISK_LOW);
	assert_int_equal(c.ev[0].disk.write_failures, 1);
	assert_int_equal(c.ev[0].disk.best_effort, 1);
	agentev_write_failed(c.ae, false, 3);
	run_for(&c, 200); /* still failing: low stays, however much is free */
	assert_int_equal(c.n, 1);
	agentev_write_ok(c.ae);
	assert_int_equal(c.n, 2);
	assert_int_equal(c.ev[1].event, PROTO_AGENT_EVENT_DISK_OK);
	assert_int_equal(c.ev[1].disk.write_failures, 2);
	assert_int_equal(c.ev[1].disk.best_effort, 1);
	run_for(&c, 200);
	assert_int_equal(c.n, 2);

	/* outbox damage found at open: one event under its own key; none without damage */
	agentev_outbox_damaged(c.ae, &dmg);
	assert_int_equal(c.n, 2);
	dmg = (struct outbox_damage){ .damaged = true,
		                      .lost_records = 1,
		                      .first_seq = 13,
		                      .last_seq = 13,
		                      .bytes_skipped = 67 };
	agentev_outbox_damaged(c.ae, &dmg);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.ev[2].event, PROTO_AGENT_EVENT_OUTBOX_DAMAGED);
	assert_int_equal(c.ev[2].damage.lost_records, 1);
	assert_int_equal(c.ev[2].damage.first_seq, 13);
	assert_string_equal(c.key[2], AGENTEV_DAMAGE_KEY);
	agentev_free(c.ae);
	loop_free(c.loop);
}

static void test_outbox_pressure(void **state)
{
	struct outbox_limits lim = { .max_bytes = 1 << 20, .max_records = 16 };
	struct agentev_config cfg = { .outbox_max_records = 16, .outbox_max_bytes = 1 << 20 };
	struct outbox_record *rec;
	struct ctx c = { 0 };
	char ev[64];
	int i;

	(void)state;
	c.loop = loop_new();
	assert_int_equal(outbox_open(dir, &lim, &c.ob), 0);
	cfg.outbox = c.ob;
	c.ae = agentev_new(c.loop, &cfg, on_emit, &c);
	assert_non_null(c.ae);
	/* 40 device events with the broker away: the outbox drops the oldest */
	for (i = 0; i < 40; i++) {
		snprintf(ev, sizeof(ev), "{\"n\":%d}", i);
		outbox_put(c.ob, "cradle/v1/agent/st-test/device/U1/event", ev, strlen(ev), false,
		           1, NULL, NULL);
		agentev_outbox_check(c.ae);
	}
	assert_int_equal(count_of(&c, PROTO_AGENT_EVENT_OUTBOX_PRESSURE, NULL), 1);
	assert_string_equal(c.key[0], AGENTEV_OUTBOX_KEY);
	assert_int_equal(c.ev[0].outbox.dropped, 1);
	assert_int_equal(c.ev[0].outbox.max_records, 16);
	assert_int_equal(c.ev[0].outbox.records, 16);
	/* the broker is back: acks drain it; the recheck timer notices without any put */
	while (outbox_next(c.ob, 0, &rec) == 0) {
		outbox_ack(c.ob, rec->seq);
		outbox_record_free(rec);
	}
	run_for(&c, 1500);
	assert_int_equal(count_of(&c, PROTO_AGENT_EVENT_OUTBOX_OK, NULL), 1);
	assert_int_equal(c.n, 2);
	assert_string_equal(c.key[1], AGENTEV_OUTBOX_KEY);
	/* the whole episode: 40 events and a pressure event into 16 records */
	assert_true(c.ev[1].outbox.dropped >= 24);
	assert_true(c.ev[1].outbox.records <= 1);
	/* calm again: more puts that fit do not start a new episode */
	for (i = 0; i < 5; i++) {
		outbox_put(c.ob, "cradle/v1/agent/st-test/device/U1/event", "{}", 2, false, 1, NULL,
		           NULL);
		agentev_outbox_check(c.ae);
	}
	assert_int_equal(c.n, 2);
	agentev_free(c.ae);
	outbox_close(c.ob);
	loop_free(c.loop);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/cradle-agentev-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_security_windows),
		cmocka_unit_test(test_usbmuxd),
		cmocka_unit_test_setup_teardown(test_disk, setup, teardown),
		cmocka_unit_test_setup_teardown(test_disk_write_failed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outbox_pressure, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
