/* SPDX-License-Identifier: MIT */
/*
 * alerts: the rules engine against a store filled by SQL, with the clock passed in. A stale
 * phone fires one backup_stale alert and only one over many passes, notified once; a fresh
 * backup seen for less than alert_clear_for changes nothing (no flapping), longer resolves it;
 * a missing phone and an offline agent fire their rules, the agent's alert inhibiting the
 * phone's; a site full of network_unavailable phones fires one site_network alert that
 * inhibits their backup_stale alerts; a silence keeps a phone's alert from notifying; a restart
 * (a new engine on the same store) neither re-fires nor resolves; a station's phones fire a
 * station's site_network when their site as a whole does not qualify; old resolved alerts are
 * pruned. Last, a pass over a fleet in a WAL file is timed and its figures printed: 5 000
 * phones here, ALERTS_BENCH_PHONES more (bench/jobs/run measures 100 000 that way), with the
 * notifications queued for a receiver and the SSE notices published, as in the service.
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

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "alerts.h"
#include "config.h"
#include "hub.h"
#include "notify.h"
#include "store.h"

#define NOW 2000000000LL
#define DAY 86400LL

struct fixture {
	char dir[64], path[128];
	struct dash_config cfg;
	struct store *s;
	struct alerts *a;
	struct hub *hub;
};

static void exec(struct store *s, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(store_db(s), sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
}

static int64_t q1(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(store_db(s)));
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char err[256];

	dash_config_defaults(&fx->cfg);
	fx->cfg.alert_clear_for_s = 300;
	fx->cfg.alert_site_network_min = 3;
	assert_int_equal(store_open(":memory:", &fx->cfg, &fx->s, err, sizeof(err)), 0);
	assert_int_equal(alerts_new(fx->s, NULL, &fx->cfg, &fx->a), 0);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;

	alerts_free(fx->a);
	store_close(fx->s);
	free(fx);
	return 0;
}

static void agent(struct store *s, const char *id, const char *site, const char *station,
                  const char *presence, int64_t presence_s)
{
	char sql[512];

	snprintf(sql, sizeof(sql),
	         "INSERT INTO agents(agent, site, station, presence, presence_ms) VALUES"
	         " ('%s', '%s', '%s', '%s', %lld) ON CONFLICT(agent) DO UPDATE SET"
	         " presence = excluded.presence, presence_ms = excluded.presence_ms",
	         id, site, station, presence, (long long)presence_s * 1000);
	exec(s, sql);
}

static void phone(struct store *s, const char *udid, const char *agent, const char *site,
                  const char *station, int attached, int64_t last_seen, int64_t last_icloud,
                  const char *causes)
{
	char sql[1024];

	snprintf(
	        sql, sizeof(sql),
	        "INSERT INTO devices(udid, serial, agent, site, station, attached, last_seen,"
	        " has_facts, last_icloud, cause_codes) VALUES ('%s', 'SN-%s', '%s', '%s', '%s', %d,"
	        " %lld, 1, %lld, '%s') ON CONFLICT(udid) DO UPDATE SET attached = excluded.attached,"
	        " last_seen = excluded.last_seen, last_icloud = excluded.last_icloud,"
	        " cause_codes = excluded.cause_codes",
	        udid, udid, agent, site, station, attached, (long long)last_seen,
	        (long long)last_icloud, causes);
	exec(s, sql);
}

static void eval(struct fixture *fx, int64_t now, struct alerts_stats *st)
{
	struct alerts_stats tmp;

	assert_int_equal(alerts_evaluate(fx->a, now, st ? st : &tmp), 0);
}

static int64_t count(struct store *s, const char *where)
{
	char sql[512];

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM alerts WHERE %s", where);
	return q1(s, sql);
}

static void test_stale_once_no_flap_resolve(void **state)
{
	struct fixture *fx = *state;
	struct alerts_stats st;

	agent(fx->s, "st-a", "north", "cart-1", "online", NOW - DAY);
	phone(fx->s, "U1", "st-a", "north", "cart-1", 1, NOW, NOW - 5 * DAY, "");
	phone(fx->s, "U2", "st-a", "north", "cart-1", 1, NOW, NOW - 3600, "");
	eval(fx, NOW, &st);
	assert_int_equal(st.fired, 1);
	assert_int_equal(st.notified, 1);
	assert_int_equal(count(fx->s, "rule = 'backup_stale' AND subject = 'U1' AND state = "
	                              "'firing' AND notified = 1"),
	                 1);
	for (int i = 1; i <= 5; i++) {
		eval(fx, NOW + 30 * i, &st);
		assert_int_equal(st.fired + st.resolved + st.notified, 0);
	}
	/* one late message says fresh, the next stale again: within alert_clear_for */
	phone(fx->s, "U1", "st-a", "north", "cart-1", 1, NOW, NOW + 170, "");
	eval(fx, NOW + 180, &st);
	assert_int_equal(st.resolved, 0);
	assert_int_equal(st.firing, 1);
	phone(fx->s, "U1", "st-a", "north", "cart-1", 1, NOW, NOW - 5 * DAY, "");
	eval(fx, NOW + 210, &st);
	assert_int_equal(st.fired + st.resolved, 0);
	assert_int_equal(count(fx->s, "1"), 1);
	/* a fresh backup for good: resolved after alert_clear_for, notified */
	phone(fx->s, "U1", "st-a", "north", "cart-1", 1, NOW, NOW + 230, "");
	eval(fx, NOW + 240, &st);
	assert_int_equal(st.resolved, 0);
	eval(fx, NOW + 240 + 300, &st);
	assert_int_equal(st.resolved, 1);
	assert_int_equal(st.notified, 1);
	assert_int_equal(count(fx->s, "state = 'resolved' AND resolved_at = "
	                              "2000000540"),
	                 1);
	assert_int_equal(count(fx->s, "state = 'firing'"), 0);
	/* a new episode is a new alert */
	phone(fx->s, "U1", "st-a", "north", "cart-1", 1, NOW, NOW - 5 * DAY, "");
	eval(fx, NOW + 600, &st);
	assert_int_equal(st.fired, 1);
	assert_int_equal(count(fx->s, "subject = 'U1'"), 2);
}

static void test_alert_for_and_restart(void **state)
{
	struct fixture *fx = *state;
	struct alerts_stats st;

	fx->cfg.alert_for_s = 60;
	agent(fx->s, "st-a", "north", "cart-1", "online", NOW - DAY);
	phone(fx->s, "U1", "st-a", "north", "cart-1", 1, NOW, NOW - 5 * DAY, "");
	eval(fx, NOW, &st);
	assert_int_equal(st.fired, 0);
	eval(fx, NOW + 59, &st);
	assert_int_equal(st.fired, 0);
	eval(fx, NOW + 60, &st);
	assert_int_equal(st.fired, 1);
	/* a restart: the firing alert is taken over, not fired again, not resolved early */
	fx->a = alerts_free(fx->a);
	assert_int_equal(alerts_new(fx->s, NULL, &fx->cfg, &fx->a), 0);
	phone(fx->s, "U1", "st-a", "north", "cart-1", 1, NOW, NOW + 100, "");
	eval(fx, NOW + 120, &st);
	assert_int_equal(st.fired + st.resolved + st.notified, 0);
	assert_int_equal(count(fx->s, "state = 'firing'"), 1);
}

static void test_missing_agent_offline_inhibits(void **state)
{
	struct fixture *fx = *state;
	struct alerts_stats st;

	fx->cfg.alert_agent_offline_s = 600;
	agent(fx->s, "st-b", "south", "cart-2", "lost", NOW - 3600);
	agent(fx->s, "st-c", "south", "cart-3", "online", NOW - 3600);
	/* on st-b, last seen 8 days ago: missing, its agent offline */
	phone(fx->s, "M1", "st-b", "south", "cart-2", 1, NOW - 8 * DAY, NOW - DAY, "");
	/* on st-c (online), unplugged 8 days ago: missing on its own */
	phone(fx->s, "M2", "st-c", "south", "cart-3", 0, NOW - 8 * DAY, NOW - DAY, "");
	eval(fx, NOW, &st);
	assert_int_equal(st.fired, 3);
	assert_int_equal(count(fx->s, "rule = 'agent_offline' AND subject = 'st-b' AND notified"),
	                 1);
	assert_int_equal(count(fx->s, "rule = 'device_missing' AND subject = 'M1' AND NOT notified"
	                              " AND inhibited_by = (SELECT id FROM alerts WHERE rule ="
	                              " 'agent_offline')"),
	                 1);
	assert_int_equal(count(fx->s, "rule = 'device_missing' AND subject = 'M2' AND notified AND"
	                              " inhibited_by IS NULL"),
	                 1);
	/* no backup_stale for a missing phone */
	assert_int_equal(count(fx->s, "rule = 'backup_stale'"), 0);
	/* the agent back: its alert resolves; M1 is docked again, so its alert resolves too */
	agent(fx->s, "st-b", "south", "cart-2", "online", NOW + 10);
	eval(fx, NOW + 20, &st);
	eval(fx, NOW + 20 + 300, &st);
	assert_int_equal(st.resolved, 2);
	assert_int_equal(count(fx->s, "state = 'firing'"), 1); /* M2 */
}

static void test_site_network_and_silence(void **state)
{
	struct fixture *fx = *state;
	struct alerts_stats st;
	char sql[512], u[16];

	agent(fx->s, "st-w", "west", "cart-9", "online", NOW - DAY);
	agent(fx->s, "st-e", "east", "cart-8", "online", NOW - DAY);
	for (int i = 0; i < 6; i++) {
		snprintf(u, sizeof(u), "W%d", i);
		phone(fx->s, u, "st-w", "west", "cart-9", 1, NOW, NOW - 5 * DAY,
		      i < 5 ? ",network_unavailable," : ",not_on_power,");
	}
	/* east: two network phones only (below alert_site_network_min 3), one silenced phone */
	phone(fx->s, "E0", "st-e", "east", "cart-8", 1, NOW, NOW - 5 * DAY,
	      ",network_unavailable,");
	phone(fx->s, "E1", "st-e", "east", "cart-8", 1, NOW, NOW - 5 * DAY,
	      ",network_unavailable,");
	phone(fx->s, "E2", "st-e", "east", "cart-8", 1, NOW, NOW - 5 * DAY, "");
	snprintf(sql, sizeof(sql),
	         "INSERT INTO silences(rule, scope, value, starts_at, ends_at, created_by, comment)"
	         " VALUES ('backup_stale', 'udid', 'E2', %lld, %lld, 'alice', 'repair')",
	         NOW - 10, NOW + 1000);
	exec(fx->s, sql);
	eval(fx, NOW, &st);
	assert_int_equal(count(fx->s, "rule = 'site_network'"), 1);
	assert_int_equal(count(fx->s, "rule = 'site_network' AND subject = 'west' AND"
	                              " subject_kind = 'site' AND notified"),
	                 1);
	/* the six west phones: visible, inhibited, not notified */
	assert_int_equal(count(fx->s, "rule = 'backup_stale' AND site = 'west' AND NOT notified"
	                              " AND inhibited_by IS NOT NULL"),
	                 6);
	assert_int_equal(count(fx->s, "rule = 'backup_stale' AND site = 'east' AND notified"), 2);
	assert_int_equal(count(fx->s, "subject = 'E2' AND silence_id IS NOT NULL AND NOT notified"),
	                 1);
	assert_int_equal(st.notified, 3);
	eval(fx, NOW + 30, &st);
	assert_int_equal(st.fired + st.notified, 0);
	/* the silence ends: E2 notifies then */
	eval(fx, NOW + 1000, &st);
	assert_int_equal(st.notified, 1);
	assert_int_equal(count(fx->s, "subject = 'E2' AND silence_id IS NULL AND notified"), 1);
}

/* A site that does not qualify as a whole, one station of it that does: the station's alert. */
static void test_station_network(void **state)
{
	struct fixture *fx = *state;
	struct alerts_stats st;
	char u[16];

	agent(fx->s, "st-1", "mixed", "a", "online", NOW - DAY);
	agent(fx->s, "st-2", "mixed", "b", "online", NOW - DAY);
	for (int i = 0; i < 3; i++) {
		snprintf(u, sizeof(u), "A%d", i);
		phone(fx->s, u, "st-1", "mixed", "a", 1, NOW, NOW - 5 * DAY,
		      ",network_unavailable,");
	}
	for (int i = 0; i < 10; i++) {
		snprintf(u, sizeof(u), "B%d", i);
		phone(fx->s, u, "st-2", "mixed", "b", 1, NOW, NOW - 5 * DAY, "");
	}
	eval(fx, NOW, &st);
	assert_int_equal(count(fx->s, "rule = 'site_network'"), 1);
	assert_int_equal(count(fx->s, "rule = 'site_network' AND subject = 'mixed/a' AND"
	                              " subject_kind = 'station' AND station = 'a'"),
	                 1);
	assert_int_equal(count(fx->s, "rule = 'backup_stale' AND inhibited_by IS NOT NULL"), 3);
	assert_int_equal(count(fx->s, "rule = 'backup_stale' AND station = 'b' AND notified"), 10);
	/* resolved alerts older than history_days are deleted */
	exec(fx->s, "UPDATE devices SET last_icloud = 2000000000");
	eval(fx, NOW + 60, &st);
	eval(fx, NOW + 60 + 300, &st);
	assert_int_equal(count(fx->s, "state = 'resolved'"), 14);
	exec(fx->s, "UPDATE devices SET last_icloud = 2000000000 + 91 * 86400");
	eval(fx, NOW + 91 * DAY, &st);
	assert_int_equal(count(fx->s, "1"), 0);
}

/* Receivers for notify_enqueue() as a config file has them (notify_configure(NULL) after). */
static void receivers(const char *conf)
{
	static struct dash_config rc;
	char p[] = "/tmp/cradle-alerts-conf-XXXXXX", err[256];
	int fd = mkstemp(p);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, conf, strlen(conf)), (ssize_t)strlen(conf));
	close(fd);
	dash_config_defaults(&rc);
	if (dash_config_load(&rc, p, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	unlink(p);
	notify_configure(&rc);
}

/* A storm: more notifications in one pass than the queue holds. The alerts take their ids in the
 * order they fire (UDID order), each row written with notified set; the queue keeps the newest
 * notify_queue_max rows and counts the others dropped, as bounding at every enqueue did. */
static void test_storm_queue_bound(void **state)
{
	struct fixture *fx = *state;
	struct alerts_stats st;
	char u[16];

	receivers("receiver1 ops webhook http://127.0.0.1:9/hook secret=0123456789abcdef\n"
	          "notify_queue_max 8\n");
	agent(fx->s, "st-a", "north", "cart-1", "online", NOW - DAY);
	for (int i = 0; i < 20; i++) {
		snprintf(u, sizeof(u), "U%02d", i);
		phone(fx->s, u, "st-a", "north", "cart-1", 1, NOW, NOW - 5 * DAY, "");
	}
	eval(fx, NOW, &st);
	assert_int_equal(st.fired, 20);
	assert_int_equal(st.notified, 20);
	assert_int_equal(count(fx->s, "state = 'firing' AND notified = 1"), 20);
	assert_int_equal(q1(fx->s, "SELECT count(*) FROM alerts a JOIN alerts b"
	                           " ON a.subject < b.subject AND a.id > b.id"),
	                 0);
	assert_int_equal(q1(fx->s, "SELECT min(id) FROM alerts"), 1);
	assert_int_equal(q1(fx->s, "SELECT count(*) FROM notify_queue"), 8);
	assert_int_equal(q1(fx->s, "SELECT min(id) FROM notify_queue"), 13);
	assert_int_equal(q1(fx->s, "SELECT max(id) FROM notify_queue"), 20);
	assert_int_equal(q1(fx->s, "SELECT dropped FROM notify_receivers WHERE name = 'ops'"), 12);
	/* the next pass's new alert continues the ids and the queue */
	phone(fx->s, "U99", "st-a", "north", "cart-1", 1, NOW, NOW - 5 * DAY, "");
	eval(fx, NOW + 30, &st);
	assert_int_equal(st.fired, 1);
	assert_int_equal(count(fx->s, "subject = 'U99' AND id = 21 AND notified = 1"), 1);
	assert_int_equal(q1(fx->s, "SELECT max(id) FROM notify_queue"), 21);
	assert_int_equal(q1(fx->s, "SELECT dropped FROM notify_receivers WHERE name = 'ops'"), 13);
	notify_configure(NULL);
}

/* The bench on a file, as the service runs it (WAL, synchronous=NORMAL). */
static int setup_file(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char err[256];

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/cradle-alerts-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/cradle.db", fx->dir);
	dash_config_defaults(&fx->cfg);
	assert_int_equal(store_open(fx->path, &fx->cfg, &fx->s, err, sizeof(err)), 0);
	assert_int_equal(alerts_new(fx->s, NULL, &fx->cfg, &fx->a), 0);
	*state = fx;
	return 0;
}

static int teardown_file(void **state)
{
	struct fixture *fx = *state;
	char p[160];

	fx->a = alerts_free(fx->a);
	notify_configure(NULL);
	fx->hub = hub_free(fx->hub);
	fx->s = store_close(fx->s);
	for (size_t i = 0; i < 4; i++) {
		snprintf(p, sizeof(p), "%s%s", fx->path,
		         (const char *[]){ "", "-wal", "-shm", ".conf" }[i]);
		unlink(p);
	}
	rmdir(fx->dir);
	return teardown(state);
}

static void bench_delivery(struct fixture *fx)
{
	static struct dash_config rc;
	char p[160], err[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s.conf", fx->path);
	f = fopen(p, "w");
	assert_non_null(f);
	fprintf(f, "receiver1 ops webhook http://127.0.0.1:9/hook secret=0123456789abcdef\n");
	assert_int_equal(fclose(f), 0);
	dash_config_defaults(&rc);
	if (dash_config_load(&rc, p, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	notify_configure(&rc);
	fx->hub = hub_new(8192);
	assert_non_null(fx->hub);
	fx->a = alerts_free(fx->a);
	assert_int_equal(alerts_new(fx->s, fx->hub, &fx->cfg, &fx->a), 0);
}

static void test_bench(void **state)
{
	struct fixture *fx = *state;
	const char *env = getenv("ALERTS_BENCH_PHONES");
	long n = env ? atol(env) : 5000; /* bench/jobs/run sets 100 000 */
	struct alerts_stats st;
	sqlite3_stmt *ins;
	char u[64], a[32], site[32], state_json[1600];

	memset(state_json, 'x', sizeof(state_json) - 3);
	state_json[0] = '"';
	state_json[sizeof(state_json) - 3] = '"';
	state_json[sizeof(state_json) - 2] = '\0';
	exec(fx->s, "BEGIN");
	for (int i = 0; i < 200; i++) {
		snprintf(a, sizeof(a), "st-%03d", i);
		snprintf(site, sizeof(site), "site-%02d", i / 10);
		agent(fx->s, a, site, a, i % 50 == 0 ? "lost" : "online", NOW - DAY);
	}
	assert_int_equal(
	        sqlite3_prepare_v2(store_db(fx->s),
	                           "INSERT INTO devices(udid, serial, agent, site, station,"
	                           " attached, last_seen, has_facts, last_icloud,"
	                           " cause_codes, causes_json) VALUES (?1, ?1, ?2, ?3, ?2,"
	                           " ?4, ?5, 1, ?6, ?7, '[]')",
	                           -1, &ins, NULL),
	        SQLITE_OK);
	for (long i = 0; i < n; i++) {
		snprintf(u, sizeof(u), "00008110-%016lX", (unsigned long)i);
		snprintf(a, sizeof(a), "st-%03ld", i % 200);
		snprintf(site, sizeof(site), "site-%02ld", (i % 200) / 10);
		sqlite3_bind_text(ins, 1, u, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(ins, 2, a, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(ins, 3, site, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int(ins, 4, i % 7 != 0);
		sqlite3_bind_int64(ins, 5, i % 7 ? NOW : NOW - 9 * DAY);
		/* a third stale, a fifth of those with network_unavailable */
		sqlite3_bind_int64(ins, 6, i % 3 == 0 ? NOW - 5 * DAY : NOW - 3600);
		sqlite3_bind_text(ins, 7, i % 15 == 0 ? ",network_unavailable," : "", -1,
		                  SQLITE_STATIC);
		/* as wide as a real state message: the pass must not read it */
		sqlite3_bind_text(ins, 8, state_json, -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
		sqlite3_reset(ins);
	}
	sqlite3_finalize(ins);
	exec(fx->s, "COMMIT");
	/* as the service runs the pass: the writer's page cache as ingest sets it, SSE notices to a
	 * hub, and one receiver taking every rule (its queue bounded at notify_queue_max) */
	exec(fx->s, "PRAGMA cache_size=-65536");
	bench_delivery(fx);
	eval(fx, NOW, &st);
	printf("alerts bench: %zu phones, %zu agents: first pass %.3f s (%zu fired, %zu notified)\n",
	       st.phones, st.agents, st.elapsed_us / 1e6, st.fired, st.notified);
	assert_int_equal((long)st.phones, n);
	assert_true(st.fired > 0);
	eval(fx, NOW + 30, &st);
	printf("alerts bench: steady pass %.3f s (%zu firing, %zu fired)\n", st.elapsed_us / 1e6,
	       st.firing, st.fired);
	assert_int_equal(st.fired, 0);
	/* every stale phone fresh again: the pass that resolves them all */
	exec(fx->s, "UPDATE devices SET last_icloud = 2000000000");
	eval(fx, NOW + 60, &st);
	eval(fx, NOW + 60 + 300, &st);
	printf("alerts bench: resolving pass %.3f s (%zu resolved)\n", st.elapsed_us / 1e6,
	       st.resolved);
	assert_true(st.resolved > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_stale_once_no_flap_resolve, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alert_for_and_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_agent_offline_inhibits, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_site_network_and_silence, setup, teardown),
		cmocka_unit_test_setup_teardown(test_station_network, setup, teardown),
		cmocka_unit_test_setup_teardown(test_storm_queue_bound, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bench, setup_file, teardown_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
