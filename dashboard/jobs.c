/* SPDX-License-Identifier: MIT */
/*
 * jobs: the bulk-job engine (jobs.h). One pass ("tick") on the loop thread, in one transaction
 * on the writer connection (ingest's open batch committed first):
 *
 *   1. executions in flight follow their command's status (commands.status, which ingest keeps
 *      from the results): accepted, in_progress, waiting_for_user, succeeded, failed, rejected;
 *      a failure whose cause (or rejection reason) the job retries goes back to queued for a
 *      new attempt with a new cmd_id, until retry.max;
 *   2. executions in flight longer than timeout_s become timed_out (or are retried);
 *   3. per active job: a scheduled job resolves its target and starts; a continuous one
 *      resolves its filter again (new phones join) until the deadline; past the deadline what is
 *      still queued is canceled; the abort threshold is checked; queued executions whose phone
 *      is docked now (at whichever agent) are sent, within the window, the rate (a token bucket
 *      of per_minute spread evenly, and never more than per_minute in any 60 s, counted from the
 *      stored transitions) and per_agent (in flight per agent); a job with nothing left is
 *      completed.
 *
 * A command is stored (commands row, history row, the execution's cmd_id and its "sent"
 * transition) and committed before it is handed to cmdsend. The engine remembers which cmd_ids
 * it handed over in this run; an execution in flight whose cmd_id it has not handed over (the
 * dashboard restarted, or the broker was down) is handed over again with the same cmd_id, and
 * the agent's replay table answers it with the command's last status instead of running it.
 */
#include "jobs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "cmdsend.h"
#include "command.h"
#include "config.h"
#include "hub.h"
#include "ingest.h"
#include "log.h"
#include "loop.h"
#include "query.h"
#include "store.h"
#include "strmap.h"

#define JOBS_SEND_PER_TICK 200 /* cmdsend's mailbox holds 256: the rest goes next tick */
#define JOBS_POKE_MS       20  /* a pass soon after results or a full tick */
/* A command still without any answer this long after it was handed over is handed over again
 * (same cmd_id: the agent's replay table answers it if it did arrive) — in case it was lost
 * between here and the agent. */
#define JOBS_RESEND_MS 30000
#define INFLIGHT_SQL   "('sent', 'accepted', 'in_progress', 'waiting_for_user')"

struct bucket {
	double tokens;
	int64_t last_ms;
};

struct jobs {
	struct loop *loop;
	struct store *store;
	struct ingest *ingest;
	struct hub *hub;
	struct cmdsend *cmdsend;
	const struct dash_config *cfg;
	uint64_t timer, poke_timer;
	bool in_tick;
	bool devices_changed;
	struct strmap *handed;  /* cmd_id -> when (wall ms) it was handed to cmdsend in this run */
	struct strmap *buckets; /* job id -> struct bucket */
	struct strmap *changed; /* job ids to announce after the commit */
	struct command *out;    /* commands to hand over after the commit */
	size_t n_out;
};

/* One active job, as the pass needs it. */
struct job {
	int64_t id;
	char state[16];
	char command[COMMAND_NAME_MAX];
	char *params_json;
	char *target_json;
	bool continuous;
	int64_t per_minute, per_agent;
	bool has_window;
	int64_t win_start, win_end, win_offset;
	double abort_pct;
	int64_t abort_min, timeout_s;
	int64_t deadline_ms, resolved_ms;
	char created_by[128];
};

/* ---- store helpers ---- */

static sqlite3_stmt *prep(struct jobs *j, const char *sql)
{
	sqlite3_stmt *st = NULL;

	if (sqlite3_prepare_v2(store_db(j->store), sql, -1, &st, NULL) != SQLITE_OK) {
		log_error("jobs: store: %s", sqlite3_errmsg(store_db(j->store)));
		return NULL;
	}
	return st;
}

static int done(struct jobs *j, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE) {
		log_error("jobs: store: %s", sqlite3_errmsg(store_db(j->store)));
		return -EIO;
	}
	return 0;
}

static const char *col(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

static void mark_changed(struct jobs *j, int64_t id)
{
	char key[24];

	snprintf(key, sizeof(key), "%" PRId64, id);
	(void)strmap_put(j->changed, key, (void *)1, NULL);
}

/* A transition of execution udid ('' = the job) of job id. */
static int transition(struct jobs *j, int64_t id, const char *udid, int64_t now, const char *state,
                      const char *cmd_id, const char *agent, const char *detail)
{
	sqlite3_stmt *st = prep(j, "INSERT INTO job_transitions(job_id, udid, ts_ms, state, cmd_id,"
	                           " agent, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
	int r;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, udid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_text(st, 4, state, -1, SQLITE_STATIC);
	if (cmd_id && cmd_id[0])
		sqlite3_bind_text(st, 5, cmd_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, agent ? agent : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, detail ? detail : "", -1, SQLITE_STATIC);
	r = done(j, st);
	sqlite3_finalize(st);
	mark_changed(j, id);
	return r;
}

/* Moves execution (job id, udid) to state, with the transition. final sets finished_ms; requeue
 * clears the cmd_id for the next attempt. */
static int exec_set(struct jobs *j, int64_t id, const char *udid, int64_t now, const char *state,
                    const char *cause, const char *detail, const char *cmd_id, const char *agent)
{
	enum jobs_exec_state es = JOBS_EXEC_QUEUED;
	sqlite3_stmt *st;
	int r;

	(void)jobs_exec_state_from_str(state, &es);
	st = prep(j, "UPDATE job_executions SET state = ?3, cause = ?4, detail = ?5,"
	             " updated_ms = ?6, finished_ms = CASE WHEN ?7 THEN ?6 ELSE NULL END,"
	             " cmd_id = CASE WHEN ?3 = 'queued' THEN NULL ELSE cmd_id END"
	             " WHERE job_id = ?1 AND udid = ?2");
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_text(st, 2, udid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, cause ? cause : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, detail ? detail : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, now);
	sqlite3_bind_int(st, 7, jobs_exec_state_final(es));
	r = done(j, st);
	sqlite3_finalize(st);
	if (r == 0)
		r = transition(j, id, udid, now, state, cmd_id, agent, detail);
	return r;
}

static bool cause_listed(const char *list, const char *cause)
{
	char pat[COMMAND_STR_MAX + 2];

	if (!cause || !cause[0] || !list[0])
		return false;
	snprintf(pat, sizeof(pat), ",%s,", cause);
	return strstr(list, pat) != NULL;
}

/* A failure of an execution: retried (back to queued) when the job is active, takes this cause
 * and has attempts left; else final in state. */
static int exec_fail(struct jobs *j, int64_t id, const char *udid, int64_t now, const char *state,
                     const char *cause, const char *detail, const char *cmd_id, const char *agent,
                     int64_t attempt, const char *retry_causes, int64_t retry_max, bool job_active)
{
	char d[256];
	int r = exec_set(j, id, udid, now, state, cause, detail, cmd_id, agent);

	if (r < 0 || !job_active || attempt > retry_max || !cause_listed(retry_causes, cause))
		return r;
	snprintf(d, sizeof(d), "retry %" PRId64 " of %" PRId64 " after %s", attempt, retry_max,
	         cause);
	return exec_set(j, id, udid, now, "queued", cause, d, NULL, NULL);
}

/* ---- 1. results ---- */

static int advance(struct jobs *j, int64_t now)
{
	sqlite3_stmt *st =
	        prep(j, "SELECT e.job_id, e.udid, e.state, e.cmd_id, e.agent, e.attempt, c.status,"
	                " (SELECT json FROM command_results r WHERE r.cmd_id = c.cmd_id"
	                "  ORDER BY r.id DESC LIMIT 1), jb.retry_causes, jb.retry_max,"
	                " jb.state IN ('scheduled', 'in_progress')"
	                " FROM job_executions e JOIN commands c ON c.cmd_id = e.cmd_id"
	                " JOIN jobs jb ON jb.id = e.job_id"
	                " WHERE e.state IN " INFLIGHT_SQL " AND c.status != e.state"
	                " AND c.status != 'sent'");
	int r = 0;

	if (!st)
		return -EIO;
	while (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		const char *udid = col(st, 1), *cmd_id = col(st, 3), *agent = col(st, 4);
		const char *status = col(st, 6);
		cJSON *res = cJSON_Parse(col(st, 7));
		const cJSON *cause = cJSON_GetObjectItemCaseSensitive(res, "cause");
		const cJSON *reason = cJSON_GetObjectItemCaseSensitive(res, "reason");
		const cJSON *detail = cJSON_GetObjectItemCaseSensitive(res, "detail");
		const char *dtext = cJSON_IsString(detail) ? detail->valuestring : "";
		enum jobs_exec_state es;

		if (jobs_exec_state_from_str(status, &es) < 0 || es == JOBS_EXEC_QUEUED ||
		    es == JOBS_EXEC_TIMED_OUT || es == JOBS_EXEC_CANCELED) {
			cJSON_Delete(res);
			continue; /* not an agent's status (e.g. send_failed) */
		}
		if (jobs_exec_state_final(es))
			(void)strmap_remove(j->handed, cmd_id); /* nothing left to resend */
		if (es == JOBS_EXEC_FAILED || es == JOBS_EXEC_REJECTED) {
			const cJSON *why = es == JOBS_EXEC_FAILED ? cause : reason;

			r = exec_fail(j, id, udid, now, status,
			              cJSON_IsString(why) ? why->valuestring : "", dtext, cmd_id,
			              agent, sqlite3_column_int64(st, 5), col(st, 8),
			              sqlite3_column_int64(st, 9), sqlite3_column_int(st, 10));
		} else {
			r = exec_set(j, id, udid, now, status, "", dtext, cmd_id, agent);
		}
		cJSON_Delete(res);
	}
	sqlite3_finalize(st);
	return r;
}

/* ---- 2. timeouts ---- */

static int time_out(struct jobs *j, int64_t now)
{
	sqlite3_stmt *st = prep(j, "SELECT e.job_id, e.udid, e.cmd_id, e.agent, e.attempt,"
	                           " jb.retry_causes, jb.retry_max, jb.timeout_s,"
	                           " jb.state IN ('scheduled', 'in_progress')"
	                           " FROM job_executions e JOIN jobs jb ON jb.id = e.job_id"
	                           " WHERE e.state IN " INFLIGHT_SQL
	                           " AND e.sent_ms + jb.timeout_s * 1000 < ?1");
	int r = 0;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, now);
	while (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
		char d[96];

		snprintf(d, sizeof(d), "no final result within %lld s",
		         (long long)sqlite3_column_int64(st, 7));
		(void)strmap_remove(j->handed, col(st, 2));
		r = exec_fail(j, sqlite3_column_int64(st, 0), col(st, 1), now, "timed_out",
		              "timed_out", d, col(st, 2), col(st, 3), sqlite3_column_int64(st, 4),
		              col(st, 5), sqlite3_column_int64(st, 6), sqlite3_column_int(st, 8));
	}
	sqlite3_finalize(st);
	return r;
}

/* ---- 3. per job ---- */

struct add_ctx {
	struct jobs *j;
	int64_t id, now, added, docked;
	bool joining; /* continuous: a phone that matched later */
};

static int add_exec(void *ctx, const char *udid, const char *agent, bool docked)
{
	struct add_ctx *a = ctx;
	sqlite3_stmt *st = prep(a->j, "INSERT OR IGNORE INTO job_executions(job_id, udid, state,"
	                              " queued_ms, updated_ms) VALUES (?1, ?2, 'queued', ?3, ?3)");
	int r;

	(void)agent;
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, a->id);
	sqlite3_bind_text(st, 2, udid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, a->now);
	r = done(a->j, st);
	sqlite3_finalize(st);
	if (r < 0 || sqlite3_changes(store_db(a->j->store)) == 0)
		return r;
	a->added++;
	a->docked += docked;
	return transition(a->j, a->id, udid, a->now, "queued", NULL, "",
	                  a->joining ? "joined: matches the filter now"
	                  : docked   ? "docked now"
	                             : "not docked now: waits until it docks");
}

static int job_update(struct jobs *j, const struct job *jb, const char *state, int64_t now,
                      const char *detail)
{
	sqlite3_stmt *st =
	        prep(j, "UPDATE jobs SET state = ?2, updated_ms = ?3, detail = ?4,"
	                " started_ms = COALESCE(started_ms, CASE WHEN ?2 ="
	                " 'in_progress' THEN ?3 END), finished_ms = CASE WHEN ?2 IN"
	                " ('completed', 'aborted', 'canceled') THEN ?3 END WHERE id = ?1");
	int r;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, jb->id);
	sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now);
	sqlite3_bind_text(st, 4, detail, -1, SQLITE_STATIC);
	r = done(j, st);
	sqlite3_finalize(st);
	if (r == 0)
		r = transition(j, jb->id, "", now, state, NULL, NULL, detail);
	log_info("jobs: job %" PRId64 " %s: %s", jb->id, state, detail);
	return r;
}

static int cancel_queued(struct jobs *j, int64_t id, int64_t now, const char *detail);

static int job_start(struct jobs *j, struct job *jb, int64_t now)
{
	cJSON *target = cJSON_Parse(jb->target_json), *unresolved = cJSON_CreateArray();
	struct add_ctx a = { j, jb->id, now, 0, 0, false };
	char detail[256];
	int r;

	if (!target || !unresolved) {
		r = -ENOMEM;
		goto out;
	}
	r = jobs_target_resolve(j->store, target, now / 1000, add_exec, &a, unresolved);
	if (r == -E2BIG || r == -EINVAL) {
		/* the job cannot start (too many phones, a filter this version refuses): say so
		 * instead of failing every pass */
		snprintf(detail, sizeof(detail), "aborted: %s",
		         r == -E2BIG ? "the target has more than 100000 phones"
		                     : "the target is not valid");
		r = cancel_queued(j, jb->id, now, "the job could not start");
		if (r == 0)
			r = job_update(j, jb, "aborted", now, detail);
		snprintf(jb->state, sizeof(jb->state), "aborted");
		goto out;
	}
	if (r < 0)
		goto out;
	snprintf(detail, sizeof(detail),
	         "target resolved: %" PRId64 " phones, %" PRId64 " docked now, %d unknown", a.added,
	         a.docked, cJSON_GetArraySize(unresolved));
	r = job_update(j, jb, "in_progress", now, detail);
	snprintf(jb->state, sizeof(jb->state), "in_progress");
	jb->resolved_ms = now;
	if (r == 0) {
		sqlite3_stmt *st = prep(j, "UPDATE jobs SET resolved_ms = ?2 WHERE id = ?1");

		if (!st) {
			r = -EIO;
			goto out;
		}
		sqlite3_bind_int64(st, 1, jb->id);
		sqlite3_bind_int64(st, 2, now);
		r = done(j, st);
		sqlite3_finalize(st);
	}
out:
	cJSON_Delete(target);
	cJSON_Delete(unresolved);
	return r;
}

static int job_rejoin(struct jobs *j, struct job *jb, int64_t now)
{
	cJSON *target = cJSON_Parse(jb->target_json);
	struct add_ctx a = { j, jb->id, now, 0, 0, true };
	sqlite3_stmt *st;
	int r;

	if (!target)
		return -ENOMEM;
	r = jobs_target_resolve(j->store, target, now / 1000, add_exec, &a, NULL);
	cJSON_Delete(target);
	if (r < 0)
		return r;
	if (a.added)
		log_info("jobs: job %" PRId64 ": %" PRId64 " phones joined", jb->id, a.added);
	jb->resolved_ms = now;
	st = prep(j, "UPDATE jobs SET resolved_ms = ?2 WHERE id = ?1");
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, jb->id);
	sqlite3_bind_int64(st, 2, now);
	r = done(j, st);
	sqlite3_finalize(st);
	return r;
}

/* Executions of job id by state. */
static int counts(struct jobs *j, int64_t id, int64_t n[_JOBS_EXEC_MAX])
{
	sqlite3_stmt *st = prep(j, "SELECT state, COUNT(*) FROM job_executions WHERE job_id = ?1"
	                           " GROUP BY state");
	int rc;

	memset(n, 0, sizeof(int64_t) * _JOBS_EXEC_MAX);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		enum jobs_exec_state es;

		if (jobs_exec_state_from_str(col(st, 0), &es) == 0)
			n[es] = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -EIO;
}

/* Every queued execution of the job to canceled with detail. */
static int cancel_queued(struct jobs *j, int64_t id, int64_t now, const char *detail)
{
	sqlite3_stmt *st = prep(j, "INSERT INTO job_transitions(job_id, udid, ts_ms, state, detail)"
	                           " SELECT job_id, udid, ?2, 'canceled', ?3 FROM job_executions"
	                           " WHERE job_id = ?1 AND state = 'queued'");
	int r;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_text(st, 3, detail, -1, SQLITE_STATIC);
	r = done(j, st);
	sqlite3_finalize(st);
	if (r < 0)
		return r;
	st = prep(j, "UPDATE job_executions SET state = 'canceled', detail = ?3, finished_ms = ?2,"
	             " updated_ms = ?2 WHERE job_id = ?1 AND state = 'queued'");
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_text(st, 3, detail, -1, SQLITE_STATIC);
	r = done(j, st);
	sqlite3_finalize(st);
	mark_changed(j, id);
	return r;
}

static bool in_window(const struct job *jb, int64_t now)
{
	int64_t m;

	if (!jb->has_window)
		return true;
	m = ((now / 60000 + jb->win_offset) % 1440 + 1440) % 1440;
	if (jb->win_start < jb->win_end)
		return m >= jb->win_start && m < jb->win_end;
	return m >= jb->win_start || m < jb->win_end;
}

static int64_t scalar(struct jobs *j, const char *sql, int64_t a, int64_t b)
{
	sqlite3_stmt *st = prep(j, sql);
	int64_t v = -1;

	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* How many the rate allows now (INT64_MAX: unthrottled). */
static int64_t rate_allows(struct jobs *j, const struct job *jb, int64_t now)
{
	char key[24];
	struct bucket *b;
	double cap, rate;
	int64_t last_minute, n;

	if (jb->per_minute <= 0)
		return INT64_MAX;
	snprintf(key, sizeof(key), "%" PRId64, jb->id);
	cap = jb->per_minute / 60.0 < 1 ? 1 : jb->per_minute / 60.0;
	rate = jb->per_minute / 60000.0;
	b = strmap_get(j->buckets, key);
	if (!b) {
		int64_t last = scalar(j,
		                      "SELECT MAX(ts_ms) FROM job_transitions WHERE job_id = ?1"
		                      " AND state = 'sent' AND ?2 = ?2",
		                      jb->id, 0);

		b = calloc(1, sizeof(*b));
		if (!b || strmap_put(j->buckets, key, b, NULL) < 0) {
			free(b);
			return 0;
		}
		/* after a restart the bucket holds what accrued since the last send */
		b->last_ms = last > 0 ? last : now - (int64_t)(cap / rate);
		b->tokens = 0;
	}
	b->tokens += (double)(now - b->last_ms) * rate;
	if (b->tokens > cap)
		b->tokens = cap;
	b->last_ms = now;
	/* and never more than per_minute in any 60 s, whatever the bucket says */
	last_minute = scalar(j,
	                     "SELECT COUNT(*) FROM job_transitions WHERE job_id = ?1 AND"
	                     " state = 'sent' AND ts_ms > ?2",
	                     jb->id, now - 60000);
	if (last_minute < 0)
		return 0;
	n = (int64_t)b->tokens;
	if (n > jb->per_minute - last_minute)
		n = jb->per_minute - last_minute;
	return n < 0 ? 0 : n;
}

static void rate_took(struct jobs *j, const struct job *jb)
{
	char key[24];
	struct bucket *b;

	snprintf(key, sizeof(key), "%" PRId64, jb->id);
	b = strmap_get(j->buckets, key);
	if (b)
		b->tokens -= 1;
}

/* The commands row and the phone's history row of a job's command. */
static int store_command(struct jobs *j, const struct job *jb, const struct command *cmd)
{
	char sent_by[192], summary[256], *detail = NULL;
	cJSON *d = cJSON_CreateObject();
	sqlite3_stmt *st;
	int r = -EIO;

	snprintf(sent_by, sizeof(sent_by), "job %" PRId64 " (%s)", jb->id, jb->created_by);
	if (!d || !cJSON_AddStringToObject(d, "cmd_id", cmd->cmd_id) ||
	    !cJSON_AddStringToObject(d, "sent_by", sent_by) ||
	    !cJSON_AddNumberToObject(d, "job_id", (double)jb->id) ||
	    !cJSON_AddItemToObject(d, "params", cJSON_Parse(jb->params_json)) ||
	    !(detail = cJSON_PrintUnformatted(d))) {
		cJSON_Delete(d);
		return -ENOMEM;
	}
	cJSON_Delete(d);
	st = prep(j, "INSERT INTO commands(cmd_id, udid, agent, name, params_json, sent_by,"
	             " sent_at_ms, expires_at_ms, status, updated_ms)"
	             " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'sent', ?7)");
	if (!st)
		goto out;
	sqlite3_bind_text(st, 1, cmd->cmd_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, cmd->udid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, cmd->agent, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, cmd->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, jb->params_json, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, sent_by, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 7, cmd->issued_at_ms);
	sqlite3_bind_int64(st, 8, cmd->expires_at_ms);
	r = done(j, st);
	sqlite3_finalize(st);
	if (r < 0)
		goto out;
	snprintf(summary, sizeof(summary), "%s sent by %s", cmd->name, sent_by);
	st = prep(j, "INSERT INTO history(udid, agent, ts_ms, kind, name, summary, json)"
	             " VALUES (?1, ?2, ?3, 'command', ?4, ?5, ?6)");
	r = -EIO;
	if (!st)
		goto out;
	sqlite3_bind_text(st, 1, cmd->udid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, cmd->agent, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, cmd->issued_at_ms);
	sqlite3_bind_text(st, 4, cmd->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, summary, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, detail, -1, SQLITE_STATIC);
	r = done(j, st);
	sqlite3_finalize(st);
out:
	free(detail);
	return r;
}

static int out_push(struct jobs *j, const struct command *cmd)
{
	struct command *n;

	if (j->n_out % 64 == 0) {
		n = realloc(j->out, (j->n_out + 64) * sizeof(*n));
		if (!n)
			return -ENOMEM;
		j->out = n;
	}
	j->out[j->n_out++] = *cmd;
	return 0;
}

/* Agent -> executions of this job in flight there. */
static int inflight_by_agent(struct jobs *j, int64_t id, struct strmap *m)
{
	sqlite3_stmt *st = prep(j, "SELECT agent, COUNT(*) FROM job_executions WHERE job_id = ?1"
	                           " AND state IN " INFLIGHT_SQL " GROUP BY agent");
	int r = 0;

	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	while (r == 0 && sqlite3_step(st) == SQLITE_ROW)
		r = strmap_put(m, col(st, 0), (void *)(intptr_t)sqlite3_column_int64(st, 1), NULL);
	sqlite3_finalize(st);
	return r;
}

/* Sends what the rollout allows now. *more: stopped by the per-tick cap, not the rules. */
static int dispatch(struct jobs *j, struct job *jb, int64_t now, size_t *budget, bool *more)
{
	struct strmap *agents = strmap_new();
	struct command proto;
	sqlite3_stmt *st = NULL;
	cJSON *params = cJSON_Parse(jb->params_json);
	char err[COMMAND_ERR_MAX];
	int64_t allow = rate_allows(j, jb, now), ttl;
	int r = -ENOMEM;

	if (!agents || !params)
		goto out;
	memset(&proto, 0, sizeof(proto));
	if (command_name_from_str(jb->command, &proto.kind) < 0 ||
	    jobs_params_to_command(params, &proto, err, sizeof(err)) < 0) {
		r = job_update(j, jb, "aborted", now, "the stored command is not valid");
		goto out;
	}
	proto.known_name = true;
	snprintf(proto.name, sizeof(proto.name), "%s", jb->command);
	snprintf(proto.job_id, sizeof(proto.job_id), "%" PRId64, jb->id);
	ttl = j->cfg && j->cfg->command_ttl_s > 0 ? j->cfg->command_ttl_s : 600;
	if (ttl > CLIENT_TTL_MAX)
		ttl = CLIENT_TTL_MAX;
	r = inflight_by_agent(j, jb->id, agents);
	if (r < 0)
		goto out;
	r = -EIO;
	/* queued executions whose phone is docked now, wherever */
	st = prep(j, "SELECT e.udid, e.attempt FROM job_executions e JOIN devices d ON"
	             " d.udid = e.udid JOIN agents a ON a.agent = d.agent WHERE e.job_id = ?1 AND"
	             " e.state = 'queued' AND d.attached AND a.presence = 'online' ORDER BY e.id");
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, jb->id);
	r = 0;
	while (r == 0 && allow > 0 && sqlite3_step(st) == SQLITE_ROW) {
		struct command cmd = proto;
		const char *udid = col(st, 0);
		int64_t attempt = sqlite3_column_int64(st, 1) + 1;
		bool attached, online;
		unsigned allowed;
		intptr_t busy;
		char d[64];

		if (*budget == 0) {
			*more = true;
			break;
		}
		if (query_device_route(j->store, udid, cmd.agent, sizeof(cmd.agent), &attached,
		                       &online, &allowed) < 0 ||
		    !attached || !online)
			continue;
		busy = (intptr_t)strmap_get(agents, cmd.agent);
		if (jb->per_agent > 0 && busy >= jb->per_agent)
			continue;
		if (!(allowed & (1u << cmd.kind))) {
			r = exec_set(j, jb->id, udid, now, "rejected", "not_allowed",
			             "the phone's agent does not allow this command", NULL,
			             cmd.agent);
			continue;
		}
		snprintf(cmd.udid, sizeof(cmd.udid), "%s", udid);
		if (client_new_cmd_id(cmd.cmd_id) < 0) {
			r = -EIO;
			break;
		}
		cmd.issued_at_ms = now;
		cmd.expires_at_ms = now + ttl * 1000;
		r = store_command(j, jb, &cmd);
		if (r == 0) {
			sqlite3_stmt *u =
			        prep(j, "UPDATE job_executions SET state = 'sent',"
			                " attempt = ?3, cmd_id = ?4, agent = ?5, sent_ms = ?6,"
			                " updated_ms = ?6, cause = '', detail = ''"
			                " WHERE job_id = ?1 AND udid = ?2");

			r = -EIO;
			if (u) {
				sqlite3_bind_int64(u, 1, jb->id);
				sqlite3_bind_text(u, 2, udid, -1, SQLITE_STATIC);
				sqlite3_bind_int64(u, 3, attempt);
				sqlite3_bind_text(u, 4, cmd.cmd_id, -1, SQLITE_STATIC);
				sqlite3_bind_text(u, 5, cmd.agent, -1, SQLITE_STATIC);
				sqlite3_bind_int64(u, 6, now);
				r = done(j, u);
				sqlite3_finalize(u);
			}
		}
		snprintf(d, sizeof(d), "attempt %" PRId64, attempt);
		if (r == 0)
			r = transition(j, jb->id, udid, now, "sent", cmd.cmd_id, cmd.agent, d);
		if (r == 0)
			r = out_push(j, &cmd);
		if (r < 0)
			break;
		(void)strmap_put(agents, cmd.agent, (void *)(busy + 1), NULL);
		rate_took(j, jb);
		allow--;
		(*budget)--;
	}
out:
	sqlite3_finalize(st);
	cJSON_Delete(params);
	strmap_free(agents, NULL);
	return r;
}

static int job_step(struct jobs *j, struct job *jb, int64_t now, size_t *budget, bool *more)
{
	int64_t n[_JOBS_EXEC_MAX], finished, failures, live;
	char detail[256];
	int r = 0;

	if (!strcmp(jb->state, "scheduled")) {
		r = job_start(j, jb, now);
		if (r < 0 || strcmp(jb->state, "in_progress"))
			return r;
	} else if (jb->continuous && now < jb->deadline_ms &&
	           now - jb->resolved_ms >= (j->devices_changed ? 1000 : JOBS_RESOLVE_MS)) {
		r = job_rejoin(j, jb, now);
		if (r < 0)
			return r;
	}
	if (now >= jb->deadline_ms) {
		r = cancel_queued(j, jb->id, now,
		                  "the deadline passed before the phone was docked");
		if (r < 0)
			return r;
	}
	r = counts(j, jb->id, n);
	if (r < 0)
		return r;
	failures = n[JOBS_EXEC_FAILED] + n[JOBS_EXEC_TIMED_OUT] + n[JOBS_EXEC_REJECTED];
	finished = failures + n[JOBS_EXEC_SUCCEEDED];
	if (jb->abort_pct > 0 && finished > 0 && finished >= jb->abort_min &&
	    (double)failures * 100.0 >= jb->abort_pct * (double)finished) {
		snprintf(detail, sizeof(detail),
		         "aborted: %" PRId64 " of %" PRId64
		         " finished executions failed (%.1f %% >= "
		         "%.1f %%)",
		         failures, finished, failures * 100.0 / (double)finished, jb->abort_pct);
		r = cancel_queued(j, jb->id, now, "the job was aborted");
		if (r == 0)
			r = job_update(j, jb, "aborted", now, detail);
		return r;
	}
	if (n[JOBS_EXEC_QUEUED] && now < jb->deadline_ms && in_window(jb, now)) {
		r = dispatch(j, jb, now, budget, more);
		if (r < 0)
			return r;
		r = counts(j, jb->id, n);
		if (r < 0)
			return r;
	}
	live = n[JOBS_EXEC_QUEUED] + n[JOBS_EXEC_SENT] + n[JOBS_EXEC_ACCEPTED] +
	       n[JOBS_EXEC_IN_PROGRESS] + n[JOBS_EXEC_WAITING];
	if (live == 0 && (!jb->continuous || now >= jb->deadline_ms)) {
		snprintf(detail, sizeof(detail),
		         "completed: %" PRId64 " succeeded, %" PRId64 " failed, %" PRId64
		         " timed out, %" PRId64 " rejected, %" PRId64 " canceled",
		         n[JOBS_EXEC_SUCCEEDED], n[JOBS_EXEC_FAILED], n[JOBS_EXEC_TIMED_OUT],
		         n[JOBS_EXEC_REJECTED], n[JOBS_EXEC_CANCELED]);
		r = job_update(j, jb, "completed", now, detail);
	}
	return r;
}

/* ---- resending what this run has not handed over ---- */

static int resend_unhanded(struct jobs *j, int64_t now, size_t *budget, bool *more)
{
	sqlite3_stmt *st =
	        prep(j, "SELECT c.cmd_id, c.udid, c.agent, c.name, c.params_json,"
	                " c.sent_at_ms, c.expires_at_ms, e.job_id, c.status = 'sent'"
	                " FROM job_executions e"
	                " JOIN commands c ON c.cmd_id = e.cmd_id WHERE e.state IN " INFLIGHT_SQL
	                " ORDER BY e.sent_ms");
	int r = 0;

	if (!st)
		return -EIO;
	while (r == 0 && sqlite3_step(st) == SQLITE_ROW) {
		struct command cmd;
		cJSON *params;
		char err[COMMAND_ERR_MAX];

		intptr_t handed_at = (intptr_t)strmap_get(j->handed, col(st, 0));

		/* handed over in this run: again only when still unanswered long after */
		if (handed_at && (!sqlite3_column_int(st, 8) || now - handed_at < JOBS_RESEND_MS ||
		                  sqlite3_column_int64(st, 6) <= now))
			continue;
		if (*budget == 0) {
			*more = true;
			break;
		}
		memset(&cmd, 0, sizeof(cmd));
		snprintf(cmd.cmd_id, sizeof(cmd.cmd_id), "%s", col(st, 0));
		snprintf(cmd.udid, sizeof(cmd.udid), "%s", col(st, 1));
		snprintf(cmd.agent, sizeof(cmd.agent), "%s", col(st, 2));
		snprintf(cmd.name, sizeof(cmd.name), "%s", col(st, 3));
		snprintf(cmd.job_id, sizeof(cmd.job_id), "%lld",
		         (long long)sqlite3_column_int64(st, 7));
		cmd.issued_at_ms = sqlite3_column_int64(st, 5);
		cmd.expires_at_ms = sqlite3_column_int64(st, 6);
		params = cJSON_Parse(col(st, 4));
		if (command_name_from_str(cmd.name, &cmd.kind) < 0 ||
		    jobs_params_to_command(params, &cmd, err, sizeof(err)) < 0) {
			cJSON_Delete(params);
			continue;
		}
		cJSON_Delete(params);
		cmd.known_name = true;
		r = out_push(j, &cmd);
		(*budget)--;
	}
	sqlite3_finalize(st);
	return r;
}

/* ---- the pass ---- */

static int load_jobs(struct jobs *j, struct job **ret, size_t *n_ret)
{
	sqlite3_stmt *st = prep(j, "SELECT id, state, command, params_json, target_json,"
	                           " continuous, per_minute, per_agent, window_start, window_end,"
	                           " window_offset, abort_pct, abort_min, timeout_s, deadline_ms,"
	                           " COALESCE(resolved_ms, 0), created_by FROM jobs"
	                           " WHERE state IN ('scheduled', 'in_progress') ORDER BY id");
	struct job *v = NULL;
	size_t n = 0;
	int rc;

	*ret = NULL;
	*n_ret = 0;
	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct job *nv = realloc(v, (n + 1) * sizeof(*v)), *jb;

		if (!nv)
			break;
		v = nv;
		jb = &v[n++];
		memset(jb, 0, sizeof(*jb));
		jb->id = sqlite3_column_int64(st, 0);
		snprintf(jb->state, sizeof(jb->state), "%s", col(st, 1));
		snprintf(jb->command, sizeof(jb->command), "%s", col(st, 2));
		jb->params_json = strdup(col(st, 3));
		jb->target_json = strdup(col(st, 4));
		jb->continuous = sqlite3_column_int(st, 5);
		jb->per_minute = sqlite3_column_int64(st, 6);
		jb->per_agent = sqlite3_column_int64(st, 7);
		jb->has_window = sqlite3_column_type(st, 8) != SQLITE_NULL;
		jb->win_start = sqlite3_column_int64(st, 8);
		jb->win_end = sqlite3_column_int64(st, 9);
		jb->win_offset = sqlite3_column_int64(st, 10);
		jb->abort_pct = sqlite3_column_double(st, 11);
		jb->abort_min = sqlite3_column_int64(st, 12);
		jb->timeout_s = sqlite3_column_int64(st, 13);
		jb->deadline_ms = sqlite3_column_int64(st, 14);
		jb->resolved_ms = sqlite3_column_int64(st, 15);
		snprintf(jb->created_by, sizeof(jb->created_by), "%s", col(st, 16));
	}
	sqlite3_finalize(st);
	*ret = v;
	*n_ret = n;
	if (rc != SQLITE_DONE) {
		log_error("jobs: store: %s", sqlite3_errmsg(store_db(j->store)));
		return -EIO;
	}
	return 0;
}

static void announce(const char *key, void *value, void *ctx)
{
	(void)value;
	hub_publish(ctx, HUB_JOB, key);
}

static void schedule_poke(struct jobs *j, uint64_t ms);

int jobs_tick(struct jobs *j)
{
	int64_t now = wall_now_ms();
	struct job *v = NULL;
	size_t n = 0, budget = JOBS_SEND_PER_TICK;
	bool more = false;
	int r = 0;

	j->in_tick = true;
	/* nothing to do (the usual case): no transaction, ingest's batch left to fill */
	if (scalar(j,
	           "SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('scheduled', 'in_progress'))"
	           " OR EXISTS (SELECT 1 FROM job_executions WHERE state IN " INFLIGHT_SQL
	           ") OR ?1 != ?2",
	           0, 0) == 0)
		goto out;
	if (j->ingest)
		(void)ingest_flush(j->ingest);
	j->n_out = 0;
	r = store_begin(j->store);
	if (r < 0)
		goto out;
	r = advance(j, now);
	if (r == 0)
		r = time_out(j, now);
	if (r == 0 && j->cmdsend)
		r = resend_unhanded(j, now, &budget, &more);
	if (r == 0)
		r = load_jobs(j, &v, &n);
	for (size_t i = 0; r == 0 && i < n; i++)
		r = job_step(j, &v[i], now, &budget, &more);
	if (r == 0)
		r = store_commit(j->store);
	if (r < 0) {
		store_rollback(j->store);
		strmap_clear(j->changed, NULL);
		j->n_out = 0;
		log_error("jobs: a pass failed; it is tried again");
		goto out;
	}
	j->devices_changed = false;
	/* stored and committed: now hand them over */
	for (size_t i = 0; i < j->n_out; i++) {
		const struct command *c = &j->out[i];
		int s = cmdsend_submit(j->cmdsend, c, (int)((c->expires_at_ms - now) / 1000));

		if (s < 0) {
			/* stays in flight, not handed over: the next pass tries again */
			log_warn_errno(s, "jobs: command %s to %s not handed over yet", c->cmd_id,
			               c->udid);
			more = false;
			break;
		}
		(void)strmap_put(j->handed, c->cmd_id, (void *)(intptr_t)now, NULL);
		if (j->hub)
			hub_publish(j->hub, HUB_COMMAND, c->cmd_id);
	}
	if (j->hub)
		strmap_foreach(j->changed, announce, j->hub);
	strmap_clear(j->changed, NULL);
out:
	for (size_t i = 0; i < n; i++) {
		free(v[i].params_json);
		free(v[i].target_json);
	}
	free(v);
	j->in_tick = false;
	if (more)
		schedule_poke(j, JOBS_POKE_MS);
	return r;
}

/* ---- timers ---- */

static void poke_fired(struct loop *loop, uint64_t id, void *data)
{
	struct jobs *j = data;

	(void)loop;
	(void)id;
	j->poke_timer = 0;
	(void)jobs_tick(j);
}

static void schedule_poke(struct jobs *j, uint64_t ms)
{
	if (!j->loop || j->poke_timer)
		return;
	j->poke_timer = loop_add_timer(j->loop, ms, poke_fired, j);
}

void jobs_poke(struct jobs *j)
{
	if (j && !j->in_tick)
		schedule_poke(j, JOBS_POKE_MS);
}

static void tick_fired(struct loop *loop, uint64_t id, void *data)
{
	struct jobs *j = data;

	(void)id;
	(void)jobs_tick(j);
	j->timer = loop_add_timer(loop, JOBS_TICK_MS, tick_fired, j);
}

static void on_batch(void *data, size_t n_devices, size_t n_commands)
{
	struct jobs *j = data;

	if (n_devices)
		j->devices_changed = true;
	if (n_devices || n_commands)
		jobs_poke(j);
}

int jobs_new(struct loop *loop, struct store *store, struct ingest *ingest, struct hub *hub,
             struct cmdsend *cmdsend, const struct dash_config *cfg, struct jobs **ret)
{
	struct jobs *j = calloc(1, sizeof(*j));

	*ret = NULL;
	if (!j)
		return -ENOMEM;
	j->loop = loop;
	j->store = store;
	j->ingest = ingest;
	j->hub = hub;
	j->cmdsend = cmdsend;
	j->cfg = cfg;
	j->handed = strmap_new();
	j->buckets = strmap_new();
	j->changed = strmap_new();
	if (!j->handed || !j->buckets || !j->changed) {
		jobs_free(j);
		return -ENOMEM;
	}
	if (ingest)
		ingest_set_batch_hook(ingest, on_batch, j);
	if (loop)
		j->timer = loop_add_timer(loop, JOBS_TICK_MS, tick_fired, j);
	*ret = j;
	return 0;
}

struct jobs *jobs_free(struct jobs *j)
{
	if (!j)
		return NULL;
	if (j->ingest)
		ingest_set_batch_hook(j->ingest, NULL, NULL);
	if (j->loop && j->timer)
		loop_cancel_timer(j->loop, j->timer);
	if (j->loop && j->poke_timer)
		loop_cancel_timer(j->loop, j->poke_timer);
	strmap_free(j->handed, NULL);
	strmap_free(j->buckets, free);
	strmap_free(j->changed, NULL);
	free(j->out);
	free(j);
	return NULL;
}
