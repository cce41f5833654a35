/* SPDX-License-Identifier: MIT */
/*
 * mqtt: Paho MQTTAsync (MQTT 5) adapter between the broker, the outbox and the loop.
 *
 * Paho threads -> loop thread: every Paho callback copies what it needs into a struct
 * mqtt_event and posts it to the client's loop mailbox (common/loop.h), which delivers the
 * events in order on the loop thread. Because the mailbox keeps Paho's order, the -11 failures
 * Paho raises while completing a reconnect without a session are seen before the connected
 * event, and the outbox is then drained again from the start. Incoming messages have their own
 * cap (MQTT_INCOMING_QUEUE_MAX) inside the mailbox's, so a flood of them leaves room for the
 * publish results and connection events; should any event still be refused, the overflow
 * report re-checks the connection state, and stall_check() heals a lost publish result.
 *
 * Outbox drain: `cursor` is the last seq handed to Paho on this connection; the next record is
 * outbox_next(cursor). Publishes in flight are remembered by Paho token (unique among
 * in-flight QoS 1 messages) -> seq. A PUBACK < 0x80 deletes the record; a failure forgets the
 * token and moves the cursor back so the record is sent again. A reconnect moves the cursor to
 * 0: records still in flight (Paho resends them itself when the broker kept the session) are
 * skipped by the drain, all others are sent again in seq order.
 *
 * Paho maps its codes to -errno here, once, with MQTTAsync_strerror() in the log line.
 */
#include "mqtt.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "log.h"

#define RETRY_PAUSE_MS    1000
#define REFUSED_PAUSE_MIN 1000  /* first pause after a "not authorized" refusal */
#define REFUSED_PAUSE_MAX 60000 /* doubling up to this */
#define TLS_ERROR_MAX     256
#define STALL_CHECK_MS    5000
#define PAHO_BUFFER_EXTRA 32

enum mqtt_event_type {
	EV_CONNECTED,
	EV_CONNECT_FAILED,
	EV_LOST,
	EV_PUB_OK,
	EV_PUB_FAIL,
	EV_SUB_DONE,
	EV_MESSAGE,
};

struct mqtt_event {
	enum mqtt_event_type type;
	int token;
	int code;   /* Paho return code (failures) */
	int reason; /* MQTT 5 reason code */
	char *text; /* cause, failure message or topic; owned */
	char *payload;
	size_t len;
	bool retained;
	bool oversize; /* over incoming_max: payload not kept, len is its size */
	int qos;
	int64_t expiry_s;
	char correlation[MQTT_CORRELATION_MAX]; /* MQTT 5 Correlation Data, truncated */
	size_t correlation_len;
	struct mqtt_user_property *props; /* user properties, pointing into props_text */
	char *props_text;
	unsigned n_props;
	bool props_cut;
};

struct inflight {
	int token;
	uint64_t seq;
	uint64_t sent_ms; /* loop_now_ms() when handed to Paho */
};

struct mqtt {
	struct loop *loop;
	struct outbox *outbox;
	MQTTAsync client;
	struct mqtt_callbacks cb;
	void *data;
	struct loop_mailbox *mbox; /* Paho threads -> loop thread */

	/* copies of the options Paho keeps pointers to until connect completes (and reconnects) */
	char *url, *client_id, *username, *password, *cafile, *certfile, *keyfile;
	char *will_topic, *will_payload;
	size_t will_len;
	int keepalive_s, will_delay_s, session_expiry_s, retry_min_s, retry_max_s;
	size_t incoming_max;
	MQTTProperties connect_props, will_props;
	MQTTAsync_willOptions will;
	MQTTAsync_SSLOptions ssl;

	/* shared with Paho threads, under lock */
	pthread_mutex_t lock;
	unsigned queued_messages;
	uint64_t rx_dropped_paho;
	char tls_error[TLS_ERROR_MAX]; /* OpenSSL's last reason, from Paho's ssl_error_cb */

	/* loop thread only */
	bool connected;
	bool started;
	uint64_t cursor;
	struct inflight *inflight;
	unsigned n_inflight, inflight_max;
	uint64_t retry_timer;
	uint64_t stall_timer;
	uint64_t kick_timer;
	uint64_t refused_timer; /* pause after "not authorized": the drain waits for it */
	unsigned refused_pause_ms;
	struct mqtt_stats stats;
};

static int paho_to_errno(int rc)
{
	switch (rc) {
	case MQTTASYNC_SUCCESS:
		return 0;
	case MQTTASYNC_DISCONNECTED:
		return -ENOTCONN;
	case MQTTASYNC_MAX_BUFFERED_MESSAGES:
		return -ENOBUFS;
	case MQTTASYNC_BAD_UTF8_STRING:
	case MQTTASYNC_NULL_PARAMETER:
	case MQTTASYNC_TOPICNAME_TRUNCATED:
	case MQTTASYNC_BAD_STRUCTURE:
	case MQTTASYNC_BAD_QOS:
	case MQTTASYNC_BAD_MQTT_OPTION:
	case MQTTASYNC_WRONG_MQTT_VERSION:
		return -EINVAL;
	case MQTTASYNC_OPERATION_INCOMPLETE:
		return -ECANCELED;
	default:
		return -EIO;
	}
}

static const char *paho_strerror(int rc)
{
	const char *s = MQTTAsync_strerror(rc);

	return s ? s : "unknown error";
}

/* Any thread: hand ev (taken; NULL when it could not be allocated, counted) to the loop. */
static void post_event(struct mqtt *m, struct mqtt_event *ev)
{
	(void)loop_mailbox_post(m->mbox, ev);
}

static struct mqtt_event *event_new(enum mqtt_event_type type)
{
	struct mqtt_event *ev = calloc(1, sizeof(*ev));

	if (ev)
		ev->type = type;
	return ev;
}

static void event_free(struct mqtt_event *ev)
{
	free(ev->text);
	free(ev->payload);
	free(ev->props);
	free(ev->props_text);
	free(ev);
}

/* ---- Paho threads ---- */

static void on_connected(void *context, char *cause)
{
	struct mqtt *m = context;
	struct mqtt_event *ev = event_new(EV_CONNECTED);

	if (!ev) {
		post_event(m, NULL);
		return;
	}
	ev->text = cause ? strdup(cause) : NULL;
	post_event(m, ev);
}

/* Paho thread: OpenSSL's error queue, one line per call; the last line is kept. */
static int on_tls_error(const char *str, size_t len, void *u)
{
	struct mqtt *m = u;

	while (len > 0 && (str[len - 1] == '\n' || str[len - 1] == '\r'))
		len--;
	pthread_mutex_lock(&m->lock);
	snprintf(m->tls_error, sizeof(m->tls_error), "%.*s", (int)len, str);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static void on_connect_failure(void *context, MQTTAsync_failureData5 *resp)
{
	struct mqtt *m = context;
	struct mqtt_event *ev = event_new(EV_CONNECT_FAILED);
	char tls[TLS_ERROR_MAX];

	if (!ev) {
		post_event(m, NULL);
		return;
	}
	pthread_mutex_lock(&m->lock);
	memcpy(tls, m->tls_error, sizeof(tls));
	m->tls_error[0] = '\0';
	pthread_mutex_unlock(&m->lock);
	ev->code = resp ? resp->code : 0;
	ev->reason = resp ? (int)resp->reasonCode : 0;
	/* "TCP/TLS connect failure" alone says nothing: OpenSSL's reason says what to fix */
	if (tls[0])
		ev->text = strdup(tls);
	else
		ev->text = resp && resp->message ? strdup(resp->message) : NULL;
	post_event(m, ev);
}

static void on_lost(void *context, char *cause)
{
	struct mqtt *m = context;
	struct mqtt_event *ev = event_new(EV_LOST);

	if (!ev) {
		post_event(m, NULL);
		return;
	}
	ev->text = cause ? strdup(cause) : NULL;
	post_event(m, ev);
}

static void on_server_disconnect(void *context, MQTTProperties *props, enum MQTTReasonCodes rc)
{
	struct mqtt *m = context;
	struct mqtt_event *ev = event_new(EV_LOST);

	(void)props;
	if (!ev) {
		post_event(m, NULL);
		return;
	}
	ev->reason = (int)rc;
	ev->text = strdup(MQTTReasonCode_toString(rc));
	post_event(m, ev);
}

static void on_pub_success(void *context, MQTTAsync_successData5 *resp)
{
	struct mqtt *m = context;
	struct mqtt_event *ev = event_new(EV_PUB_OK);

	if (!ev) {
		post_event(m, NULL);
		return;
	}
	ev->token = resp->token;
	ev->reason = (int)resp->reasonCode;
	post_event(m, ev);
}

static void on_pub_failure(void *context, MQTTAsync_failureData5 *resp)
{
	struct mqtt *m = context;
	struct mqtt_event *ev = event_new(EV_PUB_FAIL);

	if (!ev) {
		post_event(m, NULL);
		return;
	}
	ev->token = resp->token;
	ev->code = resp->code;
	ev->reason = (int)resp->reasonCode;
	ev->text = resp->message ? strdup(resp->message) : NULL;
	post_event(m, ev);
}

static void on_sub_success(void *context, MQTTAsync_successData5 *resp)
{
	struct mqtt *m = context;
	struct mqtt_event *ev = event_new(EV_SUB_DONE);

	if (!ev) {
		post_event(m, NULL);
		return;
	}
	ev->token = resp->token;
	/* one filter per subscribe: its SUBACK reason is in reasonCode */
	ev->reason = (int)resp->reasonCode;
	post_event(m, ev);
}

static void on_sub_failure(void *context, MQTTAsync_failureData5 *resp)
{
	struct mqtt *m = context;
	struct mqtt_event *ev = event_new(EV_SUB_DONE);

	if (!ev) {
		post_event(m, NULL);
		return;
	}
	ev->token = resp->token;
	ev->code = resp->code;
	ev->reason = resp->reasonCode ? (int)resp->reasonCode : 0x80;
	post_event(m, ev);
}

/* Whether p is a user property small enough to keep. */
static bool user_prop_fits(const MQTTProperty *p)
{
	return p->value.data.len >= 0 && p->value.value.len >= 0 &&
	       p->value.data.len <= MQTT_USER_PROP_MAX && p->value.value.len <= MQTT_USER_PROP_MAX;
}

/* Appends the bytes of str and a NUL at buf + *pos; returns where they start. */
static const char *put_text(char *buf, size_t *pos, const MQTTLenString *str, size_t *ret_len)
{
	char *start = buf + *pos;

	*ret_len = (size_t)str->len;
	if (*ret_len)
		memcpy(start, str->data, *ret_len);
	start[*ret_len] = '\0';
	*pos += *ret_len + 1;
	return start;
}

/* Copies the user properties of a message (bounded in number and size) into ev. */
static void copy_user_props(struct mqtt_event *ev, const MQTTProperties *props)
{
	size_t total = 0, pos = 0;
	unsigned n = 0;
	int i;

	for (i = 0; i < props->count; i++) {
		const MQTTProperty *p = &props->array[i];

		if (p->identifier != MQTTPROPERTY_CODE_USER_PROPERTY)
			continue;
		if (n == MQTT_USER_PROPS_MAX || !user_prop_fits(p)) {
			ev->props_cut = true;
			continue;
		}
		n++;
		total += (size_t)p->value.data.len + (size_t)p->value.value.len + 2;
	}
	if (n == 0)
		return;
	ev->props = calloc(n, sizeof(*ev->props));
	ev->props_text = malloc(total);
	if (!ev->props || !ev->props_text) {
		free(ev->props);
		free(ev->props_text);
		ev->props = NULL;
		ev->props_text = NULL;
		ev->props_cut = true;
		return;
	}
	for (i = 0; i < props->count && ev->n_props < n; i++) {
		const MQTTProperty *p = &props->array[i];
		struct mqtt_user_property *u = &ev->props[ev->n_props];

		if (p->identifier != MQTTPROPERTY_CODE_USER_PROPERTY || !user_prop_fits(p))
			continue;
		u->name = put_text(ev->props_text, &pos, &p->value.data, &u->name_len);
		u->value = put_text(ev->props_text, &pos, &p->value.value, &u->value_len);
		ev->n_props++;
	}
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct mqtt *m = context;
	struct mqtt_event *ev = NULL;
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	MQTTProperty *corr;
	bool drop, oversize = msg->payloadlen >= 0 && (size_t)msg->payloadlen > m->incoming_max;

	pthread_mutex_lock(&m->lock);
	drop = m->queued_messages >= MQTT_INCOMING_QUEUE_MAX || msg->payloadlen < 0;
	if (drop)
		m->rx_dropped_paho++;
	else
		m->queued_messages++;
	pthread_mutex_unlock(&m->lock);
	if (drop)
		goto out;
	ev = event_new(EV_MESSAGE);
	if (ev) {
		ev->text = strndup(topic, tlen);
		/* an oversize message is delivered without its payload, so the receiver can still
		 * answer it (a command's correlation data names its cmd_id) */
		ev->payload = malloc(oversize ? 1 : (size_t)msg->payloadlen + 1);
	}
	if (!ev || !ev->text || !ev->payload) {
		pthread_mutex_lock(&m->lock);
		m->queued_messages--;
		m->rx_dropped_paho++;
		pthread_mutex_unlock(&m->lock);
		if (ev)
			event_free(ev);
		goto out;
	}
	ev->oversize = oversize;
	if (!oversize)
		memcpy(ev->payload, msg->payload, (size_t)msg->payloadlen);
	ev->payload[oversize ? 0 : msg->payloadlen] = '\0';
	ev->len = (size_t)msg->payloadlen;
	ev->retained = msg->retained != 0;
	ev->qos = msg->qos;
	ev->expiry_s = -1;
	if (MQTTProperties_hasProperty(&msg->properties, MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL))
		ev->expiry_s = (uint32_t)MQTTProperties_getNumericValue(
		        &msg->properties, MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL);
	corr = MQTTProperties_getProperty(&msg->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
	if (corr && corr->value.data.data && corr->value.data.len > 0) {
		ev->correlation_len = (size_t)corr->value.data.len < sizeof(ev->correlation)
		                              ? (size_t)corr->value.data.len
		                              : sizeof(ev->correlation);
		memcpy(ev->correlation, corr->value.data.data, ev->correlation_len);
	}
	copy_user_props(ev, &msg->properties);
	post_event(m, ev);
out:
	/* 1 = consumed: returning 0 would make Paho redeliver it forever */
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

/* ---- loop thread ---- */

static void drain(struct mqtt *m);

static int inflight_find(const struct mqtt *m, int token)
{
	for (unsigned i = 0; i < m->n_inflight; i++)
		if (m->inflight[i].token == token)
			return (int)i;
	return -1;
}

static bool inflight_has_seq(const struct mqtt *m, uint64_t seq)
{
	for (unsigned i = 0; i < m->n_inflight; i++)
		if (m->inflight[i].seq == seq)
			return true;
	return false;
}

static void inflight_remove(struct mqtt *m, unsigned i)
{
	m->inflight[i] = m->inflight[--m->n_inflight];
}

static void retry_timer_fired(struct loop *loop, uint64_t id, void *data)
{
	struct mqtt *m = data;

	(void)loop;
	(void)id;
	m->retry_timer = 0;
	m->cursor = 0;
	drain(m);
}

static void schedule_retry(struct mqtt *m)
{
	if (!m->retry_timer)
		m->retry_timer = loop_add_timer(m->loop, RETRY_PAUSE_MS, retry_timer_fired, m);
}

/*
 * Refusals that no resend of the same record can change. "Not authorized" (0x87) is not one:
 * an ACL or a certificate that does not match agent_id is fixed on the broker, and the record
 * must then still be there (refused_pause()).
 */
static bool reason_is_permanent(int reason)
{
	return reason == MQTTREASONCODE_TOPIC_NAME_INVALID ||
	       reason == MQTTREASONCODE_PACKET_TOO_LARGE ||
	       reason == MQTTREASONCODE_PAYLOAD_FORMAT_INVALID;
}

static void refused_timer_fired(struct loop *loop, uint64_t id, void *data)
{
	struct mqtt *m = data;

	(void)loop;
	(void)id;
	m->refused_timer = 0;
	m->cursor = 0;
	drain(m);
}

/*
 * The broker refused a record as not authorized: keep it, alarm, and stop draining for a
 * pause that doubles (1 s .. 60 s) while refusals go on, so a misconfigured ACL neither loses
 * records nor floods the broker. A PUBACK that succeeds resets the pause.
 */
static void refused_pause(struct mqtt *m, uint64_t seq, int reason)
{
	m->stats.refused++;
	if (seq <= m->cursor)
		m->cursor = seq - 1;
	if (m->refused_timer) /* already pausing: one alarm per pause */
		return;
	m->refused_pause_ms = m->refused_pause_ms ? m->refused_pause_ms * 2 : REFUSED_PAUSE_MIN;
	if (m->refused_pause_ms > REFUSED_PAUSE_MAX)
		m->refused_pause_ms = REFUSED_PAUSE_MAX;
	log_error("mqtt: broker refused outbox record %" PRIu64 ": %s (0x%02x); is agent_id "
	          "allowed by the broker's ACL (and equal to the certificate's CN)? Record kept, "
	          "%" PRIu64 " refusals so far, retrying in %us",
	          seq, MQTTReasonCode_toString((enum MQTTReasonCodes)reason), reason,
	          m->stats.refused, m->refused_pause_ms / 1000);
	m->refused_timer = loop_add_timer(m->loop, m->refused_pause_ms, refused_timer_fired, m);
}

static void handle_pub(struct mqtt *m, const struct mqtt_event *ev)
{
	int i = inflight_find(m, ev->token);
	uint64_t seq;

	if (i < 0) {
		/* a token of a direct publish (birth, shutdown status) or already forgotten */
		if (ev->type == EV_PUB_FAIL)
			log_debug("mqtt: publish token %d failed: %s (%d)", ev->token,
			          paho_strerror(ev->code), ev->code);
		return;
	}
	seq = m->inflight[i].seq;
	inflight_remove(m, (unsigned)i);
	if (ev->type == EV_PUB_OK && ev->reason < 0x80) {
		if (outbox_ack(m->outbox, seq) == 0)
			m->stats.acked++;
		m->refused_pause_ms = 0;
		drain(m);
		return;
	}
	if (ev->reason == MQTTREASONCODE_NOT_AUTHORIZED) {
		refused_pause(m, seq, ev->reason);
		return;
	}
	if (ev->reason >= 0x80 && reason_is_permanent(ev->reason)) {
		log_error("mqtt: broker refused outbox record %" PRIu64 " for good: %s (0x%02x), "
		          "dropping it",
		          seq, MQTTReasonCode_toString((enum MQTTReasonCodes)ev->reason),
		          ev->reason);
		outbox_ack(m->outbox, seq);
		m->stats.poisoned++;
		drain(m);
		return;
	}
	m->stats.failed++;
	if (ev->code == MQTTASYNC_OPERATION_INCOMPLETE || ev->code == MQTTASYNC_DISCONNECTED) {
		/* the session is gone (broker restart) or the connection dropped: resend */
		log_debug("mqtt: outbox record %" PRIu64 " not acknowledged (%s), will resend", seq,
		          paho_strerror(ev->code));
		if (seq <= m->cursor)
			m->cursor = seq - 1;
		drain(m);
		return;
	}
	log_warn("mqtt: outbox record %" PRIu64 " failed: %s (code %d, reason 0x%02x), will retry "
	         "in %ds",
	         seq, ev->text ? ev->text : paho_strerror(ev->code), ev->code, ev->reason,
	         RETRY_PAUSE_MS / 1000);
	schedule_retry(m);
}

/*
 * Safety net: a publish that got neither PUBACK nor failure within 3 keepalives of a live
 * connection is forgotten and sent again (a duplicate at worst). Paho reports every loss it
 * knows of (-11, -3), but an outbox record must never wait on a callback that may not come.
 * Its token cannot be reused for another message while Paho still holds it, so a late callback
 * for the forgotten token finds nothing and is ignored.
 */
static void stall_check(struct loop *loop, uint64_t id, void *data)
{
	struct mqtt *m = data;
	uint64_t now = loop_now_ms(), limit = 3000ULL * (uint64_t)m->keepalive_s;
	bool forgot = false;

	(void)id;
	m->stall_timer = loop_add_timer(loop, STALL_CHECK_MS, stall_check, m);
	if (!m->connected)
		return;
	for (unsigned i = 0; i < m->n_inflight;) {
		if (now - m->inflight[i].sent_ms < limit) {
			i++;
			continue;
		}
		log_warn("mqtt: outbox record %" PRIu64 " unacknowledged for %" PRIu64
		         "s, resending",
		         m->inflight[i].seq, (now - m->inflight[i].sent_ms) / 1000);
		if (m->inflight[i].seq <= m->cursor)
			m->cursor = m->inflight[i].seq - 1;
		inflight_remove(m, i);
		m->stats.failed++;
		forgot = true;
	}
	if (forgot)
		drain(m);
}

static void on_up(struct mqtt *m, const char *how)
{
	m->connected = true;
	m->stats.connects++;
	log_info("mqtt: connected to '%s' (%s)", m->url, how);
	if (m->cb.connected)
		m->cb.connected(m, m->data);
	m->cursor = 0;
	drain(m);
}

static void on_down(struct mqtt *m, const char *cause)
{
	if (m->connected)
		log_warn("mqtt: connection to '%s' lost: %s, reconnecting", m->url,
		         cause ? cause : "unknown cause");
	m->connected = false;
	if (m->cb.disconnected)
		m->cb.disconnected(m, cause, m->data);
}

static void handle_event(struct mqtt *m, struct mqtt_event *ev)
{
	switch (ev->type) {
	case EV_CONNECTED:
		on_up(m, ev->text ? ev->text : "connect");
		break;
	case EV_CONNECT_FAILED:
		log_warn("mqtt: cannot connect to '%s': %s (code %d, reason 0x%02x), will retry "
		         "within %ds",
		         m->url, ev->text ? ev->text : paho_strerror(ev->code), ev->code,
		         ev->reason, m->retry_max_s);
		break;
	case EV_LOST:
		on_down(m, ev->text);
		break;
	case EV_PUB_OK:
	case EV_PUB_FAIL:
		handle_pub(m, ev);
		break;
	case EV_SUB_DONE:
		if (ev->reason >= 0x80)
			log_error("mqtt: subscription refused: %s (0x%02x)",
			          MQTTReasonCode_toString((enum MQTTReasonCodes)ev->reason),
			          ev->reason);
		break;
	case EV_MESSAGE: {
		struct mqtt_message msg = { .topic = ev->text,
			                    .payload = ev->oversize ? NULL : ev->payload,
			                    .len = ev->len,
			                    .oversize = ev->oversize,
			                    .retained = ev->retained,
			                    .qos = ev->qos,
			                    .expiry_s = ev->expiry_s,
			                    .correlation =
			                            ev->correlation_len ? ev->correlation : NULL,
			                    .correlation_len = ev->correlation_len,
			                    .user_props = ev->props,
			                    .n_user_props = ev->n_props,
			                    .user_props_cut = ev->props_cut };

		pthread_mutex_lock(&m->lock);
		m->queued_messages--;
		pthread_mutex_unlock(&m->lock);
		m->stats.rx++;
		if (m->cb.message)
			m->cb.message(m, &msg, m->data);
		break;
	}
	}
}

static void mail_deliver(struct loop *loop, void *msg, void *ctx)
{
	(void)loop;
	handle_event(ctx, msg);
	event_free(msg);
}

/* A refused or never delivered event (any thread): a message gives its place back. */
static void mail_drop(void *msg, void *ctx)
{
	struct mqtt_event *ev = msg;
	struct mqtt *m = ctx;

	if (ev->type == EV_MESSAGE) {
		pthread_mutex_lock(&m->lock);
		m->queued_messages--;
		m->rx_dropped_paho++;
		pthread_mutex_unlock(&m->lock);
	}
	event_free(ev);
}

/* Events were refused: whatever they said about the connection, Paho knows it now. */
static void mail_overflow(struct loop *loop, uint64_t n, void *ctx)
{
	struct mqtt *m = ctx;
	bool up = m->client && MQTTAsync_isConnected(m->client);

	(void)loop;
	log_error("mqtt: %" PRIu64 " client events dropped (queue full or out of memory)", n);
	if (up && !m->connected)
		on_up(m, "resync after dropped events");
	else if (!up && m->connected)
		on_down(m, "resync after dropped events");
}

static const struct loop_mailbox_ops mqtt_mail_ops = {
	.deliver = mail_deliver,
	.drop = mail_drop,
	.overflow = mail_overflow,
};

/* Hands one outbox record to Paho. 0, or -errno (nothing was sent). */
static int send_record(struct mqtt *m, const struct outbox_record *rec)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	int rc;

	ro.onSuccess5 = on_pub_success;
	ro.onFailure5 = on_pub_failure;
	ro.context = m;
	msg.payload = rec->payload;
	msg.payloadlen = (int)rec->len;
	msg.qos = rec->qos;
	msg.retained = rec->retained;
	rc = MQTTAsync_sendMessage(m->client, rec->topic, &msg, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		log_debug("mqtt: cannot send outbox record %" PRIu64 ": %s", rec->seq,
		          paho_strerror(rc));
		return paho_to_errno(rc);
	}
	if (rec->qos == 0) {
		/* no PUBACK will come: QoS 0 records are done once Paho has them */
		outbox_ack(m->outbox, rec->seq);
		return 0;
	}
	m->inflight[m->n_inflight++] =
	        (struct inflight){ .token = ro.token, .seq = rec->seq, .sent_ms = loop_now_ms() };
	m->stats.sent++;
	return 0;
}

static void drain(struct mqtt *m)
{
	if (!m->connected || m->refused_timer)
		return;
	/* nothing may reach the broker that a power cut could make the agent forget */
	if (outbox_flush(m->outbox) < 0) {
		schedule_retry(m);
		return;
	}
	while (m->n_inflight < m->inflight_max) {
		struct outbox_record *rec = NULL;
		int r = outbox_next(m->outbox, m->cursor, &rec);

		if (r == -ENOENT)
			break;
		if (r < 0) {
			schedule_retry(m);
			break;
		}
		if (inflight_has_seq(m, rec->seq)) {
			m->cursor = rec->seq;
			outbox_record_free(rec);
			continue;
		}
		r = send_record(m, rec);
		if (r < 0) {
			outbox_record_free(rec);
			schedule_retry(m);
			break;
		}
		m->cursor = rec->seq;
		outbox_record_free(rec);
	}
}

static char *dup_opt(const char *s)
{
	return s && s[0] ? strdup(s) : NULL;
}

static int add_int_prop(MQTTProperties *props, enum MQTTPropertyCodes code, int value)
{
	MQTTProperty p = { .identifier = code };

	p.value.integer4 = (unsigned)value;
	return MQTTProperties_add(props, &p) == 0 ? 0 : -ENOMEM;
}

int mqtt_new(struct loop *loop, struct outbox *outbox, const struct mqtt_options *opts,
             const struct mqtt_callbacks *cb, void *data, struct mqtt **ret)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
	struct mqtt *m = NULL;
	int rc, r;

	if (!opts->url || !opts->client_id || !opts->will_topic || !opts->client_id[0])
		return log_error_errno(-EINVAL, "mqtt: url, client id and will topic are required");
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	pthread_mutex_init(&m->lock, NULL);
	m->loop = loop;
	m->outbox = outbox;
	if (cb)
		m->cb = *cb;
	m->data = data;
	m->keepalive_s = opts->keepalive_s > 0 ? opts->keepalive_s : 30;
	m->will_delay_s = opts->will_delay_s;
	m->session_expiry_s = opts->session_expiry_s > 0 ? opts->session_expiry_s : 3600;
	m->retry_min_s = opts->retry_min_s > 0 ? opts->retry_min_s : 1;
	m->retry_max_s = opts->retry_max_s > 0 ? opts->retry_max_s : 30;
	m->incoming_max = opts->incoming_max ? opts->incoming_max : MQTT_INCOMING_MAX;
	m->inflight_max = opts->inflight_max ? opts->inflight_max : MQTT_INFLIGHT_DEFAULT;
	m->inflight = calloc(m->inflight_max, sizeof(*m->inflight));
	m->url = strdup(opts->url);
	m->client_id = strdup(opts->client_id);
	m->will_topic = strdup(opts->will_topic);
	m->will_payload = malloc(opts->will_len + 1);
	m->username = dup_opt(opts->username);
	m->password = dup_opt(opts->password);
	m->cafile = dup_opt(opts->cafile);
	m->certfile = dup_opt(opts->certfile);
	m->keyfile = dup_opt(opts->keyfile);
	if (!m->inflight || !m->url || !m->client_id || !m->will_topic || !m->will_payload) {
		r = -ENOMEM;
		goto out;
	}
	if (opts->will_len)
		memcpy(m->will_payload, opts->will_payload, opts->will_len);
	m->will_len = opts->will_len;

	/* incoming messages, plus room for the results of every publish Paho may hold */
	m->mbox = loop_mailbox_new(
	        loop, MQTT_INCOMING_QUEUE_MAX + 2 * (m->inflight_max + PAHO_BUFFER_EXTRA) + 64,
	        &mqtt_mail_ops, m);
	if (!m->mbox) {
		r = -ENOMEM;
		goto out;
	}

	co.sendWhileDisconnected = 1;
	co.allowDisconnectedSendAtAnyTime = 1;
	/* small: the backlog lives in the outbox (a long Paho queue costs CPU, paho.mqtt.cpp #495)
	 */
	co.maxBufferedMessages = (int)m->inflight_max + PAHO_BUFFER_EXTRA;
	co.deleteOldestMessages = 0;
	co.MQTTVersion = MQTTVERSION_5;
	rc = MQTTAsync_createWithOptions(&m->client, m->url, m->client_id,
	                                 MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		m->client = NULL;
		r = log_error_errno(paho_to_errno(rc) ? paho_to_errno(rc) : -EIO,
		                    "mqtt: cannot create client for '%s': %s", m->url,
		                    paho_strerror(rc));
		goto out;
	}
	rc = MQTTAsync_setCallbacks(m->client, m, on_lost, on_message, NULL);
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_setConnected(m->client, m, on_connected);
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_setDisconnected(m->client, m, on_server_disconnect);
	if (rc != MQTTASYNC_SUCCESS) {
		r = log_error_errno(-EIO, "mqtt: cannot set callbacks: %s", paho_strerror(rc));
		goto out;
	}
	*ret = m;
	m = NULL;
	r = 0;
out:
	mqtt_free(m);
	return r;
}

static bool url_is_tls(const char *url)
{
	return strncmp(url, "ssl://", 6) == 0 || strncmp(url, "mqtts://", 8) == 0 ||
	       strncmp(url, "wss://", 6) == 0;
}

int mqtt_start(struct mqtt *m)
{
	MQTTAsync_connectOptions c = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_willOptions w = MQTTAsync_willOptions_initializer;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	int rc, r;

	MQTTProperties_free(&m->connect_props);
	MQTTProperties_free(&m->will_props);
	r = add_int_prop(&m->connect_props, MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL,
	                 m->session_expiry_s);
	if (r == 0 && m->will_delay_s > 0)
		r = add_int_prop(&m->will_props, MQTTPROPERTY_CODE_WILL_DELAY_INTERVAL,
		                 m->will_delay_s);
	if (r < 0)
		return r;
	w.topicName = m->will_topic;
	w.payload.data = m->will_payload;
	w.payload.len = (int)m->will_len;
	w.retained = 1;
	w.qos = 1;
	m->will = w;

	c.keepAliveInterval = m->keepalive_s;
	c.cleanstart = 0;
	c.MQTTVersion = MQTTVERSION_5;
	c.automaticReconnect = 1;
	c.minRetryInterval = m->retry_min_s;
	c.maxRetryInterval = m->retry_max_s;
	c.connectTimeout = 10;
	c.maxInflight = (int)m->inflight_max + PAHO_BUFFER_EXTRA;
	c.will = &m->will;
	c.willProperties = &m->will_props;
	c.connectProperties = &m->connect_props;
	c.username = m->username;
	c.password = m->password;
	c.onFailure5 = on_connect_failure;
	c.context = m;
	/* the URL's scheme decides (config.c refuses a CA file with a plaintext scheme) */
	if (url_is_tls(m->url) || m->cafile) {
		ssl.trustStore = m->cafile; /* NULL: OpenSSL's default paths, the system store */
		ssl.keyStore = m->certfile;
		ssl.privateKey = m->keyfile;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		ssl.disableDefaultTrustStore = m->cafile ? 1 : 0;
		ssl.ssl_error_cb = on_tls_error;
		ssl.ssl_error_context = m;
		m->ssl = ssl;
		c.ssl = &m->ssl;
	}
	rc = MQTTAsync_connect(m->client, &c);
	if (rc != MQTTASYNC_SUCCESS)
		return log_error_errno(paho_to_errno(rc) ? paho_to_errno(rc) : -EIO,
		                       "mqtt: cannot start connecting to '%s': %s", m->url,
		                       paho_strerror(rc));
	m->started = true;
	if (!m->stall_timer)
		m->stall_timer = loop_add_timer(m->loop, STALL_CHECK_MS, stall_check, m);
	return 0;
}

static void kick_now(struct mqtt *m)
{
	/* durable now even when disconnected: an outage plus a power cut must not lose records */
	if (!m->connected && outbox_flush(m->outbox) < 0)
		log_warn("mqtt: outbox flush failed, will retry on the next kick");
	drain(m);
}

static void kick_fired(struct loop *loop, uint64_t id, void *data)
{
	struct mqtt *m = data;

	(void)loop;
	(void)id;
	m->kick_timer = 0;
	kick_now(m);
}

void mqtt_kick(struct mqtt *m)
{
	/*
	 * Deferred to the next loop iteration, so that every put made while handling the current
	 * event shares one fdatasync (a burst of 500 device states costs one, not 500).
	 */
	if (m->kick_timer)
		return;
	m->kick_timer = loop_add_timer(m->loop, 0, kick_fired, m);
	if (!m->kick_timer)
		kick_now(m);
}

int mqtt_publish(struct mqtt *m, const char *topic, const void *payload, size_t len, bool retained,
                 int qos)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	if (!m->connected)
		return -ENOTCONN;
	ro.onFailure5 = on_pub_failure;
	ro.context = m;
	rc = MQTTAsync_send(m->client, topic, (int)len, payload, qos, retained ? 1 : 0, &ro);
	if (rc != MQTTASYNC_SUCCESS)
		return log_warn_errno(paho_to_errno(rc) ? paho_to_errno(rc) : -EIO,
		                      "mqtt: cannot publish to '%s': %s", topic, paho_strerror(rc));
	return 0;
}

int mqtt_subscribe(struct mqtt *m, const char *filter, int qos)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	ro.onSuccess5 = on_sub_success;
	ro.onFailure5 = on_sub_failure;
	ro.context = m;
	/* Retain As Published: without it the broker clears the retain flag on live delivery, and a
	 * retained command published while we are connected would look like a fresh one */
	ro.subscribeOptions.retainAsPublished = 1;
	rc = MQTTAsync_subscribe(m->client, filter, qos, &ro);
	if (rc != MQTTASYNC_SUCCESS)
		return log_warn_errno(paho_to_errno(rc) ? paho_to_errno(rc) : -EIO,
		                      "mqtt: cannot subscribe to '%s': %s", filter,
		                      paho_strerror(rc));
	return 0;
}

bool mqtt_is_connected(const struct mqtt *m)
{
	return m->connected;
}

void mqtt_get_stats(const struct mqtt *m, struct mqtt_stats *ret)
{
	struct mqtt *mm = (struct mqtt *)(uintptr_t)m;

	*ret = m->stats;
	ret->inflight = m->n_inflight;
	pthread_mutex_lock(&mm->lock);
	ret->rx_dropped = m->rx_dropped_paho;
	pthread_mutex_unlock(&mm->lock);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int mqtt_shutdown(struct mqtt *m, const void *payload, size_t len, int timeout_ms)
{
	MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	uint64_t deadline = loop_now_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
	int r = 0;
	int rc;

	loop_mailbox_flush(m->mbox);
	if (!m->connected) {
		r = -ENOTCONN;
		goto out;
	}
	ro.context = m;
	rc = MQTTAsync_send(m->client, m->will_topic, (int)len, payload, 1, 1, &ro);
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_waitForCompletion(m->client, ro.token, (unsigned long)timeout_ms);
	if (rc != MQTTASYNC_SUCCESS)
		log_warn("mqtt: offline status not confirmed: %s", paho_strerror(rc));
	/* let the acks of records in flight reach the outbox: fewer duplicates after restart */
	while (m->n_inflight > 0 && m->connected && loop_now_ms() < deadline) {
		sleep_ms(10);
		loop_mailbox_flush(m->mbox);
	}
	if (m->n_inflight > 0)
		r = -ETIMEDOUT;
out:
	if (m->client && MQTTAsync_isConnected(m->client)) {
		uint64_t now = loop_now_ms();

		d.timeout = now < deadline ? (int)(deadline - now) : 0;
		rc = MQTTAsync_disconnect(m->client, &d);
		while (rc == MQTTASYNC_SUCCESS && MQTTAsync_isConnected(m->client) &&
		       loop_now_ms() < deadline + 100)
			sleep_ms(10);
	}
	m->connected = false;
	return r;
}

struct mqtt *mqtt_free(struct mqtt *m)
{
	if (!m)
		return NULL;
	if (m->client)
		MQTTAsync_destroy(&m->client);
	if (m->retry_timer)
		loop_cancel_timer(m->loop, m->retry_timer);
	if (m->refused_timer)
		loop_cancel_timer(m->loop, m->refused_timer);
	if (m->stall_timer)
		loop_cancel_timer(m->loop, m->stall_timer);
	if (m->kick_timer)
		loop_cancel_timer(m->loop, m->kick_timer);
	/* Paho's threads are gone: free what they posted and the loop did not run yet */
	loop_mailbox_free(m->mbox);
	MQTTProperties_free(&m->connect_props);
	MQTTProperties_free(&m->will_props);
	pthread_mutex_destroy(&m->lock);
	free(m->inflight);
	free(m->url);
	free(m->client_id);
	free(m->username);
	free(m->password);
	free(m->cafile);
	free(m->certfile);
	free(m->keyfile);
	free(m->will_topic);
	free(m->will_payload);
	free(m);
	return NULL;
}
