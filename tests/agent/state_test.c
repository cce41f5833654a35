/* SPDX-License-Identifier: MIT */
/* state: facts + diagnosis -> device-state message, and the events a state change implies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "state.h"
#include "timefmt.h"

static const char *examples_dir;

#define NOW 1764000000LL

static void facts(struct device_facts *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->udid, sizeof(f->udid), "00008110-001A2B3C4D5E801E");
	f->probed_at_ms = NOW * 1000 - 1500;
	f->probe = FACTS_PROBE_OK;
	snprintf(f->product_type, sizeof(f->product_type), "iPhone14,5");
	snprintf(f->ios_version, sizeof(f->ios_version), "15.7");
	snprintf(f->build, sizeof(f->build), "19H12");
	snprintf(f->serial, sizeof(f->serial), "F2LXK0QNPLJM");
	snprintf(f->device_name, sizeof(f->device_name), "Mia's iPhone");
	f->has_icloud_enabled = true;
	f->icloud_enabled = false;
	f->has_last_icloud = true;
	f->last_icloud_unix = NOW - 100 * 3600;
	f->has_last_local = false;
	f->has_will_encrypt = true;
	f->will_encrypt = true;
	f->has_battery = true;
	f->battery_pct = 77;
	f->external_connected = false;
	f->has_storage = true;
	f->total_bytes = 128000000000ULL;
	f->available_bytes = 5000000000ULL;
}

static void test_build(void **state)
{
	struct diagnose_config cfg;
	struct device_facts f;
	struct diagnosis dx;
	struct proto_device_state s;

	(void)state;
	diagnose_config_defaults(&cfg);
	snprintf(cfg.min_ios_version, sizeof(cfg.min_ios_version), "16.0");
	facts(&f);
	diagnose(&f, &cfg, NOW, &dx);
	state_build(&f, &dx, true, false, &s);
	assert_string_equal(s.udid, f.udid);
	assert_true(s.attached);
	assert_true(s.has_probed_at);
	assert_int_equal(s.probed_at, NOW - 2); /* ms truncated to the second */
	assert_string_equal(s.ios_version, "15.7");
	assert_false(s.has_name); /* not published by default: omitted */
	assert_int_equal(s.pairing, PROTO_PAIRING_PAIRED);
	assert_true(s.has_icloud_enabled && !s.icloud_enabled);
	assert_true(s.has_last_icloud);
	assert_int_equal(s.last_icloud, NOW - 100 * 3600);
	assert_false(s.has_last_local);
	assert_true(s.has_age);
	assert_int_equal(s.age_s, 100 * 3600);
	assert_true(s.has_battery_pct && s.has_external_connected && !s.external_connected);
	assert_int_equal(s.battery_pct, 77);
	assert_false(s.has_requires_encryption);
	assert_int_equal(s.available_bytes, 5000000000ULL);
	assert_int_equal(s.status, PROTO_STATUS_STALE);
	assert_int_equal(s.n_causes, 3);
	assert_string_equal(s.causes[0].code, "icloud_backup_disabled");
	assert_string_equal(s.causes[0].evidence, "CloudBackupEnabled=false");
	assert_string_equal(s.causes[0].complexity, "medium");
	assert_string_equal(s.causes[1].code, "ios_outdated");
	assert_string_equal(s.causes[1].complexity, "high");
	assert_string_equal(s.causes[2].code, "not_on_power");
	assert_string_equal(s.causes[2].remediation,
	                    diagnose_cause_remediation(CAUSE_NOT_ON_POWER));
	assert_int_equal(s.probe, PROTO_PROBE_OK);
	assert_string_equal(s.error, "");

	state_build(&f, &dx, true, true, &s);
	assert_true(s.has_name);
	assert_string_equal(s.name, "Mia's iPhone");

	/* unplug: attached false, the last known facts stay */
	state_build(&f, &dx, false, false, &s);
	assert_false(s.attached);
	assert_string_equal(s.product_type, "iPhone14,5");
	assert_int_equal(s.status, PROTO_STATUS_STALE);
}

static void test_build_unknown(void **state)
{
	struct device_facts f;
	struct diagnosis dx;
	struct proto_device_state s;
	struct diagnose_config cfg;

	(void)state;
	diagnose_config_defaults(&cfg);
	memset(&f, 0, sizeof(f));
	snprintf(f.udid, sizeof(f.udid), "SIM0001");
	f.probe = FACTS_PROBE_NOT_TRUSTED;
	f.pairing = FACTS_PAIRING_DENIED;
	snprintf(f.error_text, sizeof(f.error_text), "UserDeniedPairing");
	diagnose(&f, &cfg, NOW, &dx);
	state_build(&f, &dx, true, false, &s);
	assert_false(s.has_probed_at);
	assert_int_equal(s.pairing, PROTO_PAIRING_DENIED);
	assert_int_equal(s.probe, PROTO_PROBE_NOT_TRUSTED);
	assert_int_equal(s.status, PROTO_STATUS_UNKNOWN);
	assert_false(s.has_last_icloud || s.has_age || s.has_battery_pct || s.has_total_bytes);
	assert_string_equal(s.error, "UserDeniedPairing");
	assert_int_equal(s.n_causes, 1);
	assert_string_equal(s.causes[0].code, "not_trusted");
	/* out-of-range enums from a confused helper map to the least-wrong wire values */
	f.pairing = (enum facts_pairing)42;
	f.probe = (enum facts_probe)42;
	dx.status = (enum diagnose_status)42;
	state_build(&f, &dx, true, false, &s);
	assert_int_equal(s.pairing, PROTO_PAIRING_INVALID);
	assert_int_equal(s.probe, PROTO_PROBE_ERROR);
	assert_int_equal(s.status, PROTO_STATUS_UNKNOWN);
}

static void test_encode(void **state)
{
	struct device_facts f;
	struct diagnosis dx;
	struct proto_device_state back;
	struct state_ctx ctx = {
		.agent = "st-1", .session = 4, .seq = 99, .now_ms = NOW * 1000 + 5
	};
	char *a, *b, err[PROTO_ERR_MAX];

	(void)state;
	facts(&f);
	a = state_encode(&f, true, &ctx, &dx);
	b = state_encode(&f, true, &ctx, NULL);
	assert_non_null(a);
	assert_string_equal(a, b); /* deterministic: equal inputs, equal bytes */
	assert_int_equal(dx.status, DIAGNOSE_STALE);
	assert_int_equal(proto_device_state_decode(a, strlen(a), &back, err, sizeof(err)), 0);
	assert_string_equal(back.h.agent, "st-1");
	assert_int_equal(back.h.seq, 99);
	assert_int_equal(back.h.session, 4);
	assert_int_equal(back.h.ts_ms, NOW * 1000 + 5);
	/* default config (ctx.diag NULL): no minimum iOS, so no ios_outdated */
	assert_int_equal(back.n_causes, 2);
	assert_null(strstr(a, "\"name\""));
	assert_non_null(strstr(a, "\"ts\":\"2025-11-24T16:00:00.005Z\""));
	free(a);
	free(b);
}

static void test_same(void **state)
{
	struct diagnose_config cfg;
	struct device_facts f;
	struct diagnosis dx;
	struct proto_device_state a, b;

	(void)state;
	diagnose_config_defaults(&cfg);
	facts(&f);
	diagnose(&f, &cfg, NOW, &dx);
	state_build(&f, &dx, true, false, &a);
	a.h.seq = 1;
	/* a later probe: new seq, ts, probed_at and age, same findings */
	f.probed_at_ms += 900000;
	diagnose(&f, &cfg, NOW + 900, &dx);
	state_build(&f, &dx, true, false, &b);
	b.h.seq = 2;
	b.h.ts_ms = 5;
	assert_int_equal(state_same(&a, &b), 1);
	b.battery_pct = 78;
	assert_int_equal(state_same(&a, &b), 0);
	b.battery_pct = a.battery_pct;
	b.attached = false;
	assert_int_equal(state_same(&a, &b), 0);
	b.attached = true;
	snprintf(b.causes[0].evidence, sizeof(b.causes[0].evidence), "other");
	assert_int_equal(state_same(&a, &b), 0);
}

static void test_events(void **state)
{
	struct proto_device_state prev, cur;
	enum proto_event ev[STATE_EVENTS_MAX];

	(void)state;
	memset(&cur, 0, sizeof(cur));
	cur.status = PROTO_STATUS_OK;
	/* first sight, healthy: nothing to say */
	assert_int_equal(state_events(NULL, &cur, ev, STATE_EVENTS_MAX), 0);
	/* first sight, stale and trust pending */
	cur.status = PROTO_STATUS_STALE;
	assert_int_equal(state_events(NULL, &cur, ev, STATE_EVENTS_MAX), 1);
	assert_int_equal(ev[0], PROTO_EVENT_BACKUP_STALE);
	prev = cur;
	/* still stale: no repeat */
	assert_int_equal(state_events(&prev, &cur, ev, STATE_EVENTS_MAX), 0);
	/* recovered */
	cur.status = PROTO_STATUS_OK;
	assert_int_equal(state_events(&prev, &cur, ev, STATE_EVENTS_MAX), 1);
	assert_int_equal(ev[0], PROTO_EVENT_BACKUP_OK);
	/* unknown -> ok is not a recovery from stale */
	prev.status = PROTO_STATUS_UNKNOWN;
	assert_int_equal(state_events(&prev, &cur, ev, STATE_EVENTS_MAX), 0);
	/* trust prompt + probe failure, and the cap on the output */
	cur.pairing = PROTO_PAIRING_TRUST_PENDING;
	cur.probe = PROTO_PROBE_TIMEOUT;
	cur.status = PROTO_STATUS_STALE;
	prev.status = PROTO_STATUS_OK;
	assert_int_equal(state_events(&prev, &cur, ev, STATE_EVENTS_MAX), 3);
	assert_int_equal(ev[0], PROTO_EVENT_TRUST_PROMPT);
	assert_int_equal(ev[1], PROTO_EVENT_PROBE_FAILED);
	assert_int_equal(ev[2], PROTO_EVENT_BACKUP_STALE);
	assert_int_equal(state_events(&prev, &cur, ev, 1), 1);
	prev = cur;
	assert_int_equal(state_events(&prev, &cur, ev, STATE_EVENTS_MAX), 0);
	cur.pairing = PROTO_PAIRING_DENIED;
	cur.probe = PROTO_PROBE_NOT_TRUSTED;
	assert_int_equal(state_events(&prev, &cur, ev, STATE_EVENTS_MAX), 1);
	assert_int_equal(ev[0], PROTO_EVENT_PAIRING_DENIED);
	cur.pairing = PROTO_PAIRING_INVALID;
	assert_int_equal(state_events(&prev, &cur, ev, STATE_EVENTS_MAX), 1);
	assert_int_equal(ev[0], PROTO_EVENT_PAIRING_INVALID);
}

/* Parses an RFC 3339 literal of the golden files into Unix ms. */
static int64_t ms(const char *rfc3339, int frac_ms)
{
	int64_t t;

	assert_int_equal(timefmt_parse_rfc3339(rfc3339, &t), 0);
	return t * 1000 + frac_ms;
}

/* The agent's encoder output equals the golden file, member for member. */
static void assert_golden(const char *name, const char *json)
{
	char path[1024];
	cJSON *want, *got;
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", examples_dir, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	want = cJSON_Parse(buf);
	got = cJSON_Parse(json);
	assert_non_null(want);
	if (!cJSON_Compare(want, got, true))
		fail_msg("%s differs from the encoder output:\n%s", name, json);
	cJSON_Delete(want);
	cJSON_Delete(got);
	free(buf);
}

static void test_golden(void **state)
{
	struct diagnose_config cfg;
	struct device_facts f;
	struct state_ctx ctx = { .agent = "st-berlin-01", .session = 7, .diag = &cfg };
	char *json;

	(void)state;
	diagnose_config_defaults(&cfg);
	snprintf(cfg.min_ios_version, sizeof(cfg.min_ios_version), "16.0");

	/* examples/device_state.ok.json */
	memset(&f, 0, sizeof(f));
	snprintf(f.udid, sizeof(f.udid), "00008110-001A2B3C4D5E801E");
	f.probed_at_ms = ms("2026-11-25T21:00:02Z", 0);
	snprintf(f.product_type, sizeof(f.product_type), "iPhone14,5");
	snprintf(f.ios_version, sizeof(f.ios_version), "17.5.1");
	snprintf(f.build, sizeof(f.build), "21F90");
	snprintf(f.serial, sizeof(f.serial), "F2LXK0QNPLJM");
	snprintf(f.device_name, sizeof(f.device_name), "not published");
	f.has_icloud_enabled = f.icloud_enabled = true;
	f.has_last_icloud = true;
	f.last_icloud_unix = ms("2026-11-25T03:12:40Z", 0) / 1000;
	f.has_last_local = true;
	f.last_local_unix = ms("2026-10-01T09:00:00Z", 0) / 1000;
	f.has_will_encrypt = f.has_requires_encryption = true;
	f.has_battery = true;
	f.battery_pct = 80;
	f.external_connected = true;
	f.has_storage = true;
	f.total_bytes = 127989493760ULL;
	f.available_bytes = 41234563072ULL;
	ctx.seq = 2;
	ctx.now_ms = ms("2026-11-25T21:00:02Z", 345);
	json = state_encode(&f, true, &ctx, NULL);
	assert_golden("device_state.ok.json", json);
	free(json);

	/* examples/device_state.stale_multiple_causes.json */
	memset(&f, 0, sizeof(f));
	snprintf(f.udid, sizeof(f.udid), "00008030-001A2B3C4D5E6F70");
	f.probed_at_ms = ms("2026-11-25T21:00:02Z", 0);
	snprintf(f.product_type, sizeof(f.product_type), "iPhone12,8");
	snprintf(f.ios_version, sizeof(f.ios_version), "15.7");
	snprintf(f.build, sizeof(f.build), "19H12");
	snprintf(f.serial, sizeof(f.serial), "F17ZK0QAPLJN");
	f.has_icloud_enabled = f.icloud_enabled = true;
	f.has_last_icloud = true;
	f.last_icloud_unix = ms("2026-11-10T02:00:00Z", 0) / 1000;
	f.has_will_encrypt = f.has_requires_encryption = true;
	f.has_battery = true;
	f.battery_pct = 12;
	f.has_storage = true;
	f.total_bytes = 127989493760ULL;
	f.available_bytes = 41234563072ULL;
	snprintf(f.syslog[f.n_syslog++], FACTS_LINE_MAX, "%s",
	         "Nov 25 20:59:58 iPhone backupd[412] <Error>: Backup failed: Not enough iCloud "
	         "storage");
	snprintf(f.syslog[f.n_syslog++], FACTS_LINE_MAX, "%s",
	         "Nov 25 20:59:59 iPhone backupd[412] <Error>: Error Domain=NSURLErrorDomain "
	         "Code=-1009 \"The Internet connection appears to be offline.\"");
	ctx.seq = 5;
	ctx.now_ms = ms("2026-11-25T21:00:03Z", 1);
	f.probed_at_ms = ms("2026-11-25T21:00:02Z", 0);
	json = state_encode(&f, true, &ctx, NULL);
	/* the golden's age is counted to probed_at (21:00:02), the encoder counts to ts (21:00:03)
	 */
	{
		cJSON *o = cJSON_Parse(json);
		cJSON *b = cJSON_GetObjectItem(o, "backup");
		char *fixed;

		assert_int_equal(cJSON_GetObjectItem(b, "age_s")->valuedouble, 1364403);
		cJSON_ReplaceItemInObject(b, "age_s", cJSON_CreateNumber(1364402));
		fixed = cJSON_PrintUnformatted(o);
		assert_golden("device_state.stale_multiple_causes.json", fixed);
		free(fixed);
		cJSON_Delete(o);
	}
	free(json);
}

/* The agent's event for a state equals the golden event, details included. */
static void assert_golden_event(const char *name, enum proto_event e, struct device_facts *f,
                                int64_t seq, int64_t ts_ms)
{
	struct proto_device_state cur;
	struct proto_device_event ev;
	struct diagnose_config cfg;
	struct diagnosis dx;
	enum proto_event evs[STATE_EVENTS_MAX];
	char *json;

	diagnose_config_defaults(&cfg);
	diagnose(f, &cfg, ts_ms / 1000, &dx);
	state_build(f, &dx, true, false, &cur);
	assert_int_equal(state_events(NULL, &cur, evs, STATE_EVENTS_MAX) >= 1, 1);
	assert_int_equal(evs[0], e);
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.h.agent, sizeof(ev.h.agent), "st-berlin-01");
	ev.h.session = 7;
	ev.h.seq = seq;
	ev.h.ts_ms = ts_ms;
	ev.event = e;
	snprintf(ev.udid, sizeof(ev.udid), "%s", f->udid);
	state_event_details(e, f, &cur, &ev.details);
	json = proto_device_event_encode(&ev);
	assert_non_null(json);
	assert_golden(name, json);
	free(json);
}

static void test_event_details(void **state)
{
	struct proto_device_state cur;
	struct proto_event_details dt;
	struct device_facts f;

	(void)state;
	/* examples/device_event.trust_prompt.json */
	facts_init(&f, "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678");
	f.probed_at_ms = ms("2026-11-25T21:00:04Z", 0);
	f.pairing = FACTS_PAIRING_TRUST_PENDING;
	f.probe = FACTS_PROBE_NOT_TRUSTED;
	f.lockdown_error = -19;
	snprintf(f.error_text, sizeof(f.error_text), "trust dialog pending (-19)");
	assert_golden_event("device_event.trust_prompt.json", PROTO_EVENT_TRUST_PROMPT, &f, 14,
	                    ms("2026-11-25T21:00:04Z", 1));

	/* examples/device_event.probe_failed.json */
	facts_init(&f, "00008030-001A2B3C4D5E6F70");
	f.probed_at_ms = ms("2026-11-25T21:00:34Z", 0);
	f.probe = FACTS_PROBE_TIMEOUT;
	snprintf(f.error_text, sizeof(f.error_text), "probe deadline 30s passed");
	assert_golden_event("device_event.probe_failed.json", PROTO_EVENT_PROBE_FAILED, &f, 17,
	                    ms("2026-11-25T21:00:34Z", 0));

	/* backup_stale: the age and the cause codes in the diagnosis's order */
	memset(&cur, 0, sizeof(cur));
	cur.has_age = true;
	cur.age_s = 1328402;
	cur.n_causes = 2;
	snprintf(cur.causes[0].code, PROTO_CODE_MAX, "icloud_storage_full");
	snprintf(cur.causes[1].code, PROTO_CODE_MAX, "not_on_power");
	state_event_details(PROTO_EVENT_BACKUP_STALE, &f, &cur, &dt);
	assert_true(dt.has_age_s);
	assert_int_equal(dt.age_s, 1328402);
	assert_int_equal(dt.n_causes, 2);
	assert_string_equal(dt.causes[1], "not_on_power");
	assert_false(dt.has_probe);
	assert_false(dt.has_lockdown_error);
	/* backup_ok: when iCloud last backed up */
	cur.has_last_icloud = true;
	cur.last_icloud = 1764126312;
	state_event_details(PROTO_EVENT_BACKUP_OK, &f, &cur, &dt);
	assert_true(dt.has_last_icloud);
	assert_int_equal(dt.last_icloud, 1764126312);
	assert_int_equal(dt.n_causes, 0);
	/* a pairing event without a handshake error: no lockdown_error */
	f.lockdown_error = 0;
	state_event_details(PROTO_EVENT_PAIRING_INVALID, &f, &cur, &dt);
	assert_false(dt.has_lockdown_error);
	/* attached, detached: nothing */
	state_event_details(PROTO_EVENT_ATTACHED, &f, &cur, &dt);
	assert_false(dt.has_age_s || dt.has_last_icloud || dt.has_probe);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build),         cmocka_unit_test(test_build_unknown),
		cmocka_unit_test(test_encode),        cmocka_unit_test(test_events),
		cmocka_unit_test(test_golden),        cmocka_unit_test(test_same),
		cmocka_unit_test(test_event_details),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s EXAMPLES_DIR\n", argv[0]);
		return 2;
	}
	examples_dir = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
