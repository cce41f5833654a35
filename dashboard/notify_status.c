/* SPDX-License-Identifier: MIT */
/*
 * notify_status: what delivery looks like now (notify.h), read on any thread with a connection
 * of its own: GET /api/v1/notify/status and the alerts page's Delivery panel.
 */
#include <cjson/cJSON.h>
#include <sqlite3.h>
#include <stdint.h>

#include "config.h"
#include "http.h"
#include "notify.h"
#include "store.h"
#include "timefmt.h"

#define NOTIFY_DEAD_SHOWN 20 /* dead letters listed */

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

static const char *col(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? s : "";
}

static void add_ms(cJSON *o, const char *name, sqlite3_stmt *st, int i)
{
	char ts[40];

	if (sqlite3_column_type(st, i) != SQLITE_NULL &&
	    timefmt_rfc3339_ms(sqlite3_column_int64(st, i), ts, sizeof(ts)) == 0)
		cJSON_AddStringToObject(o, name, ts);
	else
		cJSON_AddNullToObject(o, name);
}

static cJSON *receiver_json(struct store *s, const struct dash_receiver *rcv, int64_t tot[5])
{
	static const char *const names[] = { "delivered", "messages", "failures", "dead",
		                             "dropped" };
	cJSON *o = cJSON_CreateObject(), *rules = NULL;
	sqlite3_stmt *st = NULL;

	cJSON_AddStringToObject(o, "name", rcv->name);
	cJSON_AddStringToObject(o, "type", notify_type_name(rcv->type));
	cJSON_AddNumberToObject(o, "digest_s", (double)rcv->digest_s);
	rules = cJSON_AddArrayToObject(o, "rules");
	for (size_t i = 0; notify_rules[i]; i++)
		if (notify_receiver_takes(rcv, notify_rules[i]))
			cJSON_AddItemToArray(rules, cJSON_CreateString(notify_rules[i]));
	if (sqlite3_prepare_v2(store_db(s),
	                       "SELECT (SELECT COUNT(*) FROM notify_queue WHERE dead_ms IS NULL AND"
	                       " receiver = ?1), (SELECT MIN(next_ms) FROM notify_queue WHERE"
	                       " dead_ms IS NULL AND receiver = ?1), r.delivered, r.messages,"
	                       " r.failures, r.dead, r.dropped, r.last_sent_ms, r.last_error,"
	                       " r.last_error_ms FROM (SELECT 1) LEFT JOIN notify_receivers r"
	                       " ON r.name = ?1",
	                       -1, &st, NULL) != SQLITE_OK ||
	    (sqlite3_bind_text(st, 1, rcv->name, -1, SQLITE_STATIC), sqlite3_step(st)) !=
	            SQLITE_ROW) {
		sqlite3_finalize(st);
		cJSON_Delete(o);
		return NULL;
	}
	cJSON_AddNumberToObject(o, "queued", (double)sqlite3_column_int64(st, 0));
	add_ms(o, "next_attempt", st, 1);
	for (int i = 0; i < 5; i++) {
		cJSON_AddNumberToObject(o, names[i], (double)sqlite3_column_int64(st, 2 + i));
		tot[i] += sqlite3_column_int64(st, 2 + i);
	}
	add_ms(o, "last_sent", st, 7);
	if (sqlite3_column_type(st, 8) == SQLITE_NULL)
		cJSON_AddNullToObject(o, "last_error");
	else
		cJSON_AddStringToObject(o, "last_error", col(st, 8));
	add_ms(o, "last_error_at", st, 9);
	sqlite3_finalize(st);
	return o;
}

cJSON *notify_status_json(struct store *s, const struct dash_config *cfg)
{
	cJSON *o = cJSON_CreateObject(), *rcvs, *dl;
	sqlite3_stmt *st = NULL;
	int64_t tot[5] = { 0 }, queued = count_live(s);

	if (!o || queued < 0)
		goto fail;
	rcvs = cJSON_CreateArray();
	for (int i = 0; i < DASH_RECEIVERS_MAX; i++) {
		cJSON *r;

		if (cfg->receiver[i].type == DASH_RECEIVER_NONE)
			continue;
		r = receiver_json(s, &cfg->receiver[i], tot);
		if (!r) {
			cJSON_Delete(rcvs);
			goto fail;
		}
		cJSON_AddItemToArray(rcvs, r);
	}
	cJSON_AddNumberToObject(o, "queued", (double)queued);
	cJSON_AddNumberToObject(o, "queue_max", (double)cfg->notify_queue_max);
	cJSON_AddNumberToObject(o, "delivered", (double)tot[0]);
	cJSON_AddNumberToObject(o, "dead", (double)tot[3]);
	cJSON_AddNumberToObject(o, "dropped", (double)tot[4]);
	cJSON_AddItemToObject(o, "receivers", rcvs);
	dl = cJSON_AddArrayToObject(o, "dead_letters");
	if (sqlite3_prepare_v2(store_db(s),
	                       "SELECT id, receiver, alert_id, rule, state, attempts, dead_ms,"
	                       " last_error FROM notify_queue WHERE dead_ms IS NOT NULL"
	                       " ORDER BY id DESC LIMIT ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int(st, 1, NOTIFY_DEAD_SHOWN);
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *d = cJSON_CreateObject();

		cJSON_AddNumberToObject(d, "id", (double)sqlite3_column_int64(st, 0));
		cJSON_AddStringToObject(d, "receiver", col(st, 1));
		cJSON_AddStringToObject(d, "alert_id", col(st, 2));
		cJSON_AddStringToObject(d, "rule", col(st, 3));
		cJSON_AddStringToObject(d, "state", col(st, 4));
		cJSON_AddNumberToObject(d, "attempts", (double)sqlite3_column_int64(st, 5));
		add_ms(d, "dead_at", st, 6);
		cJSON_AddStringToObject(d, "error", col(st, 7));
		cJSON_AddItemToArray(dl, d);
	}
	sqlite3_finalize(st);
	return o;
fail:
	sqlite3_finalize(st);
	cJSON_Delete(o);
	return NULL;
}

void notify_api_status(struct http_request *req, struct http_response *res)
{
	cJSON *o = notify_status_json(req->store, req->svc->cfg);

	if (!o) {
		http_error(res, 500, "internal", "cannot read the notification queue");
		return;
	}
	http_json(res, 200, o);
}
