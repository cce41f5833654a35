/* SPDX-License-Identifier: MIT */
/*
 * query: the read side of the store for the API (api.c) and the live stream (http.c's SSE):
 * filtered, sorted, paged device lists, one phone with its causes, a phone's history, agents,
 * the overview's numbers and commands, each as the cJSON object the API sends (shapes in
 * dashboard/API.md, schemas in dashboard/openapi.json). The dashboard's verdict on a phone is
 * judge.h's rule, evaluated inside SQL (cradle_status(...)) so filters, sorts and counts agree
 * with the C code.
 *
 * Threading: a function uses only the store connection it is given (one thread at a time);
 * callable from any HTTP worker with its own connection.
 */
#ifndef CRADLE_DASH_QUERY_H
#define CRADLE_DASH_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "judge.h"

struct cJSON;
struct store;

#define QUERY_LIMIT_DEFAULT      50
#define QUERY_LIMIT_MAX          1000
#define QUERY_CSV_MAX            100000 /* rows of one CSV export (the whole filter, capped) */
#define QUERY_TEXT_MAX           128    /* bytes of a filter value, NUL included */
#define QUERY_SEARCH_INDEXED_MIN 3      /* characters of q from which devices_fts answers it */
#define QUERY_COMMANDS_MAX       200    /* commands of one phone listed at most */

/* Sort keys of the device list; a leading '-' on the wire reverses the order. */
enum query_sort {
	QUERY_SORT_AGE,       /* "age": backup age, never backed up oldest; default "-age" */
	QUERY_SORT_NAME,      /* "name" */
	QUERY_SORT_SERIAL,    /* "serial" */
	QUERY_SORT_UDID,      /* "udid" */
	QUERY_SORT_LAST_SEEN, /* "last_seen" */
	QUERY_SORT_SITE,      /* "site": site, station, name */
	QUERY_SORT_STATUS,    /* "status": ok, stale, unknown, missing */
	QUERY_SORT_IOS,       /* "ios": iOS version */
	_QUERY_SORT_MAX,
};

/* A device list request; "" (or 0 / false) = no filter on that field. */
struct query_devices {
	unsigned status_mask; /* bit (1 << enum judge_status); 0 = any */
	char cause[QUERY_TEXT_MAX];
	char agent[QUERY_TEXT_MAX];
	char site[QUERY_TEXT_MAX];
	char station[QUERY_TEXT_MAX];
	int64_t ios_below;      /* devices.ios_key < this; 0 = no filter */
	char q[QUERY_TEXT_MAX]; /* substring of serial, name or UDID (case-insensitive) */
	enum query_sort sort;
	bool desc;
	int64_t limit; /* 1..QUERY_LIMIT_MAX */
	int64_t offset;
	bool scan; /* q: the plain scan even where devices_fts could answer (tests compare) */
};

/* Defaults: no filter, sort "-age", limit QUERY_LIMIT_DEFAULT, offset 0. */
void query_devices_init(struct query_devices *q);

/*
 * Sets one query-string parameter of the device list (name, value as received). 0, -ENOENT
 * for a name that is not a device-list parameter (ignored by the caller), or -EINVAL with a
 * message naming the parameter in err.
 */
int query_devices_param(struct query_devices *q, const char *name, const char *value, char *err,
                        size_t errsz);

/* Parses "17.4.1" / "17.4" / "17" into devices.ios_key form. 0 or -EINVAL. */
int query_ios_key(const char *version, int64_t *ret);

/* One phone of query_devices_each(): its last agent, site, station and whether docked now.
 * Non-zero stops the walk and is returned. */
typedef int (*query_device_fn)(void *ctx, const char *udid, const char *agent, const char *site,
                               const char *station, bool docked);
/*
 * Calls fn for every phone matching q's filter (sort, limit and offset ignored), in row order:
 * the same filter as the device list, for whoever acts on its result (bulk jobs). 0, -EIO or
 * what fn returned.
 */
int query_devices_each(struct store *s, const struct query_devices *q, int64_t now,
                       query_device_fn fn, void *ctx);

/* {"total": N, "devices": [device, ...]} (one page). NULL on a store error (logged). */
struct cJSON *query_devices_json(struct store *s, const struct query_devices *q, int64_t now);

/*
 * Writes the CSV of every device matching q (limit/offset ignored, at most QUERY_CSV_MAX rows)
 * to f, header first. 0, -EIO (store or write error) or -ENOMEM.
 */
int query_devices_csv(struct store *s, const struct query_devices *q, int64_t now, FILE *f);

/* The device object (as in the list and the stream), NULL when unknown or on error. */
struct cJSON *query_device_json(struct store *s, const char *udid, int64_t now);

/*
 * The device object plus cause_details and commands_allowed (the single-phone commands its
 * agent allows; empty unless may_command: the caller's role may send commands). NULL when
 * unknown or on error.
 */
struct cJSON *query_device_detail_json(struct store *s, const char *udid, int64_t now,
                                       bool may_command);

/* {"commands": [command, ...]} of udid, newest first, at most limit. NULL on error. */
struct cJSON *query_device_commands_json(struct store *s, const char *udid, int64_t limit);

/* {"total", "history": [...]} newest first; NULL when the phone is unknown or on error. */
struct cJSON *query_history_json(struct store *s, const char *udid, int64_t limit, int64_t offset);

/* The agent object, NULL when unknown or on error. */
struct cJSON *query_agent_json(struct store *s, const char *agent, int64_t now);
/* {"agents": [agent, ...]} ordered by site, station, agent. NULL on error. */
struct cJSON *query_agents_json(struct store *s, int64_t now);

/* The overview's numbers (dashboard/API.md, "summary"). NULL on error. */
struct cJSON *query_summary_json(struct store *s, int64_t now);

/*
 * Phones by site ("" = none) and status, the judge's verdict at now, in one pass over the
 * devices_judge index (metrics.c). fn is called once per site, with a count per status. 0 or
 * -errno.
 */
typedef void (*query_site_status_fn)(void *ctx, const char *site,
                                     const int64_t count[_JUDGE_STATUS_MAX]);
int query_site_status(struct store *s, int64_t now, query_site_status_fn fn, void *ctx);

/* The command object (the shape), NULL when unknown or on error. */
struct cJSON *query_command_json(struct store *s, const char *cmd_id);

/*
 * Facts for sending a command to udid: whether the phone is known (-ENOENT when not), the
 * agent that saw it last (agent, COMMAND_AGENT_MAX bytes), and whether it is docked now
 * (attached and its agent online); allowed_mask: bit (1 << enum command_name) for each command
 * the agent's meta allows (all of v1 while no meta is known). 0, -ENOENT or -EIO.
 */
int query_device_route(struct store *s, const char *udid, char *agent, size_t agent_size,
                       bool *attached, bool *agent_online, unsigned *allowed_mask);

#endif
