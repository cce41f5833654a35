/* SPDX-License-Identifier: MIT */
/*
 * topics: builders and parsers for the cradle/v1 MQTT topic map (see proto/README.md).
 *
 * Every topic string in the project is made here, so an agent id or UDID that would inject MQTT
 * wildcards or an extra level ("/", "+", "#") never reaches a publish or a subscribe. Pure
 * functions, no allocation, callable from any thread.
 */
#ifndef CRADLE_TOPICS_H
#define CRADLE_TOPICS_H

#include <stdbool.h>
#include <stddef.h>

#define TOPICS_ROOT      "cradle/v1"
#define TOPICS_AGENT_MAX 64  /* agent id: 3..63 chars + NUL */
#define TOPICS_UDID_MAX  64  /* UDID: 1..63 chars + NUL, same as FACTS_UDID_MAX */
#define TOPICS_MAX       192 /* longest topic: root + agent + "device" + udid + "state" + NUL */

enum topics_kind {
	TOPICS_STATUS,       /* cradle/v1/agent/{agent}/status */
	TOPICS_META,         /* cradle/v1/agent/{agent}/meta */
	TOPICS_DEVICE_STATE, /* cradle/v1/agent/{agent}/device/{udid}/state */
	TOPICS_DEVICE_EVENT, /* cradle/v1/agent/{agent}/device/{udid}/event */
	TOPICS_CMD,          /* cradle/v1/agent/{agent}/cmd */
	TOPICS_RESULT,       /* cradle/v1/agent/{agent}/result */
	TOPICS_AGENT_EVENT,  /* cradle/v1/agent/{agent}/event (agent-level, no {udid}) */
	_TOPICS_KIND_MAX,
};

/*
 * Agent ids match ^[a-z0-9][a-z0-9-]{2,62}$ (they double as MQTT user name / certificate CN).
 * The one agent-id check of the project: the config file's agent_id, the command client and
 * the codec all use it.
 */
bool topics_agent_id_valid(const char *agent);

/*
 * UDIDs as usbmuxd reports them: real ones are 40 hex digits (devices before the A12) or 8 hex
 * digits, a dash and 16 hex digits ("00008110-001A2B3C4D5E801E"; usbmuxd inserts the dash into
 * the 24-digit USB serial). Accepted: ^[0-9A-Za-z][0-9A-Za-z-]{0,62}$, broader than Apple's
 * forms so simulators and future formats pass, but never a topic separator or wildcard, never
 * an option to a helper (no leading '-'), never a path step (no '.' or '/'), no blank. The one
 * UDID check of the project: topics, the codec, the probe scheduler (the UDID becomes a helper's
 * argv element) and the backup store (it becomes a directory name) all use it.
 */
bool topics_udid_valid(const char *udid);

/* Whether the kind has a {udid} level. */
bool topics_kind_has_udid(enum topics_kind kind);

/*
 * "status", "meta", "state", "event", "cmd", "result", "event"; NULL when out of range. Both
 * event kinds are called "event": the {udid} level tells them apart.
 */
const char *topics_kind_name(enum topics_kind kind);

/*
 * Writes the topic for kind into buf. udid is ignored (may be NULL) for kinds without a udid
 * level. Returns 0, -EINVAL for an invalid id/udid/kind, -ENOBUFS when buf is too small
 * (TOPICS_MAX always suffices). All pointers borrowed.
 */
int topics_build(char *buf, size_t size, enum topics_kind kind, const char *agent,
                 const char *udid);

/*
 * Subscription filter for kind; agent == NULL means every agent ("+"), and for device kinds
 * every device is "+". Same return convention as topics_build().
 */
int topics_filter(char *buf, size_t size, enum topics_kind kind, const char *agent);

/*
 * Parses a concrete topic (no wildcards). On success writes the kind, the agent id into
 * ret_agent (TOPICS_AGENT_MAX bytes) and, for device kinds, the UDID into ret_udid
 * (TOPICS_UDID_MAX bytes; set to "" for other kinds). ret_udid may be NULL when the caller does
 * not care. Returns 0 or -EINVAL (not a cradle/v1 topic, bad id, extra levels); outputs are
 * written only on success.
 */
int topics_parse(const char *topic, enum topics_kind *ret_kind, char *ret_agent, char *ret_udid);

#endif
