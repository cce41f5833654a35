/* SPDX-License-Identifier: MIT */
/* topics: ids, builders, filters and the parser, including hostile topics. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "macro.h"
#include "topics.h"

#define UDID "00008110-001A2B3C4D5E801E"

static void test_agent_id(void **state)
{
	static const char *const good[] = {
		"abc", "st-1", "0ab", "a-b-c", "station-berlin-hq-cart-3", "a--"
	};
	static const char *const bad[] = { "",    "ab",  "-abc", "Abc",   "ab_c", "ab/c",
		                           "ab+", "ab#", "a b",  "abc\n", "äbc" };
	char longest[64], too_long[65];
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(good); i++)
		if (!topics_agent_id_valid(good[i]))
			fail_msg("'%s' should be valid", good[i]);
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		if (topics_agent_id_valid(bad[i]))
			fail_msg("'%s' should be invalid", bad[i]);
	assert_false(topics_agent_id_valid(NULL));
	memset(longest, 'a', 63);
	longest[63] = '\0';
	assert_true(topics_agent_id_valid(longest)); /* 1 + 62 */
	memset(too_long, 'a', 64);
	too_long[64] = '\0';
	assert_false(topics_agent_id_valid(too_long));
}

static void test_udid(void **state)
{
	char s[80];

	(void)state;
	/* the forms usbmuxd reports: 40 hex digits (before the A12), 8-16 hex with a dash */
	assert_true(topics_udid_valid(UDID));
	assert_true(topics_udid_valid("a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"));
	assert_true(topics_udid_valid("A1B2C3D4E5F60718293A4B5C6D7E8F9012345678"));
	assert_true(topics_udid_valid("00008030-0011223344556677"));
	/* wider on purpose: simulators and test fixtures, a future format */
	assert_true(topics_udid_valid("SIM0001"));
	assert_true(topics_udid_valid("00008110001A2B3C4D5E0001"));
	assert_false(topics_udid_valid(""));
	assert_false(topics_udid_valid(NULL));
	/* the agent also passes UDIDs as helper argv elements and uses them as directory names */
	assert_false(topics_udid_valid("-abc"));   /* an option to a helper */
	assert_false(topics_udid_valid("--help")); /* idem */
	assert_false(topics_udid_valid("abc/def"));
	assert_false(topics_udid_valid(".."));
	assert_false(topics_udid_valid(".hidden"));
	assert_false(topics_udid_valid("a.b"));
	assert_false(topics_udid_valid("a_b"));
	assert_false(topics_udid_valid("+"));
	assert_false(topics_udid_valid("#"));
	assert_false(topics_udid_valid("abc def"));
	assert_false(topics_udid_valid("abc\n"));
	assert_false(topics_udid_valid("\303\244bc")); /* UTF-8 a-umlaut */
	memset(s, 'F', 63);
	s[63] = '\0';
	assert_true(topics_udid_valid(s));
	memset(s, 'F', 64);
	s[64] = '\0';
	assert_false(topics_udid_valid(s));
}

static void test_build(void **state)
{
	char buf[TOPICS_MAX], small[20], longest_agent[64], longest_udid[64];

	(void)state;
	assert_int_equal(topics_build(buf, sizeof(buf), TOPICS_STATUS, "st-1", NULL), 0);
	assert_string_equal(buf, "cradle/v1/agent/st-1/status");
	assert_int_equal(topics_build(buf, sizeof(buf), TOPICS_META, "st-1", "ignored/+"), 0);
	assert_string_equal(buf, "cradle/v1/agent/st-1/meta");
	assert_int_equal(topics_build(buf, sizeof(buf), TOPICS_DEVICE_STATE, "st-1", UDID), 0);
	assert_string_equal(buf, "cradle/v1/agent/st-1/device/" UDID "/state");
	assert_int_equal(topics_build(buf, sizeof(buf), TOPICS_DEVICE_EVENT, "st-1", UDID), 0);
	assert_string_equal(buf, "cradle/v1/agent/st-1/device/" UDID "/event");
	assert_int_equal(topics_build(buf, sizeof(buf), TOPICS_CMD, "st-1", NULL), 0);
	assert_string_equal(buf, "cradle/v1/agent/st-1/cmd");
	assert_int_equal(topics_build(buf, sizeof(buf), TOPICS_RESULT, "st-1", NULL), 0);
	assert_string_equal(buf, "cradle/v1/agent/st-1/result");
	assert_int_equal(topics_build(buf, sizeof(buf), TOPICS_AGENT_EVENT, "st-1", UDID), 0);
	assert_string_equal(buf, "cradle/v1/agent/st-1/event");

	assert_int_equal(topics_build(buf, sizeof(buf), TOPICS_DEVICE_STATE, "st-1", NULL),
	                 -EINVAL);
	assert_int_equal(topics_build(buf, sizeof(buf), TOPICS_DEVICE_STATE, "st-1", "a/b"),
	                 -EINVAL);
	assert_int_equal(topics_build(buf, sizeof(buf), TOPICS_STATUS, "+", NULL), -EINVAL);
	assert_int_equal(topics_build(buf, sizeof(buf), _TOPICS_KIND_MAX, "st-1", NULL), -EINVAL);
	assert_int_equal(topics_build(small, sizeof(small), TOPICS_STATUS, "st-1", NULL), -ENOBUFS);

	/* TOPICS_MAX is enough for the longest ids */
	memset(longest_agent, 'a', 63);
	longest_agent[63] = '\0';
	memset(longest_udid, 'F', 63);
	longest_udid[63] = '\0';
	assert_int_equal(
	        topics_build(buf, sizeof(buf), TOPICS_DEVICE_STATE, longest_agent, longest_udid),
	        0);
	assert_int_equal(
	        topics_build(buf, sizeof(buf), TOPICS_DEVICE_EVENT, longest_agent, longest_udid),
	        0);
}

static void test_filter(void **state)
{
	char buf[TOPICS_MAX];

	(void)state;
	assert_int_equal(topics_filter(buf, sizeof(buf), TOPICS_DEVICE_STATE, NULL), 0);
	assert_string_equal(buf, "cradle/v1/agent/+/device/+/state");
	assert_int_equal(topics_filter(buf, sizeof(buf), TOPICS_STATUS, NULL), 0);
	assert_string_equal(buf, "cradle/v1/agent/+/status");
	assert_int_equal(topics_filter(buf, sizeof(buf), TOPICS_CMD, "st-1"), 0);
	assert_string_equal(buf, "cradle/v1/agent/st-1/cmd");
	assert_int_equal(topics_filter(buf, sizeof(buf), TOPICS_DEVICE_EVENT, "st-1"), 0);
	assert_string_equal(buf, "cradle/v1/agent/st-1/device/+/event");
	assert_int_equal(topics_filter(buf, sizeof(buf), TOPICS_AGENT_EVENT, NULL), 0);
	assert_string_equal(buf, "cradle/v1/agent/+/event");
	assert_int_equal(topics_filter(buf, sizeof(buf), TOPICS_CMD, "#"), -EINVAL);
}

static void test_parse(void **state)
{
	static const struct {
		const char *topic;
		int r;
		enum topics_kind kind;
		const char *agent, *udid;
	} t[] = {
		{ "cradle/v1/agent/st-1/status", 0, TOPICS_STATUS, "st-1", "" },
		{ "cradle/v1/agent/st-1/meta", 0, TOPICS_META, "st-1", "" },
		{ "cradle/v1/agent/st-1/cmd", 0, TOPICS_CMD, "st-1", "" },
		{ "cradle/v1/agent/st-1/result", 0, TOPICS_RESULT, "st-1", "" },
		{ "cradle/v1/agent/st-1/event", 0, TOPICS_AGENT_EVENT, "st-1", "" },
		{ "cradle/v1/agent/st-1/event/x", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/st-1/device/" UDID "/state", 0, TOPICS_DEVICE_STATE, "st-1",
		  UDID },
		{ "cradle/v1/agent/st-1/device/" UDID "/event", 0, TOPICS_DEVICE_EVENT, "st-1",
		  UDID },
		{ "cradle/v1/agent/st-1/device/" UDID "/status", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/st-1/device/" UDID, -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/st-1/device//state", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/st-1/device/" UDID "/state/", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/st-1/device/" UDID "/state/x", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/st-1/state", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/st-1/status/", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/st-1/status/x", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/st-1", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/st-1/", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent//status", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/+/status", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/ST-1/status", -EINVAL, 0, "", "" },
		{ "cradle/v2/agent/st-1/status", -EINVAL, 0, "", "" },
		{ "/cradle/v1/agent/st-1/status", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/st-1/device/+/state", -EINVAL, 0, "", "" },
		{ "", -EINVAL, 0, "", "" },
		{ "cradle/v1/agent/st-1/veryveryverylonglevelname", -EINVAL, 0, "", "" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(t); i++) {
		char agent[TOPICS_AGENT_MAX] = "untouched", udid[TOPICS_UDID_MAX] = "untouched";
		enum topics_kind kind = _TOPICS_KIND_MAX;
		int r = topics_parse(t[i].topic, &kind, agent, udid);

		if (r != t[i].r)
			fail_msg("parse('%s') = %d, want %d", t[i].topic, r, t[i].r);
		if (r == 0 && (kind != t[i].kind || strcmp(agent, t[i].agent) != 0 ||
		               strcmp(udid, t[i].udid) != 0))
			fail_msg("parse('%s') = %d '%s' '%s'", t[i].topic, kind, agent, udid);
		if (r < 0 && (strcmp(agent, "untouched") != 0 || kind != _TOPICS_KIND_MAX))
			fail_msg("parse('%s') wrote outputs on failure", t[i].topic);
	}
	assert_int_equal(topics_parse(NULL, &(enum topics_kind){ 0 }, (char[64]){ 0 }, NULL),
	                 -EINVAL);
}

/* build -> parse gives back what went in, for every kind */
static void test_roundtrip(void **state)
{
	enum topics_kind k;

	(void)state;
	for (k = 0; k < _TOPICS_KIND_MAX; k++) {
		char buf[TOPICS_MAX], agent[TOPICS_AGENT_MAX], udid[TOPICS_UDID_MAX];
		enum topics_kind got;

		assert_int_equal(topics_build(buf, sizeof(buf), k, "cart-42", UDID), 0);
		assert_int_equal(topics_parse(buf, &got, agent, udid), 0);
		assert_int_equal(got, k);
		assert_string_equal(agent, "cart-42");
		assert_string_equal(udid, topics_kind_has_udid(k) ? UDID : "");
		assert_non_null(topics_kind_name(k));
	}
	assert_null(topics_kind_name(_TOPICS_KIND_MAX));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_agent_id), cmocka_unit_test(test_udid),
		cmocka_unit_test(test_build),    cmocka_unit_test(test_filter),
		cmocka_unit_test(test_parse),    cmocka_unit_test(test_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
