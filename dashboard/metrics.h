/* SPDX-License-Identifier: MIT */
/*
 * metrics: the dashboard's numbers for Prometheus, served as GET /metrics (text exposition
 * format 0.0.4) on a listener of its own (metrics_listen, default off), so a scraper needs no
 * account and reaches nothing else: every other path is 404, every other method 405. The
 * names and their meaning are in dashboard/README.md ("Metrics").
 *
 * Two kinds of numbers:
 *  - counters kept in this module's atomics, fed by the modules where things happen: ingest
 *    (after each committed batch: its totals and the batch's lag) and http (every response:
 *    code and latency). Any thread may feed them.
 *  - gauges read from the store at scrape time (phones by site and status, alerts firing, job
 *    executions by state, agents by presence), over a store connection of the listener's own,
 *    cached for METRICS_STORE_CACHE_MS so a burst of scrapes costs one pass over the phones.
 *
 * Threading: the listener is one libmicrohttpd thread (scrapes run one at a time).
 */
#ifndef CRADLE_DASH_METRICS_H
#define CRADLE_DASH_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dash_config;
struct ingest_stats;
struct store;
struct metrics;

#define METRICS_STORE_CACHE_MS 2000

/* ingest's totals after a batch (ingest.c), and the batch's lag: the time its first message
 * waited from arrival to the commit (seconds). lag_s < 0: no batch (totals only). */
void metrics_ingest(const struct ingest_stats *st, double lag_s);

/* ingest's connection to the broker came up or went down. */
void metrics_ingest_connected(bool connected);

/* One HTTP response of the API or UI (http.c): its status and the time since the request
 * arrived (seconds). */
void metrics_http(unsigned status, double seconds);

/*
 * The whole page into *ret (heap, NUL-terminated; *ret_len bytes), the store's gauges read
 * with s at now (Unix s). 0 or -errno.
 */
int metrics_render(struct store *s, const struct dash_config *cfg, int64_t now, char **ret,
                   size_t *ret_len);

/* Serves /metrics on cfg->metrics_listen (nothing when it is ""). 0 or -errno (logged). */
int metrics_start(const struct dash_config *cfg, struct metrics **ret);
/* NULL-safe; returns NULL. */
struct metrics *metrics_stop(struct metrics *m);

#endif
