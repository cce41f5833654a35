/* SPDX-License-Identifier: MIT */
/*
 * notify: delivery of alert notifications to receivers (a signed JSON webhook, Slack and
 * Microsoft Teams incoming webhooks, e-mail over SMTP with STARTTLS), through libcurl.
 *
 * The alerts engine hands each notification to notify_enqueue() inside its own transaction: one
 * row per receiver that takes the rule goes into the persistent queue (notify_queue, schema
 * migration 4), so a notification raised while every receiver is down is delivered when they
 * come back, and one raised just before a crash or a stop is delivered after the restart. The
 * queue is bounded (notify_queue_max undelivered rows): a full queue drops its oldest rows,
 * counted per receiver and logged, never silently.
 *
 * One worker thread (notify_start) with a store connection of its own delivers each receiver's
 * rows in queue order: the head row of a receiver blocks the rows behind it, so a receiver gets
 * its notifications in the order they were raised. A failed attempt (no connection, timeout,
 * an HTTP status other than 2xx, an SMTP error) is retried after notify_backoff doubled per
 * attempt up to notify_backoff_max, with jitter; after notify_attempts attempts, or at once on
 * a permanent refusal (HTTP 4xx other than 408 and 429), the row becomes a dead letter: kept,
 * counted, shown by GET /api/v1/notify/status. A receiver in digest mode (digest=T) gets at most
 * one message every T, listing everything that fired and resolved meanwhile.
 *
 * Threading: notify_enqueue on the loop thread with the writer connection; notify_status_json
 * on any thread with a connection of its own; notify_start/notify_stop on the main thread.
 */
#ifndef CRADLE_DASH_NOTIFY_H
#define CRADLE_DASH_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct cJSON;
struct conftab_key;
struct conftab_parser;
struct dash_config;
struct dash_receiver;
struct http_request;
struct http_response;
struct store;
struct notify;

struct notify_alert {
	const char *alert_id;
	const char *rule;
	const char *state;        /* "firing" | "resolved" */
	const char *subject_kind; /* "udid" | "agent" | "site" | "station" */
	const char *subject;
	const char *site;
	const char *station;
	const char *summary;     /* one line for humans */
	const char *detail_json; /* object */
	int64_t fired_at;        /* Unix s */
	int64_t resolved_at;     /* Unix s, 0 = none */
};

/* Loop thread, inside the caller's store transaction: one queue row per receiver that takes this
 * rule. 0 or -errno. The receivers are those of the configuration given to notify_start(); none
 * before it (then nothing is queued). */
int notify_enqueue(struct store *s, const struct notify_alert *a);
/* Loop thread, around many notify_enqueue() calls in one transaction: the queue is bounded once,
 * by notify_release(s) before the commit, not at every enqueue past the bound (each of which
 * counts the queue). The rows that stay, the drops counted per receiver and in total are the
 * same; the "queue full" warning comes once per receiver. notify_release(NULL): the transaction
 * is rolled back, nothing to bound. notify_release: 0 or -EIO (logged; the rows stay). */
void notify_hold(void);
int notify_release(struct store *s);

/*
 * Starts the worker: opens its own connection to cfg->db (borrowed; must outlive the worker),
 * turns rows of receivers no longer configured into dead letters, and delivers. With no receiver
 * configured no thread is started. 0 or -errno (logged).
 */
int notify_start(const struct dash_config *cfg, struct notify **ret);
/* Publishes cfg's receivers to notify_enqueue() without a worker (tools and tests that only
 * queue; another process delivers). NULL withdraws them. */
void notify_configure(const struct dash_config *cfg);
/* Stops the worker promptly (an attempt in flight is abandoned and stays queued, not counted as
 * failed). NULL-safe; returns NULL. */
struct notify *notify_stop(struct notify *n);

/* GET /api/v1/notify/status's object (see dashboard/API.md). NULL on a store error. */
struct cJSON *notify_status_json(struct store *s, const struct dash_config *cfg);
/* The route's handler (api.c's table). */
void notify_api_status(struct http_request *req, struct http_response *res);

/* config.c's custom type for receiver1..receiver8: "NAME TYPE URL [opt=value ...]". */
int notify_receiver_parse(struct conftab_parser *p, const struct conftab_key *k, char *v,
                          void *field);
void notify_receiver_dump(FILE *f, const struct conftab_key *k, const void *field);
/* Rules between receivers (unique names). 0 or -EINVAL with a message in err. */
int notify_config_check(const struct dash_config *cfg, char *err, size_t errsz);
/* Whether rcv (configured) takes the notifications of rule. */
bool notify_receiver_takes(const struct dash_receiver *rcv, const char *rule);
/* "webhook", "slack", "teams", "email"; "" for none. */
const char *notify_type_name(int type);
/* The rules a receiver may take (rules=...), NULL-terminated. */
extern const char *const notify_rules[];

/*
 * The parts the worker sends, exposed for tests. The webhook signature: hex HMAC-SHA256 with
 * key secret over "<t>.<body>"; out gets "t=<t>,v1=<hex>" (the X-Cradle-Signature header).
 */
int notify_sign(const char *secret, int64_t t, const char *body, size_t len, char *out,
                size_t outsz);

#endif
