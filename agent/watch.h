/* SPDX-License-Identifier: MIT */
/*
 * watch: the daemon's side of the evidence capture. Runs cradle-agent-watch (one helper for
 * all phones, restarted with a backoff when it ends), keeps per phone a ring of the newest
 * WATCH_RING backup lines with their times and whether its stream is up, and calls changed()
 * (debounced) when the phone posts com.apple.mobile.backup.domain_changed or a new line
 * arrives, so the owner re-probes at once instead of at the next interval.
 *
 * The ring lives in memory only and holds nothing but lines the helper let through (backup
 * processes). A phone's ring survives an unplug: it is cleared when the phone's stream comes
 * up again after a detach (the next docking), or dropped ring_expiry_s after the detach.
 *
 * Threading: loop thread only.
 */
#ifndef CRADLE_WATCH_H
#define CRADLE_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "facts.h"

#define WATCH_RING FACTS_RING_MAX

struct loop;
struct watch;

struct watch_config {
	const char *helper;    /* cradle-agent-watch (borrowed) */
	int rescan_ms;         /* the helper's --rescan-ms; 0 = its default */
	uint64_t debounce_ms;  /* changed() at most once per this per phone; 0 = 2000 */
	int64_t ring_expiry_s; /* a detached phone's ring is dropped after this; 0 = 24 h */
};

/* udid borrowed for the call. probe: the phone's values changed (domain_changed). */
typedef void (*watch_changed_fn)(const char *udid, bool probe, void *data);

/* Starts the helper. NULL on a bad config or allocation failure. cfg copied, helper borrowed. */
struct watch *watch_new(struct loop *loop, const struct watch_config *cfg, watch_changed_fn changed,
                        void *data);

/* The registry saw udid attach or detach (a detach starts the ring's expiry). */
void watch_presence(struct watch *w, const char *udid, bool attached);

/* Copies the phone's ring and stream state into f (capture_on, capture_since_unix, ring). */
void watch_merge(struct watch *w, const char *udid, struct device_facts *f);

/* Whether the phone observes domain_changed now (false: refused, or no stream). */
bool watch_notifies(struct watch *w, const char *udid);

/*
 * Stops the helper (SIGTERM, SIGKILL after CHILD_KILL_GRACE_MS) and frees, running the loop
 * until the helper is reaped (at most the grace + 1 s). NULL-safe; returns NULL.
 */
struct watch *watch_free(struct watch *w);

#endif
