/* SPDX-License-Identifier: MIT */
/*
 * promtext: the Prometheus text exposition format (version 0.0.4), as the dashboard serves it
 * on /metrics and the agent writes it for node_exporter's textfile collector. A family is its
 * `# HELP` and `# TYPE` lines followed by its samples; label values and help text are escaped
 * (backslash, double quote in labels, newline), so any string is safe to pass.
 *
 * Histograms keep per-bucket counts in atomics: promtext_hist_observe() may run on any thread
 * while another writes them out (a scrape sees each bucket's value at some instant; _count is
 * written as the +Inf bucket, so the two always agree).
 */
#ifndef CRADLE_PROMTEXT_H
#define CRADLE_PROMTEXT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PROMTEXT_BUCKETS_MAX 16

/* # HELP name help / # TYPE name type ("counter", "gauge", "histogram"). */
void promtext_family(FILE *f, const char *name, const char *type, const char *help);

/*
 * One sample: name{l1="v1",...} value. The labels are name/value pairs ending with NULL (none:
 * just NULL). Integers exactly, other values in the shortest form that reads back the same (+Inf,
 * -Inf, NaN).
 */
void promtext_sample(FILE *f, const char *name, double value, ...) __attribute__((sentinel));
void promtext_sample_u64(FILE *f, const char *name, uint64_t value, ...) __attribute__((sentinel));

/* A histogram: upper bounds ascending (at most PROMTEXT_BUCKETS_MAX; +Inf is implied). */
struct promtext_hist {
	const double *bounds;
	size_t n;
	atomic_uint_fast64_t count[PROMTEXT_BUCKETS_MAX + 1]; /* per bucket, not cumulative */
	atomic_uint_fast64_t sum_micro;                       /* sum of the values * 1e6 */
};

/* A histogram of static storage over a static array of bounds: no promtext_hist_init(). */
#define PROMTEXT_HIST_INIT(b)                    \
 {                                               \
  .bounds = (b), .n = sizeof(b) / sizeof((b)[0]) \
 }

/* bounds borrowed (a static array): must outlive h. */
void promtext_hist_init(struct promtext_hist *h, const double *bounds, size_t n);
/* Thread-safe. Negative values count as 0. */
void promtext_hist_observe(struct promtext_hist *h, double v);
/*
 * name_bucket{labels...,le="B"} for every bound and +Inf (cumulative), name_sum and
 * name_count; labels as promtext_sample()'s, NULL-terminated. The family lines are the
 * caller's (once per name, however many label sets).
 */
void promtext_hist_write(FILE *f, const char *name, const struct promtext_hist *h, ...)
        __attribute__((sentinel));

/*
 * The process's own basics as gauges/counters named <prefix>cpu_seconds_total (user + system,
 * every thread), <prefix>resident_memory_bytes and <prefix>open_fds, read from getrusage(2)
 * and /proc/self at the call: a few system calls. prefix "process_" gives Prometheus' usual
 * names (for a program's own /metrics; never in a textfile, where node_exporter's own
 * process_* would clash).
 */
void promtext_process(FILE *f, const char *prefix);

#endif
