/* SPDX-License-Identifier: MIT */
/*
 * client: commands out, their results back, on the owner's loop.
 *
 * Paho MQTTAsync calls back on its own threads. Those callbacks (the "Paho threads" section)
 * only copy what they got into a client_event and post it to the client's loop mailbox
 * (common/loop.h), which delivers the events in Paho's order on the loop thread; every piece
 * of state (subscriptions, commands in flight) belongs to the loop thread. The mailbox is
 * bounded (CLIENT_PENDING_MAX): an event that does not fit is dropped, counted, and reported
 * in its place on the loop thread.
 *
 * client_free() destroys Paho first (no callback runs afterwards), then frees the mailbox with
 * every event still waiting in it, so nothing of the client is left on the loop. It may be
 * called from inside an owner callback: while client code that calls back is on the stack
 * (`busy`), the struct itself is freed only when that code returns, and `dead` stops it from
 * calling the owner again.
 *
 * Subscriptions and publishes are matched to their acknowledgements by Paho's tokens: the
 * result topic of an agent is subscribed once per connection, and every command for that agent
 * waits for its SUBACK before it is published.
 */
#include "client.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "log.h"
#include "parse.h"
#include "topics.h"

#define CLIENT_SUBS_MAX 256 /* agents one client talks to */

enum client_event_kind {
	CLIENT_EV_CONNECTED,
	CLIENT_EV_CONNECT_FAILED,
	CLIENT_EV_LOST,
	CLIENT_EV_SUBSCRIBED,
	CLIENT_EV_SUBSCRIBE_FAILED,
	CLIENT_EV_PUBLISHED,
	CLIENT_EV_PUBLISH_FAILED,
	CLIENT_EV_MESSAGE,
};

/* A copy of what a Paho callback saw, owned by the mailbox once posted. */
struct client_event {
	enum client_event_kind kind;
	int token;
	int code; /* MQTT reason code or Paho return code; for messages the retain flag */
	char text[160];
	char *payload; /* CLIENT_EV_MESSAGE, NUL-terminated */
	size_t len;
};

enum client_sub_state {
	CLIENT_SUB_PENDING, /* SUBSCRIBE sent, waiting for the SUBACK */
	CLIENT_SUB_DONE,
};

struct client_sub {
	char agent[COMMAND_AGENT_MAX];
	char topic[TOPICS_MAX];
	enum client_sub_state state;
	int token;
};

enum client_cmd_state {
	CLIENT_CMD_WAITING, /* for the connection or the result subscription */
	CLIENT_CMD_PUBLISHED,
	CLIENT_CMD_ACKED,
};

struct client_cmd {
	char cmd_id[COMMAND_ID_MAX];
	char agent[COMMAND_AGENT_MAX];
	char topic[TOPICS_MAX];
	char *payload;
	char sig[CMDSIG_SIG_B64_LEN + 1]; /* "" = unsigned */
	char key_id[CMDSIG_KEY_ID_LEN + 1];
	int ttl_s;
	int token;
	enum client_cmd_state state;
	struct client_cmd *next;
};

struct client {
	struct loop *loop;
	MQTTAsync paho;
	struct client_callbacks cb;
	void *data;
	const struct cmdsig_signer *signer;
	struct loop_mailbox *mbox; /* Paho threads -> loop thread */
	unsigned busy;             /* client code that may call back is on the stack */
	bool connected;
	unsigned recv_max; /* the broker's Receive Maximum from the CONNACK (65535 when absent) */
	bool closed;       /* failed or lost: nothing more is sent */
	bool dead; /* client_free() was called while busy: no more callbacks, freed when idle */
	struct client_sub subs[CLIENT_SUBS_MAX];
	unsigned n_subs;
	struct client_cmd *cmds;
};

/* ---- Paho threads: copy and post, nothing else ---- */

/* Hands a copy to the loop; a copy that cannot be made is counted by the mailbox too. */
static void post(struct client *c, enum client_event_kind kind, int token, int code,
                 const char *text, const void *payload, size_t len)
{
	struct client_event *ev = calloc(1, sizeof(*ev));

	if (ev) {
		ev->kind = kind;
		ev->token = token;
		ev->code = code;
		if (text)
			snprintf(ev->text, sizeof(ev->text), "%s", text);
	}
	if (ev && payload) {
		ev->payload = malloc(len + 1);
		if (ev->payload) {
			memcpy(ev->payload, payload, len);
			ev->payload[len] = '\0';
			ev->len = len;
		} else {
			free(ev);
			ev = NULL;
		}
	}
	(void)loop_mailbox_post(c->mbox, ev); /* takes ev in every case */
}

static void on_connect(void *context, MQTTAsync_successData5 *response)
{
	int recv_max = 65535; /* MQTT 5: the default when the CONNACK has none */

	if (response &&
	    MQTTProperties_hasProperty(&response->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM))
		recv_max = MQTTProperties_getNumericValue(&response->properties,
		                                          MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
	post(context, CLIENT_EV_CONNECTED, 0, recv_max, NULL, NULL, 0);
}

static void on_connect_failure(void *context, MQTTAsync_failureData5 *response)
{
	post(context, CLIENT_EV_CONNECT_FAILED, 0, response ? response->code : -1,
	     response && response->message ? response->message : NULL, NULL, 0);
}

static void on_connection_lost(void *context, char *cause)
{
	post(context, CLIENT_EV_LOST, 0, 0, cause, NULL, 0);
}

/* A SUBACK or PUBACK: for one topic or message the outcome is in reasonCode. */
static void post_ack(void *context, const MQTTAsync_successData5 *response,
                     enum client_event_kind ok, enum client_event_kind refused)
{
	int rc = response ? (int)response->reasonCode : 0;

	post(context, rc >= 0x80 ? refused : ok, response ? response->token : 0, rc, NULL, NULL, 0);
}

static void post_failure(void *context, const MQTTAsync_failureData5 *response,
                         enum client_event_kind kind)
{
	post(context, kind, response ? response->token : 0,
	     response ? (int)response->reasonCode : -1,
	     response && response->message ? response->message : NULL, NULL, 0);
}

static void on_subscribe(void *context, MQTTAsync_successData5 *response)
{
	post_ack(context, response, CLIENT_EV_SUBSCRIBED, CLIENT_EV_SUBSCRIBE_FAILED);
}

static void on_subscribe_failure(void *context, MQTTAsync_failureData5 *response)
{
	post_failure(context, response, CLIENT_EV_SUBSCRIBE_FAILED);
}

static void on_publish(void *context, MQTTAsync_successData5 *response)
{
	post_ack(context, response, CLIENT_EV_PUBLISHED, CLIENT_EV_PUBLISH_FAILED);
}

static void on_publish_failure(void *context, MQTTAsync_failureData5 *response)
{
	post_failure(context, response, CLIENT_EV_PUBLISH_FAILED);
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	(void)topic_len;
	/* results are small; anything bigger cannot be one and is not copied */
	if (m->payloadlen >= 0 && m->payloadlen <= COMMAND_PAYLOAD_MAX)
		post(context, CLIENT_EV_MESSAGE, 0, m->retained, NULL, m->payload,
		     (size_t)m->payloadlen);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

/* ---- loop thread ---- */

static void cmd_free_one(struct client_cmd *cmd)
{
	if (cmd) {
		free(cmd->payload);
		free(cmd);
	}
}

static struct client_cmd *cmd_find(const struct client *c, const char *cmd_id)
{
	for (struct client_cmd *cmd = c->cmds; cmd; cmd = cmd->next)
		if (strcmp(cmd->cmd_id, cmd_id) == 0)
			return cmd;
	return NULL;
}

static void cmd_remove(struct client *c, struct client_cmd *victim)
{
	for (struct client_cmd **p = &c->cmds; *p; p = &(*p)->next)
		if (*p == victim) {
			*p = victim->next;
			cmd_free_one(victim);
			return;
		}
}

static void release(struct client *c)
{
	struct client_cmd *cmd, *next;

	for (cmd = c->cmds; cmd; cmd = next) {
		next = cmd->next;
		cmd_free_one(cmd);
	}
	free(c);
}

static void close_client(struct client *c, const char *why)
{
	struct client_cmd *cmd, *next;

	if (c->closed || c->dead)
		return;
	c->closed = true;
	c->connected = false;
	for (cmd = c->cmds; cmd; cmd = next) {
		next = cmd->next;
		cmd_free_one(cmd);
	}
	c->cmds = NULL;
	if (c->cb.closed)
		c->cb.closed(c, why, c->data);
}

/* The MQTT 5 properties of a command (proto/COMMANDS.md); 0 or -ENOMEM. */
static int add_properties(const struct client_cmd *cmd, MQTTProperties *props)
{
	static const char content_type[] = "application/json";
	MQTTProperty p;
	int rc;

	memset(&p, 0, sizeof(p));
	p.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL;
	p.value.integer4 = (unsigned)cmd->ttl_s;
	rc = MQTTProperties_add(props, &p);
	if (rc == 0) {
		p.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA;
		p.value.data.data = (char *)(uintptr_t)cmd->cmd_id;
		p.value.data.len = (int)strlen(cmd->cmd_id);
		rc = MQTTProperties_add(props, &p);
	}
	if (rc == 0) {
		p.identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC;
		p.value.data.data = (char *)(uintptr_t)cmd->topic;
		p.value.data.len = (int)strlen(cmd->topic);
		rc = MQTTProperties_add(props, &p);
	}
	if (rc == 0) {
		p.identifier = MQTTPROPERTY_CODE_CONTENT_TYPE;
		p.value.data.data = (char *)(uintptr_t)content_type;
		p.value.data.len = (int)strlen(content_type);
		rc = MQTTProperties_add(props, &p);
	}
	if (rc == 0) {
		p.identifier = MQTTPROPERTY_CODE_PAYLOAD_FORMAT_INDICATOR;
		p.value.byte = 1; /* UTF-8 */
		rc = MQTTProperties_add(props, &p);
	}
	if (rc == 0 && cmd->sig[0]) {
		p.identifier = MQTTPROPERTY_CODE_USER_PROPERTY;
		p.value.data.data = (char *)(uintptr_t)CMDSIG_PROP_SIG;
		p.value.data.len = (int)strlen(CMDSIG_PROP_SIG);
		p.value.value.data = (char *)(uintptr_t)cmd->sig;
		p.value.value.len = (int)strlen(cmd->sig);
		rc = MQTTProperties_add(props, &p);
		if (rc == 0) {
			p.value.data.data = (char *)(uintptr_t)CMDSIG_PROP_KEY_ID;
			p.value.data.len = (int)strlen(CMDSIG_PROP_KEY_ID);
			p.value.value.data = (char *)(uintptr_t)cmd->key_id;
			p.value.value.len = (int)strlen(cmd->key_id);
			rc = MQTTProperties_add(props, &p);
		}
	}
	return rc == 0 ? 0 : -ENOMEM;
}

static int publish(struct client *c, struct client_cmd *cmd)
{
	MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	char topic[TOPICS_MAX];
	int rc, r;

	r = topics_build(topic, sizeof(topic), TOPICS_CMD, cmd->agent, NULL);
	if (r < 0)
		return r;
	msg.payload = cmd->payload;
	msg.payloadlen = (int)strlen(cmd->payload);
	msg.qos = 1;
	msg.retained = 0;
	r = add_properties(cmd, &msg.properties);
	if (r < 0) {
		MQTTProperties_free(&msg.properties);
		return log_error_errno(r, "client: cannot set the MQTT properties");
	}
	opts.onSuccess5 = on_publish;
	opts.onFailure5 = on_publish_failure;
	opts.context = c;
	rc = MQTTAsync_sendMessage(c->paho, topic, &msg, &opts);
	MQTTProperties_free(&msg.properties);
	if (rc != MQTTASYNC_SUCCESS) {
		log_error("client: publish to '%s' failed: %s", topic, MQTTAsync_strerror(rc));
		return -EIO;
	}
	cmd->token = opts.token;
	cmd->state = CLIENT_CMD_PUBLISHED;
	log_debug("client: command '%s' published on '%s'%s", cmd->cmd_id, topic,
	          cmd->sig[0] ? " (signed)" : " (unsigned)");
	return 0;
}

/* A command that could not go out: tell the owner and forget it. */
static void publish_failed(struct client *c, struct client_cmd *cmd, int err, const char *why)
{
	char id[COMMAND_ID_MAX];

	memcpy(id, cmd->cmd_id, sizeof(id));
	cmd_remove(c, cmd);
	if (c->cb.published && !c->dead) /* the owner may have freed c in an earlier callback */
		c->cb.published(c, id, err, why, c->data);
}

static struct client_sub *sub_find(struct client *c, const char *agent)
{
	for (unsigned i = 0; i < c->n_subs; i++)
		if (strcmp(c->subs[i].agent, agent) == 0)
			return &c->subs[i];
	return NULL;
}

static int subscribe(struct client *c, struct client_sub *s)
{
	MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
	int rc;

	opts.onSuccess5 = on_subscribe;
	opts.onFailure5 = on_subscribe_failure;
	opts.context = c;
	rc = MQTTAsync_subscribe(c->paho, s->topic, 1, &opts);
	if (rc != MQTTASYNC_SUCCESS) {
		log_error("client: subscribe to '%s' failed: %s", s->topic, MQTTAsync_strerror(rc));
		return -EIO;
	}
	s->token = opts.token;
	s->state = CLIENT_SUB_PENDING;
	return 0;
}

/* Moves cmd on as far as the connection and its subscription allow. */
static void advance(struct client *c, struct client_cmd *cmd)
{
	struct client_sub *s;
	int r = 0;

	if (c->dead || c->closed || !c->connected || cmd->state != CLIENT_CMD_WAITING)
		return;
	s = sub_find(c, cmd->agent);
	if (!s) {
		if (c->n_subs == CLIENT_SUBS_MAX) {
			publish_failed(c, cmd, -ENOBUFS, "too many agents on one client");
			return;
		}
		s = &c->subs[c->n_subs++];
		snprintf(s->agent, sizeof(s->agent), "%s", cmd->agent);
		snprintf(s->topic, sizeof(s->topic), "%s", cmd->topic);
		r = subscribe(c, s);
		if (r < 0)
			c->n_subs--;
	} else if (s->state == CLIENT_SUB_DONE) {
		r = publish(c, cmd);
	}
	if (r < 0)
		publish_failed(c, cmd, r, "cannot hand the command to the MQTT library");
}

static void advance_all(struct client *c)
{
	struct client_cmd *cmd, *next;

	for (cmd = c->cmds; cmd; cmd = next) {
		next = cmd->next; /* advance() may remove cmd */
		advance(c, cmd);
	}
}

static void on_subscribed(struct client *c, const struct client_event *ev)
{
	struct client_cmd *cmd, *next;

	for (unsigned i = 0; i < c->n_subs; i++) {
		struct client_sub *s = &c->subs[i];

		if (s->state != CLIENT_SUB_PENDING || s->token != ev->token)
			continue;
		if (ev->kind == CLIENT_EV_SUBSCRIBED) {
			log_debug("client: subscribed to '%s'", s->topic);
			s->state = CLIENT_SUB_DONE;
			advance_all(c);
			return;
		}
		log_error("client: the broker refused the subscription to '%s' (reason 0x%02x)%s%s",
		          s->topic, (unsigned)ev->code, ev->text[0] ? ": " : "", ev->text);
		/* without the subscription no result could be seen: fail its commands */
		for (cmd = c->cmds; cmd; cmd = next) {
			next = cmd->next;
			if (strcmp(cmd->agent, s->agent) == 0)
				publish_failed(c, cmd, -EPERM,
				               "the broker refused the result subscription");
		}
		c->subs[i] = c->subs[--c->n_subs];
		return;
	}
}

static void on_published(struct client *c, const struct client_event *ev)
{
	char why[256];

	for (struct client_cmd *cmd = c->cmds; cmd; cmd = cmd->next) {
		if (cmd->state != CLIENT_CMD_PUBLISHED || cmd->token != ev->token)
			continue;
		if (ev->kind == CLIENT_EV_PUBLISHED) {
			cmd->state = CLIENT_CMD_ACKED;
			log_debug("client: command '%s' delivered to the broker", cmd->cmd_id);
			if (c->cb.published)
				c->cb.published(c, cmd->cmd_id, 0, NULL, c->data);
			return;
		}
		snprintf(why, sizeof(why), "the broker refused the command (reason 0x%02x)%s%s",
		         (unsigned)ev->code, ev->text[0] ? ": " : "", ev->text);
		publish_failed(c, cmd, -EPERM, why);
		return;
	}
}

static void on_result(struct client *c, const struct client_event *ev)
{
	struct command_result r;
	struct client_cmd *cmd;
	char err[COMMAND_ERR_MAX];

	if (ev->code) /* retained: not a live result of a command of ours */
		return;
	if (command_result_decode(ev->payload, ev->len, &r, err, sizeof(err)) < 0) {
		log_debug("client: ignoring a result message that does not decode: %s", err);
		return;
	}
	cmd = cmd_find(c, r.cmd_id);
	if (!cmd || strcmp(r.agent, cmd->agent) != 0)
		return;
	if (command_status_is_final(r.status))
		cmd_remove(c, cmd);
	if (c->cb.result)
		c->cb.result(c, &r, ev->payload, ev->len, c->data);
}

static void dispatch(struct client *c, const struct client_event *ev)
{
	char why[256];

	switch (ev->kind) {
	case CLIENT_EV_CONNECTED:
		log_debug("client: connected (the broker's Receive Maximum: %d)", ev->code);
		c->connected = true;
		c->recv_max = ev->code > 0 ? (unsigned)ev->code : 65535;
		if (c->cb.connected)
			c->cb.connected(c, c->data);
		if (!c->dead)
			advance_all(c);
		break;
	case CLIENT_EV_CONNECT_FAILED:
		snprintf(why, sizeof(why), "cannot connect to the broker: %s (%d)",
		         ev->text[0] ? ev->text : "no reason given", ev->code);
		close_client(c, why);
		break;
	case CLIENT_EV_LOST:
		snprintf(why, sizeof(why), "connection to the broker lost%s%s",
		         ev->text[0] ? ": " : "", ev->text);
		close_client(c, why);
		break;
	case CLIENT_EV_SUBSCRIBED:
	case CLIENT_EV_SUBSCRIBE_FAILED:
		on_subscribed(c, ev);
		break;
	case CLIENT_EV_PUBLISHED:
	case CLIENT_EV_PUBLISH_FAILED:
		on_published(c, ev);
		break;
	case CLIENT_EV_MESSAGE:
		on_result(c, ev);
		break;
	}
}

static void event_free(struct client_event *ev)
{
	free(ev->payload);
	free(ev);
}

/* Client code that may call the owner back starts: c stays allocated until it ends. */
static void enter(struct client *c)
{
	c->busy++;
}

/* ... and ends: frees c when client_free() was called meanwhile. */
static void leave(struct client *c)
{
	if (--c->busy == 0 && c->dead)
		release(c);
}

static void mail_deliver(struct loop *loop, void *msg, void *ctx)
{
	struct client *c = ctx;

	(void)loop;
	enter(c);
	if (!c->closed)
		dispatch(c, msg);
	event_free(msg);
	leave(c); /* last: a callback above may have called client_free() */
}

static void mail_drop(void *msg, void *ctx)
{
	(void)ctx;
	event_free(msg);
}

/*
 * Events were dropped (mailbox full or out of memory). A lost connection is healed here: Paho
 * knows the state. A lost acknowledgement or result is not: the owner's timeout covers it, and
 * sending the command again with the same cmd_id asks the agent what became of it.
 */
static void mail_overflow(struct loop *loop, uint64_t n, void *ctx)
{
	struct client *c = ctx;

	(void)loop;
	if (c->closed)
		return;
	log_warn("client: %" PRIu64 " MQTT events dropped (queue full or out of memory)", n);
	if (c->connected && c->paho && !MQTTAsync_isConnected(c->paho)) {
		enter(c);
		close_client(c, "connection to the broker lost (events dropped)");
		leave(c);
	}
}

static const struct loop_mailbox_ops client_mail_ops = {
	.deliver = mail_deliver,
	.drop = mail_drop,
	.overflow = mail_overflow,
};

int client_new(struct loop *loop, const struct client_options *o, const struct client_callbacks *cb,
               void *data, struct client **ret)
{
	MQTTAsync_createOptions copts = MQTTAsync_createOptions_initializer5;
	MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	struct client *c = NULL;
	char client_id[64], id[COMMAND_ID_MAX];
	int rc, tls, r = -EINVAL;

	if (!loop || !o || !o->url || !ret)
		goto out;
	tls = parse_broker_url_tls(o->url);
	if (tls < 0) {
		log_error("client: bad broker '%s': want tcp://, ssl://, mqtts://, ... host:port",
		          o->url);
		goto out;
	}
	/* Paho ignores TLS options on a plaintext URL: no silent fallback to plaintext */
	if (!tls && (o->cafile || o->certfile)) {
		log_error("client: a CA or client certificate with the plaintext broker '%s': use "
		          "ssl:// (or mqtts://) for TLS",
		          o->url);
		goto out;
	}
	r = -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto out;
	c->loop = loop;
	if (cb)
		c->cb = *cb;
	c->data = data;
	c->signer = o->signer;
	c->mbox = loop_mailbox_new(loop, CLIENT_PENDING_MAX, &client_mail_ops, c);
	if (!c->mbox)
		goto out;
	if (o->client_id) {
		snprintf(client_id, sizeof(client_id), "%s", o->client_id);
	} else {
		if (client_new_cmd_id(id) < 0)
			snprintf(id, sizeof(id), "0");
		snprintf(client_id, sizeof(client_id), "cradle-client-%ld-%.8s", (long)getpid(),
		         id);
	}
	/*
	 * Publishes beyond the broker's Receive Maximum (mosquitto: 20) wait in Paho's queue, which
	 * refuses more than maxBufferedMessages (default 100) even while connected: a bulk job
	 * hands over hundreds at once. Their completions fit the mailbox, so allow as many.
	 */
	copts.maxBufferedMessages = CLIENT_PENDING_MAX;
	rc = MQTTAsync_createWithOptions(&c->paho, o->url, client_id, MQTTCLIENT_PERSISTENCE_NONE,
	                                 NULL, &copts);
	if (rc != MQTTASYNC_SUCCESS) {
		c->paho = NULL;
		log_error("client: bad broker '%s': %s", o->url, MQTTAsync_strerror(rc));
		r = -EINVAL;
		goto out;
	}
	r = -EIO;
	rc = MQTTAsync_setCallbacks(c->paho, c, on_connection_lost, on_message, NULL);
	if (rc != MQTTASYNC_SUCCESS)
		goto fail;
	conn.cleanstart = 1;
	conn.keepAliveInterval = o->keepalive_s > 0 ? o->keepalive_s : 30;
	conn.connectTimeout = o->connect_timeout_s > 0 ? o->connect_timeout_s : 10;
	conn.automaticReconnect = 0;
	conn.onSuccess5 = on_connect;
	conn.onFailure5 = on_connect_failure;
	conn.context = c;
	conn.username = o->username;
	conn.password = o->password;
	if (tls) {
		ssl.trustStore = o->cafile;
		ssl.keyStore = o->certfile;
		ssl.privateKey = o->keyfile;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		conn.ssl = &ssl;
	}
	rc = MQTTAsync_connect(c->paho, &conn);
	if (rc != MQTTASYNC_SUCCESS)
		goto fail;
	*ret = c;
	return 0;
fail:
	log_error("client: cannot connect to '%s': %s", o->url, MQTTAsync_strerror(rc));
out:
	client_free(c);
	return r;
}

struct client *client_free(struct client *c)
{
	if (!c || c->dead)
		return NULL;
	c->dead = true;
	if (c->paho) {
		MQTTAsync_disconnectOptions dopts = MQTTAsync_disconnectOptions_initializer5;

		dopts.timeout = 1000;
		if (MQTTAsync_isConnected(c->paho))
			MQTTAsync_disconnect(c->paho, &dopts);
		/* no Paho callback runs after this, so nothing is posted any more */
		MQTTAsync_destroy(&c->paho);
	}
	/* frees the events still waiting; safe from inside the mailbox's own delivery */
	c->mbox = loop_mailbox_free(c->mbox);
	if (!c->busy)
		release(c);
	return NULL;
}

int client_send(struct client *c, const struct command *cmd, int ttl_s)
{
	struct client_cmd *cc = NULL;
	char id[COMMAND_ID_MAX];
	size_t len;
	int r = -EINVAL;

	if (c->closed || c->dead)
		return -ENOTCONN;
	if (ttl_s < 1 || ttl_s > CLIENT_TTL_MAX ||
	    command_id_normalize(cmd->cmd_id, strlen(cmd->cmd_id), id) < 0 || cmd_find(c, id))
		goto out;
	r = -ENOMEM;
	cc = calloc(1, sizeof(*cc));
	if (!cc)
		goto out;
	r = -EINVAL;
	memcpy(cc->cmd_id, id, sizeof(id));
	if (topics_build(cc->topic, sizeof(cc->topic), TOPICS_RESULT, cmd->agent, NULL) < 0)
		goto out;
	snprintf(cc->agent, sizeof(cc->agent), "%s", cmd->agent);
	cc->ttl_s = ttl_s;
	cc->payload = command_encode(cmd);
	if (!cc->payload)
		goto out;
	len = strlen(cc->payload);
	if (len > COMMAND_PAYLOAD_MAX)
		goto out;
	if (c->signer) {
		/* the signature covers exactly these bytes, which go out unchanged */
		r = cmdsig_sign(c->signer, cc->payload, len, cc->sig);
		if (r < 0)
			goto out;
		memcpy(cc->key_id, cmdsig_signer_pubkey(c->signer)->id, sizeof(cc->key_id));
	}
	cc->state = CLIENT_CMD_WAITING;
	cc->next = c->cmds;
	c->cmds = cc;
	cc = NULL;
	enter(c);
	advance(c, c->cmds); /* may call published(), which may free c */
	leave(c);
	r = 0;
out:
	cmd_free_one(cc);
	return r;
}

void client_forget(struct client *c, const char *cmd_id)
{
	char id[COMMAND_ID_MAX];
	struct client_cmd *cmd;

	if (command_id_normalize(cmd_id, strlen(cmd_id), id) < 0)
		return;
	cmd = cmd_find(c, id);
	if (cmd)
		cmd_remove(c, cmd);
}

unsigned client_receive_maximum(const struct client *c)
{
	return c->recv_max ? c->recv_max : 65535;
}

unsigned client_in_flight(const struct client *c)
{
	unsigned n = 0;

	for (const struct client_cmd *cmd = c->cmds; cmd; cmd = cmd->next)
		n++;
	return n;
}

int client_new_cmd_id(char *out)
{
	uint8_t b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	command_id_format(b, out);
	return 0;
}
