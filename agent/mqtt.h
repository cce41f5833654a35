/* SPDX-License-Identifier: MIT */
/*
 * mqtt: the agent's MQTT 5 client (Paho MQTTAsync) bound to the event loop and the outbox.
 *
 * What it does for the daemon:
 *  - connects with Clean Start 0 + Session Expiry, keepalive, automatic reconnect (1..30 s
 *    backoff, done by Paho), and a retained QoS 1 will on the caller's status topic with a
 *    Will Delay, so a quick reconnect does not flap the agent's presence;
 *  - on every (re)connect calls the caller's connected() (publish birth/meta, subscribe), then
 *    drains the outbox in seq order with at most `inflight_max` publishes in flight;
 *  - deletes an outbox record only when its PUBACK arrives with a reason code < 0x80;
 *    failures (-11 "incomplete" when the broker lost the session, -3 disconnected, timeouts)
 *    leave the record in the outbox and it is sent again. A PUBACK >= 0x80 that can never
 *    succeed (0x87 not authorized, 0x90 topic invalid, 0x95 packet too large, 0x99 payload
 *    format invalid) drops the record with an error log, so one poison message cannot block or
 *    loop forever; other refusals are retried after a pause;
 *  - delivers incoming messages (with retained flag and Message Expiry) to the caller.
 *
 * Threading: Paho calls back on its own threads. Those callbacks only copy what they got and
 * post it to a bounded loop mailbox (loop.h), so every caller callback runs on the loop thread,
 * in Paho's order; mqtt_free() destroys Paho (joining its threads) before it frees the mailbox
 * with what still waits in it. All functions must be called on the loop thread.
 *
 * Paho configuration: MQTTVersion 5 pinned at create and connect (with the default version
 * Paho 1.3.12 could fall back to 3.1 on a reconnect), persistence NONE (the outbox is the
 * durable store: docs/decisions.md, "Messages and delivery"), sendWhileDisconnected with a
 * small buffer, so Paho never holds a large queue.
 *
 * Signals: Paho's threads inherit the signal mask of the thread that starts them, so register
 * the loop's signals (loop_add_signal blocks them) BEFORE mqtt_new()/mqtt_start(); otherwise a
 * SIGTERM can land on a Paho thread and kill the process with the default action.
 */
#ifndef CRADLE_AGENT_MQTT_H
#define CRADLE_AGENT_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"
#include "outbox.h"

#define MQTT_INFLIGHT_DEFAULT   32
#define MQTT_INCOMING_MAX       (64 * 1024) /* default cap on an incoming payload */
#define MQTT_INCOMING_QUEUE_MAX 256         /* messages waiting for the loop thread */
#define MQTT_CORRELATION_MAX    64          /* correlation data kept per message */
#define MQTT_USER_PROPS_MAX     16          /* MQTT 5 user properties kept per message */
#define MQTT_USER_PROP_MAX      256         /* bytes of name or value kept per user property */

struct mqtt;

/* All strings are borrowed and copied by mqtt_new(). NULL or "" = not set. */
struct mqtt_options {
	const char *url;       /* tcp://host:port or ssl://host:port */
	const char *client_id; /* the agent id */
	const char *username;
	const char *password;
	const char *cafile; /* TLS: the fleet CA (then only it is trusted, host name verified) */
	const char *certfile;
	const char *keyfile;
	int keepalive_s;
	int will_delay_s;
	int session_expiry_s;
	const char *will_topic; /* required */
	const void *will_payload;
	size_t will_len;
	unsigned inflight_max; /* 0 = MQTT_INFLIGHT_DEFAULT */
	size_t incoming_max;   /* 0 = MQTT_INCOMING_MAX; larger ones come without payload (oversize)
	                        */
	int retry_min_s;       /* 0 = 1 */
	int retry_max_s;       /* 0 = 30 */
};

/* One MQTT 5 user property (name and value are UTF-8, not NUL-terminated). */
struct mqtt_user_property {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* An incoming message; every pointer is valid only during the callback. */
struct mqtt_message {
	const char *topic;
	const void *payload; /* NULL when oversize */
	size_t len;          /* the payload's size, also when oversize */
	bool oversize;       /* larger than incoming_max: delivered without its payload */
	bool retained;
	int qos;
	int64_t expiry_s; /* Message Expiry Interval as received, -1 when absent */
	/* MQTT 5 Correlation Data (at most MQTT_CORRELATION_MAX bytes kept), NULL when absent:
	 * lets the agent attribute a command it cannot parse */
	const void *correlation;
	size_t correlation_len;
	/* MQTT 5 user properties in the order received (command signatures travel here) */
	const struct mqtt_user_property *user_props;
	unsigned n_user_props;
	bool user_props_cut; /* more than MQTT_USER_PROPS_MAX, or one over MQTT_USER_PROP_MAX */
};

/* All optional; run on the loop thread; data is the pointer given to mqtt_new(). */
struct mqtt_callbacks {
	/* Connected (first time or again): publish birth and subscribe here. */
	void (*connected)(struct mqtt *m, void *data);
	/* The connection was lost (cause may be NULL). Paho reconnects by itself. */
	void (*disconnected)(struct mqtt *m, const char *cause, void *data);
	void (*message)(struct mqtt *m, const struct mqtt_message *msg, void *data);
};

struct mqtt_stats {
	uint64_t connects;
	uint64_t sent;       /* outbox publishes handed to Paho (resends included) */
	uint64_t acked;      /* outbox records deleted after PUBACK */
	uint64_t failed;     /* publish failures that kept the record */
	uint64_t poisoned;   /* records dropped after a permanent PUBACK refusal */
	uint64_t refused;    /* "not authorized" refusals (0x87): record kept, drain paused */
	uint64_t rx;         /* messages delivered */
	uint64_t rx_dropped; /* queue full (an oversize message is delivered, without payload) */
	unsigned inflight;
};

/*
 * Creates the client; the outbox (borrowed, must outlive the client) and loop (borrowed) are
 * used from the loop thread only. 0 and *ret (free with mqtt_free()) or -errno (-EINVAL for
 * bad options, logged).
 */
int mqtt_new(struct loop *loop, struct outbox *outbox, const struct mqtt_options *opts,
             const struct mqtt_callbacks *cb, void *data, struct mqtt **ret);

/* Starts connecting (and keeps retrying in the background). 0 or -errno. */
int mqtt_start(struct mqtt *m);

/*
 * Tells the client that the outbox has new records. On the next loop iteration they are made
 * durable (one fdatasync for all puts since, so kicking after every put is fine) and sent when
 * connected.
 */
void mqtt_kick(struct mqtt *m);

/*
 * Publishes directly, not through the outbox (birth, meta: messages that are rebuilt on every
 * connect anyway). topic and payload borrowed. 0, -ENOTCONN, or -EIO.
 */
int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, bool retained,
                 int qos);

/*
 * Subscribes (call from connected()) with Retain As Published, so a message's retained flag is
 * the one its publisher set, live or not; a refused subscription is logged. 0 or -errno.
 */
int mqtt_subscribe(struct mqtt *m, const char *filter, int qos);

bool mqtt_is_connected(const struct mqtt *m);
void mqtt_get_stats(const struct mqtt *m, struct mqtt_stats *ret);

/*
 * Clean stop, blocking for at most timeout_ms: if connected, publishes payload (borrowed,
 * e.g. online:false) retained QoS 1 on the will topic, waits for the outbox publishes in
 * flight and that one, then disconnects normally (the broker then drops the will). Call on the
 * loop thread, typically after loop_run() returned. 0, or -ETIMEDOUT / -ENOTCONN.
 */
int mqtt_shutdown(struct mqtt *m, const void *payload, size_t len, int timeout_ms);

/* Destroys the Paho client (no callback runs afterwards) and unregisters from the loop.
 * NULL-safe; returns NULL. */
struct mqtt *mqtt_free(struct mqtt *m);

#endif
