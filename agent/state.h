/* SPDX-License-Identifier: MIT */
/*
 * state: one probe's facts + their diagnosis -> the retained device-state message
 * (cradle.device_state.v1, proto/README.md), and the events a change of state implies.
 *
 * Pure functions: the caller passes the header values (agent, session, seq, now), so the
 * daemon, `cradle-agent --once` and the tests produce byte-identical JSON for equal inputs.
 */
#ifndef CRADLE_STATE_H
#define CRADLE_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "diagnose.h"
#include "facts.h"
#include "proto.h"

/* What a device-state message needs beyond the facts. All pointers borrowed. */
struct state_ctx {
	const char *agent; /* agent id (topics_agent_id_valid) */
	int64_t session;
	int64_t seq;
	int64_t now_ms;           /* wall clock, Unix ms: ts, and "now" of the diagnosis */
	bool publish_device_name; /* config: publish DeviceName, else "name" is omitted */
	const struct diagnose_config *diag; /* NULL: diagnose_config_defaults() */
};

/*
 * Fills ret from facts and an already computed diagnosis. attached=false is the unplug message:
 * pass the last known facts, they stay in the message. The header is left zero: set ret->h (or
 * use state_encode()). Never fails.
 */
void state_build(const struct device_facts *facts, const struct diagnosis *dx, bool attached,
                 bool publish_device_name, struct proto_device_state *ret);

/* Sets ret->h from ctx (agent copied, ts = now_ms). */
void state_set_header(struct proto_device_state *s, const struct state_ctx *ctx);

/*
 * Diagnoses facts at ctx->now_ms, builds and encodes the message. If ret_dx is not NULL the
 * diagnosis is copied there too. Returns a JSON string the caller frees with free(), or NULL on
 * allocation failure.
 */
char *state_encode(const struct device_facts *facts, bool attached, const struct state_ctx *ctx,
                   struct diagnosis *ret_dx);

/*
 * Whether a and b say the same thing: equal messages apart from the header (seq, ts), probed_at
 * and age_s, which change on every probe. The daemon republishes an unchanged state only every
 * refresh_interval (proto/README.md, topic map). Returns -ENOMEM if it cannot tell (then
 * publish).
 */
int state_same(const struct proto_device_state *a, const struct proto_device_state *b);

#define STATE_EVENTS_MAX 4

/*
 * The device events implied by going from prev (NULL: device not known before) to cur, in the
 * order to publish them: trust_prompt / pairing_denied / pairing_invalid when pairing enters
 * that state, probe_failed when the probe enters gone/timeout/error, backup_stale when status
 * becomes stale, backup_ok when it becomes ok after stale (or first seen ok: no event).
 * attached/detached are the caller's (devmon knows them first). Returns the count (<= max).
 */
int state_events(const struct proto_device_state *prev, const struct proto_device_state *cur,
                 enum proto_event *ret, int max);

/*
 * The details of a state-driven event for the device whose current state is cur and whose
 * facts are facts (proto/README.md, device event): lockdown_error for trust_prompt,
 * pairing_denied and pairing_invalid (when the handshake reported one), age_s and the cause
 * codes for backup_stale, last_icloud for backup_ok, probe and error for probe_failed; none for
 * other events. ret is zeroed first. Never fails.
 */
void state_event_details(enum proto_event ev, const struct device_facts *facts,
                         const struct proto_device_state *cur, struct proto_event_details *ret);

#endif
