/* SPDX-License-Identifier: MIT */
/*
 * store: a new file gets every migration, WAL and the private mode; reopening keeps the data
 * and migrates nothing; a file from a newer program is refused; counters, retention and the
 * samples row (through the judge's SQL function).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "config.h"
#include "store.h"

struct fixture {
	char dir[64];
	char path[128];
	struct dash_config cfg;
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/dash-store-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	/* a directory below that does not exist yet: store_open creates it */
	snprintf(fx->path, sizeof(fx->path), "%s/db/cradle.db", fx->dir);
	dash_config_defaults(&fx->cfg);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static int64_t one_int(struct store *s, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v;

	assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void exec_ok(struct store *s, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(store_db(s), sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("%s: %s", sql, msg);
}

static void test_open_migrate(void **state)
{
	struct fixture *fx = *state;
	struct store *s = NULL;
	char err[256] = "";
	sqlite3_stmt *st;
	struct stat sb;

	assert_int_equal(store_open(fx->path, &fx->cfg, &s, err, sizeof(err)), 0);
	assert_int_equal(one_int(s, "PRAGMA user_version"),
	                 store_migrations[store_n_migrations - 1].version);
	assert_int_equal(sqlite3_prepare_v2(store_db(s), "PRAGMA journal_mode", -1, &st, NULL),
	                 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	assert_int_equal(one_int(s, "PRAGMA foreign_keys"), 1);
	assert_int_equal(stat(fx->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	exec_ok(s, "INSERT INTO agents(agent) VALUES ('a1')");
	s = store_close(s);
	assert_null(s);

	/* reopen: the row is still there, no migration runs twice */
	assert_int_equal(store_open(fx->path, &fx->cfg, &s, err, sizeof(err)), 0);
	assert_int_equal(one_int(s, "SELECT count(*) FROM agents"), 1);

	/* a file from a newer program is refused, not damaged */
	exec_ok(s, "PRAGMA user_version = 999");
	s = store_close(s);
	assert_int_equal(store_open(fx->path, &fx->cfg, &s, err, sizeof(err)), -EPROTO);
	assert_null(s);
	assert_non_null(strstr(err, "999"));
}

static void test_bad_path(void **state)
{
	struct fixture *fx = *state;
	struct store *s = NULL;
	char err[256] = "";

	(void)fx;
	assert_true(store_open("/proc/no/such/dir/x.db", &fx->cfg, &s, err, sizeof(err)) < 0);
	assert_null(s);
	assert_true(err[0] != '\0');
}

static void test_counters_tx(void **state)
{
	struct fixture *fx = *state;
	struct store *s = NULL;
	char err[256];
	int64_t v;

	assert_int_equal(store_open(fx->path, &fx->cfg, &s, err, sizeof(err)), 0);
	assert_int_equal(store_counter_get(s, "malformed", &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_counter_add(s, "malformed", 2), 0);
	assert_int_equal(store_counter_add(s, "malformed", 3), 0);
	assert_int_equal(store_commit(s), 0);
	assert_int_equal(store_counter_get(s, "malformed", &v), 0);
	assert_int_equal(v, 5);
	/* a rolled back batch leaves nothing */
	assert_int_equal(store_begin(s), 0);
	assert_int_equal(store_counter_add(s, "malformed", 10), 0);
	store_rollback(s);
	assert_int_equal(store_counter_get(s, "malformed", &v), 0);
	assert_int_equal(v, 5);
	store_rollback(s); /* outside a transaction: harmless */
	store_close(s);
}

static void test_retention_samples(void **state)
{
	struct fixture *fx = *state;
	const int64_t now = 1780000000;
	struct store *s = NULL;
	char err[256], sql[1024];
	int64_t n = -1;

	assert_int_equal(store_open(fx->path, &fx->cfg, &s, err, sizeof(err)), 0);
	exec_ok(s, "INSERT INTO history(agent, ts_ms, kind) VALUES ('a', 1000, 'state'),"
	           " ('a', 1780000000000, 'state')");
	assert_int_equal(store_retention(s, 2000, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(one_int(s, "SELECT count(*) FROM history"), 1);

	exec_ok(s, "INSERT INTO agents(agent, presence) VALUES ('a', 'online'), ('b', 'lost')");
	/* ok (docked, fresh), stale (docked, old), unknown (no facts), missing (away 8 days),
	 * and a phone attached at an agent that is lost: not docked, seen 2 days ago, fresh: ok */
	snprintf(sql, sizeof(sql),
	         "INSERT INTO devices(udid, agent, attached, last_seen, has_facts, last_icloud)"
	         " VALUES ('u1', 'a', 1, %lld, 1, %lld), ('u2', 'a', 1, %lld, 1, %lld),"
	         " ('u3', 'a', 1, %lld, 0, NULL), ('u4', 'a', 0, %lld, 1, %lld),"
	         " ('u5', 'b', 1, %lld, 1, %lld)",
	         (long long)now, (long long)now - 3600, (long long)now, (long long)now - 5 * 86400,
	         (long long)now, (long long)now - 8 * 86400, (long long)now - 8 * 86400,
	         (long long)now - 2 * 86400, (long long)now - 2 * 86400);
	exec_ok(s, sql);
	assert_int_equal(store_sample(s, now), 0);
	assert_int_equal(one_int(s, "SELECT total FROM samples"), 5);
	assert_int_equal(one_int(s, "SELECT ok FROM samples"), 2);
	assert_int_equal(one_int(s, "SELECT stale FROM samples"), 1);
	assert_int_equal(one_int(s, "SELECT unknown FROM samples"), 1);
	assert_int_equal(one_int(s, "SELECT missing FROM samples"), 1);
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_migrate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counters_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_samples, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
