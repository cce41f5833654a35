/* SPDX-License-Identifier: MIT */
/*
 * daemon: see daemon.h for the order of things. The device table is a list keyed by UDID
 * (hundreds of phones per station: a linear scan per event costs microseconds). Everything here
 * runs on the loop thread; libraries with threads of their own (Paho, libusbmuxd) only reach
 * it through their modules' hand-over.
 *
 * Publishing: every message is numbered from the statefile's seq and goes through the outbox
 * (retained device state coalesced per device, events droppable under overflow, command
 * results never dropped), so a broker outage or a kill -9 loses nothing. Birth and meta are
 * rebuilt on every connect and published directly.
 */
#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "actions.h"
#include "backupstore.h"
#include "cmd.h"
#include "cmdtable.h"
#include "command.h"
#include "devmon.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "outbox.h"
#include "probe.h"
#include "proto.h"
#include "selfpath.h"
#include "state.h"
#include "statefile.h"
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

#define DAEMON_PATH_MAX       512
#define DAEMON_CMDTABLE_MAX   20000 /* accepted commands remembered (replay protection) */
#define DAEMON_SHUTDOWN_MS    5000
#define DAEMON_ACTION_TIMEOUT 120 /* s: cloud toggle / restart helper deadline */
#define DAEMON_BACKUP_TIMEOUT (6 * 3600)

struct daemon;

struct device {
	struct daemon *d; /* owner: timers carry only the device */
	char udid[FACTS_UDID_MAX];
	bool attached;
	bool have_facts;
	struct device_facts facts;
	bool have_state;
	struct proto_device_state last; /* last published */
	int64_t last_pub_ms;
	bool probing;
	bool probe_again;
	uint64_t probe_timer;
	int last_backup_error; /* MBErrorDomain of the last local backup, 0 = fine */
	struct device *next;
};

struct daemon {
	struct loop *loop;
	const struct agent_config *cfg;
	const struct daemon_paths *paths;
	char statefile_path[DAEMON_PATH_MAX];
	struct statefile sf;
	struct outbox *outbox;
	struct mqtt *mqtt;
	struct cmdtable *cmdtable;
	struct cmd *cmd;
	struct actions *actions;
	struct probe_sched *probe;
	struct devmon *devmon;
	struct device *devices;
	int64_t started_at;
	char topic_cmd[TOPICS_MAX];
	char topic_status[TOPICS_MAX];
	char topic_meta[TOPICS_MAX];
	char topic_result[TOPICS_MAX];
};

/* ---- numbering and publishing ---- */

static int64_t next_seq(struct daemon *d)
{
	uint64_t seq = 0;
	int r = statefile_next_seq(d->statefile_path, &d->sf, &seq);

	if (r < 0) {
		/* the number is still unique in this session; only a crash could repeat it */
		log_warn_errno(r, "cannot persist the message counter, continuing");
		seq = d->sf.next_seq++;
	}
	return (int64_t)seq;
}

static void header(struct daemon *d, struct proto_header *h)
{
	memset(h, 0, sizeof(*h));
	snprintf(h->agent, sizeof(h->agent), "%s", d->cfg->agent_id);
	h->ts_ms = wall_now_ms();
	h->seq = next_seq(d);
	h->session = (int64_t)d->sf.session;
}

/* Takes ownership of payload (may be NULL: allocation failed, logged). */
static void enqueue(struct daemon *d, const char *topic, char *payload, bool retained,
                    const char *key)
{
	uint64_t dropped;
	int r;

	if (!payload) {
		log_error("out of memory encoding a message for '%s', dropping it", topic);
		return;
	}
	r = outbox_put(d->outbox, topic, payload, strlen(payload), retained, 1, key, NULL);
	if (r == -ENOBUFS)
		log_warn("outbox full: event for '%s' dropped", topic);
	else if (r < 0)
		log_error_errno(r, "outbox: cannot store the message for '%s'", topic);
	dropped = outbox_take_dropped(d->outbox);
	if (dropped)
		log_warn("outbox full: %llu older events dropped to make room",
		         (unsigned long long)dropped);
	free(payload);
	mqtt_kick(d->mqtt);
}

static void publish_event(struct daemon *d, const char *udid, enum proto_event ev,
                          const char *details)
{
	struct proto_device_event m;
	char topic[TOPICS_MAX];

	if (topics_build(topic, sizeof(topic), TOPICS_DEVICE_EVENT, d->cfg->agent_id, udid) < 0)
		return;
	memset(&m, 0, sizeof(m));
	header(d, &m.h);
	m.event = ev;
	snprintf(m.udid, sizeof(m.udid), "%s", udid);
	if (details)
		snprintf(m.details, sizeof(m.details), "%s", details);
	enqueue(d, topic, proto_device_event_encode(&m), false, NULL);
}

static void state_ctx_init(struct daemon *d, struct state_ctx *ctx, int64_t seq)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->agent = d->cfg->agent_id;
	ctx->session = (int64_t)d->sf.session;
	ctx->seq = seq;
	ctx->now_ms = wall_now_ms();
	ctx->publish_device_name = d->cfg->publish_device_name;
	ctx->diag = &d->cfg->diagnose;
}

/* Publishes dev's state when it changed, or every refresh_interval, or when forced. */
static void publish_state(struct daemon *d, struct device *dev, bool force)
{
	struct proto_device_state cur;
	struct diagnosis dx;
	struct state_ctx ctx;
	enum proto_event evs[STATE_EVENTS_MAX];
	char topic[TOPICS_MAX], key[FACTS_UDID_MAX + 8];
	int64_t now = wall_now_ms();
	int i, n;

	diagnose(&dev->facts, &d->cfg->diagnose, now / 1000, &dx);
	state_build(&dev->facts, &dx, dev->attached, d->cfg->publish_device_name, &cur);
	n = state_events(dev->have_state ? &dev->last : NULL, &cur, evs, STATE_EVENTS_MAX);
	if (!force && dev->have_state && state_same(&dev->last, &cur) == 1 &&
	    now - dev->last_pub_ms < d->cfg->refresh_interval_s * 1000)
		return;
	if (topics_build(topic, sizeof(topic), TOPICS_DEVICE_STATE, d->cfg->agent_id, dev->udid) <
	    0)
		return;
	state_ctx_init(d, &ctx, next_seq(d));
	state_set_header(&cur, &ctx);
	snprintf(key, sizeof(key), "state:%s", dev->udid);
	enqueue(d, topic, proto_device_state_encode(&cur), true, key);
	dev->last = cur;
	dev->have_state = true;
	dev->last_pub_ms = now;
	for (i = 0; i < n; i++)
		publish_event(d, dev->udid, evs[i], NULL);
}

/* ---- device table ---- */

static struct device *device_find(struct daemon *d, const char *udid)
{
	struct device *dev;

	for (dev = d->devices; dev; dev = dev->next)
		if (strcmp(dev->udid, udid) == 0)
			return dev;
	return NULL;
}

static struct device *device_get(struct daemon *d, const char *udid)
{
	struct device *dev = device_find(d, udid);

	if (dev)
		return dev;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	dev->d = d;
	snprintf(dev->udid, sizeof(dev->udid), "%s", udid);
	snprintf(dev->facts.udid, sizeof(dev->facts.udid), "%s", udid);
	dev->facts.probe = FACTS_PROBE_ERROR;
	snprintf(dev->facts.error_text, sizeof(dev->facts.error_text), "not probed yet");
	dev->next = d->devices;
	d->devices = dev;
	return dev;
}

static void probe_device(struct daemon *d, struct device *dev)
{
	int r;

	if (dev->probing) {
		dev->probe_again = true;
		return;
	}
	r = probe_request(d->probe, dev->udid);
	if (r < 0) {
		log_warn_errno(r, "device '%s': cannot start a probe, will retry", dev->udid);
		return;
	}
	dev->probing = true;
}

static void on_probe_timer(struct loop *loop, uint64_t id, void *data);

static void schedule_probe(struct daemon *d, struct device *dev, int64_t delay_s)
{
	if (dev->probe_timer)
		loop_cancel_timer(d->loop, dev->probe_timer);
	dev->probe_timer = loop_add_timer(d->loop, (uint64_t)delay_s * 1000, on_probe_timer, dev);
}

static void on_probe_timer(struct loop *loop, uint64_t id, void *data)
{
	struct device *dev = data;

	(void)loop;
	(void)id;
	dev->probe_timer = 0;
	if (dev->attached)
		probe_device(dev->d, dev);
}

static void on_probe_done(const struct device_facts *facts, void *data)
{
	struct daemon *d = data;
	const char *udid = facts->udid;
	struct device *dev = device_find(d, udid);

	if (!dev)
		return;
	dev->probing = false;
	if (dev->attached || facts->probe != FACTS_PROBE_GONE) {
		/* a probe that found the phone gone must not wipe what we knew about it */
		dev->facts = *facts;
		dev->facts.last_backup_error = dev->last_backup_error;
		dev->have_facts = true;
	}
	actions_probe_done(d->actions, udid, facts);
	if (!dev->attached)
		return;
	publish_state(d, dev, false);
	if (dev->probe_again) {
		dev->probe_again = false;
		probe_device(d, dev);
		return;
	}
	schedule_probe(d, dev, d->cfg->probe_interval_s);
}

static void on_device(enum devmon_event ev, const char *udid, void *data)
{
	struct daemon *d = data;
	bool attached = ev != DEVMON_DETACHED;
	struct device *dev;

	if (!topics_udid_valid(udid)) {
		log_warn("device '%s': UDID not usable in a topic, ignoring", udid);
		return;
	}
	dev = attached ? device_get(d, udid) : device_find(d, udid);
	if (!dev) {
		if (attached)
			log_error("device '%s': out of memory, ignoring", udid);
		return;
	}
	if (ev == DEVMON_PAIRED) {
		/* the person tapped Trust: read the phone now rather than at the next interval */
		log_info("device '%s': paired", udid);
		if (dev->attached)
			probe_device(d, dev);
		return;
	}
	if (attached == dev->attached)
		return;
	dev->attached = attached;
	if (attached) {
		log_info("device '%s': attached", udid);
		publish_event(d, udid, PROTO_EVENT_ATTACHED, NULL);
		actions_device_attached(d->actions, udid);
		probe_device(d, dev);
		return;
	}
	log_info("device '%s': detached", udid);
	if (dev->probe_timer) {
		loop_cancel_timer(d->loop, dev->probe_timer);
		dev->probe_timer = 0;
	}
	dev->probe_again = false;
	/* a probe already requested is left to run: it comes back "gone" and clears
	 * dev->probing; cancelling it would leave the flag set with no answer to come */
	publish_event(d, udid, PROTO_EVENT_DETACHED, NULL);
	publish_state(d, dev, true); /* attached:false, with the last known facts */
	actions_device_detached(d->actions, udid);
}

/* ---- commands ---- */

static bool device_known(const char *udid, void *data)
{
	struct device *dev = device_find(data, udid);

	return dev && dev->attached;
}

static void publish_result(struct daemon *d, struct command_result *res)
{
	char key[COMMAND_ID_MAX + 8];
	struct proto_header h;

	header(d, &h);
	snprintf(res->agent, sizeof(res->agent), "%s", d->cfg->agent_id);
	res->seq = h.seq;
	res->ts_ms = h.ts_ms;
	res->has_session = true;
	res->session = h.session;
	snprintf(key, sizeof(key), "result:%s", res->cmd_id);
	enqueue(d, d->topic_result, command_result_encode(res), false, key);
}

static void on_action_report(void *data, const struct command *cmd, enum command_status st,
                             int progress, const char *cause, const char *detail)
{
	struct daemon *d = data;
	struct command_result res;
	char details[160];
	int r;

	r = cmd_update(d->cmd, cmd->cmd_id, st, cause ? cause : "", progress, wall_now_ms());
	if (r < 0)
		log_warn_errno(r, "command '%s': cannot record its state", cmd->cmd_id);
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
	publish_result(d, &res);

	if (cmd->kind != COMMAND_BACKUP_LOCAL_START)
		return;
	snprintf(details, sizeof(details), "{\"cmd_id\":\"%s\"%s%s%s}", cmd->cmd_id,
	         cause ? ",\"cause\":\"" : "", cause ? cause : "", cause ? "\"" : "");
	if (st == COMMAND_STATUS_IN_PROGRESS && progress == 0)
		publish_event(d, cmd->udid, PROTO_EVENT_BACKUP_STARTED, details);
	else if (st == COMMAND_STATUS_SUCCEEDED)
		publish_event(d, cmd->udid, PROTO_EVENT_BACKUP_FINISHED, details);
	else if (st == COMMAND_STATUS_FAILED)
		publish_event(d, cmd->udid, PROTO_EVENT_BACKUP_FAILED, details);
}

static void on_action_probe(void *data, const char *udid)
{
	struct daemon *d = data;
	struct device *dev = device_find(d, udid);

	if (!dev) {
		struct device_facts gone = { .probe = FACTS_PROBE_GONE };
		snprintf(gone.udid, sizeof(gone.udid), "%s", udid);
		actions_probe_done(d->actions, udid, &gone);
		return;
	}
	probe_device(d, dev);
}

static const struct device_facts *on_action_facts(void *data, const char *udid)
{
	struct device *dev = device_find(data, udid);

	return dev && dev->have_facts ? &dev->facts : NULL;
}

static void on_backup_error(void *data, const char *udid, int code)
{
	struct daemon *d = data;
	struct device *dev = device_find(d, udid);

	if (!dev)
		return;
	dev->last_backup_error = code;
	dev->facts.last_backup_error = code;
	if (dev->attached)
		publish_state(d, dev, false); /* passcode_required shows up in the diagnosis */
}

static const struct actions_ops action_ops = {
	.report = on_action_report,
	.probe = on_action_probe,
	.facts = on_action_facts,
	.backup_error = on_backup_error,
};

static void handle_command(struct daemon *d, const struct mqtt_message *msg)
{
	struct cmd_message cm = {
		.payload = msg->payload,
		.len = msg->len,
		.retained = msg->retained,
		.expiry_s = msg->expiry_s,
		.correlation = msg->correlation,
		.correlation_len = msg->correlation_len,
		.received_ms = loop_now_ms(),
	};
	struct cmd_decision dec;
	struct command_result res;

	cm.sig_ambiguous = msg->user_props_cut;
	for (unsigned i = 0; i < msg->n_user_props; i++)
		cmd_message_user_property(&cm, msg->user_props[i].name, msg->user_props[i].name_len,
		                          msg->user_props[i].value, msg->user_props[i].value_len);
	cmd_check(d->cmd, &cm, loop_now_ms(), wall_now_ms(), &dec);
	if (dec.security)
		log_warn("command refused for a security reason: %s (%s)",
		         command_reject_str(dec.reason), dec.err);
	if (cmd_decision_result(d->cmd, &dec, &res) == 0)
		publish_result(d, &res);
	else if (dec.reason != COMMAND_REJECT_NONE)
		log_notice("command without a usable cmd_id refused: %s",
		           command_reject_str(dec.reason));
	if (dec.reason == COMMAND_REJECT_NONE && dec.parsed)
		actions_start(d->actions, &dec.command);
}

/* ---- MQTT ---- */

static char *status_payload(struct daemon *d, bool online, bool will)
{
	struct proto_agent_status st;

	memset(&st, 0, sizeof(st));
	if (will) {
		snprintf(st.h.agent, sizeof(st.h.agent), "%s", d->cfg->agent_id);
		st.h.session = (int64_t)d->sf.session;
		st.is_will = true;
	} else {
		header(d, &st.h);
		st.has_started_at = true;
		st.started_at = d->started_at;
		snprintf(st.agent_version, sizeof(st.agent_version), "%s", CRADLE_VERSION);
	}
	st.online = online;
	return proto_agent_status_encode(&st);
}

static char *meta_payload(struct daemon *d)
{
	struct proto_agent_meta m;
	int i;

	memset(&m, 0, sizeof(m));
	header(d, &m.h);
	snprintf(m.version_agent, sizeof(m.version_agent), "%s", CRADLE_VERSION);
	snprintf(m.version_libimobiledevice, sizeof(m.version_libimobiledevice), "%s",
	         CRADLE_LIMD_VERSION);
	snprintf(m.version_paho, sizeof(m.version_paho), "%s", CRADLE_PAHO_VERSION);
	snprintf(m.site, sizeof(m.site), "%s", d->cfg->site);
	snprintf(m.station, sizeof(m.station), "%s", d->cfg->station);
	m.capabilities.n = 3;
	snprintf(m.capabilities.item[0], PROTO_STR_MAX, "probe");
	snprintf(m.capabilities.item[1], PROTO_STR_MAX, "commands");
	snprintf(m.capabilities.item[2], PROTO_STR_MAX, "local_backup");
	if (d->cfg->syslog_watch && m.capabilities.n < PROTO_LIST_MAX)
		snprintf(m.capabilities.item[m.capabilities.n++], PROTO_STR_MAX, "syslog");
	for (i = 0; i < d->cfg->allowed_commands.n && i < PROTO_LIST_MAX; i++)
		snprintf(m.allowed_commands.item[m.allowed_commands.n++], PROTO_STR_MAX, "%s",
		         d->cfg->allowed_commands.item[i]);
	m.stale_after_s = d->cfg->diagnose.stale_after_s;
	m.probe_interval_s = d->cfg->probe_interval_s;
	snprintf(m.min_ios_version, sizeof(m.min_ios_version), "%s",
	         d->cfg->diagnose.min_ios_version);
	m.publish_device_name = d->cfg->publish_device_name;
	return proto_agent_meta_encode(&m);
}

static void on_connected(struct mqtt *m, void *data)
{
	struct daemon *d = data;
	char *p;

	log_info("connected to '%s'", d->cfg->broker_url);
	mqtt_subscribe(m, d->topic_cmd, 1);
	p = status_payload(d, true, false);
	if (p)
		mqtt_publish(m, d->topic_status, p, strlen(p), true, 1);
	free(p);
	p = meta_payload(d);
	if (p)
		mqtt_publish(m, d->topic_meta, p, strlen(p), true, 1);
	free(p);
}

static void on_disconnected(struct mqtt *m, const char *cause, void *data)
{
	(void)m;
	(void)data;
	log_warn("connection to the broker lost%s%s, reconnecting", cause ? ": " : "",
	         cause ? cause : "");
}

static void on_message(struct mqtt *m, const struct mqtt_message *msg, void *data)
{
	struct daemon *d = data;

	(void)m;
	if (strcmp(msg->topic, d->topic_cmd) == 0)
		handle_command(d, msg);
}

static const struct mqtt_callbacks mqtt_cbs = {
	.connected = on_connected,
	.disconnected = on_disconnected,
	.message = on_message,
};

/* ---- setup and teardown ---- */

static void on_stop_signal(struct loop *loop, int signo, void *data)
{
	(void)data;
	log_notice("received %s, stopping", strsignal(signo));
	loop_stop(loop);
}

static void on_shutdown_tick(struct loop *loop, uint64_t id, void *data)
{
	(void)id;
	(void)data;
	loop_stop(loop);
}

/* Lets running probe helpers end (they are killed at their deadline) so none outlives us;
 * bounded by DAEMON_SHUTDOWN_MS. */
static void stop_probes(struct daemon *d)
{
	uint64_t deadline = loop_now_ms() + DAEMON_SHUTDOWN_MS;

	probe_sched_stop(d->probe);
	while (!probe_idle(d->probe) && loop_now_ms() < deadline) {
		loop_add_timer(d->loop, 50, on_shutdown_tick, NULL);
		loop_run(d->loop);
	}
}

static int build_cmd(struct daemon *d)
{
	struct cmd_config cc;
	char path[DAEMON_PATH_MAX];
	enum command_name name;
	int64_t retention_s = d->cfg->cmd_id_retention_s;
	int i, r;

	cmd_config_defaults(&cc);
	snprintf(cc.agent, sizeof(cc.agent), "%s", d->cfg->agent_id);
	cc.allowed = 0;
	for (i = 0; i < d->cfg->allowed_commands.n; i++) {
		if (command_name_from_str(d->cfg->allowed_commands.item[i], &name) == 0)
			cc.allowed |= CMD_ALLOW(name);
		else
			log_warn("allowed_commands: unknown command '%s', ignoring",
			         d->cfg->allowed_commands.item[i]);
	}
	/* config.c has checked every key already */
	for (i = 0; i < d->cfg->command_keys.n && cc.n_keys < CMDSIG_KEYS_MAX; i++)
		if (cmdsig_pubkey_parse(d->cfg->command_keys.item[i],
		                        strlen(d->cfg->command_keys.item[i]),
		                        &cc.keys[cc.n_keys]) == 0)
			cc.n_keys++;
	cc.require_signed = d->cfg->require_signed_commands;
	cc.rate_count = d->cfg->cmd_rate_per_device.count;
	cc.rate_interval_s = d->cfg->cmd_rate_per_device.interval_s;
	/* a command must not outlive its replay protection */
	if (cc.max_ttl_s + 2 * cc.clock_skew_s > retention_s)
		cc.max_ttl_s = retention_s - 2 * cc.clock_skew_s > 60
		                       ? retention_s - 2 * cc.clock_skew_s
		                       : 60;
	snprintf(path, sizeof(path), "%s/cmdtable", d->cfg->state_dir);
	r = cmdtable_open(path, DAEMON_CMDTABLE_MAX, retention_s * 1000, wall_now_ms(),
	                  &d->cmdtable);
	if (r < 0)
		return log_error_errno(r, "cannot open the command table '%s'", path);
	r = cmdtable_fail_unfinished(d->cmdtable, "agent_restarted", wall_now_ms());
	if (r > 0)
		log_notice("%d commands left unfinished by the last run marked failed", r);
	r = cmd_new(&cc, d->cmdtable, device_known, d, &d->cmd);
	if (r < 0)
		return log_error_errno(r, "cannot set up command intake");
	return 0;
}

static int build_actions(struct daemon *d)
{
	struct actions_config ac = {
		.action_helper = d->paths->action_helper,
		.backup_tool = d->paths->backup_tool,
		.store = { .dir = d->cfg->backup_dir,
		           .retention = (int)d->cfg->backup_retention,
		           .min_free = d->cfg->backup_min_free },
		.max_concurrent_backups = d->cfg->max_concurrent_backups,
		.restart_timeout_s = d->cfg->restart_timeout_s,
		.action_timeout_s = DAEMON_ACTION_TIMEOUT,
		.backup_timeout_s = DAEMON_BACKUP_TIMEOUT,
	};
	int n;

	n = backupstore_recover(&ac.store);
	if (n > 0)
		log_notice("discarded %d interrupted local backups", n);
	d->actions = actions_new(d->loop, &ac, &action_ops, d);
	return d->actions ? 0 : -ENOMEM;
}

static int build_mqtt(struct daemon *d)
{
	struct mqtt_options o = {
		.url = d->cfg->broker_url,
		.client_id = d->cfg->agent_id,
		.username = d->cfg->mqtt_username,
		.password = d->cfg->mqtt_password,
		.cafile = d->cfg->mqtt_cafile,
		.certfile = d->cfg->mqtt_certfile,
		.keyfile = d->cfg->mqtt_keyfile,
		.keepalive_s = (int)d->cfg->keepalive_s,
		.will_delay_s = (int)d->cfg->will_delay_s,
		.session_expiry_s = (int)d->cfg->session_expiry_s,
		.will_topic = d->topic_status,
	};
	char *will = status_payload(d, false, true);
	int r;

	if (!will)
		return -ENOMEM;
	o.will_payload = will;
	o.will_len = strlen(will);
	r = mqtt_new(d->loop, d->outbox, &o, &mqtt_cbs, d, &d->mqtt);
	free(will); /* copied by mqtt_new */
	if (r < 0)
		return r;
	return mqtt_start(d->mqtt);
}

static int build_topics(struct daemon *d)
{
	const char *a = d->cfg->agent_id;

	if (topics_build(d->topic_cmd, sizeof(d->topic_cmd), TOPICS_CMD, a, NULL) < 0 ||
	    topics_build(d->topic_status, sizeof(d->topic_status), TOPICS_STATUS, a, NULL) < 0 ||
	    topics_build(d->topic_meta, sizeof(d->topic_meta), TOPICS_META, a, NULL) < 0 ||
	    topics_build(d->topic_result, sizeof(d->topic_result), TOPICS_RESULT, a, NULL) < 0)
		return -EINVAL;
	return 0;
}

int daemon_run(const struct agent_config *cfg, const struct daemon_paths *paths)
{
	struct daemon d = { .cfg = cfg, .paths = paths };
	struct outbox_limits limits = { cfg->outbox_max_bytes, cfg->outbox_max_records };
	struct probe_config po = {
		.helper = paths->probe_helper,
		.concurrency = cfg->probe_concurrency,
		.timeout_ms = (uint64_t)cfg->probe_timeout_s * 1000,
		.syslog_ms = cfg->syslog_watch ? (int)(cfg->syslog_window_s * 1000) : 0,
	};
	struct device *dev, *next;
	char *offline;
	int r, status = 1;

	d.started_at = wall_now_ms() / 1000;
	if (build_topics(&d) < 0) {
		log_error("agent id '%s' is not usable in topics", cfg->agent_id);
		return 1;
	}
	if (mkdir(cfg->state_dir, 0700) < 0 && errno != EEXIST) {
		log_error_errno(-errno, "cannot create state_dir '%s'", cfg->state_dir);
		return 1;
	}
	snprintf(d.statefile_path, sizeof(d.statefile_path), "%s/agent.state", cfg->state_dir);
	r = statefile_load(d.statefile_path, &d.sf);
	if (r == -EBADMSG)
		log_warn("'%s' is damaged, starting the counters afresh", d.statefile_path);
	else if (r < 0) {
		log_error_errno(r, "cannot read '%s'", d.statefile_path);
		return 1;
	}
	r = statefile_begin_session(d.statefile_path, &d.sf);
	if (r < 0) {
		log_error_errno(r, "cannot write '%s'", d.statefile_path);
		return 1;
	}
	log_info("agent '%s' starting, session %llu", cfg->agent_id,
	         (unsigned long long)d.sf.session);

	d.loop = loop_new();
	if (!d.loop)
		return 1;
	/* before any library thread exists, so signals only ever reach the loop */
	loop_add_signal(d.loop, SIGTERM, on_stop_signal, &d);
	loop_add_signal(d.loop, SIGINT, on_stop_signal, &d);
	signal(SIGPIPE, SIG_IGN);

	r = outbox_open(cfg->state_dir, &limits, &d.outbox);
	if (r < 0) {
		log_error_errno(r, "cannot open the outbox in '%s'", cfg->state_dir);
		goto out;
	}
	if (build_cmd(&d) < 0 || build_actions(&d) < 0)
		goto out;
	r = build_mqtt(&d);
	if (r < 0) {
		log_error_errno(r, "cannot set up MQTT for '%s'", cfg->broker_url);
		goto out;
	}
	d.probe = probe_sched_new(d.loop, &po, on_probe_done, &d);
	if (!d.probe) {
		log_error("cannot set up probes");
		goto out;
	}
	d.devmon = devmon_new(d.loop, (uint64_t)cfg->resync_interval_s * 1000, on_device, &d);
	r = d.devmon ? devmon_start(d.devmon) : -ENOMEM;
	if (r < 0) {
		log_error_errno(r, "cannot watch for devices");
		goto out;
	}

	r = loop_run(d.loop);
	if (r < 0)
		log_error_errno(r, "event loop failed");
	status = r < 0 ? 1 : 0;

	/* stop producing before saying goodbye */
	d.devmon = devmon_free(d.devmon);
	d.actions = actions_free(d.actions);
	stop_probes(&d);
	d.probe = probe_sched_free(d.probe);
	offline = status_payload(&d, false, false);
	if (offline) {
		r = mqtt_shutdown(d.mqtt, offline, strlen(offline), DAEMON_SHUTDOWN_MS);
		if (r < 0)
			log_warn_errno(r,
			               "could not say goodbye to the broker; the will covers it");
		free(offline);
	}
out:
	devmon_free(d.devmon);
	actions_free(d.actions);
	probe_sched_free(d.probe);
	mqtt_free(d.mqtt);
	cmd_free(d.cmd);
	cmdtable_free(d.cmdtable);
	outbox_close(d.outbox);
	for (dev = d.devices; dev; dev = next) {
		next = dev->next;
		free(dev);
	}
	loop_free(d.loop);
	log_info("agent stopped");
	return status;
}

/* ---- command line of the daemon mode ---- */

static void daemon_usage(FILE *f)
{
	fprintf(f, "usage: cradle-agent -c FILE [--test-config] [--dump-config] [--agent-id ID]\n"
	           "                    [--broker URL] [--state-dir DIR]\n"
	           "       cradle-agent --once [options]     (see --once --help)\n"
	           "       cradle-agent send [options] COMMAND\n");
}

int daemon_main(int argc, char **argv)
{
	static struct agent_config cfg; /* large: keep it off the stack */
	struct daemon_paths paths;
	const char *file = NULL, *agent_id = NULL, *broker = NULL, *state_dir = NULL;
	char err[AGENT_CONFIG_ERROR_MAX], probe_helper[DAEMON_PATH_MAX],
	        action_helper[DAEMON_PATH_MAX];
	bool test = false, dump = false;
	int i, r;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has_val = i + 1 < argc;

		if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && has_val)
			file = argv[++i];
		else if (strcmp(a, "--test-config") == 0)
			test = true;
		else if (strcmp(a, "--dump-config") == 0)
			dump = true;
		else if (strcmp(a, "--agent-id") == 0 && has_val)
			agent_id = argv[++i];
		else if (strcmp(a, "--broker") == 0 && has_val)
			broker = argv[++i];
		else if (strcmp(a, "--state-dir") == 0 && has_val)
			state_dir = argv[++i];
		else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			daemon_usage(stdout);
			return 0;
		} else {
			log_error("unknown or incomplete option '%s'", a);
			daemon_usage(stderr);
			return 2;
		}
	}
	if (!file) {
		log_error("no configuration file: use -c FILE");
		daemon_usage(stderr);
		return 2;
	}
	r = agent_config_load(file, &cfg, err, sizeof(err));
	/* the flags win over the file, but the file must still be valid on its own terms, except
	 * for the required agent_id that a flag may supply */
	if (r < 0 && !(agent_id && strstr(err, "agent_id"))) {
		log_error("%s", err);
		return 1;
	}
	if (agent_id) {
		if (!topics_agent_id_valid(agent_id)) {
			log_error("--agent-id: '%s' does not match [a-z0-9][a-z0-9-]{2,62}",
			          agent_id);
			return 1;
		}
		snprintf(cfg.agent_id, sizeof(cfg.agent_id), "%s", agent_id);
	}
	if (broker)
		snprintf(cfg.broker_url, sizeof(cfg.broker_url), "%s", broker);
	if (state_dir)
		snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", state_dir);
	if (!cfg.backup_dir[0] &&
	    (size_t)snprintf(cfg.backup_dir, sizeof(cfg.backup_dir), "%.200s/backups",
	                     cfg.state_dir) >= sizeof(cfg.backup_dir)) {
		log_error("state_dir '%s' is too long", cfg.state_dir);
		return 1;
	}
	log_set_level(cfg.log_level);
	if (dump)
		agent_config_dump(&cfg, stdout);
	if (test || dump) {
		if (test)
			printf("%s: configuration ok\n", file);
		return 0;
	}
	if (selfpath_sibling(probe_helper, sizeof(probe_helper), "cradle-agent-probe") < 0 ||
	    selfpath_sibling(action_helper, sizeof(action_helper), "cradle-agent-action") < 0) {
		log_error("the path of our own executable is too long");
		return 1;
	}
	paths.probe_helper =
	        getenv("CRADLE_PROBE_HELPER") ? getenv("CRADLE_PROBE_HELPER") : probe_helper;
	paths.action_helper =
	        getenv("CRADLE_ACTION_HELPER") ? getenv("CRADLE_ACTION_HELPER") : action_helper;
	paths.backup_tool = getenv("CRADLE_BACKUP_TOOL") ? getenv("CRADLE_BACKUP_TOOL")
	                                                 : "/usr/bin/idevicebackup2";
	return daemon_run(&cfg, &paths);
}
