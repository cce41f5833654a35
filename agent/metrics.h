/* SPDX-License-Identifier: MIT */
/*
 * metrics: the agent's numbers for Prometheus, written as node_exporter's textfile format
 * (Prometheus text exposition format 0.0.4) to metrics_file. The agent listens on no port of
 * its own: node_exporter's textfile collector serves the file. The names and their meaning are
 * in agent/README.md ("Metrics").
 *
 * The counters (probes, command results, failed writes) are kept here, fed by the daemon as
 * things happen; the gauges (phones attached, outbox, broker) are the daemon's, passed to
 * metrics_write(). A write replaces the file atomically (<file>.tmp, fsync, rename, mode 0644):
 * a reader sees the old file or the new one, never a part. A failed write (missing directory,
 * full disk) is counted and logged at most every METRICS_LOG_EVERY_MS; it never stops the agent.
 *
 * Threading: loop thread only.
 */
#ifndef CRADLE_METRICS_H
#define CRADLE_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "command.h"
#include "facts.h"

#define METRICS_LOG_EVERY_MS (10 * 60 * 1000)

struct metrics;

/* What the daemon knows at the time of a write. */
struct metrics_gauges {
	unsigned phones_attached;
	unsigned phones_known;
	uint64_t outbox_records, outbox_bytes; /* waiting for the broker */
	uint64_t outbox_dropped;               /* events dropped by the overflow policy */
	uint64_t outbox_write_failures;
	bool broker_connected;
	uint64_t messages_acked; /* outbox records the broker acknowledged */
	uint64_t commands_shed;  /* over the intake or answer budget (cmd_stats) */
};

/* path borrowed (must outlive m); started_at: Unix s. NULL on allocation failure. */
struct metrics *metrics_new(const char *path, int64_t started_at);
/* NULL-safe; returns NULL. */
struct metrics *metrics_free(struct metrics *m);

/* A probe ended with outcome after duration_ms. */
void metrics_probe(struct metrics *m, enum facts_probe outcome, int64_t duration_ms);
/* A command result with status was published (or queued for the broker). */
void metrics_command(struct metrics *m, enum command_status status);

/* Replaces the file. 0 or -errno (counted, logged at a bounded rate). */
int metrics_write(struct metrics *m, const struct metrics_gauges *g);

#endif
