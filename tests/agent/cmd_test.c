/* SPDX-License-Identifier: MIT */
/*
 * Tests of the command intake (agent/cmd.c): every rejection reason, the order of the checks
 * (the first failing check wins), replay across a restart, and the rate limits. The clock is
 * driven by the tests (monotonic and wall time are parameters of cmd_check()). The tests of the
 * later checks run with require_signed off (unsigned commands pass the signature check); the
 * signature tests at the end turn it on.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "cmd.h"
#include "cmdtable.h"
#include "command.h"
#include "log.h"
#include "macro.h"

#define AGENT "station-07"
#define UDID  "00008110-001A2B3C4D5E801E"
#define UDID2 "00008030-000A1B2C3D4E5F60"
#define ID1   "6f1c2b1e-8a51-4c2e-9d0b-3e1f5a7c9b20"
/* 2026-01-15T02:00:00Z */
#define T0_S 1768442400LL
#define T0   (T0_S * 1000)

struct fixture {
	char dir[64];
	char path[128];
	struct cmdtable *table;
	struct cmd *cmd;
	struct cmd_config cfg;
	int next_id;
	struct cmdsig_signer *a, *b; /* signature tests: a is trusted, b is not */
};

static bool known_device(const char *udid, void *userdata)
{
	(void)userdata;
	return strcmp(udid, UDID) == 0 || strcmp(udid, UDID2) == 0;
}

static int open_all(struct fixture *f)
{
	if (cmdtable_open(f->path, 1000, 48LL * 3600 * 1000, T0, &f->table) < 0)
		return -1;
	return cmd_new(&f->cfg, f->table, known_device, NULL, &f->cmd);
}

/* signed: signatures required, key a trusted (b generated but not trusted); else unsigned
 * commands pass the signature check, for the tests of the later checks. */
static int setup_with(void **state, bool signed_)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cmd-test-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/cmdtable", f->dir);
	cmd_config_defaults(&f->cfg);
	snprintf(f->cfg.agent, sizeof(f->cfg.agent), "%s", AGENT);
	f->cfg.require_signed = signed_;
	/* the global budgets have their own test; the others drive time back and forth */
	f->cfg.intake_per_s = 0;
	f->cfg.answers_per_s = 0;
	if (signed_) {
		if (cmdsig_signer_generate(&f->a) < 0 || cmdsig_signer_generate(&f->b) < 0)
			return -1;
		f->cfg.keys[0] = *cmdsig_signer_pubkey(f->a);
		f->cfg.n_keys = 1;
	}
	*state = f;
	return open_all(f);
}

static int setup(void **state)
{
	return setup_with(state, false);
}

static int setup_signed(void **state)
{
	return setup_with(state, true);
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[160];

	cmd_free(f->cmd);
	cmdtable_free(f->table);
	cmdsig_signer_free(f->a);
	cmdsig_signer_free(f->b);
	unlink(f->path);
	snprintf(p, sizeof(p), "%s.guard", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s.tmp", f->path);
	unlink(p);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A unique cmd_id per call. */
static void new_id(struct fixture *f, char *id)
{
	snprintf(id, COMMAND_ID_MAX, "00000000-0000-4000-8000-%012d", ++f->next_id);
}

/* A valid command payload; ttl in seconds from T0. */
static char *payload(const char *id, const char *name, const char *udid, const char *params,
                     int ttl_s)
{
	char issued[40], expires[40], *s = NULL;

	snprintf(issued, sizeof(issued), "2026-01-15T02:00:00Z");
	snprintf(expires, sizeof(expires), "2026-01-15T%02d:%02d:%02dZ", 2 + ttl_s / 3600,
	         ttl_s / 60 % 60, ttl_s % 60);
	assert_true(asprintf(&s,
	                     "{\"schema\":\"cradle.command.v1\",\"cmd_id\":\"%s\",\"agent\":\"%s\","
	                     "\"udid\":\"%s\",\"name\":\"%s\",\"params\":%s,"
	                     "\"issued_at\":\"%s\",\"expires_at\":\"%s\"}",
	                     id, AGENT, udid, name, params, issued, expires) > 0);
	return s;
}

static struct cmd_message msg_of(const char *s)
{
	struct cmd_message m = {
		.payload = s, .len = strlen(s), .expiry_s = -1, .received_ms = 1000
	};
	return m;
}

/* Runs cmd_check on text at T0 (+ dt ms on both clocks). */
static enum command_reject check_at(struct fixture *f, const char *s, int64_t dt,
                                    struct cmd_decision *d)
{
	struct cmd_message m = msg_of(s);

	cmd_check(f->cmd, &m, 1000 + (uint64_t)dt, T0 + dt, d);
	return d->reason;
}

static enum command_reject check(struct fixture *f, const char *s, struct cmd_decision *d)
{
	return check_at(f, s, 0, d);
}

static void test_accept(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	struct command_result res;
	char *s = payload(ID1, "backup.local.start", UDID, "{\"full\":true}", 900);
	const struct cmdtable_entry *e;
	char *json;

	assert_int_equal(check(f, s, &d), COMMAND_REJECT_NONE);
	assert_true(d.parsed);
	assert_true(d.attributable);
	assert_false(d.known);
	assert_int_equal(d.command.kind, COMMAND_BACKUP_LOCAL_START);
	assert_true(command_param_get(&d.command, "full")->b);
	e = cmdtable_get(f->table, ID1);
	assert_non_null(e);
	assert_int_equal(e->status, COMMAND_STATUS_ACCEPTED);

	assert_int_equal(cmd_decision_result(f->cmd, &d, &res), 0);
	assert_int_equal(res.status, COMMAND_STATUS_ACCEPTED);
	assert_string_equal(res.cmd_id, ID1);
	assert_string_equal(res.udid, UDID);
	res.seq = 5;
	res.ts_ms = T0;
	json = command_result_encode(&res);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"status\":\"accepted\""));
	free(json);
	free(s);
}

static void test_retained_first(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	struct command_result res;
	/* retained and also oversize: retained is checked first, without reading the bytes */
	char *big = malloc(COMMAND_PAYLOAD_MAX + 100);
	struct cmd_message m = { .payload = big,
		                 .len = COMMAND_PAYLOAD_MAX + 100,
		                 .retained = true,
		                 .expiry_s = -1,
		                 .correlation = ID1,
		                 .correlation_len = 36 };

	memset(big, 'x', COMMAND_PAYLOAD_MAX + 100);
	cmd_check(f->cmd, &m, 1000, T0, &d);
	assert_int_equal(d.reason, COMMAND_REJECT_RETAINED);
	assert_false(d.attributable);
	assert_true(d.security);
	assert_int_equal(cmd_decision_result(f->cmd, &d, &res), -ENOENT);
	assert_int_equal(cmdtable_count(f->table), 0);
	free(big);
}

static void test_oversize_before_parse(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	struct command_result res;
	char *s = payload(ID1, "device.refresh", UDID, "{}", 900);
	size_t n = strlen(s);
	char *buf = malloc(COMMAND_PAYLOAD_MAX + 1);
	struct cmd_message m;

	/* a valid command padded with spaces to exactly the cap is accepted ... */
	memcpy(buf, s, n);
	memset(buf + n, ' ', COMMAND_PAYLOAD_MAX + 1 - n);
	m = msg_of(s);
	m.payload = buf;
	m.len = COMMAND_PAYLOAD_MAX;
	cmd_check(f->cmd, &m, 1000, T0, &d);
	assert_int_equal(d.reason, COMMAND_REJECT_NONE);

	/* ... one byte more is oversize, although it is the same valid JSON */
	m.len = COMMAND_PAYLOAD_MAX + 1;
	cmd_check(f->cmd, &m, 1000, T0, &d);
	assert_int_equal(d.reason, COMMAND_REJECT_OVERSIZE);
	assert_false(d.parsed);
	assert_false(d.attributable); /* not parsed, so the cmd_id inside is not read */

	/* garbage that is also too big is oversize, not malformed: size comes before parsing */
	memset(buf, 0, COMMAND_PAYLOAD_MAX + 1);
	cmd_check(f->cmd, &m, 1000, T0, &d);
	assert_int_equal(d.reason, COMMAND_REJECT_OVERSIZE);

	/* with the MQTT correlation data the rejection can be attributed */
	m.correlation = "3A9E4C07-1B2D-4E8F-B6A5-C0D1E2F3A4B5";
	m.correlation_len = 36;
	cmd_check(f->cmd, &m, 1000, T0, &d);
	assert_int_equal(d.reason, COMMAND_REJECT_OVERSIZE);
	assert_true(d.attributable);
	assert_string_equal(d.cmd_id, "3a9e4c07-1b2d-4e8f-b6a5-c0d1e2f3a4b5");
	assert_int_equal(cmd_decision_result(f->cmd, &d, &res), 0);
	assert_int_equal(res.status, COMMAND_STATUS_REJECTED);
	assert_int_equal(res.reason, COMMAND_REJECT_OVERSIZE);
	free(buf);
	free(s);
}

static void test_malformed(void **state)
{
	struct fixture *f = *state;
	static const char *const cases[] = {
		"",
		"not json",
		"{\"schema\":\"cradle.command.v1\"", /* truncated */
		"[1,2,3]",                           /* not an object */
		"\"just a string\"",
		"{} trailing",
		"{\"a\":\"\xc3\x28\"}",     /* invalid UTF-8 */
		"{\"a\":\"\xed\xa0\x80\"}", /* UTF-16 surrogate */
		"{\"a\":\"\xc0\xaf\"}",     /* overlong */
	};
	struct cmd_decision d;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(check(f, cases[i], &d), COMMAND_REJECT_MALFORMED);
		assert_false(d.attributable);
	}
	/* an embedded NUL byte (cJSON would stop reading there) */
	{
		static const char nul[] = "{\"a\":1}\0{\"b\":2}";
		struct cmd_message m = { .payload = nul, .len = sizeof(nul) - 1, .expiry_s = -1 };

		cmd_check(f->cmd, &m, 1000, T0, &d);
		assert_int_equal(d.reason, COMMAND_REJECT_MALFORMED);
	}
	/* deep nesting within the size cap: cJSON refuses past its limit, no crash */
	{
		char *deep = malloc(4001);

		memset(deep, '[', 2000);
		memset(deep + 2000, ']', 2000);
		deep[4000] = '\0';
		assert_int_equal(check(f, deep, &d), COMMAND_REJECT_MALFORMED);
		free(deep);
	}
	assert_int_equal(cmdtable_count(f->table), 0);
}

static void test_schema(void **state)
{
	struct fixture *f = *state;
	static const char *const cases[] = {
		/* missing cmd_id */
		"{\"schema\":\"cradle.command.v1\",\"agent\":\"" AGENT "\",\"udid\":\"" UDID "\","
		"\"name\":\"device.refresh\",\"params\":{},\"issued_at\":\"2026-01-15T02:00:00Z\","
		"\"expires_at\":\"2026-01-15T02:10:00Z\"}",
		/* cmd_id not a UUID */
		"{\"schema\":\"cradle.command.v1\",\"cmd_id\":\"42\",\"agent\":\"" AGENT "\","
		"\"udid\":\"" UDID "\",\"name\":\"device.refresh\",\"params\":{},"
		"\"issued_at\":\"2026-01-15T02:00:00Z\",\"expires_at\":\"2026-01-15T02:10:00Z\"}",
		/* cmd_id a number */
		"{\"schema\":\"cradle.command.v1\",\"cmd_id\":7,\"agent\":\"" AGENT "\","
		"\"udid\":\"" UDID "\",\"name\":\"device.refresh\",\"params\":{},"
		"\"issued_at\":\"2026-01-15T02:00:00Z\",\"expires_at\":\"2026-01-15T02:10:00Z\"}",
		/* a duplicate member: which one counts is parser-dependent, so nothing is read */
		"{\"schema\":\"cradle.command.v1\",\"cmd_id\":\"" ID1 "\",\"agent\":\"" AGENT "\","
		"\"agent\":\"other-1\",\"udid\":\"" UDID "\",\"name\":\"device.refresh\","
		"\"params\":{},\"issued_at\":\"2026-01-15T02:00:00Z\","
		"\"expires_at\":\"2026-01-15T02:10:00Z\"}",
	};
	struct cmd_decision d;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(check(f, cases[i], &d), COMMAND_REJECT_SCHEMA);
		assert_false(d.attributable);
	}
}

/* Schema errors after a valid cmd_id: attributable, so the sender learns why. */
static void test_schema_attributable(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[][2] = {
		{ "\"schema\":\"cradle.command.v1\"", "\"schema\":\"cradle.command.v2\"" },
		{ "\"agent\":\"" AGENT "\"", "\"agent\":\"Station/07\"" },
		{ "\"udid\":\"" UDID "\"", "\"udid\":\"a/b\"" },
		{ "\"udid\":\"" UDID "\"", "\"udid\":\"+\"" },
		{ "\"name\":\"device.refresh\"", "\"name\":\"DEVICE.REFRESH\"" },
		{ "\"name\":\"device.refresh\"", "\"name\":\"refresh\"" },
		{ "\"params\":{}", "\"params\":[]" },
		{ "\"params\":{}", "\"params\":{\"a\":{\"b\":1}}" },
		{ "\"params\":{}", "\"params\":{\"a\":1.5}" },
		{ "\"params\":{}", "\"params\":{\"a\":null}" },
		{ "\"params\":{}", "\"params\":{\"a\":1,\"a\":2}" },
		{ "\"params\":{}", "\"params\":{\"a\":1e300}" },
		{ "\"issued_at\":\"2026-01-15T02:00:00Z\"", "\"issued_at\":\"yesterday\"" },
		{ "\"issued_at\":\"2026-01-15T02:00:00Z\"", "\"issued_at\":1768442400" },
		{ "\"expires_at\":\"2026-01-15T02:15:00Z\"",
		  "\"expires_at\":\"2026-01-15T01:00:00Z\"" },
		{ "\"expires_at\":\"2026-01-15T02:15:00Z\"",
		  "\"expires_at\":\"2026-01-15T02:00:00Z\"" },
		{ "\"expires_at\":\"2026-01-15T02:15:00Z\"",
		  "\"seq\":-1,\"expires_at\":\"2026-01-15T02:15:00Z\"" },
		{ "\"expires_at\":\"2026-01-15T02:15:00Z\"",
		  "\"job_id\":5,\"expires_at\":\"2026-01-15T02:15:00Z\"" },
	};
	struct cmd_decision d;
	struct command_result res;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		char *s = payload(ID1, "device.refresh", UDID, "{}", 900);
		char *p = strstr(s, bad[i][0]), *t = NULL;

		assert_non_null(p);
		assert_true(asprintf(&t, "%.*s%s%s", (int)(p - s), s, bad[i][1],
		                     p + strlen(bad[i][0])) > 0);
		if (check(f, t, &d) != COMMAND_REJECT_SCHEMA || !d.attributable)
			fail_msg("case %zu (%s): %s", i, bad[i][1], command_reject_str(d.reason));
		assert_string_equal(d.cmd_id, ID1);
		assert_int_equal(cmd_decision_result(f->cmd, &d, &res), 0);
		assert_int_equal(res.status, COMMAND_STATUS_REJECTED);
		assert_int_equal(res.reason, COMMAND_REJECT_SCHEMA);
		if (!res.detail[0])
			fail_msg("case %zu: no detail", i);
		free(t);
		free(s);
	}
	assert_int_equal(cmdtable_count(f->table), 0);
}

static void test_target_and_allow_list(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	char id[COMMAND_ID_MAX], *s, *t;

	new_id(f, id);
	s = payload(id, "device.refresh", UDID, "{}", 900);
	t = NULL;
	/* another agent's command (e.g. an ACL mistake delivered it here) */
	assert_true(asprintf(&t, "%s", s) > 0);
	memcpy(strstr(t, AGENT), "station-08", 10);
	assert_int_equal(check(f, t, &d), COMMAND_REJECT_WRONG_AGENT);
	assert_true(d.security);
	free(t);
	free(s);

	s = payload(id, "device.refresh", "FFFF0000FFFF0000", "{}", 900);
	assert_int_equal(check(f, s, &d), COMMAND_REJECT_UNKNOWN_DEVICE);
	free(s);

	s = payload(id, "device.format", UDID, "{}", 900);
	assert_int_equal(check(f, s, &d), COMMAND_REJECT_NOT_ALLOWED);
	assert_true(d.security);
	free(s);

	s = payload(id, "device.restart", UDID, "{\"full\":true}", 900);
	assert_int_equal(check(f, s, &d), COMMAND_REJECT_BAD_PARAMS);
	free(s);
	s = payload(id, "backup.local.start", UDID, "{\"full\":\"yes\"}", 900);
	assert_int_equal(check(f, s, &d), COMMAND_REJECT_BAD_PARAMS);
	free(s);
	s = payload(id, "backup.local.start", UDID, "{\"path\":\"/etc\"}", 900);
	assert_int_equal(check(f, s, &d), COMMAND_REJECT_BAD_PARAMS);
	free(s);
	/* none of these was recorded: the same id is accepted once it is right */
	assert_int_equal(cmdtable_count(f->table), 0);
	s = payload(id, "backup.local.start", UDID, "{}", 900);
	assert_int_equal(check(f, s, &d), COMMAND_REJECT_NONE);
	free(s);
}

static void test_allow_list_config(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	char id[COMMAND_ID_MAX], *s;

	cmd_free(f->cmd);
	f->cfg.allowed = CMD_ALLOW(COMMAND_DEVICE_REFRESH);
	assert_int_equal(cmd_new(&f->cfg, f->table, known_device, NULL, &f->cmd), 0);
	new_id(f, id);
	s = payload(id, "device.restart", UDID, "{}", 900);
	assert_int_equal(check(f, s, &d), COMMAND_REJECT_NOT_ALLOWED);
	free(s);
	s = payload(id, "device.refresh", UDID, "{}", 900);
	assert_int_equal(check(f, s, &d), COMMAND_REJECT_NONE);
	free(s);
}

static void test_expired(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	char id[COMMAND_ID_MAX], *s;
	struct cmd_message m;

	/* expires_at passed (beyond the 300 s skew tolerance) */
	new_id(f, id);
	s = payload(id, "device.refresh", UDID, "{}", 60);
	assert_int_equal(check_at(f, s, (60 + 299) * 1000LL, &d), COMMAND_REJECT_NONE);
	free(s);
	new_id(f, id);
	s = payload(id, "device.refresh", UDID2, "{}", 60);
	assert_int_equal(check_at(f, s, (60 + 301) * 1000LL, &d), COMMAND_REJECT_EXPIRED);
	free(s);

	/* issued in the future beyond the skew */
	new_id(f, id);
	s = payload(id, "device.refresh", UDID2, "{}", 3600);
	assert_int_equal(check_at(f, s, -301 * 1000LL, &d), COMMAND_REJECT_EXPIRED);
	free(s);

	/* the MQTT message expiry counts from our receive time, whatever the clocks say */
	new_id(f, id);
	s = payload(id, "device.refresh", UDID2, "{}", 3600);
	m = msg_of(s);
	m.expiry_s = 5;
	m.received_ms = 1000;
	cmd_check(f->cmd, &m, 1000 + 5000, T0, &d);
	assert_int_equal(d.reason, COMMAND_REJECT_EXPIRED);
	cmd_check(f->cmd, &m, 1000 + 4999, T0, &d);
	assert_int_equal(d.reason, COMMAND_REJECT_NONE);
	free(s);

	/* a ttl above max_ttl is cut: 48 h command, checked 25 h later */
	new_id(f, id);
	s = payload(id, "device.refresh", UDID2, "{}", 20 * 3600);
	free(s);
	{
		char *t = NULL;

		assert_true(asprintf(&t,
		                     "{\"schema\":\"cradle.command.v1\",\"cmd_id\":\"%s\","
		                     "\"agent\":\"" AGENT "\",\"udid\":\"" UDID2 "\","
		                     "\"name\":\"device.refresh\",\"params\":{},"
		                     "\"issued_at\":\"2026-01-15T02:00:00Z\","
		                     "\"expires_at\":\"2026-01-17T02:00:00Z\"}",
		                     id) > 0);
		assert_int_equal(check_at(f, t, 25 * 3600 * 1000LL, &d), COMMAND_REJECT_EXPIRED);
		free(t);
	}
}

static void test_order(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	char id[COMMAND_ID_MAX], *s;

	/* wrong agent and unknown name and expired: wrong_agent comes first */
	new_id(f, id);
	s = payload(id, "device.format", "FFFF0000FFFF0000", "{}", 60);
	memcpy(strstr(s, AGENT), "station-08", 10);
	assert_int_equal(check_at(f, s, 3600 * 1000LL, &d), COMMAND_REJECT_WRONG_AGENT);
	free(s);
	/* unknown device before not_allowed before bad_params before expired */
	s = payload(id, "device.format", "FFFF0000FFFF0000", "{\"x\":1}", 60);
	assert_int_equal(check_at(f, s, 3600 * 1000LL, &d), COMMAND_REJECT_UNKNOWN_DEVICE);
	free(s);
	s = payload(id, "device.format", UDID, "{\"x\":1}", 60);
	assert_int_equal(check_at(f, s, 3600 * 1000LL, &d), COMMAND_REJECT_NOT_ALLOWED);
	free(s);
	s = payload(id, "device.refresh", UDID, "{\"x\":1}", 60);
	assert_int_equal(check_at(f, s, 3600 * 1000LL, &d), COMMAND_REJECT_BAD_PARAMS);
	free(s);
	s = payload(id, "device.refresh", UDID, "{}", 60);
	assert_int_equal(check_at(f, s, 3600 * 1000LL, &d), COMMAND_REJECT_EXPIRED);
	free(s);
}

static void test_replay(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	struct command_result res;
	char *s = payload(ID1, "backup.icloud.enable", UDID, "{}", 900);
	char *upper = strdup(s);
	char *p;

	assert_int_equal(check(f, s, &d), COMMAND_REJECT_NONE);
	assert_int_equal(cmd_update(f->cmd, ID1, COMMAND_STATUS_SUCCEEDED, NULL, -1, T0 + 5000), 0);

	/* the repeat: never accepted again, answered with the last status */
	assert_int_equal(check_at(f, s, 10000, &d), COMMAND_REJECT_REPLAY);
	assert_true(d.known);
	assert_int_equal(d.last.status, COMMAND_STATUS_SUCCEEDED);
	assert_int_equal(cmd_decision_result(f->cmd, &d, &res), 0);
	assert_int_equal(res.status, COMMAND_STATUS_SUCCEEDED);
	assert_true(res.replay);

	/* an upper-case variant of the id is the same command */
	for (p = strstr(upper, ID1); *p != '"'; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	assert_int_equal(check_at(f, upper, 11000, &d), COMMAND_REJECT_REPLAY);

	/* across a restart (close and reopen the table) */
	cmd_free(f->cmd);
	cmdtable_free(f->table);
	f->cmd = NULL;
	f->table = NULL;
	assert_int_equal(open_all(f), 0);
	assert_int_equal(check_at(f, s, 12000, &d), COMMAND_REJECT_REPLAY);
	assert_int_equal(d.last.status, COMMAND_STATUS_SUCCEEDED);
	free(upper);
	free(s);
}

/* An expired repeat is rejected as expired (checked first) but answered with the known status. */
static void test_expired_replay(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	struct command_result res;
	char *s = payload(ID1, "backup.local.start", UDID, "{}", 60);

	assert_int_equal(check(f, s, &d), COMMAND_REJECT_NONE);
	assert_int_equal(
	        cmd_update(f->cmd, ID1, COMMAND_STATUS_FAILED, "passcode_required", -1, T0 + 30000),
	        0);
	assert_int_equal(check_at(f, s, 3600 * 1000LL, &d), COMMAND_REJECT_EXPIRED);
	assert_true(d.known);
	assert_int_equal(cmd_decision_result(f->cmd, &d, &res), 0);
	assert_int_equal(res.status, COMMAND_STATUS_FAILED);
	assert_string_equal(res.cause, "passcode_required");
	assert_true(res.replay);
	free(s);
}

static void test_rate_restart(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	struct command_result res;
	char id[COMMAND_ID_MAX], first_limited[COMMAND_ID_MAX] = "", *s;
	int i, accepted = 0, limited = 0;

	/* T-SEC-07: 10 device.restart in one minute -> 1 accepted, 9 rate_limited */
	for (i = 0; i < 10; i++) {
		new_id(f, id);
		s = payload(id, "device.restart", UDID, "{}", 900);
		switch (check_at(f, s, i * 6000LL, &d)) {
		case COMMAND_REJECT_NONE:
			accepted++;
			break;
		case COMMAND_REJECT_RATE_LIMITED:
			if (!first_limited[0])
				snprintf(first_limited, sizeof(first_limited), "%s", id);
			limited++;
			break;
		default:
			fail_msg("unexpected reason %s", command_reject_str(d.reason));
		}
		free(s);
	}
	assert_int_equal(accepted, 1);
	assert_int_equal(limited, 9);
	/* the other device is not affected */
	new_id(f, id);
	s = payload(id, "device.restart", UDID2, "{}", 900);
	assert_int_equal(check_at(f, s, 60000, &d), COMMAND_REJECT_NONE);
	free(s);
	/* a rate-limited id was not recorded (it never ran): an hour later a repeat is evaluated
	 * again and passes, and then takes the hour's token from a new restart */
	assert_null(cmdtable_get(f->table, first_limited));
	s = payload(first_limited, "device.restart", UDID, "{}", 7200);
	assert_int_equal(check_at(f, s, 3601 * 1000LL, &d), COMMAND_REJECT_NONE);
	assert_int_equal(cmd_decision_result(f->cmd, &d, &res), 0);
	assert_int_equal(res.status, COMMAND_STATUS_ACCEPTED);
	free(s);
	new_id(f, id);
	s = payload(id, "device.restart", UDID, "{}", 7200);
	assert_int_equal(check_at(f, s, 3602 * 1000LL, &d), COMMAND_REJECT_RATE_LIMITED);
	free(s);
}

static void test_rate_per_device(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	char id[COMMAND_ID_MAX], *s;
	int i;

	/* default 6 per hour: the 7th refresh within the same second is refused */
	for (i = 0; i < 7; i++) {
		new_id(f, id);
		s = payload(id, "device.refresh", UDID, "{}", 900);
		assert_int_equal(check(f, s, &d),
		                 i < 6 ? COMMAND_REJECT_NONE : COMMAND_REJECT_RATE_LIMITED);
		free(s);
	}
	/* one token comes back every 10 minutes */
	new_id(f, id);
	s = payload(id, "device.refresh", UDID, "{}", 900);
	assert_int_equal(check_at(f, s, 599 * 1000LL, &d), COMMAND_REJECT_RATE_LIMITED);
	free(s);
	new_id(f, id);
	s = payload(id, "device.refresh", UDID, "{}", 900);
	assert_int_equal(check_at(f, s, 600 * 1000LL, &d), COMMAND_REJECT_NONE);
	free(s);
}

static void test_correlation_mismatch(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	char *s = payload(ID1, "device.refresh", UDID, "{}", 900);
	struct cmd_message m = msg_of(s);

	m.correlation = "3a9e4c07-1b2d-4e8f-b6a5-c0d1e2f3a4b5";
	m.correlation_len = 36;
	cmd_check(f->cmd, &m, 1000, T0, &d);
	assert_int_equal(d.reason, COMMAND_REJECT_SCHEMA);
	/* answered under the payload's (signed) cmd_id, not the correlation data's */
	assert_true(d.attributable);
	assert_string_equal(d.cmd_id, ID1);
	m.correlation = ID1;
	cmd_check(f->cmd, &m, 1000, T0, &d);
	assert_int_equal(d.reason, COMMAND_REJECT_NONE);
	free(s);
}

static void test_internal_on_write_failure(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	struct command_result res;
	char *s = payload(ID1, "device.refresh", UDID, "{}", 900);
	struct rlimit old, lim;

	/* the table file cannot grow (RLIMIT_FSIZE at its current size: writes fail with EFBIG) */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_IGN);
	lim = old;
	lim.rlim_cur = 16; /* the header only */
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(check(f, s, &d), COMMAND_REJECT_INTERNAL);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	/* not executed and not recorded: once the disk is back the command is accepted */
	assert_int_equal(cmd_decision_result(f->cmd, &d, &res), 0);
	assert_int_equal(res.status, COMMAND_STATUS_REJECTED);
	assert_int_equal(res.reason, COMMAND_REJECT_INTERNAL);
	assert_null(cmdtable_get(f->table, ID1));
	assert_int_equal(check(f, s, &d), COMMAND_REJECT_NONE);
	free(s);
}

/* ---- issue 8: budgets, a full table, a damaged history ---- */

static void renew(struct fixture *f)
{
	f->cmd = cmd_free(f->cmd);
	assert_int_equal(cmd_new(&f->cfg, f->table, known_device, NULL, &f->cmd), 0);
}

/* Over the intake budget a command is only counted; over the answers budget a refusal has no
 * result. Time stands still here, so the buckets do not refill. */
static void test_budgets(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	struct command_result res;
	struct cmd_stats st;
	char id[COMMAND_ID_MAX], *s;
	int i, answered = 0, shed = 0, accepted = 0;

	f->cfg.intake_per_s = 6;
	f->cfg.answers_per_s = 2;
	renew(f);
	for (i = 0; i < 20; i++) {
		new_id(f, id);
		/* one command that runs, then unknown devices (refused) */
		s = payload(id, "device.refresh", i == 0 ? UDID : "FFFF0000FFFF0000", "{}", 60);
		check(f, s, &d);
		free(s);
		if (d.reason == COMMAND_REJECT_NONE) {
			accepted++;
			assert_int_equal(cmd_decision_result(f->cmd, &d, &res), 0);
		} else if (d.shed) {
			shed++;
			assert_int_equal(d.reason, COMMAND_REJECT_BUSY);
			assert_int_equal(cmd_decision_result(f->cmd, &d, &res), -ENOENT);
		} else if (cmd_decision_result(f->cmd, &d, &res) == 0) {
			answered++;
			assert_int_equal(res.reason, COMMAND_REJECT_UNKNOWN_DEVICE);
		} else {
			assert_true(d.quiet);
		}
	}
	assert_int_equal(accepted, 1);
	assert_int_equal(answered, 2);
	assert_int_equal(shed, 14);
	cmd_get_stats(f->cmd, &st);
	assert_int_equal(st.shed, 14);
	assert_int_equal(st.quiet, 3);
	/* a second later the budgets are back */
	new_id(f, id);
	s = payload(id, "device.refresh", "FFFF0000FFFF0000", "{}", 60);
	assert_int_equal(check_at(f, s, 1000, &d), COMMAND_REJECT_UNKNOWN_DEVICE);
	assert_int_equal(cmd_decision_result(f->cmd, &d, &res), 0);
	free(s);
}

/*
 * The attack of issue 8: a flood of rate-limited commands for another phone used to be written
 * to the table and evict an executed id, which then ran again. Refusals are not written now, and
 * a table full of live ids refuses new commands (busy) instead of forgetting one.
 */
static void test_flood_keeps_executed(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	char id[COMMAND_ID_MAX], *s;
	int i;

	cmdtable_free(f->table);
	f->table = NULL;
	assert_int_equal(cmdtable_open(f->path, 8, 48LL * 3600 * 1000, T0, &f->table), 0);
	renew(f);
	s = payload(ID1, "device.refresh", UDID, "{}", 3600);
	assert_int_equal(check(f, s, &d), COMMAND_REJECT_NONE);
	free(s);
	for (i = 0; i < 100; i++) {
		new_id(f, id);
		s = payload(id, "device.refresh", UDID2, "{}", 3600);
		check_at(f, s, i, &d);
		assert_true(d.reason == COMMAND_REJECT_NONE ||
		            d.reason == COMMAND_REJECT_RATE_LIMITED);
		free(s);
	}
	assert_int_equal(cmdtable_count(f->table), 7); /* ID1 and a burst of 6 for UDID2 */
	s = payload(ID1, "device.refresh", UDID, "{}", 3600);
	assert_int_equal(check_at(f, s, 200, &d), COMMAND_REJECT_REPLAY);
	free(s);

	/* without a rate limit the table fills: busy, and nothing is forgotten */
	f->cfg.rate_count = 0;
	renew(f);
	new_id(f, id);
	s = payload(id, "device.refresh", UDID2, "{}", 3600);
	assert_int_equal(check_at(f, s, 300, &d), COMMAND_REJECT_NONE);
	free(s);
	for (i = 0; i < 5; i++) {
		new_id(f, id);
		s = payload(id, "device.refresh", UDID2, "{}", 3600);
		assert_int_equal(check_at(f, s, 400, &d), COMMAND_REJECT_BUSY);
		free(s);
	}
	s = payload(ID1, "device.refresh", UDID, "{}", 3600);
	assert_int_equal(check_at(f, s, 500, &d), COMMAND_REJECT_REPLAY);
	free(s);
}

/* After damage, a command issued before the watermark (plus the skew) is refused. */
static void test_replay_unknown(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	struct command_result res;
	char id[COMMAND_ID_MAX], *s;

	f->cfg.clock_skew_s = 0;
	renew(f);
	assert_int_equal(cmdtable_mark_unknown(f->table, T0 - 1), 0);
	new_id(f, id);
	s = payload(id, "device.refresh", UDID, "{}", 60);
	assert_int_equal(check(f, s, &d), COMMAND_REJECT_NONE); /* issued at T0: after it */
	free(s);
	assert_int_equal(cmdtable_mark_unknown(f->table, T0 + 1), 0);
	new_id(f, id);
	s = payload(id, "device.refresh", UDID, "{}", 60);
	assert_int_equal(check_at(f, s, 10, &d), COMMAND_REJECT_REPLAY_UNKNOWN);
	assert_int_equal(cmd_decision_result(f->cmd, &d, &res), 0);
	assert_int_equal(res.status, COMMAND_STATUS_REJECTED);
	assert_string_equal(command_reject_str(res.reason), "replay_unknown");
	free(s);
	/* with the default skew, even a command issued a little after it is refused */
	f->cfg.clock_skew_s = 300;
	renew(f);
	assert_int_equal(cmdtable_mark_unknown(f->table, T0 - 299 * 1000), 0);
	new_id(f, id);
	s = payload(id, "device.refresh", UDID, "{}", 60);
	assert_int_equal(check_at(f, s, 20, &d), COMMAND_REJECT_REPLAY_UNKNOWN);
	free(s);
}

/* ---- signatures ---- */

struct signed_msg {
	struct cmd_message m;
	char sig[CMDSIG_SIG_B64_LEN + 1];
};

/* s signed by signer (as key_id when given, else its own id), with the correlation data. */
static void sign_msg(struct signed_msg *sm, const char *s, const struct cmdsig_signer *signer,
                     const char *key_id)
{
	memset(sm, 0, sizeof(*sm));
	sm->m = msg_of(s);
	sm->m.correlation = ID1;
	sm->m.correlation_len = 36;
	assert_int_equal(cmdsig_sign(signer, s, strlen(s), sm->sig), 0);
	key_id = key_id ? key_id : cmdsig_signer_pubkey(signer)->id;
	cmd_message_user_property(&sm->m, CMDSIG_PROP_SIG, strlen(CMDSIG_PROP_SIG), sm->sig,
	                          strlen(sm->sig));
	cmd_message_user_property(&sm->m, CMDSIG_PROP_KEY_ID, strlen(CMDSIG_PROP_KEY_ID), key_id,
	                          strlen(key_id));
}

static enum command_reject check_msg(struct fixture *f, const struct cmd_message *m,
                                     struct cmd_decision *d)
{
	cmd_check(f->cmd, m, 1000, T0, d);
	return d->reason;
}

static void test_sig_accept_and_replay(void **state)
{
	struct fixture *f = *state;
	struct signed_msg sm;
	struct cmd_decision d;
	struct command_result res;
	char *s = payload(ID1, "device.refresh", UDID, "{}", 900);

	sign_msg(&sm, s, f->a, NULL);
	/* other user properties are ignored */
	cmd_message_user_property(&sm.m, "trace", 5, "1", 1);
	assert_int_equal(check_msg(f, &sm.m, &d), COMMAND_REJECT_NONE);
	assert_string_equal(d.key_id, cmdsig_signer_pubkey(f->a)->id);
	assert_false(d.security);
	/* the same signed bytes again: a replay, answered with the last status, not run */
	assert_int_equal(check_msg(f, &sm.m, &d), COMMAND_REJECT_REPLAY);
	assert_true(d.known);
	assert_int_equal(cmd_decision_result(f->cmd, &d, &res), 0);
	assert_int_equal(res.status, COMMAND_STATUS_ACCEPTED);
	assert_true(res.replay);
	free(s);
}

static void test_sig_refusals(void **state)
{
	struct fixture *f = *state;
	struct signed_msg sm;
	struct cmd_decision d;
	struct command_result res;
	char *s = payload(ID1, "device.refresh", UDID, "{}", 900);
	char *forged = strdup(s);
	struct cmd_message m;

	/* unsigned, with signatures required: refused before parsing, attributed by correlation */
	m = msg_of(s);
	m.correlation = ID1;
	m.correlation_len = 36;
	assert_int_equal(check_msg(f, &m, &d), COMMAND_REJECT_BAD_SIGNATURE);
	assert_false(d.parsed);
	assert_true(d.attributable);
	assert_true(d.security);
	assert_int_equal(cmd_decision_result(f->cmd, &d, &res), 0);
	assert_int_equal(res.status, COMMAND_STATUS_REJECTED);
	assert_int_equal(res.reason, COMMAND_REJECT_BAD_SIGNATURE);
	assert_string_equal(res.udid, ""); /* nothing read from the unverified bytes */

	/* forged: payload changed after signing (another device) */
	sign_msg(&sm, s, f->a, NULL);
	memcpy(strstr(forged, UDID), UDID2, strlen(UDID2));
	sm.m.payload = forged;
	assert_int_equal(check_msg(f, &sm.m, &d), COMMAND_REJECT_BAD_SIGNATURE);

	/* truncated payload, truncated signature, truncated key id */
	sign_msg(&sm, s, f->a, NULL);
	sm.m.len--;
	assert_int_equal(check_msg(f, &sm.m, &d), COMMAND_REJECT_BAD_SIGNATURE);
	sign_msg(&sm, s, f->a, NULL);
	sm.m.signature_len = 44;
	assert_int_equal(check_msg(f, &sm.m, &d), COMMAND_REJECT_BAD_SIGNATURE);
	sign_msg(&sm, s, f->a, NULL);
	sm.m.key_id_len = 8;
	assert_int_equal(check_msg(f, &sm.m, &d), COMMAND_REJECT_BAD_SIGNATURE);
	/* signature without key id */
	sign_msg(&sm, s, f->a, NULL);
	sm.m.key_id = NULL;
	assert_int_equal(check_msg(f, &sm.m, &d), COMMAND_REJECT_BAD_SIGNATURE);

	/* re-signed with an untrusted key */
	sign_msg(&sm, s, f->b, NULL);
	assert_int_equal(check_msg(f, &sm.m, &d), COMMAND_REJECT_UNKNOWN_KEY);
	assert_true(d.security);
	/* the untrusted key's signature under the trusted key's id */
	sign_msg(&sm, s, f->b, cmdsig_signer_pubkey(f->a)->id);
	assert_int_equal(check_msg(f, &sm.m, &d), COMMAND_REJECT_BAD_SIGNATURE);

	/* a second cradle-sig (which one would count?) */
	sign_msg(&sm, s, f->a, NULL);
	cmd_message_user_property(&sm.m, CMDSIG_PROP_SIG, strlen(CMDSIG_PROP_SIG), sm.sig,
	                          strlen(sm.sig));
	assert_int_equal(check_msg(f, &sm.m, &d), COMMAND_REJECT_BAD_SIGNATURE);

	/* garbage signed by nobody is a bad signature, not malformed: nothing was parsed */
	m = msg_of("{oops");
	assert_int_equal(check_msg(f, &m, &d), COMMAND_REJECT_BAD_SIGNATURE);
	/* none of these were recorded, and the genuine command still goes through */
	assert_int_equal(cmdtable_count(f->table), 0);
	sign_msg(&sm, s, f->a, NULL);
	assert_int_equal(check_msg(f, &sm.m, &d), COMMAND_REJECT_NONE);
	free(forged);
	free(s);
}

static void test_sig_oversize_first(void **state)
{
	struct fixture *f = *state;
	struct cmd_decision d;
	char *big = calloc(1, COMMAND_PAYLOAD_MAX + 1);
	struct cmd_message m = msg_of("");

	m.payload = big;
	m.len = COMMAND_PAYLOAD_MAX + 1;
	assert_int_equal(check_msg(f, &m, &d), COMMAND_REJECT_OVERSIZE);
	free(big);
}

/* A new intake with f->cfg (as after a config change and restart). */
static void reconfigure(struct fixture *f)
{
	cmd_free(f->cmd);
	assert_int_equal(cmd_new(&f->cfg, f->table, known_device, NULL, &f->cmd), 0);
}

/* A fresh device.refresh for udid signed by signer (NULL: unsigned); the decision's reason. */
static enum command_reject check_fresh(struct fixture *f, const char *udid,
                                       const struct cmdsig_signer *signer)
{
	struct signed_msg sm;
	struct cmd_decision d;
	char id[COMMAND_ID_MAX], *s;

	new_id(f, id);
	s = payload(id, "device.refresh", udid, "{}", 900);
	if (signer) {
		sign_msg(&sm, s, signer, NULL);
		sm.m.correlation = NULL;
	} else {
		sm.m = msg_of(s);
	}
	check_msg(f, &sm.m, &d);
	assert_string_equal(d.key_id, signer && d.reason == COMMAND_REJECT_NONE
	                                      ? cmdsig_signer_pubkey(signer)->id
	                                      : "");
	free(s);
	return d.reason;
}

static void test_sig_optional(void **state)
{
	struct fixture *f = *state;
	struct signed_msg sm;
	struct cmd_decision d;
	char id[COMMAND_ID_MAX], *s;

	f->cfg.require_signed = false;
	reconfigure(f);
	assert_int_equal(check_fresh(f, UDID, NULL), COMMAND_REJECT_NONE);
	/* a signed command is still verified */
	assert_int_equal(check_fresh(f, UDID, f->b), COMMAND_REJECT_UNKNOWN_KEY);
	new_id(f, id);
	s = payload(id, "device.refresh", UDID, "{}", 900);
	sign_msg(&sm, s, f->a, NULL);
	sm.m.len--;
	assert_int_equal(check_msg(f, &sm.m, &d), COMMAND_REJECT_BAD_SIGNATURE);
	free(s);
}

static void test_sig_rotation(void **state)
{
	struct fixture *f = *state;

	/* a and b trusted at once: both work */
	f->cfg.keys[1] = *cmdsig_signer_pubkey(f->b);
	f->cfg.n_keys = 2;
	reconfigure(f);
	assert_int_equal(check_fresh(f, UDID, f->a), COMMAND_REJECT_NONE);
	assert_int_equal(check_fresh(f, UDID2, f->b), COMMAND_REJECT_NONE);
	/* a removed: refused as unknown, b still works */
	f->cfg.keys[0] = f->cfg.keys[1];
	f->cfg.n_keys = 1;
	reconfigure(f);
	assert_int_equal(check_fresh(f, UDID, f->a), COMMAND_REJECT_UNKNOWN_KEY);
	assert_int_equal(check_fresh(f, UDID, f->b), COMMAND_REJECT_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_accept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retained_first, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_before_parse, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_schema_attributable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_target_and_allow_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_list_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_order, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_replay, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rate_per_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_correlation_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_internal_on_write_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_budgets, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flood_keeps_executed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replay_unknown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sig_accept_and_replay, setup_signed, teardown),
		cmocka_unit_test_setup_teardown(test_sig_refusals, setup_signed, teardown),
		cmocka_unit_test_setup_teardown(test_sig_oversize_first, setup_signed, teardown),
		cmocka_unit_test_setup_teardown(test_sig_optional, setup_signed, teardown),
		cmocka_unit_test_setup_teardown(test_sig_rotation, setup_signed, teardown),
	};

	log_init("cmd-test", LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
