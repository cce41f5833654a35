/* SPDX-License-Identifier: MIT */
/*
 * judge: the staleness rule of judge.h, once in C and once as the SQL function cradle_status()
 * that calls the same C code, so a filter in a query and a verdict in a JSON object agree.
 */
#include "judge.h"

#include <errno.h>
#include <sqlite3.h>
#include <string.h>

#include "macro.h"

static const char *const status_names[] = {
	[JUDGE_OK] = "ok",
	[JUDGE_STALE] = "stale",
	[JUDGE_UNKNOWN] = "unknown",
	[JUDGE_MISSING] = "missing",
};

enum judge_status judge_status(const struct dash_config *cfg, const struct judge_facts *f,
                               int64_t now)
{
	if (!f->docked && now - f->last_seen > cfg->missing_after_s)
		return JUDGE_MISSING;
	if (!f->has_facts && !f->has_last_icloud)
		return JUDGE_UNKNOWN;
	if (!f->has_last_icloud)
		return JUDGE_STALE;
	if (now - f->last_icloud > dash_config_stale_after(cfg, f->site))
		return JUDGE_STALE;
	return JUDGE_OK;
}

const char *judge_status_name(enum judge_status s)
{
	if ((unsigned)s >= ARRAY_SIZE(status_names))
		return NULL;
	return status_names[s];
}

int judge_status_from_name(const char *name, enum judge_status *ret)
{
	for (size_t i = 0; name && i < ARRAY_SIZE(status_names); i++)
		if (strcmp(name, status_names[i]) == 0) {
			*ret = (enum judge_status)i;
			return 0;
		}
	return -EINVAL;
}

/* cradle_status(site, docked, last_seen, has_facts, last_icloud, now) */
static void sql_status(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const struct dash_config *cfg = sqlite3_user_data(ctx);
	struct judge_facts f = { 0 };
	enum judge_status s;

	(void)argc;
	f.site = (const char *)sqlite3_value_text(argv[0]);
	f.docked = sqlite3_value_int(argv[1]) != 0;
	f.last_seen = sqlite3_value_int64(argv[2]);
	f.has_facts = sqlite3_value_int(argv[3]) != 0;
	f.has_last_icloud = sqlite3_value_type(argv[4]) != SQLITE_NULL;
	f.last_icloud = sqlite3_value_int64(argv[4]);
	s = judge_status(cfg, &f, sqlite3_value_int64(argv[5]));
	sqlite3_result_text(ctx, status_names[s], -1, SQLITE_STATIC);
}

int judge_sql_register(struct sqlite3 *db, const struct dash_config *cfg)
{
	int r = sqlite3_create_function(db, "cradle_status", 6,
	                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS,
	                                (void *)(uintptr_t)cfg, sql_status, NULL, NULL);
	return r == SQLITE_OK ? 0 : -EIO;
}
