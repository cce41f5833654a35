/* SPDX-License-Identifier: MIT */
/*
 * jobs_api: the /api/v1/jobs handlers and what the API and the engine share (jobs.h): target
 * checking and resolution, command params, the job object. Creating a job only stores it
 * (state scheduled, who created it); the engine (jobs.c) resolves its target and starts it at
 * its next tick. A dry run resolves the target now and stores nothing.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "http.h"
#include "hub.h"
#include "jobs.h"
#include "jsontext.h"
#include "log.h"
#include "loop.h"
#include "macro.h"
#include "parse.h"
#include "query.h"
#include "store.h"
#include "strmap.h"
#include "timefmt.h"

#define JOBS_NAME_MAX       128
#define JOBS_LIST_MAX       200
#define JOBS_EXEC_LIMIT     100
#define JOBS_EXEC_LIMIT_MAX 1000
#define JOBS_RETRY_MAX      10
#define JOBS_RATE_WINDOW_MS (5 * 60 * 1000) /* the rate is measured over the last 5 minutes */

static const char *const state_names[] = {
#define X(e, s) [JOBS_EXEC_##e] = s,
	JOBS_EXEC_STATES
#undef X
};

const char *jobs_exec_state_name(enum jobs_exec_state st)
{
	return st < _JOBS_EXEC_MAX ? state_names[st] : "unknown";
}

int jobs_exec_state_from_str(const char *s, enum jobs_exec_state *ret)
{
	for (int i = 0; i < _JOBS_EXEC_MAX; i++) {
		if (!strcmp(s, state_names[i])) {
			*ret = (enum jobs_exec_state)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool jobs_exec_state_final(enum jobs_exec_state st)
{
	return st >= JOBS_EXEC_SUCCEEDED;
}

/* ---- target ---- */

static const char *const filter_keys[] = { "status",  "cause",     "agent", "site",
	                                   "station", "ios_below", "q" };

/* A filter member's value as text (strings as they are, integers printed). */
static const char *filter_value(const cJSON *v, char *buf, size_t size)
{
	if (cJSON_IsString(v))
		return v->valuestring;
	if (cJSON_IsNumber(v) && v->valuedouble >= 0 && v->valuedouble < 1e15) {
		snprintf(buf, size, "%lld", (long long)v->valuedouble);
		return buf;
	}
	return NULL;
}

/* The filter object into q (the device list's own parser: same keys, same rules). */
static int filter_parse(const cJSON *filter, struct query_devices *q, char *err, size_t errsz)
{
	const cJSON *m;
	char num[32];

	query_devices_init(q);
	if (!cJSON_IsObject(filter)) {
		snprintf(err, errsz, "target.filter: want an object of device-list filters");
		return -EINVAL;
	}
	cJSON_ArrayForEach(m, filter) {
		const char *v = filter_value(m, num, sizeof(num));
		bool known = false;
		int r;

		for (size_t i = 0; i < ARRAY_SIZE(filter_keys); i++)
			known |= !strcmp(m->string, filter_keys[i]);
		if (!known) {
			snprintf(
			        err, errsz,
			        "target.filter.%.32s: not a device filter (status, cause, agent, site, "
			        "station, ios_below, q)",
			        m->string);
			return -EINVAL;
		}
		if (!v) {
			snprintf(err, errsz, "target.filter.%.32s: want a string", m->string);
			return -EINVAL;
		}
		r = query_devices_param(q, m->string, v, err, errsz);
		if (r < 0)
			return -EINVAL;
	}
	return 0;
}

/* The array of strings target.<name>: 0, or -EINVAL with err. */
static int id_list_check(const cJSON *arr, const char *name, char *err, size_t errsz)
{
	const cJSON *e;
	int n = 0;

	if (!cJSON_IsArray(arr)) {
		snprintf(err, errsz, "target.%s: want an array of strings", name);
		return -EINVAL;
	}
	cJSON_ArrayForEach(e, arr) {
		if (!cJSON_IsString(e) || !e->valuestring[0] ||
		    strlen(e->valuestring) >= COMMAND_UDID_MAX) {
			snprintf(err, errsz,
			         "target.%s[%d]: want a non-empty string of at most %d bytes", name,
			         n, COMMAND_UDID_MAX - 1);
			return -EINVAL;
		}
		if (++n > JOBS_TARGET_MAX) {
			snprintf(err, errsz, "target.%s: more than %d entries", name,
			         JOBS_TARGET_MAX);
			return -EINVAL;
		}
	}
	if (n == 0) {
		snprintf(err, errsz, "target.%s: empty", name);
		return -EINVAL;
	}
	return 0;
}

int jobs_target_check(const cJSON *target, char *err, size_t errsz)
{
	const cJSON *filter, *udids, *serials;
	struct query_devices q;
	int kinds;

	if (!cJSON_IsObject(target)) {
		snprintf(err, errsz, "target: want an object with filter, udids or serials");
		return -EINVAL;
	}
	filter = cJSON_GetObjectItemCaseSensitive(target, "filter");
	udids = cJSON_GetObjectItemCaseSensitive(target, "udids");
	serials = cJSON_GetObjectItemCaseSensitive(target, "serials");
	kinds = !!filter + !!udids + !!serials;
	if (kinds != 1) {
		snprintf(err, errsz, "target: want exactly one of filter, udids, serials");
		return -EINVAL;
	}
	if (filter)
		return filter_parse(filter, &q, err, errsz);
	return id_list_check(udids ? udids : serials, udids ? "udids" : "serials", err, errsz);
}

struct resolve {
	jobs_target_fn fn;
	void *ctx;
	struct strmap *seen;
	int64_t n;
};

static int resolve_one(void *ctx, const char *udid, const char *agent, const char *site,
                       const char *station, bool docked)
{
	struct resolve *rs = ctx;
	int r;

	(void)site;
	(void)station;
	if (strmap_get(rs->seen, udid))
		return 0;
	r = strmap_put(rs->seen, udid, (void *)1, NULL);
	if (r < 0)
		return r;
	if (++rs->n > JOBS_TARGET_MAX)
		return -E2BIG;
	return rs->fn(rs->ctx, udid, agent, docked);
}

/* A phone by UDID or serial number: its udid, agent and docked. -ENOENT when unknown. */
static int lookup(struct store *s, bool serial, const char *id, char *udid, size_t udsz,
                  char *agent, size_t agsz, bool *docked)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO, rc;

	if (sqlite3_prepare_v2(store_db(s),
	                       serial ? "SELECT d.udid, d.agent, d.attached AND COALESCE("
	                                "(SELECT presence = 'online' FROM agents a WHERE a.agent ="
	                                " d.agent), 0) FROM devices d WHERE d.serial = ?1 LIMIT 1"
	                              : "SELECT d.udid, d.agent, d.attached AND COALESCE("
	                                "(SELECT presence = 'online' FROM agents a WHERE a.agent ="
	                                " d.agent), 0) FROM devices d WHERE d.udid = ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(udid, udsz, "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(agent, agsz, "%s", (const char *)sqlite3_column_text(st, 1));
		*docked = sqlite3_column_int(st, 2) != 0;
		r = 0;
	} else if (rc == SQLITE_DONE) {
		r = -ENOENT;
	}
out:
	if (r == -EIO)
		log_error("jobs: store: %s", sqlite3_errmsg(store_db(s)));
	sqlite3_finalize(st);
	return r;
}

int jobs_target_resolve(struct store *s, const cJSON *target, int64_t now_s, jobs_target_fn fn,
                        void *ctx, cJSON *unresolved)
{
	const cJSON *filter = cJSON_GetObjectItemCaseSensitive(target, "filter");
	const cJSON *udids = cJSON_GetObjectItemCaseSensitive(target, "udids");
	const cJSON *e, *list;
	struct resolve rs = { fn, ctx, strmap_new(), 0 };
	char err[256];
	int r = 0;

	if (!rs.seen)
		return -ENOMEM;
	if (filter) {
		struct query_devices q;

		r = filter_parse(filter, &q, err, sizeof(err));
		if (r == 0)
			r = query_devices_each(s, &q, now_s, resolve_one, &rs);
		goto out;
	}
	list = udids ? udids : cJSON_GetObjectItemCaseSensitive(target, "serials");
	cJSON_ArrayForEach(e, list) {
		char udid[COMMAND_UDID_MAX], agent[COMMAND_AGENT_MAX];
		bool docked = false;

		r = lookup(s, !udids, e->valuestring, udid, sizeof(udid), agent, sizeof(agent),
		           &docked);
		if (r == -ENOENT) {
			if (unresolved)
				cJSON_AddItemToArray(unresolved,
				                     cJSON_CreateString(e->valuestring));
			r = 0;
			if (!udids)
				continue;
			/* a UDID never seen yet may still dock before the deadline */
			snprintf(udid, sizeof(udid), "%s", e->valuestring);
			agent[0] = '\0';
		} else if (r < 0) {
			break;
		}
		r = resolve_one(&rs, udid, agent, "", "", docked);
		if (r != 0)
			break;
	}
out:
	strmap_free(rs.seen, NULL);
	return r;
}

/* ---- command params ---- */

int jobs_params_to_command(const cJSON *params, struct command *cmd, char *err, size_t errsz)
{
	const cJSON *p;

	cmd->n_params = 0;
	if (!params || cJSON_IsNull(params))
		return 0;
	if (!cJSON_IsObject(params)) {
		snprintf(err, errsz, "command.params: want an object");
		return -EINVAL;
	}
	cJSON_ArrayForEach(p, params) {
		struct command_param *cp;

		if (cmd->n_params == COMMAND_PARAMS_MAX || strlen(p->string) >= COMMAND_KEY_MAX) {
			snprintf(err, errsz, "command.params: too many members or a name too long");
			return -EINVAL;
		}
		cp = &cmd->params[cmd->n_params];
		memset(cp, 0, sizeof(*cp));
		memcpy(cp->key, p->string, strlen(p->string) + 1);
		if (cJSON_IsBool(p)) {
			cp->type = COMMAND_PARAM_BOOL;
			cp->b = cJSON_IsTrue(p);
		} else if (cJSON_IsNumber(p) && p->valuedouble == floor(p->valuedouble) &&
		           fabs(p->valuedouble) <= 9007199254740991.0) {
			cp->type = COMMAND_PARAM_INT;
			cp->i = (int64_t)p->valuedouble;
		} else if (cJSON_IsString(p) && strlen(p->valuestring) < COMMAND_STR_MAX) {
			cp->type = COMMAND_PARAM_STRING;
			memcpy(cp->s, p->valuestring, strlen(p->valuestring) + 1);
		} else {
			snprintf(
			        err, errsz,
			        "command.params.%.32s: want a boolean, an integer or a short string",
			        p->string);
			return -EINVAL;
		}
		cmd->n_params++;
	}
	return 0;
}

/* ---- reading ---- */

static sqlite3_stmt *prep(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("jobs: store: %s", sqlite3_errmsg(store_db(s)));
		return NULL;
	}
	return st;
}

static const char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

static void add_time_ms(cJSON *o, const char *name, sqlite3_stmt *st, int i)
{
	char buf[40];

	if (sqlite3_column_type(st, i) == SQLITE_NULL ||
	    timefmt_rfc3339_ms(sqlite3_column_int64(st, i), buf, sizeof(buf)) < 0)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddStringToObject(o, name, buf);
}

static void add_text_or_null(cJSON *o, const char *name, sqlite3_stmt *st, int i)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddStringToObject(o, name, col(st, i));
}

static cJSON *parse_or_empty(const char *text)
{
	cJSON *o = cJSON_Parse(text);

	return o ? o : cJSON_CreateObject();
}

/* "HH:MM" of a minute of the day. */
static void add_hhmm(cJSON *o, const char *name, int64_t min)
{
	char buf[8];

	snprintf(buf, sizeof(buf), "%02d:%02d", (int)(min / 60) % 24, (int)(min % 60));
	cJSON_AddStringToObject(o, name, buf);
}

#define JOB_COLUMNS                                                                         \
 "id, name, state, command, params_json, target_json, continuous, per_minute, per_agent,"   \
 " window_start, window_end, window_offset, abort_pct, abort_min, timeout_s, retry_causes," \
 " retry_max, deadline_ms, created_by, created_ms, started_ms, finished_ms, canceled_by,"   \
 " detail, updated_ms"

static int job_counts(struct store *s, int64_t id, cJSON *job, int64_t now_ms)
{
	sqlite3_stmt *st = prep(s, "SELECT state, COUNT(*) FROM job_executions WHERE job_id = ?1"
	                           " GROUP BY state");
	cJSON *counts = cJSON_AddObjectToObject(job, "counts");
	int64_t n[_JOBS_EXEC_MAX] = { 0 }, total = 0, remaining, done_recent = 0;
	int r = -EIO;

	if (!st || !counts)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		enum jobs_exec_state es;

		if (jobs_exec_state_from_str(col(st, 0), &es) == 0)
			n[es] = sqlite3_column_int64(st, 1);
		total += sqlite3_column_int64(st, 1);
	}
	for (int i = 0; i < _JOBS_EXEC_MAX; i++)
		cJSON_AddNumberToObject(counts, state_names[i], (double)n[i]);
	cJSON_AddNumberToObject(job, "total", (double)total);
	sqlite3_finalize(st);
	/* rate: executions finished over the last few minutes; ETA: what is left at that rate */
	st = prep(s, "SELECT COUNT(*) FROM job_executions WHERE job_id = ?1 AND finished_ms >= ?2");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now_ms - JOBS_RATE_WINDOW_MS);
	if (sqlite3_step(st) == SQLITE_ROW)
		done_recent = sqlite3_column_int64(st, 0);
	remaining = n[JOBS_EXEC_QUEUED] + n[JOBS_EXEC_SENT] + n[JOBS_EXEC_ACCEPTED] +
	            n[JOBS_EXEC_IN_PROGRESS] + n[JOBS_EXEC_WAITING];
	{
		double rate = (double)done_recent / (JOBS_RATE_WINDOW_MS / 60000.0);

		cJSON_AddNumberToObject(job, "rate_per_minute", round(rate * 10) / 10);
		if (remaining == 0)
			cJSON_AddNumberToObject(job, "eta_s", 0);
		else if (rate > 0)
			cJSON_AddNumberToObject(job, "eta_s", ceil((double)remaining / rate * 60));
		else
			cJSON_AddNullToObject(job, "eta_s");
	}
	r = 0;
out:
	sqlite3_finalize(st);
	return r;
}

static cJSON *job_from_row(struct store *s, sqlite3_stmt *st, int64_t now_ms)
{
	cJSON *o = cJSON_CreateObject(), *c, *x;
	int64_t id = sqlite3_column_int64(st, 0);
	char buf[40];

	if (!o)
		return NULL;
	cJSON_AddNumberToObject(o, "id", (double)id);
	cJSON_AddStringToObject(o, "name", col(st, 1));
	cJSON_AddStringToObject(o, "state", col(st, 2));
	c = cJSON_AddObjectToObject(o, "command");
	if (c) {
		cJSON_AddStringToObject(c, "name", col(st, 3));
		cJSON_AddItemToObject(c, "params", parse_or_empty(col(st, 4)));
	}
	cJSON_AddItemToObject(o, "target", parse_or_empty(col(st, 5)));
	cJSON_AddBoolToObject(o, "continuous", sqlite3_column_int(st, 6));
	x = cJSON_AddObjectToObject(o, "rollout");
	if (x) {
		cJSON_AddNumberToObject(x, "per_minute", sqlite3_column_double(st, 7));
		cJSON_AddNumberToObject(x, "per_agent", sqlite3_column_double(st, 8));
	}
	if (sqlite3_column_type(st, 9) == SQLITE_NULL) {
		cJSON_AddNullToObject(o, "window");
	} else if ((x = cJSON_AddObjectToObject(o, "window"))) {
		int64_t off = sqlite3_column_int64(st, 11);

		add_hhmm(x, "start", sqlite3_column_int64(st, 9));
		add_hhmm(x, "end", sqlite3_column_int64(st, 10));
		snprintf(buf, sizeof(buf), "%c%02d:%02d", off < 0 ? '-' : '+',
		         (int)(llabs(off) / 60), (int)(llabs(off) % 60));
		cJSON_AddStringToObject(x, "utc_offset", buf);
	}
	x = cJSON_AddObjectToObject(o, "abort");
	if (x) {
		cJSON_AddNumberToObject(x, "failure_pct", sqlite3_column_double(st, 12));
		cJSON_AddNumberToObject(x, "min_executions", sqlite3_column_double(st, 13));
	}
	cJSON_AddNumberToObject(o, "timeout_s", sqlite3_column_double(st, 14));
	x = cJSON_AddObjectToObject(o, "retry");
	if (x) {
		cJSON *causes = cJSON_AddArrayToObject(x, "causes");
		char tmp[1024], *save = NULL, *tok;

		snprintf(tmp, sizeof(tmp), "%s", col(st, 15));
		for (tok = strtok_r(tmp, ",", &save); tok && causes;
		     tok = strtok_r(NULL, ",", &save))
			cJSON_AddItemToArray(causes, cJSON_CreateString(tok));
		cJSON_AddNumberToObject(x, "max", sqlite3_column_double(st, 16));
	}
	add_time_ms(o, "deadline", st, 17);
	cJSON_AddStringToObject(o, "created_by", col(st, 18));
	add_time_ms(o, "created_at", st, 19);
	add_time_ms(o, "started_at", st, 20);
	add_time_ms(o, "finished_at", st, 21);
	add_text_or_null(o, "canceled_by", st, 22);
	cJSON_AddStringToObject(o, "detail", col(st, 23));
	add_time_ms(o, "updated_at", st, 24);
	if (job_counts(s, id, o, now_ms) < 0) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *jobs_job_json(struct store *s, int64_t id, int64_t now_ms)
{
	sqlite3_stmt *st = prep(s, "SELECT " JOB_COLUMNS " FROM jobs WHERE id = ?1");
	cJSON *o = NULL;

	if (!st)
		return NULL;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		o = job_from_row(s, st, now_ms);
	sqlite3_finalize(st);
	return o;
}

/* ---- handlers ---- */

static void internal_error(struct http_response *res)
{
	http_error(res, 500, "internal", "the store could not answer; see the service log");
}

static bool job_id_arg(struct http_request *req, struct http_response *res, int64_t *id)
{
	uint64_t v;

	if (parse_uint(req->args[0], &v) < 0 || v == 0 || v > INT64_MAX) {
		http_error(res, 404, "not_found", "no job '%.32s'", req->args[0]);
		return false;
	}
	*id = (int64_t)v;
	return true;
}

static bool count_param(struct http_request *req, struct http_response *res, const char *name,
                        int64_t max, int64_t *ret)
{
	const char *v = http_query(req, name);
	uint64_t n;

	if (!v)
		return true;
	if (parse_uint(v, &n) < 0 || n > (uint64_t)max || (!strcmp(name, "limit") && n == 0)) {
		http_error(res, 400, "bad_parameter", "%s: want an integer up to %lld", name,
		           (long long)max);
		return false;
	}
	*ret = (int64_t)n;
	return true;
}

/* ---- POST /api/v1/jobs ---- */

struct job_spec {
	const char *name;
	const char *command;
	char *params_txt;
	char *target_txt;
	const cJSON *target;
	bool continuous, dry_run;
	int64_t per_minute, per_agent;
	bool has_window;
	int64_t win_start, win_end, win_offset;
	double abort_pct;
	int64_t abort_min;
	int64_t timeout_s;
	char retry_causes[1024];
	int64_t retry_max;
	int64_t deadline_ms;
};

/* An optional integer member in [min, max] into *ret. false: res is the 400. */
static bool int_member(const cJSON *obj, const char *path, const char *name, int64_t min,
                       int64_t max, int64_t *ret, struct http_response *res)
{
	const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, name) : NULL;

	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) ||
	    v->valuedouble < (double)min || v->valuedouble > (double)max) {
		http_error(res, 400, "bad_job", "%s%s: want an integer from %lld to %lld", path,
		           name, (long long)min, (long long)max);
		return false;
	}
	*ret = (int64_t)v->valuedouble;
	return true;
}

static bool bool_member(const cJSON *obj, const char *name, bool *ret, struct http_response *res)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsBool(v)) {
		http_error(res, 400, "bad_job", "%s: want true or false", name);
		return false;
	}
	*ret = cJSON_IsTrue(v);
	return true;
}

static bool obj_member(const cJSON *obj, const char *name, const cJSON **ret,
                       struct http_response *res)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	*ret = NULL;
	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsObject(v)) {
		http_error(res, 400, "bad_job", "%s: want an object", name);
		return false;
	}
	*ret = v;
	return true;
}

/* "HH:MM" into minutes of the day. */
static int parse_hhmm(const char *s, int64_t *ret)
{
	unsigned h, m;
	char end;

	if (sscanf(s, "%2u:%2u%c", &h, &m, &end) != 2 || h > 23 || m > 59 || strlen(s) != 5)
		return -EINVAL;
	*ret = h * 60 + m;
	return 0;
}

/* "+HH:MM" / "-HH:MM" / "Z" into minutes east of UTC. */
static int parse_offset(const char *s, int64_t *ret)
{
	int64_t m;

	if (!strcmp(s, "Z") || !strcmp(s, "UTC")) {
		*ret = 0;
		return 0;
	}
	if ((s[0] != '+' && s[0] != '-') || parse_hhmm(s + 1, &m) < 0 || m > 14 * 60)
		return -EINVAL;
	*ret = s[0] == '-' ? -m : m;
	return 0;
}

static bool parse_window(const cJSON *w, struct job_spec *j, struct http_response *res)
{
	const cJSON *start = cJSON_GetObjectItemCaseSensitive(w, "start");
	const cJSON *end = cJSON_GetObjectItemCaseSensitive(w, "end");
	const cJSON *off = cJSON_GetObjectItemCaseSensitive(w, "utc_offset");

	if (!cJSON_IsString(start) || !cJSON_IsString(end) ||
	    parse_hhmm(start->valuestring, &j->win_start) < 0 ||
	    parse_hhmm(end->valuestring, &j->win_end) < 0 || j->win_start == j->win_end) {
		http_error(res, 400, "bad_job",
		           "window: want {\"start\": \"HH:MM\", \"end\": \"HH:MM\"} (different "
		           "times; end before start spans midnight)");
		return false;
	}
	if (off && !cJSON_IsNull(off) &&
	    (!cJSON_IsString(off) || parse_offset(off->valuestring, &j->win_offset) < 0)) {
		http_error(res, 400, "bad_job", "window.utc_offset: want \"+HH:MM\" or \"-HH:MM\"");
		return false;
	}
	j->has_window = true;
	return true;
}

static bool parse_retry(const cJSON *r, struct job_spec *j, struct http_response *res)
{
	const cJSON *causes = cJSON_GetObjectItemCaseSensitive(r, "causes"), *c;
	size_t n = 1;

	j->retry_causes[0] = ',';
	j->retry_causes[1] = '\0';
	if (causes && !cJSON_IsArray(causes)) {
		http_error(res, 400, "bad_job", "retry.causes: want an array of cause codes");
		return false;
	}
	cJSON_ArrayForEach(c, causes) {
		const char *p;
		size_t len;

		if (!cJSON_IsString(c) || !c->valuestring[0]) {
			http_error(res, 400, "bad_job", "retry.causes: want cause codes");
			return false;
		}
		for (p = c->valuestring; *p; p++) {
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_')) {
				http_error(res, 400, "bad_job",
				           "retry.causes: '%.40s' is not a cause code ([a-z0-9_])",
				           c->valuestring);
				return false;
			}
		}
		len = strlen(c->valuestring);
		if (n + len + 2 > sizeof(j->retry_causes)) {
			http_error(res, 400, "bad_job", "retry.causes: too many");
			return false;
		}
		memcpy(j->retry_causes + n, c->valuestring, len);
		n += len;
		j->retry_causes[n++] = ',';
		j->retry_causes[n] = '\0';
	}
	if (n == 1)
		j->retry_causes[0] = '\0';
	return int_member(r, "retry.", "max", 0, JOBS_RETRY_MAX, &j->retry_max, res);
}

/* The body into j (pointers into root). false: res is the 400. */
static bool parse_job(const cJSON *root, struct job_spec *j, struct http_response *res)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
	const cJSON *command = cJSON_GetObjectItemCaseSensitive(root, "command");
	const cJSON *cname, *params, *rollout, *abort_o, *window, *retry, *deadline;
	struct command cmd;
	char err[COMMAND_ERR_MAX + 256];

	memset(j, 0, sizeof(*j));
	j->timeout_s = JOBS_TIMEOUT_DEFAULT;
	if (!cJSON_IsString(name) || !name->valuestring[0] ||
	    strlen(name->valuestring) >= JOBS_NAME_MAX) {
		http_error(res, 400, "bad_job", "name: want a non-empty string of at most %d bytes",
		           JOBS_NAME_MAX - 1);
		return false;
	}
	j->name = name->valuestring;
	if (!cJSON_IsObject(command)) {
		http_error(res, 400, "bad_job", "command: want {\"name\", \"params\"}");
		return false;
	}
	cname = cJSON_GetObjectItemCaseSensitive(command, "name");
	memset(&cmd, 0, sizeof(cmd));
	if (!cJSON_IsString(cname) || command_name_from_str(cname->valuestring, &cmd.kind) < 0) {
		http_error(res, 400, "bad_command",
		           "command.name: want a single-phone command (device.refresh, "
		           "backup.icloud.enable, backup.local.start, device.restart)");
		return false;
	}
	cmd.known_name = true;
	j->command = command_name_str(cmd.kind);
	snprintf(cmd.name, sizeof(cmd.name), "%s", j->command);
	params = cJSON_GetObjectItemCaseSensitive(command, "params");
	if (jobs_params_to_command(params, &cmd, err, sizeof(err)) < 0) {
		http_error(res, 400, "bad_params", "%s", err);
		return false;
	}
	if (command_params_check(&cmd, err, sizeof(err)) < 0) {
		http_error(res, 400, "bad_params", "command.params: %s", err);
		return false;
	}
	j->params_txt =
	        params && cJSON_IsObject(params) ? cJSON_PrintUnformatted(params) : strdup("{}");
	j->target = cJSON_GetObjectItemCaseSensitive(root, "target");
	if (jobs_target_check(j->target, err, sizeof(err)) < 0) {
		http_error(res, 400, "bad_target", "%s", err);
		return false;
	}
	j->target_txt = cJSON_PrintUnformatted(j->target);
	if (!j->params_txt || !j->target_txt) {
		http_error(res, 500, "internal", "out of memory");
		return false;
	}
	if (!bool_member(root, "continuous", &j->continuous, res) ||
	    !bool_member(root, "dry_run", &j->dry_run, res) ||
	    !obj_member(root, "rollout", &rollout, res) ||
	    !int_member(rollout, "rollout.", "per_minute", 0, 1000000, &j->per_minute, res) ||
	    !int_member(rollout, "rollout.", "per_agent", 0, 100000, &j->per_agent, res) ||
	    !obj_member(root, "abort", &abort_o, res) ||
	    !int_member(abort_o, "abort.", "min_executions", 0, JOBS_TARGET_MAX, &j->abort_min,
	                res) ||
	    !int_member(root, "", "timeout_s", 1, 86400, &j->timeout_s, res) ||
	    !obj_member(root, "window", &window, res) ||
	    (window && !parse_window(window, j, res)) || !obj_member(root, "retry", &retry, res) ||
	    (retry && !parse_retry(retry, j, res)))
		return false;
	if (abort_o) {
		const cJSON *pct = cJSON_GetObjectItemCaseSensitive(abort_o, "failure_pct");

		if (pct && !cJSON_IsNull(pct)) {
			if (!cJSON_IsNumber(pct) || pct->valuedouble <= 0 ||
			    pct->valuedouble > 100) {
				http_error(res, 400, "bad_job",
				           "abort.failure_pct: want a number above 0, at most 100");
				return false;
			}
			j->abort_pct = pct->valuedouble;
		}
	}
	deadline = cJSON_GetObjectItemCaseSensitive(root, "deadline");
	if (deadline && !cJSON_IsNull(deadline)) {
		int64_t t;

		if (!cJSON_IsString(deadline) ||
		    timefmt_parse_rfc3339(deadline->valuestring, &t) < 0) {
			http_error(res, 400, "bad_job", "deadline: want an RFC 3339 time");
			return false;
		}
		if (t * 1000 <= wall_now_ms()) {
			http_error(res, 400, "bad_job", "deadline: already passed");
			return false;
		}
		j->deadline_ms = t * 1000;
	} else {
		j->deadline_ms = wall_now_ms() + (int64_t)JOBS_DEADLINE_DEFAULT * 1000;
	}
	return true;
}

struct dry {
	int64_t total, docked;
	struct strmap *agents; /* agent -> struct dry_agent */
};

struct dry_agent {
	int64_t phones, docked;
};

static int dry_one(void *ctx, const char *udid, const char *agent, bool docked)
{
	struct dry *d = ctx;
	struct dry_agent *a = strmap_get(d->agents, agent);

	(void)udid;
	d->total++;
	d->docked += docked;
	if (!a) {
		a = calloc(1, sizeof(*a));
		if (!a || strmap_put(d->agents, agent, a, NULL) < 0) {
			free(a);
			return -ENOMEM;
		}
	}
	a->phones++;
	a->docked += docked;
	return 0;
}

static void dry_agent_json(const char *key, void *value, void *ctx)
{
	struct dry_agent *a = value;
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return;
	cJSON_AddStringToObject(o, "agent", key);
	cJSON_AddNumberToObject(o, "phones", (double)a->phones);
	cJSON_AddNumberToObject(o, "docked", (double)a->docked);
	cJSON_AddItemToArray(ctx, o);
}

static int agent_cmp(const void *a, const void *b)
{
	const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;

	return strcmp(cJSON_GetObjectItem(x, "agent")->valuestring,
	              cJSON_GetObjectItem(y, "agent")->valuestring);
}

static void dry_run(struct http_request *req, struct http_response *res, struct job_spec *j)
{
	struct dry d = { 0, 0, strmap_new() };
	cJSON *out = cJSON_CreateObject(), *agents = cJSON_CreateArray(), *sorted, *unresolved;
	cJSON **v = NULL;
	int n, r;

	unresolved = cJSON_CreateArray();
	if (!d.agents || !out || !agents || !unresolved) {
		r = -ENOMEM;
		goto fail;
	}
	r = jobs_target_resolve(req->store, j->target, wall_now_ms() / 1000, dry_one, &d,
	                        unresolved);
	if (r < 0)
		goto fail;
	strmap_foreach(d.agents, dry_agent_json, agents);
	n = cJSON_GetArraySize(agents);
	v = calloc((size_t)n + 1, sizeof(*v));
	sorted = cJSON_CreateArray();
	if (!v || !sorted) {
		cJSON_Delete(sorted);
		r = -ENOMEM;
		goto fail;
	}
	for (int i = 0; i < n; i++)
		v[i] = cJSON_DetachItemFromArray(agents, 0);
	qsort(v, (size_t)n, sizeof(*v), agent_cmp);
	for (int i = 0; i < n; i++)
		cJSON_AddItemToArray(sorted, v[i]);
	cJSON_AddBoolToObject(out, "dry_run", true);
	cJSON_AddStringToObject(out, "name", j->name);
	cJSON_AddStringToObject(out, "command", j->command);
	cJSON_AddNumberToObject(out, "total", (double)d.total);
	cJSON_AddNumberToObject(out, "docked", (double)d.docked);
	cJSON_AddNumberToObject(out, "not_docked", (double)(d.total - d.docked));
	cJSON_AddItemToObject(out, "agents", sorted);
	cJSON_AddItemToObject(out, "unresolved", unresolved);
	unresolved = NULL;
	http_json(res, 200, out);
	out = NULL;
	goto out;
fail:
	if (r == -E2BIG)
		http_error(res, 400, "bad_target", "target: more than %d phones", JOBS_TARGET_MAX);
	else
		internal_error(res);
out:
	free(v);
	cJSON_Delete(out);
	cJSON_Delete(agents);
	cJSON_Delete(unresolved);
	strmap_free(d.agents, free);
}

static int insert_job(struct store *s, const struct job_spec *j, const char *who, int64_t *id)
{
	sqlite3_stmt *st = NULL;
	int64_t now = wall_now_ms();
	int r = -EIO;

	if (store_begin(s) < 0)
		return -EIO;
	st = prep(s, "INSERT INTO jobs(name, state, command, params_json, target_json, continuous,"
	             " per_minute, per_agent, window_start, window_end, window_offset, abort_pct,"
	             " abort_min, timeout_s, retry_causes, retry_max, deadline_ms, created_by,"
	             " created_ms, updated_ms) VALUES (?1, 'scheduled', ?2, ?3, ?4, ?5, ?6, ?7,"
	             " ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?18)");
	if (!st)
		goto out;
	sqlite3_bind_text(st, 1, j->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, j->command, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, j->params_txt, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, j->target_txt, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 5, j->continuous);
	sqlite3_bind_int64(st, 6, j->per_minute);
	sqlite3_bind_int64(st, 7, j->per_agent);
	if (j->has_window) {
		sqlite3_bind_int64(st, 8, j->win_start);
		sqlite3_bind_int64(st, 9, j->win_end);
	}
	sqlite3_bind_int64(st, 10, j->win_offset);
	sqlite3_bind_double(st, 11, j->abort_pct);
	sqlite3_bind_int64(st, 12, j->abort_min);
	sqlite3_bind_int64(st, 13, j->timeout_s);
	sqlite3_bind_text(st, 14, j->retry_causes, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 15, j->retry_max);
	sqlite3_bind_int64(st, 16, j->deadline_ms);
	sqlite3_bind_text(st, 17, who, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 18, now);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	*id = sqlite3_last_insert_rowid(store_db(s));
	sqlite3_finalize(st);
	st = prep(s, "INSERT INTO job_transitions(job_id, ts_ms, state, detail)"
	             " VALUES (?1, ?2, 'scheduled', ?3)");
	if (!st)
		goto out;
	{
		char detail[256];

		snprintf(detail, sizeof(detail), "created by %s", who);
		sqlite3_bind_int64(st, 1, *id);
		sqlite3_bind_int64(st, 2, now);
		sqlite3_bind_text(st, 3, detail, -1, SQLITE_TRANSIENT);
	}
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out;
	r = 0;
out:
	if (r < 0)
		log_error("jobs: store: %s", sqlite3_errmsg(store_db(s)));
	sqlite3_finalize(st);
	if (r == 0)
		r = store_commit(s);
	else
		store_rollback(s);
	return r;
}

void jobs_api_create(struct http_request *req, struct http_response *res)
{
	struct job_spec j = { 0 };
	cJSON *root = NULL, *job;
	int64_t id;

	if (!req->body || !req->body_len || jsontext_check_nul(req->body, req->body_len) < 0 ||
	    !cJSON_IsObject(root = cJSON_ParseWithLength(req->body, req->body_len))) {
		http_error(res, 400, "bad_json",
		           "the body must be a JSON object (see API.md, Jobs)");
		goto out;
	}
	if (!parse_job(root, &j, res))
		goto out;
	if (j.dry_run) {
		dry_run(req, res, &j);
		goto out;
	}
	if (insert_job(req->store, &j, req->who.name, &id) < 0) {
		internal_error(res);
		goto out;
	}
	log_info("jobs: %s created job %lld '%s' (%s)", req->who.name, (long long)id, j.name,
	         j.command);
	if (req->svc && req->svc->hub) {
		char key[24];

		snprintf(key, sizeof(key), "%lld", (long long)id);
		hub_publish(req->svc->hub, HUB_JOB, key);
	}
	job = jobs_job_json(req->store, id, wall_now_ms());
	if (!job) {
		internal_error(res);
		goto out;
	}
	http_json(res, 201, job);
out:
	free(j.params_txt);
	free(j.target_txt);
	cJSON_Delete(root);
}

/* ---- GET /api/v1/jobs ---- */

void jobs_api_list(struct http_request *req, struct http_response *res)
{
	const char *state = http_query(req, "state"), *udid = http_query(req, "udid");
	int64_t limit = 50, offset = 0, now = wall_now_ms(), total = 0;
	sqlite3_stmt *st = NULL;
	cJSON *out = NULL, *arr;

	if (!count_param(req, res, "limit", JOBS_LIST_MAX, &limit) ||
	    !count_param(req, res, "offset", 1000000000, &offset))
		return;
	if (state && strcmp(state, "scheduled") && strcmp(state, "in_progress") &&
	    strcmp(state, "completed") && strcmp(state, "aborted") && strcmp(state, "canceled")) {
		http_error(res, 400, "bad_parameter",
		           "state: want scheduled, in_progress, completed, aborted or canceled");
		return;
	}
	out = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(out, "jobs");
	st = prep(req->store, "SELECT COUNT(*) FROM jobs WHERE (?1 IS NULL OR state = ?1) AND"
	                      " (?2 IS NULL OR id IN (SELECT job_id FROM job_executions"
	                      " WHERE udid = ?2))");
	if (!out || !arr || !st)
		goto fail;
	sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, udid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto fail;
	total = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = prep(req->store, "SELECT " JOB_COLUMNS " FROM jobs WHERE (?1 IS NULL OR state = ?1)"
	                      " AND (?2 IS NULL OR id IN (SELECT job_id FROM job_executions"
	                      " WHERE udid = ?2)) ORDER BY id DESC LIMIT ?3 OFFSET ?4");
	if (!st)
		goto fail;
	sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, udid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, limit);
	sqlite3_bind_int64(st, 4, offset);
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *job = job_from_row(req->store, st, now);

		if (!job)
			goto fail;
		if (udid) {
			/* the phone's own execution, for the device page */
			sqlite3_stmt *e = prep(req->store, "SELECT state FROM job_executions"
			                                   " WHERE job_id = ?1 AND udid = ?2");

			if (e) {
				sqlite3_bind_int64(e, 1, sqlite3_column_int64(st, 0));
				sqlite3_bind_text(e, 2, udid, -1, SQLITE_STATIC);
				if (sqlite3_step(e) == SQLITE_ROW)
					cJSON_AddStringToObject(job, "execution_state", col(e, 0));
			}
			sqlite3_finalize(e);
		}
		cJSON_AddItemToArray(arr, job);
	}
	sqlite3_finalize(st);
	cJSON_AddNumberToObject(out, "total", (double)total);
	http_json(res, 200, out);
	return;
fail:
	sqlite3_finalize(st);
	cJSON_Delete(out);
	internal_error(res);
}

void jobs_api_get(struct http_request *req, struct http_response *res)
{
	int64_t id;
	cJSON *job;

	if (!job_id_arg(req, res, &id))
		return;
	job = jobs_job_json(req->store, id, wall_now_ms());
	if (!job) {
		http_error(res, 404, "not_found", "no job %lld", (long long)id);
		return;
	}
	http_json(res, 200, job);
}

static bool job_exists(struct store *s, int64_t id, int *ret)
{
	sqlite3_stmt *st = prep(s, "SELECT 1 FROM jobs WHERE id = ?1");
	int rc;

	if (!st)
		return false;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	*ret = rc == SQLITE_ROW;
	return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

/* An execution's transitions, oldest first. */
static cJSON *transitions_json(struct store *s, int64_t id, const char *udid)
{
	sqlite3_stmt *st = prep(s, "SELECT ts_ms, state, cmd_id, agent, detail FROM job_transitions"
	                           " WHERE job_id = ?1 AND udid = ?2 ORDER BY id");
	cJSON *arr = cJSON_CreateArray();

	if (!st || !arr) {
		sqlite3_finalize(st);
		cJSON_Delete(arr);
		return NULL;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, udid, -1, SQLITE_STATIC);
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *t = cJSON_CreateObject();

		if (!t)
			break;
		add_time_ms(t, "at", st, 0);
		cJSON_AddStringToObject(t, "state", col(st, 1));
		add_text_or_null(t, "cmd_id", st, 2);
		cJSON_AddStringToObject(t, "agent", col(st, 3));
		cJSON_AddStringToObject(t, "detail", col(st, 4));
		cJSON_AddItemToArray(arr, t);
	}
	sqlite3_finalize(st);
	return arr;
}

void jobs_api_executions(struct http_request *req, struct http_response *res)
{
	const char *state = http_query(req, "state");
	int64_t id, limit = JOBS_EXEC_LIMIT, offset = 0, total = 0;
	enum jobs_exec_state es;
	sqlite3_stmt *st = NULL;
	cJSON *out = NULL, *arr;
	int exists;

	if (!job_id_arg(req, res, &id) ||
	    !count_param(req, res, "limit", JOBS_EXEC_LIMIT_MAX, &limit) ||
	    !count_param(req, res, "offset", 1000000000, &offset))
		return;
	if (state && jobs_exec_state_from_str(state, &es) < 0) {
		http_error(res, 400, "bad_parameter",
		           "state: want queued, sent, accepted, in_progress, waiting_for_user, "
		           "succeeded, failed, timed_out, rejected or canceled");
		return;
	}
	if (!job_exists(req->store, id, &exists)) {
		internal_error(res);
		return;
	}
	if (!exists) {
		http_error(res, 404, "not_found", "no job %lld", (long long)id);
		return;
	}
	out = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(out, "executions");
	st = prep(req->store, "SELECT COUNT(*) FROM job_executions WHERE job_id = ?1"
	                      " AND (?2 IS NULL OR state = ?2)");
	if (!out || !arr || !st)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		goto fail;
	total = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	st = prep(req->store,
	          "SELECT e.udid, COALESCE(d.serial, ''), COALESCE(d.name, ''), e.state, e.agent,"
	          " e.attempt, e.cmd_id, e.cause, e.detail, e.queued_ms, e.sent_ms, e.finished_ms,"
	          " e.updated_ms FROM job_executions e LEFT JOIN devices d ON d.udid = e.udid"
	          " WHERE e.job_id = ?1 AND (?2 IS NULL OR e.state = ?2) ORDER BY e.id"
	          " LIMIT ?3 OFFSET ?4");
	if (!st)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, limit);
	sqlite3_bind_int64(st, 4, offset);
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *e = cJSON_CreateObject(), *tr;

		if (!e)
			goto fail;
		cJSON_AddItemToArray(arr, e);
		cJSON_AddStringToObject(e, "udid", col(st, 0));
		cJSON_AddStringToObject(e, "serial", col(st, 1));
		cJSON_AddStringToObject(e, "name", col(st, 2));
		cJSON_AddStringToObject(e, "state", col(st, 3));
		cJSON_AddStringToObject(e, "agent", col(st, 4));
		cJSON_AddNumberToObject(e, "attempt", sqlite3_column_double(st, 5));
		add_text_or_null(e, "cmd_id", st, 6);
		cJSON_AddStringToObject(e, "cause", col(st, 7));
		cJSON_AddStringToObject(e, "detail", col(st, 8));
		add_time_ms(e, "queued_at", st, 9);
		add_time_ms(e, "sent_at", st, 10);
		add_time_ms(e, "finished_at", st, 11);
		add_time_ms(e, "updated_at", st, 12);
		tr = transitions_json(req->store, id, col(st, 0));
		if (!tr)
			goto fail;
		cJSON_AddItemToObject(e, "transitions", tr);
	}
	sqlite3_finalize(st);
	cJSON_AddNumberToObject(out, "total", (double)total);
	http_json(res, 200, out);
	return;
fail:
	sqlite3_finalize(st);
	cJSON_Delete(out);
	internal_error(res);
}

/* ---- POST /api/v1/jobs/{id}/cancel ---- */

void jobs_api_cancel(struct http_request *req, struct http_response *res)
{
	int64_t id, now = wall_now_ms();
	sqlite3_stmt *st = NULL;
	char state[32] = "", detail[192];
	int r = -EIO;
	cJSON *job;

	if (!job_id_arg(req, res, &id))
		return;
	if (store_begin(req->store) < 0) {
		internal_error(res);
		return;
	}
	st = prep(req->store, "SELECT state FROM jobs WHERE id = ?1");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(state, sizeof(state), "%s", col(st, 0));
	sqlite3_finalize(st);
	st = NULL;
	if (!state[0]) {
		r = -ENOENT;
		goto out;
	}
	if (strcmp(state, "scheduled") && strcmp(state, "in_progress")) {
		r = -EALREADY;
		goto out;
	}
	snprintf(detail, sizeof(detail), "canceled by %s", req->who.name);
	/* What is queued never goes out; what is in flight is followed to its end. Every statement
	 * takes ?1 the job, ?2 the time, ?3 the detail; the first also ?4 who canceled. */
	static const char *const cancel_sql[] = {
		"UPDATE jobs SET state = 'canceled', canceled_by = ?4, finished_ms = ?2,"
		" updated_ms = ?2, detail = ?3 WHERE id = ?1",
		"INSERT INTO job_transitions(job_id, udid, ts_ms, state, detail)"
		" SELECT job_id, udid, ?2, 'canceled', ?3 FROM job_executions"
		" WHERE job_id = ?1 AND state = 'queued'",
		"UPDATE job_executions SET state = 'canceled', detail = ?3, finished_ms = ?2,"
		" updated_ms = ?2 WHERE job_id = ?1 AND state = 'queued'",
		"INSERT INTO job_transitions(job_id, ts_ms, state, detail) VALUES (?1, ?2, 'canceled', ?3)",
	};
	for (size_t i = 0; i < ARRAY_SIZE(cancel_sql); i++) {
		st = prep(req->store, cancel_sql[i]);
		if (!st)
			goto out;
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_int64(st, 2, now);
		sqlite3_bind_text(st, 3, detail, -1, SQLITE_STATIC);
		if (sqlite3_bind_parameter_count(st) >= 4)
			sqlite3_bind_text(st, 4, req->who.name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out;
		sqlite3_finalize(st);
		st = NULL;
	}
	r = 0;
out:
	if (r == -EIO)
		log_error("jobs: store: %s", sqlite3_errmsg(store_db(req->store)));
	sqlite3_finalize(st);
	if (r == 0)
		r = store_commit(req->store);
	else
		store_rollback(req->store);
	if (r == -ENOENT) {
		http_error(res, 404, "not_found", "no job %lld", (long long)id);
		return;
	}
	if (r == -EALREADY) {
		http_error(res, 409, "job_finished", "job %lld is already %s", (long long)id,
		           state);
		return;
	}
	if (r < 0) {
		internal_error(res);
		return;
	}
	log_info("jobs: %s canceled job %lld", req->who.name, (long long)id);
	if (req->svc && req->svc->hub) {
		char key[24];

		snprintf(key, sizeof(key), "%lld", (long long)id);
		hub_publish(req->svc->hub, HUB_JOB, key);
	}
	job = jobs_job_json(req->store, id, now);
	if (!job) {
		internal_error(res);
		return;
	}
	http_json(res, 200, job);
}
