/* SPDX-License-Identifier: MIT */
/*
 * client: the command client library. It sends cradle.command.v1 commands to agents through the
 * broker and hands back the results of exactly those commands. `cradle-agent send` (send.c) is
 * its command-line front end; the dashboard is meant to be the second user.
 *
 * What it does for one command (proto/COMMANDS.md is the contract):
 *   1. encodes it (proto/command.h) and, when a signer is set, signs the exact payload bytes
 *      (proto/cmdsig.h); signature and key id go out as MQTT 5 user properties;
 *   2. subscribes to the agent's result topic (once per agent and connection) and publishes only
 *      after the SUBACK, so no result can slip past between the two;
 *   3. publishes at QoS 1, never retained, with Message Expiry = ttl, Correlation Data = cmd_id,
 *      Response Topic, Content Type and Payload Format Indicator;
 *   4. decodes every message on the result topics and passes on those whose cmd_id (and agent)
 *      belong to a command it sent and that has not reached a final status yet. After the first
 *      final status (rejected, succeeded, failed) the cmd_id is forgotten, so duplicates of the
 *      final result (QoS 1) are not passed on.
 *
 * The client runs on the owner's event loop (common/loop.h), which may be shared with anything
 * else the owner does: Paho calls back on its own threads, and those callbacks only copy what
 * they got and post it to the client's loop mailbox (at most CLIENT_PENDING_MAX wait; more are
 * dropped, counted and logged on the loop thread); every client_* function and every callback
 * runs on the loop thread. There is no automatic reconnect: when the connection fails or is lost
 * the closed callback fires, commands still waiting for results are dropped, and the owner frees
 * the client and makes a new one when it wants to go on (a command it sends again with the same
 * cmd_id is answered from the agent's command table and never runs twice).
 *
 * Lifetime: client_free() may be called at any time on the loop thread, also from inside a
 * callback of this client. It destroys the Paho client at once (no callback afterwards) and
 * frees every copy Paho had posted that the loop has not run yet, so nothing of the client is
 * left on the loop: the owner may stop and free its loop right after.
 */
#ifndef CRADLE_CLIENT_H
#define CRADLE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "cmdsig.h"
#include "command.h"
#include "loop.h"

#define CLIENT_TTL_MAX     (24 * 3600) /* s; the agent cuts a longer lifetime anyway */
#define CLIENT_PENDING_MAX 4096        /* Paho events waiting for the loop; more are dropped */

struct client;

/* All strings borrowed for the duration of client_new() (copied), the signer for the client's
 * lifetime. NULL = not set. */
struct client_options {
	const char *url;       /* required: tcp://host:1883, ssl://host:8883 or mqtts://... */
	const char *client_id; /* NULL: "cradle-client-<pid>-<random>" */
	const char *username;
	const char *password;
	const char *cafile;   /* TLS: trusted CA bundle; ssl:// verifies the broker's host name */
	const char *certfile; /* TLS client certificate (PEM) */
	const char *keyfile;  /* TLS client key (PEM); not the command signing key */
	/* signs every command (proto/cmdsig.h); NULL sends unsigned commands, which agents refuse
	 * unless require_signed_commands is off */
	const struct cmdsig_signer *signer;
	int keepalive_s;       /* 0 = 30 */
	int connect_timeout_s; /* 0 = 10 */
};

/* All optional. data is the pointer given to client_new(). */
struct client_callbacks {
	/* The broker accepted the connection; commands sent before now go out from here on. */
	void (*connected)(struct client *c, void *data);
	/* The connection could not be made or was lost (why: text, never NULL). The client sends
	 * nothing more; free it. */
	void (*closed)(struct client *c, const char *why, void *data);
	/* The broker acknowledged the command (err 0) or refused it (err -EPERM with a reason
	 * text, or -EIO when it could not be handed to Paho). A refused command is forgotten. */
	void (*published)(struct client *c, const char *cmd_id, int err, const char *why,
	                  void *data);
	/* A result of a command this client sent: res decoded, json the payload as received
	 * (len bytes, NUL-terminated). Both valid during the call. */
	void (*result)(struct client *c, const struct command_result *res, const char *json,
	               size_t len, void *data);
};

/*
 * Creates a client on loop (borrowed, must outlive it) and starts connecting. Returns 0 and *ret,
 * -EINVAL (bad options or URL; logged) or -ENOMEM / -EIO.
 */
int client_new(struct loop *loop, const struct client_options *opts,
               const struct client_callbacks *cb, void *data, struct client **ret);

/*
 * Destroys the Paho client (disconnecting first when connected), drops the Paho events still
 * waiting for the loop, and frees c: at once, or, when called from inside a callback of this
 * client, as soon as that callback returns (no other callback of c runs in between).
 * NULL-safe; returns NULL.
 */
struct client *client_free(struct client *c);

/*
 * Sends cmd (borrowed; cmd_id, agent, udid, name, params, issued_at_ms and expires_at_ms set, as
 * for command_encode()) with MQTT message expiry ttl_s (1..CLIENT_TTL_MAX). Subscribes to the
 * agent's result topic first if this connection has not yet; publishes at once otherwise (or
 * once connected). Returns 0, -EINVAL (the command does not encode or is over the size cap,
 * bad ttl, or cmd_id already in flight), -ENOMEM, -EIO (signing or Paho failed) or -ENOTCONN
 * (the client was closed).
 */
int client_send(struct client *c, const struct command *cmd, int ttl_s);

/* Stops passing on results of cmd_id (the owner gave up on it). No-op when unknown. */
void client_forget(struct client *c, const char *cmd_id);

/* The broker's Receive Maximum (publishes unacknowledged at once) from its CONNACK; 65535
 * before the connection or when the broker named none. Beyond it Paho queues publishes and
 * sends them from a timer, slowly: a sender of many commands keeps within it. */
unsigned client_receive_maximum(const struct client *c);

/* Number of commands whose final result has not been seen yet. */
unsigned client_in_flight(const struct client *c);

/* A new random (version 4) cmd_id, lowercase, into out (COMMAND_ID_MAX bytes). 0 or -EIO. */
int client_new_cmd_id(char *out);

#endif
