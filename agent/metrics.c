/* SPDX-License-Identifier: MIT */
/*
 * metrics: see metrics.h. The page is written into memory with common/promtext.h, then put in
 * place with common/durable.h's replacement (the temp file is "<file>.tmp": node_exporter's
 * collector reads only *.prom, so it never picks up the temp file either).
 */
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "durable.h"
#include "log.h"
#include "loop.h"
#include "macro.h"
#include "promtext.h"
#include "version.h"

/* seconds: a probe is one lockdown session, seconds at most unless it times out (30 s) */
static const double probe_bounds[] = { 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60 };

struct metrics {
	const char *path;
	int64_t started_at;
	uint64_t probes[_FACTS_PROBE_MAX];
	struct promtext_hist probe_s;
	uint64_t results[_COMMAND_STATUS_MAX];
	uint64_t write_failures;
	uint64_t logged_ms; /* monotonic: the last failure logged (0 = none since the last success)
	                     */
	uint64_t unlogged;  /* failures since */
};

struct metrics *metrics_new(const char *path, int64_t started_at)
{
	struct metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->path = path;
	m->started_at = started_at;
	promtext_hist_init(&m->probe_s, probe_bounds, ARRAY_SIZE(probe_bounds));
	return m;
}

struct metrics *metrics_free(struct metrics *m)
{
	free(m);
	return NULL;
}

void metrics_probe(struct metrics *m, enum facts_probe outcome, int64_t duration_ms)
{
	if (!m || (unsigned)outcome >= _FACTS_PROBE_MAX)
		return;
	m->probes[outcome]++;
	promtext_hist_observe(&m->probe_s, (double)duration_ms / 1000.0);
}

void metrics_command(struct metrics *m, enum command_status status)
{
	if (m && (unsigned)status < _COMMAND_STATUS_MAX)
		m->results[status]++;
}

static void render(const struct metrics *m, const struct metrics_gauges *g, FILE *f)
{
	struct rusage ru;

	promtext_family(f, "cradle_agent_build_info", "gauge", "The agent's version (always 1).");
	promtext_sample(f, "cradle_agent_build_info", 1, "version", CRADLE_VERSION, NULL);
	promtext_family(f, "cradle_agent_start_time_seconds", "gauge",
	                "When the agent started (Unix time).");
	promtext_sample(f, "cradle_agent_start_time_seconds", (double)m->started_at, NULL);
	promtext_process(f, "cradle_agent_process_");
	if (getrusage(RUSAGE_CHILDREN, &ru) == 0) {
		promtext_family(f, "cradle_agent_helpers_cpu_seconds_total", "counter",
		                "CPU time used by the agent's helpers that have ended (probes, "
		                "actions, the evidence capture).");
		promtext_sample(f, "cradle_agent_helpers_cpu_seconds_total",
		                (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		                        (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
		                NULL);
	}
	promtext_family(f, "cradle_agent_phones_attached", "gauge",
	                "Phones attached to this station now.");
	promtext_sample(f, "cradle_agent_phones_attached", g->phones_attached, NULL);
	promtext_family(f, "cradle_agent_phones_known", "gauge",
	                "Phones seen since the agent started, attached or not.");
	promtext_sample(f, "cradle_agent_phones_known", g->phones_known, NULL);
	promtext_family(f, "cradle_agent_probes_total", "counter",
	                "Probes of a phone (one lockdown session each), by outcome.");
	for (int i = 0; i < _FACTS_PROBE_MAX; i++)
		promtext_sample_u64(f, "cradle_agent_probes_total", m->probes[i], "outcome",
		                    facts_probe_name((enum facts_probe)i), NULL);
	promtext_family(f, "cradle_agent_probe_duration_seconds", "histogram",
	                "How long a probe's helper ran.");
	promtext_hist_write(f, "cradle_agent_probe_duration_seconds", &m->probe_s, NULL);
	promtext_family(f, "cradle_agent_outbox_records", "gauge",
	                "Messages in the outbox waiting for the broker's acknowledgement.");
	promtext_sample_u64(f, "cradle_agent_outbox_records", g->outbox_records, NULL);
	promtext_family(f, "cradle_agent_outbox_bytes", "gauge", "Bytes of those messages.");
	promtext_sample_u64(f, "cradle_agent_outbox_bytes", g->outbox_bytes, NULL);
	promtext_family(f, "cradle_agent_outbox_dropped_total", "counter",
	                "Events dropped by the outbox's overflow policy (outbox full).");
	promtext_sample_u64(f, "cradle_agent_outbox_dropped_total", g->outbox_dropped, NULL);
	promtext_family(f, "cradle_agent_outbox_write_failures_total", "counter",
	                "Messages the outbox could not write (full disk, I/O error).");
	promtext_sample_u64(f, "cradle_agent_outbox_write_failures_total", g->outbox_write_failures,
	                    NULL);
	promtext_family(f, "cradle_agent_broker_connected", "gauge",
	                "1 while the agent is connected to the broker.");
	promtext_sample(f, "cradle_agent_broker_connected", g->broker_connected ? 1 : 0, NULL);
	promtext_family(f, "cradle_agent_messages_acked_total", "counter",
	                "Outbox messages the broker acknowledged.");
	promtext_sample_u64(f, "cradle_agent_messages_acked_total", g->messages_acked, NULL);
	promtext_family(f, "cradle_agent_command_results_total", "counter",
	                "Command results sent, by status (one command passes through several).");
	for (int i = 0; i < _COMMAND_STATUS_MAX; i++)
		promtext_sample_u64(f, "cradle_agent_command_results_total", m->results[i],
		                    "status", command_status_str((enum command_status)i), NULL);
	promtext_family(f, "cradle_agent_commands_shed_total", "counter",
	                "Commands over the intake or answer budget: dropped without a result.");
	promtext_sample_u64(f, "cradle_agent_commands_shed_total", g->commands_shed, NULL);
	promtext_family(f, "cradle_agent_metrics_write_failures_total", "counter",
	                "Writes of this file that failed (missing directory, full disk).");
	promtext_sample_u64(f, "cradle_agent_metrics_write_failures_total", m->write_failures,
	                    NULL);
}

static int replace(const char *path, const char *buf, size_t len)
{
	struct durable_file df;
	int r;

	r = durable_file_open(&df, path, 0644);
	if (r < 0)
		return r;
	r = durable_pwrite_all(df.fd, buf, len, 0);
	/* the collector runs as another user: readable whatever the umask (systemd's is 0022,
	 * a hardened unit's may be 0077) */
	if (r == 0 && fchmod(df.fd, 0644) < 0)
		r = -errno;
	if (r == 0)
		r = durable_file_commit(&df);
	if (r < 0 && df.committed)
		r = 0; /* in place; only the directory's fsync failed */
	durable_file_close(&df);
	return r;
}

int metrics_write(struct metrics *m, const struct metrics_gauges *g)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	uint64_t now;
	int r = 0;

	if (!m || !m->path[0])
		return 0;
	f = open_memstream(&buf, &len);
	if (!f)
		r = -ENOMEM;
	if (f) {
		render(m, g, f);
		if (ferror(f))
			r = -ENOMEM;
		if (fclose(f) != 0 && r == 0)
			r = -ENOMEM;
	}
	if (r == 0)
		r = replace(m->path, buf, len);
	free(buf);
	now = loop_now_ms();
	if (r == 0) {
		if (m->logged_ms)
			log_info("metrics: '%s' written again", m->path);
		m->logged_ms = 0;
		m->unlogged = 0;
		return 0;
	}
	m->write_failures++;
	if (m->logged_ms && now - m->logged_ms < METRICS_LOG_EVERY_MS) {
		m->unlogged++;
		return r;
	}
	if (m->unlogged)
		log_warn_errno(r,
		               "metrics: cannot write '%s' (and %llu times since the last message)",
		               m->path, (unsigned long long)m->unlogged);
	else
		log_warn_errno(r, "metrics: cannot write '%s'; the agent goes on without", m->path);
	m->logged_ms = now ? now : 1;
	m->unlogged = 0;
	return r;
}
