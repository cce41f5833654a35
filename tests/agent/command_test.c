/* SPDX-License-Identifier: MIT */
/*
 * Tests of the command codec (proto/command.c): encode -> decode round trips, the golden
 * examples of proto/examples/, and results that break the schema on either side.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "command.h"
#include "macro.h"

#define ID1 "6f1c2b1e-8a51-4c2e-9d0b-3e1f5a7c9b20"

static char *slurp(const char *name, size_t *ret_len)
{
	char path[512];
	FILE *f;
	char *buf = malloc(COMMAND_PAYLOAD_MAX + 1);
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", EXAMPLES_DIR, name);
	f = fopen(path, "rb");
	assert_non_null(f);
	n = fread(buf, 1, COMMAND_PAYLOAD_MAX + 1, f);
	fclose(f);
	*ret_len = n;
	return buf;
}

static void test_command_round_trip(void **state)
{
	struct command c = { 0 }, d;
	char err[COMMAND_ERR_MAX];
	char *json;

	(void)state;
	snprintf(c.cmd_id, sizeof(c.cmd_id), "%s", ID1);
	snprintf(c.agent, sizeof(c.agent), "station-07");
	snprintf(c.udid, sizeof(c.udid), "00008110-001A2B3C4D5E801E");
	snprintf(c.name, sizeof(c.name), "backup.local.start");
	c.n_params = 2;
	snprintf(c.params[0].key, sizeof(c.params[0].key), "full");
	c.params[0].type = COMMAND_PARAM_BOOL;
	c.params[0].b = true;
	snprintf(c.params[1].key, sizeof(c.params[1].key), "note");
	c.params[1].type = COMMAND_PARAM_STRING;
	snprintf(c.params[1].s, sizeof(c.params[1].s), "x");
	c.issued_at_ms = 1768442400000LL;
	c.expires_at_ms = c.issued_at_ms + 900000;
	c.has_seq = true;
	c.seq = 3;
	snprintf(c.job_id, sizeof(c.job_id), "job-1");
	json = command_encode(&c);
	assert_non_null(json);
	assert_int_equal(command_decode(json, strlen(json), &d, err, sizeof(err)),
	                 COMMAND_REJECT_NONE);
	assert_string_equal(d.cmd_id, ID1);
	assert_string_equal(d.name, "backup.local.start");
	assert_true(d.known_name);
	assert_int_equal(d.kind, COMMAND_BACKUP_LOCAL_START);
	assert_int_equal(d.n_params, 2);
	assert_int_equal(d.issued_at_ms, c.issued_at_ms);
	assert_int_equal(d.expires_at_ms, c.expires_at_ms);
	assert_int_equal(d.seq, 3);
	assert_string_equal(d.job_id, "job-1");
	/* "note" is not a param of backup.local.start */
	assert_int_equal(command_params_check(&d, err, sizeof(err)), -EINVAL);
	d.n_params = 1;
	assert_int_equal(command_params_check(&d, err, sizeof(err)), 0);
	free(json);

	/* the encoder refuses what the decoder would refuse */
	snprintf(c.udid, sizeof(c.udid), "a/b");
	assert_null(command_encode(&c));
	snprintf(c.udid, sizeof(c.udid), "00008110-001A2B3C4D5E801E");
	c.expires_at_ms = c.issued_at_ms;
	assert_null(command_encode(&c));
}

static void test_examples(void **state)
{
	static const char *const cmds[] = { "command_backup_local_start.json",
		                            "command_icloud_enable.json" };
	static const char *const results[] = {
		"command_result_accepted.json",
		"command_result_in_progress.json",
		"command_result_waiting_for_user.json",
		"command_result_failed.json",
		"command_result_rejected.json",
		"command_result_succeeded_replay.json",
		"command_result_rejected_bad_signature.json",
		"command_result_rejected_replay_unknown.json",
	};
	struct command c;
	struct command_result r;
	char err[COMMAND_ERR_MAX];
	size_t i, n;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(cmds); i++) {
		char *buf = slurp(cmds[i], &n);

		if (command_decode(buf, n, &c, err, sizeof(err)) != COMMAND_REJECT_NONE)
			fail_msg("%s: %s", cmds[i], err);
		assert_int_equal(command_params_check(&c, err, sizeof(err)), 0);
		free(buf);
	}
	for (i = 0; i < ARRAY_SIZE(results); i++) {
		char *buf = slurp(results[i], &n), *again;
		struct command_result r2;

		if (command_result_decode(buf, n, &r, err, sizeof(err)) < 0)
			fail_msg("%s: %s", results[i], err);
		/* re-encoding gives the same message */
		again = command_result_encode(&r);
		assert_non_null(again);
		assert_int_equal(command_result_decode(again, strlen(again), &r2, err, sizeof(err)),
		                 0);
		assert_memory_equal(&r, &r2, sizeof(r));
		free(again);
		free(buf);
	}
}

static void test_result_rules(void **state)
{
	struct command_result r = { 0 }, d;
	char err[COMMAND_ERR_MAX], *json;
	static const char *const bad[] = {
		"{\"schema\":\"cradle.command_result.v1\",\"agent\":\"station-07\",\"seq\":1,"
		"\"ts\":\"2026-01-15T02:00:00Z\",\"cmd_id\":\"" ID1 "\",\"status\":\"rejected\"}",
		"{\"schema\":\"cradle.command_result.v1\",\"agent\":\"station-07\",\"seq\":1,"
		"\"ts\":\"2026-01-15T02:00:00Z\",\"cmd_id\":\"" ID1 "\",\"status\":\"failed\"}",
		"{\"schema\":\"cradle.command_result.v1\",\"agent\":\"station-07\",\"seq\":1,"
		"\"ts\":\"2026-01-15T02:00:00Z\",\"cmd_id\":\"" ID1
		"\",\"status\":\"in_progress\"}",
		"{\"schema\":\"cradle.command_result.v1\",\"agent\":\"station-07\",\"seq\":1,"
		"\"ts\":\"2026-01-15T02:00:00Z\",\"cmd_id\":\"" ID1 "\",\"status\":\"in_progress\","
		"\"progress\":101}",
		"{\"schema\":\"cradle.command_result.v1\",\"agent\":\"station-07\",\"seq\":1,"
		"\"ts\":\"2026-01-15T02:00:00Z\",\"cmd_id\":\"" ID1 "\",\"status\":\"done\"}",
		"{\"schema\":\"cradle.command_result.v1\",\"agent\":\"station-07\",\"seq\":-1,"
		"\"ts\":\"2026-01-15T02:00:00Z\",\"cmd_id\":\"" ID1 "\",\"status\":\"accepted\"}",
		"{\"schema\":\"cradle.command.v1\",\"agent\":\"station-07\",\"seq\":1,"
		"\"ts\":\"2026-01-15T02:00:00Z\",\"cmd_id\":\"" ID1 "\",\"status\":\"accepted\"}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		if (command_result_decode(bad[i], strlen(bad[i]), &d, err, sizeof(err)) != -EPROTO)
			fail_msg("case %zu decoded", i);
	assert_int_equal(command_result_decode("[]", 2, &d, err, sizeof(err)), -EBADMSG);
	assert_int_equal(command_result_decode("x", COMMAND_PAYLOAD_MAX + 1, &d, NULL, 0),
	                 -EMSGSIZE);

	snprintf(r.agent, sizeof(r.agent), "station-07");
	snprintf(r.cmd_id, sizeof(r.cmd_id), "%s", ID1);
	r.status = COMMAND_STATUS_REJECTED;
	r.progress = -1;
	assert_null(command_result_encode(&r)); /* no reason */
	r.reason = COMMAND_REJECT_EXPIRED;
	snprintf(r.detail, sizeof(r.detail), "bad\nline\x01");
	json = command_result_encode(&r);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"reason\":\"expired\""));
	assert_non_null(strstr(json, "\"detail\":\"bad?line?\""));
	free(json);
	r.status = COMMAND_STATUS_FAILED;
	assert_null(command_result_encode(&r)); /* no cause */
	snprintf(r.cause, sizeof(r.cause), "Bad Cause");
	assert_null(command_result_encode(&r));
	snprintf(r.cause, sizeof(r.cause), "device_gone");
	json = command_result_encode(&r);
	assert_non_null(json);
	assert_null(strstr(json, "\"reason\""));
	free(json);
	r.status = COMMAND_STATUS_IN_PROGRESS;
	assert_null(command_result_encode(&r)); /* progress -1 */
	r.progress = 100;
	json = command_result_encode(&r);
	assert_non_null(json);
	assert_non_null(strstr(json, "\"progress\":100"));
	free(json);
}

/* A command with each member's value given, for the NUL cases below. */
#define NUL_CMD(schema, id, agent, udid, name, job)                                          \
 "{\"schema\":\"" schema "\",\"cmd_id\":\"" id "\",\"agent\":\"" agent "\",\"udid\":\"" udid \
 "\",\"name\":\"" name "\",\"params\":{},\"issued_at\":\"2026-01-15T02:00:00Z\","            \
 "\"expires_at\":\"2026-01-15T02:05:00Z\",\"job_id\":\"" job "\"}"
#define NUL_S    "cradle.command.v1"
#define NUL_A    "station-07"
#define NUL_U    "00008110-001A2B3C4D5E801E"
#define NUL_N    "backup.icloud.enable"
#define NUL_EVIL "\\u0000.evil"

/*
 * A \u0000 escape anywhere (cJSON would cut the string there: "backup.icloud.enable\u0000.evil"
 * read as backup.icloud.enable and ran) or a raw NUL byte is malformed, in commands and results;
 * an escaped backslash before "u0000" is only text.
 */
static void test_nul_escape(void **state)
{
	static const char *const bad[] = {
		NUL_CMD(NUL_S, ID1, NUL_A, NUL_U, NUL_N NUL_EVIL, "j"),
		NUL_CMD(NUL_S, ID1, NUL_A, NUL_U NUL_EVIL, NUL_N, "j"),
		NUL_CMD(NUL_S, ID1, NUL_A NUL_EVIL, NUL_U, NUL_N, "j"),
		NUL_CMD(NUL_S NUL_EVIL, ID1, NUL_A, NUL_U, NUL_N, "j"),
		NUL_CMD(NUL_S, ID1 NUL_EVIL, NUL_A, NUL_U, NUL_N, "j"),
		NUL_CMD(NUL_S, ID1, NUL_A, NUL_U, NUL_N, "j" NUL_EVIL),
		NUL_CMD(NUL_S, ID1, NUL_A, NUL_U, NUL_N, "\\\\\\u0000"), /* \\ then \u0000 */
		/* in a member name: "name\u0000" would read as a second "name" */
		"{\"name\":\"device.refresh\",\"name\\u0000\":\"backup.icloud.enable\"}",
	};
	static const char raw[] = NUL_CMD(NUL_S, ID1, NUL_A, NUL_U, NUL_N "\0.evil", "j");
	static const char result[] =
	        "{\"schema\":\"cradle.command_result.v1\",\"agent\":\"station-07\",\"seq\":1,"
	        "\"ts\":\"2026-01-15T02:00:00Z\",\"cmd_id\":\"" ID1 "\",\"status\":\"succeeded\","
	        "\"detail\":\"ok\\u0000 but not really\"}";
	const char *good = NUL_CMD(NUL_S, ID1, NUL_A, NUL_U, NUL_N, "a\\\\u0000b");
	struct command c;
	struct command_result r;
	char err[COMMAND_ERR_MAX];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (command_decode(bad[i], strlen(bad[i]), &c, err, sizeof(err)) !=
		    COMMAND_REJECT_MALFORMED)
			fail_msg("accepted or not malformed: %s", bad[i]);
		assert_non_null(strstr(err, "u0000"));
	}
	assert_int_equal(command_decode(raw, sizeof(raw) - 1, &c, err, sizeof(err)),
	                 COMMAND_REJECT_MALFORMED);
	assert_int_equal(command_result_decode(result, strlen(result), &r, err, sizeof(err)),
	                 -EBADMSG);
	/* an escaped backslash before u0000 is text, and the command decodes */
	assert_int_equal(command_decode(good, strlen(good), &c, err, sizeof(err)),
	                 COMMAND_REJECT_NONE);
	assert_string_equal(c.job_id, "a\\u0000b");
	assert_string_equal(c.name, NUL_N);
}

static void test_names(void **state)
{
	enum command_name n;
	enum command_reject rj;
	int i;

	(void)state;
	for (i = 0; i < _COMMAND_NAME_MAX; i++) {
		assert_int_equal(command_name_from_str(command_name_str(i), &n), 0);
		assert_int_equal((int)n, i);
	}
	for (i = 0; i < _COMMAND_REJECT_MAX; i++) {
		assert_int_equal(command_reject_from_str(command_reject_str(i), &rj), 0);
		assert_int_equal((int)rj, i);
	}
	assert_null(command_status_str(_COMMAND_STATUS_MAX));
	assert_int_equal(command_name_from_str("device.format", &n), -EINVAL);
	assert_true(command_id_valid(ID1));
	assert_true(command_id_valid("6F1C2B1E-8A51-4C2E-9D0B-3E1F5A7C9B20"));
	assert_false(command_id_valid("6f1c2b1e-8a51-4c2e-9d0b-3e1f5a7c9b2"));
	assert_false(command_id_valid("6f1c2b1e-8a51-4c2e-9d0b-3e1f5a7c9b200"));
	assert_false(command_id_valid("6f1c2b1e+8a51-4c2e-9d0b-3e1f5a7c9b20"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_round_trip), cmocka_unit_test(test_examples),
		cmocka_unit_test(test_result_rules),       cmocka_unit_test(test_names),
		cmocka_unit_test(test_nul_escape),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
