/* SPDX-License-Identifier: MIT */
/*
 * daemon: see daemon.h for the order of things. This file is the wiring: it builds the pieces
 * (outbox, publisher, device registry, command intake, actions, MQTT, device discovery) and
 * connects their callbacks. The device registry (registry.c) owns the devices and their probes,
 * the publisher (publish.c) turns what happens into messages. Everything here runs on the loop
 * thread; Paho, with threads of its own, only reaches it through mqtt.c's hand-over (usbmuxd
 * events come on a socket of devmon's own).
 */
#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "actions.h"
#include "agentev.h"
#include "backupstore.h"
#include "cmd.h"
#include "cmdtable.h"
#include "command.h"
#include "devmon.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "mqtt.h"
#include "outbox.h"
#include "proto.h"
#include "publish.h"
#include "registry.h"
#include "sdnotify.h"
#include "statefile.h"
#include "topics.h"
#include "watch.h"

#define DAEMON_PATH_MAX       512
#define DAEMON_SHUTDOWN_MS    5000
#define DAEMON_RETRY_MS       1000 /* retry of messages a full disk kept out of the outbox */
#define DAEMON_ACTION_TIMEOUT 120  /* s: cloud toggle / restart helper deadline */
#define DAEMON_BACKUP_TIMEOUT (6 * 3600)

struct daemon {
	struct loop *loop;
	const struct agent_config *cfg;
	const struct daemon_paths *paths;
	char statefile_path[DAEMON_PATH_MAX];
	struct statefile sf;
	struct outbox *outbox;
	struct publish *pub;
	bool had_state;           /* agent.state existed at start: the agent ran here before */
	uint64_t refusals_unsent; /* refusal results not queued: the outbox was half full */
	struct registry *reg;
	struct mqtt *mqtt;
	struct cmdtable *cmdtable;
	struct cmd *cmd;
	struct actions *actions;
	struct devmon *devmon;
	struct agentev *agentev; /* agent-level events */
	uint64_t retry_timer;    /* publish_retry(), build_cmd() while waiting */
	bool cmd_waiting;        /* the command table could not be opened for want of space */
	unsigned cmd_tries;
	int64_t started_at;
	char topic_cmd[TOPICS_MAX];
	char topic_status[TOPICS_MAX];
	char topic_meta[TOPICS_MAX];
	struct watch *watch;     /* evidence capture, NULL when evidence_capture is off */
	struct sdnotify *notify; /* the service manager, NULL without one */
	/* for its STATUS= line: the broker's and usbmuxd's last known state */
	enum { BROKER_CONNECTING, BROKER_UP, BROKER_LOST } broker;
	int mux_devices;             /* -1: usbmuxd not asked yet, -2: not answering */
	struct device_facts scratch; /* merged(): facts plus the capture, for one publish */
	struct metrics *metrics;     /* metrics_file; NULL when off */
	uint64_t metrics_timer;
};

/* ---- device registry -> publisher, actions ---- */

/* The device's last facts with the evidence capture merged in, for the diagnosis. */
static const struct device_facts *merged(struct daemon *d, const struct registry_device *dev)
{
	if (!d->watch)
		return &dev->facts;
	d->scratch = dev->facts;
	watch_merge(d->watch, dev->udid, &d->scratch);
	return &d->scratch;
}

/*
 * The phone posted domain_changed: read it now. It wrote a backup line: diagnose again with
 * the last facts (a line alone changes no value, so no probe; a published state only when the
 * diagnosis changed).
 */
static void on_watch_changed(const char *udid, bool probe, void *data)
{
	struct daemon *d = data;
	struct registry_device *dev = registry_find(d->reg, udid);

	if (!dev || !dev->attached)
		return;
	if (probe)
		(void)registry_probe(d->reg, udid);
	else if (dev->have_facts)
		publish_state(d->pub, merged(d, dev), true, &dev->pub, false);
}

static void on_presence(void *data, struct registry_device *dev)
{
	struct daemon *d = data;

	if (dev->attached) {
		publish_event(d->pub, dev->udid, PROTO_EVENT_ATTACHED, NULL);
		actions_device_attached(d->actions, dev->udid);
		return;
	}
	publish_event(d->pub, dev->udid, PROTO_EVENT_DETACHED, NULL);
	/* attached:false, with the last known facts */
	watch_presence(d->watch, dev->udid, false);
	publish_state(d->pub, merged(d, dev), false, &dev->pub, true);
	actions_device_detached(d->actions, dev->udid);
}

static void on_probed(void *data, const char *udid, const struct device_facts *facts)
{
	struct daemon *d = data;

	metrics_probe(d->metrics, facts->probe, facts->probe_duration_ms);
	actions_probe_done(d->actions, udid, facts);
}

static void on_state(void *data, struct registry_device *dev, bool force)
{
	struct daemon *d = data;

	publish_state(d->pub, merged(d, dev), dev->attached, &dev->pub, force);
}

static const struct registry_ops registry_ops = {
	.presence = on_presence,
	.probed = on_probed,
	.state = on_state,
};

/* ---- actions -> command results, registry ---- */

static void on_action_report(void *data, const struct command *cmd, enum command_status st,
                             int progress, const char *cause, const char *detail)
{
	struct daemon *d = data;
	int r;

	r = cmd_update(d->cmd, cmd->cmd_id, st, cause ? cause : "", progress, wall_now_ms());
	if (r < 0)
		log_warn_errno(r, "command '%s': cannot record its state", cmd->cmd_id);
	publish_action_report(d->pub, cmd, st, progress, cause, detail);
	metrics_command(d->metrics, st);
}

static void on_action_probe(void *data, const char *udid)
{
	struct daemon *d = data;

	if (registry_probe(d->reg, udid) == -ENOENT) {
		struct device_facts gone = { .probe = FACTS_PROBE_GONE };
		snprintf(gone.udid, sizeof(gone.udid), "%s", udid);
		actions_probe_done(d->actions, udid, &gone);
	}
}

static const struct device_facts *on_action_facts(void *data, const char *udid)
{
	struct daemon *d = data;
	struct registry_device *dev = registry_find(d->reg, udid);

	return dev && dev->have_facts ? &dev->facts : NULL;
}

static void on_backup_error(void *data, const char *udid, int code)
{
	struct daemon *d = data;

	registry_set_backup_error(d->reg, udid, code);
}

static const struct actions_ops action_ops = {
	.report = on_action_report,
	.probe = on_action_probe,
	.facts = on_action_facts,
	.backup_error = on_backup_error,
};

/* ---- commands ---- */

/*
 * Whether the outbox is half full (records or bytes). Refusal results are then not queued, so
 * a command flood during a broker outage can never crowd out the phones' states and events
 * (the outbox's overflow policy keeps results and drops events, oldest first).
 */
static bool outbox_half_full(const struct daemon *d)
{
	struct outbox_stats st;

	outbox_get_stats(d->outbox, &st);
	return st.depth >= d->cfg->outbox_max_records / 2 ||
	       st.bytes >= d->cfg->outbox_max_bytes / 2;
}

/* a message over mqtt's cap comes without payload: it must be over the command cap too, so
 * cmd_check() refuses it as oversize before reading the payload */
_Static_assert(MQTT_INCOMING_MAX > COMMAND_PAYLOAD_MAX, "oversize messages are oversize commands");

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

	if (!d->cmd) {
		/* subscribed by an earlier run's session: the table cannot vouch for it yet */
		log_warn("command dropped: the command table waits for disk space");
		agentev_command_rejected(d->agentev, "busy", "command table waits for disk space");
		return;
	}

	cm.sig_ambiguous = msg->user_props_cut;
	for (unsigned i = 0; i < msg->n_user_props; i++)
		cmd_message_user_property(&cm, msg->user_props[i].name, msg->user_props[i].name_len,
		                          msg->user_props[i].value, msg->user_props[i].value_len);
	cmd_check(d->cmd, &cm, loop_now_ms(), wall_now_ms(), &dec);
	if (dec.reason != COMMAND_REJECT_NONE) /* security_rejected, aggregated per reason */
		agentev_command_rejected(d->agentev, command_reject_str(dec.reason), dec.err);
	if (dec.shed || dec.quiet)
		return; /* over a budget: counted (cmd_get_stats(), the event above), nothing else
		         */
	if (dec.security)
		log_warn("command refused for a security reason: %s (%s)",
		         command_reject_str(dec.reason), dec.err);
	if (dec.reason != COMMAND_REJECT_NONE && outbox_half_full(d)) {
		d->refusals_unsent++; /* the phones' states and events keep the room */
		return;
	}
	if (cmd_decision_result(d->cmd, &dec, &res) == 0) {
		publish_result(d->pub, &res);
		metrics_command(d->metrics, res.status);
	} else if (dec.reason != COMMAND_REJECT_NONE)
		log_notice("command without a usable cmd_id refused: %s",
		           command_reject_str(dec.reason));
	if (dec.reason == COMMAND_REJECT_NONE && dec.parsed)
		actions_start(d->actions, &dec.command);
}

/* ---- MQTT ---- */

/* The line `systemctl status` shows: the broker and the phones, as last seen. */
static void show_status(struct daemon *d)
{
	static const char *const broker[] = {
		[BROKER_CONNECTING] = "connecting to",
		[BROKER_UP] = "connected to",
		[BROKER_LOST] = "outbox buffering, cannot reach",
	};
	char mux[64] = "";

	if (d->mux_devices == -2)
		snprintf(mux, sizeof(mux), "; usbmuxd not running (no phone plugged in?)");
	else if (d->mux_devices >= 0)
		snprintf(mux, sizeof(mux), "; %d phone%s on usbmuxd", d->mux_devices,
		         d->mux_devices == 1 ? "" : "s");
	sdnotify_status(d->notify, "%s %s%s", broker[d->broker], d->cfg->broker_url, mux);
}

static void on_connected(struct mqtt *m, void *data)
{
	struct daemon *d = data;
	char *p;

	log_info("connected to '%s'", d->cfg->broker_url);
	d->broker = BROKER_UP;
	show_status(d);
	if (d->cmd) /* else once the command table opens */
		mqtt_subscribe(m, d->topic_cmd, 1);
	p = publish_status_payload(d->pub, true, false);
	if (p)
		mqtt_publish(m, d->topic_status, p, strlen(p), true, 1);
	free(p);
	p = publish_meta_payload(d->pub);
	if (p)
		mqtt_publish(m, d->topic_meta, p, strlen(p), true, 1);
	free(p);
	/* like Sparkplug's device births: the broker may have lost (or rolled back) the retained
	 * states, so every known phone's current state again, paced */
	registry_republish(d->reg);
}

static void on_disconnected(struct mqtt *m, const char *cause, void *data)
{
	struct daemon *d = data;

	(void)m;
	d->broker = BROKER_LOST;
	show_status(d);
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

static int build_registry(struct daemon *d)
{
	struct probe_config po = {
		.helper = d->paths->probe_helper,
		.concurrency = d->cfg->probe_concurrency,
		.timeout_ms = (uint64_t)d->cfg->probe_timeout_s * 1000,
		.syslog_ms = d->cfg->syslog_watch ? (int)(d->cfg->syslog_window_s * 1000) : 0,
	};

	d->reg = registry_new(d->loop, &po, d->cfg->probe_interval_s, &registry_ops, d);
	if (!d->reg) {
		log_error("cannot set up probes");
		return -ENOMEM;
	}
	if (d->cfg->evidence_capture && d->paths->watch_helper) {
		struct watch_config wc = { .helper = d->paths->watch_helper };

		d->watch = watch_new(d->loop, &wc, on_watch_changed, d);
		if (!d->watch) {
			log_error("cannot set up the evidence capture");
			return -ENOMEM;
		}
	}
	return 0;
}

/* A command the last process did not finish: its sender learns it without asking again. */
static void publish_interrupted(const struct cmdtable_entry *e, void *data)
{
	struct daemon *d = data;
	struct command_result res = { 0 };

	snprintf(res.cmd_id, sizeof(res.cmd_id), "%s", e->cmd_id);
	res.status = COMMAND_STATUS_FAILED;
	snprintf(res.cause, sizeof(res.cause), "%s", e->code);
	snprintf(res.detail, sizeof(res.detail), "the agent restarted during the command");
	res.progress = -1;
	publish_result(d->pub, &res);
}

static int build_cmd(struct daemon *d)
{
	struct cmd_config cc;
	char path[DAEMON_PATH_MAX], guard[DAEMON_PATH_MAX + 8];
	enum command_name name;
	bool gone;
	int64_t retention_s = d->cfg->cmd_id_retention_s;
	int i, r;

	cmd_config_defaults(&cc);
	snprintf(cc.agent, sizeof(cc.agent), "%s", d->cfg->agent_id);
	cc.allowed = 0;
	for (i = 0; i < d->cfg->allowed_commands.n; i++) {
		if (command_name_from_str(d->cfg->allowed_commands.item[i], &name) == 0)
			cc.allowed |= CMD_ALLOW(name);
		else if (!d->cmd_waiting) /* said once, not at every retry */
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
	cc.clock_skew_s = d->cfg->cmd_clock_skew_s;
	cc.intake_per_s = d->cfg->cmd_intake_rate;
	cc.answers_per_s = d->cfg->cmd_rejection_results_rate;
	/* a command must not outlive its replay protection */
	if (cc.max_ttl_s + 2 * cc.clock_skew_s > retention_s)
		cc.max_ttl_s = retention_s - 2 * cc.clock_skew_s > 60
		                       ? retention_s - 2 * cc.clock_skew_s
		                       : 60;
	snprintf(path, sizeof(path), "%s/cmdtable", d->cfg->state_dir);
	snprintf(guard, sizeof(guard), "%s.guard", path);
	/* the agent ran here before (agent.state) yet the table and its guard are both gone */
	gone = d->had_state && access(path, F_OK) < 0 && access(guard, F_OK) < 0;
	r = cmdtable_open(path, d->cfg->cmd_table_size, retention_s * 1000, wall_now_ms(),
	                  &d->cmdtable);
	if (r == -ENOSPC || r == -EDQUOT) {
		/* a full disk must not keep the agent down: no commands until the table opens
		 * (retried every second), so none runs without replay protection */
		if (!d->cmd_waiting)
			log_warn("command intake waits for disk space to open '%s'", path);
		d->cmd_waiting = true;
		return 0;
	}
	if (r < 0)
		return log_error_errno(r, "cannot open the command table '%s'", path);
	if (gone) {
		log_error("the command table '%s' was deleted", path);
		/* failure logged; the watermark holds in memory for this run */
		(void)cmdtable_mark_unknown(d->cmdtable, wall_now_ms());
	}
	r = cmdtable_fail_unfinished(d->cmdtable, "agent_restarted", wall_now_ms(),
	                             publish_interrupted, d);
	if (r > 0)
		log_notice("%d commands left unfinished by the last run marked failed", r);
	if (r < 0) /* not fatal (full disk): they are reported again at the next start */
		log_warn_errno(r, "cannot record the commands left unfinished");
	r = cmd_new(&cc, d->cmdtable, registry_attached, d->reg, &d->cmd);
	if (r < 0)
		return log_error_errno(r, "cannot set up command intake");
	if (d->cmd_waiting) {
		log_notice("command intake open");
		d->cmd_waiting = false;
		if (d->mqtt && mqtt_is_connected(d->mqtt))
			mqtt_subscribe(d->mqtt, d->topic_cmd, 1);
	}
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
		.backup_stall_timeout_s = d->cfg->backup_stall_timeout_s,
	};
	int n;

	n = backupstore_recover(&ac.store);
	if (n > 0)
		log_notice("discarded %d interrupted local backups", n);
	d->actions = actions_new(d->loop, &ac, &action_ops, d);
	return d->actions ? 0 : -ENOMEM;
}

static void on_agent_event(void *data, struct proto_agent_event *ev, const char *key)
{
	struct daemon *d = data;

	publish_agent_event(d->pub, ev, key);
}

static int build_cmd(struct daemon *d);

/* Every second: what a full disk kept out of the outbox, and states to send durably again. */
static void on_retry_timer(struct loop *loop, uint64_t id, void *data)
{
	struct daemon *d = data;

	(void)id;
	/* the table's own errors are logged at every try: every 10 s is enough */
	if (d->cmd_waiting && ++d->cmd_tries % 10 == 0 && build_cmd(d) < 0)
		log_warn("command intake cannot be set up");
	if (publish_retry(d->pub)) {
		log_notice("the outbox writes again: republishing every phone's state");
		registry_republish(d->reg);
	}
	d->retry_timer = loop_add_timer(loop, DAEMON_RETRY_MS, on_retry_timer, d);
}

/* ---- metrics ---- */

static void write_metrics(struct daemon *d)
{
	struct metrics_gauges g = { 0 };
	struct outbox_stats os;
	struct mqtt_stats ms;

	if (!d->metrics)
		return;
	registry_count(d->reg, &g.phones_known, &g.phones_attached);
	if (d->outbox) {
		outbox_get_stats(d->outbox, &os);
		g.outbox_records = os.depth;
		g.outbox_bytes = os.bytes;
		g.outbox_dropped = os.dropped;
		g.outbox_write_failures = os.write_failures;
	}
	if (d->mqtt) {
		mqtt_get_stats(d->mqtt, &ms);
		g.broker_connected = mqtt_is_connected(d->mqtt);
		g.messages_acked = ms.acked;
	}
	if (d->cmd) {
		struct cmd_stats cs;

		cmd_get_stats(d->cmd, &cs);
		g.commands_shed = cs.shed + cs.quiet + d->refusals_unsent;
	}
	(void)metrics_write(d->metrics, &g); /* counted and logged there */
}

static void on_metrics_timer(struct loop *loop, uint64_t id, void *data)
{
	struct daemon *d = data;

	(void)id;
	write_metrics(d);
	d->metrics_timer = loop_add_timer(loop, (uint64_t)d->cfg->metrics_interval_s * 1000,
	                                  on_metrics_timer, d);
}

static void on_usbmuxd(bool up, size_t devices, void *data)
{
	struct daemon *d = data;

	agentev_usbmuxd(d->agentev, up, devices);
	d->mux_devices = up ? (int)(devices < 9999 ? devices : 9999) : -2;
	show_status(d);
}

/* The agent-level events, watching the outbox, state_dir and usbmuxd. */
static int build_agentev(struct daemon *d)
{
	const struct agent_config *cfg = d->cfg;
	struct agentev_config ac = {
		.disk_path = cfg->state_dir,
		.disk_low_free = cfg->disk_low_free,
		.disk_check_ms = (uint64_t)cfg->disk_check_interval_s * 1000,
		.security_interval_ms = (uint64_t)cfg->security_event_interval_s * 1000,
		.outbox = d->outbox,
		.outbox_max_records = cfg->outbox_max_records,
		.outbox_max_bytes = cfg->outbox_max_bytes,
	};

	struct outbox_damage dmg;

	d->agentev = agentev_new(d->loop, &ac, on_agent_event, d);
	if (!d->agentev)
		return log_error_errno(-ENOMEM, "cannot set up agent events");
	publish_set_agentev(d->pub, d->agentev);
	outbox_get_damage(d->outbox, &dmg);
	agentev_outbox_damaged(d->agentev, &dmg);
	d->retry_timer = loop_add_timer(d->loop, DAEMON_RETRY_MS, on_retry_timer, d);
	return d->retry_timer ? 0 : -ENOMEM;
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
	char *will = publish_status_payload(d->pub, false, true);
	int r;

	if (!will)
		return -ENOMEM;
	o.will_payload = will;
	o.will_len = strlen(will);
	r = mqtt_new(d->loop, d->outbox, &o, &mqtt_cbs, d, &d->mqtt);
	free(will); /* copied by mqtt_new */
	if (r < 0)
		return r;
	publish_set_mqtt(d->pub, d->mqtt);
	return mqtt_start(d->mqtt);
}

static int build_topics(struct daemon *d)
{
	const char *a = d->cfg->agent_id;

	if (topics_build(d->topic_cmd, sizeof(d->topic_cmd), TOPICS_CMD, a, NULL) < 0 ||
	    topics_build(d->topic_status, sizeof(d->topic_status), TOPICS_STATUS, a, NULL) < 0 ||
	    topics_build(d->topic_meta, sizeof(d->topic_meta), TOPICS_META, a, NULL) < 0)
		return -EINVAL;
	return 0;
}

int daemon_run(const struct agent_config *cfg, const struct daemon_paths *paths)
{
	struct daemon d = { .cfg = cfg, .paths = paths, .mux_devices = -1 };
	struct outbox_limits limits = { cfg->outbox_max_bytes, cfg->outbox_max_records };
	char *offline, ready[DAEMON_PATH_MAX];
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
	d.had_state = access(d.statefile_path, F_OK) == 0;
	r = statefile_load(d.statefile_path, &d.sf);
	if (r == -EBADMSG)
		log_warn("'%s' is damaged, starting the counters afresh", d.statefile_path);
	else if (r < 0) {
		log_error_errno(r, "cannot read '%s'", d.statefile_path);
		return 1;
	}
	r = statefile_begin_session(d.statefile_path, &d.sf);
	if (r < 0) {
		/* a full disk must not keep the agent down: the session comes from the clock, so
		 * it is new even unsaved, and the counter is saved as soon as there is room */
		log_warn_errno(r,
		               "cannot write '%s' (full disk?), starting with the counters in "
		               "memory",
		               d.statefile_path);
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		d.sf.session = statefile_session_after(
		        d.sf.session, (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
		if (d.sf.next_seq < d.sf.reserved_end)
			d.sf.next_seq = d.sf.reserved_end;
		d.sf.reserved_end = d.sf.next_seq;
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
	/* from here on the publisher numbers the messages */
	d.pub = publish_new(cfg, d.statefile_path, &d.sf, d.outbox, d.started_at);
	if (!d.pub) {
		log_error("cannot set up publishing");
		goto out;
	}
	/* agent events right after the publisher, before anything else publishes */
	if (build_agentev(&d) < 0 || build_registry(&d) < 0 || build_cmd(&d) < 0 ||
	    build_actions(&d) < 0)
		goto out;
	r = build_mqtt(&d);
	if (r < 0) {
		log_error_errno(r, "cannot set up MQTT for '%s'", cfg->broker_url);
		goto out;
	}
	d.devmon = devmon_new(d.loop, (uint64_t)cfg->resync_interval_s * 1000, registry_on_device,
	                      d.reg);
	devmon_watch_usbmuxd(d.devmon, on_usbmuxd, &d);
	r = d.devmon ? devmon_start(d.devmon) : -ENOMEM;
	if (r < 0) {
		log_error_errno(r, "cannot watch for devices");
		goto out;
	}
	/* READY=1 from the loop's first turn: state loaded, outbox open, devices watched. Not
	 * after the broker connects: a station must come up (and keep its outbox) with the broker
	 * down, and the unit's start must not wait for the network */
	snprintf(ready, sizeof(ready), "connecting to %s", cfg->broker_url);
	r = sdnotify_new(d.loop, ready, &d.notify);
	if (r < 0) {
		log_error_errno(r, "cannot set up service notifications");
		goto out;
	}

	if (cfg->metrics_file[0]) {
		d.metrics = metrics_new(cfg->metrics_file, d.started_at);
		if (!d.metrics) {
			log_error("cannot set up metrics");
			goto out;
		}
		/* the first file at once: a scraper sees the agent up within a second */
		d.metrics_timer = loop_add_timer(d.loop, 0, on_metrics_timer, &d);
	}

	r = loop_run(d.loop);
	if (r < 0)
		log_error_errno(r, "event loop failed");
	status = r < 0 ? 1 : 0;
	sdnotify_stopping(d.notify, "stopping: finishing probes, saying goodbye to the broker");

	/* stop producing before saying goodbye */
	d.devmon = devmon_free(d.devmon);
	/* watch_free() runs the loop until its helper is reaped (milliseconds: SIGTERM ends it):
	 * before the actions are freed and the probes stopped, whose callbacks may run then */
	d.watch = watch_free(d.watch);
	d.actions = actions_free(d.actions);
	registry_stop(d.reg, DAEMON_SHUTDOWN_MS);
	agentev_flush(d.agentev); /* refusals counted but not yet reported */
	if (d.retry_timer)
		loop_cancel_timer(d.loop, d.retry_timer);
	d.retry_timer = 0;
	(void)publish_retry(d.pub); /* held messages: into the outbox, or best-effort */
	offline = publish_status_payload(d.pub, false, false);
	if (offline) {
		r = mqtt_shutdown(d.mqtt, offline, strlen(offline), DAEMON_SHUTDOWN_MS);
		if (r < 0)
			log_warn_errno(r,
			               "could not say goodbye to the broker; the will covers it");
		free(offline);
	}
out:
	if (d.metrics_timer)
		loop_cancel_timer(d.loop, d.metrics_timer);
	write_metrics(&d); /* the last numbers: broker disconnected, outbox as left */
	d.metrics = metrics_free(d.metrics);
	devmon_free(d.devmon);
	actions_free(d.actions);
	watch_free(d.watch);
	registry_free(d.reg);
	mqtt_free(d.mqtt);
	if (d.cmd) {
		struct cmd_stats cs;

		cmd_get_stats(d.cmd, &cs);
		if (cs.shed > 0 || cs.quiet > 0 || d.refusals_unsent > 0)
			log_notice("commands over the budgets: %llu shed unread, %llu refused "
			           "without a result, %llu more with the outbox half full",
			           (unsigned long long)cs.shed, (unsigned long long)cs.quiet,
			           (unsigned long long)d.refusals_unsent);
	}
	cmd_free(d.cmd);
	cmdtable_free(d.cmdtable);
	if (d.pub) {
		struct publish_stats ps;

		publish_get_stats(d.pub, &ps);
		if (ps.best_effort > 0 || ps.held > 0 || ps.lost > 0)
			log_notice("full disk this run: %llu messages published best-effort, %llu "
			           "still held (lost at exit), %llu dropped",
			           (unsigned long long)ps.best_effort, (unsigned long long)ps.held,
			           (unsigned long long)ps.lost);
		publish_set_agentev(d.pub, NULL);
	}
	agentev_free(d.agentev);
	publish_free(d.pub);
	outbox_close(d.outbox);
	sdnotify_free(d.notify);
	loop_free(d.loop);
	log_info("agent stopped");
	return status;
}
