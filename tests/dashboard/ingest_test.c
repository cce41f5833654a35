/* SPDX-License-Identifier: MIT */
/*
 * ingest without a broker: messages built with the proto encoders are fed to ingest_message()
 * as MQTT would deliver them, and the store is read back. Covers presence (birth, graceful
 * offline, the will of this run and of an old one), site/station from meta, one row per phone
 * across stations, the staleness verdict in SQL, dedupe, seq gaps (and their un-counting),
 * retained replays out of order, malformed payloads, retirement by an empty payload, command
 * results, batching, and a restart that keeps its indexes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "command.h"
#include "config.h"
#include "ingest.h"
#include "proto.h"
#include "store.h"

#define T0   1780000000000LL /* ms */
#define UDID "00008110-001A2B3C4D5E801E"

struct fx {
	char dir[64], path[128];
	struct dash_config cfg;
	struct store *store;
	struct ingest *in;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char err[256];

	snprintf(f->dir, sizeof(f->dir), "/tmp/dash-ingest-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/cradle.db", f->dir);
	dash_config_defaults(&f->cfg);
	if (store_open(f->path, &f->cfg, &f->store, err, sizeof(err)) < 0)
		return -1;
	if (ingest_new(NULL, f->store, NULL, &f->cfg, &f->in) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	ingest_free(f->in);
	store_close(f->store);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

/* Re-creates the ingest on the same store, as a restart of the service does. */
static void restart(struct fx *f)
{
	f->in = ingest_free(f->in);
	assert_int_equal(ingest_new(NULL, f->store, NULL, &f->cfg, &f->in), 0);
}

static void feed(struct fx *f, const char *topic, char *json, bool retained)
{
	assert_non_null(json);
	assert_int_equal(ingest_message(f->in, topic, json, strlen(json), retained, T0 + 999999),
	                 0);
	free(json);
}

static void flush(struct fx *f)
{
	assert_int_equal(ingest_flush(f->in), 0);
}

static int64_t q_int(struct fx *f, const char *fmt, ...)
{
	char sql[512];
	sqlite3_stmt *st;
	va_list ap;
	int64_t v = -12345;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	if (sqlite3_prepare_v2(store_db(f->store), sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(store_db(f->store)));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static char *q_text(struct fx *f, const char *sql)
{
	static char buf[256];
	sqlite3_stmt *st;

	buf[0] = '\0';
	assert_int_equal(sqlite3_prepare_v2(store_db(f->store), sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(buf, sizeof(buf), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return buf;
}

static char *status(const char *agent, int64_t session, int64_t seq, bool online)
{
	struct proto_agent_status m = { 0 };

	snprintf(m.h.agent, sizeof(m.h.agent), "%s", agent);
	m.h.session = session;
	m.h.seq = seq;
	m.h.ts_ms = T0 + seq;
	m.online = online;
	snprintf(m.agent_version, sizeof(m.agent_version), "1.2.3");
	return proto_agent_status_encode(&m);
}

static char *will(const char *agent, int64_t session)
{
	struct proto_agent_status m = { 0 };

	snprintf(m.h.agent, sizeof(m.h.agent), "%s", agent);
	m.h.session = session;
	m.is_will = true;
	return proto_agent_status_encode(&m);
}

static char *meta(const char *agent, int64_t session, int64_t seq, const char *site,
                  const char *station)
{
	struct proto_agent_meta m = { 0 };

	snprintf(m.h.agent, sizeof(m.h.agent), "%s", agent);
	m.h.session = session;
	m.h.seq = seq;
	m.h.ts_ms = T0 + seq;
	snprintf(m.site, sizeof(m.site), "%s", site);
	snprintf(m.station, sizeof(m.station), "%s", station);
	snprintf(m.version_agent, sizeof(m.version_agent), "1.2.3");
	m.stale_after_s = 72 * 3600;
	m.probe_interval_s = 900;
	return proto_agent_meta_encode(&m);
}

static char *state(const char *agent, int64_t session, int64_t seq, int64_t ts_ms, bool attached,
                   int64_t last_icloud)
{
	struct proto_device_state m;

	memset(&m, 0, sizeof(m));
	snprintf(m.h.agent, sizeof(m.h.agent), "%s", agent);
	m.h.session = session;
	m.h.seq = seq;
	m.h.ts_ms = ts_ms;
	snprintf(m.udid, sizeof(m.udid), UDID);
	m.attached = attached;
	m.has_probed_at = true;
	m.probed_at = ts_ms / 1000;
	snprintf(m.product_type, sizeof(m.product_type), "iPhone14,5");
	snprintf(m.ios_version, sizeof(m.ios_version), "17.5.1");
	snprintf(m.serial, sizeof(m.serial), "F2LXK0QNPLJM");
	m.pairing = PROTO_PAIRING_PAIRED;
	m.has_icloud_enabled = true;
	m.icloud_enabled = true;
	m.has_last_icloud = last_icloud > 0;
	m.last_icloud = last_icloud;
	m.status = PROTO_STATUS_OK;
	m.probe = PROTO_PROBE_OK;
	return proto_device_state_encode(&m);
}

static char *event(const char *agent, int64_t session, int64_t seq, enum proto_event e)
{
	struct proto_device_event m;

	memset(&m, 0, sizeof(m));
	snprintf(m.h.agent, sizeof(m.h.agent), "%s", agent);
	m.h.session = session;
	m.h.seq = seq;
	m.h.ts_ms = T0 + seq;
	m.event = e;
	snprintf(m.udid, sizeof(m.udid), UDID);
	return proto_device_event_encode(&m);
}

#define T_STATUS(a) "cradle/v1/agent/" a "/status"
#define T_META(a)   "cradle/v1/agent/" a "/meta"
#define T_STATE(a)  "cradle/v1/agent/" a "/device/" UDID "/state"
#define T_EVENT(a)  "cradle/v1/agent/" a "/device/" UDID "/event"
#define T_RESULT(a) "cradle/v1/agent/" a "/result"

static void test_presence_meta_state(void **state_)
{
	struct fx *f = *state_;

	feed(f, T_STATUS("st-a"), status("st-a", 7, 0, true), true);
	feed(f, T_META("st-a"), meta("st-a", 7, 1, "berlin", "cart-1"), true);
	feed(f, T_STATE("st-a"), state("st-a", 7, 2, T0 + 2, true, T0 / 1000 - 3600), true);
	flush(f);
	assert_string_equal(q_text(f, "SELECT presence FROM agents WHERE agent='st-a'"), "online");
	assert_string_equal(q_text(f, "SELECT site || '/' || station FROM agents"),
	                    "berlin/cart-1");
	assert_string_equal(q_text(f, "SELECT version FROM agents"), "1.2.3");
	assert_string_equal(q_text(f, "SELECT agent || ' ' || site || ' ' || station || ' ' ||"
	                              " serial || ' ' || ios_version FROM devices"),
	                    "st-a berlin cart-1 F2LXK0QNPLJM 17.5.1");
	assert_int_equal(q_int(f, "SELECT ios_key FROM devices"), 17005001);
	assert_int_equal(q_int(f, "SELECT last_icloud FROM devices"), T0 / 1000 - 3600);
	assert_int_equal(q_int(f, "SELECT last_seen FROM devices"), (T0 + 2) / 1000);
	assert_int_equal(q_int(f, "SELECT count(*) FROM history WHERE kind='state'"), 1);
	assert_int_equal(q_int(f, "SELECT count(*) FROM history WHERE kind='presence'"), 1);
	/* the dashboard's verdict with its own clock: ok now, stale four days later */
	assert_string_equal(q_text(f, "SELECT cradle_status(d.site, d.attached AND a.presence ="
	                              " 'online', d.last_seen, d.has_facts, d.last_icloud,"
	                              " 1780000000) FROM devices d JOIN agents a USING (agent)"),
	                    "ok");
	assert_string_equal(q_text(f, "SELECT cradle_status(d.site, 1, d.last_seen, d.has_facts,"
	                              " d.last_icloud, 1780000000 + 4 * 86400) FROM devices d"),
	                    "stale");

	/* a repeat of the same state (new seq) changes no history; graceful offline, then the
	 * will of an older run is ignored, the will of this run marks it lost */
	feed(f, T_STATE("st-a"), state("st-a", 7, 3, T0 + 3, true, T0 / 1000 - 3600), false);
	feed(f, T_STATUS("st-a"), status("st-a", 7, 4, false), false);
	flush(f);
	assert_int_equal(q_int(f, "SELECT count(*) FROM history WHERE kind='state'"), 1);
	assert_int_equal(q_int(f, "SELECT state_seq FROM devices"), 3);
	assert_string_equal(q_text(f, "SELECT presence FROM agents"), "offline");
	feed(f, T_STATUS("st-a"), status("st-a", 8, 0, true), false);
	feed(f, T_STATUS("st-a"), will("st-a", 7), true);
	flush(f);
	assert_string_equal(q_text(f, "SELECT presence FROM agents"), "online");
	feed(f, T_STATUS("st-a"), will("st-a", 8), true);
	flush(f);
	assert_string_equal(q_text(f, "SELECT presence FROM agents"), "lost");
	assert_int_equal(q_int(f, "SELECT session FROM agents"), 8);
}

/* A phone moves from station A to station B; A's republished "detached" does not pull it back. */
static void test_one_row_per_phone(void **state_)
{
	struct fx *f = *state_;

	feed(f, T_META("st-a"), meta("st-a", 1, 0, "berlin", "cart-1"), true);
	feed(f, T_META("st-b"), meta("st-b", 1, 0, "hamburg", "cart-9"), true);
	feed(f, T_STATE("st-a"), state("st-a", 1, 1, T0 + 100, true, 0), true);
	feed(f, T_STATE("st-b"), state("st-b", 1, 1, T0 + 200, true, 0), true);
	feed(f, T_STATE("st-a"), state("st-a", 1, 2, T0 + 300, false, 0), false);
	flush(f);
	assert_int_equal(q_int(f, "SELECT count(*) FROM devices"), 1);
	assert_string_equal(q_text(f, "SELECT agent || ' ' || site || ' ' || station || ' ' ||"
	                              " attached FROM devices"),
	                    "st-b hamburg cart-9 1");
	/* never backed up with a successful probe: stale, not unknown */
	assert_string_equal(q_text(f, "SELECT cradle_status(site, 1, last_seen, has_facts,"
	                              " last_icloud, 1780000000) FROM devices"),
	                    "stale");
	/* B sees it leave: detached, last seen at the unplug */
	feed(f, T_STATE("st-b"), state("st-b", 1, 2, T0 + 400000, false, 0), false);
	flush(f);
	assert_int_equal(q_int(f, "SELECT attached FROM devices"), 0);
	assert_int_equal(q_int(f, "SELECT last_seen FROM devices"), (T0 + 400000) / 1000);
	assert_int_equal(q_int(f, "SELECT count(*) FROM history WHERE kind='state'"), 3);
	/* retired: an empty retained payload removes the row, keeps the history */
	assert_int_equal(ingest_message(f->in, T_STATE("st-b"), "", 0, true, T0 + 500000), 0);
	flush(f);
	assert_int_equal(q_int(f, "SELECT count(*) FROM devices"), 0);
	assert_int_equal(q_int(f, "SELECT count(*) FROM history WHERE name='deleted'"), 1);
}

static void test_dedupe_gaps(void **state_)
{
	struct fx *f = *state_;
	struct ingest_stats st;
	char *e;

	feed(f, T_STATUS("st-a"), status("st-a", 5, 10, true), false);
	feed(f, T_EVENT("st-a"), event("st-a", 5, 11, PROTO_EVENT_ATTACHED), false);
	/* a QoS 1 duplicate */
	feed(f, T_EVENT("st-a"), event("st-a", 5, 11, PROTO_EVENT_ATTACHED), false);
	/* 12, 13 missing */
	feed(f, T_EVENT("st-a"), event("st-a", 5, 14, PROTO_EVENT_BACKUP_STARTED), false);
	flush(f);
	ingest_get_stats(f->in, &st);
	assert_int_equal(st.duplicates, 1);
	assert_int_equal(st.lost, 2);
	assert_int_equal(q_int(f, "SELECT lost_messages FROM agents"), 2);
	assert_int_equal(q_int(f, "SELECT duplicates FROM agents"), 1);
	assert_int_equal(q_int(f, "SELECT value FROM counters WHERE name='lost'"), 2);
	assert_int_equal(q_int(f, "SELECT count(*) FROM history WHERE kind='event'"), 2);
	/* 12 arrives late (another topic): its count is taken back */
	feed(f, T_EVENT("st-a"), event("st-a", 5, 12, PROTO_EVENT_DETACHED), false);
	flush(f);
	assert_int_equal(q_int(f, "SELECT lost_messages FROM agents"), 1);
	assert_int_equal(q_int(f, "SELECT value FROM counters WHERE name='lost'"), 1);
	/* retained replays out of order count neither gaps nor duplicates */
	feed(f, T_STATE("st-a"), state("st-a", 5, 40, T0 + 40, true, 0), true);
	feed(f, T_STATE("st-a"), state("st-a", 5, 30, T0 + 30, true, 0), true);
	feed(f, T_STATE("st-a"), state("st-a", 5, 40, T0 + 40, true, 0), true);
	flush(f);
	ingest_get_stats(f->in, &st);
	assert_int_equal(st.duplicates, 1);
	assert_int_equal(st.lost, 1);
	assert_int_equal(q_int(f, "SELECT state_seq FROM devices"), 40);
	/* a new session starts counting afresh */
	feed(f, T_STATUS("st-a"), status("st-a", 6, 0, true), false);
	feed(f, T_EVENT("st-a"), event("st-a", 6, 1, PROTO_EVENT_ATTACHED), false);
	flush(f);
	ingest_get_stats(f->in, &st);
	assert_int_equal(st.lost, 1);

	/* a restart keeps the indexes: an event stored before and delivered again is a
	 * duplicate, an older state is not applied */
	restart(f);
	e = event("st-a", 6, 1, PROTO_EVENT_ATTACHED);
	feed(f, T_EVENT("st-a"), e, false);
	feed(f, T_STATE("st-a"), state("st-a", 5, 39, T0 + 39, false, 0), false);
	flush(f);
	ingest_get_stats(f->in, &st);
	assert_int_equal(st.duplicates, 1);
	assert_int_equal(st.lost, 1);
	assert_int_equal(q_int(f, "SELECT state_seq FROM devices"), 40);
	assert_int_equal(q_int(f, "SELECT count(*) FROM history WHERE kind='event' AND session=6"),
	                 1);
}

static void test_malformed(void **state_)
{
	struct fx *f = *state_;
	static const char *const bad[][2] = {
		{ T_STATE("st-a"), "not json" },
		{ T_STATE("st-a"), "{\"schema\":\"cradle.device_state.v1\"}" },
		{ T_STATE("st-a"), "[1,2,3]" },
		{ T_EVENT("st-a"), "" },
		{ "cradle/v1/agent/ST_BAD/status", "{}" },
		{ "some/other/topic", "{}" },
	};
	struct ingest_stats st;
	char *s;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(
		        ingest_message(f->in, bad[i][0], bad[i][1], strlen(bad[i][1]), false, T0),
		        0);
	/* a state of agent st-b published on st-a's topic */
	s = state("st-b", 1, 1, T0, true, 0);
	feed(f, T_STATE("st-a"), s, false);
	/* and ingest goes on */
	feed(f, T_STATE("st-a"), state("st-a", 1, 2, T0, true, 0), false);
	flush(f);
	ingest_get_stats(f->in, &st);
	assert_int_equal(st.malformed, 7);
	assert_int_equal(st.messages, 8);
	assert_int_equal(q_int(f, "SELECT value FROM counters WHERE name='malformed'"), 7);
	assert_int_equal(q_int(f, "SELECT value FROM counters WHERE name='messages'"), 8);
	assert_int_equal(q_int(f, "SELECT count(*) FROM devices"), 1);
}

static char *result(const char *agent, int64_t seq, const char *cmd_id, enum command_status s)
{
	struct command_result r;

	memset(&r, 0, sizeof(r));
	snprintf(r.agent, sizeof(r.agent), "%s", agent);
	snprintf(r.cmd_id, sizeof(r.cmd_id), "%s", cmd_id);
	snprintf(r.udid, sizeof(r.udid), UDID);
	snprintf(r.name, sizeof(r.name), "device.refresh");
	r.status = s;
	r.has_session = true;
	r.session = 3;
	r.seq = seq;
	r.ts_ms = T0 + seq;
	r.progress = s == COMMAND_STATUS_IN_PROGRESS ? 50 : -1;
	return command_result_encode(&r);
}

static void test_results(void **state_)
{
	struct fx *f = *state_;
	static const char id[] = "6f1c2b1e-8a51-4c2e-9d0b-3e1f5a7c9b20";
	static const char other[] = "7f1c2b1e-8a51-4c2e-9d0b-3e1f5a7c9b20";

	assert_int_equal(sqlite3_exec(store_db(f->store),
	                              "INSERT INTO commands(cmd_id, udid, agent, name, sent_by,"
	                              " sent_at_ms, expires_at_ms, updated_ms) VALUES"
	                              " ('6f1c2b1e-8a51-4c2e-9d0b-3e1f5a7c9b20', '" UDID "',"
	                              " 'st-a', 'device.refresh', 'alice', 1, 2, 1)",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	feed(f, T_RESULT("st-a"), result("st-a", 10, id, COMMAND_STATUS_ACCEPTED), false);
	/* arrives before the earlier in_progress: the latest by seq wins */
	feed(f, T_RESULT("st-a"), result("st-a", 12, id, COMMAND_STATUS_SUCCEEDED), false);
	feed(f, T_RESULT("st-a"), result("st-a", 11, id, COMMAND_STATUS_IN_PROGRESS), false);
	feed(f, T_RESULT("st-a"), result("st-a", 12, id, COMMAND_STATUS_SUCCEEDED), false);
	feed(f, T_RESULT("st-a"), result("st-a", 13, other, COMMAND_STATUS_ACCEPTED), false);
	flush(f);
	assert_int_equal(q_int(f, "SELECT count(*) FROM command_results"), 3);
	assert_string_equal(q_text(f, "SELECT status FROM commands"), "succeeded");
	assert_int_equal(
	        q_int(f, "SELECT count(*) FROM history WHERE kind='command' AND udid='" UDID "'"),
	        3);
	assert_int_equal(q_int(f, "SELECT duplicates FROM agents"), 1);
}

/* 1000 messages commit without a flush; the next one opens a new batch. */
static void test_batch(void **state_)
{
	struct fx *f = *state_;
	struct ingest_stats st;
	sqlite3 *reader;
	sqlite3_stmt *q;

	for (int i = 0; i < INGEST_BATCH_MAX; i++)
		feed(f, T_EVENT("st-a"), event("st-a", 1, i, PROTO_EVENT_ATTACHED), false);
	ingest_get_stats(f->in, &st);
	assert_int_equal(st.batches, 1);
	assert_int_equal(sqlite3_open(f->path, &reader), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(reader, "SELECT count(*) FROM history", -1, &q, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(q, 0), INGEST_BATCH_MAX);
	sqlite3_finalize(q);
	sqlite3_close(reader);
	assert_int_equal(st.lost, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_presence_meta_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_one_row_per_phone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dedupe_gaps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_results, setup, teardown),
		cmocka_unit_test_setup_teardown(test_batch, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
