/* SPDX-License-Identifier: MIT */
/*
 * query: the read side (query.h). Every statement evaluates the phone's status with
 * cradle_status(...) (judge.h) and the dashboard's clock passed in as :now, so a list filtered
 * by status, its total and the overview's counts all agree with the C rule.
 *
 * A phone is "docked" when its row says attached and its agent is online: an agent that went
 * offline or was lost cannot vouch for the phones it last reported.
 */
#include "query.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "store.h"
#include "strmap.h"
#include "timefmt.h"

#define QUERY_OFFSET_MAX   1000000000LL
#define QUERY_SQL_MAX      16384 /* bytes of a device-list statement */
#define QUERY_HISTORY_DAYS 7     /* stale_over_time: the last week of samples */
#define QUERY_TOP_CAUSES   10

/*
 * docked, looked up only when asked: AND stops at an unattached phone, and the agent's presence
 * is a correlated subquery rather than a join, so a statement that never needs it (a count over
 * the covering index) never reads the agents table.
 */
#define DOCKED_EXPR                                                     \
 "(d.attached AND COALESCE((SELECT a.presence = 'online' FROM agents a" \
 " WHERE a.agent = d.agent), 0))"
#define JUDGE_ARGS(docked) "(d.site, " docked ", d.last_seen, d.has_facts, d.last_icloud, :now)"
/*
 * The judge's verdict. When it comes out the same docked or not (the phone was seen recently,
 * so it cannot be missing), it needs no lookup of the agent; only the rest ask DOCKED_EXPR.
 * This asks the rule itself rather than knowing when docked matters, so it stays exact if the
 * rule changes.
 */
#define STATUS_EXPR                                                        \
 "(CASE WHEN cradle_status" JUDGE_ARGS("0") " = cradle_status" JUDGE_ARGS( \
	 "1") " THEN cradle_status" JUDGE_ARGS("0") " ELSE cradle_status" JUDGE_ARGS(DOCKED_EXPR) " END)"

/* The columns of a device row, in this order (enum dcol). */
#define DEVICE_COLUMNS                                                                        \
 "d.udid, d.serial, d.name, " STATUS_EXPR ", d.last_icloud, d.icloud_enabled, d.cause_codes," \
 " d.agent, d.site, d.station, " DOCKED_EXPR ", d.last_seen, d.ios_version, d.product_type,"  \
 " d.last_local, d.agent_status, d.probe, d.causes_json "
#define DEVICE_FROM " FROM devices d "

enum dcol {
	DC_UDID,
	DC_SERIAL,
	DC_NAME,
	DC_STATUS,
	DC_LAST_ICLOUD,
	DC_ICLOUD_ENABLED,
	DC_CAUSES,
	DC_AGENT,
	DC_SITE,
	DC_STATION,
	DC_DOCKED,
	DC_LAST_SEEN,
	DC_IOS,
	DC_PRODUCT,
	DC_LAST_LOCAL,
	DC_AGENT_STATUS,
	DC_PROBE,
	DC_CAUSES_JSON,
};

static const char *const sort_names[_QUERY_SORT_MAX] = {
	[QUERY_SORT_AGE] = "age",
	[QUERY_SORT_NAME] = "name",
	[QUERY_SORT_SERIAL] = "serial",
	[QUERY_SORT_UDID] = "udid",
	[QUERY_SORT_LAST_SEEN] = "last_seen",
	[QUERY_SORT_SITE] = "site",
	[QUERY_SORT_STATUS] = "status",
	[QUERY_SORT_IOS] = "ios",
};

/*
 * ORDER BY of each sort, ascending and descending. Every order ends in a unique key so pages
 * are stable. Age ascending = newest backup first; a phone never backed up (NULL) has the
 * largest age: SQLite puts NULLs first in ascending order, so "-age" is last_icloud ASC. The
 * age sort is exactly the devices_judge index's order: ties fall in its order (agent, site, ...,
 * rowid), and adding "rowid" here would make SQLite gather and sort every group of equal ages
 * (thousands of never-backed-up phones) before the first row.
 */
static const char *const sort_sql[_QUERY_SORT_MAX][2] = {
	[QUERY_SORT_AGE] = { "d.last_icloud DESC", "d.last_icloud ASC" },
	[QUERY_SORT_NAME] = { "d.name, d.rowid", "d.name DESC, d.rowid DESC" },
	[QUERY_SORT_SERIAL] = { "d.serial, d.rowid", "d.serial DESC, d.rowid DESC" },
	[QUERY_SORT_UDID] = { "d.udid", "d.udid DESC" },
	[QUERY_SORT_LAST_SEEN] = { "d.last_seen, d.rowid", "d.last_seen DESC, d.rowid DESC" },
	[QUERY_SORT_SITE] = { "d.site, d.station, d.name, d.rowid",
	                      "d.site DESC, d.station DESC, d.name DESC, d.rowid DESC" },
	[QUERY_SORT_STATUS] = { "st_rank, d.last_icloud ASC, d.rowid",
	                        "st_rank DESC, d.last_icloud ASC, d.rowid" },
	[QUERY_SORT_IOS] = { "d.ios_key, d.rowid", "d.ios_key DESC, d.rowid DESC" },
};

/* ---- helpers ---- */

static sqlite3_stmt *prepare(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db = store_db(s);

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("query: cannot prepare: %s", sqlite3_errmsg(db));
		return NULL;
	}
	return st;
}

/* Binds a text to the named parameter when the statement has it. */
static void bind_text(sqlite3_stmt *st, const char *name, const char *v)
{
	int i = sqlite3_bind_parameter_index(st, name);

	if (i > 0)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

static void bind_int(sqlite3_stmt *st, const char *name, int64_t v)
{
	int i = sqlite3_bind_parameter_index(st, name);

	if (i > 0)
		sqlite3_bind_int64(st, i, v);
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

static void step_failed(struct store *s)
{
	log_error("query: %s", sqlite3_errmsg(store_db(s)));
}

static cJSON *json_time_s(sqlite3_stmt *st, int i)
{
	char buf[TIMEFMT_RFC3339_MAX];

	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return cJSON_CreateNull();
	if (timefmt_rfc3339(sqlite3_column_int64(st, i), buf, sizeof(buf)) < 0)
		return cJSON_CreateNull();
	return cJSON_CreateString(buf);
}

static cJSON *json_time_ms(int64_t ms)
{
	char buf[TIMEFMT_RFC3339_MAX];

	if (timefmt_rfc3339_ms(ms, buf, sizeof(buf)) < 0)
		return cJSON_CreateNull();
	return cJSON_CreateString(buf);
}

/* Adds item to obj; false (item freed) when something is missing. */
static bool add(cJSON *obj, const char *name, cJSON *item)
{
	if (!item)
		return false;
	if (!cJSON_AddItemToObject(obj, name, item)) {
		cJSON_Delete(item);
		return false;
	}
	return true;
}

/* ",a,b," -> ["a", "b"] */
static cJSON *causes_array(const char *codes)
{
	cJSON *arr = cJSON_CreateArray();
	const char *p = codes;

	while (arr && *p) {
		const char *e;
		char code[COMMAND_CODE_MAX + 16];
		size_t n;

		if (*p == ',') {
			p++;
			continue;
		}
		e = strchr(p, ',');
		n = e ? (size_t)(e - p) : strlen(p);
		if (n < sizeof(code)) {
			memcpy(code, p, n);
			code[n] = '\0';
			if (!cJSON_AddItemToArray(arr, cJSON_CreateString(code))) {
				cJSON_Delete(arr);
				return NULL;
			}
		}
		p += n;
	}
	return arr;
}

/*
 * A stored JSON text as it was received: emitted verbatim (cJSON would print a large integer
 * such as an agent session in exponent form), once it is known to parse; null (or [] for an
 * array) when it does not, so one bad row never fails a whole answer.
 */
static cJSON *parse_stored(const char *text, bool array)
{
	cJSON *v = cJSON_Parse(text);
	bool ok = array ? cJSON_IsArray(v) : cJSON_IsObject(v);

	cJSON_Delete(v);
	if (ok)
		return cJSON_CreateRaw(text);
	return array ? cJSON_CreateArray() : cJSON_CreateNull();
}

/* The device object of the row st is on (columns DEVICE_COLUMNS). */
static cJSON *device_from_row(sqlite3_stmt *st, int64_t now)
{
	cJSON *o = cJSON_CreateObject();
	bool docked = sqlite3_column_int(st, DC_DOCKED) != 0;
	bool ok = o != NULL;
	cJSON *age, *enabled, *seen;

	if (sqlite3_column_type(st, DC_LAST_ICLOUD) == SQLITE_NULL) {
		age = cJSON_CreateNull();
	} else {
		int64_t a = now - sqlite3_column_int64(st, DC_LAST_ICLOUD);

		age = cJSON_CreateNumber((double)(a < 0 ? 0 : a));
	}
	if (sqlite3_column_type(st, DC_ICLOUD_ENABLED) == SQLITE_NULL)
		enabled = cJSON_CreateNull();
	else
		enabled = cJSON_CreateBool(sqlite3_column_int(st, DC_ICLOUD_ENABLED) != 0);
	/* while docked the phone is seen now (judge.h's fact), whatever the row last recorded */
	if (docked) {
		char buf[TIMEFMT_RFC3339_MAX];

		seen = timefmt_rfc3339(now, buf, sizeof(buf)) < 0 ? cJSON_CreateNull()
		                                                  : cJSON_CreateString(buf);
	} else {
		seen = json_time_s(st, DC_LAST_SEEN);
	}

	ok = ok && add(o, "udid", cJSON_CreateString(col_text(st, DC_UDID)));
	ok = ok && add(o, "serial", cJSON_CreateString(col_text(st, DC_SERIAL)));
	ok = ok && add(o, "name", cJSON_CreateString(col_text(st, DC_NAME)));
	ok = ok && add(o, "status", cJSON_CreateString(col_text(st, DC_STATUS)));
	ok = ok && add(o, "last_icloud", json_time_s(st, DC_LAST_ICLOUD));
	ok = ok && add(o, "age_s", age);
	age = NULL;
	ok = ok && add(o, "icloud_enabled", enabled);
	enabled = NULL;
	ok = ok && add(o, "causes", causes_array(col_text(st, DC_CAUSES)));
	ok = ok && add(o, "agent", cJSON_CreateString(col_text(st, DC_AGENT)));
	ok = ok && add(o, "site", cJSON_CreateString(col_text(st, DC_SITE)));
	ok = ok && add(o, "station", cJSON_CreateString(col_text(st, DC_STATION)));
	ok = ok && add(o, "attached", cJSON_CreateBool(docked));
	ok = ok && add(o, "last_seen", seen);
	seen = NULL;
	ok = ok && add(o, "ios_version", cJSON_CreateString(col_text(st, DC_IOS)));
	ok = ok && add(o, "product_type", cJSON_CreateString(col_text(st, DC_PRODUCT)));
	ok = ok && add(o, "last_local", json_time_s(st, DC_LAST_LOCAL));
	ok = ok && add(o, "agent_status", cJSON_CreateString(col_text(st, DC_AGENT_STATUS)));
	ok = ok && add(o, "probe", cJSON_CreateString(col_text(st, DC_PROBE)));
	cJSON_Delete(age);
	cJSON_Delete(enabled);
	cJSON_Delete(seen);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* ---- device list parameters ---- */

void query_devices_init(struct query_devices *q)
{
	memset(q, 0, sizeof(*q));
	q->sort = QUERY_SORT_AGE;
	q->desc = true;
	q->limit = QUERY_LIMIT_DEFAULT;
}

int query_ios_key(const char *version, int64_t *ret)
{
	int64_t part[3] = { 0, 0, 0 };
	const char *p = version;
	int n = 0;

	if (!version || !*version)
		return -EINVAL;
	for (;;) {
		int64_t v = 0;
		int digits = 0;

		if (n == 3)
			return -EINVAL;
		while (isdigit((unsigned char)*p)) {
			v = v * 10 + (*p++ - '0');
			if (++digits > 3)
				return -EINVAL;
		}
		if (!digits)
			return -EINVAL;
		part[n++] = v;
		if (!*p)
			break;
		if (*p++ != '.')
			return -EINVAL;
	}
	*ret = part[0] * 1000000 + part[1] * 1000 + part[2];
	return 0;
}

static int set_text(char *dst, const char *name, const char *value, char *err, size_t errsz)
{
	size_t n = strlen(value);

	if (n >= QUERY_TEXT_MAX) {
		snprintf(err, errsz, "%s: longer than %d bytes", name, QUERY_TEXT_MAX - 1);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
			snprintf(err, errsz, "%s: control characters are not allowed", name);
			return -EINVAL;
		}
	}
	memcpy(dst, value, n + 1);
	return 0;
}

static int parse_status(struct query_devices *q, const char *value, char *err, size_t errsz)
{
	char buf[QUERY_TEXT_MAX];
	char *save = NULL, *tok;
	unsigned mask = 0;

	if (snprintf(buf, sizeof(buf), "%s", value) >= (int)sizeof(buf)) {
		snprintf(err, errsz, "status: too long");
		return -EINVAL;
	}
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		enum judge_status js;

		if (judge_status_from_name(tok, &js) < 0) {
			snprintf(
			        err, errsz,
			        "status: unknown status '%.32s' (one or more of ok, stale, unknown, "
			        "missing, comma-separated)",
			        tok);
			return -EINVAL;
		}
		mask |= 1u << js;
	}
	if (!mask) {
		snprintf(err, errsz, "status: empty");
		return -EINVAL;
	}
	q->status_mask = mask;
	return 0;
}

static bool code_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= COMMAND_CODE_MAX || !islower((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_')
			return false;
	return true;
}

static int parse_count(const char *name, const char *value, int64_t min, int64_t max, int64_t *ret,
                       char *err, size_t errsz)
{
	uint64_t v;

	if (parse_uint(value, &v) < 0 || v < (uint64_t)min || v > (uint64_t)max) {
		snprintf(err, errsz, "%s: want an integer from %lld to %lld", name, (long long)min,
		         (long long)max);
		return -EINVAL;
	}
	*ret = (int64_t)v;
	return 0;
}

int query_devices_param(struct query_devices *q, const char *name, const char *value, char *err,
                        size_t errsz)
{
	if (!strcmp(name, "status"))
		return parse_status(q, value, err, errsz);
	if (!strcmp(name, "cause")) {
		if (!code_valid(value)) {
			snprintf(err, errsz, "cause: not a cause code (^[a-z][a-z0-9_]*$)");
			return -EINVAL;
		}
		/* stored as ",code1,code2,": the commas make the match exact */
		snprintf(q->cause, sizeof(q->cause), ",%s,", value);
		return 0;
	}
	if (!strcmp(name, "agent"))
		return set_text(q->agent, name, value, err, errsz);
	if (!strcmp(name, "site"))
		return set_text(q->site, name, value, err, errsz);
	if (!strcmp(name, "station"))
		return set_text(q->station, name, value, err, errsz);
	if (!strcmp(name, "q")) {
		int r = set_text(q->q, name, value, err, errsz);

		for (char *p = q->q; r == 0 && *p; p++)
			*p = (char)tolower((unsigned char)*p);
		return r;
	}
	if (!strcmp(name, "ios_below")) {
		if (query_ios_key(value, &q->ios_below) < 0 || q->ios_below == 0) {
			snprintf(err, errsz, "ios_below: want an iOS version such as 17 or 16.4.1");
			return -EINVAL;
		}
		return 0;
	}
	if (!strcmp(name, "sort")) {
		const char *key = value[0] == '-' ? value + 1 : value;

		for (int i = 0; i < _QUERY_SORT_MAX; i++) {
			if (!strcmp(key, sort_names[i])) {
				q->sort = (enum query_sort)i;
				q->desc = value[0] == '-';
				return 0;
			}
		}
		snprintf(
		        err, errsz,
		        "sort: unknown key '%.32s' (age, name, serial, udid, last_seen, site, status, "
		        "ios; '-' before it reverses)",
		        value);
		return -EINVAL;
	}
	if (!strcmp(name, "limit"))
		return parse_count(name, value, 1, QUERY_LIMIT_MAX, &q->limit, err, errsz);
	if (!strcmp(name, "offset"))
		return parse_count(name, value, 0, QUERY_OFFSET_MAX, &q->offset, err, errsz);
	return -ENOENT;
}

/* ---- device list ---- */

/* Length of the UTF-8 sequence at s (1..4), or 0 when it is not a valid one. */
static size_t utf8_seq(const unsigned char *s)
{
	size_t n = 0;

	if (s[0] < 0x80)
		n = 1;
	else if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
	    (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
		return 0;
	return n;
}

/*
 * Whether q's text search can ask devices_fts (store_schema.c, migration 6): its trigrams
 * need 3 characters or more (Unicode code points), and a text that is not valid UTF-8 would
 * not be cut into characters the way the stored fields are. The rest, and a query told to
 * (q->scan), take the scan.
 */
static bool search_indexed(const struct query_devices *q)
{
	const unsigned char *p = (const unsigned char *)q->q;
	size_t chars = 0;

	if (q->scan)
		return false;
	while (*p) {
		size_t n = utf8_seq(p);

		if (!n)
			return false;
		p += n;
		chars++;
	}
	return chars >= QUERY_SEARCH_INDEXED_MIN;
}

/* " WHERE ..." of q into buf. 0, or -ENOSPC when it does not fit (never a filter dropped). */
static int where_sql(const struct query_devices *q, char *buf, size_t size)
{
	size_t n = 0;
	const char *sep = " WHERE ";
	bool full = false;

#define ADD(...)                                     \
 do {                                                \
  int w_ = snprintf(buf + n, size - n, __VA_ARGS__); \
  if (w_ > 0 && (size_t)w_ < size - n)               \
   n += (size_t)w_;                                  \
 } while (0)

	buf[0] = '\0';
	if (q->status_mask) {
		const char *comma = "";

		ADD("%s" STATUS_EXPR " IN (", sep);
		for (int i = 0; i < _JUDGE_STATUS_MAX; i++) {
			if (q->status_mask & (1u << i)) {
				ADD("%s'%s'", comma, judge_status_name((enum judge_status)i));
				comma = ",";
			}
		}
		ADD(")");
		sep = " AND ";
	}
	if (q->cause[0]) {
		ADD("%sinstr(d.cause_codes, :cause) > 0", sep);
		sep = " AND ";
	}
	if (q->agent[0]) {
		ADD("%sd.agent = :agent", sep);
		sep = " AND ";
	}
	if (q->site[0]) {
		ADD("%sd.site = :site", sep);
		sep = " AND ";
	}
	if (q->station[0]) {
		ADD("%sd.station = :station", sep);
		sep = " AND ";
	}
	if (q->ios_below) {
		/* ios_key 0 = version unknown: not "below" anything */
		ADD("%sd.ios_key > 0 AND d.ios_key < :ios_below", sep);
		sep = " AND ";
	}
	if (q->q[0] && search_indexed(q)) {
		/* The trigram index finds every indexed phone whose fields hold the text, folded to
		 * lower case (Unicode), and perhaps a few more (LIKE folds ASCII only); the phones
		 * not indexed yet are all candidates. The LIKE below, on those rows only, keeps
		 * exactly the scan's answer. */
		ADD("%sd.rowid IN (SELECT rowid FROM devices_fts WHERE devices_fts MATCH :qfts"
		    " UNION ALL SELECT id FROM devices_fts_pending)"
		    " AND (d.serial LIKE :q ESCAPE '\\' OR d.name LIKE :q ESCAPE '\\' OR"
		    " d.udid LIKE :q ESCAPE '\\')",
		    sep);
		sep = " AND ";
	} else if (q->q[0]) {
		/* LIKE: case-insensitive for ASCII, as the UI's search. The match runs on the
		 * narrow devices_search index (serial, name, udid) and hands the few rowids it
		 * finds to the outer query, instead of reading every wide row in the sort's order.
		 */
		ADD("%sd.rowid IN (SELECT rowid FROM devices WHERE serial LIKE :q ESCAPE '\\' OR"
		    " name LIKE :q ESCAPE '\\' OR udid LIKE :q ESCAPE '\\')",
		    sep);
		sep = " AND ";
	}
#undef ADD
	return full ? -ENOSPC : 0;
}

/*
 * :qfts, when the statement has it: the text as one FTS5 string ("..." with " doubled), which
 * the trigram tokenizer cuts into the phrase of its trigrams; nothing else is special inside.
 */
static void bind_fts(sqlite3_stmt *st, const char *text)
{
	char m[2 * QUERY_TEXT_MAX + 3];
	size_t n = 0;

	if (sqlite3_bind_parameter_index(st, ":qfts") <= 0)
		return;
	m[n++] = '"';
	for (const char *p = text; *p; p++) {
		if (*p == '"')
			m[n++] = '"';
		m[n++] = *p;
	}
	m[n++] = '"';
	m[n] = '\0';
	bind_text(st, ":qfts", m);
}

static void bind_filter(sqlite3_stmt *st, const struct query_devices *q, int64_t now)
{
	bind_int(st, ":now", now);
	if (q->cause[0])
		bind_text(st, ":cause", q->cause);
	if (q->agent[0])
		bind_text(st, ":agent", q->agent);
	if (q->site[0])
		bind_text(st, ":site", q->site);
	if (q->station[0])
		bind_text(st, ":station", q->station);
	if (q->ios_below)
		bind_int(st, ":ios_below", q->ios_below);
	if (q->q[0]) {
		char like[2 * QUERY_TEXT_MAX + 3];
		size_t n = 0;

		like[n++] = '%';
		for (const char *p = q->q; *p; p++) {
			if (*p == '%' || *p == '_' || *p == '\\')
				like[n++] = '\\';
			like[n++] = *p;
		}
		like[n++] = '%';
		like[n] = '\0';
		bind_text(st, ":q", like);
		bind_fts(st, q->q);
	}
}

/* The page (or, for CSV, the whole filter up to limit rows from offset). */
static sqlite3_stmt *devices_stmt(struct store *s, const struct query_devices *q, int64_t now,
                                  int64_t limit, int64_t offset)
{
	char where[QUERY_SQL_MAX / 2], sql[QUERY_SQL_MAX];
	sqlite3_stmt *st;

	if (where_sql(q, where, sizeof(where)) < 0) {
		log_error("query: the device filter does not fit its buffer");
		return NULL;
	}
	snprintf(sql, sizeof(sql),
	         "SELECT " DEVICE_COLUMNS "%s" DEVICE_FROM
	         "%s ORDER BY %s LIMIT :limit OFFSET :offset",
	         q->sort == QUERY_SORT_STATUS
	                 ? ", CASE " STATUS_EXPR
	                   " WHEN 'ok' THEN 0 WHEN 'stale' THEN 1 WHEN 'unknown' THEN 2 ELSE 3 END"
	                   " AS st_rank"
	                 : "",
	         where, sort_sql[q->sort][q->desc ? 1 : 0]);
	st = prepare(s, sql);
	if (!st)
		return NULL;
	bind_filter(st, q, now);
	bind_int(st, ":limit", limit);
	bind_int(st, ":offset", offset);
	return st;
}

static int devices_count(struct store *s, const struct query_devices *q, int64_t now, int64_t *ret)
{
	char where[QUERY_SQL_MAX / 2], sql[QUERY_SQL_MAX];
	sqlite3_stmt *st;
	int r = -EIO;

	if (where_sql(q, where, sizeof(where)) < 0) {
		log_error("query: the device filter does not fit its buffer");
		return -EIO;
	}
	snprintf(sql, sizeof(sql), "SELECT COUNT(*)" DEVICE_FROM "%s", where);
	st = prepare(s, sql);
	if (!st)
		return -EIO;
	bind_filter(st, q, now);
	if (sqlite3_step(st) == SQLITE_ROW) {
		*ret = sqlite3_column_int64(st, 0);
		r = 0;
	} else {
		step_failed(s);
	}
	sqlite3_finalize(st);
	return r;
}

int query_devices_each(struct store *s, const struct query_devices *q, int64_t now,
                       query_device_fn fn, void *ctx)
{
	char where[QUERY_SQL_MAX / 2], sql[QUERY_SQL_MAX];
	sqlite3_stmt *st;
	int r = 0, rc;

	if (where_sql(q, where, sizeof(where)) < 0) {
		log_error("query: the device filter does not fit its buffer");
		return -EIO;
	}
	snprintf(sql, sizeof(sql),
	         "SELECT d.udid, d.agent, d.site, d.station, " DOCKED_EXPR DEVICE_FROM
	         "%s ORDER BY d.rowid",
	         where);
	st = prepare(s, sql);
	if (!st)
		return -EIO;
	bind_filter(st, q, now);
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		r = fn(ctx, col_text(st, 0), col_text(st, 1), col_text(st, 2), col_text(st, 3),
		       sqlite3_column_int(st, 4) != 0);
	if (r == 0 && rc != SQLITE_DONE) {
		step_failed(s);
		r = -EIO;
	}
	sqlite3_finalize(st);
	return r;
}

cJSON *query_devices_json(struct store *s, const struct query_devices *q, int64_t now)
{
	cJSON *root = NULL, *arr;
	sqlite3_stmt *st = NULL;
	int64_t total, rows = 0;
	int rc;

	root = cJSON_CreateObject();
	arr = cJSON_CreateArray();
	if (!root || !arr) {
		cJSON_Delete(arr);
		goto fail;
	}
	st = devices_stmt(s, q, now, q->limit, q->offset);
	if (!st) {
		cJSON_Delete(arr);
		goto fail;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *d = device_from_row(st, now);

		if (!d || !cJSON_AddItemToArray(arr, d)) {
			cJSON_Delete(d);
			cJSON_Delete(arr);
			goto fail;
		}
		rows++;
	}
	if (rc != SQLITE_DONE) {
		step_failed(s);
		cJSON_Delete(arr);
		goto fail;
	}
	/* a short page that is not past the end already tells the total: no second scan */
	if (rows > 0 && rows < q->limit)
		total = q->offset + rows;
	else if (rows == 0 && q->offset == 0)
		total = 0;
	else if (devices_count(s, q, now, &total) < 0) {
		cJSON_Delete(arr);
		goto fail;
	}
	if (!cJSON_AddNumberToObject(root, "total", (double)total) ||
	    !cJSON_AddItemToObject(root, "devices", arr)) {
		cJSON_Delete(arr);
		goto fail;
	}
	sqlite3_finalize(st);
	return root;
fail:
	sqlite3_finalize(st);
	cJSON_Delete(root);
	return NULL;
}

/*
 * One CSV field (RFC 4180): quoted when it holds a comma, quote or line break. A text that a
 * spreadsheet would run as a formula (= + - @ first) gets a leading apostrophe: phone names
 * come from the phones, and an export must not become a way to run something on a laptop.
 */
static void csv_field(FILE *f, const char *v, bool text)
{
	bool quote = strpbrk(v, ",\"\r\n") != NULL;

	if (text && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@')) {
		quote = true;
		fputs("\"'", f);
	} else if (quote) {
		fputc('"', f);
	}
	for (const char *p = v; *p; p++) {
		if (*p == '"' && quote)
			fputc('"', f);
		fputc(*p, f);
	}
	if (quote)
		fputc('"', f);
}

static const char *json_str(const cJSON *o, const char *name, char *buf, size_t size)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	if (cJSON_IsString(v))
		return v->valuestring;
	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v) ? "true" : "false";
	if (cJSON_IsNumber(v)) {
		snprintf(buf, size, "%.0f", v->valuedouble);
		return buf;
	}
	return "";
}

int query_devices_csv(struct store *s, const struct query_devices *q, int64_t now, FILE *f)
{
	static const char *const cols[] = {
		"udid",    "serial",         "name",      "status",      "last_icloud",
		"age_s",   "icloud_enabled", "causes",    "agent",       "site",
		"station", "attached",       "last_seen", "ios_version", "product_type",
	};
	sqlite3_stmt *st;
	int r = 0, rc;

	st = devices_stmt(s, q, now, QUERY_CSV_MAX, 0);
	if (!st)
		return -EIO;
	for (size_t i = 0; i < ARRAY_SIZE(cols); i++)
		fprintf(f, "%s%s", i ? "," : "", cols[i]);
	fputs("\r\n", f);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *d = device_from_row(st, now);

		if (!d) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < ARRAY_SIZE(cols); i++) {
			char buf[32];

			if (i)
				fputc(',', f);
			if (!strcmp(cols[i], "causes")) {
				const cJSON *c;
				bool first = true;
				char joined[512] = "";
				size_t n = 0;

				cJSON_ArrayForEach(c, cJSON_GetObjectItem(d, "causes")) {
					int w = snprintf(joined + n, sizeof(joined) - n, "%s%s",
					                 first ? "" : ";", c->valuestring);

					if (w > 0 && (size_t)w < sizeof(joined) - n)
						n += (size_t)w;
					first = false;
				}
				csv_field(f, joined, false);
			} else {
				csv_field(f, json_str(d, cols[i], buf, sizeof(buf)), true);
			}
		}
		fputs("\r\n", f);
		cJSON_Delete(d);
	}
	if (rc != SQLITE_DONE) {
		step_failed(s);
		r = -EIO;
	}
out:
	sqlite3_finalize(st);
	if (r == 0 && ferror(f))
		r = -EIO;
	return r;
}

/* ---- one phone ---- */

static sqlite3_stmt *device_stmt(struct store *s, const char *udid, int64_t now)
{
	sqlite3_stmt *st = prepare(s, "SELECT " DEVICE_COLUMNS DEVICE_FROM "WHERE d.udid = :udid");

	if (!st)
		return NULL;
	bind_int(st, ":now", now);
	bind_text(st, ":udid", udid);
	return st;
}

cJSON *query_device_json(struct store *s, const char *udid, int64_t now)
{
	sqlite3_stmt *st = device_stmt(s, udid, now);
	cJSON *d = NULL;
	int rc;

	if (!st)
		return NULL;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		d = device_from_row(st, now);
	else if (rc != SQLITE_DONE)
		step_failed(s);
	sqlite3_finalize(st);
	return d;
}

/* Bits (1 << enum command_name) of the commands in meta_json's allowed_commands; all of v1
 * when no meta is known (the agent decides in the end). */
static unsigned allowed_from_meta(const char *meta_json)
{
	unsigned mask = 0;
	cJSON *meta, *list, *it;

	if (!meta_json || !*meta_json)
		return (1u << _COMMAND_NAME_MAX) - 1;
	meta = cJSON_Parse(meta_json);
	list = cJSON_GetObjectItemCaseSensitive(meta, "allowed_commands");
	if (!cJSON_IsArray(list)) {
		cJSON_Delete(meta);
		return (1u << _COMMAND_NAME_MAX) - 1;
	}
	cJSON_ArrayForEach(it, list) {
		enum command_name n;

		if (cJSON_IsString(it) && command_name_from_str(it->valuestring, &n) == 0)
			mask |= 1u << n;
	}
	cJSON_Delete(meta);
	return mask;
}

int query_device_route(struct store *s, const char *udid, char *agent, size_t agent_size,
                       bool *attached, bool *agent_online, unsigned *allowed_mask)
{
	sqlite3_stmt *st =
	        prepare(s, "SELECT d.agent, d.attached, COALESCE(a.presence = 'online', 0),"
	                   " a.meta_json FROM devices d"
	                   " LEFT JOIN agents a ON a.agent = d.agent WHERE d.udid = ?1");
	int r = -EIO, rc;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, udid, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(agent, agent_size, "%s", col_text(st, 0));
		*attached = sqlite3_column_int(st, 1) != 0;
		*agent_online = sqlite3_column_int(st, 2) != 0;
		*allowed_mask = allowed_from_meta((const char *)sqlite3_column_text(st, 3));
		r = 0;
	} else if (rc == SQLITE_DONE) {
		r = -ENOENT;
	} else {
		step_failed(s);
	}
	sqlite3_finalize(st);
	return r;
}

cJSON *query_device_detail_json(struct store *s, const char *udid, int64_t now, bool may_command)
{
	sqlite3_stmt *st = device_stmt(s, udid, now);
	cJSON *d = NULL, *allowed;
	char agent[COMMAND_AGENT_MAX];
	bool attached, online;
	unsigned mask = 0;
	int rc;

	if (!st)
		return NULL;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		d = device_from_row(st, now);
		if (d &&
		    !add(d, "cause_details", parse_stored(col_text(st, DC_CAUSES_JSON), true))) {
			cJSON_Delete(d);
			d = NULL;
		}
	} else if (rc != SQLITE_DONE) {
		step_failed(s);
	}
	sqlite3_finalize(st);
	if (!d)
		return NULL;
	if (may_command &&
	    query_device_route(s, udid, agent, sizeof(agent), &attached, &online, &mask) < 0)
		mask = 0;
	allowed = cJSON_AddArrayToObject(d, "commands_allowed");
	if (!allowed) {
		cJSON_Delete(d);
		return NULL;
	}
	for (int i = 0; may_command && i < _COMMAND_NAME_MAX; i++)
		if (mask & (1u << i))
			cJSON_AddItemToArray(allowed, cJSON_CreateString(command_name_str(
			                                      (enum command_name)i)));
	return d;
}

static int device_exists(struct store *s, const char *udid)
{
	sqlite3_stmt *st = prepare(s, "SELECT 1 FROM devices WHERE udid = ?1");
	int r = -EIO, rc;

	if (!st)
		return -EIO;
	sqlite3_bind_text(st, 1, udid, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r = 0;
	else if (rc == SQLITE_DONE)
		r = -ENOENT;
	else
		step_failed(s);
	sqlite3_finalize(st);
	return r;
}

cJSON *query_history_json(struct store *s, const char *udid, int64_t limit, int64_t offset)
{
	sqlite3_stmt *st = NULL;
	cJSON *root = NULL, *arr;
	int rc;

	if (device_exists(s, udid) < 0)
		return NULL;
	st = prepare(s, "SELECT COUNT(*) FROM history WHERE udid = ?1");
	if (!st)
		goto fail;
	sqlite3_bind_text(st, 1, udid, -1, SQLITE_TRANSIENT);
	if (sqlite3_step(st) != SQLITE_ROW) {
		step_failed(s);
		goto fail;
	}
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddNumberToObject(root, "total", (double)sqlite3_column_int64(st, 0)))
		goto fail;
	arr = cJSON_AddArrayToObject(root, "history");
	if (!arr)
		goto fail;
	sqlite3_finalize(st);
	st = prepare(s, "SELECT ts_ms, kind, name, summary, agent, json FROM history"
	                " WHERE udid = ?1 ORDER BY ts_ms DESC, id DESC LIMIT ?2 OFFSET ?3");
	if (!st)
		goto fail;
	sqlite3_bind_text(st, 1, udid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, limit);
	sqlite3_bind_int64(st, 3, offset);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *h = cJSON_CreateObject();
		bool ok = h && cJSON_AddItemToArray(arr, h);

		ok = ok && add(h, "ts", json_time_ms(sqlite3_column_int64(st, 0)));
		ok = ok && add(h, "kind", cJSON_CreateString(col_text(st, 1)));
		ok = ok && add(h, "name", cJSON_CreateString(col_text(st, 2)));
		ok = ok && add(h, "summary", cJSON_CreateString(col_text(st, 3)));
		ok = ok && add(h, "agent", cJSON_CreateString(col_text(st, 4)));
		ok = ok && add(h, "detail", parse_stored(col_text(st, 5), false));
		if (!ok)
			goto fail;
	}
	if (rc != SQLITE_DONE) {
		step_failed(s);
		goto fail;
	}
	sqlite3_finalize(st);
	return root;
fail:
	sqlite3_finalize(st);
	cJSON_Delete(root);
	return NULL;
}

/* ---- agents ---- */

#define AGENT_SQL                                                                         \
 "SELECT a.agent, a.site, a.station, a.presence, a.last_seen_ms, a.version,"              \
 " a.lost_messages, CASE WHEN a.presence = 'online' THEN (SELECT COUNT(*) FROM devices d" \
 " WHERE d.agent = a.agent AND d.attached) ELSE 0 END FROM agents a "

static cJSON *agent_from_row(sqlite3_stmt *st)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL;

	ok = ok && add(o, "agent", cJSON_CreateString(col_text(st, 0)));
	ok = ok && add(o, "site", cJSON_CreateString(col_text(st, 1)));
	ok = ok && add(o, "station", cJSON_CreateString(col_text(st, 2)));
	ok = ok && add(o, "presence", cJSON_CreateString(col_text(st, 3)));
	ok = ok && add(o, "online", cJSON_CreateBool(!strcmp(col_text(st, 3), "online")));
	ok = ok && add(o, "phones_attached", cJSON_CreateNumber(sqlite3_column_double(st, 7)));
	ok = ok && add(o, "last_seen",
	               sqlite3_column_type(st, 4) == SQLITE_NULL
	                       ? cJSON_CreateNull()
	                       : json_time_ms(sqlite3_column_int64(st, 4)));
	ok = ok && add(o, "version", cJSON_CreateString(col_text(st, 5)));
	ok = ok && add(o, "lost_messages", cJSON_CreateNumber(sqlite3_column_double(st, 6)));
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *query_agent_json(struct store *s, const char *agent, int64_t now)
{
	sqlite3_stmt *st = prepare(s, AGENT_SQL "WHERE a.agent = ?1");
	cJSON *o = NULL;
	int rc;

	(void)now;
	if (!st)
		return NULL;
	sqlite3_bind_text(st, 1, agent, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		o = agent_from_row(st);
	else if (rc != SQLITE_DONE)
		step_failed(s);
	sqlite3_finalize(st);
	return o;
}

cJSON *query_agents_json(struct store *s, int64_t now)
{
	sqlite3_stmt *st = prepare(s, AGENT_SQL "ORDER BY a.site, a.station, a.agent");
	cJSON *root = NULL, *arr;
	int rc;

	(void)now;
	if (!st)
		return NULL;
	root = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(root, "agents");
	if (!arr)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *a = agent_from_row(st);

		if (!a || !cJSON_AddItemToArray(arr, a)) {
			cJSON_Delete(a);
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		step_failed(s);
		goto fail;
	}
	sqlite3_finalize(st);
	return root;
fail:
	sqlite3_finalize(st);
	cJSON_Delete(root);
	return NULL;
}

/* ---- summary ---- */

static const char *const hist_labels[] = { "<1d", "1-3d", "3-7d", "7-30d", ">30d", "never" };
#define HIST_N 6

struct cause_count {
	char code[COMMAND_CODE_MAX];
	int64_t count;
};

static int cause_cmp(const void *a, const void *b)
{
	const struct cause_count *x = a, *y = b;

	if (x->count != y->count)
		return x->count > y->count ? -1 : 1;
	return strcmp(x->code, y->code);
}

static bool add_share(cJSON *o, int64_t total, int64_t ok)
{
	return add(o, "total", cJSON_CreateNumber((double)total)) &&
	       add(o, "ok", cJSON_CreateNumber((double)ok)) &&
	       add(o, "share_ok", cJSON_CreateNumber(total ? (double)ok / (double)total : 0.0));
}

struct station_count {
	char site[DASH_SITE_MAX];
	char station[DASH_SITE_MAX];
	char agent[COMMAND_AGENT_MAX];
	int64_t total, ok;
};

static int station_cmp(const void *a, const void *b)
{
	const struct station_count *x = *(struct station_count *const *)a;
	const struct station_count *y = *(struct station_count *const *)b;
	int c = strcmp(x->site, y->site);

	if (!c)
		c = strcmp(x->station, y->station);
	return c ? c : strcmp(x->agent, y->agent);
}

struct station_list {
	struct station_count **v;
	size_t n;
};

static void station_collect(const char *key, void *value, void *ctx)
{
	struct station_list *l = ctx;

	(void)key;
	l->v[l->n++] = value;
}

/* by_station sorted, and by_site from it (consecutive runs of one site). */
static int summary_stations(struct strmap *map, cJSON *root)
{
	struct station_list l = { calloc(strmap_size(map) + 1, sizeof(*l.v)), 0 };
	cJSON *sites = cJSON_CreateArray(), *stations = cJSON_CreateArray(), *o;
	int64_t site_total = 0, site_ok = 0;
	int r = -ENOMEM;

	if (!add(root, "by_site", sites) || !add(root, "by_station", stations) || !l.v)
		goto out;
	strmap_foreach(map, station_collect, &l);
	qsort(l.v, l.n, sizeof(*l.v), station_cmp);
	for (size_t i = 0; i < l.n; i++) {
		const struct station_count *c = l.v[i];

		o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(stations, o)) {
			cJSON_Delete(o);
			goto out;
		}
		if (!add(o, "site", cJSON_CreateString(c->site)) ||
		    !add(o, "station", cJSON_CreateString(c->station)) ||
		    !add(o, "agent", cJSON_CreateString(c->agent)) ||
		    !add_share(o, c->total, c->ok))
			goto out;
		site_total += c->total;
		site_ok += c->ok;
		if (i + 1 < l.n && !strcmp(l.v[i + 1]->site, c->site))
			continue;
		o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(sites, o)) {
			cJSON_Delete(o);
			goto out;
		}
		if (!add(o, "site", cJSON_CreateString(c->site)) ||
		    !add_share(o, site_total, site_ok))
			goto out;
		site_total = site_ok = 0;
	}
	r = 0;
out:
	free(l.v);
	return r;
}

/*
 * by_status, by_site, by_station and age_histogram in one pass over the phones. The pass reads
 * the devices_judge index only (every column here is in it) and counts stations in a hash map:
 * a GROUP BY over 100 000 phones would sort them all first.
 */
static int summary_devices(struct store *s, int64_t now, cJSON *root)
{
	sqlite3_stmt *st = prepare(
	        s, "SELECT d.site, d.station, d.agent, " STATUS_EXPR ","
	           " CASE WHEN d.last_icloud IS NULL THEN CASE WHEN d.has_facts THEN 5 ELSE -1 END"
	           " WHEN :now - d.last_icloud < 86400 THEN 0 WHEN :now - d.last_icloud < 259200"
	           " THEN 1 WHEN :now - d.last_icloud < 604800 THEN 2"
	           " WHEN :now - d.last_icloud < 2592000 THEN 3 ELSE 4 END" DEVICE_FROM);
	int64_t by_status[_JUDGE_STATUS_MAX] = { 0 }, hist[HIST_N] = { 0 }, total = 0;
	struct strmap *map = strmap_new();
	cJSON *o;
	int r = -EIO, rc;

	if (!st || !map)
		goto out;
	bind_int(st, ":now", now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *site = col_text(st, 0), *station = col_text(st, 1),
		           *agent = col_text(st, 2), *status = col_text(st, 3);
		enum judge_status js = JUDGE_UNKNOWN;
		struct station_count *c;
		char key[DASH_SITE_MAX * 2 + COMMAND_AGENT_MAX + 4];
		int b = sqlite3_column_int(st, 4);

		/* \x1f cannot be in an agent id, and site/station end before it */
		snprintf(key, sizeof(key), "%s\x1f%s\x1f%s", agent, site, station);
		c = strmap_get(map, key);
		if (!c) {
			c = calloc(1, sizeof(*c));
			if (!c || strmap_put(map, key, c, NULL) < 0) {
				free(c);
				r = -ENOMEM;
				goto out;
			}
			snprintf(c->site, sizeof(c->site), "%s", site);
			snprintf(c->station, sizeof(c->station), "%s", station);
			snprintf(c->agent, sizeof(c->agent), "%s", agent);
		}
		if (judge_status_from_name(status, &js) < 0)
			js = JUDGE_UNKNOWN;
		by_status[js]++;
		total++;
		c->total++;
		if (js == JUDGE_OK)
			c->ok++;
		if (b >= 0 && b < HIST_N)
			hist[b]++;
	}
	if (rc != SQLITE_DONE) {
		step_failed(s);
		goto out;
	}
	o = cJSON_CreateObject();
	if (!add(root, "total", cJSON_CreateNumber((double)total)) || !add(root, "by_status", o))
		goto out;
	for (int i = 0; i < _JUDGE_STATUS_MAX; i++)
		if (!add(o, judge_status_name((enum judge_status)i),
		         cJSON_CreateNumber((double)by_status[i])))
			goto out;
	if (summary_stations(map, root) < 0)
		goto out;
	o = cJSON_CreateArray();
	if (!add(root, "age_histogram", o))
		goto out;
	for (int i = 0; i < HIST_N; i++) {
		cJSON *b = cJSON_CreateObject();

		if (!b || !cJSON_AddItemToArray(o, b) ||
		    !add(b, "label", cJSON_CreateString(hist_labels[i])) ||
		    !add(b, "count", cJSON_CreateNumber((double)hist[i])))
			goto out;
	}
	r = 0;
out:
	strmap_free(map, free);
	sqlite3_finalize(st);
	return r;
}

static int summary_causes(struct store *s, cJSON *root)
{
	sqlite3_stmt *st = prepare(s, "SELECT cause_codes, COUNT(*) FROM devices"
	                              " WHERE cause_codes != '' GROUP BY cause_codes");
	struct cause_count *c = NULL;
	size_t n = 0, cap = 0;
	cJSON *arr;
	int r = -EIO, rc;

	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *p = col_text(st, 0);
		int64_t cnt = sqlite3_column_int64(st, 1);

		while (*p) {
			const char *e;
			size_t len, i;

			if (*p == ',') {
				p++;
				continue;
			}
			e = strchr(p, ',');
			len = e ? (size_t)(e - p) : strlen(p);
			if (len < COMMAND_CODE_MAX) {
				for (i = 0; i < n; i++)
					if (strlen(c[i].code) == len && !memcmp(c[i].code, p, len))
						break;
				if (i == n) {
					if (n == cap) {
						size_t ncap = cap ? cap * 2 : 16;
						struct cause_count *nc =
						        realloc(c, ncap * sizeof(*c));

						if (!nc)
							goto out;
						c = nc;
						cap = ncap;
					}
					memcpy(c[n].code, p, len);
					c[n].code[len] = '\0';
					c[n++].count = 0;
				}
				c[i].count += cnt;
			}
			p += len;
		}
	}
	if (rc != SQLITE_DONE) {
		step_failed(s);
		goto out;
	}
	if (n)
		qsort(c, n, sizeof(*c), cause_cmp);
	arr = cJSON_CreateArray();
	if (!add(root, "top_causes", arr))
		goto out;
	for (size_t i = 0; i < n && i < QUERY_TOP_CAUSES; i++) {
		cJSON *o = cJSON_CreateObject();

		if (!o || !cJSON_AddItemToArray(arr, o) ||
		    !add(o, "code", cJSON_CreateString(c[i].code)) ||
		    !add(o, "count", cJSON_CreateNumber((double)c[i].count)))
			goto out;
	}
	r = 0;
out:
	free(c);
	sqlite3_finalize(st);
	return r;
}

static int summary_rest(struct store *s, int64_t now, cJSON *root)
{
	sqlite3_stmt *st;
	cJSON *arr, *o;
	int64_t online = 0, offline = 0;
	int r = -EIO, rc;

	st = prepare(s, "SELECT ts, total, stale FROM samples WHERE ts >= ?1 ORDER BY ts");
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, now - QUERY_HISTORY_DAYS * 86400);
	arr = cJSON_CreateArray();
	if (!add(root, "stale_over_time", arr))
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		o = cJSON_CreateObject();
		if (!o || !cJSON_AddItemToArray(arr, o) || !add(o, "ts", json_time_s(st, 0)) ||
		    !add(o, "total", cJSON_CreateNumber(sqlite3_column_double(st, 1))) ||
		    !add(o, "stale", cJSON_CreateNumber(sqlite3_column_double(st, 2))))
			goto out;
	}
	if (rc != SQLITE_DONE) {
		step_failed(s);
		goto out;
	}
	sqlite3_finalize(st);

	st = prepare(s, "SELECT presence = 'online', COUNT(*) FROM agents GROUP BY 1");
	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_int(st, 0))
			online = sqlite3_column_int64(st, 1);
		else
			offline = sqlite3_column_int64(st, 1);
	}
	if (rc != SQLITE_DONE) {
		step_failed(s);
		goto out;
	}
	o = cJSON_CreateObject();
	if (!add(root, "agents", o) || !add(o, "online", cJSON_CreateNumber((double)online)) ||
	    !add(o, "offline", cJSON_CreateNumber((double)offline)))
		goto out;
	sqlite3_finalize(st);

	/* ingest's persistent counters (store_counter_add), absent = 0 */
	st = prepare(s, "SELECT"
	                " (SELECT value FROM counters WHERE name = 'messages'),"
	                " (SELECT value FROM counters WHERE name = 'malformed'),"
	                " (SELECT value FROM counters WHERE name = 'duplicates'),"
	                " (SELECT value FROM counters WHERE name = 'lost')");
	if (!st)
		return -EIO;
	if (sqlite3_step(st) != SQLITE_ROW) {
		step_failed(s);
		goto out;
	}
	o = cJSON_CreateObject();
	if (!add(root, "ingest", o) ||
	    !add(o, "messages", cJSON_CreateNumber(sqlite3_column_double(st, 0))) ||
	    !add(o, "malformed", cJSON_CreateNumber(sqlite3_column_double(st, 1))) ||
	    !add(o, "duplicates", cJSON_CreateNumber(sqlite3_column_double(st, 2))) ||
	    !add(o, "lost", cJSON_CreateNumber(sqlite3_column_double(st, 3))))
		goto out;
	r = 0;
out:
	sqlite3_finalize(st);
	return r;
}

cJSON *query_summary_json(struct store *s, int64_t now)
{
	cJSON *root = cJSON_CreateObject();

	if (!root || summary_devices(s, now, root) < 0 || summary_causes(s, root) < 0 ||
	    summary_rest(s, now, root) < 0) {
		cJSON_Delete(root);
		return NULL;
	}
	return root;
}

/* ---- phones by site and status (metrics.c) ---- */

struct site_count {
	char site[DASH_SITE_MAX];
	int64_t count[_JUDGE_STATUS_MAX];
};

struct site_emit {
	query_site_status_fn fn;
	void *ctx;
};

static void site_emit(const char *key, void *value, void *ctx)
{
	const struct site_emit *e = ctx;
	const struct site_count *c = value;

	(void)key;
	e->fn(e->ctx, c->site, c->count);
}

/* Counted in a hash map, like summary_devices(): a GROUP BY would sort every phone first. */
int query_site_status(struct store *s, int64_t now, query_site_status_fn fn, void *ctx)
{
	sqlite3_stmt *st = prepare(s, "SELECT d.site, " STATUS_EXPR DEVICE_FROM);
	struct strmap *map = strmap_new();
	struct site_emit e = { fn, ctx };
	int r = -EIO, rc;

	if (!st || !map) {
		r = map ? -EIO : -ENOMEM;
		goto out;
	}
	bind_int(st, ":now", now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *site = col_text(st, 0);
		enum judge_status js = JUDGE_UNKNOWN;
		struct site_count *c = strmap_get(map, site);

		if (!c) {
			c = calloc(1, sizeof(*c));
			if (!c || strmap_put(map, site, c, NULL) < 0) {
				free(c);
				r = -ENOMEM;
				goto out;
			}
			snprintf(c->site, sizeof(c->site), "%s", site);
		}
		if (judge_status_from_name(col_text(st, 1), &js) < 0)
			js = JUDGE_UNKNOWN;
		c->count[js]++;
	}
	if (rc != SQLITE_DONE) {
		step_failed(s);
		goto out;
	}
	strmap_foreach(map, site_emit, &e);
	r = 0;
out:
	strmap_free(map, free);
	sqlite3_finalize(st);
	return r;
}

/* ---- commands ---- */

cJSON *query_command_json(struct store *s, const char *cmd_id)
{
	char id[COMMAND_ID_MAX];
	sqlite3_stmt *st;
	cJSON *o = NULL, *arr;
	bool ok;
	int rc;

	if (!cmd_id || command_id_normalize(cmd_id, strlen(cmd_id), id) < 0)
		return NULL;
	st = prepare(s, "SELECT cmd_id, udid, agent, name, status, sent_by, sent_at_ms,"
	                " params_json, expires_at_ms FROM commands WHERE cmd_id = ?1");
	if (!st)
		return NULL;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		if (rc != SQLITE_DONE)
			step_failed(s);
		goto fail;
	}
	o = cJSON_CreateObject();
	ok = o != NULL;
	ok = ok && add(o, "cmd_id", cJSON_CreateString(col_text(st, 0)));
	ok = ok && add(o, "udid", cJSON_CreateString(col_text(st, 1)));
	ok = ok && add(o, "agent", cJSON_CreateString(col_text(st, 2)));
	ok = ok && add(o, "name", cJSON_CreateString(col_text(st, 3)));
	ok = ok && add(o, "status", cJSON_CreateString(col_text(st, 4)));
	ok = ok && add(o, "sent_by", cJSON_CreateString(col_text(st, 5)));
	ok = ok && add(o, "sent_at", json_time_ms(sqlite3_column_int64(st, 6)));
	ok = ok && add(o, "params", parse_stored(col_text(st, 7), false));
	ok = ok && add(o, "expires_at", json_time_ms(sqlite3_column_int64(st, 8)));
	arr = ok ? cJSON_AddArrayToObject(o, "results") : NULL;
	if (!arr)
		goto fail;
	sqlite3_finalize(st);
	st = prepare(s, "SELECT json FROM command_results WHERE cmd_id = ?1 ORDER BY id");
	if (!st)
		goto fail;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		cJSON *res = parse_stored(col_text(st, 0), false);

		/* stored by ingest after decoding: always a JSON object; skip rather than fail */
		if (cJSON_IsNull(res)) {
			cJSON_Delete(res);
			continue;
		}
		if (!res || !cJSON_AddItemToArray(arr, res)) {
			cJSON_Delete(res);
			goto fail;
		}
	}
	if (rc != SQLITE_DONE) {
		step_failed(s);
		goto fail;
	}
	sqlite3_finalize(st);
	return o;
fail:
	sqlite3_finalize(st);
	cJSON_Delete(o);
	return NULL;
}

cJSON *query_device_commands_json(struct store *s, const char *udid, int64_t limit)
{
	sqlite3_stmt *st = prepare(s, "SELECT cmd_id FROM commands WHERE udid = ?1"
	                              " ORDER BY sent_at_ms DESC, rowid DESC LIMIT ?2");
	cJSON *root = NULL, *arr;
	char ids[QUERY_COMMANDS_MAX][COMMAND_ID_MAX];
	int64_t n = 0;
	int rc = SQLITE_DONE;

	if (!st)
		return NULL;
	sqlite3_bind_text(st, 1, udid, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, limit > QUERY_COMMANDS_MAX ? QUERY_COMMANDS_MAX : limit);
	while (n < QUERY_COMMANDS_MAX && (rc = sqlite3_step(st)) == SQLITE_ROW)
		snprintf(ids[n++], COMMAND_ID_MAX, "%s", col_text(st, 0));
	if (n < QUERY_COMMANDS_MAX && rc != SQLITE_DONE) {
		step_failed(s);
		sqlite3_finalize(st);
		return NULL;
	}
	sqlite3_finalize(st);
	root = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(root, "commands");
	if (!arr)
		goto fail;
	for (int64_t i = 0; i < n; i++) {
		cJSON *c = query_command_json(s, ids[i]);

		if (c && !cJSON_AddItemToArray(arr, c)) {
			cJSON_Delete(c);
			goto fail;
		}
	}
	return root;
fail:
	cJSON_Delete(root);
	return NULL;
}
