/* SPDX-License-Identifier: MIT */
/*
 * publish: turns what the agent learned into cradle/v1 messages and hands them to the outbox.
 *
 * Owns the message numbering (seq from the statefile, session of this run) and the envelope of
 * every message the agent sends: device state and device events (retained states kept one by
 * one while there is room, coalesced per device only under pressure; events droppable under
 * overflow), command results (never dropped), and the agent's
 * status and meta payloads, which the daemon publishes directly on every connect. Every message
 * that goes through the outbox survives a broker outage or a kill -9.
 *
 * Threading: loop thread only. Ownership: borrows the config and the outbox, which outlive it.
 */
#ifndef CRADLE_PUBLISH_H
#define CRADLE_PUBLISH_H

#include <stdbool.h>
#include <stdint.h>

#include "command.h"
#include "config.h"
#include "facts.h"
#include "proto.h"
#include "statefile.h"

struct agentev;
struct mqtt;
struct outbox;
struct publish;

/* enqueue outcomes (publish.c), also what the stats count */
enum {
	ENQUEUED_JOURNALED = 0, /* in the outbox: survives outages and crashes */
	ENQUEUED_BEST_EFFORT,   /* the outbox could not write: published directly, QoS 1 */
	ENQUEUED_HELD,          /* the outbox could not write, no broker: held in memory */
};

/* Messages that did not go through the outbox because it could not write (full disk). */
struct publish_stats {
	uint64_t best_effort; /* published directly (QoS 1, not journaled) */
	uint64_t held_total;  /* held in memory for a while */
	uint64_t held;        /* held now */
	uint64_t lost;        /* dropped: held events over the memory bound, no memory */
	bool best_effort_logged;
};

/* What was last published for one device (kept by its owner, the device registry). */
struct publish_memo {
	bool have_state;
	struct proto_device_state last;
	int64_t last_pub_ms; /* wall clock, Unix ms */
};

/*
 * statefile_path is copied; sf is the loaded statefile of this run (session begun), copied: from
 * now on the publisher numbers the messages and persists the counter. started_at is the Unix
 * second of process start (in the status message). NULL on allocation failure.
 */
struct publish *publish_new(const struct agent_config *cfg, const char *statefile_path,
                            const struct statefile *sf, struct outbox *outbox, int64_t started_at);

/* The MQTT client to wake after each put (NULL: none yet). */
void publish_set_mqtt(struct publish *p, struct mqtt *mqtt);

/* The agent events to tell after each put (outbox pressure); NULL: none. */
void publish_set_agentev(struct publish *p, struct agentev *agentev);

struct publish *publish_free(struct publish *p);

/* What the full disk cost so far (the daemon reports it at exit). */
void publish_get_stats(const struct publish *p, struct publish_stats *ret);

/*
 * Call every second or so: retries what the full disk kept out of the outbox (held messages go
 * to the outbox in order, or directly to the broker when it still cannot write) and a pending
 * compaction. Returns true when device states went out best-effort earlier and the outbox
 * writes again: the caller then republishes every device's state (durably this time).
 */
bool publish_retry(struct publish *p);

/* A device event; details NULL = none ({}). */
void publish_event(struct publish *p, const char *udid, enum proto_event ev,
                   const struct proto_event_details *details);

/*
 * Diagnoses facts and publishes the device's state when it changed, or every refresh_interval,
 * or when forced; then the events the change implies. memo is read and updated.
 */
void publish_state(struct publish *p, const struct device_facts *facts, bool attached,
                   struct publish_memo *memo, bool force);

/* Numbers an agent-level event (header filled here) and queues it under key (may be NULL). */
void publish_agent_event(struct publish *p, struct proto_agent_event *ev, const char *key);

/* Numbers res (agent, seq, ts, session filled here) and queues it; never dropped. */
void publish_result(struct publish *p, struct command_result *res);

/*
 * An action's report on cmd as a command result, plus the backup_started / finished / failed
 * events of a local backup. cause and detail may be NULL.
 */
void publish_action_report(struct publish *p, const struct command *cmd, enum command_status st,
                           int progress, const char *cause, const char *detail);

/*
 * The agent status payload: online or graceful offline, numbered; or, with will, the MQTT will
 * (no seq or ts). Heap string to free(), NULL on allocation failure.
 */
char *publish_status_payload(struct publish *p, bool online, bool will);

/* The agent meta payload (versions, capabilities, the settings a dashboard needs). */
char *publish_meta_payload(struct publish *p);

#endif
