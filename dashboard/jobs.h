/* SPDX-License-Identifier: MIT */
/*
 * jobs: bulk jobs, modelled on AWS IoT Jobs and made for phones (dashboard/README.md, "Bulk
 * jobs"). A job is one command for many phones: a target (a device filter, UDIDs or serial
 * numbers) resolved when the job starts (and, when continuous, again until the deadline), a
 * rollout (at most per_minute sends fleet-wide, spread evenly, and at most per_agent executions
 * in flight per agent), an optional daily window, an abort threshold, a timeout per execution
 * and retries for chosen causes. Each phone's execution goes queued -> sent -> accepted ->
 * in_progress / waiting_for_user -> succeeded | failed | timed_out | rejected | canceled, every
 * transition stored with its time and detail (job_transitions).
 *
 * The engine runs on the service's loop thread with the writer connection (shared with ingest:
 * it commits ingest's open batch before its own transaction). It is driven by a timer and by
 * ingest's batch hook (results and device changes). A phone not docked now waits in queued and
 * is sent to whichever agent sees it next, until the deadline. Every cmd_id is stored (commands
 * and job_executions, committed) before the command is handed to cmdsend; after a restart the
 * executions still in flight are sent again with the same cmd_id, which the agent's replay
 * table answers with the command's last status instead of running it again.
 *
 * The API (jobs_api.c) creates and cancels jobs with its own connection; the engine picks them up
 * at its next tick.
 */
#ifndef CRADLE_DASH_JOBS_H
#define CRADLE_DASH_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct cmdsend;
struct command;
struct dash_config;
struct http_request;
struct http_response;
struct hub;
struct ingest;
struct loop;
struct store;
struct jobs;

#define JOBS_TICK_MS          500  /* the engine's period */
#define JOBS_RESOLVE_MS       5000 /* continuous jobs: the filter is evaluated again this often */
#define JOBS_DEADLINE_DEFAULT (7 * 86400) /* s after creation, when the body names none */
#define JOBS_TIMEOUT_DEFAULT  600         /* s an execution may stay in flight */
#define JOBS_TARGET_MAX       100000      /* phones of one job */

/* Execution states, as stored and on the wire. (clang-format is not stable on X-macros.) */
// clang-format off
#define JOBS_EXEC_STATES \
	X(QUEUED, "queued") \
	X(SENT, "sent") \
	X(ACCEPTED, "accepted") \
	X(IN_PROGRESS, "in_progress") \
	X(WAITING, "waiting_for_user") \
	X(SUCCEEDED, "succeeded") \
	X(FAILED, "failed") \
	X(TIMED_OUT, "timed_out") \
	X(REJECTED, "rejected") \
	X(CANCELED, "canceled")

enum jobs_exec_state {
#define X(e, s) JOBS_EXEC_##e,
	JOBS_EXEC_STATES
#undef X
	_JOBS_EXEC_MAX,
};
// clang-format on

const char *jobs_exec_state_name(enum jobs_exec_state st);
/* 0 and *ret, or -EINVAL. */
int jobs_exec_state_from_str(const char *s, enum jobs_exec_state *ret);
/* succeeded, failed, timed_out, rejected, canceled. */
bool jobs_exec_state_final(enum jobs_exec_state st);

/* ---- the engine (loop thread) ---- */

/* Starts the engine; ingest, hub and cmdsend may be NULL (tests; nothing is sent without
 * cmdsend). 0 or -errno (logged). */
int jobs_new(struct loop *loop, struct store *store, struct ingest *ingest, struct hub *hub,
             struct cmdsend *cmdsend, const struct dash_config *cfg, struct jobs **ret);
/* NULL-safe; returns NULL. */
struct jobs *jobs_free(struct jobs *j);
/* One pass now: start, advance, time out, abort, dispatch. Loop thread. 0 or -EIO. */
int jobs_tick(struct jobs *j);
/* Asks for a pass soon (coalesced). Loop thread; ingest's batch hook calls it. */
void jobs_poke(struct jobs *j);

/* ---- shared by the engine and the API (any thread, its own store connection) ---- */

/* One phone of a resolved target: udid, the agent that saw it last ("" when the phone is
 * unknown), whether it is docked now. Non-zero stops and is returned. */
typedef int (*jobs_target_fn)(void *ctx, const char *udid, const char *agent, bool docked);
/*
 * Checks a target object ({"filter": {...}} | {"udids": [...]} | {"serials": [...]}). 0 or
 * -EINVAL with a message in err.
 */
int jobs_target_check(const struct cJSON *target, char *err, size_t errsz);
/* Resolves a checked target now: fn for every phone, once each; serials and UDIDs that name no
 * known phone go to unresolved (an array; NULL: not collected). 0, -EIO or fn's value. */
int jobs_target_resolve(struct store *s, const struct cJSON *target, int64_t now_s,
                        jobs_target_fn fn, void *ctx, struct cJSON *unresolved);

/* A command's params object into cmd (name set already). 0 or -EINVAL with err. */
int jobs_params_to_command(const struct cJSON *params, struct command *cmd, char *err,
                           size_t errsz);

/* The job object of the API (dashboard/API.md "Jobs"), NULL when unknown or on error. */
struct cJSON *jobs_job_json(struct store *s, int64_t id, int64_t now_ms);

/* ---- the API's handlers (jobs_api.c; routes in api.c) ---- */

void jobs_api_create(struct http_request *req, struct http_response *res);
void jobs_api_list(struct http_request *req, struct http_response *res);
void jobs_api_get(struct http_request *req, struct http_response *res);
void jobs_api_executions(struct http_request *req, struct http_response *res);
void jobs_api_cancel(struct http_request *req, struct http_response *res);

#endif
