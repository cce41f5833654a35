/* SPDX-License-Identifier: MIT */
/*
 * publish: see publish.h. Every message is numbered from the statefile's seq and goes through
 * the outbox (device states kept one by one while there is room and coalesced per device only
 * under pressure, events droppable under overflow, command results never dropped), so a broker
 * outage or a kill -9 loses nothing. Birth and meta are rebuilt on every connect and published
 * directly by the daemon.
 */
#include "publish.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentev.h"
#include "diagnose.h"
#include "durable.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "outbox.h"
#include "state.h"
#include "topics.h"
#include "version.h"

#ifndef CRADLE_LIMD_VERSION
# define CRADLE_LIMD_VERSION "unknown"
#endif
#ifndef CRADLE_PAHO_VERSION
# define CRADLE_PAHO_VERSION "unknown"
#endif

#define PUBLISH_PATH_MAX  512
#define PUBLISH_HELD_MAX  2000              /* messages held in memory while nothing can write */
#define PUBLISH_HELD_SIZE (8 * 1024 * 1024) /* and their bytes */

/* A message the outbox could not store (full disk) and the broker could not take yet. */
struct held {
	char *topic;
	char *payload;
	char *key; /* NULL for events */
	bool retained;
	size_t size;
};

struct publish {
	const struct agent_config *cfg;
	char statefile_path[PUBLISH_PATH_MAX];
	struct statefile sf;
	struct outbox *outbox;
	struct mqtt *mqtt;
	int64_t started_at;
	char topic_result[TOPICS_MAX];
	char topic_agent_event[TOPICS_MAX];
	struct agentev *agentev; /* told after every put, for outbox_pressure / outbox_ok */
	bool seq_failing;        /* the counter cannot be persisted: logged once */
	bool write_failing;      /* the last outbox write failed */
	bool need_republish;     /* states went out best-effort: send them durably again */
	struct held *held;       /* in order; oldest first */
	size_t n_held, cap_held, held_bytes;
	struct publish_stats stats;
};

struct publish *publish_new(const struct agent_config *cfg, const char *statefile_path,
                            const struct statefile *sf, struct outbox *outbox, int64_t started_at)
{
	struct publish *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->cfg = cfg;
	snprintf(p->statefile_path, sizeof(p->statefile_path), "%s", statefile_path);
	p->sf = *sf;
	p->outbox = outbox;
	p->started_at = started_at;
	if (topics_build(p->topic_result, sizeof(p->topic_result), TOPICS_RESULT, cfg->agent_id,
	                 NULL) < 0 ||
	    topics_build(p->topic_agent_event, sizeof(p->topic_agent_event), TOPICS_AGENT_EVENT,
	                 cfg->agent_id, NULL) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

void publish_set_mqtt(struct publish *p, struct mqtt *mqtt)
{
	p->mqtt = mqtt;
}

void publish_set_agentev(struct publish *p, struct agentev *agentev)
{
	p->agentev = agentev;
}

static void held_free(struct held *h)
{
	free(h->topic);
	free(h->payload);
	free(h->key);
}

struct publish *publish_free(struct publish *p)
{
	if (!p)
		return NULL;
	if (p->n_held)
		log_warn("%zu messages held in memory for want of disk space are lost at exit",
		         p->n_held);
	for (size_t i = 0; i < p->n_held; i++)
		held_free(&p->held[i]);
	free(p->held);
	free(p);
	return NULL;
}

void publish_get_stats(const struct publish *p, struct publish_stats *ret)
{
	*ret = p->stats;
	ret->held = p->n_held;
}

/* ---- numbering and publishing ---- */

static int64_t next_seq(struct publish *p)
{
	uint64_t seq = 0;
	int r = statefile_next_seq(p->statefile_path, &p->sf, &seq);

	if (r < 0) {
		/* the number is still unique in this session, and a restart begins a new one */
		if (!p->seq_failing)
			log_warn_errno(r, "cannot persist the message counter (full disk?), "
			                  "continuing in memory");
		p->seq_failing = true;
		seq = p->sf.next_seq++;
	} else if (p->seq_failing) {
		log_notice("the message counter is persisted again");
		p->seq_failing = false;
	}
	return (int64_t)seq;
}

static void header(struct publish *p, struct proto_header *h)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->agent, sizeof(h->agent), "%s", p->cfg->agent_id);
	h->ts_ms = wall_now_ms();
	h->seq = next_seq(p);
	h->session = (int64_t)p->sf.session;
}

/* Whether an outbox_put() error is the write failing (full disk, I/O), not the policy. */
static bool write_error(int r)
{
	return r < 0 && r != -ENOBUFS && r != -EINVAL && r != -ENOMEM;
}

/* The held message to give up for room (n_held: none): an event, else a superseded state. */
static size_t held_victim(const struct publish *p, const char *key)
{
	size_t i, j;

	for (i = 0; i < p->n_held; i++)
		if (!p->held[i].key)
			return i;
	for (i = 0; i < p->n_held; i++) {
		const char *k = p->held[i].key;

		if (strncmp(k, "result:", 7) == 0)
			continue;
		if (key && strcmp(key, k) == 0)
			return i; /* the one about to be held is newer */
		for (j = i + 1; j < p->n_held; j++)
			if (strcmp(p->held[j].key, k) == 0)
				return i;
	}
	return p->n_held;
}

/*
 * The outbox could not write: publish directly (QoS 1, not journaled: best-effort, a broker
 * outage or a crash now loses it) when connected, else hold it in memory for publish_retry().
 * Takes ownership of payload. ENQUEUED_* or -errno (dropped, counted and logged).
 */
static int spill(struct publish *p, const char *topic, char *payload, bool retained,
                 const char *key)
{
	size_t size = strlen(payload);
	struct held *h;

	if (p->mqtt && mqtt_is_connected(p->mqtt) &&
	    mqtt_publish(p->mqtt, topic, payload, size, retained, 1) == 0) {
		free(payload);
		p->stats.best_effort++;
		if (!p->stats.best_effort_logged) {
			log_warn(
			        "outbox cannot write: publishing best-effort (not journaled) until "
			        "it can");
			p->stats.best_effort_logged = true;
		}
		if (key && strncmp(key, "state:", 6) == 0)
			p->need_republish = true;
		if (p->agentev)
			agentev_write_failed(p->agentev, true, p->n_held);
		return ENQUEUED_BEST_EFFORT;
	}
	/*
	 * Full: as the outbox under pressure, the oldest held event gives way, then the oldest
	 * state a newer held state of the same device makes redundant (the newest state per
	 * device and every command result are kept: they are bounded by devices and commands).
	 */
	while (p->n_held >= PUBLISH_HELD_MAX || p->held_bytes + size > PUBLISH_HELD_SIZE) {
		size_t i = held_victim(p, key);

		if (i == p->n_held)
			break;
		p->held_bytes -= p->held[i].size;
		held_free(&p->held[i]);
		memmove(&p->held[i], &p->held[i + 1], (p->n_held - i - 1) * sizeof(*p->held));
		p->n_held--;
		p->stats.lost++;
		log_warn("no disk space and no broker: a held message was dropped");
	}
	if (p->n_held == p->cap_held) {
		size_t cap = p->cap_held ? p->cap_held * 2 : 64;
		struct held *n = realloc(p->held, cap * sizeof(*n));

		if (!n)
			goto lost;
		p->held = n;
		p->cap_held = cap;
	}
	h = &p->held[p->n_held];
	*h = (struct held){ .topic = strdup(topic),
		            .payload = payload,
		            .key = key && key[0] ? strdup(key) : NULL,
		            .retained = retained,
		            .size = size };
	if (!h->topic || (key && key[0] && !h->key)) {
		h->payload = NULL;
		held_free(h);
		goto lost;
	}
	p->n_held++;
	p->held_bytes += size;
	p->stats.held_total++;
	if (p->agentev)
		agentev_write_failed(p->agentev, false, p->n_held);
	return ENQUEUED_HELD;
lost:
	free(payload);
	p->stats.lost++;
	log_error("out of memory holding a message for '%s', dropping it", topic);
	return -ENOMEM;
}

/* A write worked after failures: tell agentev (disk_ok may follow). */
static void write_ok(struct publish *p)
{
	if (!p->write_failing)
		return;
	p->write_failing = false;
	p->stats.best_effort_logged = false;
	log_notice("outbox writes again");
	if (p->agentev)
		agentev_write_ok(p->agentev);
}

/*
 * Takes ownership of payload (may be NULL: allocation failed, logged). ENQUEUED_* when the
 * message is journaled, sent best-effort or held; -errno when it is lost (an event refused by a
 * full outbox, no memory).
 */
static int enqueue(struct publish *p, const char *topic, char *payload, bool retained,
                   const char *key)
{
	uint64_t dropped;
	int r;

	if (!payload) {
		log_error("out of memory encoding a message for '%s', dropping it", topic);
		return -ENOMEM;
	}
	/* while messages wait in memory, new ones queue behind them (seq order kept) */
	r = p->n_held ? -ENOSPC
	              : outbox_put(p->outbox, topic, payload, strlen(payload), retained, 1, key,
	                           NULL);
	if (r == 0) {
		free(payload);
		write_ok(p);
		r = ENQUEUED_JOURNALED;
	} else if (write_error(r)) {
		p->write_failing = true;
		r = spill(p, topic, payload, retained, key);
	} else {
		if (r == -ENOBUFS)
			log_warn("outbox full: event for '%s' dropped", topic);
		else
			log_error_errno(r, "outbox: cannot store the message for '%s'", topic);
		free(payload);
	}
	dropped = outbox_take_dropped(p->outbox);
	if (dropped)
		log_warn("outbox full: %llu older events dropped to make room",
		         (unsigned long long)dropped);
	if (p->mqtt)
		mqtt_kick(p->mqtt);
	if (p->agentev)
		agentev_outbox_check(p->agentev);
	return r;
}

bool publish_retry(struct publish *p)
{
	size_t done = 0;
	bool republish;

	outbox_maintain(p->outbox);
	while (done < p->n_held) {
		struct held *h = &p->held[done];
		int r = outbox_put(p->outbox, h->topic, h->payload, h->size, h->retained, 1, h->key,
		                   NULL);

		if (write_error(r) && p->mqtt && mqtt_is_connected(p->mqtt) &&
		    mqtt_publish(p->mqtt, h->topic, h->payload, h->size, h->retained, 1) == 0) {
			p->stats.best_effort++;
			if (h->key && strncmp(h->key, "state:", 6) == 0)
				p->need_republish = true;
			r = 0;
		} else if (write_error(r)) {
			break;
		} else if (r < 0) {
			p->stats.lost++; /* an event refused by a full outbox: as if put */
		}
		p->held_bytes -= h->size;
		held_free(h);
		done++;
	}
	if (done) {
		memmove(p->held, p->held + done, (p->n_held - done) * sizeof(*p->held));
		p->n_held -= done;
		log_info("%zu held messages sent on, %zu still held", done, p->n_held);
		if (p->mqtt)
			mqtt_kick(p->mqtt);
	}
	if (p->n_held == 0 && p->write_failing) {
		/* nothing to write to prove it: room for a compaction's worth will do (a write
		 * failing again says otherwise) */
		uint64_t free_b;

		if (durable_free_bytes(p->cfg->state_dir, &free_b, NULL) == 0 &&
		    free_b >= OUTBOX_COMPACT_MIN_DEAD)
			write_ok(p);
	}
	republish = p->need_republish && !p->write_failing && p->n_held == 0;
	if (republish)
		p->need_republish = false;
	return republish;
}

void publish_agent_event(struct publish *p, struct proto_agent_event *ev, const char *key)
{
	header(p, &ev->h);
	(void)enqueue(p, p->topic_agent_event, proto_agent_event_encode(ev), false, key);
}

void publish_event(struct publish *p, const char *udid, enum proto_event ev,
                   const struct proto_event_details *details)
{
	struct proto_device_event m;
	char topic[TOPICS_MAX];

	if (topics_build(topic, sizeof(topic), TOPICS_DEVICE_EVENT, p->cfg->agent_id, udid) < 0)
		return;
	memset(&m, 0, sizeof(m));
	header(p, &m.h);
	m.event = ev;
	snprintf(m.udid, sizeof(m.udid), "%s", udid);
	if (details)
		m.details = *details;
	(void)enqueue(p, topic, proto_device_event_encode(&m), false, NULL);
}

static void state_ctx_init(struct publish *p, struct state_ctx *ctx, int64_t seq)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->agent = p->cfg->agent_id;
	ctx->session = (int64_t)p->sf.session;
	ctx->seq = seq;
	ctx->now_ms = wall_now_ms();
	ctx->publish_device_name = p->cfg->publish_device_name;
	ctx->diag = &p->cfg->diagnose;
}

void publish_state(struct publish *p, const struct device_facts *facts, bool attached,
                   struct publish_memo *memo, bool force)
{
	struct proto_device_state cur;
	struct proto_event_details details;
	struct diagnosis dx;
	struct state_ctx ctx;
	enum proto_event evs[STATE_EVENTS_MAX];
	char topic[TOPICS_MAX], key[FACTS_UDID_MAX + 8];
	int64_t now = wall_now_ms();
	int i, n;

	diagnose(facts, &p->cfg->diagnose, now / 1000, &dx);
	state_build(facts, &dx, attached, p->cfg->publish_device_name, &cur);
	n = state_events(memo->have_state ? &memo->last : NULL, &cur, evs, STATE_EVENTS_MAX);
	if (!force && memo->have_state && state_same(&memo->last, &cur) == 1 &&
	    now - memo->last_pub_ms < p->cfg->refresh_interval_s * 1000)
		return;
	if (topics_build(topic, sizeof(topic), TOPICS_DEVICE_STATE, p->cfg->agent_id, facts->udid) <
	    0)
		return;
	state_ctx_init(p, &ctx, next_seq(p));
	state_set_header(&cur, &ctx);
	snprintf(key, sizeof(key), "state:%s", facts->udid);
	if (enqueue(p, topic, proto_device_state_encode(&cur), true, key) < 0) {
		/* not stored, not sent: the memo stays as it was, so the change is published
		 * again (with its events) at the next probe or the retry's republish */
		p->need_republish = true;
		return;
	}
	memo->last = cur;
	memo->have_state = true;
	memo->last_pub_ms = now;
	for (i = 0; i < n; i++) {
		state_event_details(evs[i], facts, &cur, &details);
		publish_event(p, facts->udid, evs[i], &details);
	}
}

/* ---- commands ---- */

void publish_result(struct publish *p, struct command_result *res)
{
	char key[COMMAND_ID_MAX + 8];
	struct proto_header h;

	header(p, &h);
	snprintf(res->agent, sizeof(res->agent), "%s", p->cfg->agent_id);
	res->seq = h.seq;
	res->ts_ms = h.ts_ms;
	res->has_session = true;
	res->session = h.session;
	snprintf(key, sizeof(key), "result:%s", res->cmd_id);
	(void)enqueue(p, p->topic_result, command_result_encode(res), false, key);
}

void publish_action_report(struct publish *p, const struct command *cmd, enum command_status st,
                           int progress, const char *cause, const char *detail)
{
	struct command_result res;
	struct proto_event_details details;

	memset(&res, 0, sizeof(res));
	snprintf(res.cmd_id, sizeof(res.cmd_id), "%s", cmd->cmd_id);
	snprintf(res.udid, sizeof(res.udid), "%s", cmd->udid);
	snprintf(res.name, sizeof(res.name), "%s", cmd->name);
	res.status = st;
	res.progress = st == COMMAND_STATUS_IN_PROGRESS ? progress : -1;
	if (st == COMMAND_STATUS_FAILED)
		snprintf(res.cause, sizeof(res.cause), "%s", cause ? cause : "failed");
	if (detail)
		snprintf(res.detail, sizeof(res.detail), "%s", detail);
	log_info("command '%s' (%s on '%s'): %s%s%s", cmd->cmd_id, cmd->name, cmd->udid,
	         command_status_str(st), cause ? " " : "", cause ? cause : "");
	publish_result(p, &res);

	if (cmd->kind != COMMAND_BACKUP_LOCAL_START)
		return;
	memset(&details, 0, sizeof(details));
	snprintf(details.kind, sizeof(details.kind), "local");
	snprintf(details.cmd_id, sizeof(details.cmd_id), "%s", cmd->cmd_id);
	if (cause)
		snprintf(details.cause, sizeof(details.cause), "%s", cause);
	if (st == COMMAND_STATUS_IN_PROGRESS && progress == 0)
		publish_event(p, cmd->udid, PROTO_EVENT_BACKUP_STARTED, &details);
	else if (st == COMMAND_STATUS_SUCCEEDED)
		publish_event(p, cmd->udid, PROTO_EVENT_BACKUP_FINISHED, &details);
	else if (st == COMMAND_STATUS_FAILED)
		publish_event(p, cmd->udid, PROTO_EVENT_BACKUP_FAILED, &details);
}

/* ---- agent status and meta ---- */

char *publish_status_payload(struct publish *p, bool online, bool will)
{
	struct proto_agent_status st;

	memset(&st, 0, sizeof(st));
	if (will) {
		snprintf(st.h.agent, sizeof(st.h.agent), "%s", p->cfg->agent_id);
		st.h.session = (int64_t)p->sf.session;
		st.is_will = true;
	} else {
		header(p, &st.h);
		st.has_started_at = true;
		st.started_at = p->started_at;
		snprintf(st.agent_version, sizeof(st.agent_version), "%s", CRADLE_VERSION);
	}
	st.online = online;
	return proto_agent_status_encode(&st);
}

char *publish_meta_payload(struct publish *p)
{
	const struct agent_config *cfg = p->cfg;
	struct proto_agent_meta m;
	int i;

	memset(&m, 0, sizeof(m));
	header(p, &m.h);
	snprintf(m.version_agent, sizeof(m.version_agent), "%s", CRADLE_VERSION);
	snprintf(m.version_libimobiledevice, sizeof(m.version_libimobiledevice), "%s",
	         CRADLE_LIMD_VERSION);
	snprintf(m.version_paho, sizeof(m.version_paho), "%s", CRADLE_PAHO_VERSION);
	snprintf(m.site, sizeof(m.site), "%s", cfg->site);
	snprintf(m.station, sizeof(m.station), "%s", cfg->station);
	m.capabilities.n = 3;
	snprintf(m.capabilities.item[0], PROTO_STR_MAX, "probe");
	snprintf(m.capabilities.item[1], PROTO_STR_MAX, "commands");
	snprintf(m.capabilities.item[2], PROTO_STR_MAX, "local_backup");
	if (cfg->syslog_watch && m.capabilities.n < PROTO_LIST_MAX)
		snprintf(m.capabilities.item[m.capabilities.n++], PROTO_STR_MAX, "syslog");
	for (i = 0; i < cfg->allowed_commands.n && i < PROTO_LIST_MAX; i++)
		snprintf(m.allowed_commands.item[m.allowed_commands.n++], PROTO_STR_MAX, "%s",
		         cfg->allowed_commands.item[i]);
	m.stale_after_s = cfg->diagnose.stale_after_s;
	m.probe_interval_s = cfg->probe_interval_s;
	snprintf(m.min_ios_version, sizeof(m.min_ios_version), "%s", cfg->diagnose.min_ios_version);
	m.publish_device_name = cfg->publish_device_name;
	return proto_agent_meta_encode(&m);
}
