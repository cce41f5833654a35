/* SPDX-License-Identifier: MIT */
/*
 * alerts: the rules engine (alerts.h). A pass reads the agents and the phones once, marks the
 * (rule, subject) pairs whose condition holds now, and then settles every pair it knows:
 * pending ones fire after alert_for, firing ones absent for alert_clear_for resolve, and the
 * firing ones get their silence and inhibition worked out, in rule order (agent_offline and
 * site_network first, so the alerts they explain are inhibited before they could notify).
 * The pairs live in memory, one map per rule; only changes are written, so a pass over 100 000
 * stale phones that are already firing costs one read of the devices table.
 */
#include "alerts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "hub.h"
#include "log.h"
#include "macro.h"
#include "notify.h"
#include "store.h"
#include "strmap.h"
#include "timefmt.h"

#define ALERTS_SUBJECT_MAX 140 /* "site/station" */

static const char *const rule_names[] = {
	[ALERTS_AGENT_OFFLINE] = "agent_offline",
	[ALERTS_SITE_NETWORK] = "site_network",
	[ALERTS_DEVICE_MISSING] = "device_missing",
	[ALERTS_BACKUP_STALE] = "backup_stale",
};

/* One (rule, subject) whose condition held at some pass, or that fires. */
struct ent {
	int64_t id; /* the firing alerts row; 0: pending (condition holds, alert_for not yet) */
	int64_t first_true; /* Unix s the condition started to hold (this episode) */
	int64_t last_true;  /* Unix s it was last seen holding */
	uint64_t gen;       /* the pass that last saw it hold */
	int64_t silence_id; /* as stored: the silence that covers it, 0 none */
	int64_t inhibited_by;
	bool notified;
	size_t fresh; /* 1 + its index in alerts.fresh: fired this pass, its row not yet written */
	char site[DASH_SITE_MAX], station[DASH_SITE_MAX], agent[64];
};

/* An alert fired this pass. Its id is taken at once (the table's next rowid, so ids follow the
 * order the rules fire in) and its row is written after settling, with the silence, inhibition
 * and notified it settled with: one INSERT per new alert, neither an UPDATE of the row it just
 * wrote nor a read of it back for the notification. */
struct fresh {
	struct ent *e;
	enum alerts_rule rule;
	char *subject, *summary, *detail;
};

struct silence {
	int64_t id;
	char rule[32], scope[16], site[DASH_SITE_MAX], station[DASH_SITE_MAX], value[64];
};

struct site_count {
	char site[DASH_SITE_MAX], station[DASH_SITE_MAX];
	unsigned stale, network;
};

struct agent_info {
	bool online;
	char presence[16];
	int64_t presence_s;
	char site[DASH_SITE_MAX], station[DASH_SITE_MAX];
};

struct alerts {
	struct store *store;
	struct hub *hub;
	const struct dash_config *cfg;
	struct strmap *ents[_ALERTS_RULE_MAX];
	uint64_t gen;
	struct silence *sil;
	size_t n_sil;
	sqlite3_stmt *ins, *upd_flags, *resolve, *get, *prune_alerts, *prune_silences, *facts,
	        *max_id;
	int64_t next_id; /* the id of the next alert fired this pass */
	struct fresh *fresh;
	size_t n_fresh, cap_fresh;
	int64_t pruned_at; /* last retention of resolved alerts and ended silences */
};

const char *alerts_rule_name(enum alerts_rule r)
{
	return (unsigned)r < ARRAY_SIZE(rule_names) ? rule_names[r] : NULL;
}

int alerts_rule_from_name(const char *name, enum alerts_rule *ret)
{
	for (size_t i = 0; i < ARRAY_SIZE(rule_names); i++)
		if (name && strcmp(name, rule_names[i]) == 0) {
			*ret = (enum alerts_rule)i;
			return 0;
		}
	return -EINVAL;
}

static const char *subject_kind(enum alerts_rule r, const char *subject)
{
	switch (r) {
	case ALERTS_AGENT_OFFLINE:
		return "agent";
	case ALERTS_SITE_NETWORK:
		return strchr(subject, '/') ? "station" : "site";
	default:
		return "udid";
	}
}

/* As snprintf(dst, size, "%s", src), without a formatted print: a pass copies a few strings for
 * each of tens of thousands of alerts. */
static void copy(char *dst, size_t size, const char *src)
{
	size_t n = src ? strnlen(src, size - 1) : 0;

	if (n)
		memcpy(dst, src, n);
	dst[n] = '\0';
}

static int prepare(struct alerts *a, const char *sql, sqlite3_stmt **st)
{
	if (sqlite3_prepare_v3(store_db(a->store), sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) !=
	    SQLITE_OK)
		return log_error_errno(-EIO, "alerts: %s", sqlite3_errmsg(store_db(a->store)));
	return 0;
}

static void publish(struct alerts *a, int64_t id)
{
	char key[32];

	if (!a->hub)
		return;
	snprintf(key, sizeof(key), "%" PRId64, id);
	hub_publish(a->hub, HUB_ALERT, key);
}

static void fresh_clear(struct alerts *a)
{
	for (size_t i = 0; i < a->n_fresh; i++) {
		a->fresh[i].e->fresh = 0;
		free(a->fresh[i].subject);
		free(a->fresh[i].summary);
		free(a->fresh[i].detail);
	}
	a->n_fresh = 0;
}

/* ---- loading ---- */

static int load_firing(struct alerts *a)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO, s;

	if (sqlite3_prepare_v2(store_db(a->store),
	                       "SELECT id, rule, subject, site, station, agent, fired_at,"
	                       " coalesce(silence_id, 0), coalesce(inhibited_by, 0), notified"
	                       " FROM alerts WHERE state = 'firing'",
	                       -1, &st, NULL) != SQLITE_OK)
		goto out;
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		enum alerts_rule rule;
		struct ent *e;

		if (alerts_rule_from_name((const char *)sqlite3_column_text(st, 1), &rule) < 0)
			continue; /* a rule of a newer program: left alone */
		e = calloc(1, sizeof(*e));
		if (!e) {
			r = -ENOMEM;
			goto out;
		}
		e->id = sqlite3_column_int64(st, 0);
		copy(e->site, sizeof(e->site), (const char *)sqlite3_column_text(st, 3));
		copy(e->station, sizeof(e->station), (const char *)sqlite3_column_text(st, 4));
		copy(e->agent, sizeof(e->agent), (const char *)sqlite3_column_text(st, 5));
		e->first_true = sqlite3_column_int64(st, 6);
		/* 0: taken to hold at the first pass, so a restart never resolves early */
		e->last_true = 0;
		e->silence_id = sqlite3_column_int64(st, 7);
		e->inhibited_by = sqlite3_column_int64(st, 8);
		e->notified = sqlite3_column_int(st, 9) != 0;
		if (strmap_put(a->ents[rule], (const char *)sqlite3_column_text(st, 2), e, NULL) <
		    0) {
			free(e);
			r = -ENOMEM;
			goto out;
		}
	}
	if (s == SQLITE_DONE)
		r = 0;
out:
	if (r == -EIO)
		log_error("alerts: loading: %s", sqlite3_errmsg(store_db(a->store)));
	sqlite3_finalize(st);
	return r;
}

int alerts_new(struct store *store, struct hub *hub, const struct dash_config *cfg,
               struct alerts **ret)
{
	struct alerts *a;
	int r = -ENOMEM;

	*ret = NULL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->store = store;
	a->hub = hub;
	a->cfg = cfg;
	for (int i = 0; i < _ALERTS_RULE_MAX; i++) {
		a->ents[i] = strmap_new();
		if (!a->ents[i])
			goto out;
	}
	r = prepare(
	        a,
	        "INSERT INTO alerts(id, rule, subject_kind, subject, site, station, agent, state,"
	        " fired_at, silence_id, inhibited_by, notified, summary, detail_json) VALUES"
	        " (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'firing', ?8, nullif(?9, 0), nullif(?10, 0), ?11,"
	        " ?12, ?13)",
	        &a->ins);
	if (r == 0)
		r = prepare(a, "SELECT coalesce(max(id), 0) FROM alerts", &a->max_id);
	if (r == 0)
		r = prepare(
		        a,
		        "UPDATE alerts SET silence_id = nullif(?2, 0), inhibited_by = nullif(?3, 0),"
		        " notified = ?4 WHERE id = ?1",
		        &a->upd_flags);
	if (r == 0)
		r = prepare(
		        a,
		        "UPDATE alerts SET state = 'resolved', resolved_at = ?2 WHERE id = ?1"
		        " RETURNING rule, subject_kind, subject, site, station, fired_at, summary,"
		        " detail_json",
		        &a->resolve);
	if (r == 0)
		r = prepare(a, "SELECT summary, detail_json, fired_at FROM alerts WHERE id = ?1",
		            &a->get);
	if (r == 0)
		r = prepare(a, "DELETE FROM alerts WHERE state = 'resolved' AND resolved_at < ?1",
		            &a->prune_alerts);
	if (r == 0)
		r = prepare(a, "DELETE FROM silences WHERE ends_at < ?1", &a->prune_silences);
	if (r == 0)
		r = prepare(a, "SELECT serial, name, causes_json FROM devices WHERE udid = ?1",
		            &a->facts);
	if (r == 0)
		r = load_firing(a);
out:
	if (r < 0) {
		alerts_free(a);
		return r;
	}
	*ret = a;
	return 0;
}

struct alerts *alerts_free(struct alerts *a)
{
	if (!a)
		return NULL;
	fresh_clear(a); /* empty between passes; before the entries it points to go */
	for (int i = 0; i < _ALERTS_RULE_MAX; i++)
		strmap_free(a->ents[i], free);
	sqlite3_finalize(a->ins);
	sqlite3_finalize(a->upd_flags);
	sqlite3_finalize(a->resolve);
	sqlite3_finalize(a->get);
	sqlite3_finalize(a->prune_alerts);
	sqlite3_finalize(a->prune_silences);
	sqlite3_finalize(a->facts);
	sqlite3_finalize(a->max_id);
	free(a->fresh);
	free(a->sil);
	free(a);
	return NULL;
}

/* ---- one pass ---- */

/* Marks (rule, subject) as holding now. NULL when out of memory. */
static struct ent *hold(struct alerts *a, enum alerts_rule rule, const char *subject,
                        const char *site, const char *station, const char *agent, int64_t now)
{
	struct ent *e = strmap_get(a->ents[rule], subject);

	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || strmap_put(a->ents[rule], subject, e, NULL) < 0) {
			free(e);
			return NULL;
		}
		e->first_true = now;
	}
	e->last_true = now;
	e->gen = a->gen;
	if (strcmp(e->site, site) != 0)
		copy(e->site, sizeof(e->site), site);
	if (strcmp(e->station, station) != 0)
		copy(e->station, sizeof(e->station), station);
	if (strcmp(e->agent, agent) != 0)
		copy(e->agent, sizeof(e->agent), agent);
	return e;
}

static bool due(const struct alerts *a, const struct ent *e, int64_t now)
{
	return e->id == 0 && now - e->first_true >= a->cfg->alert_for_s;
}

/* Fires e: takes its id and keeps its row for fresh_write(). detail: an object (consumed). */
static int fire(struct alerts *a, enum alerts_rule rule, struct ent *e, const char *subject,
                const char *summary, cJSON *detail, struct alerts_stats *st)
{
	char *dj = cJSON_PrintUnformatted(detail);
	struct fresh *f;

	cJSON_Delete(detail);
	if (!dj)
		return -ENOMEM;
	if (a->n_fresh == a->cap_fresh) {
		size_t nc = a->cap_fresh ? a->cap_fresh * 2 : 256;
		struct fresh *nv = realloc(a->fresh, nc * sizeof(*nv));

		if (!nv) {
			free(dj);
			return -ENOMEM;
		}
		a->fresh = nv;
		a->cap_fresh = nc;
	}
	f = &a->fresh[a->n_fresh];
	f->e = e;
	f->rule = rule;
	f->subject = strdup(subject);
	f->summary = strdup(summary);
	f->detail = dj;
	if (!f->subject || !f->summary) {
		free(f->subject);
		free(f->summary);
		free(dj);
		return -ENOMEM;
	}
	a->n_fresh++;
	e->fresh = a->n_fresh;
	e->id = a->next_id++;
	e->silence_id = e->inhibited_by = 0;
	e->notified = false;
	st->fired++;
	publish(a, e->id);
	return 0;
}

/* The rows of the alerts fired this pass, in id order (appended to the table), as settled. */
static int fresh_write(struct alerts *a, int64_t now)
{
	int r = 0;

	for (size_t i = 0; i < a->n_fresh && r == 0; i++) {
		const struct fresh *f = &a->fresh[i];
		const struct ent *e = f->e;

		sqlite3_bind_int64(a->ins, 1, e->id);
		sqlite3_bind_text(a->ins, 2, rule_names[f->rule], -1, SQLITE_STATIC);
		sqlite3_bind_text(a->ins, 3, subject_kind(f->rule, f->subject), -1, SQLITE_STATIC);
		sqlite3_bind_text(a->ins, 4, f->subject, -1, SQLITE_STATIC);
		sqlite3_bind_text(a->ins, 5, e->site, -1, SQLITE_STATIC);
		sqlite3_bind_text(a->ins, 6, e->station, -1, SQLITE_STATIC);
		sqlite3_bind_text(a->ins, 7, e->agent, -1, SQLITE_STATIC);
		sqlite3_bind_int64(a->ins, 8, now);
		sqlite3_bind_int64(a->ins, 9, e->silence_id);
		sqlite3_bind_int64(a->ins, 10, e->inhibited_by);
		sqlite3_bind_int(a->ins, 11, e->notified);
		sqlite3_bind_text(a->ins, 12, f->summary, -1, SQLITE_STATIC);
		sqlite3_bind_text(a->ins, 13, f->detail, -1, SQLITE_STATIC);
		if (sqlite3_step(a->ins) != SQLITE_DONE) {
			log_error("alerts: firing %s %s: %s", rule_names[f->rule], f->subject,
			          sqlite3_errmsg(store_db(a->store)));
			r = -EIO;
		}
		sqlite3_reset(a->ins);
	}
	sqlite3_clear_bindings(a->ins);
	fresh_clear(a);
	return r;
}

static void add_time(cJSON *o, const char *name, int64_t t)
{
	char buf[40];

	if (timefmt_rfc3339(t, buf, sizeof(buf)) < 0)
		cJSON_AddNullToObject(o, name);
	else
		cJSON_AddStringToObject(o, name, buf);
}

static int eval_agents(struct alerts *a, int64_t now, struct strmap *agents,
                       struct alerts_stats *st)
{
	sqlite3_stmt *q = NULL;
	int r = -EIO, s;

	if (sqlite3_prepare_v2(store_db(a->store),
	                       "SELECT agent, site, station, presence, presence_ms FROM agents", -1,
	                       &q, NULL) != SQLITE_OK)
		goto out;
	while ((s = sqlite3_step(q)) == SQLITE_ROW) {
		const char *agent = (const char *)sqlite3_column_text(q, 0);
		struct agent_info *ai = calloc(1, sizeof(*ai));
		int64_t limit;

		if (!ai || strmap_put(agents, agent, ai, NULL) < 0) {
			free(ai);
			r = -ENOMEM;
			goto out;
		}
		st->agents++;
		copy(ai->site, sizeof(ai->site), (const char *)sqlite3_column_text(q, 1));
		copy(ai->station, sizeof(ai->station), (const char *)sqlite3_column_text(q, 2));
		copy(ai->presence, sizeof(ai->presence), (const char *)sqlite3_column_text(q, 3));
		ai->online = strcmp(ai->presence, "online") == 0;
		if (ai->online || sqlite3_column_type(q, 4) == SQLITE_NULL)
			continue; /* never seen coming online: nothing to say it went away */
		ai->presence_s = sqlite3_column_int64(q, 4) / 1000;
		limit = dash_config_site_duration(&a->cfg->alert_agent_offline_site, ai->site,
		                                  a->cfg->alert_agent_offline_s);
		if (now - ai->presence_s > limit) {
			struct ent *e = hold(a, ALERTS_AGENT_OFFLINE, agent, ai->site, ai->station,
			                     agent, now);
			char sum[256];
			cJSON *d;

			if (!e) {
				r = -ENOMEM;
				goto out;
			}
			if (!due(a, e, now))
				continue;
			snprintf(sum, sizeof(sum),
			         "agent %s (%s/%s) %s for more than %" PRId64 " s", agent, ai->site,
			         ai->station, ai->presence, limit);
			d = cJSON_CreateObject();
			cJSON_AddStringToObject(d, "presence", ai->presence);
			add_time(d, "since", ai->presence_s);
			cJSON_AddNumberToObject(d, "threshold_s", (double)limit);
			r = fire(a, ALERTS_AGENT_OFFLINE, e, agent, sum, d, st);
			if (r < 0)
				goto out;
		}
	}
	if (s == SQLITE_DONE)
		r = 0;
out:
	if (r == -EIO)
		log_error("alerts: agents: %s", sqlite3_errmsg(store_db(a->store)));
	sqlite3_finalize(q);
	return r;
}

/* The stale phones per site and station, in the order they first appear (the order their
 * site_network alerts fire in), found by a map: a pass counts every stale phone. */
struct counts {
	struct site_count *v;
	size_t n, cap;
	struct strmap *idx; /* "strlen(site):site/station" -> 1 + index in v */
};

static void counts_free(struct counts *c)
{
	free(c->v);
	strmap_free(c->idx, NULL);
}

static struct site_count *count_for(struct counts *c, const char *site, const char *station)
{
	char key[2 * DASH_SITE_MAX + 32];
	size_t i;

	snprintf(key, sizeof(key), "%zu:%s/%s", strlen(site), site, station);
	if (!c->idx && !(c->idx = strmap_new()))
		return NULL;
	i = (size_t)(uintptr_t)strmap_get(c->idx, key);
	if (i)
		return &c->v[i - 1];
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 64;
		struct site_count *nv = realloc(c->v, nc * sizeof(*nv));

		if (!nv)
			return NULL;
		c->v = nv;
		c->cap = nc;
	}
	if (strmap_put(c->idx, key, (void *)(uintptr_t)(c->n + 1), NULL) < 0)
		return NULL;
	memset(&c->v[c->n], 0, sizeof(*c->v));
	copy(c->v[c->n].site, sizeof(c->v[c->n].site), site);
	copy(c->v[c->n].station, sizeof(c->v[c->n].station), station);
	return &c->v[c->n++];
}

/* What a phone's alert says beyond the judge's facts, read only when one fires: the pass itself
 * reads the narrow index devices_alerts, never the wide rows. */
struct phone_facts {
	char serial[64], name[128];
	cJSON *causes;
};

static void phone_facts(struct alerts *a, const char *udid, struct phone_facts *f)
{
	memset(f, 0, sizeof(*f));
	sqlite3_bind_text(a->facts, 1, udid, -1, SQLITE_STATIC);
	if (sqlite3_step(a->facts) == SQLITE_ROW) {
		copy(f->serial, sizeof(f->serial), (const char *)sqlite3_column_text(a->facts, 0));
		copy(f->name, sizeof(f->name), (const char *)sqlite3_column_text(a->facts, 1));
		f->causes = cJSON_Parse((const char *)sqlite3_column_text(a->facts, 2));
	}
	sqlite3_reset(a->facts);
	if (!f->causes)
		f->causes = cJSON_CreateArray();
}

static int eval_phones(struct alerts *a, int64_t now, struct strmap *agents, struct counts *counts,
                       struct alerts_stats *st)
{
	sqlite3_stmt *q = NULL;
	int r = -EIO, s;

	if (sqlite3_prepare_v2(store_db(a->store),
	                       "SELECT udid, agent, site, station, attached, last_seen, has_facts,"
	                       " last_icloud, instr(cause_codes, ',network_unavailable,') > 0"
	                       " FROM devices INDEXED BY devices_alerts",
	                       -1, &q, NULL) != SQLITE_OK)
		goto out;
	while ((s = sqlite3_step(q)) == SQLITE_ROW) {
		const char *udid = (const char *)sqlite3_column_text(q, 0);
		const char *agent = (const char *)sqlite3_column_text(q, 1);
		const char *site = (const char *)sqlite3_column_text(q, 2);
		const char *station = (const char *)sqlite3_column_text(q, 3);
		const struct agent_info *ai = strmap_get(agents, agent);
		bool docked = sqlite3_column_int(q, 4) && ai && ai->online;
		int64_t last_seen = docked ? now : sqlite3_column_int64(q, 5);
		bool has_facts = sqlite3_column_int(q, 6) != 0;
		bool has_icloud = sqlite3_column_type(q, 7) != SQLITE_NULL;
		int64_t last_icloud = sqlite3_column_int64(q, 7);
		bool network = sqlite3_column_int(q, 8) != 0;
		int64_t miss = dash_config_site_duration(&a->cfg->alert_device_missing_site, site,
		                                         a->cfg->alert_device_missing_s);
		int64_t stale_limit = dash_config_site_duration(&a->cfg->alert_backup_stale_site,
		                                                site, a->cfg->alert_backup_stale_s);
		struct phone_facts pf;
		char sum[300];
		struct ent *e;
		cJSON *d;

		st->phones++;
		if (!docked && now - last_seen > miss) {
			e = hold(a, ALERTS_DEVICE_MISSING, udid, site, station, agent, now);
			if (!e) {
				r = -ENOMEM;
				goto out;
			}
			if (due(a, e, now)) {
				phone_facts(a, udid, &pf);
				cJSON_Delete(pf.causes);
				snprintf(sum, sizeof(sum),
				         "phone %s (%s) not docked since %" PRId64
				         " s ago, last at %s/%s",
				         pf.serial, udid, now - last_seen, site, station);
				d = cJSON_CreateObject();
				cJSON_AddStringToObject(d, "serial", pf.serial);
				cJSON_AddStringToObject(d, "name", pf.name);
				add_time(d, "last_seen", last_seen);
				cJSON_AddStringToObject(d, "agent", agent);
				cJSON_AddNumberToObject(d, "threshold_s", (double)miss);
				r = fire(a, ALERTS_DEVICE_MISSING, e, udid, sum, d, st);
				if (r < 0)
					goto out;
			}
			continue; /* a missing phone is that alert, not also a stale one */
		}
		if (!has_facts && !has_icloud)
			continue; /* unknown: nothing to judge its backups by */
		if (has_icloud && now - last_icloud <= stale_limit)
			continue;
		{
			struct site_count *c = count_for(counts, site, station);

			if (!c) {
				r = -ENOMEM;
				goto out;
			}
			c->stale++;
			c->network += network;
		}
		e = hold(a, ALERTS_BACKUP_STALE, udid, site, station, agent, now);
		if (!e) {
			r = -ENOMEM;
			goto out;
		}
		if (!due(a, e, now))
			continue;
		phone_facts(a, udid, &pf);
		if (has_icloud)
			snprintf(sum, sizeof(sum),
			         "phone %s (%s) at %s/%s: no iCloud backup for %" PRId64 " h",
			         pf.serial, udid, site, station, (now - last_icloud) / 3600);
		else
			snprintf(sum, sizeof(sum),
			         "phone %s (%s) at %s/%s: never backed up to iCloud", pf.serial,
			         udid, site, station);
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "serial", pf.serial);
		cJSON_AddStringToObject(d, "name", pf.name);
		if (has_icloud)
			add_time(d, "last_icloud", last_icloud);
		else
			cJSON_AddNullToObject(d, "last_icloud");
		cJSON_AddNumberToObject(d, "threshold_s", (double)stale_limit);
		cJSON_AddItemToObject(d, "causes", pf.causes);
		r = fire(a, ALERTS_BACKUP_STALE, e, udid, sum, d, st);
		if (r < 0)
			goto out;
	}
	if (s == SQLITE_DONE)
		r = 0;
out:
	if (r == -EIO)
		log_error("alerts: devices: %s", sqlite3_errmsg(store_db(a->store)));
	sqlite3_finalize(q);
	return r;
}

static bool network_holds(const struct alerts *a, unsigned stale, unsigned network)
{
	return network >= a->cfg->alert_site_network_min &&
	       (uint64_t)network * 100 >= (uint64_t)a->cfg->alert_site_network_pct * stale;
}

static int site_network_fire(struct alerts *a, const char *subject, const char *site,
                             const char *station, unsigned stale, unsigned network, int64_t now,
                             struct alerts_stats *st)
{
	struct ent *e = hold(a, ALERTS_SITE_NETWORK, subject, site, station, "", now);
	char sum[300];
	cJSON *d;

	if (!e)
		return -ENOMEM;
	if (!due(a, e, now))
		return 0;
	snprintf(sum, sizeof(sum),
	         "%u of %u stale phones at %s cannot reach Apple's servers (network_unavailable): "
	         "check the Wi-Fi / router there",
	         network, stale, subject);
	d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "stale", stale);
	cJSON_AddNumberToObject(d, "network_unavailable", network);
	cJSON_AddNumberToObject(d, "pct", stale ? 100.0 * network / stale : 0);
	cJSON_AddStringToObject(
	        d, "remediation",
	        "fix the site's Wi-Fi / router (backup needs Wi-Fi, never cellular); "
	        "avoid captive networks");
	return fire(a, ALERTS_SITE_NETWORK, e, subject, sum, d, st);
}

/* Per site first; a station alone only when its site as a whole does not qualify. */
static int eval_sites(struct alerts *a, const struct counts *cs, int64_t now,
                      struct alerts_stats *st)
{
	const struct site_count *c = cs->v;
	size_t n = cs->n;
	struct counts sc = { 0 };
	struct site_count *sites;
	size_t ns;
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		struct site_count *s;

		if (c[i].site[0] == '\0')
			continue;
		s = count_for(&sc, c[i].site, "");
		if (!s) {
			r = -ENOMEM;
			goto out;
		}
		s->stale += c[i].stale;
		s->network += c[i].network;
	}
	sites = sc.v;
	ns = sc.n;
	for (size_t i = 0; i < ns && r == 0; i++)
		if (network_holds(a, sites[i].stale, sites[i].network))
			r = site_network_fire(a, sites[i].site, sites[i].site, "", sites[i].stale,
			                      sites[i].network, now, st);
	for (size_t i = 0; i < n && r == 0; i++) {
		char subject[ALERTS_SUBJECT_MAX];
		bool site_fires = false;

		if (c[i].site[0] == '\0' || !network_holds(a, c[i].stale, c[i].network))
			continue;
		for (size_t j = 0; j < ns; j++)
			if (strcmp(sites[j].site, c[i].site) == 0)
				site_fires = network_holds(a, sites[j].stale, sites[j].network);
		if (site_fires)
			continue;
		snprintf(subject, sizeof(subject), "%s/%s", c[i].site, c[i].station);
		r = site_network_fire(a, subject, c[i].site, c[i].station, c[i].stale, c[i].network,
		                      now, st);
	}
out:
	counts_free(&sc);
	return r;
}

static int load_silences(struct alerts *a, int64_t now)
{
	sqlite3_stmt *q = NULL;
	int r = -EIO, s;

	a->n_sil = 0;
	if (sqlite3_prepare_v2(store_db(a->store),
	                       "SELECT id, rule, scope, site, station, value FROM silences"
	                       " WHERE starts_at <= ?1 AND ends_at > ?1 ORDER BY id",
	                       -1, &q, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(q, 1, now);
	while ((s = sqlite3_step(q)) == SQLITE_ROW) {
		struct silence *x;

		if (a->n_sil % 16 == 0) {
			struct silence *nv = realloc(a->sil, (a->n_sil + 16) * sizeof(*nv));

			if (!nv) {
				r = -ENOMEM;
				goto out;
			}
			a->sil = nv;
		}
		x = &a->sil[a->n_sil++];
		x->id = sqlite3_column_int64(q, 0);
		copy(x->rule, sizeof(x->rule), (const char *)sqlite3_column_text(q, 1));
		copy(x->scope, sizeof(x->scope), (const char *)sqlite3_column_text(q, 2));
		copy(x->site, sizeof(x->site), (const char *)sqlite3_column_text(q, 3));
		copy(x->station, sizeof(x->station), (const char *)sqlite3_column_text(q, 4));
		copy(x->value, sizeof(x->value), (const char *)sqlite3_column_text(q, 5));
	}
	if (s == SQLITE_DONE)
		r = 0;
out:
	if (r == -EIO)
		log_error("alerts: silences: %s", sqlite3_errmsg(store_db(a->store)));
	sqlite3_finalize(q);
	return r;
}

static int64_t silenced_by(const struct alerts *a, enum alerts_rule rule, const char *subject,
                           const struct ent *e)
{
	for (size_t i = 0; i < a->n_sil; i++) {
		const struct silence *x = &a->sil[i];

		if (strcmp(x->rule, "*") != 0 && strcmp(x->rule, rule_names[rule]) != 0)
			continue;
		if (strcmp(x->scope, "udid") == 0 &&
		    strcmp(subject_kind(rule, subject), "udid") == 0 &&
		    strcmp(x->value, subject) == 0)
			return x->id;
		if (strcmp(x->scope, "agent") == 0 && e->agent[0] &&
		    strcmp(x->value, e->agent) == 0)
			return x->id;
		if (strcmp(x->scope, "site") == 0 && strcmp(x->site, e->site) == 0)
			return x->id;
		if (strcmp(x->scope, "station") == 0 && strcmp(x->site, e->site) == 0 &&
		    strcmp(x->station, e->station) == 0)
			return x->id;
	}
	return 0;
}

static int64_t firing_id(const struct alerts *a, enum alerts_rule rule, const char *subject)
{
	const struct ent *e = strmap_get(a->ents[rule], subject);

	return e ? e->id : 0;
}

static int64_t inhibitor(const struct alerts *a, enum alerts_rule rule, const struct ent *e)
{
	char subject[ALERTS_SUBJECT_MAX];
	int64_t id = 0;

	if (rule == ALERTS_BACKUP_STALE && e->site[0] &&
	    strmap_size(a->ents[ALERTS_SITE_NETWORK]) > 0) {
		id = firing_id(a, ALERTS_SITE_NETWORK, e->site);
		if (!id) {
			snprintf(subject, sizeof(subject), "%s/%s", e->site, e->station);
			id = firing_id(a, ALERTS_SITE_NETWORK, subject);
		}
	} else if (rule == ALERTS_DEVICE_MISSING && e->agent[0]) {
		id = firing_id(a, ALERTS_AGENT_OFFLINE, e->agent);
	}
	return id;
}

static int notify(struct alerts *a, const char *id_s, enum alerts_rule rule, const char *state,
                  const char *subject, const char *site, const char *station, const char *summary,
                  const char *detail, int64_t fired_at, int64_t resolved_at)
{
	struct notify_alert n = {
		.alert_id = id_s,
		.rule = rule_names[rule],
		.state = state,
		.subject_kind = subject_kind(rule, subject),
		.subject = subject,
		.site = site,
		.station = station,
		.summary = summary,
		.detail_json = detail,
		.fired_at = fired_at,
		.resolved_at = resolved_at,
	};
	int r = notify_enqueue(a->store, &n);

	if (r < 0)
		log_error_errno(r, "alerts: cannot hand alert %s to delivery", id_s);
	else
		log_debug("alerts: notify %s %s %s: %s", state, rule_names[rule], subject, summary);
	return r;
}

/* The firing notification of e: its summary and detail from the row, or as it fired this pass. */
static int notify_firing(struct alerts *a, enum alerts_rule rule, const char *subject,
                         const struct ent *e, int64_t now)
{
	char id_s[32];
	int r = -EIO;

	snprintf(id_s, sizeof(id_s), "%" PRId64, e->id);
	if (e->fresh) {
		const struct fresh *f = &a->fresh[e->fresh - 1];

		return notify(a, id_s, rule, "firing", subject, e->site, e->station, f->summary,
		              f->detail, now, 0);
	}
	sqlite3_bind_int64(a->get, 1, e->id);
	if (sqlite3_step(a->get) == SQLITE_ROW)
		r = notify(a, id_s, rule, "firing", subject, e->site, e->station,
		           (const char *)sqlite3_column_text(a->get, 0),
		           (const char *)sqlite3_column_text(a->get, 1),
		           sqlite3_column_int64(a->get, 2), 0);
	sqlite3_reset(a->get);
	return r;
}

/* Resolved alerts and ended silences older than history_days go, as history rows do (at most
 * hourly). */
static int prune(struct alerts *a, int64_t now)
{
	int64_t before = now - (int64_t)a->cfg->history_days * 86400;
	int r = 0;

	if (now - a->pruned_at < 3600)
		return 0;
	a->pruned_at = now;
	sqlite3_bind_int64(a->prune_alerts, 1, before);
	sqlite3_bind_int64(a->prune_silences, 1, before);
	if (sqlite3_step(a->prune_alerts) != SQLITE_DONE ||
	    sqlite3_step(a->prune_silences) != SQLITE_DONE)
		r = log_error_errno(-EIO, "alerts: retention: %s",
		                    sqlite3_errmsg(store_db(a->store)));
	sqlite3_reset(a->prune_alerts);
	sqlite3_reset(a->prune_silences);
	return r;
}

static int resolve(struct alerts *a, enum alerts_rule rule, const char *subject, struct ent *e,
                   int64_t now, struct alerts_stats *st)
{
	int r = -EIO;

	sqlite3_bind_int64(a->resolve, 1, e->id);
	sqlite3_bind_int64(a->resolve, 2, now);
	if (sqlite3_step(a->resolve) == SQLITE_ROW) {
		r = 0;
		st->resolved++;
		if (e->notified) {
			char id_s[32];

			snprintf(id_s, sizeof(id_s), "%" PRId64, e->id);
			/* a refusal is logged by notify(); the alert resolves all the same */
			if (notify(a, id_s, rule, "resolved", subject, e->site, e->station,
			           (const char *)sqlite3_column_text(a->resolve, 6),
			           (const char *)sqlite3_column_text(a->resolve, 7),
			           sqlite3_column_int64(a->resolve, 5), now) == 0)
				st->notified++;
		}
	} else {
		log_error("alerts: resolving %" PRId64 ": %s", e->id,
		          sqlite3_errmsg(store_db(a->store)));
	}
	sqlite3_reset(a->resolve);
	if (r == 0)
		publish(a, e->id);
	return r;
}

struct settle {
	struct alerts *a;
	enum alerts_rule rule;
	int64_t now;
	struct alerts_stats *st;
	char **drop;
	size_t n_drop, cap_drop;
	int r;
};

static void settle_one(const char *subject, void *value, void *ctx)
{
	struct settle *x = ctx;
	struct alerts *a = x->a;
	struct ent *e = value;
	int64_t sil, inh;
	bool notified;

	if (x->r < 0)
		return;
	if (e->last_true == 0)
		e->last_true = x->now; /* loaded at start */
	if (e->gen != a->gen) {
		/* the condition does not hold now */
		if (e->id && x->now - e->last_true < a->cfg->alert_clear_for_s) {
			x->st->firing++; /* still in its episode: one late message changes nothing
			                  */
			return;
		}
		if (e->id)
			x->r = resolve(a, x->rule, subject, e, x->now, x->st);
		if (x->n_drop == x->cap_drop) {
			size_t nc = x->cap_drop ? x->cap_drop * 2 : 256;
			char **nv = realloc(x->drop, nc * sizeof(*nv));

			if (!nv) {
				x->r = -ENOMEM;
				return;
			}
			x->drop = nv;
			x->cap_drop = nc;
		}
		x->drop[x->n_drop] = strdup(subject);
		if (!x->drop[x->n_drop])
			x->r = -ENOMEM;
		else
			x->n_drop++;
		return;
	}
	if (!e->id)
		return; /* pending */
	x->st->firing++;
	sil = silenced_by(a, x->rule, subject, e);
	inh = inhibitor(a, x->rule, e);
	notified = e->notified;
	/* delivery refusing (its queue full, ...) must not stop the rules: the alert stays
	 * unnotified and is offered again at the next pass */
	if (!notified && !sil && !inh && notify_firing(a, x->rule, subject, e, x->now) == 0) {
		notified = true;
		x->st->notified++;
	}
	if (sil == e->silence_id && inh == e->inhibited_by && notified == e->notified)
		return;
	if (e->fresh) { /* its row, not yet written, takes these */
		e->silence_id = sil;
		e->inhibited_by = inh;
		e->notified = notified;
		publish(a, e->id);
		return;
	}
	sqlite3_bind_int64(a->upd_flags, 1, e->id);
	sqlite3_bind_int64(a->upd_flags, 2, sil);
	sqlite3_bind_int64(a->upd_flags, 3, inh);
	sqlite3_bind_int(a->upd_flags, 4, notified);
	if (sqlite3_step(a->upd_flags) != SQLITE_DONE) {
		log_error("alerts: updating %" PRId64 ": %s", e->id,
		          sqlite3_errmsg(store_db(a->store)));
		x->r = -EIO;
	} else {
		e->silence_id = sil;
		e->inhibited_by = inh;
		e->notified = notified;
		publish(a, e->id);
	}
	sqlite3_reset(a->upd_flags);
}

static int settle(struct alerts *a, int64_t now, struct alerts_stats *st)
{
	/* inhibitors first: their firing ids must be known before the alerts they explain settle */
	static const enum alerts_rule order[] = { ALERTS_AGENT_OFFLINE, ALERTS_SITE_NETWORK,
		                                  ALERTS_DEVICE_MISSING, ALERTS_BACKUP_STALE };
	struct settle x = { .a = a, .now = now, .st = st };

	for (size_t i = 0; i < ARRAY_SIZE(order) && x.r == 0; i++) {
		x.rule = order[i];
		x.n_drop = 0;
		strmap_foreach(a->ents[order[i]], settle_one, &x);
		for (size_t j = 0; j < x.n_drop; j++) {
			free(strmap_remove(a->ents[order[i]], x.drop[j]));
			free(x.drop[j]);
		}
	}
	free(x.drop);
	return x.r;
}

/* The rowid SQLite would give the next row (max + 1): the alerts fired this pass take theirs in
 * the order they fire, as when each was inserted at once. */
static int next_id(struct alerts *a)
{
	int r = -EIO;

	if (sqlite3_step(a->max_id) == SQLITE_ROW) {
		a->next_id = sqlite3_column_int64(a->max_id, 0) + 1;
		r = 0;
	} else {
		log_error("alerts: %s", sqlite3_errmsg(store_db(a->store)));
	}
	sqlite3_reset(a->max_id);
	return r;
}

static void free_agent(void *p)
{
	free(p);
}

int alerts_evaluate(struct alerts *a, int64_t now, struct alerts_stats *ret)
{
	struct alerts_stats st = { 0 };
	struct counts counts = { 0 };
	struct strmap *agents = strmap_new();
	struct timespec t0, t1;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (!agents)
		return -ENOMEM;
	a->gen++;
	r = store_begin(a->store);
	if (r < 0)
		goto out;
	notify_hold(); /* thousands of alerts may fire in a pass: the queue is bounded once */
	r = next_id(a);
	if (r == 0)
		r = eval_agents(a, now, agents, &st);
	if (r == 0)
		r = eval_phones(a, now, agents, &counts, &st);
	if (r == 0)
		r = eval_sites(a, &counts, now, &st);
	if (r == 0)
		r = load_silences(a, now);
	if (r == 0)
		r = settle(a, now, &st);
	if (r == 0)
		r = fresh_write(a, now);
	if (r == 0)
		r = prune(a, now);
	if (r == 0) {
		(void)notify_release(a->store); /* as each enqueue did: a failure is logged */
		r = store_commit(a->store);
	}
	if (r < 0) {
		notify_release(NULL);
		store_rollback(a->store);
		fresh_clear(a);
		/* the rows written are gone: start again from what the store holds */
		for (int i = 0; i < _ALERTS_RULE_MAX; i++)
			strmap_clear(a->ents[i], free);
		(void)load_firing(a);
	}
out:
	strmap_free(agents, free_agent);
	counts_free(&counts);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	st.elapsed_us = (t1.tv_sec - t0.tv_sec) * 1000000 + (t1.tv_nsec - t0.tv_nsec) / 1000;
	if (st.fired || st.resolved)
		log_info("alerts: %zu fired, %zu resolved, %zu firing, %zu notified (%zu phones, "
		         "%zu agents, %" PRId64 " ms)",
		         st.fired, st.resolved, st.firing, st.notified, st.phones, st.agents,
		         st.elapsed_us / 1000);
	if (ret)
		*ret = st;
	return r;
}
