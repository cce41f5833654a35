/* SPDX-License-Identifier: MIT */
/*
 * jobs: the engine's passes against a store filled by SQL, without a broker (no command
 * sender: commands are stored, and handing them over fails, which a pass survives). Target by
 * filter, UDIDs and serials; per-agent concurrency; the rate's token bucket; results advancing
 * executions; the abort threshold; retries; the window; the deadline; a phone that docks at
 * another agent; the API's shared helpers (target checks, params).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "command.h"
#include "config.h"
#include "jobs.h"
#include "loop.h"
#include "store.h"

struct fixture {
	char dir[64];
	char path[128];
	struct dash_config cfg;
	struct store *s;
	struct jobs *j;
};

static void exec(struct store *s, const char *fmt, ...)
{
	char sql[4096], *err = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	if (sqlite3_exec(store_db(s), sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
}

static int64_t q1(struct store *s, const char *fmt, ...)
{
	char sql[2048];
	sqlite3_stmt *st;
	int64_t v = -1;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	assert_int_equal(sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/*
 * Agents a1, a2 online (site n), a3 offline. Phones P1..P4 docked at a1, P5 docked at a2, P6
 * at a3 (agent offline: not docked), P7 not attached at a2; all but P5 with cause icd.
 */
static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	int64_t now = wall_now_ms() / 1000;
	char err[256];

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/cradle-jobs-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/db", fx->dir);
	dash_config_defaults(&fx->cfg);
	if (store_open(fx->path, &fx->cfg, &fx->s, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	exec(fx->s,
	     "INSERT INTO agents(agent, site, station, presence) VALUES ('a1', 'n', 's1', 'online'),"
	     " ('a2', 'n', 's2', 'online'), ('a3', 'n', 's3', 'offline')");
	for (int i = 1; i <= 7; i++)
		exec(fx->s,
		     "INSERT INTO devices(udid, serial, agent, site, attached, last_seen, has_facts,"
		     " last_icloud, cause_codes) VALUES ('P%d', 'S%d', '%s', 'n', %d, %lld, 1, %lld,"
		     " '%s')",
		     i, i,
		     i <= 4   ? "a1"
		     : i == 6 ? "a3"
		              : "a2",
		     i != 7, (long long)now, (long long)now - 3600, i == 5 ? "" : ",icd,");
	if (jobs_new(NULL, fx->s, NULL, NULL, NULL, &fx->cfg, &fx->j) < 0)
		return -1;
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	jobs_free(fx->j);
	store_close(fx->s);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

/* A job row as the API stores it. */
static int64_t job(struct store *s, const char *target, const char *extra_cols,
                   const char *extra_vals)
{
	exec(s,
	     "INSERT INTO jobs(name, state, command, target_json, timeout_s, deadline_ms,"
	     " created_by, created_ms, updated_ms%s) VALUES ('t', 'scheduled', 'device.refresh',"
	     " '%s', 600, %lld, 'alice', 0, 0%s)",
	     extra_cols, target, (long long)(wall_now_ms() + 3600000), extra_vals);
	return sqlite3_last_insert_rowid(store_db(s));
}

static int64_t count(struct store *s, int64_t id, const char *state)
{
	return q1(s, "SELECT COUNT(*) FROM job_executions WHERE job_id = %lld AND state = '%s'",
	          (long long)id, state);
}

/* The agent answers the command of execution udid with status (and cause). */
static void answer(struct store *s, int64_t id, const char *udid, const char *status,
                   const char *cause)
{
	exec(s,
	     "UPDATE commands SET status = '%s' WHERE cmd_id = (SELECT cmd_id FROM job_executions"
	     " WHERE job_id = %lld AND udid = '%s')",
	     status, (long long)id, udid);
	exec(s,
	     "INSERT INTO command_results(cmd_id, agent, seq, ts_ms, status, json) SELECT cmd_id,"
	     " agent, (SELECT COUNT(*) FROM command_results) + 1, 0, '%s',"
	     " '{\"status\":\"%s\",\"cause\":\"%s\"}' FROM job_executions WHERE job_id = %lld"
	     " AND udid = '%s'",
	     status, status, cause, (long long)id, udid);
}

static void filter_and_per_agent(void **state)
{
	struct fixture *fx = *state;
	int64_t id =
	        job(fx->s, "{\"filter\":{\"cause\":\"icd\",\"site\":\"n\"}}", ", per_agent", ", 2");

	assert_int_equal(jobs_tick(fx->j), 0);
	/* P1..P4, P6, P7 match; P1, P2 sent (a1 at 2), P3, P4 wait for a1, P6 and P7 not docked */
	assert_int_equal(
	        q1(fx->s, "SELECT COUNT(*) FROM job_executions WHERE job_id = %lld", (long long)id),
	        6);
	assert_int_equal(count(fx->s, id, "sent"), 2);
	assert_int_equal(count(fx->s, id, "queued"), 4);
	assert_int_equal(q1(fx->s,
	                    "SELECT COUNT(*) FROM commands WHERE sent_by = 'job %lld (alice)'",
	                    (long long)id),
	                 2);
	assert_int_equal(q1(fx->s,
	                    "SELECT COUNT(*) FROM jobs WHERE id = %lld AND state ="
	                    " 'in_progress' AND started_ms IS NOT NULL",
	                    (long long)id),
	                 1);
	/* results: P1 in progress, then succeeded; its slot at a1 goes to P3 */
	answer(fx->s, id, "P1", "in_progress", "");
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(count(fx->s, id, "in_progress"), 1);
	assert_int_equal(count(fx->s, id, "sent"), 1);
	answer(fx->s, id, "P1", "succeeded", "");
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(count(fx->s, id, "succeeded"), 1);
	assert_int_equal(count(fx->s, id, "sent"), 2);
	assert_int_equal(q1(fx->s,
	                    "SELECT COUNT(*) FROM job_executions WHERE job_id = %lld AND"
	                    " udid = 'P3' AND state = 'sent' AND agent = 'a1'",
	                    (long long)id),
	                 1);
	/* P7 docks at a1 (another agent than where it was seen): sent there */
	exec(fx->s, "UPDATE devices SET attached = 1, agent = 'a1' WHERE udid = 'P7'");
	answer(fx->s, id, "P2", "succeeded", "");
	answer(fx->s, id, "P3", "succeeded", "");
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(q1(fx->s,
	                    "SELECT COUNT(*) FROM job_executions WHERE job_id = %lld AND"
	                    " state = 'sent' AND agent = 'a1'",
	                    (long long)id),
	                 2);
	/* every transition is stored, in order */
	assert_int_equal(q1(fx->s,
	                    "SELECT COUNT(*) FROM job_transitions WHERE job_id = %lld AND"
	                    " udid = 'P1'",
	                    (long long)id),
	                 4); /* queued, sent, in_progress, succeeded */
}

static void abort_and_retry(void **state)
{
	struct fixture *fx = *state;
	int64_t id =
	        job(fx->s, "{\"udids\":[\"P1\",\"P2\",\"P3\",\"P4\",\"P5\"]}",
	            ", abort_pct, abort_min, retry_causes, retry_max", ", 50, 2, ',busy_x,', 1");

	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(count(fx->s, id, "sent"), 5);
	/* a listed cause is retried with a new cmd_id */
	answer(fx->s, id, "P1", "failed", "busy_x");
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(q1(fx->s,
	                    "SELECT attempt FROM job_executions WHERE job_id = %lld AND"
	                    " udid = 'P1'",
	                    (long long)id),
	                 2);
	assert_int_equal(count(fx->s, id, "failed"), 0);
	/* two final failures of two finished: 100 % >= 50 % after 2: aborted */
	answer(fx->s, id, "P2", "failed", "other");
	answer(fx->s, id, "P3", "rejected", "");
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(q1(fx->s,
	                    "SELECT COUNT(*) FROM jobs WHERE id = %lld AND state = 'aborted'",
	                    (long long)id),
	                 1);
	/* in flight ones are still followed after the abort, and not retried */
	answer(fx->s, id, "P1", "failed", "busy_x");
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(count(fx->s, id, "failed"), 2);
}

static void rate_window_deadline(void **state)
{
	struct fixture *fx = *state;
	int64_t id = job(fx->s, "{\"serials\":[\"S1\",\"S2\",\"S3\",\"S5\",\"nope\"]}",
	                 ", per_minute", ", 60");
	int64_t now_min = wall_now_ms() / 60000 % 1440, wid, did;

	/* 60 a minute: one a second; an immediate second pass sends nothing */
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(
	        q1(fx->s, "SELECT COUNT(*) FROM job_executions WHERE job_id = %lld", (long long)id),
	        4); /* the unknown serial is not an execution */
	assert_int_equal(count(fx->s, id, "sent"), 1);
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(count(fx->s, id, "sent"), 1);
	usleep(1100 * 1000);
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(count(fx->s, id, "sent"), 2);

	/* a window two hours from now: nothing starts */
	wid = job(fx->s, "{\"udids\":[\"P5\"]}", ", window_start, window_end", ", 0, 1");
	exec(fx->s, "UPDATE jobs SET window_start = %lld, window_end = %lld WHERE id = %lld",
	     (long long)(now_min + 120) % 1440, (long long)(now_min + 180) % 1440, (long long)wid);
	/* a deadline passed: the phone never docked is canceled and the job completes */
	did = job(fx->s, "{\"udids\":[\"P6\"]}", "", "");
	exec(fx->s, "UPDATE jobs SET deadline_ms = %lld WHERE id = %lld",
	     (long long)wall_now_ms() + 300, (long long)did);
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(count(fx->s, wid, "queued"), 1);
	assert_int_equal(count(fx->s, did, "queued"), 1);
	usleep(400 * 1000);
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(count(fx->s, wid, "queued"), 1);
	assert_int_equal(count(fx->s, did, "canceled"), 1);
	assert_int_equal(q1(fx->s,
	                    "SELECT COUNT(*) FROM jobs WHERE id = %lld AND state ="
	                    " 'completed'",
	                    (long long)did),
	                 1);
}

static void timeout_and_bad_target(void **state)
{
	struct fixture *fx = *state;
	int64_t id = job(fx->s, "{\"udids\":[\"P5\"]}", "", ""), bad;

	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(count(fx->s, id, "sent"), 1);
	exec(fx->s, "UPDATE job_executions SET sent_ms = sent_ms - 601000 WHERE job_id = %lld",
	     (long long)id);
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(count(fx->s, id, "timed_out"), 1);
	assert_int_equal(q1(fx->s,
	                    "SELECT COUNT(*) FROM jobs WHERE id = %lld AND state ="
	                    " 'completed'",
	                    (long long)id),
	                 1);
	/* a stored filter this version refuses aborts the job, the pass goes on */
	bad = job(fx->s, "{\"filter\":{\"status\":\"purple\"}}", "", "");
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(q1(fx->s,
	                    "SELECT COUNT(*) FROM jobs WHERE id = %lld AND state = 'aborted'",
	                    (long long)bad),
	                 1);
}

static void continuous(void **state)
{
	struct fixture *fx = *state;
	int64_t id = job(fx->s, "{\"filter\":{\"cause\":\"icd\",\"agent\":\"a2\"}}", ", continuous",
	                 ", 1");

	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(
	        q1(fx->s, "SELECT COUNT(*) FROM job_executions WHERE job_id = %lld", (long long)id),
	        1); /* P7 */
	/* P5 gets the cause later: it joins at the next evaluation of the filter */
	exec(fx->s, "UPDATE devices SET cause_codes = ',icd,' WHERE udid = 'P5'");
	exec(fx->s, "UPDATE jobs SET resolved_ms = 0 WHERE id = %lld", (long long)id);
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(count(fx->s, id, "sent"), 1);
	assert_int_equal(q1(fx->s,
	                    "SELECT COUNT(*) FROM job_transitions WHERE job_id = %lld AND"
	                    " udid = 'P5' AND detail LIKE 'joined%%'",
	                    (long long)id),
	                 1);
	/* nothing left but the job goes on until its deadline */
	answer(fx->s, id, "P5", "succeeded", "");
	exec(fx->s, "UPDATE devices SET attached = 1 WHERE udid = 'P7'");
	assert_int_equal(jobs_tick(fx->j), 0);
	answer(fx->s, id, "P7", "succeeded", "");
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(count(fx->s, id, "succeeded"), 2);
	assert_int_equal(q1(fx->s,
	                    "SELECT COUNT(*) FROM jobs WHERE id = %lld AND state ="
	                    " 'in_progress'",
	                    (long long)id),
	                 1);
	exec(fx->s, "UPDATE jobs SET deadline_ms = 1 WHERE id = %lld", (long long)id);
	assert_int_equal(jobs_tick(fx->j), 0);
	assert_int_equal(q1(fx->s,
	                    "SELECT COUNT(*) FROM jobs WHERE id = %lld AND state ="
	                    " 'completed'",
	                    (long long)id),
	                 1);
}

/* JOBS_BENCH=N: N phones over 200 agents, one unthrottled job: the engine's time to store and
 * hand over every execution (no broker), and to record every result. Skipped without it. */
static void bench(void **state)
{
	struct fixture *fx = *state;
	const char *env = getenv("JOBS_BENCH");
	int n = env ? atoi(env) : 0, passes = 0;
	int64_t id, t0, t1, now = wall_now_ms() / 1000;

	if (n <= 0) {
		skip();
		return;
	}
	exec(fx->s, "BEGIN");
	for (int a = 0; a < 200; a++)
		exec(fx->s, "INSERT INTO agents(agent, presence) VALUES ('b%d', 'online')", a);
	for (int i = 0; i < n; i++)
		exec(fx->s,
		     "INSERT INTO devices(udid, agent, attached, last_seen, cause_codes) VALUES"
		     " ('B%d', 'b%d', 1, %lld, ',bench,')",
		     i, i % 200, (long long)now);
	exec(fx->s, "COMMIT");
	id = job(fx->s, "{\"filter\":{\"cause\":\"bench\"}}", "", "");
	t0 = wall_now_ms();
	while (count(fx->s, id, "queued") != 0 || passes == 0) {
		assert_int_equal(jobs_tick(fx->j), 0);
		passes++;
	}
	t1 = wall_now_ms();
	exec(fx->s, "UPDATE commands SET status = 'succeeded'");
	assert_int_equal(jobs_tick(fx->j), 0);
	fprintf(stderr,
	        "bench: %d executions stored and handed over in %lld ms (%d passes); %d results "
	        "recorded in %lld ms\n",
	        n, (long long)(t1 - t0), passes, n, (long long)(wall_now_ms() - t1));
	assert_int_equal(count(fx->s, id, "succeeded"), n);
}

static void helpers(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{}",
		"{\"filter\":{\"colour\":\"x\"}}",
		"{\"filter\":{\"status\":\"purple\"}}",
		"{\"udids\":[]}",
		"{\"udids\":[1]}",
		"{\"udids\":[\"a\"],\"serials\":[\"b\"]}",
	};
	char err[256];
	struct command cmd;
	cJSON *o;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		o = cJSON_Parse(bad[i]);
		err[0] = '\0';
		assert_int_equal(jobs_target_check(o, err, sizeof(err)), -EINVAL);
		assert_true(err[0] != '\0');
		cJSON_Delete(o);
	}
	o = cJSON_Parse("{\"filter\":{\"cause\":\"icd\",\"ios_below\":17}}");
	assert_int_equal(jobs_target_check(o, err, sizeof(err)), 0);
	cJSON_Delete(o);
	memset(&cmd, 0, sizeof(cmd));
	o = cJSON_Parse("{\"full\":true,\"n\":3,\"s\":\"x\"}");
	assert_int_equal(jobs_params_to_command(o, &cmd, err, sizeof(err)), 0);
	assert_int_equal(cmd.n_params, 3);
	cJSON_Delete(o);
	o = cJSON_Parse("{\"x\":[1]}");
	assert_int_equal(jobs_params_to_command(o, &cmd, err, sizeof(err)), -EINVAL);
	cJSON_Delete(o);
	for (int i = 0; i < _JOBS_EXEC_MAX; i++) {
		enum jobs_exec_state es;

		assert_int_equal(jobs_exec_state_from_str(jobs_exec_state_name(i), &es), 0);
		assert_int_equal((int)es, i);
	}
	assert_true(jobs_exec_state_final(JOBS_EXEC_CANCELED));
	assert_false(jobs_exec_state_final(JOBS_EXEC_WAITING));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(filter_and_per_agent, setup, teardown),
		cmocka_unit_test_setup_teardown(abort_and_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(rate_window_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(timeout_and_bad_target, setup, teardown),
		cmocka_unit_test_setup_teardown(continuous, setup, teardown),
		cmocka_unit_test_setup_teardown(bench, setup, teardown),
		cmocka_unit_test(helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
