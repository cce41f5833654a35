/* SPDX-License-Identifier: MIT */
/*
 * notify: the persistent queue and its worker (notify.h). The receivers' configuration is
 * notify_config.c, the status notify_status.c, the sending itself (bodies, libcurl)
 * notify_send.c.
 *
 * The receivers are process-wide (notify_enqueue's contract has no handle): notify_start()
 * publishes the configuration the loop thread's notify_enqueue() reads. The worker polls its
 * queue at most every NOTIFY_POLL_MS and is woken sooner by an enqueue (whose rows it sees once
 * the caller's transaction commits).
 */
#include "notify.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "notify_send.h"
#include "store.h"
#include "timefmt.h"

#define NOTIFY_POLL_MS 1000 /* the worker looks at its queue at least this often */
/* An enqueue wakes the worker before its caller commits; for a while after that, the worker
 * looks this often, so a notification goes out soon after the commit, not a poll later. */
#define NOTIFY_KICK_POLL_MS 100
#define NOTIFY_KICK_FOR_MS  3000
#define NOTIFY_DIGEST_MAX   500 /* notifications in one digest; more wait for the next one */

struct notify {
	const struct dash_config *cfg;
	struct store *store; /* the worker's own connection */
	pthread_t thread;
	bool running;
	atomic_bool stop;
};

/* What notify_enqueue reads (loop thread) and the worker's wake-up. */
static _Atomic(const struct dash_config *) notify_cfg;
static pthread_mutex_t notify_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t notify_cond; /* CLOCK_MONOTONIC: set up by notify_start */
static bool notify_cond_ready;     /* under notify_lock: a worker waits on notify_cond */
static bool notify_kicked;
/* Undelivered rows, an upper bound (loop thread only): enqueue counts the queue only when this
 * says it may be full, since the worker's deletions only ever lower the real number. */
static int64_t notify_live_hint = -1;
/* Loop thread: between notify_hold() and notify_release() the bound waits for the release. */
static bool notify_held, notify_bound_due;
/* notify_enqueue's INSERT, prepared once per connection (loop thread only): an alert storm
 * queues tens of thousands of rows in one pass. The store closes with sqlite3_close_v2, so a
 * connection closed under it lingers until the statement is finalized here, never reused. */
static sqlite3_stmt *notify_insert;
static sqlite3 *notify_insert_db;

/* --- the queue --- */

static void add_time(cJSON *o, const char *name, int64_t t)
{
	char ts[40];

	if (t > 0 && timefmt_rfc3339(t, ts, sizeof(ts)) == 0)
		cJSON_AddStringToObject(o, name, ts);
	else
		cJSON_AddNullToObject(o, name);
}

/* The alert object of a webhook body (dashboard/README.md "Notifications"). */
static char *alert_json(const struct notify_alert *a)
{
	cJSON *o = cJSON_CreateObject(), *detail = NULL;
	const char *kind = a->subject_kind ? a->subject_kind : "";
	char *s;

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "id", a->alert_id);
	cJSON_AddStringToObject(o, "rule", a->rule);
	cJSON_AddStringToObject(o, "state", a->state);
	cJSON_AddStringToObject(o, "subject_kind", kind);
	cJSON_AddStringToObject(o, "subject", a->subject ? a->subject : "");
	if (kind[0] && strcmp(kind, "site") != 0 && strcmp(kind, "station") != 0)
		cJSON_AddStringToObject(o, kind, a->subject ? a->subject : "");
	cJSON_AddStringToObject(o, "site", a->site ? a->site : "");
	cJSON_AddStringToObject(o, "station", a->station ? a->station : "");
	cJSON_AddStringToObject(o, "summary", a->summary ? a->summary : "");
	if (a->detail_json)
		detail = cJSON_Parse(a->detail_json);
	if (!cJSON_IsObject(detail)) {
		cJSON_Delete(detail);
		detail = cJSON_CreateObject();
	}
	cJSON_AddItemToObject(o, "detail", detail);
	add_time(o, "fired_at", a->fired_at);
	add_time(o, "resolved_at", a->resolved_at);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static int exec_sql(struct store *s, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(store_db(s), sql, NULL, NULL, &msg) != SQLITE_OK) {
		log_error("notify: %s", msg ? msg : sqlite3_errmsg(store_db(s)));
		sqlite3_free(msg);
		return -EIO;
	}
	return 0;
}

static int64_t count_live(struct store *s)
{
	sqlite3_stmt *st = NULL;
	int64_t n = -1;

	if (sqlite3_prepare_v2(store_db(s),
	                       "SELECT COUNT(*) FROM notify_queue WHERE dead_ms IS NULL", -1, &st,
	                       NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* A full queue drops its oldest undelivered rows: counted per receiver, logged. */
static int bound(struct store *s, const struct dash_config *cfg)
{
	sqlite3_stmt *st = NULL;
	int64_t live = count_live(s), excess;
	int r = -EIO;

	if (live < 0)
		return -EIO;
	notify_live_hint = live;
	excess = live - (int64_t)cfg->notify_queue_max;
	if (excess <= 0)
		return 0;
	if (sqlite3_prepare_v2(store_db(s),
	                       "SELECT receiver, COUNT(*) FROM (SELECT receiver FROM notify_queue"
	                       " WHERE dead_ms IS NULL ORDER BY id LIMIT ?1) GROUP BY receiver",
	                       -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, excess);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		int64_t n = sqlite3_column_int64(st, 1);
		sqlite3_stmt *u = NULL;

		log_warn("notify: queue full (%" PRIu64 " undelivered): %" PRId64
		         " oldest notifications for receiver %s dropped",
		         cfg->notify_queue_max, n, name);
		if (sqlite3_prepare_v2(store_db(s),
		                       "INSERT INTO notify_receivers(name, dropped) VALUES(?1, ?2)"
		                       " ON CONFLICT(name) DO UPDATE SET dropped = dropped + ?2",
		                       -1, &u, NULL) == SQLITE_OK) {
			sqlite3_bind_text(u, 1, name, -1, SQLITE_TRANSIENT);
			sqlite3_bind_int64(u, 2, n);
			sqlite3_step(u);
		}
		sqlite3_finalize(u);
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(store_db(s),
	                       "DELETE FROM notify_queue WHERE id IN (SELECT id FROM notify_queue"
	                       " WHERE dead_ms IS NULL ORDER BY id LIMIT ?1)",
	                       -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, excess);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	notify_live_hint = live - excess;
	r = store_counter_add(s, "notify_dropped", excess);
out:
	if (r < 0)
		log_error("notify: bounding the queue: %s", sqlite3_errmsg(store_db(s)));
	sqlite3_finalize(st);
	return r;
}

static void kick(void)
{
	pthread_mutex_lock(&notify_lock);
	notify_kicked = true;
	if (notify_cond_ready)
		pthread_cond_signal(&notify_cond);
	pthread_mutex_unlock(&notify_lock);
}

/* All or nothing: a caller that is refused offers the alert again later, so the rows this call
 * queued for the receivers before the failure go (ids grow within the caller's transaction). */
static void unqueue(struct store *s, int64_t first, const char *alert_id)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(store_db(s),
	                       "DELETE FROM notify_queue WHERE id >= ?1 AND alert_id = ?2", -1, &st,
	                       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, first);
		sqlite3_bind_text(st, 2, alert_id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			log_error("notify: cannot take back alert %s: %s", alert_id,
			          sqlite3_errmsg(store_db(s)));
	}
	sqlite3_finalize(st);
}

static sqlite3_stmt *insert_stmt(sqlite3 *db)
{
	if (notify_insert && notify_insert_db == db)
		return notify_insert;
	sqlite3_finalize(notify_insert);
	notify_insert = NULL;
	notify_insert_db = db;
	if (sqlite3_prepare_v3(
	            db,
	            "INSERT INTO notify_queue(receiver, alert_id, rule, state, alert_json,"
	            " created_ms, next_ms) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6)",
	            -1, SQLITE_PREPARE_PERSISTENT, &notify_insert, NULL) != SQLITE_OK)
		notify_insert = NULL;
	return notify_insert;
}

int notify_enqueue(struct store *s, const struct notify_alert *a)
{
	const struct dash_config *cfg = atomic_load(&notify_cfg);
	sqlite3_stmt *st = NULL;
	char *json = NULL;
	int64_t now = wall_now_ms(), first = 0;
	int n = 0, r = 0;

	if (!s || !a || !a->alert_id || !a->rule || !a->state)
		return -EINVAL;
	if (!cfg)
		return 0;
	for (int i = 0; i < DASH_RECEIVERS_MAX; i++) {
		const struct dash_receiver *rcv = &cfg->receiver[i];

		if (!notify_receiver_takes(rcv, a->rule))
			continue;
		r = -ENOMEM;
		if (!json && !(json = alert_json(a)))
			goto out;
		r = -EIO;
		if (!st && !(st = insert_stmt(store_db(s))))
			goto out;
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, rcv->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, a->alert_id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, a->rule, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, a->state, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, json, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, now);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out;
		if (n++ == 0)
			first = sqlite3_last_insert_rowid(store_db(s));
		r = 0;
	}
	if (n > 0) {
		if (notify_live_hint >= 0)
			notify_live_hint += n;
		/* a failure to bound is logged; the rows stay (the queue a little over its bound)
		 */
		if (notify_live_hint < 0 || notify_live_hint > (int64_t)cfg->notify_queue_max) {
			if (notify_held)
				notify_bound_due = true;
			else
				(void)bound(s, cfg);
		}
		kick();
	}
out:
	if (r == -EIO)
		log_error("notify: cannot queue alert %s: %s", a->alert_id,
		          sqlite3_errmsg(store_db(s)));
	if (r < 0 && n > 0)
		unqueue(s, first, a->alert_id);
	if (st) { /* kept for the next call; the bound strings are this call's */
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
	}
	free(json);
	return r;
}

void notify_hold(void)
{
	notify_held = true;
	notify_bound_due = false;
}

int notify_release(struct store *s)
{
	const struct dash_config *cfg = atomic_load(&notify_cfg);
	bool due = notify_bound_due;

	notify_held = notify_bound_due = false;
	if (!s || !due || !cfg)
		return 0;
	return bound(s, cfg);
}

/* --- the worker --- */

struct batch {
	int n;
	int64_t ids[NOTIFY_DIGEST_MAX];
	int64_t attempts[NOTIFY_DIGEST_MAX];
	cJSON *alerts;
};

static int64_t backoff_ms(const struct dash_config *cfg, int64_t attempts)
{
	int64_t d = cfg->notify_backoff_s * 1000, max = cfg->notify_backoff_max_s * 1000;

	for (int64_t i = 1; i < attempts && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	/* "equal jitter": half fixed, half random, so receivers that failed together spread out */
	return d / 2 + (int64_t)arc4random_uniform((uint32_t)(d / 2 + 1));
}

static int64_t receiver_last_sent(struct store *s, const char *name)
{
	sqlite3_stmt *st = NULL;
	int64_t t = 0;

	if (sqlite3_prepare_v2(store_db(s),
	                       "SELECT last_sent_ms FROM notify_receivers WHERE name = ?1", -1, &st,
	                       NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			t = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return t;
}

/* The receiver's rows to send now: 0 none (*due lowered to when), 1 some, -EIO. */
static int batch_load(struct store *s, const struct dash_receiver *rcv, int64_t now, int64_t *due,
                      struct batch *b)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO, limit = rcv->digest_s > 0 ? NOTIFY_DIGEST_MAX : 1;

	b->n = 0;
	if (sqlite3_prepare_v2(store_db(s),
	                       "SELECT id, attempts, next_ms, alert_json FROM notify_queue"
	                       " WHERE dead_ms IS NULL AND receiver = ?1 ORDER BY id LIMIT ?2",
	                       -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, rcv->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, limit);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t next = sqlite3_column_int64(st, 2);

		if (b->n == 0) { /* the head decides for the receiver: order is kept */
			int64_t when = next;

			if (rcv->digest_s > 0) {
				int64_t last = receiver_last_sent(s, rcv->name);

				if (last > 0 && last + rcv->digest_s * 1000 > when)
					when = last + rcv->digest_s * 1000;
			}
			if (when > now) {
				if (when < *due)
					*due = when;
				r = 0;
				goto out;
			}
			b->alerts = cJSON_CreateArray();
		}
		b->ids[b->n] = sqlite3_column_int64(st, 0);
		b->attempts[b->n] = sqlite3_column_int64(st, 1);
		cJSON_AddItemToArray(b->alerts,
		                     cJSON_Parse((const char *)sqlite3_column_text(st, 3)));
		b->n++;
	}
	r = b->n > 0 ? 1 : 0;
out:
	sqlite3_finalize(st);
	return r;
}

static int bind_step(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

static int record_sent(struct store *s, const struct dash_receiver *rcv, const struct batch *b,
                       int64_t now)
{
	sqlite3_stmt *del = NULL, *up = NULL;
	int r = -EIO;

	if (store_begin(s) < 0)
		return -EIO;
	if (sqlite3_prepare_v2(store_db(s), "DELETE FROM notify_queue WHERE id = ?1", -1, &del,
	                       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
	            store_db(s),
	            "INSERT INTO notify_receivers(name, last_sent_ms, messages, delivered)"
	            " VALUES(?1, ?2, 1, ?3) ON CONFLICT(name) DO UPDATE SET"
	            " last_sent_ms = ?2, messages = messages + 1,"
	            " delivered = delivered + ?3",
	            -1, &up, NULL) != SQLITE_OK)
		goto out;
	for (int i = 0; i < b->n; i++) {
		sqlite3_bind_int64(del, 1, b->ids[i]);
		if (bind_step(del) < 0)
			goto out;
	}
	sqlite3_bind_text(up, 1, rcv->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(up, 2, now);
	sqlite3_bind_int(up, 3, b->n);
	if (bind_step(up) < 0)
		goto out;
	r = store_commit(s);
out:
	if (r < 0) {
		log_error("notify: recording a delivery: %s", sqlite3_errmsg(store_db(s)));
		store_rollback(s);
	}
	sqlite3_finalize(del);
	sqlite3_finalize(up);
	return r;
}

/* A failed attempt: each row retried later, or a dead letter. */
static int record_failed(struct store *s, const struct dash_config *cfg,
                         const struct dash_receiver *rcv, const struct batch *b, bool permanent,
                         const char *error, int64_t now)
{
	sqlite3_stmt *row = NULL, *up = NULL, *trim = NULL;
	int64_t dead = 0, next = now + backoff_ms(cfg, b->attempts[0] + 1);
	int r = -EIO;

	if (store_begin(s) < 0)
		return -EIO;
	if (sqlite3_prepare_v2(store_db(s),
	                       "UPDATE notify_queue SET attempts = ?2, next_ms = ?3, dead_ms = ?4,"
	                       " last_error = ?5 WHERE id = ?1",
	                       -1, &row, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
	            store_db(s),
	            "INSERT INTO notify_receivers(name, last_error, last_error_ms, failures,"
	            " dead) VALUES(?1, ?2, ?3, 1, ?4) ON CONFLICT(name) DO UPDATE SET"
	            " last_error = ?2, last_error_ms = ?3, failures = failures + 1,"
	            " dead = dead + ?4",
	            -1, &up, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(
	            store_db(s),
	            "DELETE FROM notify_queue WHERE dead_ms IS NOT NULL AND id <= (SELECT id"
	            " FROM notify_queue WHERE dead_ms IS NOT NULL ORDER BY id DESC"
	            " LIMIT 1 OFFSET ?1)",
	            -1, &trim, NULL) != SQLITE_OK)
		goto out;
	for (int i = 0; i < b->n; i++) {
		int64_t attempts = b->attempts[i] + 1;
		bool is_dead = permanent || attempts >= (int64_t)cfg->notify_attempts;

		sqlite3_bind_int64(row, 1, b->ids[i]);
		sqlite3_bind_int64(row, 2, attempts);
		sqlite3_bind_int64(row, 3, next);
		if (is_dead)
			sqlite3_bind_int64(row, 4, now);
		else
			sqlite3_bind_null(row, 4);
		sqlite3_bind_text(row, 5, error, -1, SQLITE_STATIC);
		if (bind_step(row) < 0)
			goto out;
		dead += is_dead;
	}
	sqlite3_bind_text(up, 1, rcv->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(up, 2, error, -1, SQLITE_STATIC);
	sqlite3_bind_int64(up, 3, now);
	sqlite3_bind_int64(up, 4, dead);
	if (bind_step(up) < 0)
		goto out;
	/* dead letters are kept up to notify_queue_max rows; the counts keep the total */
	sqlite3_bind_int64(trim, 1, (int64_t)cfg->notify_queue_max);
	if (dead > 0 && bind_step(trim) < 0)
		goto out;
	r = store_commit(s);
out:
	if (r < 0) {
		log_error("notify: recording a failure: %s", sqlite3_errmsg(store_db(s)));
		store_rollback(s);
	} else if (dead > 0) {
		log_warn("notify: receiver %s: %" PRId64 " notification%s now dead letters (%s)",
		         rcv->name, dead, dead == 1 ? "" : "s", error);
	} else {
		log_info("notify: receiver %s: attempt %" PRId64
		         " failed (%s); retrying in %" PRId64 " ms",
		         rcv->name, b->attempts[0] + 1, error, next - now);
	}
	sqlite3_finalize(row);
	sqlite3_finalize(up);
	sqlite3_finalize(trim);
	return r;
}

/* One message to receiver i if one is due: 1 sent or failed, 0 nothing due, -errno. */
static int step(struct notify *n, const struct dash_receiver *rcv, int64_t *due)
{
	struct batch *b = calloc(1, sizeof(*b));
	enum notify_send_result res;
	char err[256];
	int64_t now = wall_now_ms();
	int r;

	if (!b)
		return -ENOMEM;
	r = batch_load(n->store, rcv, now, due, b);
	if (r <= 0)
		goto out;
	res = notify_send(rcv, b->alerts, rcv->digest_s > 0, n->cfg->notify_timeout_s, &n->stop,
	                  err, sizeof(err));
	now = wall_now_ms();
	if (res == NOTIFY_SENT) {
		log_debug("notify: receiver %s: %d notification%s delivered", rcv->name, b->n,
		          b->n == 1 ? "" : "s");
		r = record_sent(n->store, rcv, b, now);
	} else if (res == NOTIFY_ABORTED) {
		r = 0; /* stays queued as it was */
	} else {
		r = record_failed(n->store, n->cfg, rcv, b, res == NOTIFY_PERMANENT, err, now);
	}
	if (r == 0)
		r = 1;
out:
	cJSON_Delete(b->alerts);
	free(b);
	return r;
}

static void *worker(void *data)
{
	struct notify *n = data;
	int64_t kicked_at = 0;

	while (!atomic_load(&n->stop)) {
		int64_t now = wall_now_ms(), due = now + NOTIFY_POLL_MS;
		bool worked = false;
		struct timespec ts;

		for (int i = 0; i < DASH_RECEIVERS_MAX && !atomic_load(&n->stop); i++)
			if (n->cfg->receiver[i].type != DASH_RECEIVER_NONE &&
			    step(n, &n->cfg->receiver[i], &due) > 0)
				worked = true;
		if (worked)
			continue;
		now = wall_now_ms();
		if (due - now > NOTIFY_POLL_MS)
			due = now + NOTIFY_POLL_MS;
		if (now - kicked_at < NOTIFY_KICK_FOR_MS && due - now > NOTIFY_KICK_POLL_MS)
			due = now + NOTIFY_KICK_POLL_MS;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if (due > now) {
			int64_t ns = ts.tv_nsec + (due - now) % 1000 * 1000000;

			ts.tv_sec += (due - now) / 1000 + ns / 1000000000;
			ts.tv_nsec = ns % 1000000000;
		}
		pthread_mutex_lock(&notify_lock);
		if (!notify_kicked && !atomic_load(&n->stop) && due > now)
			pthread_cond_timedwait(&notify_cond, &notify_lock, &ts);
		if (notify_kicked)
			kicked_at = wall_now_ms();
		notify_kicked = false;
		pthread_mutex_unlock(&notify_lock);
	}
	return NULL;
}

/* Rows of receivers no longer in the configuration would wait forever: dead letters. */
static int orphans(struct store *s, const struct dash_config *cfg)
{
	char sql[4096], names[1200] = "";
	size_t len = 0;
	int r;

	for (int i = 0; i < DASH_RECEIVERS_MAX; i++) {
		const struct dash_receiver *rcv = &cfg->receiver[i];

		if (rcv->type != DASH_RECEIVER_NONE)
			len += (size_t)snprintf(names + len, sizeof(names) - len, "%s'%s'",
			                        len ? "," : "",
			                        rcv->name); /* names: [A-Za-z0-9_.-] */
	}
	snprintf(sql, sizeof(sql),
	         "INSERT INTO notify_receivers(name, dead) SELECT receiver, COUNT(*) FROM"
	         " notify_queue WHERE dead_ms IS NULL AND receiver NOT IN (%s) GROUP BY receiver"
	         " ON CONFLICT(name) DO UPDATE SET dead = dead + excluded.dead;"
	         "UPDATE notify_queue SET dead_ms = %" PRId64 ","
	         " last_error = 'receiver no longer configured'"
	         " WHERE dead_ms IS NULL AND receiver NOT IN (%s);",
	         names, wall_now_ms(), names);
	if (store_begin(s) < 0)
		return -EIO;
	r = exec_sql(s, sql);
	if (r == 0)
		r = store_commit(s);
	else
		store_rollback(s);
	return r;
}

/* No worker waits any more: kick() stops signalling, the condition variable goes. */
static void cond_release(void)
{
	pthread_mutex_lock(&notify_lock);
	notify_cond_ready = false;
	pthread_mutex_unlock(&notify_lock);
	pthread_cond_destroy(&notify_cond);
}

void notify_configure(const struct dash_config *cfg)
{
	if (!cfg) { /* withdrawn: release the connection the statement holds */
		sqlite3_finalize(notify_insert);
		notify_insert = NULL;
		notify_insert_db = NULL;
	}
	notify_live_hint = -1;
	atomic_store(&notify_cfg, cfg);
}

int notify_start(const struct dash_config *cfg, struct notify **ret)
{
	struct notify *n = calloc(1, sizeof(*n));
	pthread_condattr_t ca;
	char err[512];
	int r, nrcv = 0;

	*ret = NULL;
	if (!n)
		return -ENOMEM;
	n->cfg = cfg;
	for (int i = 0; i < DASH_RECEIVERS_MAX; i++)
		nrcv += cfg->receiver[i].type != DASH_RECEIVER_NONE;
	r = store_open(cfg->db, cfg, &n->store, err, sizeof(err));
	if (r < 0) {
		log_error_errno(r, "notify: %s", err);
		goto out;
	}
	r = orphans(n->store, cfg);
	if (r < 0 || nrcv == 0)
		goto out;
	r = -EIO;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("notify: libcurl cannot start");
		goto out;
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&notify_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_lock(&notify_lock);
	notify_cond_ready = true;
	pthread_mutex_unlock(&notify_lock);
	notify_configure(cfg);
	r = -pthread_create(&n->thread, NULL, worker, n);
	if (r < 0) {
		log_error_errno(r, "notify: cannot start the worker");
		notify_configure(NULL);
		cond_release();
		goto out;
	}
	n->running = true;
	log_info("notify: %d receiver%s, queue of %" PRIu64, nrcv, nrcv == 1 ? "" : "s",
	         cfg->notify_queue_max);
out:
	if (r < 0 || !n->running) {
		n = notify_stop(n);
		if (r < 0)
			return r;
	}
	*ret = n;
	return 0;
}

struct notify *notify_stop(struct notify *n)
{
	if (!n)
		return NULL;
	if (n->running) {
		notify_configure(NULL);
		atomic_store(&n->stop, true);
		kick();
		pthread_join(n->thread, NULL);
		cond_release();
		curl_global_cleanup();
	}
	n->store = store_close(n->store);
	free(n);
	return NULL;
}
