/* SPDX-License-Identifier: MIT */
/*
 * cradle-loadgen: publishes what a fleet of cradle agents publishes, as fast as the broker takes
 * it, so the dashboard's ingest can be measured against a plain MQTT subscriber (bench/dashboard).
 *
 * For M agent ids it publishes, like a real agent after a connect, a retained birth (status
 * online), a retained meta (site, station), then the retained device state of each of its
 * phones; N phones in all, spread evenly over the agents. Every message is encoded with the
 * proto codec, so it is schema-valid, and every agent keeps the contract's ordering rules: one
 * session per run (the start time in ms, so never reused), seq 0, 1, 2, ... +1 per message.
 * Agents are interleaved (phone k of every agent, then phone k+1) so the load looks like many
 * stations at once, not one after the other.
 *
 * One MQTT 5 connection, QoS 1, at most --window messages in flight (published, not yet
 * acknowledged; capped at the broker's Receive Maximum); Paho calls back on its own thread,
 * the main thread waits on a condition variable when the window is full. Prints one line on
 * stdout at the end:
 *   loadgen: published MSGS messages (STATES device states, AGENTS agents) in S s: R msg/s
 * Exit status 0 when every message was acknowledged, 1 otherwise, 2 for bad usage.
 *
 * With --answer N (bench/jobs) it also answers commands as the agents would: it subscribes to
 * every agent's cmd topic before it publishes anything, and for each command received (on
 * Paho's thread: decoded with the proto codec, queued) the main thread publishes accepted,
 * in_progress (progress 50) and succeeded on that agent's result topic, each with the agent's
 * session and next seq and the command's Correlation Data echoed, as proto/COMMANDS.md says.
 * Signatures are not checked (the dashboard under test is the only sender). It exits once N
 * commands were answered, or after --answer-timeout s, and then prints a second line:
 *   loadgen: answered CMDS commands (BAD undecodable) first_ms F last_ms L (wall clock, Unix ms)
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <MQTTAsync.h>

#include "command.h"
#include "proto.h"
#include "topics.h"
#include "version.h"

#define LOADGEN_DAY 86400

struct loadgen {
	/* options */
	const char *broker;
	const char *prefix; /* agent ids are "<prefix>-NNNN" */
	long phones, agents, window, sites;
	long repeat; /* rounds of device states (each round: every phone once more) */
	int64_t now; /* Unix s: the probe time the states claim */
	int64_t session;

	MQTTAsync client;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	long inflight;
	long acked, failed;
	bool connected, connect_failed;
	int64_t *seq; /* per agent: next seq */

	/* --answer: commands received, answered by the main thread in arrival order */
	long answer, answer_timeout;
	struct loadgen_cmd *cmd_head, *cmd_tail;
	long cmds, cmds_bad, answered;
	int64_t cmd_first_ms, cmd_last_ms;
	bool subscribed;
};

struct loadgen_cmd {
	struct loadgen_cmd *next;
	long agent;
	char cmd_id[COMMAND_ID_MAX];
	char udid[COMMAND_UDID_MAX];
	char name[COMMAND_NAME_MAX];
};

static int64_t loadgen_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double loadgen_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void loadgen_on_connect(void *context, MQTTAsync_successData5 *resp)
{
	struct loadgen *g = context;
	int recv_max = 0;

	/*
	 * More in flight than the broker's Receive Maximum (mosquitto: max_inflight_messages,
	 * default 20) makes Paho queue the rest and send them from its own timer: measured 400
	 * msg/s instead of 15 000. Keep the window within it.
	 */
	if (resp &&
	    MQTTProperties_hasProperty(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM))
		recv_max = MQTTProperties_getNumericValue(&resp->properties,
		                                          MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
	pthread_mutex_lock(&g->lock);
	if (recv_max > 0 && g->window > recv_max) {
		fprintf(stderr, "loadgen: window %ld > the broker's Receive Maximum %d: using %d\n",
		        g->window, recv_max, recv_max);
		g->window = recv_max;
	}
	g->connected = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void loadgen_on_connect_failure(void *context, MQTTAsync_failureData5 *resp)
{
	struct loadgen *g = context;

	fprintf(stderr, "loadgen: connect to %s failed: %s\n", g->broker,
	        resp && resp->message ? resp->message : MQTTAsync_strerror(resp ? resp->code : -1));
	pthread_mutex_lock(&g->lock);
	g->connect_failed = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void loadgen_done(struct loadgen *g, bool ok)
{
	pthread_mutex_lock(&g->lock);
	g->inflight--;
	if (ok)
		g->acked++;
	else
		g->failed++;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void loadgen_on_pub(void *context, MQTTAsync_successData5 *resp)
{
	(void)resp;
	loadgen_done(context, true);
}

static void loadgen_on_pub_failure(void *context, MQTTAsync_failureData5 *resp)
{
	struct loadgen *g = context;

	pthread_mutex_lock(&g->lock);
	if (g->failed == 0)
		fprintf(stderr, "loadgen: publish failed: %s\n",
		        MQTTAsync_strerror(resp ? resp->code : -1));
	pthread_mutex_unlock(&g->lock);
	loadgen_done(g, false);
}

static void loadgen_on_lost(void *context, char *cause)
{
	struct loadgen *g = context;

	fprintf(stderr, "loadgen: connection lost: %s\n", cause ? cause : "(no reason)");
	pthread_mutex_lock(&g->lock);
	g->connected = false;
	g->connect_failed = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

/* Takes ownership of payload. Waits while the window is full. corr: Correlation Data or NULL;
 * retain: device states and agent topics are retained, command results never. */
static int loadgen_publish_props(struct loadgen *g, const char *topic, char *payload,
                                 const char *corr, int retain)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	MQTTProperty prop = { .identifier = MQTTPROPERTY_CODE_CORRELATION_DATA };
	char corr_buf[COMMAND_ID_MAX];
	int rc = 0;

	if (!payload)
		return -ENOMEM;
	pthread_mutex_lock(&g->lock);
	while (g->inflight >= g->window && !g->connect_failed)
		pthread_cond_wait(&g->cond, &g->lock);
	if (g->connect_failed) {
		pthread_mutex_unlock(&g->lock);
		rc = -ENOTCONN;
		goto out;
	}
	g->inflight++;
	pthread_mutex_unlock(&g->lock);

	ro.onSuccess5 = loadgen_on_pub;
	ro.onFailure5 = loadgen_on_pub_failure;
	ro.context = g;
	if (corr) {
		/* Paho copies the property; it only wants a non-const pointer */
		snprintf(corr_buf, sizeof(corr_buf), "%s", corr);
		prop.value.data.data = corr_buf;
		prop.value.data.len = (int)strlen(corr_buf);
		MQTTProperties_add(&ro.properties, &prop);
	}
	rc = MQTTAsync_send(g->client, topic, (int)strlen(payload), payload, 1, retain, &ro);
	MQTTProperties_free(&ro.properties);
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "loadgen: MQTTAsync_send: %s\n", MQTTAsync_strerror(rc));
		pthread_mutex_lock(&g->lock);
		g->inflight--;
		pthread_mutex_unlock(&g->lock);
		rc = -EIO;
		goto out;
	}
	rc = 0;
out:
	free(payload);
	return rc;
}

static int loadgen_publish(struct loadgen *g, const char *topic, char *payload)
{
	return loadgen_publish_props(g, topic, payload, NULL, 1);
}

static void loadgen_header(struct loadgen *g, long agent, struct proto_header *h)
{
	snprintf(h->agent, sizeof(h->agent), "%s-%04ld", g->prefix, agent);
	h->session = g->session;
	h->seq = g->seq[agent]++;
	h->ts_ms = loadgen_now_ms();
}

/* Paho's thread: decode, queue for the main thread (publishing here could wait on the window,
 * whose acknowledgements arrive on this very thread). */
static int loadgen_on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct loadgen *g = context;
	struct loadgen_cmd *c = calloc(1, sizeof(*c));
	struct command *cmd = calloc(1, sizeof(*cmd));
	char agent[TOPICS_AGENT_MAX], corr[COMMAND_ID_MAX] = "";
	enum topics_kind kind;
	MQTTProperty *p;
	bool ok = false;
	long idx = -1;
	size_t plen = strlen(g->prefix);

	(void)topic_len;
	p = MQTTProperties_getProperty(&m->properties, MQTTPROPERTY_CODE_CORRELATION_DATA);
	if (p)
		command_id_normalize(p->value.data.data, (size_t)p->value.data.len, corr);
	if (c && cmd && topics_parse(topic, &kind, agent, NULL) == 0 && kind == TOPICS_CMD &&
	    strncmp(agent, g->prefix, plen) == 0 && agent[plen] == '-' &&
	    command_decode(m->payload, (size_t)m->payloadlen, cmd, NULL, 0) ==
	            COMMAND_REJECT_NONE &&
	    strcmp(cmd->agent, agent) == 0 && strcmp(corr, cmd->cmd_id) == 0) {
		idx = strtol(agent + plen + 1, NULL, 10);
		ok = idx >= 0 && idx < g->agents;
	}
	pthread_mutex_lock(&g->lock);
	if (ok) {
		c->agent = idx;
		snprintf(c->cmd_id, sizeof(c->cmd_id), "%s", cmd->cmd_id);
		snprintf(c->udid, sizeof(c->udid), "%s", cmd->udid);
		snprintf(c->name, sizeof(c->name), "%s", cmd->name);
		if (g->cmd_tail)
			g->cmd_tail->next = c;
		else
			g->cmd_head = c;
		g->cmd_tail = c;
		c = NULL;
		if (g->cmds++ == 0)
			g->cmd_first_ms = loadgen_now_ms();
		g->cmd_last_ms = loadgen_now_ms();
		pthread_cond_broadcast(&g->cond);
	} else {
		g->cmds_bad++;
	}
	pthread_mutex_unlock(&g->lock);
	free(c);
	free(cmd);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
}

static void loadgen_on_subscribe(void *context, MQTTAsync_successData5 *resp)
{
	struct loadgen *g = context;

	(void)resp;
	pthread_mutex_lock(&g->lock);
	g->subscribed = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static void loadgen_on_subscribe_failure(void *context, MQTTAsync_failureData5 *resp)
{
	struct loadgen *g = context;

	(void)resp;
	fprintf(stderr, "loadgen: subscribe to the cmd topics failed\n");
	pthread_mutex_lock(&g->lock);
	g->connect_failed = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

static int loadgen_subscribe(struct loadgen *g)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	int rc;

	ro.onSuccess5 = loadgen_on_subscribe;
	ro.onFailure5 = loadgen_on_subscribe_failure;
	ro.context = g;
	rc = MQTTAsync_subscribe(g->client, TOPICS_ROOT "/agent/+/cmd", 1, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "loadgen: subscribe: %s\n", MQTTAsync_strerror(rc));
		return -EIO;
	}
	pthread_mutex_lock(&g->lock);
	while (!g->subscribed && !g->connect_failed)
		pthread_cond_wait(&g->cond, &g->lock);
	rc = g->subscribed ? 0 : -EIO;
	pthread_mutex_unlock(&g->lock);
	return rc;
}

/* accepted, in_progress, succeeded for one command, as its agent would send them. */
static int loadgen_answer_one(struct loadgen *g, const struct loadgen_cmd *c)
{
	static const enum command_status steps[] = { COMMAND_STATUS_ACCEPTED,
		                                     COMMAND_STATUS_IN_PROGRESS,
		                                     COMMAND_STATUS_SUCCEEDED };
	char topic[TOPICS_MAX];
	int rc = 0;

	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]) && rc == 0; i++) {
		struct command_result r = { .status = steps[i],
			                    .has_session = true,
			                    .progress = -1 };
		struct proto_header h;

		pthread_mutex_lock(&g->lock);
		loadgen_header(g, c->agent, &h);
		pthread_mutex_unlock(&g->lock);
		snprintf(r.agent, sizeof(r.agent), "%s", h.agent);
		snprintf(r.cmd_id, sizeof(r.cmd_id), "%s", c->cmd_id);
		snprintf(r.udid, sizeof(r.udid), "%s", c->udid);
		snprintf(r.name, sizeof(r.name), "%s", c->name);
		r.session = h.session;
		r.seq = h.seq;
		r.ts_ms = h.ts_ms;
		if (steps[i] == COMMAND_STATUS_IN_PROGRESS)
			r.progress = 50;
		rc = topics_build(topic, sizeof(topic), TOPICS_RESULT, h.agent, NULL);
		if (rc == 0)
			rc = loadgen_publish_props(g, topic, command_result_encode(&r), c->cmd_id,
			                           0);
	}
	return rc;
}

/* Main thread: answers queued commands until --answer were answered or the timeout. */
static int loadgen_answer(struct loadgen *g)
{
	double end = loadgen_mono() + (double)g->answer_timeout;
	int rc = 0;

	while (rc == 0) {
		struct loadgen_cmd *c;

		pthread_mutex_lock(&g->lock);
		while (!g->cmd_head && g->answered < g->answer && !g->connect_failed &&
		       loadgen_mono() < end) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&g->cond, &g->lock, &ts);
		}
		c = g->cmd_head;
		if (c) {
			g->cmd_head = c->next;
			if (!g->cmd_head)
				g->cmd_tail = NULL;
		}
		pthread_mutex_unlock(&g->lock);
		if (!c) {
			if (g->answered >= g->answer)
				break;
			fprintf(stderr, "loadgen: %ld of %ld commands answered when %s\n",
			        g->answered, g->answer,
			        g->connect_failed ? "the connection failed" : "the time ran out");
			rc = -ETIMEDOUT;
			break;
		}
		rc = loadgen_answer_one(g, c);
		free(c);
		if (rc == 0)
			g->answered++;
	}
	return rc;
}

static int loadgen_agent(struct loadgen *g, long agent)
{
	struct proto_agent_status st = { .online = true, .has_started_at = true };
	struct proto_agent_meta meta = { .stale_after_s = 3 * LOADGEN_DAY,
		                         .probe_interval_s = 900 };
	static const char *const commands[] = { "device.refresh", "backup.icloud.enable",
		                                "device.restart", "backup.local.start" };
	char topic[TOPICS_MAX];
	int rc;

	loadgen_header(g, agent, &st.h);
	st.started_at = g->session / 1000;
	snprintf(st.agent_version, sizeof(st.agent_version), "0.1.0");
	rc = topics_build(topic, sizeof(topic), TOPICS_STATUS, st.h.agent, NULL);
	if (rc == 0)
		rc = loadgen_publish(g, topic, proto_agent_status_encode(&st));
	if (rc < 0)
		return rc;

	loadgen_header(g, agent, &meta.h);
	snprintf(meta.version_agent, sizeof(meta.version_agent), "0.1.0");
	snprintf(meta.version_libimobiledevice, sizeof(meta.version_libimobiledevice), "1.3.0");
	snprintf(meta.version_paho, sizeof(meta.version_paho), "1.3.12");
	/* agents are grouped into sites in blocks, stations numbered within the fleet */
	snprintf(meta.site, sizeof(meta.site), "site-%02ld", agent * g->sites / g->agents);
	snprintf(meta.station, sizeof(meta.station), "cart-%04ld", agent);
	meta.capabilities.n = 2;
	snprintf(meta.capabilities.item[0], PROTO_STR_MAX, "probe");
	snprintf(meta.capabilities.item[1], PROTO_STR_MAX, "commands");
	meta.allowed_commands.n = 4;
	for (int i = 0; i < 4; i++)
		snprintf(meta.allowed_commands.item[i], PROTO_STR_MAX, "%s", commands[i]);
	snprintf(meta.min_ios_version, sizeof(meta.min_ios_version), "16.0");
	rc = topics_build(topic, sizeof(topic), TOPICS_META, meta.h.agent, NULL);
	if (rc == 0)
		rc = loadgen_publish(g, topic, proto_agent_meta_encode(&meta));
	return rc;
}

static void loadgen_cause(struct proto_device_state *s, const char *code, const char *evidence,
                          const char *remediation, const char *complexity)
{
	struct proto_cause *c = &s->causes[s->n_causes++];

	snprintf(c->code, sizeof(c->code), "%s", code);
	snprintf(c->evidence, sizeof(c->evidence), "%s", evidence);
	snprintf(c->remediation, sizeof(c->remediation), "%s", remediation);
	snprintf(c->complexity, sizeof(c->complexity), "%s", complexity);
}

/* Phone number `phone` (0..phones-1) of the fleet, round `round`: a deterministic mix. */
static int loadgen_state(struct loadgen *g, long phone, long round)
{
	static const char *const ios[] = { "17.5.1", "17.6", "18.1", "16.7.10", "15.8.3" };
	static const char *const types[] = { "iPhone14,5", "iPhone15,2", "iPhone12,8",
		                             "iPhone10,4" };
	struct proto_device_state *s;
	long agent = phone % g->agents;
	unsigned mix = (unsigned)(phone * 2654435761u) >> 8;
	int64_t age;
	char topic[TOPICS_MAX];
	int rc;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	loadgen_header(g, agent, &s->h);
	snprintf(s->udid, sizeof(s->udid), "00008110-BE%014lX", phone);
	s->attached = true;
	s->has_probed_at = true;
	s->probed_at = g->now + round;
	snprintf(s->product_type, sizeof(s->product_type), "%s", types[mix % 4]);
	snprintf(s->ios_version, sizeof(s->ios_version), "%s", ios[(mix / 4) % 5]);
	snprintf(s->build, sizeof(s->build), "21F90");
	snprintf(s->serial, sizeof(s->serial), "F%011ld", phone);
	s->has_name = true;
	snprintf(s->name, sizeof(s->name), "Bench %06ld", phone);
	s->pairing = PROTO_PAIRING_PAIRED;
	s->probe = PROTO_PROBE_OK;
	s->has_battery_pct = true;
	s->battery_pct = (int)(mix % 101);
	s->has_external_connected = s->external_connected = true;
	s->has_charging = true;
	s->charging = s->battery_pct < 100;
	s->has_total_bytes = s->has_available_bytes = true;
	s->total_bytes = 128000000000ull;
	s->available_bytes = 1000000000ull * (mix % 100);
	s->has_will_encrypt = s->has_requires_encryption = true;
	s->has_icloud_enabled = true;
	s->icloud_enabled = (mix / 20) % 10 != 0; /* one in ten has iCloud Backup off */
	/* backup age: mostly hours, some days, some never */
	age = (int64_t)((mix / 200) % (6 * LOADGEN_DAY));
	if ((mix / 7) % 25 == 0) {
		s->has_last_icloud = false;
	} else {
		s->has_last_icloud = true;
		s->last_icloud = s->probed_at - age;
		s->has_age = true;
		s->age_s = age;
	}
	if (s->has_last_icloud && s->icloud_enabled && age < 3 * LOADGEN_DAY) {
		s->status = PROTO_STATUS_OK;
	} else {
		s->status = PROTO_STATUS_STALE;
		if (!s->icloud_enabled)
			loadgen_cause(s, "icloud_backup_disabled", "CloudBackupEnabled=false",
			              "switch iCloud Backup on (command backup.icloud.enable)",
			              "low");
		else if (mix % 3 == 0)
			loadgen_cause(s, "icloud_storage_full",
			              "backupd: Backup failed: Not enough iCloud storage",
			              "free iCloud space or buy a bigger plan (person)", "low");
		if (strncmp(s->ios_version, "15.", 3) == 0)
			loadgen_cause(s, "ios_outdated", "ProductVersion below minimum 16.0",
			              "update iOS (MDM)", "high");
	}
	rc = topics_build(topic, sizeof(topic), TOPICS_DEVICE_STATE, s->h.agent, s->udid);
	if (rc == 0)
		rc = loadgen_publish(g, topic, proto_device_state_encode(s));
	free(s);
	return rc;
}

static int loadgen_connect(struct loadgen *g)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
	MQTTAsync_connectOptions c = MQTTAsync_connectOptions_initializer5;
	char id[64];
	int rc;

	co.MQTTVersion = MQTTVERSION_5;
	/* the window is ours; Paho only needs room for it */
	co.sendWhileDisconnected = 0;
	co.maxBufferedMessages = (int)g->window + 16;
	snprintf(id, sizeof(id), "cradle-loadgen-%" PRId64, g->session);
	rc = MQTTAsync_createWithOptions(&g->client, g->broker, id, MQTTCLIENT_PERSISTENCE_NONE,
	                                 NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "loadgen: %s: %s\n", g->broker, MQTTAsync_strerror(rc));
		return -EINVAL;
	}
	MQTTAsync_setCallbacks(g->client, g, loadgen_on_lost,
	                       g->answer > 0 ? loadgen_on_message : NULL, NULL);
	c.MQTTVersion = MQTTVERSION_5;
	c.cleanstart = 1;
	c.keepAliveInterval = 30;
	c.connectTimeout = 10;
	c.onSuccess5 = loadgen_on_connect;
	c.onFailure5 = loadgen_on_connect_failure;
	c.context = g;
	rc = MQTTAsync_connect(g->client, &c);
	if (rc != MQTTASYNC_SUCCESS) {
		fprintf(stderr, "loadgen: connect: %s\n", MQTTAsync_strerror(rc));
		return -EIO;
	}
	pthread_mutex_lock(&g->lock);
	while (!g->connected && !g->connect_failed)
		pthread_cond_wait(&g->cond, &g->lock);
	rc = g->connected ? 0 : -ECONNREFUSED;
	pthread_mutex_unlock(&g->lock);
	return rc;
}

static bool loadgen_long(const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return false;
	*ret = v;
	return true;
}

static void loadgen_usage(FILE *f)
{
	fprintf(f, "usage: cradle-loadgen --broker URL [--phones N] [--agents M] [--sites K]\n"
	           "                      [--window W] [--repeat R] [--prefix P]\n"
	           "                      [--answer N [--answer-timeout S]]\n"
	           "       cradle-loadgen --version | -h | --help\n"
	           "  --phones N   distinct phones (default 100000)\n"
	           "  --agents M   agent ids the phones are spread over (default 2000)\n"
	           "  --sites K    sites the agents are grouped into (default 20)\n"
	           "  --window W   QoS 1 messages in flight at most (default 1000)\n"
	           "  --repeat R   rounds of device states, each one per phone (default 1)\n"
	           "  --prefix P   agent ids are P-NNNN (default lg)\n"
	           "  --answer N   then answer commands as the agents would, until N were\n"
	           "               answered (accepted, in_progress, succeeded)\n"
	           "  --answer-timeout S  give up answering after S seconds (default 300)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "broker", required_argument, NULL, 'b' },
		{ "phones", required_argument, NULL, 'n' },
		{ "agents", required_argument, NULL, 'm' },
		{ "sites", required_argument, NULL, 's' },
		{ "window", required_argument, NULL, 'w' },
		{ "repeat", required_argument, NULL, 'r' },
		{ "prefix", required_argument, NULL, 'p' },
		{ "answer", required_argument, NULL, 'a' },
		{ "answer-timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct loadgen g = {
		.prefix = "lg",
		.phones = 100000,
		.agents = 2000,
		.window = 1000,
		.sites = 20,
		.repeat = 1,
		.answer_timeout = 300,
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
	};
	long total = 0, per_agent;
	double t0, t1;
	int opt, rc = 0, status = 1;
	char probe[TOPICS_AGENT_MAX];

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		bool ok = true;

		switch (opt) {
		case 'b':
			g.broker = optarg;
			break;
		case 'n':
			ok = loadgen_long(optarg, 1, 10000000, &g.phones);
			break;
		case 'm':
			ok = loadgen_long(optarg, 1, 9999, &g.agents);
			break;
		case 's':
			ok = loadgen_long(optarg, 1, 99, &g.sites);
			break;
		case 'w':
			ok = loadgen_long(optarg, 1, 65535, &g.window);
			break;
		case 'r':
			ok = loadgen_long(optarg, 1, 1000, &g.repeat);
			break;
		case 'p':
			g.prefix = optarg;
			break;
		case 'a':
			ok = loadgen_long(optarg, 0, 10000000, &g.answer);
			break;
		case 't':
			ok = loadgen_long(optarg, 1, 86400, &g.answer_timeout);
			break;
		case 'h':
			loadgen_usage(stdout);
			return 0;
		case 'V':
			puts("cradle-loadgen " CRADLE_VERSION);
			return 0;
		default:
			loadgen_usage(stderr);
			return 2;
		}
		if (!ok) {
			const struct option *o = opts;

			while (o->name && o->val != opt)
				o++;
			fprintf(stderr, "loadgen: bad value for --%s: '%s'\n", o->name, optarg);
			return 2;
		}
	}
	if (!g.broker || optind != argc) {
		loadgen_usage(stderr);
		return 2;
	}
	snprintf(probe, sizeof(probe), "%s-0000", g.prefix);
	if (!topics_agent_id_valid(probe)) {
		fprintf(stderr, "loadgen: --prefix '%s' does not make valid agent ids\n", g.prefix);
		return 2;
	}
	if (g.sites > g.agents)
		g.sites = g.agents;

	g.session = loadgen_now_ms();
	g.now = g.session / 1000;
	g.seq = calloc((size_t)g.agents, sizeof(*g.seq));
	if (!g.seq)
		return 1;
	if (loadgen_connect(&g) < 0)
		goto out;
	if (g.answer > 0 && loadgen_subscribe(&g) < 0)
		goto out;

	t0 = loadgen_mono();
	for (long a = 0; a < g.agents && rc == 0; a++)
		rc = loadgen_agent(&g, a);
	per_agent = (g.phones + g.agents - 1) / g.agents;
	for (long r = 0; r < g.repeat && rc == 0; r++)
		for (long k = 0; k < per_agent && rc == 0; k++)
			for (long a = 0; a < g.agents && rc == 0; a++) {
				long phone = k * g.agents + a;

				if (phone < g.phones)
					rc = loadgen_state(&g, phone, r);
			}
	pthread_mutex_lock(&g.lock);
	while (g.inflight > 0 && !g.connect_failed)
		pthread_cond_wait(&g.cond, &g.lock);
	total = g.acked;
	pthread_mutex_unlock(&g.lock);
	t1 = loadgen_mono();
	if (rc < 0 || g.failed || g.connect_failed) {
		fprintf(stderr, "loadgen: stopped: %ld acknowledged, %ld failed\n", total,
		        g.failed);
		goto out;
	}
	printf("loadgen: published %ld messages (%ld device states, %ld agents) in %.3f s: %.0f "
	       "msg/s\n",
	       total, g.phones * g.repeat, g.agents, t1 - t0, (double)total / (t1 - t0));
	fflush(stdout);
	if (g.answer > 0) {
		if (loadgen_answer(&g) < 0)
			goto out;
		pthread_mutex_lock(&g.lock);
		while (g.inflight > 0 && !g.connect_failed)
			pthread_cond_wait(&g.cond, &g.lock);
		pthread_mutex_unlock(&g.lock);
		if (g.failed || g.connect_failed) {
			fprintf(stderr, "loadgen: %ld results not acknowledged\n", g.failed);
			goto out;
		}
		printf("loadgen: answered %ld commands (%ld undecodable) first_ms %" PRId64
		       " last_ms %" PRId64 "\n",
		       g.answered, g.cmds_bad, g.cmd_first_ms, g.cmd_last_ms);
		fflush(stdout);
	}
	status = 0;
out:
	if (g.client) {
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;

		d.timeout = 2000;
		if (MQTTAsync_isConnected(g.client))
			MQTTAsync_disconnect(g.client, &d);
		for (int i = 0; i < 100 && MQTTAsync_isConnected(g.client); i++)
			nanosleep(&(struct timespec){ .tv_nsec = 20000000 }, NULL);
		MQTTAsync_destroy(&g.client);
	}
	while (g.cmd_head) {
		struct loadgen_cmd *c = g.cmd_head;

		g.cmd_head = c->next;
		free(c);
	}
	free(g.seq);
	return status;
}
