/* SPDX-License-Identifier: MIT */
/*
 * facts <-> JSON: round trip of every field, optional values absent, and the strict parser's
 * refusals (the helper's output is the agent's trust boundary).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "facts.h"

static void fill(struct device_facts *f)
{
	facts_init(f, "00008110-001C0FFEE0000001");
	f->probed_at_ms = 1795649354799;
	f->probe = FACTS_PROBE_OK;
	f->pairing = FACTS_PAIRING_PAIRED;
	snprintf(f->product_type, sizeof(f->product_type), "iPhone15,2");
	snprintf(f->ios_version, sizeof(f->ios_version), "17.4.1");
	snprintf(f->build, sizeof(f->build), "21E236");
	snprintf(f->serial, sizeof(f->serial), "PRB0000001");
	snprintf(f->device_name, sizeof(f->device_name), "Ward \"A\" 01 \xc3\xa9");
	f->has_password_protected = f->password_protected = true;
	f->has_icloud_enabled = true;
	f->has_last_icloud = true;
	f->last_icloud_unix = 1747341447;
	f->has_last_local = true;
	f->last_local_unix = -5; /* before 1970: still an integer */
	f->has_will_encrypt = f->will_encrypt = true;
	f->has_requires_encryption = true;
	f->has_battery = true;
	f->battery_pct = 80;
	f->external_connected = true;
	f->has_storage = true;
	f->total_bytes = 256000000000ULL;
	f->available_bytes = 12345678901ULL;
	f->n_syslog = 2;
	snprintf(f->syslog[0], sizeof(f->syslog[0]),
	         "backupd[1] <Error>: not enough iCloud storage");
	snprintf(f->syslog[1], sizeof(f->syslog[1]), "BackupAgent2 done");
	f->last_backup_error = 208;
}

static void test_roundtrip(void **state)
{
	struct device_facts a, b;
	char *json;

	(void)state;
	fill(&a);
	json = facts_to_json(&a);
	assert_non_null(json);
	assert_null(strchr(json, '\n'));
	assert_int_equal(facts_from_json(json, strlen(json), &b, NULL, 0), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	free(json);
}

static void test_optional_absent(void **state)
{
	struct device_facts a, b;
	char *json;

	(void)state;
	facts_init(&a, "U1");
	a.probe = FACTS_PROBE_NOT_TRUSTED;
	a.pairing = FACTS_PAIRING_TRUST_PENDING;
	a.lockdown_error = -19;
	json = facts_to_json(&a);
	assert_non_null(json);
	assert_null(strstr(json, "last_icloud"));
	assert_null(strstr(json, "battery_pct"));
	assert_null(strstr(json, "syslog"));
	assert_non_null(strstr(json, "\"pairing\":\"trust_pending\""));
	assert_int_equal(facts_from_json(json, strlen(json), &b, NULL, 0), 0);
	assert_false(b.has_last_icloud);
	assert_false(b.has_battery);
	assert_int_equal(b.pairing, FACTS_PAIRING_TRUST_PENDING);
	assert_int_equal(b.lockdown_error, -19);
	free(json);
}

static void reject(const char *json, const char *why)
{
	struct device_facts f;
	char err[128];

	assert_true(facts_from_json(json, strlen(json), &f, err, sizeof(err)) < 0);
	if (why)
		assert_non_null(strstr(err, why));
	/* a refused input leaves nothing behind */
	assert_string_equal(f.udid, "");
	assert_int_equal(f.probe, FACTS_PROBE_ERROR);
}

static void test_reject(void **state)
{
	char big[FACTS_JSON_MAX + 64];
	char longname[300];

	(void)state;
	reject("", "JSON");
	reject("[]", "object");
	reject("{}", "udid");
	reject("{\"udid\":\"\"}", "udid");
	reject("{\"udid\":\"U\",\"probe\":\"fine\"}", "probe");
	reject("{\"udid\":\"U\",\"pairing\":1}", "pairing");
	reject("{\"udid\":\"U\",\"battery_pct\":101}", "battery_pct");
	reject("{\"udid\":\"U\",\"battery_pct\":5.5}", "battery_pct");
	reject("{\"udid\":\"U\",\"total_bytes\":-1}", "total_bytes");
	reject("{\"udid\":\"U\",\"total_bytes\":1e300}", "total_bytes");
	reject("{\"udid\":\"U\",\"charging\":1}", "charging");
	reject("{\"udid\":\"U\",\"extra\":1}", "unknown");
	reject("{\"udid\":\"U\",\"udid\":\"V\"}", "duplicate");
	reject("{\"udid\":\"U\",\"syslog\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]}",
	       "syslog");
	reject("{\"udid\":\"U\",\"syslog\":[1]}", "syslog");
	/* 128-byte field, 200-byte value: refused, not cut */
	snprintf(longname, sizeof(longname), "{\"udid\":\"U\",\"device_name\":\"%0200d\"}", 0);
	reject(longname, "device_name");
	memset(big, ' ', sizeof(big));
	memcpy(big, "{\"udid\":\"U\"}", 12);
	big[sizeof(big) - 1] = '\0';
	reject(big, "larger");
}

/* A NUL in any string (escaped or raw) is refused, not cut: "U\u0000x" is not the phone "U". */
static void test_reject_nul(void **state)
{
	static const char raw[] = "{\"udid\":\"U\0x\"}";
	static const char looks[] = "{\"udid\":\"U\",\"device_name\":\"a\\\\u0000\"}";
	struct device_facts f;
	char err[128];

	(void)state;
	reject("{\"udid\":\"U\\u0000x\"}", "u0000");
	reject("{\"udid\":\"U\",\"device_name\":\"Cart\\u0000 1\"}", "u0000");
	reject("{\"udid\":\"U\",\"syslog\":[\"backupd: \\u0000\"]}", "u0000");
	reject("{\"udid\":\"U\",\"udid\\u0000\":\"V\"}", "u0000");
	assert_true(facts_from_json(raw, sizeof(raw) - 1, &f, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "NUL"));
	/* text that only looks like the escape is a normal name */
	assert_int_equal(facts_from_json(looks, strlen(looks), &f, err, sizeof(err)), 0);
	assert_string_equal(f.device_name, "a\\u0000");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_optional_absent),
		cmocka_unit_test(test_reject),
		cmocka_unit_test(test_reject_nul),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
