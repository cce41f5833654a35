/* SPDX-License-Identifier: MIT */
/*
 * agentev: the agent-level events of cradle/v1/agent/{agent}/event (proto/README.md, "Agent
 * event"): what goes wrong on the station itself rather than on one phone, turned from log lines
 * into messages a dashboard can alert on.
 *
 *   security_rejected   commands refused (any reason but "internal"), aggregated per reason: the
 *                       first refusal at once, then at most one event per reason per
 *                       security_interval with the count, so a flood becomes a few events
 *   usbmuxd_lost/back   the device resync lost usbmuxd after having reached it, and regained it
 *   disk_low/ok         statvfs of disk_path under disk_low_free (ok again 10 % above it),
 *                       checked every disk_check_ms and once at start; also disk_low at once
 *                       when an outbox write fails (agentev_write_failed), and then ok only
 *                       once a write worked again (agentev_write_ok)
 *   outbox_damaged      the outbox journal was damaged at start (agentev_outbox_damaged)
 *   outbox_pressure/ok  the outbox started dropping events or superseding states, and later
 *                       fell below half its caps again
 *
 * The module decides when and with which details; the daemon numbers, encodes and stores the
 * message (emit callback), so agent events travel through the outbox like device events. The
 * outbox_* events carry the key AGENTEV_OUTBOX_KEY: the outbox then treats them like a device
 * state (never dropped, the newest kept), so the report of pressure is not lost to the pressure.
 *
 * Threading: loop thread only.
 */
#ifndef CRADLE_AGENT_AGENTEV_H
#define CRADLE_AGENT_AGENTEV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct loop;
struct outbox;
struct agentev;

#define AGENTEV_OUTBOX_KEY "agentev:outbox"
#define AGENTEV_DAMAGE_KEY "agentev:outbox_damaged"

struct agentev_config {
	const char *disk_path;         /* directory whose free space is watched (borrowed) */
	uint64_t disk_low_free;        /* bytes; 0 = no disk check */
	uint64_t disk_check_ms;        /* 0 = 60 s */
	uint64_t security_interval_ms; /* aggregation window; 0 = 60 s */
	struct outbox *outbox;         /* watched for pressure (borrowed); NULL = not watched */
	uint64_t outbox_max_records;   /* its caps, for the details and the all-clear */
	uint64_t outbox_max_bytes;
};

/*
 * Publishes ev (details filled, header not): the daemon sets the header, encodes it and puts it
 * into the outbox under key (NULL = an ordinary event). ev is the callee's to modify.
 */
typedef void (*agentev_emit_fn)(void *data, struct proto_agent_event *ev, const char *key);

/* cfg is copied (its pointers are borrowed). Arms the first disk check. NULL on ENOMEM. */
struct agentev *agentev_new(struct loop *loop, const struct agentev_config *cfg,
                            agentev_emit_fn emit, void *data);

/* Publishes the refusals counted but not yet reported (call before a clean shutdown). */
void agentev_flush(struct agentev *ae);

/* Cancels the timers and frees, publishing nothing. NULL-safe; returns NULL. */
struct agentev *agentev_free(struct agentev *ae);

/* A command was refused: reason is its wire code (borrowed), detail the explanation or NULL. */
void agentev_command_rejected(struct agentev *ae, const char *reason, const char *detail);

/* Result of one usbmuxd device listing: reachable or not; devices: how many it listed. */
void agentev_usbmuxd(struct agentev *ae, bool up, size_t devices);

/* Looks at the outbox counters: call after putting something (cheap; reentrancy-safe). */
void agentev_outbox_check(struct agentev *ae);

struct outbox_damage;

/* The outbox found damage at open: one outbox_damaged event (nothing when d says none). */
void agentev_outbox_damaged(struct agentev *ae, const struct outbox_damage *d);

/*
 * An outbox write failed (full disk): disk_low at once if not already low, whatever the floor;
 * best_effort: the message was published without being journaled; held: messages now waiting
 * in memory. Counted into the details of disk_low / disk_ok. Reentrancy-safe.
 */
void agentev_write_failed(struct agentev *ae, bool best_effort, uint64_t held);

/* An outbox write worked again after failures: disk_ok may follow at the next disk check. */
void agentev_write_ok(struct agentev *ae);

#endif
