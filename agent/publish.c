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
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "outbox.h"
#include "state.h"
#include "topics.h"

#ifndef CRADLE_VERSION
# define CRADLE_VERSION "0"
#endif
#ifndef CRADLE_LIMD_VERSION
# define CRADLE_LIMD_VERSION "unknown"
#endif
#ifndef CRADLE_PAHO_VERSION
# define CRADLE_PAHO_VERSION "unknown"
#endif

#define PUBLISH_PATH_MAX 512

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

struct publish *publish_free(struct publish *p)
{
	free(p);
	return NULL;
}

uint64_t publish_session(const struct publish *p)
{
	return p->sf.session;
}

/* ---- numbering and publishing ---- */

static int64_t next_seq(struct publish *p)
{
	uint64_t seq = 0;
	int r = statefile_next_seq(p->statefile_path, &p->sf, &seq);

	if (r < 0) {
		/* the number is still unique in this session; only a crash could repeat it */
		log_warn_errno(r, "cannot persist the message counter, continuing");
		seq = p->sf.next_seq++;
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

/* Takes ownership of payload (may be NULL: allocation failed, logged). */
static void enqueue(struct publish *p, const char *topic, char *payload, bool retained,
                    const char *key)
{
	uint64_t dropped;
	int r;

	if (!payload) {
		log_error("out of memory encoding a message for '%s', dropping it", topic);
		return;
	}
	r = outbox_put(p->outbox, topic, payload, strlen(payload), retained, 1, key, NULL);
	if (r == -ENOBUFS)
		log_warn("outbox full: event for '%s' dropped", topic);
	else if (r < 0)
		log_error_errno(r, "outbox: cannot store the message for '%s'", topic);
	dropped = outbox_take_dropped(p->outbox);
	if (dropped)
		log_warn("outbox full: %llu older events dropped to make room",
		         (unsigned long long)dropped);
	free(payload);
	if (p->mqtt)
		mqtt_kick(p->mqtt);
	if (p->agentev)
		agentev_outbox_check(p->agentev);
}

void publish_agent_event(struct publish *p, struct proto_agent_event *ev, const char *key)
{
	header(p, &ev->h);
	enqueue(p, p->topic_agent_event, proto_agent_event_encode(ev), false, key);
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
	enqueue(p, topic, proto_device_event_encode(&m), false, NULL);
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
	enqueue(p, topic, proto_device_state_encode(&cur), true, key);
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
	enqueue(p, p->topic_result, command_result_encode(res), false, key);
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
