/* SPDX-License-Identifier: MIT */
/*
 * proto codec: every golden example decodes and re-encodes to the same JSON (so the C codec and
 * the JSON Schemas describe the same contract), every negative fixture is rejected, and the
 * encoder turns hostile strings into valid JSON.
 * usage: test-proto-codec EXAMPLES_DIR INVALID_DIR
 */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#include "jsontext.h"
#include "proto.h"

static const char *examples_dir, *invalid_dir;

static char *read_file(const char *dir, const char *name, size_t *ret_len)
{
	char path[1024];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*ret_len = (size_t)n;
	return buf;
}

/* Decodes with the decoder for type, re-encodes; returns the decode result. */
static int decode_encode(enum proto_type t, const char *json, size_t len, char **ret_out, char *err)
{
	union {
		struct proto_agent_status s;
		struct proto_agent_meta m;
		struct proto_device_state d;
		struct proto_device_event e;
		struct proto_agent_event a;
	} *u = calloc(1, sizeof(*u));
	int r = -EINVAL;

	assert_non_null(u);
	*ret_out = NULL;
	switch (t) {
	case PROTO_AGENT_STATUS:
		r = proto_agent_status_decode(json, len, &u->s, err, PROTO_ERR_MAX);
		if (r == 0)
			*ret_out = proto_agent_status_encode(&u->s);
		break;
	case PROTO_AGENT_META:
		r = proto_agent_meta_decode(json, len, &u->m, err, PROTO_ERR_MAX);
		if (r == 0)
			*ret_out = proto_agent_meta_encode(&u->m);
		break;
	case PROTO_DEVICE_STATE:
		r = proto_device_state_decode(json, len, &u->d, err, PROTO_ERR_MAX);
		if (r == 0)
			*ret_out = proto_device_state_encode(&u->d);
		break;
	case PROTO_DEVICE_EVENT:
		r = proto_device_event_decode(json, len, &u->e, err, PROTO_ERR_MAX);
		if (r == 0)
			*ret_out = proto_device_event_encode(&u->e);
		break;
	case PROTO_AGENT_EVENT:
		r = proto_agent_event_decode(json, len, &u->a, err, PROTO_ERR_MAX);
		if (r == 0)
			*ret_out = proto_agent_event_encode(&u->a);
		break;
	default:
		break;
	}
	free(u);
	return r;
}

static bool is_json_file(const char *name)
{
	size_t n = strlen(name);

	return n > 5 && strcmp(name + n - 5, ".json") == 0;
}

static void test_golden_roundtrip(void **state)
{
	DIR *d = opendir(examples_dir);
	struct dirent *de;
	int n[_PROTO_TYPE_MAX] = { 0 }, t;

	(void)state;
	assert_non_null(d);
	while ((de = readdir(d))) {
		enum proto_type type;
		char err[PROTO_ERR_MAX], *json, *out;
		cJSON *a, *b;
		size_t len;
		int r;

		if (!is_json_file(de->d_name))
			continue;
		json = read_file(examples_dir, de->d_name, &len);
		r = proto_peek_type(json, len, &type);
		if (r == -ENOENT) { /* another module's message (commands) */
			free(json);
			continue;
		}
		if (r < 0)
			fail_msg("%s: peek %d", de->d_name, r);
		r = decode_encode(type, json, len, &out, err);
		if (r < 0)
			fail_msg("%s: decode %d: %s", de->d_name, r, err);
		assert_non_null(out);
		a = cJSON_Parse(json);
		b = cJSON_Parse(out);
		if (!cJSON_Compare(a, b, true))
			fail_msg("%s: re-encoded differs:\n%s", de->d_name, out);
		cJSON_Delete(a);
		cJSON_Delete(b);
		free(out);
		free(json);
		n[type]++;
	}
	closedir(d);
	for (t = 0; t < _PROTO_TYPE_MAX; t++)
		if (n[t] < 2)
			fail_msg("fewer than 2 golden examples of %s", proto_schema_name(t));
}

static void test_invalid_rejected(void **state)
{
	DIR *d = opendir(invalid_dir);
	struct dirent *de;
	int n = 0;

	(void)state;
	assert_non_null(d);
	while ((de = readdir(d))) {
		enum proto_type type;
		char err[PROTO_ERR_MAX] = "", *json, *out;
		size_t len;
		int r;

		if (!is_json_file(de->d_name))
			continue;
		n++;
		json = read_file(invalid_dir, de->d_name, &len);
		r = proto_peek_type(json, len, &type);
		if (r == 0) {
			r = decode_encode(type, json, len, &out, err);
			if (r >= 0)
				fail_msg("%s: accepted, re-encoded as %s", de->d_name, out);
			assert_true(err[0] != '\0');
		}
		assert_true(r < 0);
		free(json);
	}
	closedir(d);
	assert_true(n >= 30);
}

static void test_errors(void **state)
{
	struct proto_device_state s;
	char err[PROTO_ERR_MAX], *big;
	size_t n = PROTO_MAX_PAYLOAD + 1;

	(void)state;
	assert_int_equal(proto_device_state_decode("{", 1, &s, err, sizeof(err)), -EBADMSG);
	assert_int_equal(proto_device_state_decode("", 0, &s, err, sizeof(err)), -EBADMSG);
	assert_int_equal(proto_device_state_decode("[]", 2, &s, NULL, 0), -EBADMSG);
	assert_int_equal(proto_device_state_decode(NULL, 0, &s, NULL, 0), -EMSGSIZE);
	assert_int_equal(proto_device_state_decode("{}", 2, &s, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "'schema' must be a string");
	/* the length is honoured: trailing bytes past len are not read */
	assert_int_equal(proto_device_state_decode("{}garbage", 2, &s, NULL, 0), -EPROTO);
	/* a valid document padded past the cap is refused before parsing */
	big = malloc(n);
	assert_non_null(big);
	memset(big, ' ', n);
	big[0] = '{';
	big[n - 1] = '}';
	assert_int_equal(proto_device_state_decode(big, n, &s, err, sizeof(err)), -EMSGSIZE);
	free(big);
	/* nesting bombs are refused by cJSON's nesting limit, not by the stack */
	big = malloc(20001);
	assert_non_null(big);
	memset(big, '[', 20000);
	big[20000] = '\0';
	assert_int_equal(proto_device_state_decode(big, 20000, &s, NULL, 0), -EBADMSG);
	free(big);
}

static void fill_state(struct proto_device_state *s)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->h.agent, sizeof(s->h.agent), "st-1");
	s->h.seq = 42;
	s->h.session = 3;
	s->h.ts_ms = 1764000000123LL;
	snprintf(s->udid, sizeof(s->udid), "00008110-001A2B3C4D5E801E");
	s->attached = true;
	s->status = PROTO_STATUS_UNKNOWN;
	s->probe = PROTO_PROBE_GONE;
}

static void test_nulls(void **state)
{
	struct proto_device_state s, back;
	char *json, err[PROTO_ERR_MAX];
	cJSON *o;

	(void)state;
	fill_state(&s);
	json = proto_device_state_encode(&s);
	assert_non_null(json);
	o = cJSON_Parse(json);
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "probed_at")));
	assert_true(
	        cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "backup"), "last_icloud")));
	assert_true(
	        cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "power"), "battery_pct")));
	assert_true(cJSON_IsNull(
	        cJSON_GetObjectItem(cJSON_GetObjectItem(o, "device"), "product_type")));
	/* name omitted, not null, when not published */
	assert_null(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "device"), "name"));
	assert_string_equal(cJSON_GetObjectItem(o, "ts")->valuestring, "2025-11-24T16:00:00.123Z");
	cJSON_Delete(o);
	assert_int_equal(proto_device_state_decode(json, strlen(json), &back, err, sizeof(err)), 0);
	assert_false(back.has_last_icloud || back.has_battery_pct || back.has_probed_at ||
	             back.has_name || back.has_age);
	assert_int_equal(back.h.ts_ms, 1764000000123LL);
	assert_int_equal(back.h.seq, 42);
	assert_int_equal(back.probe, PROTO_PROBE_GONE);
	free(json);

	s.has_name = true; /* published but unknown: null */
	json = proto_device_state_encode(&s);
	assert_non_null(strstr(json, "\"name\":null"));
	free(json);
}

static void test_hostile_strings(void **state)
{
	struct proto_device_state s, back;
	char *json, err[PROTO_ERR_MAX];

	(void)state;
	fill_state(&s);
	s.n_causes = 1;
	snprintf(s.causes[0].code, sizeof(s.causes[0].code), "network_unavailable");
	snprintf(s.causes[0].complexity, sizeof(s.causes[0].complexity), "low");
	snprintf(s.causes[0].evidence, sizeof(s.causes[0].evidence),
	         "backupd:\t\x01\x1b[31m bad \xff\xc0\xaf utf8 \xed\xa0\x80 \"quoted\" \\ ok é");
	memset(s.error, 'x', sizeof(s.error));                            /* unterminated */
	snprintf(s.ios_version, sizeof(s.ios_version), "%s", "\xe2\x82"); /* cut sequence */
	json = proto_device_state_encode(&s);
	assert_non_null(json);
	assert_int_equal(proto_device_state_decode(json, strlen(json), &back, err, sizeof(err)), 0);
	assert_string_equal(back.causes[0].evidence,
	                    "backupd: ??[31m bad ??? utf8 ??? \"quoted\" \\ ok é");
	assert_int_equal(strlen(back.error), sizeof(s.error) - 1);
	assert_string_equal(back.ios_version, "??");
	free(json);

	/* an invalid code or complexity never reaches the wire */
	snprintf(s.causes[0].code, sizeof(s.causes[0].code), "Bad Code");
	snprintf(s.causes[0].complexity, sizeof(s.causes[0].complexity), "huge");
	s.pairing = (enum proto_pairing)99;
	s.status = (enum proto_status) - 1;
	json = proto_device_state_encode(&s);
	assert_int_equal(proto_device_state_decode(json, strlen(json), &back, err, sizeof(err)), 0);
	assert_string_equal(back.causes[0].code, "unknown");
	assert_string_equal(back.causes[0].complexity, "none");
	free(json);
}

static void test_text_copy(void **state)
{
	char buf[8];

	(void)state;
	assert_string_equal(proto_text_copy(buf, sizeof(buf), "abcdefghij"), "abcdefg");
	/* "abcdeé" is 7 bytes: fits; "abcdefé" would need 8+NUL: é is dropped whole */
	assert_string_equal(proto_text_copy(buf, sizeof(buf), "abcdeé"), "abcdeé");
	assert_string_equal(proto_text_copy(buf, sizeof(buf), "abcdefé"), "abcdef");
	assert_string_equal(proto_text_copy(buf, sizeof(buf), NULL), "");
	assert_string_equal(proto_text_copy(buf, sizeof(buf), "\xf0\x9f\x98\x80"),
	                    "\xf0\x9f\x98\x80");
	assert_string_equal(proto_text_copy(buf, sizeof(buf), "\xf4\x90\x80\x80"), "????");
	assert_string_equal(proto_text_copy(buf, sizeof(buf), "a\x7f\n"), "a??");
	assert_true(proto_code_valid("not_on_power"));
	assert_false(proto_code_valid("Not"));
	assert_false(proto_code_valid("a-b"));
	assert_false(proto_code_valid(""));
	assert_false(proto_code_valid("a234567890123456789012345678901234"));
}

static void test_status_will(void **state)
{
	struct proto_agent_status st, back;
	char *json, err[PROTO_ERR_MAX];

	(void)state;
	memset(&st, 0, sizeof(st));
	snprintf(st.h.agent, sizeof(st.h.agent), "st-1");
	st.h.session = 9;
	st.h.seq = 100;
	st.is_will = true;
	st.online = true; /* ignored: a will is always offline */
	json = proto_agent_status_encode(&st);
	assert_string_equal(json, "{\"schema\":\"cradle.agent_status.v1\",\"agent\":\"st-1\","
	                          "\"session\":9,\"online\":false}");
	assert_int_equal(proto_agent_status_decode(json, strlen(json), &back, err, sizeof(err)), 0);
	assert_true(back.is_will);
	assert_false(back.online);
	assert_int_equal(back.h.session, 9);
	assert_int_equal(back.h.seq, -1);
	free(json);
}

static void test_event(void **state)
{
	struct proto_device_event ev, back;
	char *json, err[PROTO_ERR_MAX];
	enum proto_event e;

	(void)state;
	memset(&ev, 0, sizeof(ev));
	snprintf(ev.h.agent, sizeof(ev.h.agent), "st-1");
	ev.h.session = 7;
	ev.h.seq = 15;
	ev.h.ts_ms = 1000;
	ev.event = PROTO_EVENT_BACKUP_STALE;
	snprintf(ev.udid, sizeof(ev.udid), "SIM0001");
	ev.details.has_age_s = true;
	ev.details.age_s = 5;
	ev.details.n_causes = 2;
	snprintf(ev.details.causes[0], PROTO_CODE_MAX, "not_on_power");
	snprintf(ev.details.causes[1], PROTO_CODE_MAX, "Bad Code");
	json = proto_device_event_encode(&ev);
	assert_non_null(strstr(json, "\"details\":{\"age_s\":5,\"causes\":[\"not_on_power\","
	                             "\"unknown\"]}"));
	assert_int_equal(proto_device_event_decode(json, strlen(json), &back, err, sizeof(err)), 0);
	assert_string_equal(back.event_id, "7-15");
	assert_true(back.details.has_age_s);
	assert_int_equal(back.details.age_s, 5);
	assert_int_equal(back.details.n_causes, 2);
	assert_string_equal(back.details.causes[1], "unknown");
	assert_false(back.details.has_probe);
	assert_int_equal(back.event, PROTO_EVENT_BACKUP_STALE);
	free(json);
	/* nothing set: an empty object */
	memset(&ev.details, 0, sizeof(ev.details));
	json = proto_device_event_encode(&ev);
	assert_non_null(strstr(json, "\"details\":{}"));
	free(json);
	/* every member once, and back */
	snprintf(ev.details.kind, sizeof(ev.details.kind), "local");
	snprintf(ev.details.cmd_id, sizeof(ev.details.cmd_id),
	         "0b9a1f5e-3c1d-4b7a-9d7e-2f1c3a4b5c6d");
	ev.details.has_bytes = true;
	ev.details.bytes = 5368709120ULL;
	snprintf(ev.details.cause, sizeof(ev.details.cause), "passcode_required");
	ev.details.has_lockdown_error = true;
	ev.details.lockdown_error = -19;
	ev.details.has_last_icloud = true;
	ev.details.last_icloud = 1764126312;
	ev.details.has_probe = true;
	ev.details.probe = PROTO_PROBE_TIMEOUT;
	snprintf(ev.details.error, sizeof(ev.details.error), "line\nbreak");
	json = proto_device_event_encode(&ev);
	assert_non_null(strstr(json, "\"last_icloud\":\"2025-11-26T03:05:12Z\""));
	assert_non_null(strstr(json, "\"error\":\"line?break\""));
	assert_int_equal(proto_device_event_decode(json, strlen(json), &back, err, sizeof(err)), 0);
	assert_string_equal(back.details.kind, "local");
	assert_string_equal(back.details.cmd_id, ev.details.cmd_id);
	assert_true(back.details.has_bytes);
	assert_true(back.details.bytes == 5368709120ULL);
	assert_string_equal(back.details.cause, "passcode_required");
	assert_int_equal(back.details.lockdown_error, -19);
	assert_int_equal(back.details.last_icloud, 1764126312);
	assert_int_equal(back.details.probe, PROTO_PROBE_TIMEOUT);
	assert_string_equal(back.details.error, "line?break");
	free(json);
	for (e = 0; e < _PROTO_EVENT_MAX; e++) {
		enum proto_event got;

		assert_int_equal(proto_event_from_name(proto_event_name(e), &got), 0);
		assert_int_equal(got, e);
	}
	assert_int_equal(proto_event_from_name("nope", &e), -EINVAL);
	assert_null(proto_event_name(_PROTO_EVENT_MAX));
}

/* agent events: typed details survive the round trip; hostile text is cleaned; bad kinds refused */
static void test_agent_event(void **state)
{
	static const char other[] = "{\"schema\":\"cradle.device_event.v1\"}";
	struct proto_agent_event ev, back;
	enum proto_agent_event_kind k;
	char *json, err[PROTO_ERR_MAX];

	(void)state;
	for (k = 0; k < _PROTO_AGENT_EVENT_MAX; k++) {
		enum proto_agent_event_kind got;

		memset(&ev, 0, sizeof(ev));
		snprintf(ev.h.agent, sizeof(ev.h.agent), "st-1");
		ev.h.session = 3;
		ev.h.seq = 40 + k;
		ev.h.ts_ms = 1764000000123LL;
		ev.event = k;
		snprintf(ev.security.reason, sizeof(ev.security.reason), "bad_signature");
		ev.security.count = 4817;
		ev.security.first_at = 1764000000;
		ev.security.last_at = 1764000059;
		ev.security.interval_s = 60;
		snprintf(ev.security.detail, sizeof(ev.security.detail), "key \"k1\"\x01\xff");
		ev.usbmuxd.devices = 14;
		ev.usbmuxd.down_s = 32;
		snprintf(ev.disk.path, sizeof(ev.disk.path), "/var/lib/cradle-agent");
		ev.disk.free_bytes = 5ULL << 30;
		ev.disk.total_bytes = 64ULL << 30;
		ev.disk.floor_bytes = 2ULL << 30;
		ev.outbox.dropped = 7;
		ev.outbox.superseded = 2;
		ev.outbox.records = 16;
		ev.outbox.bytes = 9000;
		ev.outbox.max_records = 16;
		ev.outbox.max_bytes = 65536;
		ev.disk.best_effort = 12;
		ev.damage.lost_records = 1;
		ev.damage.first_seq = ev.damage.last_seq = 13;
		ev.damage.bytes_skipped = 67;
		json = proto_agent_event_encode(&ev);
		assert_non_null(json);
		if (proto_agent_event_decode(json, strlen(json), &back, err, sizeof(err)) < 0)
			fail_msg("%s: %s", json, err);
		assert_int_equal(back.event, k);
		assert_string_equal(back.event_id, k == 0 ? "3-40" : back.event_id);
		assert_int_equal(back.h.seq, 40 + k);
		switch (k) {
		case PROTO_AGENT_EVENT_SECURITY_REJECTED:
			assert_string_equal(back.security.reason, "bad_signature");
			assert_int_equal(back.security.count, 4817);
			assert_int_equal(back.security.last_at, 1764000059);
			assert_string_equal(back.security.detail, "key \"k1\"??");
			break;
		case PROTO_AGENT_EVENT_USBMUXD_LOST:
			assert_int_equal(back.usbmuxd.devices, 14);
			assert_int_equal(back.usbmuxd.down_s, 0); /* not part of "lost" */
			break;
		case PROTO_AGENT_EVENT_USBMUXD_BACK:
			assert_int_equal(back.usbmuxd.down_s, 32);
			break;
		case PROTO_AGENT_EVENT_DISK_LOW:
		case PROTO_AGENT_EVENT_DISK_OK:
			assert_string_equal(back.disk.path, "/var/lib/cradle-agent");
			assert_true(back.disk.free_bytes == 5ULL << 30);
			assert_true(back.disk.floor_bytes == 2ULL << 30);
			assert_int_equal(back.disk.best_effort, 12);
			break;
		case PROTO_AGENT_EVENT_OUTBOX_DAMAGED:
			assert_int_equal(back.damage.lost_records, 1);
			assert_int_equal(back.damage.first_seq, 13);
			assert_int_equal(back.damage.bytes_skipped, 67);
			assert_false(back.damage.empty);
			break;
		default:
			assert_int_equal(back.outbox.dropped, 7);
			assert_int_equal(back.outbox.max_bytes, 65536);
			break;
		}
		/* only the details of the event itself go on the wire */
		assert_true(!strstr(json, "down_s") || k == PROTO_AGENT_EVENT_USBMUXD_BACK);
		assert_true(!strstr(json, "reason") || k == PROTO_AGENT_EVENT_SECURITY_REJECTED);
		free(json);
		assert_int_equal(proto_agent_event_from_name(proto_agent_event_name(k), &got), 0);
		assert_int_equal(got, k);
	}
	/* a reason that is not a code is sent as "unknown" rather than breaking the schema */
	ev.event = PROTO_AGENT_EVENT_SECURITY_REJECTED;
	snprintf(ev.security.reason, sizeof(ev.security.reason), "Bad Reason/+");
	ev.security.count = 0;
	json = proto_agent_event_encode(&ev);
	assert_int_equal(proto_agent_event_decode(json, strlen(json), &back, err, sizeof(err)), 0);
	assert_string_equal(back.security.reason, "unknown");
	assert_int_equal(back.security.count, 1);
	free(json);
	ev.event = _PROTO_AGENT_EVENT_MAX;
	assert_null(proto_agent_event_encode(&ev));
	assert_null(proto_agent_event_name(_PROTO_AGENT_EVENT_MAX));
	assert_int_equal(proto_agent_event_from_name("nope", &k), -EINVAL);
	/* a device event is not an agent event */
	assert_int_equal(
	        proto_agent_event_decode(other, sizeof(other) - 1, &back, err, sizeof(err)),
	        -EPROTO);
}

/* The shared check itself: every spelling of a NUL, and the texts that only look like one. */
static void test_jsontext(void **state)
{
	static const struct {
		const char *text;
		int r;
	} cases[] = {
		{ "\"a\\u0000b\"", -EBADMSG },        /* "a\u0000b" */
		{ "\"\\u0000\"", -EBADMSG },          /* the whole string */
		{ "\"\\\\\\u0000\"", -EBADMSG },      /* \\ then \u0000 */
		{ "{\"k\\u0000\":1}", -EBADMSG },     /* in a member name */
		{ "\"\\\\u0000\"", 0 },               /* an escaped backslash, then text */
		{ "\"\\\\\\\\u0000\"", 0 },           /* two escaped backslashes, then text */
		{ "\"\\u00001\"", -EBADMSG },         /* the escape, then a digit */
		{ "\"\\u0001 \\u0100 \\u1000\"", 0 }, /* other code points are fine */
		{ "\"\\u000\"", 0 },                  /* too short to be one (cJSON refuses it) */
		{ "\"\\\"u0000\"", 0 },               /* \" then text */
		{ "", 0 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (jsontext_check_nul(cases[i].text, strlen(cases[i].text)) != cases[i].r)
			fail_msg("jsontext_check_nul(%s) != %d", cases[i].text, cases[i].r);
	assert_int_equal(jsontext_check_nul("\"a\0b\"", 5), -EBADMSG); /* a raw NUL */
	assert_int_equal(jsontext_check_nul("\"ab\"\0", 4), 0);        /* len is the bound */
	assert_int_equal(jsontext_check_nul("\\u0000", 5), 0);         /* cut before the end */
	assert_int_equal(jsontext_check_nul(NULL, 0), 0);
	assert_int_equal(jsontext_check_nul(NULL, 1), -EINVAL);
}

/*
 * Every proto decoder refuses a NUL: the fixtures tests/proto/invalid/ *_nul_escape.json (udid,
 * agent, schema, event_id, event; the JSON Schema refuses them too) for this reason and no
 * other, and a free-text member the schema cannot refuse (meta's site), and a raw NUL byte.
 */
static void test_nul_escape(void **state)
{
	static const char *const fixtures[] = {
		"state_udid_nul_escape.json",        "event_agent_nul_escape.json",
		"status_schema_nul_escape.json",     "event_event_id_nul_escape.json",
		"agent_event_event_nul_escape.json",
	};
	struct proto_agent_meta *meta = calloc(1, sizeof(*meta));
	char err[PROTO_ERR_MAX], *json, *at, *out;
	enum proto_type type;
	size_t i, len;

	(void)state;
	assert_non_null(meta);
	for (i = 0; i < sizeof(fixtures) / sizeof(fixtures[0]); i++) {
		json = read_file(invalid_dir, fixtures[i], &len);
		assert_int_equal(proto_peek_type(json, len, &type), -EBADMSG);
		/* the same bytes through each decoder (the schema member names one of them) */
		for (type = 0; type < _PROTO_TYPE_MAX; type++) {
			err[0] = '\0';
			assert_int_equal(decode_encode(type, json, len, &out, err), -EBADMSG);
			assert_string_equal(err, JSONTEXT_NUL_ERR);
		}
		free(json);
	}

	json = read_file(examples_dir, "agent_meta.json", &len);
	assert_int_equal(proto_agent_meta_decode(json, len, meta, err, sizeof(err)), 0);
	at = strstr(json, "\"berlin-hq\"");
	assert_non_null(at);
	memcpy(at + 1, "\\u0000hq", 8); /* "berlin-hq" -> "\u0000hq-hq", same length */
	assert_int_equal(proto_agent_meta_decode(json, len, meta, err, sizeof(err)), -EBADMSG);
	at[1] = '\0'; /* a raw NUL byte inside the string */
	assert_int_equal(proto_agent_meta_decode(json, len, meta, err, sizeof(err)), -EBADMSG);
	free(json);
	free(meta);
}

/* forward compatibility: members a later v1 adds are ignored, not rejected */
static void test_unknown_members(void **state)
{
	static const char json[] =
	        "{\"schema\":\"cradle.device_event.v1\",\"agent\":\"st-1\",\"session\":1,"
	        "\"seq\":2,\"ts\":\"2026-01-01T00:00:00Z\",\"event\":\"attached\",\"udid\":\"U1\","
	        "\"event_id\":\"1-2\",\"details\":{},\"future\":{\"x\":[1,2,3]},\"hint\":null}";
	struct proto_device_event ev;
	enum proto_type t;

	(void)state;
	assert_int_equal(proto_device_event_decode(json, sizeof(json) - 1, &ev, NULL, 0), 0);
	assert_int_equal(ev.h.ts_ms, 1767225600000LL);
	assert_int_equal(proto_peek_type(json, sizeof(json) - 1, &t), 0);
	assert_int_equal(t, PROTO_DEVICE_EVENT);
	assert_int_equal(proto_peek_type("{\"schema\":\"cradle.command.v1\"}", 30, &t), -ENOENT);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden_roundtrip), cmocka_unit_test(test_invalid_rejected),
		cmocka_unit_test(test_errors),           cmocka_unit_test(test_nulls),
		cmocka_unit_test(test_hostile_strings),  cmocka_unit_test(test_text_copy),
		cmocka_unit_test(test_status_will),      cmocka_unit_test(test_event),
		cmocka_unit_test(test_unknown_members),  cmocka_unit_test(test_agent_event),
		cmocka_unit_test(test_jsontext),         cmocka_unit_test(test_nul_escape),
	};

	if (argc != 3) {
		fprintf(stderr, "usage: %s EXAMPLES_DIR INVALID_DIR\n", argv[0]);
		return 2;
	}
	examples_dir = argv[1];
	invalid_dir = argv[2];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
