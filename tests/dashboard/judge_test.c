/* SPDX-License-Identifier: MIT */
/*
 * judge: the staleness rule with a fixed now — the five-days-old `ok` that is stale now,
 * per-site overrides, `missing` after missing_after away from any dock, `unknown` without
 * facts — and the SQL function giving the same verdicts as the C code.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "config.h"
#include "judge.h"

#define NOW  1780000000LL
#define HOUR 3600LL
#define DAY  (24 * HOUR)

static struct dash_config cfg;

static int setup(void **state)
{
	char err[128];

	(void)state;
	dash_config_defaults(&cfg);
	cfg.stale_after_s = 72 * HOUR;
	cfg.missing_after_s = 7 * DAY;
	cfg.n_site_stale = 1;
	snprintf(cfg.site_stale[0].site, sizeof(cfg.site_stale[0].site), "north");
	cfg.site_stale[0].stale_after_s = 24 * HOUR;
	return dash_config_check(&cfg, err, sizeof(err));
}

static struct judge_facts docked(const char *site, int64_t icloud_age)
{
	struct judge_facts f = {
		.site = site, .docked = true, .last_seen = NOW, .has_facts = true
	};

	if (icloud_age >= 0) {
		f.has_last_icloud = true;
		f.last_icloud = NOW - icloud_age;
	}
	return f;
}

static void test_stale_clock(void **state)
{
	struct judge_facts f;

	(void)state;
	f = docked("", 1 * HOUR);
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_OK);
	/* the boundary: exactly stale_after old is still ok, a second more is stale */
	f = docked("", 72 * HOUR);
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_OK);
	f = docked("", 72 * HOUR + 1);
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_STALE);
	/* the same facts turn stale as the dashboard's clock moves on, whatever the agent said */
	f = docked("", 1 * HOUR);
	assert_int_equal(judge_status(&cfg, &f, NOW + 72 * HOUR), JUDGE_STALE);
	/* never backed up, with facts: stale */
	f = docked("", -1);
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_STALE);
}

static void test_site_override(void **state)
{
	struct judge_facts f;

	(void)state;
	f = docked("north", 30 * HOUR);
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_STALE);
	f = docked("south", 30 * HOUR);
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_OK);
	f = docked(NULL, 30 * HOUR);
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_OK);
}

static void test_missing(void **state)
{
	struct judge_facts f;

	(void)state;
	/* left its cart five days ago with an ok backup from then: stale, not yet missing */
	f = docked("", 5 * DAY);
	f.docked = false;
	f.last_seen = NOW - 5 * DAY;
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_STALE);
	/* eight days away: missing, whatever its backup */
	f.last_seen = NOW - 8 * DAY;
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_MISSING);
	f.has_facts = false;
	f.has_last_icloud = false;
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_MISSING);
	/* docked now: never missing, even with an old last_seen */
	f = docked("", 1 * HOUR);
	f.last_seen = NOW - 30 * DAY;
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_OK);
}

static void test_unknown(void **state)
{
	struct judge_facts f = { .docked = true, .last_seen = NOW };

	(void)state;
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_UNKNOWN);
	/* a known last_icloud from before counts even when the latest probe failed */
	f.has_last_icloud = true;
	f.last_icloud = NOW - HOUR;
	assert_int_equal(judge_status(&cfg, &f, NOW), JUDGE_OK);
}

static void test_names(void **state)
{
	enum judge_status s;

	(void)state;
	for (int i = 0; i < _JUDGE_STATUS_MAX; i++) {
		assert_non_null(judge_status_name(i));
		assert_int_equal(judge_status_from_name(judge_status_name(i), &s), 0);
		assert_int_equal(s, i);
	}
	assert_null(judge_status_name(_JUDGE_STATUS_MAX));
	assert_int_equal(judge_status_from_name("fine", &s), -EINVAL);
	assert_int_equal(judge_status_from_name(NULL, &s), -EINVAL);
}

static const char *sql_status(sqlite3 *db, const char *site, int docked_, int64_t last_seen,
                              int has_facts, const int64_t *last_icloud, int64_t now)
{
	static char buf[16];
	sqlite3_stmt *st;

	assert_int_equal(sqlite3_prepare_v2(db, "SELECT cradle_status(?1, ?2, ?3, ?4, ?5, ?6)", -1,
	                                    &st, NULL),
	                 SQLITE_OK);
	sqlite3_bind_text(st, 1, site, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, docked_);
	sqlite3_bind_int64(st, 3, last_seen);
	sqlite3_bind_int(st, 4, has_facts);
	if (last_icloud)
		sqlite3_bind_int64(st, 5, *last_icloud);
	sqlite3_bind_int64(st, 6, now);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(buf, sizeof(buf), "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return buf;
}

/* The SQL function and the C function agree on a grid of cases. */
static void test_sql(void **state)
{
	const char *sites[] = { "", "north", "south" };
	const int64_t ages[] = { -1, 0, HOUR, 24 * HOUR + 1, 72 * HOUR + 1, 9 * DAY };
	const int64_t seen[] = { 0, 6 * DAY, 8 * DAY };
	sqlite3 *db;

	(void)state;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	assert_int_equal(judge_sql_register(db, &cfg), 0);
	for (size_t s = 0; s < 3; s++)
		for (size_t a = 0; a < 6; a++)
			for (size_t l = 0; l < 3; l++)
				for (int d = 0; d < 2; d++)
					for (int h = 0; h < 2; h++) {
						struct judge_facts f = {
							.site = sites[s],
							.docked = d,
							.last_seen = NOW - seen[l],
							.has_facts = h,
							.has_last_icloud = ages[a] >= 0,
							.last_icloud = NOW - ages[a],
						};
						int64_t li = f.last_icloud;

						assert_string_equal(
						        sql_status(db, f.site, d, f.last_seen, h,
						                   f.has_last_icloud ? &li : NULL,
						                   NOW),
						        judge_status_name(
						                judge_status(&cfg, &f, NOW)));
					}
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stale_clock), cmocka_unit_test(test_site_override),
		cmocka_unit_test(test_missing),     cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_names),       cmocka_unit_test(test_sql),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
