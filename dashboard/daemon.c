/* SPDX-License-Identifier: MIT */
/*
 * daemon: wires the modules together on one loop (daemon.h). Start order: store (writer),
 * hub, ingest, command sender, HTTP, metrics; stop order: ingest (its last batch committed),
 * HTTP, metrics, the command sender, the hub, the store.
 */
#include "daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "cmdsend.h"
#include "config.h"
#include "http.h"
#include "hub.h"
#include "ingest.h"
#include "jobs.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "notify.h"
#include "sdnotify.h"
#include "store.h"
#include "version.h"

#define DAEMON_HUB_RING          8192 /* notices kept for SSE readers */
#define DAEMON_ALERT_COALESCE_MS 5000 /* alert pass after ingest news, at most this often */
/* the search index (store_search_index): phones indexed per tick while ingest is busy (more
 * than DAEMON_SEARCH_QUIET messages since the last tick) and while it is quiet */
#define DAEMON_SEARCH_MS       250
#define DAEMON_SEARCH_AGAIN_MS 20 /* quiet, more pending: the next chunk this soon */
#define DAEMON_SEARCH_QUIET    100
#define DAEMON_SEARCH_TRICKLE  100
#define DAEMON_SEARCH_CHUNK    2000

struct daemon {
	const struct dash_config *cfg;
	struct loop *loop;
	struct store *store;
	struct hub *hub;
	struct ingest *ingest;
	struct cmdsend *cmdsend;
	struct jobs *jobs;
	struct http *http;
	struct metrics *metrics;
	struct http_services svc;
	uint64_t retention_timer, sample_timer, search_timer;
	uint64_t search_messages; /* ingest's message count at the last search tick */
	struct alerts *alerts;
	uint64_t alert_timer, alert_seq;
	int64_t alert_last_ms;
	struct notify *notify;
	struct sdnotify *sd; /* the service manager, NULL without one */
};

static void on_signal(struct loop *loop, int signo, void *data)
{
	(void)data;
	log_info("%s: stopping", strsignal(signo));
	loop_stop(loop);
}

static void retention(struct daemon *d)
{
	int64_t before = wall_now_ms() - (int64_t)d->cfg->history_days * 86400 * 1000;
	int64_t n = 0;

	/* its own transaction: commit what ingest holds first */
	(void)ingest_flush(d->ingest);
	if (store_retention(d->store, before, &n) == 0 && n > 0)
		log_info("retention: %" PRId64 " history rows older than %u days deleted", n,
		         d->cfg->history_days);
}

static void retention_fired(struct loop *loop, uint64_t id, void *data)
{
	struct daemon *d = data;

	(void)id;
	retention(d);
	d->retention_timer = loop_add_timer(loop, DAEMON_RETENTION_MS, retention_fired, d);
}

static void sample_fired(struct loop *loop, uint64_t id, void *data)
{
	struct daemon *d = data;

	(void)id;
	(void)ingest_flush(d->ingest);
	if (store_sample(d->store, wall_now_ms() / 1000) == 0 && d->hub)
		hub_publish(d->hub, HUB_SUMMARY, "");
	d->sample_timer = loop_add_timer(loop, DAEMON_SAMPLE_MS, sample_fired, d);
}

/*
 * New phones wait in devices_fts_pending (store_schema.c, migration 6) and the search reads
 * them as the plain scan did. Indexing costs about as much as ingesting: during a burst only a
 * trickle, so ingest keeps its pace; once messages slow down, chunks back to back (each about
 * 100 ms of work on this loop).
 */
static void search_fired(struct loop *loop, uint64_t id, void *data)
{
	struct daemon *d = data;
	struct ingest_stats st = { 0 };
	int64_t left = 0;
	bool quiet;

	(void)id;
	ingest_get_stats(d->ingest, &st);
	quiet = st.messages - d->search_messages < DAEMON_SEARCH_QUIET;
	d->search_messages = st.messages;
	(void)ingest_flush(d->ingest); /* its own transaction */
	if (store_search_index(d->store, quiet ? DAEMON_SEARCH_CHUNK : DAEMON_SEARCH_TRICKLE,
	                       &left) < 0)
		left = 0;
	d->search_timer =
	        loop_add_timer(loop, quiet && left > 0 ? DAEMON_SEARCH_AGAIN_MS : DAEMON_SEARCH_MS,
	                       search_fired, d);
}

/* The line `systemctl status` shows (sent when it changes): the listener, the broker, ingest. */
static void show_status(struct daemon *d)
{
	struct ingest_stats st = { 0 };

	ingest_get_stats(d->ingest, &st);
	sdnotify_status(d->sd, "serving %s%s; broker %s %s; %" PRIu64 " messages ingested",
	                d->cfg->tls_cert[0] ? "https://" : "http://", d->cfg->http_listen,
	                d->cfg->broker_url, st.connected ? "connected" : "unreachable",
	                st.messages);
}

/* alerts: a pass every alert_interval, and one within DAEMON_ALERT_COALESCE_MS of what ingest
 * committed (the hub's sequence moved), so a burst of batches costs one pass */
static void alert_fired(struct loop *loop, uint64_t id, void *data)
{
	struct daemon *d = data;
	int64_t interval_ms = d->cfg->alert_interval_s * 1000, now_ms = wall_now_ms();
	uint64_t seq;

	(void)id;
	show_status(d); /* every few seconds: often enough for a status line */
	(void)ingest_flush(d->ingest);
	seq = hub_next_seq(d->hub);
	if (seq != d->alert_seq || now_ms - d->alert_last_ms >= interval_ms) {
		(void)alerts_evaluate(d->alerts, now_ms / 1000, NULL);
		d->alert_last_ms = now_ms;
		d->alert_seq = hub_next_seq(d->hub); /* its own notices are not news */
	}
	d->alert_timer = loop_add_timer(
	        loop,
	        interval_ms < DAEMON_ALERT_COALESCE_MS ? interval_ms : DAEMON_ALERT_COALESCE_MS,
	        alert_fired, d);
}

static int start(struct daemon *d)
{
	char err[512];
	int r;

	d->loop = loop_new();
	if (!d->loop)
		return -ENOMEM;
	signal(SIGPIPE, SIG_IGN);
	if (loop_add_signal(d->loop, SIGTERM, on_signal, d) < 0 ||
	    loop_add_signal(d->loop, SIGINT, on_signal, d) < 0)
		return log_error_errno(-EIO, "cannot watch signals");
	r = store_open(d->cfg->db, d->cfg, &d->store, err, sizeof(err));
	if (r < 0)
		return log_error_errno(r, "%s", err);
	d->hub = hub_new(DAEMON_HUB_RING);
	if (!d->hub)
		return -ENOMEM;
	r = ingest_new(d->loop, d->store, d->hub, d->cfg, &d->ingest);
	if (r < 0)
		return r;
	r = ingest_start(d->ingest);
	if (r < 0)
		return r;
	r = cmdsend_new(d->loop, d->cfg, &d->cmdsend);
	if (r == -ENOSYS)
		log_warn("commands: not available in this build");
	else if (r < 0)
		log_warn_errno(r, "commands: cannot start; commands are refused until a restart");
	r = jobs_new(d->loop, d->store, d->ingest, d->hub, d->cmdsend, d->cfg, &d->jobs);
	if (r < 0)
		return log_error_errno(r, "jobs: cannot start the engine");
	d->svc.cfg = d->cfg;
	d->svc.db_path = d->cfg->db;
	d->svc.hub = d->hub;
	d->svc.cmdsend = d->cmdsend;
	r = http_start(&d->svc, &d->http);
	if (r == -ENOSYS)
		log_warn("http: not available in this build; ingest only");
	else if (r < 0)
		return r; /* logged; e.g. the port is taken: a service that cannot serve must say so
		           */
	r = metrics_start(d->cfg, &d->metrics);
	if (r < 0)
		return r; /* logged: a scraper would see the target down, the admin must know */
	r = notify_start(d->cfg, &d->notify); /* before alerts: they queue for its receivers */
	if (r < 0)
		return r;
	r = alerts_new(d->store, d->hub, d->cfg, &d->alerts);
	if (r < 0)
		return log_error_errno(r, "alerts: cannot start");
	d->alert_timer = loop_add_timer(d->loop, 1000, alert_fired, d);
	d->retention_timer = loop_add_timer(d->loop, 60 * 1000, retention_fired, d);
	d->sample_timer = loop_add_timer(d->loop, 10 * 1000, sample_fired, d);
	d->search_timer = loop_add_timer(d->loop, DAEMON_SEARCH_MS, search_fired, d);
	log_notice("cradle-dashboard " CRADLE_VERSION " running: broker %s, http %s%s, db %s",
	           d->cfg->broker_url, d->cfg->tls_cert[0] ? "https://" : "http://",
	           d->cfg->http_listen, d->cfg->db);
	/* READY=1 from the loop's first turn: the database is open and the HTTP listener bound
	 * (http_start() fails when it cannot bind); the broker may still be connecting */
	snprintf(err, sizeof(err), "serving %s%s; broker %s connecting",
	         d->cfg->tls_cert[0] ? "https://" : "http://", d->cfg->http_listen,
	         d->cfg->broker_url);
	r = sdnotify_new(d->loop, err, &d->sd);
	if (r < 0)
		return log_error_errno(r, "cannot set up service notifications");
	return 0;
}

static void stop(struct daemon *d)
{
	struct ingest_stats st = { 0 };

	sdnotify_stopping(d->sd, "stopping: committing the last batch");
	d->notify = notify_stop(d->notify); /* an attempt in flight stays queued */
	if (d->ingest) {
		ingest_stop(d->ingest); /* stores what Paho delivered, commits the batch */
		ingest_get_stats(d->ingest, &st);
	}
	if (d->hub)
		hub_shutdown(d->hub); /* ends the SSE streams */
	d->http = http_stop(d->http);
	d->metrics = metrics_stop(d->metrics);
	d->jobs = jobs_free(d->jobs);
	d->cmdsend = cmdsend_free(d->cmdsend);
	d->ingest = ingest_free(d->ingest);
	if (d->loop && d->retention_timer)
		loop_cancel_timer(d->loop, d->retention_timer);
	if (d->loop && d->sample_timer)
		loop_cancel_timer(d->loop, d->sample_timer);
	if (d->loop && d->alert_timer)
		loop_cancel_timer(d->loop, d->alert_timer);
	if (d->loop && d->search_timer)
		loop_cancel_timer(d->loop, d->search_timer);
	d->alerts = alerts_free(d->alerts);
	d->hub = hub_free(d->hub);
	d->store = store_close(d->store);
	d->sd = sdnotify_free(d->sd);
	d->loop = loop_free(d->loop);
	log_info("stopped: %" PRIu64 " messages, %" PRIu64 " malformed, %" PRIu64
	         " duplicates, %" PRId64 " lost, %" PRIu64 " batches",
	         st.messages, st.malformed, st.duplicates, st.lost, st.batches);
}

int daemon_run(const struct dash_config *cfg)
{
	struct daemon d = { .cfg = cfg };
	int r;

	r = start(&d);
	if (r == 0)
		r = loop_run(d.loop);
	stop(&d);
	return r;
}
