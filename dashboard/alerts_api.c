/* SPDX-License-Identifier: MIT */
/*
 * alerts_api: the read side of alerts and the silences API (alerts.h; dashboard/API.md has the
 * shapes). Handlers run on HTTP threads with the request's own store connection; a silence
 * written here takes effect at the engine's next pass (alert_interval).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "macro.h"
#include "parse.h"
#include "store.h"
#include "timefmt.h"

#define ALERTS_API_LIMIT_DEFAULT 100
#define ALERTS_API_LIMIT_MAX     1000
#define SILENCE_TEXT_MAX         500

static void add_time(cJSON *o, const char *name, sqlite3_stmt *st, int col)
{
	char buf[40];

	if (sqlite3_column_type(st, col) == SQLITE_NULL ||
	    timefmt_rfc3339(sqlite3_column_int64(st, col), buf, sizeof(buf)) < 0)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddStringToObject(o, name, buf);
}

static const char *col(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);

	return s ? s : "";
}

#define ALERT_COLUMNS                                                                   \
 "id, rule, subject_kind, subject, site, station, agent, state, fired_at, resolved_at," \
 " silence_id, inhibited_by, notified, summary, detail_json"

static cJSON *alert_row_json(sqlite3_stmt *st)
{
	cJSON *o = cJSON_CreateObject();
	const char *kind = col(st, 2), *state = col(st, 7);
	bool silenced = sqlite3_column_type(st, 10) != SQLITE_NULL;
	bool inhibited = sqlite3_column_type(st, 11) != SQLITE_NULL;
	cJSON *detail;

	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
	cJSON_AddStringToObject(o, "rule", col(st, 1));
	cJSON_AddStringToObject(o, "state",
	                        strcmp(state, "firing") == 0 && silenced ? "silenced" : state);
	cJSON_AddStringToObject(o, "subject_kind", kind);
	if (strcmp(kind, "udid") == 0)
		cJSON_AddStringToObject(o, "udid", col(st, 3));
	if (strcmp(kind, "agent") == 0 || col(st, 6)[0])
		cJSON_AddStringToObject(o, "agent", col(st, 6));
	cJSON_AddStringToObject(o, "site", col(st, 4));
	cJSON_AddStringToObject(o, "station", col(st, 5));
	add_time(o, "fired_at", st, 8);
	add_time(o, "resolved_at", st, 9);
	cJSON_AddStringToObject(o, "summary", col(st, 13));
	detail = cJSON_Parse(col(st, 14));
	cJSON_AddItemToObject(o, "detail", detail ? detail : cJSON_CreateObject());
	cJSON_AddBoolToObject(o, "silenced", silenced);
	if (silenced)
		cJSON_AddNumberToObject(o, "silence_id", (double)sqlite3_column_int64(st, 10));
	else
		cJSON_AddNullToObject(o, "silence_id");
	cJSON_AddBoolToObject(o, "inhibited", inhibited);
	if (inhibited)
		cJSON_AddNumberToObject(o, "inhibited_by", (double)sqlite3_column_int64(st, 11));
	else
		cJSON_AddNullToObject(o, "inhibited_by");
	cJSON_AddBoolToObject(o, "notified", sqlite3_column_int(st, 12) != 0);
	return o;
}

cJSON *alerts_json(struct store *s, int64_t id, int64_t now)
{
	sqlite3_stmt *st = NULL;
	cJSON *o = NULL;

	(void)now;
	if (sqlite3_prepare_v2(store_db(s), "SELECT " ALERT_COLUMNS " FROM alerts WHERE id = ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		o = alert_row_json(st);
out:
	sqlite3_finalize(st);
	return o;
}

static void add_duration(cJSON *o, const char *name, int64_t v,
                         const struct dash_site_durations *sites)
{
	cJSON *r = cJSON_AddObjectToObject(o, name);
	cJSON *by = cJSON_CreateObject();

	cJSON_AddNumberToObject(r, "seconds", (double)v);
	for (int i = 0; sites && i < sites->n; i++)
		cJSON_AddNumberToObject(by, sites->v[i].site, (double)sites->v[i].stale_after_s);
	cJSON_AddItemToObject(r, "by_site", by);
}

cJSON *alerts_rules_json(const struct dash_config *cfg)
{
	cJSON *root = cJSON_CreateObject();
	cJSON *rules = cJSON_AddArrayToObject(root, "rules");
	cJSON *r;

	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "rule", "backup_stale");
	cJSON_AddStringToObject(r, "description", "no iCloud backup for longer than the threshold");
	add_duration(r, "threshold", cfg->alert_backup_stale_s, &cfg->alert_backup_stale_site);
	cJSON_AddStringToObject(r, "inhibited_by", "site_network");
	cJSON_AddItemToArray(rules, r);
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "rule", "device_missing");
	cJSON_AddStringToObject(r, "description",
	                        "not docked anywhere for longer than the threshold");
	add_duration(r, "threshold", cfg->alert_device_missing_s, &cfg->alert_device_missing_site);
	cJSON_AddStringToObject(r, "inhibited_by", "agent_offline");
	cJSON_AddItemToArray(rules, r);
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "rule", "agent_offline");
	cJSON_AddStringToObject(
	        r, "description",
	        "an agent offline (graceful or lost) for longer than the threshold");
	add_duration(r, "threshold", cfg->alert_agent_offline_s, &cfg->alert_agent_offline_site);
	cJSON_AddNullToObject(r, "inhibited_by");
	cJSON_AddItemToArray(rules, r);
	r = cJSON_CreateObject();
	cJSON_AddStringToObject(r, "rule", "site_network");
	cJSON_AddStringToObject(r, "description",
	                        "a site's (or station's) stale phones mostly fail with "
	                        "network_unavailable: its Wi-Fi, not the phones");
	cJSON_AddNumberToObject(r, "min_pct", cfg->alert_site_network_pct);
	cJSON_AddNumberToObject(r, "min_phones", cfg->alert_site_network_min);
	cJSON_AddNullToObject(r, "inhibited_by");
	cJSON_AddItemToArray(rules, r);
	cJSON_AddNumberToObject(root, "interval_s", (double)cfg->alert_interval_s);
	cJSON_AddNumberToObject(root, "for_s", (double)cfg->alert_for_s);
	cJSON_AddNumberToObject(root, "clear_for_s", (double)cfg->alert_clear_for_s);
	return root;
}

static void internal_error(struct http_response *res)
{
	http_error(res, 500, "internal", "the store could not answer; see the service log");
}

static bool count_param(struct http_request *req, struct http_response *res, const char *name,
                        int64_t max, int64_t *ret)
{
	const char *v = http_query(req, name);
	uint64_t n;

	if (!v)
		return true;
	if (parse_uint(v, &n) < 0 || n > (uint64_t)max) {
		http_error(res, 400, "bad_parameter", "%s: want an integer from 0 to %lld", name,
		           (long long)max);
		return false;
	}
	*ret = (int64_t)n;
	return true;
}

/* GET /api/v1/alerts?rule=&state=&site=&limit=&offset= */
void alerts_api_list(struct http_request *req, struct http_response *res)
{
	const char *rule = http_query(req, "rule"), *state = http_query(req, "state");
	const char *site = http_query(req, "site");
	static const char *const states[] = { "firing", "resolved", "silenced" };
	int64_t limit = ALERTS_API_LIMIT_DEFAULT, offset = 0, total = 0;
	sqlite3_stmt *cnt = NULL, *st = NULL;
	enum alerts_rule rr;
	char where[512];
	cJSON *root = NULL, *arr;
	bool ok = false;

	if (rule && alerts_rule_from_name(rule, &rr) < 0) {
		http_error(
		        res, 400, "bad_parameter",
		        "rule: want backup_stale, device_missing, agent_offline or site_network");
		return;
	}
	if (state) {
		bool known = false;

		for (size_t i = 0; i < ARRAY_SIZE(states); i++)
			known |= strcmp(state, states[i]) == 0;
		if (!known) {
			http_error(res, 400, "bad_parameter",
			           "state: want firing, resolved or silenced");
			return;
		}
	}
	if (!count_param(req, res, "limit", ALERTS_API_LIMIT_MAX, &limit) ||
	    !count_param(req, res, "offset", INT32_MAX, &offset))
		return;
	snprintf(where, sizeof(where),
	         " WHERE (?1 IS NULL OR rule = ?1) AND (?2 IS NULL OR site = ?2)%s",
	         !state                         ? ""
	         : strcmp(state, "firing") == 0 ? " AND state = 'firing' AND silence_id IS NULL"
	         : strcmp(state, "silenced") == 0
	                 ? " AND state = 'firing' AND silence_id IS NOT NULL"
	                 : " AND state = 'resolved'");
	{
		char sql[1024];

		snprintf(sql, sizeof(sql), "SELECT count(*) FROM alerts%s", where);
		if (sqlite3_prepare_v2(store_db(req->store), sql, -1, &cnt, NULL) != SQLITE_OK)
			goto out;
		snprintf(sql, sizeof(sql),
		         "SELECT " ALERT_COLUMNS
		         " FROM alerts%s ORDER BY id DESC LIMIT ?3 OFFSET ?4",
		         where);
		if (sqlite3_prepare_v2(store_db(req->store), sql, -1, &st, NULL) != SQLITE_OK)
			goto out;
	}
	sqlite3_bind_text(cnt, 1, rule, -1, SQLITE_STATIC);
	sqlite3_bind_text(cnt, 2, site, -1, SQLITE_STATIC);
	if (sqlite3_step(cnt) != SQLITE_ROW)
		goto out;
	total = sqlite3_column_int64(cnt, 0);
	sqlite3_bind_text(st, 1, rule, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, site, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, limit);
	sqlite3_bind_int64(st, 4, offset);
	root = cJSON_CreateObject();
	cJSON_AddNumberToObject(root, "total", (double)total);
	arr = cJSON_AddArrayToObject(root, "alerts");
	while (sqlite3_step(st) == SQLITE_ROW)
		cJSON_AddItemToArray(arr, alert_row_json(st));
	ok = true;
out:
	if (!ok)
		log_error("alerts api: %s", sqlite3_errmsg(store_db(req->store)));
	sqlite3_finalize(cnt);
	sqlite3_finalize(st);
	if (ok)
		http_json(res, 200, root);
	else
		internal_error(res);
}

void alerts_api_rules(struct http_request *req, struct http_response *res)
{
	http_json(res, 200, alerts_rules_json(req->svc->cfg));
}

#define SILENCE_COLUMNS \
 "id, rule, scope, site, station, value, starts_at, ends_at, created_by, comment, deleted_by"

static cJSON *silence_row_json(sqlite3_stmt *st, int64_t now)
{
	cJSON *o = cJSON_CreateObject();
	const char *scope = col(st, 2);

	cJSON_AddNumberToObject(o, "id", (double)sqlite3_column_int64(st, 0));
	cJSON_AddStringToObject(o, "rule", col(st, 1));
	cJSON_AddStringToObject(o, "scope", scope);
	if (strcmp(scope, "udid") == 0 || strcmp(scope, "agent") == 0)
		cJSON_AddStringToObject(o, scope, col(st, 5));
	if (strcmp(scope, "site") == 0 || strcmp(scope, "station") == 0)
		cJSON_AddStringToObject(o, "site", col(st, 3));
	if (strcmp(scope, "station") == 0)
		cJSON_AddStringToObject(o, "station", col(st, 4));
	add_time(o, "starts_at", st, 6);
	add_time(o, "ends_at", st, 7);
	cJSON_AddStringToObject(o, "created_by", col(st, 8));
	cJSON_AddStringToObject(o, "comment", col(st, 9));
	if (sqlite3_column_type(st, 10) == SQLITE_NULL)
		cJSON_AddNullToObject(o, "deleted_by");
	else
		cJSON_AddStringToObject(o, "deleted_by", col(st, 10));
	cJSON_AddBoolToObject(o, "active",
	                      sqlite3_column_int64(st, 6) <= now &&
	                              sqlite3_column_int64(st, 7) > now);
	return o;
}

static cJSON *silence_json(struct store *s, int64_t id, int64_t now)
{
	sqlite3_stmt *st = NULL;
	cJSON *o = NULL;

	if (sqlite3_prepare_v2(store_db(s),
	                       "SELECT " SILENCE_COLUMNS " FROM silences WHERE id = ?1", -1, &st,
	                       NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		o = silence_row_json(st, now);
out:
	sqlite3_finalize(st);
	return o;
}

/* GET /api/v1/silences?active=true|false: newest first (at most 1000). */
void alerts_api_silences(struct http_request *req, struct http_response *res)
{
	const char *active = http_query(req, "active");
	int64_t now = wall_now_ms() / 1000;
	sqlite3_stmt *st = NULL;
	cJSON *root, *arr;
	int n = 0;

	if (active && strcmp(active, "true") != 0 && strcmp(active, "false") != 0) {
		http_error(res, 400, "bad_parameter", "active: want true or false");
		return;
	}
	if (sqlite3_prepare_v2(store_db(req->store),
	                       "SELECT " SILENCE_COLUMNS " FROM silences WHERE ?2 IS NULL OR"
	                       " (?2 = (starts_at <= ?1 AND ends_at > ?1)) ORDER BY id DESC"
	                       " LIMIT 1000",
	                       -1, &st, NULL) != SQLITE_OK) {
		internal_error(res);
		return;
	}
	sqlite3_bind_int64(st, 1, now);
	if (active)
		sqlite3_bind_int(st, 2, strcmp(active, "true") == 0);
	root = cJSON_CreateObject();
	arr = cJSON_CreateArray();
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON_AddItemToArray(arr, silence_row_json(st, now));
		n++;
	}
	sqlite3_finalize(st);
	cJSON_AddNumberToObject(root, "total", n);
	cJSON_AddItemToObject(root, "silences", arr);
	http_json(res, 200, root);
}

/* A string member: NULL when absent; false (res set) when present but not a usable string. */
static bool str_member(const cJSON *body, const char *name, size_t max, const char **ret,
                       struct http_response *res)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);

	*ret = NULL;
	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > max) {
		http_error(res, 400, "bad_request",
		           "%s: want a non-empty string of at most %zu bytes", name, max);
		return false;
	}
	*ret = v->valuestring;
	return true;
}

static bool time_member(const cJSON *body, const char *name, int64_t *ret,
                        struct http_response *res)
{
	const char *s;

	if (!str_member(body, name, 64, &s, res))
		return false;
	if (s && timefmt_parse_rfc3339(s, ret) < 0) {
		http_error(res, 400, "bad_request", "%s: want an RFC 3339 time", name);
		return false;
	}
	return true;
}

/* POST /api/v1/silences {rule, udid | agent | site [+ station], starts_at?, ends_at, comment} */
void alerts_api_silence_add(struct http_request *req, struct http_response *res)
{
	const char *rule, *udid, *agent, *site, *station, *comment, *scope, *value = "";
	int64_t now = wall_now_ms() / 1000, starts = now, ends = 0, id;
	cJSON *body = http_body_json(req, res), *o;
	sqlite3_stmt *st = NULL;
	enum alerts_rule rr;
	int n;

	if (!body)
		return;
	if (!str_member(body, "rule", 32, &rule, res) ||
	    !str_member(body, "udid", 64, &udid, res) ||
	    !str_member(body, "agent", 64, &agent, res) ||
	    !str_member(body, "site", DASH_SITE_MAX - 1, &site, res) ||
	    !str_member(body, "station", DASH_SITE_MAX - 1, &station, res) ||
	    !str_member(body, "comment", SILENCE_TEXT_MAX, &comment, res) ||
	    !time_member(body, "starts_at", &starts, res) ||
	    !time_member(body, "ends_at", &ends, res))
		goto out;
	if (!rule || (strcmp(rule, "*") != 0 && alerts_rule_from_name(rule, &rr) < 0)) {
		http_error(
		        res, 400, "bad_request",
		        "rule: want backup_stale, device_missing, agent_offline, site_network or *");
		goto out;
	}
	n = !!udid + !!agent + !!(site || station);
	if (n != 1 || (station && !site)) {
		http_error(
		        res, 400, "bad_request",
		        "say what to silence: exactly one of udid, agent, or site (with station)");
		goto out;
	}
	if (!comment) {
		http_error(res, 400, "bad_request", "comment: say why (a maintenance window, ...)");
		goto out;
	}
	if (!ends || ends <= now || ends <= starts) {
		http_error(res, 400, "bad_request",
		           "ends_at: want an RFC 3339 time in the future, after starts_at");
		goto out;
	}
	scope = udid ? "udid" : agent ? "agent" : station ? "station" : "site";
	if (udid)
		value = udid;
	else if (agent)
		value = agent;
	if (sqlite3_prepare_v2(
	            store_db(req->store),
	            "INSERT INTO silences(rule, scope, site, station, value, starts_at,"
	            " ends_at, created_by, comment) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8,"
	            " ?9)",
	            -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, rule, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, scope, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, site ? site : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, station ? station : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, value, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, starts);
	sqlite3_bind_int64(st, 7, ends);
	sqlite3_bind_text(st, 8, req->who.name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, comment, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	id = sqlite3_last_insert_rowid(store_db(req->store));
	o = silence_json(req->store, id, now);
	if (!o)
		goto fail;
	log_info("silence %" PRId64 " by %s: %s %s=%s until %" PRId64 ": %s", id, req->who.name,
	         rule, scope, udid || agent ? value : site, ends, comment);
	http_json(res, 201, o);
	goto out;
fail:
	log_error("silences: %s", sqlite3_errmsg(store_db(req->store)));
	internal_error(res);
out:
	sqlite3_finalize(st);
	cJSON_Delete(body);
}

/* DELETE /api/v1/silences/{id}: ends it now (the row stays, with who ended it). */
void alerts_api_silence_delete(struct http_request *req, struct http_response *res)
{
	int64_t now = wall_now_ms() / 1000;
	sqlite3_stmt *st = NULL;
	uint64_t id;

	if (parse_uint(req->args[0], &id) < 0 || id > INT64_MAX) {
		http_error(res, 404, "not_found", "no silence '%.32s'", req->args[0]);
		return;
	}
	if (sqlite3_prepare_v2(store_db(req->store),
	                       "UPDATE silences SET ends_at = min(ends_at, ?2),"
	                       " deleted_by = coalesce(deleted_by, ?3) WHERE id = ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, (int64_t)id);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_text(st, 3, req->who.name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto fail;
	if (sqlite3_changes(store_db(req->store)) == 0) {
		http_error(res, 404, "not_found", "no silence %" PRIu64, id);
		goto out;
	}
	log_info("silence %" PRIu64 " ended by %s", id, req->who.name);
	res->status = 204;
	goto out;
fail:
	log_error("silences: %s", sqlite3_errmsg(store_db(req->store)));
	internal_error(res);
out:
	sqlite3_finalize(st);
}
