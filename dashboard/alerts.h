/* SPDX-License-Identifier: MIT */
/*
 * alerts: the rules engine. Every alert_interval the loop thread evaluates four rules over the
 * store with the dashboard's own clock (dashboard/README.md, "Alerts", has them in prose):
 *
 *   backup_stale    a phone with no iCloud backup for longer than alert_backup_stale (per site);
 *   device_missing  a phone not docked anywhere for longer than alert_device_missing;
 *   agent_offline   an agent offline (graceful or will) for longer than alert_agent_offline;
 *   site_network    at least alert_site_network_pct % and alert_site_network_min of a site's
 *                   (else a station's) stale phones carry the cause network_unavailable.
 *
 * One alert per (rule, subject) per episode: a condition that holds alert_for fires it (one
 * alerts row), one that has been gone alert_clear_for resolves it, so one late message neither
 * resolves and re-fires an alert nor raises a second one. Firing alerts covered by a silence, or
 * inhibited (a phone's backup_stale by its site's or station's site_network, a phone's
 * device_missing by its agent's agent_offline), stay visible but send no notification; the
 * others are handed to notify_enqueue() once when they fire, and once when they resolve.
 *
 * Threading: alerts_new/evaluate/free on the loop thread with the writer connection; the JSON
 * functions (alerts_api.c) on any thread with a connection of its own.
 */
#ifndef CRADLE_DASH_ALERTS_H
#define CRADLE_DASH_ALERTS_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct dash_config;
struct hub;
struct store;
struct alerts;

enum alerts_rule {
	ALERTS_AGENT_OFFLINE,
	ALERTS_SITE_NETWORK,
	ALERTS_DEVICE_MISSING,
	ALERTS_BACKUP_STALE,
	_ALERTS_RULE_MAX,
};

/* "backup_stale", ...; NULL when out of range. */
const char *alerts_rule_name(enum alerts_rule r);
/* -EINVAL for an unknown name. */
int alerts_rule_from_name(const char *name, enum alerts_rule *ret);

struct alerts_stats {
	size_t phones, agents; /* rows looked at */
	size_t firing;         /* firing after the pass */
	size_t fired, resolved, notified;
	int64_t elapsed_us; /* the pass, store reads and writes included */
};

/* Loads the firing alerts from store (borrowed, the writer). hub may be NULL. 0 or -errno. */
int alerts_new(struct store *store, struct hub *hub, const struct dash_config *cfg,
               struct alerts **ret);
/* NULL-safe; returns NULL. */
struct alerts *alerts_free(struct alerts *a);

/* One pass at now (Unix s), in a transaction of its own (none may be open). 0 or -errno. */
int alerts_evaluate(struct alerts *a, int64_t now, struct alerts_stats *ret);

/* ---- read side (alerts_api.c) ---- */

/* The alert as GET /api/v1/alerts shows it; NULL when unknown. */
struct cJSON *alerts_json(struct store *s, int64_t id, int64_t now);

/* The rules with their effective thresholds (the alerts page shows them read-only). */
struct cJSON *alerts_rules_json(const struct dash_config *cfg);

/* The HTTP handlers (api.c's route table): GET /api/v1/alerts, GET /api/v1/alerts/rules,
 * GET and POST /api/v1/silences, DELETE /api/v1/silences/{id}. */
struct http_request;
struct http_response;
void alerts_api_list(struct http_request *req, struct http_response *res);
void alerts_api_rules(struct http_request *req, struct http_response *res);
void alerts_api_silences(struct http_request *req, struct http_response *res);
void alerts_api_silence_add(struct http_request *req, struct http_response *res);
void alerts_api_silence_delete(struct http_request *req, struct http_response *res);

#endif
