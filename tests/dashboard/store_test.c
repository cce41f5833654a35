/* SPDX-License-Identifier: MIT */
/*
 * store: a new file gets every migration, WAL and the private mode; reopening keeps the data
 * and migrates nothing; a file from a newer program is refused; counters, retention and the
 * samples row (through the judge's SQL function); a version-5 file gains the search index
 * (migration 6) over the phones it already holds, and the index follows later writes.
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

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "config.h"
#include "query.h"
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

/* "U1,U2" of the device list searched for text (sorted by udid), through query.c. */
static void search(struct store *s, const char *text, const char *want)
{
	struct query_devices q;
	char err[256], got[256] = "";
	const cJSON *d;
	cJSON *r;
	size_t n = 0;

	query_devices_init(&q);
	assert_int_equal(query_devices_param(&q, "q", text, err, sizeof(err)), 0);
	assert_int_equal(query_devices_param(&q, "sort", "udid", err, sizeof(err)), 0);
	r = query_devices_json(s, &q, 2000000000);
	assert_non_null(r);
	cJSON_ArrayForEach(d, cJSON_GetObjectItem(r, "devices"))
		n += (size_t)snprintf(got + n, sizeof(got) - n, "%s%s", n ? "," : "",
		                      cJSON_GetObjectItem(d, "udid")->valuestring);
	cJSON_Delete(r);
	if (strcmp(got, want))
		fail_msg("q=%s: got '%s', want '%s'", text, got, want);
}

static void fts_consistent(struct store *s)
{
	/* the index against the phones, the pending ones indexed as store_search_index() would
	 * (undone after: integrity-check needs every phone in the index) */
	exec_ok(s,
	        "SAVEPOINT fts_check;"
	        "INSERT INTO devices_fts(rowid, serial, name, udid) SELECT d.rowid, d.serial, d.name,"
	        " d.udid FROM devices_fts_pending p JOIN devices d ON d.rowid = p.id;"
	        "INSERT INTO devices_fts(devices_fts, rank) VALUES ('integrity-check', 1);"
	        "ROLLBACK TO fts_check; RELEASE fts_check;");
}

/*
 * A file left at version 5 by an older program, with phones in it: opening it applies
 * migration 6 in place, which lists those phones for indexing; the search finds them before and
 * after; the triggers then follow inserts, renames, upserts and deletes; a reopen migrates
 * nothing.
 */
static void test_migrate_5_search(void **state)
{
	struct fixture *fx = *state;
	struct store *s = NULL;
	char err[256] = "", dir[160], *msg = NULL;
	int64_t left = -1;
	sqlite3 *db;

	snprintf(dir, sizeof(dir), "%s/db", fx->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	for (size_t i = 0; i < store_n_migrations && store_migrations[i].version <= 5; i++)
		if (sqlite3_exec(db, store_migrations[i].sql, NULL, NULL, &msg) != SQLITE_OK)
			fail_msg("migration %d: %s", store_migrations[i].version, msg);
	if (sqlite3_exec(db,
	                 "PRAGMA user_version = 5;"
	                 "INSERT INTO devices(udid, serial, name, agent, last_seen) VALUES"
	                 " ('U1', 'SNAAA1', 'Émilie''s iPhone', 'a', 1),"
	                 " ('U2', 'SNBBB2', 'Lab 50% off', 'a', 1),"
	                 " ('U3', 'X', 'Kiosk', 'b', 1);",
	                 NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("version 5 file: %s", msg);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);

	assert_int_equal(store_open(fx->path, &fx->cfg, &s, err, sizeof(err)), 0);
	assert_int_equal(one_int(s, "PRAGMA user_version"), 6);
	/* the phones already there wait for store_search_index(); the search reads them */
	assert_int_equal(one_int(s, "SELECT count(*) FROM devices_fts_pending"), 3);
	fts_consistent(s);
	search(s, "snbb", "U2");
	search(s, "ÉMI", "U1");
	assert_int_equal(store_search_index(s, 2, &left), 0);
	assert_int_equal(left, 1);
	assert_int_equal(store_search_index(s, 2, &left), 0);
	assert_int_equal(left, 0);
	assert_int_equal(one_int(s, "SELECT count(*) FROM devices_fts WHERE devices_fts MATCH"
	                            " '\"snbbb\"'"),
	                 1);
	fts_consistent(s);
	search(s, "snbb", "U2");
	search(s, "50% o", "U2");
	search(s, "0%", "U2");
	search(s, "ÉMI", "U1");
	/* LIKE folds ASCII letters only: the index's wider folding finds U1, the answer not */
	search(s, "émi", "");
	search(s, "'s iphone", "U1");
	search(s, "ki", "U3"); /* 2 characters: the scan */
	search(s, "u3", "U3");

	exec_ok(s, "INSERT INTO devices(udid, serial, name, agent, last_seen)"
	           " VALUES ('U4', 'SNCCC4', 'Kiosk two', 'b', 1);"
	           "UPDATE devices SET name = 'Desk' WHERE udid = 'U3';"
	           "UPDATE devices SET attached = 1 WHERE udid = 'U2';"
	           "INSERT INTO devices(udid, serial, name, agent, last_seen)"
	           " VALUES ('U2', 'SNDDD2', 'Lab', 'a', 1) ON CONFLICT(udid) DO UPDATE"
	           " SET serial = excluded.serial, name = excluded.name;"
	           "DELETE FROM devices WHERE udid = 'U1';");
	fts_consistent(s);
	/* U4 waits for store_search_index(); the search reads it all the same */
	assert_int_equal(one_int(s, "SELECT count(*) FROM devices_fts_pending"), 1);
	search(s, "kiosk", "U4");
	search(s, "desk", "U3");
	search(s, "Émi", "");
	search(s, "snbb", "");
	search(s, "snddd", "U2");
	/* a pending phone renamed, another one gone before it was indexed */
	exec_ok(s, "INSERT INTO devices(udid, serial, name, agent, last_seen)"
	           " VALUES ('U5', 'SNEEE5', 'Gone', 'b', 1);"
	           "UPDATE devices SET name = 'Kiosk three' WHERE udid = 'U4';"
	           "DELETE FROM devices WHERE udid = 'U5';");
	fts_consistent(s);
	assert_int_equal(store_search_index(s, 100, &left), 0);
	assert_int_equal(left, 0);
	assert_int_equal(one_int(s, "SELECT count(*) FROM devices_fts_pending"), 0);
	fts_consistent(s);
	search(s, "kiosk", "U4");
	search(s, "three", "U4");
	search(s, "gone", "");
	search(s, "desk", "U3");
	assert_int_equal(store_search_index(s, 100, &left), 0); /* nothing to do */
	s = store_close(s);

	assert_int_equal(store_open(fx->path, &fx->cfg, &s, err, sizeof(err)), 0);
	assert_int_equal(one_int(s, "PRAGMA user_version"), 6);
	fts_consistent(s);
	search(s, "SNCC", "U4");
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_migrate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_counters_tx, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retention_samples, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_5_search, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
