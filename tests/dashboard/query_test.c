/* SPDX-License-Identifier: MIT */
/*
 * query: the read side against a store filled by SQL with rows whose answers are known —
 * status by the judge's rule (docked, stale, never backed up, missing), every filter, sorts and
 * pages, CSV (quoting, formula guard, the whole filter), one phone with causes, history, agents,
 * the summary and commands with their results, phones by site and status and the metrics page
 * over them. Parameter parsing refuses bad values with a
 * message naming the parameter. The q search through the trigram index (indexed and pending
 * phones) gives exactly what the plain scan gives, on generated phones with LIKE
 * metacharacters, Unicode names and short texts, before and after writes through the triggers.
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

#include "command.h"
#include "config.h"
#include "metrics.h"
#include "query.h"
#include "store.h"

#define NOW   2000000000LL
#define DAY   86400LL
#define CMDID "6f1c2b1e-8a51-4c2e-9d0b-3e1f5a7c9b20"

struct fixture {
	char dir[64];
	char path[128];
	struct dash_config cfg;
	struct store *s;
};

static void exec(struct store *s, const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(store_db(s), sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
}

/*
 * Agents: st-a (site-a/cart-1, online), st-b (site-b/cart-2, online), st-c (site-b/cart-3,
 * lost, with a meta allowing only device.refresh).
 * Phones (stale_after 72h, missing_after 7d):
 *   U1 "Alpha"  st-a attached, backed up 1 day ago               -> ok
 *   U2 "Bravo"  st-a attached, backed up 5 days ago, cause X     -> stale
 *   U3 "Charlie" st-b attached, never backed up (facts), cause Y -> stale
 *   U4 "=Delta" st-b not attached, seen 10 days ago               -> missing
 *   U5 "Echo"   st-c attached but agent lost, seen 1 day ago, no facts -> unknown
 */
static void fill(struct store *s)
{
	char sql[4096];

	snprintf(sql, sizeof(sql),
	         "INSERT INTO agents(agent, site, station, presence, last_seen_ms, version,"
	         " lost_messages, meta_json) VALUES"
	         " ('st-a', 'site-a', 'cart-1', 'online', %lld, '1.0', 0, NULL),"
	         " ('st-b', 'site-b', 'cart-2', 'online', %lld, '1.0', 3, NULL),"
	         " ('st-c', 'site-b', 'cart-3', 'lost', %lld, '1.0', 0,"
	         "  '{\"allowed_commands\":[\"device.refresh\"]}');",
	         NOW * 1000, NOW * 1000, (NOW - DAY) * 1000);
	exec(s, sql);
	snprintf(
	        sql, sizeof(sql),
	        "INSERT INTO devices(udid, serial, name, ios_version, ios_key, agent, site, station,"
	        " attached, last_seen, has_facts, last_icloud, icloud_enabled, cause_codes,"
	        " causes_json) VALUES"
	        " ('U1', 'SN1', 'Alpha', '17.4.1', 17004001, 'st-a', 'site-a', 'cart-1', 1, %lld, 1,"
	        "  %lld, 1, '', '[]'),"
	        " ('U2', 'SN2', 'Bravo', '16.7', 16007000, 'st-a', 'site-a', 'cart-1', 1, %lld, 1,"
	        "  %lld, 1, ',wifi_off,', '[{\"code\":\"wifi_off\",\"evidence\":\"e\","
	        "\"remediation\":\"r\",\"complexity\":\"low\"}]'),"
	        " ('U3', 'SN3', 'Charlie', '15.1', 15001000, 'st-b', 'site-b', 'cart-2', 1, %lld,"
	        "  1, NULL, 0, ',icloud_off,wifi_off,', '[]'),"
	        " ('U4', 'SN4', '=Delta, \"the\"', '17.0', 17000000, 'st-b', 'site-b', 'cart-2', 0,"
	        "  %lld, 1, %lld, 1, '', '[]'),"
	        " ('U5', 'SN5', 'Echo', '', 0, 'st-c', 'site-b', 'cart-3', 1, %lld, 0, NULL, NULL,"
	        "  '', '[]');",
	        NOW, NOW - DAY, NOW, NOW - 5 * DAY, NOW, NOW - 10 * DAY, NOW - 11 * DAY, NOW - DAY);
	exec(s, sql);
	snprintf(
	        sql, sizeof(sql),
	        "INSERT INTO history(udid, agent, session, seq, ts_ms, kind, name, summary, json)"
	        " VALUES ('U2', 'st-a', 1, 1, %lld, 'state', 'ok', 'first', '{\"a\":1}'),"
	        " ('U2', 'st-a', 1, 2, %lld, 'state', 'stale', 'second', 'not json'),"
	        " ('U1', 'st-a', 1, 3, %lld, 'event', 'attached', 'other', '{}');"
	        "INSERT INTO commands(cmd_id, udid, agent, name, params_json, sent_by, sent_at_ms,"
	        " expires_at_ms, status, updated_ms) VALUES ('" CMDID "', 'U1', 'st-a',"
	        " 'backup.local.start', '{\"full\":true}', 'alice', %lld, %lld, 'in_progress', %lld);"
	        "INSERT INTO command_results(cmd_id, agent, session, seq, ts_ms, status, json) VALUES"
	        " ('" CMDID "', 'st-a', 1, 10, %lld, 'accepted', '{\"status\":\"accepted\"}'),"
	        " ('" CMDID "', 'st-a', 1, 11, %lld, 'in_progress',"
	        "  '{\"status\":\"in_progress\",\"progress\":5}');"
	        "INSERT INTO samples(ts, total, ok, stale, unknown, missing) VALUES"
	        " (%lld, 5, 1, 2, 1, 1), (%lld, 5, 1, 2, 1, 1);"
	        "INSERT INTO counters(name, value) VALUES ('malformed', 4), ('lost', 3);",
	        (NOW - 2 * DAY) * 1000, (NOW - DAY) * 1000, NOW * 1000, NOW * 1000,
	        NOW * 1000 + 600000, NOW * 1000, NOW * 1000 + 1, NOW * 1000 + 2, NOW - 3600,
	        NOW - 30 * DAY);
	exec(s, sql);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char err[256];

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/dash-query-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/cradle.db", fx->dir);
	dash_config_defaults(&fx->cfg);
	if (store_open(fx->path, &fx->cfg, &fx->s, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	fill(fx->s);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[160];

	store_close(fx->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

/* The object as a client sees it: stored JSON is emitted raw, so print and parse again. */
static cJSON *wire(cJSON *o)
{
	char *text;
	cJSON *r;

	if (!o)
		return NULL;
	text = cJSON_PrintUnformatted(o);
	assert_non_null(text);
	r = cJSON_Parse(text);
	assert_non_null(r);
	free(text);
	cJSON_Delete(o);
	return r;
}

/* "U1,U2,..." of a device list, in order. */
static void udids(const cJSON *list, char *out, size_t size)
{
	const cJSON *d;
	size_t n = 0;

	out[0] = '\0';
	cJSON_ArrayForEach(d, cJSON_GetObjectItem(list, "devices")) {
		int w = snprintf(out + n, size - n, "%s%s", n ? "," : "",
		                 cJSON_GetObjectItem(d, "udid")->valuestring);
		n += (size_t)w;
	}
}

/* The list for "name=value&..." pairs (NULL-terminated), checked total, its udids. */
static void list(struct store *s, const char *const *params, int total, const char *want)
{
	struct query_devices q;
	char err[256], got[256];
	cJSON *r;

	query_devices_init(&q);
	for (int i = 0; params[i]; i += 2)
		assert_int_equal(
		        query_devices_param(&q, params[i], params[i + 1], err, sizeof(err)), 0);
	r = query_devices_json(s, &q, NOW);
	assert_non_null(r);
	assert_int_equal(cJSON_GetObjectItem(r, "total")->valuedouble, total);
	udids(r, got, sizeof(got));
	if (strcmp(got, want))
		fail_msg("params %s=%s: got %s, want %s", params[0] ? params[0] : "-",
		         params[0] ? params[1] : "-", got, want);
	cJSON_Delete(r);
}

static void test_status_and_fields(void **state)
{
	struct fixture *fx = *state;
	cJSON *d;

	d = query_device_json(fx->s, "U1", NOW);
	assert_non_null(d);
	assert_string_equal(cJSON_GetObjectItem(d, "status")->valuestring, "ok");
	assert_int_equal(cJSON_GetObjectItem(d, "age_s")->valuedouble, DAY);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "attached")));
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "icloud_enabled")));
	assert_string_equal(cJSON_GetObjectItem(d, "last_seen")->valuestring,
	                    "2033-05-18T03:33:20Z");
	assert_string_equal(cJSON_GetObjectItem(d, "last_icloud")->valuestring,
	                    "2033-05-17T03:33:20Z");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "causes")), 0);
	cJSON_Delete(d);

	d = query_device_json(fx->s, "U3", NOW);
	assert_string_equal(cJSON_GetObjectItem(d, "status")->valuestring, "stale");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(d, "last_icloud")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(d, "age_s")));
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(d, "icloud_enabled")));
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(d, "causes"), 1)->valuestring,
	                    "wifi_off");
	cJSON_Delete(d);

	d = query_device_json(fx->s, "U4", NOW);
	assert_string_equal(cJSON_GetObjectItem(d, "status")->valuestring, "missing");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(d, "attached")));
	cJSON_Delete(d);

	/* attached, but its agent is lost: not docked, seen a day ago, no facts */
	d = query_device_json(fx->s, "U5", NOW);
	assert_string_equal(cJSON_GetObjectItem(d, "status")->valuestring, "unknown");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(d, "attached")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(d, "icloud_enabled")));
	cJSON_Delete(d);

	assert_null(query_device_json(fx->s, "nope", NOW));
}

static void test_filters(void **state)
{
	struct fixture *fx = *state;

	list(fx->s, (const char *[]){ NULL }, 5, "U3,U5,U4,U2,U1");
	list(fx->s, (const char *[]){ "status", "stale", NULL }, 2, "U3,U2");
	list(fx->s, (const char *[]){ "status", "ok,missing", NULL }, 2, "U4,U1");
	list(fx->s, (const char *[]){ "cause", "wifi_off", NULL }, 2, "U3,U2");
	list(fx->s, (const char *[]){ "cause", "wifi", NULL }, 0, "");
	list(fx->s, (const char *[]){ "agent", "st-b", NULL }, 2, "U3,U4");
	list(fx->s, (const char *[]){ "site", "site-b", NULL }, 3, "U3,U5,U4");
	list(fx->s, (const char *[]){ "site", "site-b", "station", "cart-3", NULL }, 1, "U5");
	/* unknown version (U5, ios_key 0) is not below anything */
	list(fx->s, (const char *[]){ "ios_below", "17", NULL }, 2, "U3,U2");
	list(fx->s, (const char *[]){ "ios_below", "17.0.1", NULL }, 3, "U3,U4,U2");
	list(fx->s, (const char *[]){ "q", "sn4", NULL }, 1, "U4");
	list(fx->s, (const char *[]){ "q", "ECH", NULL }, 1, "U5");
	list(fx->s, (const char *[]){ "q", "u2", NULL }, 1, "U2");
	list(fx->s, (const char *[]){ "q", "%", NULL }, 0, "");
	list(fx->s, (const char *[]){ "status", "stale", "site", "site-a", NULL }, 1, "U2");
}

static void test_sort_and_pages(void **state)
{
	struct fixture *fx = *state;

	list(fx->s, (const char *[]){ "sort", "age", NULL }, 5, "U1,U2,U4,U5,U3");
	list(fx->s, (const char *[]){ "sort", "name", NULL }, 5, "U4,U1,U2,U3,U5");
	list(fx->s, (const char *[]){ "sort", "-serial", NULL }, 5, "U5,U4,U3,U2,U1");
	list(fx->s, (const char *[]){ "sort", "status", NULL }, 5, "U1,U3,U2,U5,U4");
	list(fx->s, (const char *[]){ "sort", "ios", NULL }, 5, "U5,U3,U2,U4,U1");
	list(fx->s, (const char *[]){ "sort", "site", NULL }, 5, "U1,U2,U4,U3,U5");
	list(fx->s, (const char *[]){ "sort", "-last_seen", "limit", "2", NULL }, 5, "U3,U2");
	list(fx->s, (const char *[]){ "sort", "udid", "limit", "2", "offset", "2", NULL }, 5,
	     "U3,U4");
	list(fx->s, (const char *[]){ "sort", "udid", "offset", "5", NULL }, 5, "");
}

static void test_bad_params(void **state)
{
	static const char *const bad[][2] = {
		{ "status", "fine" },    { "status", "" },           { "status", "," },
		{ "cause", "Wifi" },     { "cause", "a b" },         { "ios_below", "x" },
		{ "ios_below", "17.a" }, { "ios_below", "1.2.3.4" }, { "ios_below", "0" },
		{ "sort", "colour" },    { "sort", "--age" },        { "limit", "0" },
		{ "limit", "1001" },     { "limit", "-1" },          { "offset", "x" },
		{ "q", "a\nb" },
	};
	struct query_devices q;
	char err[256], longv[300];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		query_devices_init(&q);
		err[0] = '\0';
		assert_int_equal(query_devices_param(&q, bad[i][0], bad[i][1], err, sizeof(err)),
		                 -EINVAL);
		if (strncmp(err, bad[i][0], strlen(bad[i][0])))
			fail_msg("%s=%s: message '%s' does not name the parameter", bad[i][0],
			         bad[i][1], err);
	}
	memset(longv, 'a', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = '\0';
	assert_int_equal(query_devices_param(&q, "site", longv, err, sizeof(err)), -EINVAL);
	assert_int_equal(query_devices_param(&q, "format", "csv", err, sizeof(err)), -ENOENT);
	assert_int_equal(query_devices_param(&q, "limit", "1000", err, sizeof(err)), 0);
	assert_int_equal(q.limit, 1000);
}

static void test_csv(void **state)
{
	struct fixture *fx = *state;
	struct query_devices q;
	char *buf = NULL, err[64];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	query_devices_init(&q);
	/* limit is ignored: the whole filter */
	assert_int_equal(query_devices_param(&q, "limit", "1", err, sizeof(err)), 0);
	assert_int_equal(query_devices_param(&q, "sort", "udid", err, sizeof(err)), 0);
	assert_int_equal(query_devices_csv(fx->s, &q, NOW, f), 0);
	fclose(f);
	assert_non_null(strstr(buf, "udid,serial,name,status,last_icloud,age_s,icloud_enabled,"
	                            "causes,agent,site,station,attached,last_seen,ios_version,"
	                            "product_type\r\n"));
	assert_non_null(strstr(buf, "\r\nU1,SN1,Alpha,ok,2033-05-17T03:33:20Z,86400,true,,st-a,"));
	assert_non_null(strstr(buf, "\r\nU3,SN3,Charlie,stale,,,false,icloud_off;wifi_off,st-b,"));
	/* quoted, quotes doubled, formula guarded */
	assert_non_null(strstr(buf, "\r\nU4,SN4,\"'=Delta, \"\"the\"\"\",missing,"));
	assert_non_null(strstr(buf, "\r\nU5,"));
	free(buf);
}

static void test_detail_history(void **state)
{
	struct fixture *fx = *state;
	cJSON *d, *h, *it;

	d = wire(query_device_detail_json(fx->s, "U2", NOW, true));
	assert_non_null(d);
	it = cJSON_GetArrayItem(cJSON_GetObjectItem(d, "cause_details"), 0);
	assert_string_equal(cJSON_GetObjectItem(it, "remediation")->valuestring, "r");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "commands_allowed")), 4);
	cJSON_Delete(d);
	/* agent meta allows one command; a viewer may send none */
	d = wire(query_device_detail_json(fx->s, "U5", NOW, true));
	it = cJSON_GetObjectItem(d, "commands_allowed");
	assert_int_equal(cJSON_GetArraySize(it), 1);
	assert_string_equal(cJSON_GetArrayItem(it, 0)->valuestring, "device.refresh");
	cJSON_Delete(d);
	d = wire(query_device_detail_json(fx->s, "U2", NOW, false));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(d, "commands_allowed")), 0);
	cJSON_Delete(d);
	assert_null(query_device_detail_json(fx->s, "nope", NOW, true));

	h = wire(query_history_json(fx->s, "U2", 50, 0));
	assert_int_equal(cJSON_GetObjectItem(h, "total")->valuedouble, 2);
	it = cJSON_GetArrayItem(cJSON_GetObjectItem(h, "history"), 0);
	assert_string_equal(cJSON_GetObjectItem(it, "summary")->valuestring, "second");
	assert_string_equal(cJSON_GetObjectItem(it, "ts")->valuestring, "2033-05-17T03:33:20.000Z");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(it, "detail")));
	cJSON_Delete(h);
	h = wire(query_history_json(fx->s, "U2", 1, 1));
	it = cJSON_GetArrayItem(cJSON_GetObjectItem(h, "history"), 0);
	assert_string_equal(cJSON_GetObjectItem(it, "summary")->valuestring, "first");
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(it, "detail"), "a")->valuedouble,
	                 1);
	cJSON_Delete(h);
	/* a known phone without history: empty; an unknown phone: NULL */
	h = wire(query_history_json(fx->s, "U4", 50, 0));
	assert_int_equal(cJSON_GetObjectItem(h, "total")->valuedouble, 0);
	cJSON_Delete(h);
	assert_null(query_history_json(fx->s, "nope", 50, 0));
}

static void test_agents_summary(void **state)
{
	struct fixture *fx = *state;
	cJSON *a, *s, *it;
	char agent[COMMAND_AGENT_MAX];
	bool attached, online;
	unsigned mask;

	a = query_agent_json(fx->s, "st-b", NOW);
	assert_non_null(a);
	assert_int_equal(cJSON_GetObjectItem(a, "phones_attached")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(a, "lost_messages")->valuedouble, 3);
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a, "online")));
	cJSON_Delete(a);
	a = query_agent_json(fx->s, "st-c", NOW);
	assert_string_equal(cJSON_GetObjectItem(a, "presence")->valuestring, "lost");
	assert_int_equal(cJSON_GetObjectItem(a, "phones_attached")->valuedouble, 0);
	cJSON_Delete(a);
	assert_null(query_agent_json(fx->s, "nope", NOW));
	a = query_agents_json(fx->s, NOW);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(a, "agents")), 3);
	cJSON_Delete(a);

	s = query_summary_json(fx->s, NOW);
	assert_non_null(s);
	assert_int_equal(cJSON_GetObjectItem(s, "total")->valuedouble, 5);
	it = cJSON_GetObjectItem(s, "by_status");
	assert_int_equal(cJSON_GetObjectItem(it, "ok")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(it, "stale")->valuedouble, 2);
	assert_int_equal(cJSON_GetObjectItem(it, "unknown")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(it, "missing")->valuedouble, 1);
	it = cJSON_GetObjectItem(s, "by_site");
	assert_int_equal(cJSON_GetArraySize(it), 2);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(it, 0), "site")->valuestring,
	                    "site-a");
	assert_true(cJSON_GetObjectItem(cJSON_GetArrayItem(it, 0), "share_ok")->valuedouble == 0.5);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(it, 1), "total")->valuedouble, 3);
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(s, "by_station")), 3);
	it = cJSON_GetObjectItem(s, "age_histogram");
	assert_int_equal(cJSON_GetArraySize(it), 6);
	/* 1d: "1-3d"; 5d: "3-7d"; 11d: "7-30d"; never: "never"; U5 (no facts) nowhere */
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(it, 0), "count")->valuedouble, 0);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(it, 1), "count")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(it, 2), "count")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(it, 3), "count")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(it, 5), "count")->valuedouble, 1);
	it = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "top_causes"), 0);
	assert_string_equal(cJSON_GetObjectItem(it, "code")->valuestring, "wifi_off");
	assert_int_equal(cJSON_GetObjectItem(it, "count")->valuedouble, 2);
	/* one sample within the week */
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(s, "stale_over_time")), 1);
	it = cJSON_GetObjectItem(s, "agents");
	assert_int_equal(cJSON_GetObjectItem(it, "online")->valuedouble, 2);
	assert_int_equal(cJSON_GetObjectItem(it, "offline")->valuedouble, 1);
	it = cJSON_GetObjectItem(s, "ingest");
	assert_int_equal(cJSON_GetObjectItem(it, "malformed")->valuedouble, 4);
	assert_int_equal(cJSON_GetObjectItem(it, "lost")->valuedouble, 3);
	cJSON_Delete(s);

	assert_int_equal(
	        query_device_route(fx->s, "U4", agent, sizeof(agent), &attached, &online, &mask),
	        0);
	assert_string_equal(agent, "st-b");
	assert_false(attached);
	assert_true(online);
	assert_int_equal(
	        query_device_route(fx->s, "U5", agent, sizeof(agent), &attached, &online, &mask),
	        0);
	assert_true(attached);
	assert_false(online);
	assert_int_equal(mask, 1u << COMMAND_DEVICE_REFRESH);
	assert_int_equal(
	        query_device_route(fx->s, "nope", agent, sizeof(agent), &attached, &online, &mask),
	        -ENOENT);
}

static void test_commands(void **state)
{
	struct fixture *fx = *state;
	cJSON *c, *r;

	/* case variants of the id find the same command */
	c = wire(query_command_json(fx->s, "6F1C2B1E-8A51-4C2E-9D0B-3E1F5A7C9B20"));
	assert_non_null(c);
	assert_string_equal(cJSON_GetObjectItem(c, "cmd_id")->valuestring, CMDID);
	assert_string_equal(cJSON_GetObjectItem(c, "status")->valuestring, "in_progress");
	assert_string_equal(cJSON_GetObjectItem(c, "sent_by")->valuestring, "alice");
	assert_string_equal(cJSON_GetObjectItem(c, "sent_at")->valuestring,
	                    "2033-05-18T03:33:20.000Z");
	r = cJSON_GetObjectItem(c, "results");
	assert_int_equal(cJSON_GetArraySize(r), 2);
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(r, 1), "status")->valuestring,
	                    "in_progress");
	cJSON_Delete(c);
	assert_null(query_command_json(fx->s, "not-a-uuid"));
	assert_null(query_command_json(fx->s, "00000000-0000-4000-8000-000000000000"));

	c = wire(query_device_commands_json(fx->s, "U1", 10));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c, "commands")), 1);
	cJSON_Delete(c);
	c = wire(query_device_commands_json(fx->s, "U2", 10));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(c, "commands")), 0);
	cJSON_Delete(c);
}

static void test_ios_key(void **state)
{
	int64_t k;

	(void)state;
	assert_int_equal(query_ios_key("17.4.1", &k), 0);
	assert_int_equal(k, 17004001);
	assert_int_equal(query_ios_key("16", &k), 0);
	assert_int_equal(k, 16000000);
	assert_int_equal(query_ios_key("1000", &k), -EINVAL);
	assert_int_equal(query_ios_key("17.", &k), -EINVAL);
	assert_int_equal(query_ios_key("", &k), -EINVAL);
}

/* Seen long ago: whether it is docked now decides, so the agent's presence is looked up. */
static void test_docked_lookup(void **state)
{
	struct fixture *fx = *state;
	char sql[1024];
	cJSON *d;

	snprintf(
	        sql, sizeof(sql),
	        "INSERT INTO devices(udid, serial, name, agent, site, station, attached, last_seen,"
	        " has_facts, last_icloud) VALUES"
	        " ('U6', 'SN6', 'Foxtrot', 'st-a', 'site-a', 'cart-1', 1, %lld, 1, %lld),"
	        " ('U7', 'SN7', 'Golf', 'st-c', 'site-b', 'cart-3', 1, %lld, 1, %lld);",
	        NOW - 10 * DAY, NOW - DAY, NOW - 10 * DAY, NOW - DAY);
	exec(fx->s, sql);
	/* docked at an online agent: not missing, whenever it was last seen */
	d = query_device_json(fx->s, "U6", NOW);
	assert_string_equal(cJSON_GetObjectItem(d, "status")->valuestring, "ok");
	assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "attached")));
	cJSON_Delete(d);
	/* attached at a lost agent: missing */
	d = query_device_json(fx->s, "U7", NOW);
	assert_string_equal(cJSON_GetObjectItem(d, "status")->valuestring, "missing");
	assert_true(cJSON_IsFalse(cJSON_GetObjectItem(d, "attached")));
	cJSON_Delete(d);
	list(fx->s, (const char *[]){ "status", "missing", "sort", "udid", NULL }, 2, "U4,U7");
	list(fx->s, (const char *[]){ "status", "ok", "sort", "udid", NULL }, 2, "U1,U6");
}

/* query_site_status(): one call per site with the judge's counts; and the metrics page over the
 * same store (metrics.c) carries them, with the agents by presence */
struct site_seen {
	int n;
	int64_t a[_JUDGE_STATUS_MAX], b[_JUDGE_STATUS_MAX];
};

static void site_cb(void *ctx, const char *site, const int64_t count[_JUDGE_STATUS_MAX])
{
	struct site_seen *seen = ctx;

	seen->n++;
	if (strcmp(site, "site-a") == 0)
		memcpy(seen->a, count, sizeof(seen->a));
	else if (strcmp(site, "site-b") == 0)
		memcpy(seen->b, count, sizeof(seen->b));
	else
		fail_msg("unexpected site '%s'", site);
}

static void test_site_status_metrics(void **state)
{
	struct fixture *fx = *state;
	struct site_seen seen = { 0 };
	char *page = NULL;
	size_t len = 0;

	assert_int_equal(query_site_status(fx->s, NOW, site_cb, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.a[JUDGE_OK], 1);
	assert_int_equal(seen.a[JUDGE_STALE], 1);
	assert_int_equal(seen.a[JUDGE_UNKNOWN] + seen.a[JUDGE_MISSING], 0);
	assert_int_equal(seen.b[JUDGE_OK], 0);
	assert_int_equal(seen.b[JUDGE_STALE], 1);
	assert_int_equal(seen.b[JUDGE_UNKNOWN], 1);
	assert_int_equal(seen.b[JUDGE_MISSING], 1);

	exec(fx->s,
	     "INSERT INTO alerts(rule, subject_kind, subject, state, fired_at) VALUES"
	     " ('backup_stale', 'udid', 'U2', 'firing', 1),"
	     " ('backup_stale', 'udid', 'U3', 'firing', 1),"
	     " ('backup_stale', 'udid', 'U1', 'resolved', 1),"
	     " ('agent_offline', 'agent', 'st-c', 'firing', 1);"
	     "INSERT INTO jobs(id, name, state, command, target_json, timeout_s, deadline_ms,"
	     " created_by, created_ms, updated_ms) VALUES"
	     " (1, 'j', 'in_progress', 'device.refresh', '{}', 60, 1, 'a', 1, 1);"
	     "INSERT INTO job_executions(job_id, udid, state, queued_ms, updated_ms) VALUES"
	     " (1, 'U1', 'succeeded', 1, 1), (1, 'U2', 'succeeded', 1, 1),"
	     " (1, 'U3', 'queued', 1, 1), (1, 'U4', 'timed_out', 1, 1);");
	assert_int_equal(metrics_render(fx->s, &fx->cfg, NOW, &page, &len), 0);
	assert_int_equal(strlen(page), len);
	assert_non_null(
	        strstr(page, "\ncradle_dashboard_phones{site=\"site-b\",status=\"missing\"} 1\n"));
	assert_non_null(
	        strstr(page, "\ncradle_dashboard_phones{site=\"site-a\",status=\"ok\"} 1\n"));
	assert_non_null(strstr(page, "\ncradle_dashboard_agents{presence=\"online\"} 2\n"));
	assert_non_null(strstr(page, "\ncradle_dashboard_agents{presence=\"lost\"} 1\n"));
	assert_non_null(
	        strstr(page, "\ncradle_dashboard_alerts_firing{rule=\"backup_stale\"} 2\n"));
	assert_non_null(
	        strstr(page, "\ncradle_dashboard_alerts_firing{rule=\"agent_offline\"} 1\n"));
	assert_non_null(
	        strstr(page, "\ncradle_dashboard_alerts_firing{rule=\"site_network\"} 0\n"));
	assert_non_null(strstr(page, "\ncradle_dashboard_job_executions{state=\"succeeded\"} 2\n"));
	assert_non_null(strstr(page, "\ncradle_dashboard_job_executions{state=\"queued\"} 1\n"));
	assert_non_null(strstr(page, "\ncradle_dashboard_job_executions{state=\"timed_out\"} 1\n"));
	assert_non_null(strstr(page, "\ncradle_dashboard_job_executions{state=\"failed\"} 0\n"));
	assert_non_null(strstr(page, "\n# TYPE cradle_dashboard_http_request_duration_seconds "
	                             "histogram\n"));
	assert_int_equal(page[len - 1], '\n');
	free(page);
}

/* ---- q: devices_fts (migration 6) against the plain scan ---- */

#define GEN_ROWS    3000
#define GEN_QUERIES 60
#define GEN_FIELD   96

static const char *const gen_words[] = {
	"iPhone",  "Émilie",  "ÉMILIE",      "émilie",     "Straße", "STRASSE",      "İstanbul",
	"Σίσυφος", "ΣΊΣΥΦΟΣ", "李的手机",    "📱Lab",       "Kelvin", "\xe2\x84\xaa", "100%",
	"50%_off", "a_b",     "back\\slash", "\"quoted\"", "it's",   "Bench",        "cart",
	"ÅSA",     "åsa",     "café",        "CAFÉ",       "x",      "ab",           "Q&A",
};

static uint32_t gen_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

struct gen_row {
	char udid[40], serial[16], name[GEN_FIELD];
};

static void gen_fields(uint32_t *x, int i, struct gen_row *r)
{
	static const char serial_chars[] = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789%_";
	size_t n = 0;

	snprintf(r->udid, sizeof(r->udid), "00008110-%08X%08X", gen_rand(x), (unsigned)i);
	r->serial[0] = 'F';
	for (int k = 1; k < 12; k++)
		r->serial[k] = serial_chars[gen_rand(x) % (sizeof(serial_chars) - 1)];
	r->serial[12] = '\0';
	r->name[0] = '\0';
	for (int w = 0, words = 1 + (int)(gen_rand(x) % 3); w < words; w++) {
		const char *word =
		        gen_words[gen_rand(x) % (sizeof(gen_words) / sizeof(gen_words[0]))];
		int c = snprintf(r->name + n, sizeof(r->name) - n, "%s%s", w ? " " : "", word);

		n += (size_t)c;
	}
	if (gen_rand(x) % 2)
		snprintf(r->name + n, sizeof(r->name) - n, " %u", gen_rand(x) % 1000);
}

/* Phones with generated serials, names and UDIDs, and every filter's inputs varied. */
static void gen_fill(struct store *s, uint32_t *x, int from, int count)
{
	static const char *const where[][3] = {
		{ "st-a", "site-a", "cart-1" },
		{ "st-b", "site-b", "cart-2" },
		{ "st-c", "site-b", "cart-3" },
	};
	static const char *const causes[] = { "", ",wifi_off,", ",icloud_off,wifi_off," };
	sqlite3_stmt *st;

	assert_int_equal(
	        sqlite3_prepare_v2(store_db(s),
	                           "INSERT INTO devices(udid, serial, name, agent, site, station,"
	                           " attached, last_seen, has_facts, last_icloud, cause_codes,"
	                           " ios_version, ios_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
	                           " ?9, ?10, ?11, '16.0', 16000000)",
	                           -1, &st, NULL),
	        SQLITE_OK);
	for (int i = from; i < from + count; i++) {
		struct gen_row r;
		int w = (int)(gen_rand(x) % 3);

		gen_fields(x, i, &r);
		sqlite3_bind_text(st, 1, r.udid, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 2, r.serial, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 3, r.name, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(st, 4, where[w][0], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, where[w][1], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 6, where[w][2], -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 7, (int)(gen_rand(x) % 2));
		sqlite3_bind_int64(st, 8, NOW - (int64_t)(gen_rand(x) % 12) * DAY);
		sqlite3_bind_int(st, 9, gen_rand(x) % 5 != 0);
		if (gen_rand(x) % 6)
			sqlite3_bind_int64(st, 10, NOW - (int64_t)(gen_rand(x) % (8 * DAY)));
		else
			sqlite3_bind_null(st, 10);
		sqlite3_bind_text(st, 11, causes[gen_rand(x) % 3], -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
}

/* Statements run that read devices_fts (sqlite3_trace_v2): which path a query took. */
static int fts_statements;

static int trace_fts(unsigned type, void *ctx, void *p, void *x)
{
	(void)type;
	(void)ctx;
	(void)p;
	if (strstr((const char *)x, "devices_fts"))
		fts_statements++;
	return 0;
}

/* Characters of t when it is valid UTF-8, else -1 (the index takes valid text only). */
static int gen_chars(const char *t)
{
	const unsigned char *p = (const unsigned char *)t;
	int n = 0;

	while (*p) {
		int len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : 4;

		if (*p >= 0x80 && (*p < 0xc2 || *p > 0xf4))
			return -1;
		for (int k = 1; k < len; k++)
			if ((p[k] & 0xc0) != 0x80)
				return -1;
		p += len;
		n++;
	}
	return n;
}

/* The documented rule, independently: a substring of serial, name or udid, ASCII letters
 * folded, every other byte as it is. Phones matching q in the store. */
static int64_t reference_count(struct store *s, const char *q)
{
	sqlite3_stmt *st;
	int64_t n = 0;

	assert_int_equal(sqlite3_prepare_v2(store_db(s), "SELECT serial, name, udid FROM devices",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		bool hit = false;

		for (int c = 0; c < 3 && !hit; c++) {
			char f[GEN_FIELD * 2];

			snprintf(f, sizeof(f), "%s", (const char *)sqlite3_column_text(st, c));
			for (char *p = f; *p; p++)
				if (*p >= 'A' && *p <= 'Z')
					*p = (char)(*p - 'A' + 'a');
			hit = strstr(f, q) != NULL;
		}
		n += hit;
	}
	sqlite3_finalize(st);
	return n;
}

static char *list_text(struct store *s, const struct query_devices *q)
{
	cJSON *r = query_devices_json(s, q, NOW);
	char *t;

	assert_non_null(r);
	t = cJSON_PrintUnformatted(r);
	assert_non_null(t);
	cJSON_Delete(r);
	return t;
}

static char *csv_text(struct store *s, const struct query_devices *q)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(query_devices_csv(s, q, NOW, f), 0);
	fclose(f);
	return buf;
}

struct each_buf {
	char *buf;
	size_t len;
	FILE *f;
};

static int each_cb(void *ctx, const char *udid, const char *agent, const char *site,
                   const char *station, bool docked)
{
	struct each_buf *b = ctx;

	fprintf(b->f, "%s %s %s %s %d\n", udid, agent, site, station, docked);
	return 0;
}

static char *each_text(struct store *s, const struct query_devices *q)
{
	struct each_buf b = { NULL, 0, NULL };

	b.f = open_memstream(&b.buf, &b.len);
	assert_non_null(b.f);
	assert_int_equal(query_devices_each(s, q, NOW, each_cb, &b), 0);
	fclose(b.f);
	return b.buf;
}

/*
 * q=text with each set of other parameters, through devices_fts and through the scan: the
 * same JSON (rows, order, total), CSV and job-target rows; the total of the unfiltered list
 * as the rule counts it; and the index asked exactly when the text has 3 characters or more.
 */
static void compare_paths(struct store *s, const char *text)
{
	static const char *const extra[][9] = {
		{ "limit", "50", NULL },
		{ "sort", "name", "limit", "7", "offset", "2", NULL },
		{ "status", "stale", "sort", "-serial", NULL },
		{ "site", "site-b", "sort", "status", "limit", "20", NULL },
		{ "cause", "wifi_off", "sort", "-udid", "limit", "1", "offset", "1", NULL },
		{ "agent", "st-a", "sort", "-age", "ios_below", "17", NULL },
	};
	int chars = gen_chars(text);

	for (size_t e = 0; e < sizeof(extra) / sizeof(extra[0]); e++) {
		struct query_devices a, b;
		char err[256], *ta, *tb;
		int before;

		query_devices_init(&a);
		assert_int_equal(query_devices_param(&a, "q", text, err, sizeof(err)), 0);
		for (int i = 0; extra[e][i]; i += 2)
			assert_int_equal(query_devices_param(&a, extra[e][i], extra[e][i + 1], err,
			                                     sizeof(err)),
			                 0);
		b = a;
		b.scan = true;
		before = fts_statements;
		ta = list_text(s, &a);
		if ((fts_statements > before) != (chars >= QUERY_SEARCH_INDEXED_MIN))
			fail_msg("q=%s (%d characters): index %s", text, chars,
			         fts_statements > before ? "used" : "not used");
		before = fts_statements;
		tb = list_text(s, &b);
		assert_int_equal(fts_statements, before);
		if (strcmp(ta, tb))
			fail_msg("q=%s with %s=%s: index %s\nscan %s", text, extra[e][0],
			         extra[e][1], ta, tb);
		if (e == 0 && chars >= 0) {
			cJSON *r = cJSON_Parse(ta);

			if (cJSON_GetObjectItem(r, "total")->valuedouble !=
			    (double)reference_count(s, a.q))
				fail_msg("q=%s: total %s, the rule counts %lld", text, ta,
				         (long long)reference_count(s, a.q));
			cJSON_Delete(r);
		}
		free(ta);
		free(tb);
		if (e == 1) {
			ta = csv_text(s, &a);
			tb = csv_text(s, &b);
			assert_string_equal(ta, tb);
			free(ta);
			free(tb);
		}
		if (e == 2 || e == 5) {
			ta = each_text(s, &a);
			tb = each_text(s, &b);
			assert_string_equal(ta, tb);
			free(ta);
			free(tb);
		}
	}
}

/* A piece of a stored field: mostly whole characters, sometimes cut inside one; case flipped. */
static void gen_query(struct store *s, uint32_t *x, char *out, size_t size)
{
	sqlite3_stmt *st;
	const char *f;
	size_t len, from, n;

	assert_int_equal(sqlite3_prepare_v2(store_db(s),
	                                    "SELECT serial, name, udid FROM devices"
	                                    " ORDER BY rowid LIMIT 1 OFFSET ?1",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_int(st, 1, (int)(gen_rand(x) % 1000));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	f = (const char *)sqlite3_column_text(st, (int)(gen_rand(x) % 3));
	len = strlen(f);
	from = len ? gen_rand(x) % len : 0;
	n = 1 + gen_rand(x) % 10;
	if (gen_rand(x) % 10) {
		while (from > 0 && (f[from] & 0xc0) == 0x80)
			from--;
		while (from + n < len && (f[from + n] & 0xc0) == 0x80)
			n++;
	}
	if (from + n > len)
		n = len - from;
	if (n == 0 || n >= size) {
		snprintf(out, size, "zz");
	} else {
		memcpy(out, f + from, n);
		out[n] = '\0';
	}
	for (char *p = out; *p; p++)
		if (*p >= 'a' && *p <= 'z' && gen_rand(x) % 2)
			*p = (char)(*p - 'a' + 'A');
	sqlite3_finalize(st);
}

static void fts_check(struct store *s)
{
	/* the index against the phones, the pending ones indexed as store_search_index() would
	 * (undone after: integrity-check needs every phone in the index) */
	exec(s,
	     "SAVEPOINT fts_check;"
	     "INSERT INTO devices_fts(rowid, serial, name, udid) SELECT d.rowid, d.serial, d.name,"
	     " d.udid FROM devices_fts_pending p JOIN devices d ON d.rowid = p.id;"
	     "INSERT INTO devices_fts(devices_fts, rank) VALUES ('integrity-check', 1);"
	     "ROLLBACK TO fts_check; RELEASE fts_check;");
}

static void test_search_index(void **state)
{
	static const char *const fixed[] = {
		"%",        "_",
		"\\",       "%_",
		"0%",       "%_o",
		"50%_",     "\"",
		"\"q",      "\"quoted\"",
		"it's",     "é",
		"É",        "émi",
		"ÉMI",      "Émilie",
		"ß",        "straße",
		"STRASSE",  "strass",
		"İst",      "i\xcc\x87st",
		"ist",      "kelvin",
		"k",        "\xe2\x84\xaa",
		"σίσ",      "ΣΊΣ",
		"Σίσυφος",  "李的",
		"李的手",   "📱",
		"📱l",       "📱Lab",
		"ab",       "a",
		"zzzz",     "8110-",
		"00008110", "f0",
		"bench",    "q&a",
		"a_b",      "a_c",
		"100%",     "back\\s",
		"\\s",      " 1",
		"  ",       "\xc3",
		"\xa9mi",   "\xe6\x9d",
		"é ",       "Å",
		"åsa",      "ÅSA",
	};
	struct fixture *fx = *state;
	uint32_t x = 0x2545f491u;
	char text[64];

	int64_t left = -1;

	/* two thirds indexed, the newest third still pending: the search reads both */
	gen_fill(fx->s, &x, 0, GEN_ROWS);
	assert_int_equal(store_search_index(fx->s, 2000, &left), 0);
	assert_int_equal(left, GEN_ROWS + 5 - 2000);
	fts_check(fx->s);
	sqlite3_trace_v2(store_db(fx->s), SQLITE_TRACE_STMT, trace_fts, NULL);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		compare_paths(fx->s, fixed[i]);
	for (int i = 0; i < GEN_QUERIES; i++) {
		gen_query(fx->s, &x, text, sizeof(text));
		compare_paths(fx->s, text);
	}

	/* the triggers: renamed, deleted, upserted and new phones, then the same comparison */
	for (int i = 0; i < 300; i++) {
		struct gen_row r;
		char sql[512];

		gen_fields(&x, i, &r);
		sqlite3_snprintf(sizeof(sql), sql,
		                 "UPDATE devices SET name = %Q, serial = CASE WHEN %d THEN %Q"
		                 " ELSE serial END WHERE rowid = %u",
		                 r.name, i % 2, r.serial, 1 + gen_rand(&x) % GEN_ROWS);
		exec(fx->s, sql);
	}
	exec(fx->s, "DELETE FROM devices WHERE rowid % 17 = 3");
	exec(fx->s,
	     "INSERT INTO devices(udid, serial, name, agent, last_seen)"
	     " SELECT udid, 'UPS' || serial, name, agent, last_seen FROM devices"
	     " WHERE rowid % 23 = 5 ON CONFLICT(udid) DO UPDATE SET serial = excluded.serial,"
	     " name = excluded.name");
	gen_fill(fx->s, &x, GEN_ROWS, 300);
	fts_check(fx->s);
	compare_paths(fx->s, "ups");
	assert_int_equal(store_search_index(fx->s, 400, &left), 0);
	assert_true(left > 0);
	fts_check(fx->s);
	compare_paths(fx->s, "ups");
	compare_paths(fx->s, "UPSF");
	for (int i = 0; i < GEN_QUERIES / 3; i++) {
		gen_query(fx->s, &x, text, sizeof(text));
		compare_paths(fx->s, text);
	}
	/* everything indexed: nothing left to read but the index */
	assert_int_equal(store_search_index(fx->s, 100000, &left), 0);
	assert_int_equal(left, 0);
	fts_check(fx->s);
	for (int i = 0; i < GEN_QUERIES / 3; i++) {
		gen_query(fx->s, &x, text, sizeof(text));
		compare_paths(fx->s, text);
	}
	for (size_t i = 0; i < 12; i++)
		compare_paths(fx->s, fixed[i * 4]);
	sqlite3_trace_v2(store_db(fx->s), 0, NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_and_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_filters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sort_and_pages, setup, teardown),
		cmocka_unit_test(test_bad_params),
		cmocka_unit_test_setup_teardown(test_csv, setup, teardown),
		cmocka_unit_test_setup_teardown(test_detail_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agents_summary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
		cmocka_unit_test(test_ios_key),
		cmocka_unit_test_setup_teardown(test_docked_lookup, setup, teardown),
		cmocka_unit_test_setup_teardown(test_site_status_metrics, setup, teardown),
		cmocka_unit_test_setup_teardown(test_search_index, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
