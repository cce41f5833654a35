/* SPDX-License-Identifier: MIT */
/*
 * sim-model: the device model's contract (sim/sim.h) without sockets: what subscribers hear
 * and in which order, DeviceIDs, the port provider's hooks (gone before Detached, pair records
 * of pre-paired phones, per-device state freed with the device), pair records under either
 * UDID form, restarts on the loop, the journal cap, notices to the device half (live syslog
 * lines, value changes), the simulated clock (time_scale) and formatted syslog lines.
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
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "loop.h"
#include "sim.h"

#define UDID1_RAW "00008110001C0FFEE0000001"
#define UDID1     "00008110-001C0FFEE0000001"
#define UDID2     "00008110-001C0FFEE0000002"

/* Everything the model told the fake halves, in order: "attached UDID 3", "gone UDID"... */
static char tag_first[] = "", tag_second[] = "second ", tag_more[] = "more ";
static char calls[64][96];
static int n_calls;
static int port_state_frees;

static void record(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void record(const char *fmt, ...)
{
	va_list ap;

	assert_true(n_calls < 64);
	va_start(ap, fmt);
	vsnprintf(calls[n_calls++], sizeof(calls[0]), fmt, ap);
	va_end(ap);
}

static void on_event(struct sim *sim, struct sim_device *dev, enum sim_event ev, void *data)
{
	static const char *const names[] = { "attached", "detached", "paired", "changed" };

	(void)sim;
	record("%s%s %s %u", (char *)data, names[ev], dev->udid, dev->device_id);
}

static bool fake_is_open(struct sim *sim, struct sim_device *dev, uint16_t port)
{
	(void)sim;
	return dev->attached && port == SIM_LOCKDOWN_PORT;
}

static int fake_connect(struct sim *sim, struct sim_device *dev, uint16_t port, int fd,
                        const uint8_t *leftover, size_t leftover_len)
{
	(void)sim;
	(void)leftover;
	record("connect %s %u %zu", dev->udid, port, leftover_len);
	close(fd);
	return 0;
}

static void fake_gone(struct sim *sim, struct sim_device *dev)
{
	(void)sim;
	record("gone %s", dev->udid);
}

static plist_t fake_make_pair_record(struct sim *sim, struct sim_device *dev)
{
	plist_t rec = plist_new_dict();

	record("make_pair_record %s", dev->udid);
	plist_dict_set_item(rec, "SystemBUID", plist_new_string(sim->buid));
	return rec;
}

/* Every connection "takes" a notice: reports 2 (two open connections). */
static int fake_notice(struct sim *sim, struct sim_device *dev, const struct sim_notice *n)
{
	(void)sim;
	if (n->kind == SIM_NOTICE_SYSLOG)
		record("syslog %s %.*s", dev->udid, (int)n->len, n->line);
	else
		record("value %s %s %s", dev->udid, n->domain, n->key);
	return 2;
}

static const struct sim_ports fake_ports = {
	.is_open = fake_is_open,
	.connect = fake_connect,
	.gone = fake_gone,
	.make_pair_record = fake_make_pair_record,
	.notice = fake_notice,
};

static void fake_port_state_free(struct sim_device *dev)
{
	free(dev->port_state);
	dev->port_state = NULL;
	port_state_frees++;
}

/* A model with two detached devices, the fake port provider and one subscriber "". */
static int setup(void **state)
{
	struct sim *sim = calloc(1, sizeof(*sim));

	if (!sim)
		return -1;
	sim->loop = loop_new();
	snprintf(sim->buid, sizeof(sim->buid), "TEST-BUID");
	sim->devices = calloc(2, sizeof(*sim->devices));
	sim->devices[0] = sim_device_new(UDID1);
	sim->devices[1] = sim_device_new(UDID2);
	sim->n_devices = 2;
	sim->ports = &fake_ports;
	if (!sim->loop || !sim->devices[0] || !sim->devices[1] ||
	    sim_subscribe(sim, on_event, tag_first) < 0)
		return -1;
	n_calls = 0;
	port_state_frees = 0;
	*state = sim;
	return 0;
}

static int teardown(void **state)
{
	struct sim *sim = *state;
	struct loop *loop = sim->loop;

	sim_done(sim);
	loop_free(loop);
	free(sim);
	return 0;
}

static void test_attach_detach(void **state)
{
	struct sim *sim = *state;
	struct sim_device *d1 = sim->devices[0], *d2 = sim->devices[1];

	sim_device_attach(sim, d1);
	sim_device_attach(sim, d2);
	sim_device_attach(sim, d1); /* already attached: nothing */
	assert_int_equal(d1->device_id, 1);
	assert_int_equal(d2->device_id, 2);
	assert_ptr_equal(sim_device_by_id(sim, 2), d2);
	assert_ptr_equal(sim_device_by_udid(sim, UDID1_RAW), d1);
	assert_ptr_equal(sim_device_by_udid(sim, UDID1), d1);
	assert_null(sim_device_by_udid(sim, "not-a-udid"));

	sim_device_detach(sim, d1);
	sim_device_detach(sim, d1); /* already detached: nothing */
	assert_null(sim_device_by_id(sim, 1));
	sim_device_attach(sim, d1);
	assert_int_equal(d1->device_id, 3); /* a new DeviceID on every attach */
	assert_ptr_equal(sim_device_by_id(sim, 3), d1);

	assert_int_equal(n_calls, 5);
	assert_string_equal(calls[0], "attached " UDID1 " 1");
	assert_string_equal(calls[1], "attached " UDID2 " 2");
	/* the device half closes the connections before anyone hears of the detach */
	assert_string_equal(calls[2], "gone " UDID1);
	assert_string_equal(calls[3], "detached " UDID1 " 1");
	assert_string_equal(calls[4], "attached " UDID1 " 3");
}

static void test_ports(void **state)
{
	struct sim *sim = *state;
	struct sim_device *d1 = sim->devices[0];
	const struct sim_ports *ports = sim->ports;
	int fds[2];

	assert_false(sim_port_open(sim, d1, SIM_LOCKDOWN_PORT));
	sim_device_attach(sim, d1);
	assert_true(sim_port_open(sim, d1, SIM_LOCKDOWN_PORT));
	assert_false(sim_port_open(sim, d1, 1234));
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(sim_port_connect(sim, d1, SIM_LOCKDOWN_PORT, fds[0], NULL, 0), 0);
	assert_string_equal(calls[n_calls - 1], "connect " UDID1 " 62078 0");

	/* without a device half every port is closed and a handed-over fd is closed */
	sim->ports = NULL;
	assert_false(sim_port_open(sim, d1, SIM_LOCKDOWN_PORT));
	assert_int_equal(sim_port_connect(sim, d1, SIM_LOCKDOWN_PORT, fds[1], NULL, 0), -ENOTCONN);
	assert_int_equal(fcntl(fds[1], F_GETFD), -1);
	sim->ports = ports;
}

static void test_pairing_and_records(void **state)
{
	struct sim *sim = *state;
	struct sim_device *d1 = sim->devices[0];
	plist_t rec;

	sim_device_set_pairing(sim, d1, SIM_PAIRING_PAIRED);
	rec = sim_pair_record_get(sim, UDID1_RAW); /* either UDID form */
	assert_non_null(rec);
	plist_free(rec);
	sim_device_set_pairing(sim, d1, SIM_PAIRING_INVALID_HOST); /* keeps the record */
	sim_device_set_pairing(sim, d1, SIM_PAIRING_DENIED);       /* loses it */
	assert_null(sim_pair_record_get(sim, UDID1));
	assert_int_equal(d1->pairing, SIM_PAIRING_DENIED);
	assert_int_equal(sim_pair_record_delete(sim, UDID1), -ENOENT);

	assert_int_equal(n_calls, 4);
	assert_string_equal(calls[0], "make_pair_record " UDID1);
	assert_string_equal(calls[1], "changed " UDID1 " 0");
	assert_string_equal(calls[2], "changed " UDID1 " 0");
	assert_string_equal(calls[3], "changed " UDID1 " 0");

	/* a record saved by a host: Paired only while attached */
	assert_int_equal(sim_pair_record_set(sim, UDID1_RAW, plist_new_dict()), 0);
	assert_int_equal(sim_pair_record_set(sim, NULL, plist_new_dict()), -EINVAL);
	sim_device_paired(sim, d1);
	assert_int_equal(n_calls, 4);
	sim_device_attach(sim, d1);
	sim_device_paired(sim, d1);
	assert_string_equal(calls[n_calls - 1], "paired " UDID1 " 1");
	assert_int_equal(sim_pair_record_delete(sim, UDID1), 0);
	assert_null(sim_pair_record_get(sim, UDID1_RAW));
}

static void test_set_value(void **state)
{
	struct sim *sim = *state;
	struct sim_device *d2 = sim->devices[1];
	plist_t dict;

	sim_device_set_value(sim, d2, "com.example", "K", plist_new_uint(7));
	dict = plist_dict_get_item(d2->values, "com.example");
	assert_non_null(dict);
	assert_non_null(plist_dict_get_item(dict, "K"));
	sim_device_set_value(sim, d2, "com.example", "K", NULL);
	assert_null(plist_dict_get_item(dict, "K"));
	sim_device_set_value(sim, d2, "nowhere", "K", NULL); /* removing nothing is fine */
	assert_int_equal(n_calls, 3);
	assert_string_equal(calls[2], "changed " UDID2 " 0");
}

/* Notices reach the device half only for an attached device; a syslog line loses its newline. */
static void test_notices(void **state)
{
	struct sim *sim = *state;
	struct sim_device *d1 = sim->devices[0];

	assert_int_equal(sim_device_syslog(sim, d1, "detached line"), 0);
	assert_int_equal(sim_device_set_value(sim, d1, "com.apple.mobile.backup", "K", NULL), 0);
	assert_int_equal(n_calls, 1); /* only "changed" */
	sim_device_attach(sim, d1);
	n_calls = 0;
	assert_int_equal(sim_device_syslog(sim, d1, "a line\n"), 2);
	assert_string_equal(calls[0], "syslog " UDID1 " a line");
	assert_int_equal(sim_device_set_value(sim, d1, "com.apple.mobile.backup",
	                                      "LastCloudBackupDate", plist_new_uint(1)),
	                 2);
	assert_string_equal(calls[1], "changed " UDID1 " 1");
	assert_string_equal(calls[2],
	                    "value " UDID1 " com.apple.mobile.backup LastCloudBackupDate");
}

/* time_scale: simulated ms -> real ms rounds up; the clock starts at the wall clock and runs
 * scale times faster; formatted lines carry the simulated time in UTC. */
static void test_clock(void **state)
{
	struct sim *sim = *state;
	struct sim_device *d1 = sim->devices[0];
	char line[256];
	int64_t t0, t1;

	assert_int_equal(sim_clock_real_ms(sim, 1000), 1000); /* not started: real time */
	sim_clock_start(sim, 60);
	assert_int_equal(sim_clock_real_ms(sim, 0), 0);
	assert_int_equal(sim_clock_real_ms(sim, 60000), 1000);
	assert_int_equal(sim_clock_real_ms(sim, 60001), 1001);
	assert_int_equal(sim_clock_real_ms(sim, 8 * 3600 * 1000), 480000);
	t0 = sim_clock_ms(sim);
	assert_true(t0 - wall_now_ms() < 1000 && wall_now_ms() - t0 < 1000);
	usleep(200 * 1000);
	t1 = sim_clock_ms(sim);
	assert_true(t1 - t0 >= 60 * 190 && t1 - t0 < 60 * 1000);
	sim_clock_start(sim, 0); /* <= 0 means 1 */
	assert_true(sim->time_scale == 1);

	/* "Mon DD HH:MM:SS DeviceName process[pid] <level>: message" */
	plist_dict_set_item(d1->values, "", plist_new_dict());
	plist_dict_set_item(plist_dict_get_item(d1->values, ""), "DeviceName",
	                    plist_new_string("Cart 1"));
	sim->clock_wall0_ms = 1700000000000; /* 2023-11-14 22:13:20 UTC */
	sim->clock_mono0_ms = loop_now_ms();
	assert_true(sim_syslog_format(sim, d1, "backupd", "Error", "boom", line, sizeof(line)) > 0);
	assert_true(strncmp(line, "Nov 14 22:13:2", 14) == 0);
	assert_non_null(strstr(line, " Cart-1 backupd["));
	assert_non_null(strstr(line, "] <Error>: boom"));
	assert_int_equal(sim_syslog_format(sim, d1, "", "Error", "x", line, sizeof(line)), -EINVAL);
	/* the pid is stable per device and process */
	{
		char again[256];

		sim_syslog_format(sim, d1, "backupd", "Error", "boom", again, sizeof(again));
		assert_string_equal(strchr(line, '['), strchr(again, '['));
	}
}

static void test_subscribers(void **state)
{
	struct sim *sim = *state;
	struct sim_device *d2 = sim->devices[1];
	int i;

	assert_int_equal(sim_subscribe(sim, on_event, tag_second), 0);
	sim_device_attach(sim, d2);
	assert_int_equal(n_calls, 2);
	assert_string_equal(calls[0], "attached " UDID2 " 1"); /* in subscription order */
	assert_string_equal(calls[1], "second attached " UDID2 " 1");
	sim_unsubscribe(sim, on_event, tag_first);
	sim_device_detach(sim, d2);
	assert_int_equal(n_calls, 4);
	assert_string_equal(calls[2], "gone " UDID2);
	assert_string_equal(calls[3], "second detached " UDID2 " 1");
	for (i = 1; i < SIM_SUBSCRIBERS_MAX; i++)
		assert_int_equal(sim_subscribe(sim, on_event, tag_more), 0);
	assert_int_equal(sim_subscribe(sim, on_event, tag_more), -ENOSPC);
}

static void stop_loop(struct loop *loop, uint64_t id, void *data)
{
	(void)id;
	(void)data;
	loop_stop(loop);
}

static void test_restart(void **state)
{
	struct sim *sim = *state;
	struct sim_device *d1 = sim->devices[0], *d2 = sim->devices[1];

	d1->restart_delay_ms = 10;
	d2->restart_delay_ms = 10000;
	sim_device_attach(sim, d1);
	sim_device_attach(sim, d2);
	sim_device_restart(sim, d1);
	sim_device_restart(sim, d2); /* still pending at the end: sim_done cancels it */
	assert_false(d1->attached);
	loop_add_timer(sim->loop, 200, stop_loop, NULL);
	assert_int_equal(loop_run(sim->loop), 0);
	assert_true(d1->attached);
	assert_false(d2->attached);
	assert_int_equal(d1->device_id, 3);
	assert_string_equal(calls[n_calls - 1], "attached " UDID1 " 3");
}

static void test_journal_and_free(void **state)
{
	struct sim *sim = *state;
	struct sim_device *d1 = sim->devices[0];
	cJSON *first, *f;
	int i;

	for (i = 0; i < SIM_JOURNAL_MAX + 5; i++) {
		f = cJSON_CreateObject();
		cJSON_AddNumberToObject(f, "i", i);
		cJSON_AddStringToObject(f, "op", "ignored: op is the journal's");
		sim_journal(d1, "Test", f);
	}
	assert_int_equal(cJSON_GetArraySize(d1->journal), SIM_JOURNAL_MAX);
	first = cJSON_GetArrayItem(d1->journal, 0);
	assert_int_equal(cJSON_GetObjectItem(first, "i")->valueint, 5); /* oldest went first */
	assert_string_equal(cJSON_GetObjectItem(first, "op")->valuestring, "Test");
	assert_non_null(cJSON_GetObjectItem(first, "ts"));

	/* the device half's per-device state goes with the device */
	d1->port_state = malloc(16);
	d1->port_state_free = fake_port_state_free;
	sim_device_attach(sim, d1);
	sim_done(sim);
	assert_int_equal(port_state_frees, 1);
	/* sim_done closed the attached device's ports */
	assert_string_equal(calls[n_calls - 1], "gone " UDID1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_attach_detach, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ports, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pairing_and_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_value, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_notices, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clock, setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_journal_and_free, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
