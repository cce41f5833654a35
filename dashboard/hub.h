/* SPDX-License-Identifier: MIT */
/*
 * hub: live updates for Server-Sent Events (GET /api/v1/stream). Producers (ingest on the loop
 * thread) announce *what* changed — a phone, an agent, a command — and each stream looks the
 * current row up when it sends, so a burst of changes to one phone costs one message and a slow
 * browser never holds stale copies. The hub is a bounded ring of (kind, key) notices with
 * sequence numbers; a reader that fell more than the ring behind is told to resync
 * (event "resync") instead of silently missing changes.
 *
 * Threading: every function is thread-safe.
 */
#ifndef CRADLE_DASH_HUB_H
#define CRADLE_DASH_HUB_H

#include <stddef.h>
#include <stdint.h>

enum hub_kind {
	HUB_DEVICE,  /* key: udid; SSE event "device" */
	HUB_AGENT,   /* key: agent id; SSE event "agent" */
	HUB_COMMAND, /* key: cmd_id; SSE event "command" */
	HUB_SUMMARY, /* key: ""; the overview's numbers changed; SSE event "summary" */
	HUB_ALERT,   /* key: alert id; SSE event "alert" */
	HUB_JOB,     /* key: job id (decimal); SSE event "job" */
};

#define HUB_KEY_MAX 64

struct hub_notice {
	uint64_t seq;
	enum hub_kind kind;
	char key[HUB_KEY_MAX];
};

struct hub;

/* ring: notices kept (>= 1). NULL when out of memory. */
struct hub *hub_new(size_t ring);
/* After every reader stopped. NULL-safe; returns NULL. */
struct hub *hub_free(struct hub *h);

/* Announces a change (key copied, truncated to HUB_KEY_MAX - 1). */
void hub_publish(struct hub *h, enum hub_kind kind, const char *key);

/* The sequence number the next notice will get: a new reader starts here. */
uint64_t hub_next_seq(struct hub *h);

/*
 * Waits up to timeout_ms for notices from *next_seq on, copies at most max into out and
 * advances *next_seq. Returns how many were copied (0 on timeout), or -ERANGE when notices
 * from *next_seq were already overwritten (then *next_seq is set to the oldest kept), or
 * -ESHUTDOWN once hub_shutdown() was called.
 */
int hub_wait(struct hub *h, uint64_t *next_seq, struct hub_notice *out, size_t max, int timeout_ms);

/* Wakes every waiter with -ESHUTDOWN (service stopping). */
void hub_shutdown(struct hub *h);

#endif
