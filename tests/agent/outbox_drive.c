/* SPDX-License-Identifier: MIT */
/*
 * outbox_drive: a test driver that publishes numbered messages through the agent's real
 * config, statefile, outbox and mqtt modules, so the broker-outage / kill -9 test checks the
 * code the daemon runs.
 *
 * Usage: outbox_drive CONFIG RATE STATE_EVERY KEYS
 * Every number n (1, 2, ...) becomes an event {"n":n} on .../device/dev0/event; every
 * STATE_EVERY-th n also becomes a retained state {"n":n} on .../device/dev<k>/state with the
 * coalescing key "state:dev<k>", k = (n / STATE_EVERY) % KEYS. The next n is kept in a
 * statefile saved after each put, so a kill -9 can repeat a number (a duplicate) but never
 * skip one. On connect it publishes the birth {"online":true} retained on .../status; the will
 * there is {"online":false}. It subscribes to .../cmd and prints each message it gets as
 * "rx TOPIC len=N retained=0|1 expiry=S", followed by " oversize" for one over the incoming cap
 * (delivered without its payload). SIGTERM: stop producing, wait (at most 15 s) until the
 * outbox is empty, then a clean shutdown; the last line on stdout is "produced N depth D failed F".
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "mqtt.h"
#include "outbox.h"
#include "statefile.h"

#define TICK_MS 10

struct drive {
	struct loop *loop;
	struct agent_config cfg;
	struct outbox *ob;
	struct mqtt *mqtt;
	char state_path[512];
	char topic_status[256], topic_event[256], topic_cmd[256];
	struct statefile sf;
	unsigned rate, state_every, keys;
	double credit;
	bool stopping;
	uint64_t stop_deadline;
};

static void on_connected(struct mqtt *m, void *data)
{
	struct drive *d = data;
	char birth[64];
	int n = snprintf(birth, sizeof(birth), "{\"online\":true,\"session\":%" PRIu64 "}",
	                 d->sf.session);

	mqtt_publish(m, d->topic_status, birth, (size_t)n, true, 1);
	mqtt_subscribe(m, d->topic_cmd, 1);
}

/* Incoming messages are printed, so the test can check what reaches the loop thread. */
static void on_message(struct mqtt *m, const struct mqtt_message *msg, void *data)
{
	(void)m;
	(void)data;
	printf("rx %s len=%zu retained=%d expiry=%" PRId64 "%s\n", msg->topic, msg->len,
	       msg->retained, msg->expiry_s, msg->oversize ? " oversize" : "");
	fflush(stdout);
}

static int produce_one(struct drive *d)
{
	uint64_t n = d->sf.next_seq;
	char payload[64], topic[256], key[64];
	int len = snprintf(payload, sizeof(payload), "{\"n\":%" PRIu64 "}", n);
	int r;

	r = outbox_put(d->ob, d->topic_event, payload, (size_t)len, false, 1, NULL, NULL);
	if (r < 0 && r != -ENOBUFS)
		return r;
	if (d->state_every && n % d->state_every == 0) {
		unsigned k = (unsigned)((n / d->state_every) % d->keys);

		snprintf(topic, sizeof(topic), "cradle/v1/agent/%s/device/dev%u/state",
		         d->cfg.agent_id, k);
		snprintf(key, sizeof(key), "state:dev%u", k);
		r = outbox_put(d->ob, topic, payload, (size_t)len, true, 1, key, NULL);
		if (r < 0)
			return r;
	}
	d->sf.next_seq = n + 1;
	return statefile_save(d->state_path, &d->sf);
}

static void tick(struct loop *loop, uint64_t id, void *data)
{
	struct drive *d = data;

	(void)id;
	if (d->stopping) {
		if (outbox_depth(d->ob) == 0 || loop_now_ms() > d->stop_deadline) {
			loop_stop(loop);
			return;
		}
	} else {
		d->credit += d->rate * TICK_MS / 1000.0;
		while (d->credit >= 1.0) {
			if (produce_one(d) < 0) {
				log_error("drive: produce failed");
				loop_stop(loop);
				return;
			}
			d->credit -= 1.0;
		}
		mqtt_kick(d->mqtt);
	}
	loop_add_timer(loop, TICK_MS, tick, d);
}

static void on_term(struct loop *loop, int signo, void *data)
{
	struct drive *d = data;

	(void)loop;
	(void)signo;
	d->stopping = true;
	d->stop_deadline = loop_now_ms() + 15000;
}

int main(int argc, char **argv)
{
	struct drive d = { 0 };
	struct outbox_limits lim;
	struct mqtt_options mo = { 0 };
	struct mqtt_stats ms;
	char err[AGENT_CONFIG_ERROR_MAX];
	const char *will = "{\"online\":false}";
	int r;

	if (argc != 5) {
		fprintf(stderr, "usage: %s CONFIG RATE STATE_EVERY KEYS\n", argv[0]);
		return 2;
	}
	log_init("outbox_drive", LOG_LEVEL_INFO);
	r = agent_config_load(argv[1], &d.cfg, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	log_set_level(d.cfg.log_level);
	d.rate = (unsigned)atoi(argv[2]);
	d.state_every = (unsigned)atoi(argv[3]);
	d.keys = (unsigned)atoi(argv[4]);
	if (d.keys == 0)
		d.keys = 1;
	snprintf(d.state_path, sizeof(d.state_path), "%s/driver.state", d.cfg.state_dir);
	snprintf(d.topic_status, sizeof(d.topic_status), "cradle/v1/agent/%s/status",
	         d.cfg.agent_id);
	snprintf(d.topic_cmd, sizeof(d.topic_cmd), "cradle/v1/agent/%s/cmd", d.cfg.agent_id);
	snprintf(d.topic_event, sizeof(d.topic_event), "cradle/v1/agent/%s/device/dev0/event",
	         d.cfg.agent_id);
	r = statefile_load(d.state_path, &d.sf);
	if (r < 0)
		log_warn_errno(r, "drive: state file damaged, starting over");
	if (d.sf.next_seq == 0)
		d.sf.next_seq = 1;
	d.sf.session++;
	d.sf.reserved_end = 0;
	if (statefile_save(d.state_path, &d.sf) < 0)
		return 1;

	d.loop = loop_new();
	if (!d.loop)
		return 1;
	/* before any Paho thread exists: threads inherit the blocked signal mask */
	loop_add_signal(d.loop, SIGTERM, on_term, &d);
	loop_add_signal(d.loop, SIGINT, on_term, &d);
	lim.max_bytes = d.cfg.outbox_max_bytes;
	lim.max_records = d.cfg.outbox_max_records;
	if (outbox_open(d.cfg.state_dir, &lim, &d.ob) < 0)
		return 1;
	mo.url = d.cfg.broker_url;
	mo.client_id = d.cfg.agent_id;
	mo.username = d.cfg.mqtt_username;
	mo.password = d.cfg.mqtt_password;
	mo.keepalive_s = (int)d.cfg.keepalive_s;
	mo.will_delay_s = (int)d.cfg.will_delay_s;
	mo.session_expiry_s = (int)d.cfg.session_expiry_s;
	mo.will_topic = d.topic_status;
	mo.will_payload = will;
	mo.will_len = strlen(will);
	mo.retry_max_s = 2; /* the test waits for the reconnect: keep it short */
	r = mqtt_new(d.loop, d.ob, &mo,
	             &(struct mqtt_callbacks){ .connected = on_connected, .message = on_message },
	             &d, &d.mqtt);
	if (r < 0 || mqtt_start(d.mqtt) < 0)
		return 1;
	loop_add_timer(d.loop, TICK_MS, tick, &d);
	loop_run(d.loop);

	mqtt_shutdown(d.mqtt, will, strlen(will), 5000);
	mqtt_get_stats(d.mqtt, &ms);
	fprintf(stderr,
	        "drive: connects %" PRIu64 " sent %" PRIu64 " acked %" PRIu64 " failed %" PRIu64
	        "\n",
	        ms.connects, ms.sent, ms.acked, ms.failed);
	printf("produced %" PRIu64 " depth %" PRIu64 " failed %" PRIu64 "\n", d.sf.next_seq - 1,
	       outbox_depth(d.ob), ms.failed);
	fflush(stdout);
	d.mqtt = mqtt_free(d.mqtt);
	d.ob = outbox_close(d.ob);
	d.loop = loop_free(d.loop);
	return 0;
}
