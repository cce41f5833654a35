/* SPDX-License-Identifier: MIT */
/*
 * metrics: see metrics.h. The counters are process-wide atomics (one dashboard per process);
 * the page is written with common/promtext.h into a memory stream.
 */
#include "metrics.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>
#include <sqlite3.h>

#include "alerts.h"
#include "config.h"
#include "http.h"
#include "ingest.h"
#include "jobs.h"
#include "judge.h"
#include "log.h"
#include "loop.h"
#include "macro.h"
#include "promtext.h"
#include "query.h"
#include "store.h"
#include "version.h"

#define METRICS_CONNECTIONS 16 /* scrapers at once */
#define METRICS_TIMEOUT_S   10
#define HTTP_CODES          600 /* status codes 0..599 counted */

/* seconds: a batch commits within INGEST_BATCH_MS unless the store is slow */
static const double lag_bounds[] = { 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
/* seconds: the API's lists answer in tens of ms at 100 000 phones (bench/dashboard) */
static const double http_bounds[] = {
	0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
};

_Static_assert(ARRAY_SIZE(lag_bounds) <= PROMTEXT_BUCKETS_MAX, "lag_bounds");
_Static_assert(ARRAY_SIZE(http_bounds) <= PROMTEXT_BUCKETS_MAX, "http_bounds");

static struct {
	atomic_uint_fast64_t messages, malformed, duplicates, batches, deferred;
	atomic_int_fast64_t lost;
	atomic_bool connected;
	atomic_uint_fast64_t last_lag_micro;
	struct promtext_hist lag, http;
	atomic_uint_fast64_t http_codes[HTTP_CODES];
	atomic_llong start_s;
} G = {
	/* the counts start at 0 (static storage); only the bounds are set */
	.lag = PROMTEXT_HIST_INIT(lag_bounds),
	.http = PROMTEXT_HIST_INIT(http_bounds),
};

void metrics_ingest(const struct ingest_stats *st, double lag_s)
{
	atomic_store_explicit(&G.messages, st->messages, memory_order_relaxed);
	atomic_store_explicit(&G.malformed, st->malformed, memory_order_relaxed);
	atomic_store_explicit(&G.duplicates, st->duplicates, memory_order_relaxed);
	atomic_store_explicit(&G.batches, st->batches, memory_order_relaxed);
	atomic_store_explicit(&G.deferred, st->deferred, memory_order_relaxed);
	atomic_store_explicit(&G.lost, st->lost, memory_order_relaxed);
	atomic_store_explicit(&G.connected, st->connected, memory_order_relaxed);
	if (lag_s >= 0) {
		promtext_hist_observe(&G.lag, lag_s);
		atomic_store_explicit(&G.last_lag_micro, (uint_fast64_t)(lag_s * 1e6),
		                      memory_order_relaxed);
	}
}

void metrics_ingest_connected(bool connected)
{
	atomic_store_explicit(&G.connected, connected, memory_order_relaxed);
}

void metrics_http(unsigned status, double seconds)
{
	atomic_fetch_add_explicit(&G.http_codes[status < HTTP_CODES ? status : 0], 1,
	                          memory_order_relaxed);
	promtext_hist_observe(&G.http, seconds);
}

/* ---- the page ---- */

static uint64_t get(atomic_uint_fast64_t *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

/* process, ingest and HTTP: from the atomics */
static void render_counters(FILE *f)
{
	char code[8];

	promtext_family(f, "cradle_dashboard_build_info", "gauge",
	                "The dashboard's version (always 1).");
	promtext_sample(f, "cradle_dashboard_build_info", 1, "version", CRADLE_VERSION, NULL);
	promtext_family(f, "cradle_dashboard_start_time_seconds", "gauge",
	                "When the dashboard started (Unix time).");
	promtext_sample(f, "cradle_dashboard_start_time_seconds",
	                (double)atomic_load_explicit(&G.start_s, memory_order_relaxed), NULL);

	promtext_process(f, "process_");
	promtext_family(f, "process_start_time_seconds", "gauge",
	                "When the process started (Unix time).");
	promtext_sample(f, "process_start_time_seconds",
	                (double)atomic_load_explicit(&G.start_s, memory_order_relaxed), NULL);

	promtext_family(f, "cradle_dashboard_messages_received_total", "counter",
	                "MQTT messages received from the agents, malformed and duplicates "
	                "included.");
	promtext_sample_u64(f, "cradle_dashboard_messages_received_total", get(&G.messages), NULL);
	promtext_family(f, "cradle_dashboard_messages_dropped_total", "counter",
	                "Messages not stored: malformed (undecodable or against the contract) or "
	                "duplicate (an (agent, session, seq) already stored).");
	promtext_sample_u64(f, "cradle_dashboard_messages_dropped_total", get(&G.malformed),
	                    "reason", "malformed", NULL);
	promtext_sample_u64(f, "cradle_dashboard_messages_dropped_total", get(&G.duplicates),
	                    "reason", "duplicate", NULL);
	promtext_family(f, "cradle_dashboard_messages_lost", "gauge",
	                "Sequence numbers missing now across all agents (gaps, less those filled "
	                "later).");
	promtext_sample(f, "cradle_dashboard_messages_lost",
	                (double)atomic_load_explicit(&G.lost, memory_order_relaxed), NULL);
	promtext_family(f, "cradle_dashboard_ingest_batches_total", "counter",
	                "Store transactions committed by ingest.");
	promtext_sample_u64(f, "cradle_dashboard_ingest_batches_total", get(&G.batches), NULL);
	promtext_family(f, "cradle_dashboard_ingest_deferred_total", "counter",
	                "Times the broker was asked to redeliver later (ingest too far behind).");
	promtext_sample_u64(f, "cradle_dashboard_ingest_deferred_total", get(&G.deferred), NULL);
	promtext_family(f, "cradle_dashboard_broker_connected", "gauge",
	                "1 while ingest is connected to the broker.");
	promtext_sample(f, "cradle_dashboard_broker_connected",
	                atomic_load_explicit(&G.connected, memory_order_relaxed) ? 1 : 0, NULL);
	promtext_family(f, "cradle_dashboard_ingest_lag_seconds", "histogram",
	                "Per batch: from the arrival of its first message to its commit.");
	promtext_hist_write(f, "cradle_dashboard_ingest_lag_seconds", &G.lag, NULL);
	promtext_family(f, "cradle_dashboard_ingest_last_lag_seconds", "gauge",
	                "The last batch's lag (arrival of its first message to its commit).");
	promtext_sample(f, "cradle_dashboard_ingest_last_lag_seconds",
	                (double)get(&G.last_lag_micro) / 1e6, NULL);

	promtext_family(f, "cradle_dashboard_http_requests_total", "counter",
	                "Responses of the web UI and API, by status code.");
	for (unsigned i = 100; i < HTTP_CODES; i++) {
		uint64_t n = get(&G.http_codes[i]);

		if (!n)
			continue;
		snprintf(code, sizeof(code), "%u", i);
		promtext_sample_u64(f, "cradle_dashboard_http_requests_total", n, "code", code,
		                    NULL);
	}
	promtext_family(f, "cradle_dashboard_http_request_duration_seconds", "histogram",
	                "Time from a request's arrival to its response being queued (a live "
	                "stream: to its start).");
	promtext_hist_write(f, "cradle_dashboard_http_request_duration_seconds", &G.http, NULL);
}

struct site_ctx {
	FILE *f;
};

static void site_row(void *ctx, const char *site, const int64_t count[_JUDGE_STATUS_MAX])
{
	struct site_ctx *c = ctx;

	for (int i = 0; i < _JUDGE_STATUS_MAX; i++)
		promtext_sample(c->f, "cradle_dashboard_phones", (double)count[i], "site", site,
		                "status", judge_status_name((enum judge_status)i), NULL);
}

/* SELECT name, COUNT(*) ... GROUP BY name: counts[i] for names[i] (others ignored) */
static int group_counts(struct store *s, const char *sql, const char *const *names, size_t n,
                        int64_t *counts)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO, rc;

	if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(st, 0);

		for (size_t i = 0; name && i < n; i++)
			if (strcmp(names[i], name) == 0)
				counts[i] += sqlite3_column_int64(st, 1);
	}
	if (rc == SQLITE_DONE)
		r = 0;
out:
	if (r < 0)
		log_warn("metrics: %s", sqlite3_errmsg(store_db(s)));
	sqlite3_finalize(st);
	return r;
}

/* the store's gauges */
static int render_store(struct store *s, const struct dash_config *cfg, int64_t now, FILE *f)
{
	const char *rules[_ALERTS_RULE_MAX], *states[_JOBS_EXEC_MAX];
	static const char *const presence[] = { "online", "offline", "lost" };
	int64_t n_rules[_ALERTS_RULE_MAX] = { 0 }, n_states[_JOBS_EXEC_MAX] = { 0 };
	int64_t n_presence[ARRAY_SIZE(presence)] = { 0 };
	struct site_ctx sc = { f };
	int r;

	(void)cfg;
	promtext_family(f, "cradle_dashboard_phones", "gauge",
	                "Phones known, by site and the dashboard's status (ok, stale, unknown, "
	                "missing) at scrape time.");
	r = query_site_status(s, now, site_row, &sc);
	if (r < 0)
		return r;
	for (int i = 0; i < _ALERTS_RULE_MAX; i++)
		rules[i] = alerts_rule_name((enum alerts_rule)i);
	r = group_counts(s,
	                 "SELECT rule, COUNT(*) FROM alerts WHERE state = 'firing' GROUP BY rule",
	                 rules, _ALERTS_RULE_MAX, n_rules);
	if (r < 0)
		return r;
	promtext_family(f, "cradle_dashboard_alerts_firing", "gauge",
	                "Alerts firing now, by rule (silenced ones included).");
	for (int i = 0; i < _ALERTS_RULE_MAX; i++)
		promtext_sample(f, "cradle_dashboard_alerts_firing", (double)n_rules[i], "rule",
		                rules[i], NULL);
	for (int i = 0; i < _JOBS_EXEC_MAX; i++)
		states[i] = jobs_exec_state_name((enum jobs_exec_state)i);
	r = group_counts(s, "SELECT state, COUNT(*) FROM job_executions GROUP BY state", states,
	                 _JOBS_EXEC_MAX, n_states);
	if (r < 0)
		return r;
	promtext_family(f, "cradle_dashboard_job_executions", "gauge",
	                "Executions of bulk jobs (one per job and phone) kept in the store, by "
	                "state.");
	for (int i = 0; i < _JOBS_EXEC_MAX; i++)
		promtext_sample(f, "cradle_dashboard_job_executions", (double)n_states[i], "state",
		                states[i], NULL);
	r = group_counts(s, "SELECT presence, COUNT(*) FROM agents GROUP BY presence", presence,
	                 ARRAY_SIZE(presence), n_presence);
	if (r < 0)
		return r;
	promtext_family(f, "cradle_dashboard_agents", "gauge", "Agents known, by presence.");
	for (size_t i = 0; i < ARRAY_SIZE(presence); i++)
		promtext_sample(f, "cradle_dashboard_agents", (double)n_presence[i], "presence",
		                presence[i], NULL);
	return 0;
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* the counters, then store_text (the store's gauges, rendered before) and the scrape's time */
static int render_page(const char *store_text, size_t store_len, double store_s, char **ret,
                       size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int r = 0;

	if (!f)
		return -ENOMEM;
	render_counters(f);
	fwrite(store_text, 1, store_len, f);
	promtext_family(f, "cradle_dashboard_metrics_store_seconds", "gauge",
	                "Time the last reading of the store's gauges took.");
	promtext_sample(f, "cradle_dashboard_metrics_store_seconds", store_s, NULL);
	if (ferror(f))
		r = -ENOMEM;
	if (fclose(f) != 0)
		r = -ENOMEM;
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

static int render_store_text(struct store *s, const struct dash_config *cfg, int64_t now,
                             char **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int r;

	if (!f)
		return -ENOMEM;
	r = render_store(s, cfg, now, f);
	if (ferror(f))
		r = -ENOMEM;
	if (fclose(f) != 0 && r == 0)
		r = -ENOMEM;
	if (r < 0) {
		free(buf);
		return r;
	}
	*ret = buf;
	*ret_len = len;
	return 0;
}

int metrics_render(struct store *s, const struct dash_config *cfg, int64_t now, char **ret,
                   size_t *ret_len)
{
	char *text = NULL;
	size_t len = 0;
	int64_t t0 = mono_us();
	int r;

	r = render_store_text(s, cfg, now, &text, &len);
	if (r == 0)
		r = render_page(text, len, (double)(mono_us() - t0) / 1e6, ret, ret_len);
	free(text);
	return r;
}

/* ---- the listener ---- */

struct metrics {
	const struct dash_config *cfg;
	struct MHD_Daemon *d;
	struct store *store; /* opened at the first scrape; the listener's thread only */
	char *cached;        /* the store's gauges ... */
	size_t cached_len;
	int64_t cached_at_us; /* ... read then (monotonic) */
	double cached_s;      /* and the time it took */
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, char *body, size_t len,
                             const char *type)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result ret;

	if (!r) {
		free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	MHD_add_response_header(r, "Cache-Control", "no-store");
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	if (status == 405)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *msg)
{
	char *body = strdup(msg);

	return body ? reply(conn, status, body, strlen(body), "text/plain; charset=utf-8") : MHD_NO;
}

/* the store's gauges, read again when the cache is older than METRICS_STORE_CACHE_MS */
static int refresh(struct metrics *m)
{
	char err[256], *text = NULL;
	size_t len = 0;
	int64_t t0 = mono_us();
	int r;

	if (m->cached && t0 - m->cached_at_us < METRICS_STORE_CACHE_MS * 1000)
		return 0;
	if (!m->store) {
		r = store_open(m->cfg->db, m->cfg, &m->store, err, sizeof(err));
		if (r < 0) {
			log_warn("metrics: %s", err);
			return r;
		}
	}
	r = render_store_text(m->store, m->cfg, wall_now_ms() / 1000, &text, &len);
	if (r < 0)
		return r;
	free(m->cached);
	m->cached = text;
	m->cached_len = len;
	m->cached_at_us = mono_us();
	m->cached_s = (double)(m->cached_at_us - t0) / 1e6;
	return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct metrics *m = cls;
	char *page = NULL;
	size_t len = 0;

	(void)version;
	(void)upload_data;
	if (!*con_cls) { /* headers only: answer once the request is complete */
		*con_cls = m;
		return MHD_YES;
	}
	if (*upload_data_size) { /* a body is never wanted: read and dropped */
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (strcmp(url, "/metrics") != 0)
		return reply_text(conn, 404, "not found: this listener serves /metrics only\n");
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply_text(conn, 405, "method not allowed: GET /metrics\n");
	if (refresh(m) < 0 || render_page(m->cached, m->cached_len, m->cached_s, &page, &len) < 0)
		return reply_text(conn, 503, "the store cannot be read; see the dashboard's log\n");
	return reply(conn, 200, page, len, "text/plain; version=0.0.4; charset=utf-8");
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	log_warn("metrics: %s", line);
}

int metrics_start(const struct dash_config *cfg, struct metrics **ret)
{
	struct sockaddr_storage ss = { 0 };
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_POLL;
	struct metrics *m = NULL;
	int r;

	*ret = NULL;
	atomic_store(&G.start_s, (long long)(wall_now_ms() / 1000));
	if (!cfg->metrics_listen[0])
		return 0;
	r = http_listen_addr(cfg->metrics_listen, &ss);
	if (r < 0) {
		log_error(
		        "metrics: cannot listen on '%s': not ADDR:PORT, or the address is unknown",
		        cfg->metrics_listen);
		return r;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	m = calloc(1, sizeof(*m));
	if (!m)
		return log_error_errno(-ENOMEM, "metrics");
	m->cfg = cfg;
	m->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER,
	                        mhd_log, m, MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_CONNECTION_LIMIT,
	                        (unsigned)METRICS_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
	                        (unsigned)METRICS_TIMEOUT_S, MHD_OPTION_END);
	if (!m->d) {
		log_error("metrics: cannot serve on %s (address in use or not local)",
		          cfg->metrics_listen);
		free(m);
		return -EADDRINUSE;
	}
	log_info("metrics: serving http://%s/metrics", cfg->metrics_listen);
	*ret = m;
	return 0;
}

struct metrics *metrics_stop(struct metrics *m)
{
	if (!m)
		return NULL;
	if (m->d)
		MHD_stop_daemon(m->d);
	store_close(m->store);
	free(m->cached);
	free(m);
	return NULL;
}
