/* SPDX-License-Identifier: MIT */
/*
 * probe: runs cradle-agent-probe helpers for the agent process, a bounded number at a time.
 *
 * Each request becomes one helper process (posix_spawn, argv array, no shell; via
 * common/child.c) with a deadline: SIGTERM at the deadline, SIGKILL CHILD_KILL_GRACE_MS later.
 * Its stdout (one facts JSON line, capped at FACTS_JSON_MAX) is parsed strictly by
 * facts_from_json(). Every request ends in exactly one done() call with complete facts:
 * a killed, crashed or garbled helper yields probe "timeout" or "error", never silence.
 *
 * Requests for a UDID already queued or running are coalesced (one result serves both). The
 * queue is bounded (queue_max); past it probe_request() fails with -ENOBUFS and the caller
 * tries again on its next interval.
 *
 * Threading: loop thread only. Ownership: the scheduler owns its helpers; see
 * probe_sched_free() for shutdown.
 */
#ifndef CRADLE_PROBE_H
#define CRADLE_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "facts.h"

struct loop;
struct probe_sched;

struct probe_config {
	const char *helper; /* path of cradle-agent-probe (borrowed, must outlive the scheduler) */
	unsigned concurrency; /* helpers at once, >= 1 (config probe_concurrency) */
	uint64_t
	        timeout_ms; /* per-probe deadline, > 0 (config probe_timeout); syslog_ms is added */
	int syslog_ms;      /* 0 = no syslog_relay sampling */
	unsigned queue_max; /* waiting requests; 0 = 1024 */
};

/* facts is borrowed for the call. Runs on the loop thread, never from inside probe_request(). */
typedef void (*probe_done_fn)(const struct device_facts *facts, void *data);

/* NULL on allocation failure or a bad config. cfg is copied (helper stays borrowed). */
struct probe_sched *probe_sched_new(struct loop *loop, const struct probe_config *cfg,
                                    probe_done_fn done, void *data);

/*
 * Queues a probe of udid. 0 (queued, or coalesced with a queued/running one), -EINVAL (bad
 * udid), -ENOBUFS (queue full), -ENOMEM. The helper starts from the loop, not from inside.
 */
int probe_request(struct probe_sched *s, const char *udid);

unsigned probe_running(const struct probe_sched *s);
/* Nothing queued and nothing running (--once and shutdown wait for this). */
bool probe_idle(const struct probe_sched *s);

/*
 * Shutdown, step 1: drops the queue, SIGTERMs running helpers (SIGKILL after the grace) and
 * suppresses all further done() calls. Run the loop until probe_idle() (at most
 * CHILD_KILL_GRACE_MS) so every helper is reaped, then probe_sched_free().
 */
void probe_sched_stop(struct probe_sched *s);

/*
 * Stops (if not yet) and frees. If helpers still run, the memory is released by the loop when
 * the last one has been reaped (so freeing early is safe, only not tidy). NULL-safe; NULL.
 */
struct probe_sched *probe_sched_free(struct probe_sched *s);

#endif
