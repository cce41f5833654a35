/* SPDX-License-Identifier: MIT */
/*
 * store: one SQLite connection with the dashboard's settings (WAL, foreign keys, busy timeout,
 * the judge's SQL function) and the schema brought up to date by numbered migrations.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "judge.h"
#include "log.h"
#include "macro.h"

/* A writer holding the lock commits a batch in milliseconds; waiting this long means trouble. */
#define STORE_BUSY_TIMEOUT_MS 10000

struct store {
	sqlite3 *db;
	sqlite3_stmt *counter_add;
};

static int store_errf(char *err, size_t errsz, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int store_errf(char *err, size_t errsz, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && errsz) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return r;
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t errsz)
{
	char *msg = NULL;
	int r;

	r = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (r != SQLITE_OK) {
		store_errf(err, errsz, 0, "%s", msg ? msg : sqlite3_errstr(r));
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

static int user_version(sqlite3 *db, int *ret)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		goto out;
	if (sqlite3_step(st) != SQLITE_ROW)
		goto out;
	*ret = sqlite3_column_int(st, 0);
	r = 0;
out:
	sqlite3_finalize(st);
	return r;
}

/* Each migration in a transaction of its own, user_version set inside it: a crash between two
 * migrations leaves a file at a known version. */
static int migrate(sqlite3 *db, const char *path, char *err, size_t errsz)
{
	int version, latest, r;
	char sql[64], msg[256];

	latest = store_migrations[store_n_migrations - 1].version;
	r = user_version(db, &version);
	if (r < 0)
		return store_errf(err, errsz, r, "%s: cannot read the schema version: %s", path,
		                  sqlite3_errmsg(db));
	if (version > latest)
		return store_errf(err, errsz, -EPROTO,
		                  "%s: schema version %d is newer than this program knows (%d); "
		                  "run a newer cradle-dashboard",
		                  path, version, latest);
	for (size_t i = 0; i < store_n_migrations; i++) {
		const struct store_migration *m = &store_migrations[i];

		if (m->version <= version)
			continue;
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", m->version);
		if (exec(db, "BEGIN IMMEDIATE", msg, sizeof(msg)) < 0 ||
		    exec(db, m->sql, msg, sizeof(msg)) < 0 || exec(db, sql, msg, sizeof(msg)) < 0 ||
		    exec(db, "COMMIT", msg, sizeof(msg)) < 0) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return store_errf(err, errsz, -EIO, "%s: migration %d failed: %s", path,
			                  m->version, msg);
		}
		log_info("%s: schema migrated to version %d", path, m->version);
	}
	return 0;
}

/* The file holds password and token hashes: create it private before SQLite opens it. */
static int precreate(const char *path, char *err, size_t errsz)
{
	char dir[4096];
	char *slash;
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0750) < 0 && errno != EEXIST)
			return store_errf(err, errsz, -errno, "%s: cannot create directory: %s",
			                  dir, strerror(errno));
	}
	/* Only a file that does not exist yet: close() drops every POSIX lock this process holds
	 * on the file, so opening and closing an existing database here would silently release
	 * the locks of this process's other connections (SQLite's WAL would then be checkpointed
	 * and removed under them by another process, and their commits lost). */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0)
		return store_errf(err, errsz, -errno, "%s: %s", path, strerror(errno));
	close(fd);
	return 0;
}

int store_open(const char *path, const struct dash_config *cfg, struct store **ret, char *err,
               size_t errsz)
{
	struct store *s;
	char msg[256];
	int r;

	*ret = NULL;
	if (strcmp(path, ":memory:") != 0) {
		r = precreate(path, err, errsz);
		if (r < 0)
			return r;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return store_errf(err, errsz, -ENOMEM, "out of memory");
	r = sqlite3_open_v2(path, &s->db,
	                    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (r != SQLITE_OK) {
		r = store_errf(err, errsz, -EIO, "%s: %s", path,
		               s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(r));
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
	/* WAL: readers (HTTP) never block the writer (ingest) and the other way round.
	 * synchronous=NORMAL in WAL survives a crash of the process (not of the machine, where the
	 * last batches may be lost; the agents' retained state brings them back). A checkpoint
	 * (with an fsync) every 8192 pages of WAL (32 MiB) rather than SQLite's 1000: under a burst
	 * of ingest the checkpoints were half the cost of a commit; the file is cut back to 64 MiB
	 * after one. */
	r = exec(s->db,
	         "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;"
	         "PRAGMA temp_store=MEMORY; PRAGMA wal_autocheckpoint=8192;"
	         "PRAGMA journal_size_limit=67108864;",
	         msg, sizeof(msg));
	if (r < 0) {
		r = store_errf(err, errsz, r, "%s: %s", path, msg);
		goto out;
	}
	r = migrate(s->db, path, err, errsz);
	if (r < 0)
		goto out;
	if (cfg && judge_sql_register(s->db, cfg) < 0) {
		r = store_errf(err, errsz, -EIO, "%s: cannot register cradle_status()", path);
		goto out;
	}
	*ret = s;
	s = NULL;
	r = 0;
out:
	store_close(s);
	return r;
}

struct store *store_close(struct store *s)
{
	if (!s)
		return NULL;
	sqlite3_finalize(s->counter_add);
	sqlite3_close_v2(s->db);
	free(s);
	return NULL;
}

struct sqlite3 *store_db(struct store *s)
{
	return s->db;
}

static int simple(struct store *s, const char *sql)
{
	int r = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (r != SQLITE_OK)
		return log_error_errno(-EIO, "store: %s: %s", sql, sqlite3_errmsg(s->db));
	return 0;
}

int store_begin(struct store *s)
{
	return simple(s, "BEGIN IMMEDIATE");
}

int store_commit(struct store *s)
{
	return simple(s, "COMMIT");
}

void store_rollback(struct store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int store_counter_add(struct store *s, const char *name, int64_t n)
{
	int r = -EIO;

	if (!s->counter_add &&
	    sqlite3_prepare_v3(s->db,
	                       "INSERT INTO counters(name, value) VALUES (?1, ?2) "
	                       "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
	                       -1, SQLITE_PREPARE_PERSISTENT, &s->counter_add, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(s->counter_add, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->counter_add, 2, n);
	if (sqlite3_step(s->counter_add) == SQLITE_DONE)
		r = 0;
	sqlite3_reset(s->counter_add);
	sqlite3_clear_bindings(s->counter_add);
out:
	if (r < 0)
		log_error("store: counter '%s': %s", name, sqlite3_errmsg(s->db));
	return r;
}

int store_counter_get(struct store *s, const char *name, int64_t *ret)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	*ret = 0;
	if (sqlite3_prepare_v2(s->db, "SELECT value FROM counters WHERE name = ?1", -1, &st,
	                       NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	switch (sqlite3_step(st)) {
	case SQLITE_ROW:
		*ret = sqlite3_column_int64(st, 0);
		/* fall through */
	case SQLITE_DONE:
		r = 0;
		break;
	default:
		break;
	}
out:
	sqlite3_finalize(st);
	return r;
}

int store_retention(struct store *s, int64_t before_ms, int64_t *ret_deleted)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	if (sqlite3_prepare_v2(s->db, "DELETE FROM history WHERE ts_ms < ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, before_ms);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	if (ret_deleted)
		*ret_deleted = sqlite3_changes64(s->db);
	r = 0;
out:
	if (r < 0)
		log_error("store: retention: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return r;
}

int store_sample(struct store *s, int64_t now)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	/* docked = attached now and the agent online, as judge.h defines it */
	if (sqlite3_prepare_v2(
	            s->db,
	            "INSERT OR REPLACE INTO samples(ts, total, ok, stale, unknown, missing) "
	            "SELECT ?1, count(*), coalesce(sum(st = 'ok'), 0), coalesce(sum(st = 'stale'), 0),"
	            " coalesce(sum(st = 'unknown'), 0), coalesce(sum(st = 'missing'), 0) FROM ("
	            " SELECT cradle_status(d.site, d.attached AND coalesce(a.presence = 'online', 0),"
	            "  d.last_seen, d.has_facts, d.last_icloud, ?1) AS st"
	            " FROM devices d LEFT JOIN agents a ON a.agent = d.agent)",
	            -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	r = 0;
out:
	if (r < 0)
		log_error("store: sample: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	return r;
}

/* The pending rows up to the max-th (by id) are indexed and leave the list in one step. */
int store_search_index(struct store *s, int64_t max, int64_t *ret_left)
{
	static const char *const sql[] = {
		"SELECT max(id) FROM (SELECT id FROM devices_fts_pending ORDER BY id LIMIT ?1)",
		"INSERT INTO devices_fts(rowid, serial, name, udid)"
		" SELECT d.rowid, d.serial, d.name, d.udid FROM devices_fts_pending p"
		" JOIN devices d ON d.rowid = p.id WHERE p.id <= ?1",
		"DELETE FROM devices_fts_pending WHERE id <= ?1",
		"SELECT count(*) FROM devices_fts_pending",
	};
	sqlite3_stmt *st = NULL;
	int64_t arg = max, left = 0;
	bool tx = false;
	int r = -EIO;

	/* nothing pending (the usual case): no write transaction at all */
	if (sqlite3_prepare_v2(s->db, "SELECT EXISTS (SELECT 1 FROM devices_fts_pending)", -1, &st,
	                       NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		goto out;
	if (!sqlite3_column_int(st, 0)) {
		r = 0;
		goto out;
	}
	if (store_begin(s) < 0)
		goto out;
	tx = true;
	for (size_t i = 0; i < ARRAY_SIZE(sql); i++) {
		bool row = i == 0 || i == ARRAY_SIZE(sql) - 1;

		sqlite3_finalize(st);
		if (sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL) != SQLITE_OK)
			goto out;
		sqlite3_bind_int64(st, 1, arg);
		if (sqlite3_step(st) != (row ? SQLITE_ROW : SQLITE_DONE))
			goto out;
		if (i == 0) /* the last id of this chunk: the statements after take it */
			arg = sqlite3_column_int64(st, 0);
	}
	left = sqlite3_column_int64(st, 0);
	r = 0;
out:
	if (r < 0)
		log_error("store: search index: %s", sqlite3_errmsg(s->db));
	sqlite3_finalize(st);
	if (tx && r == 0 && store_commit(s) < 0)
		r = -EIO;
	if (tx && r < 0)
		store_rollback(s);
	if (r == 0 && ret_left)
		*ret_left = left;
	return r;
}
