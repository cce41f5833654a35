/* SPDX-License-Identifier: MIT */
/*
 * ingest: everything the agents publish, into the store. An MQTT 5 subscriber (Paho MQTTAsync)
 * on the service's loop, following proto/README.md's consumer rules: retained state (status,
 * meta, device states) through a normal subscription, events and command results through
 * `$share/<mqtt_share_group>/...` with a persistent session when a group is set; every payload
 * decoded with the proto codec; malformed ones dropped and counted; deliveries deduplicated by
 * (agent, session, seq); seq gaps counted per agent as lost messages; agent presence from birth,
 * graceful offline and the will. Writes are batched: one transaction per INGEST_BATCH_MAX
 * messages or INGEST_BATCH_MS, whichever comes first; after each commit the changed phones,
 * agents and commands are announced on the hub (hub.h). dashboard/README.md ("Ingest") has the
 * rules in prose.
 *
 * Threading: every function on the loop thread. Paho's threads only copy what arrives and post
 * it to the loop (loop_mailbox_post); when too much waits, Paho is told to deliver it again
 * later instead of anything being dropped.
 */
#ifndef CRADLE_DASH_INGEST_H
#define CRADLE_DASH_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dash_config;
struct hub;
struct loop;
struct store;
struct ingest;

#define INGEST_BATCH_MAX 1000 /* messages per transaction */
#define INGEST_BATCH_MS  100  /* longest a message waits for its commit */

struct ingest_stats {
	uint64_t messages;   /* received (all of them, malformed included) */
	uint64_t malformed;  /* dropped: not decodable or breaking the contract */
	uint64_t duplicates; /* deliveries of a (agent, session, seq) already stored */
	int64_t lost;        /* seq numbers missing now (gaps, less those filled later) */
	uint64_t batches;    /* transactions committed */
	uint64_t deferred;   /* times Paho was asked to redeliver later (loop too far behind) */
	bool connected;
};

/*
 * Loads the in-memory indexes (agents, phones) from store (the writer connection, borrowed)
 * and prepares the statements. hub may be NULL (no live updates). loop may be NULL for a
 * store-only ingest (tests drive ingest_message()/ingest_flush() themselves; no timer).
 * 0 or -errno (logged).
 */
int ingest_new(struct loop *loop, struct store *store, struct hub *hub,
               const struct dash_config *cfg, struct ingest **ret);
/* Connects to cfg->broker_url and subscribes after every (re)connect. 0 or -errno (logged). */
int ingest_start(struct ingest *in);
/* Disconnects, stores what was received already and commits. Idempotent. */
void ingest_stop(struct ingest *in);
/* ingest_stop(), then frees. NULL-safe; returns NULL. */
struct ingest *ingest_free(struct ingest *in);

/*
 * One message as MQTT delivered it (retained: the retain flag, set only for what the broker
 * replays at subscribe time). now_ms is the receive time (Unix ms). Joins the open batch
 * (opening one), and commits it when full. 0, or -EIO when the store failed.
 */
int ingest_message(struct ingest *in, const char *topic, const char *payload, size_t len,
                   bool retained, int64_t now_ms);
/* Commits the open batch (if any) and announces its changes. 0 or -EIO. */
int ingest_flush(struct ingest *in);

void ingest_get_stats(const struct ingest *in, struct ingest_stats *ret);

/*
 * Called after each committed batch that changed phones or agents or stored command results:
 * how many phones and agents changed and how many commands got results (bulk jobs advance their
 * executions and find newly docked phones). One hook; fn NULL removes it.
 */
typedef void (*ingest_batch_fn)(void *data, size_t n_devices, size_t n_commands);
void ingest_set_batch_hook(struct ingest *in, ingest_batch_fn fn, void *data);

#endif
