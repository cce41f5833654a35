/* SPDX-License-Identifier: MIT */
/*
 * registry: see registry.h. Each device carries its probe state: probing (a request is out),
 * probe_again (another was asked for meanwhile) and the timer of its next periodic probe, and
 * whether its state still waits to be republished after a connect.
 *
 * Republishing is paced: REGISTRY_REPUBLISH_BATCH devices per REGISTRY_REPUBLISH_TICK_MS (200
 * states a second: 500 phones in 2.5 s), so a reconnect of a full station neither blocks the
 * loop nor floods the outbox and the broker at once. A cursor walks the list round robin, so
 * under a connection that flaps faster than a pass the same phones are not always first.
 */
#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "topics.h"

#define REGISTRY_REPUBLISH_BATCH   20
#define REGISTRY_REPUBLISH_TICK_MS 100

struct device {
	struct registry_device pub; /* first: the owner's view */
	struct registry *reg;       /* owner: timers carry only the device */
	bool probing;
	bool probe_again;
	uint64_t probe_timer;
	int last_backup_error;  /* MBErrorDomain of the last local backup, 0 = fine */
	int64_t docked_at;      /* wall s of this docking's attach */
	int64_t on_power_since; /* wall s since which every probe saw it on power, 0 = not */
	bool power_seen;        /* a probe of this docking read the battery */
	bool republish;         /* its state waits in the current republish pass */
	struct device *next;
};

struct registry {
	struct loop *loop;
	struct probe_sched *probe;
	int64_t probe_interval_s;
	const struct registry_ops *ops;
	void *data;
	struct device *devices;
	/* republish pass: devices still marked, where the next tick looks first, its timer */
	size_t republish_left;
	struct device *republish_at;
	uint64_t republish_timer;
};

static void on_probe_done(const struct device_facts *facts, void *data);

struct registry *registry_new(struct loop *loop, const struct probe_config *probe,
                              int64_t probe_interval_s, const struct registry_ops *ops, void *data)
{
	struct registry *reg = calloc(1, sizeof(*reg));

	if (!reg)
		return NULL;
	reg->loop = loop;
	reg->probe_interval_s = probe_interval_s;
	reg->ops = ops;
	reg->data = data;
	reg->probe = probe_sched_new(loop, probe, on_probe_done, reg);
	if (!reg->probe) {
		free(reg);
		return NULL;
	}
	return reg;
}

/* ---- device table ---- */

static struct device *device_find(struct registry *reg, const char *udid)
{
	struct device *dev;

	for (dev = reg->devices; dev; dev = dev->next)
		if (strcmp(dev->pub.udid, udid) == 0)
			return dev;
	return NULL;
}

static struct device *device_get(struct registry *reg, const char *udid)
{
	struct device *dev = device_find(reg, udid);

	if (dev)
		return dev;
	dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	dev->reg = reg;
	snprintf(dev->pub.udid, sizeof(dev->pub.udid), "%s", udid);
	snprintf(dev->pub.facts.udid, sizeof(dev->pub.facts.udid), "%s", udid);
	dev->pub.facts.probe = FACTS_PROBE_ERROR;
	snprintf(dev->pub.facts.error_text, sizeof(dev->pub.facts.error_text), "not probed yet");
	dev->next = reg->devices;
	reg->devices = dev;
	return dev;
}

struct registry_device *registry_find(struct registry *reg, const char *udid)
{
	struct device *dev = device_find(reg, udid);

	return dev ? &dev->pub : NULL;
}

bool registry_attached(const char *udid, void *data)
{
	struct device *dev = device_find(data, udid);

	return dev && dev->pub.attached;
}

void registry_count(const struct registry *reg, unsigned *ret_known, unsigned *ret_attached)
{
	unsigned known = 0, attached = 0;

	for (const struct device *dev = reg ? reg->devices : NULL; dev; dev = dev->next) {
		known++;
		attached += dev->pub.attached;
	}
	*ret_known = known;
	*ret_attached = attached;
}

/* ---- probe state machine ---- */

static void probe_device(struct registry *reg, struct device *dev)
{
	int r;

	if (dev->probing) {
		dev->probe_again = true;
		return;
	}
	r = probe_request(reg->probe, dev->pub.udid);
	if (r < 0) {
		log_warn_errno(r, "device '%s': cannot start a probe, will retry", dev->pub.udid);
		return;
	}
	dev->probing = true;
}

static void on_probe_timer(struct loop *loop, uint64_t id, void *data);

static void schedule_probe(struct registry *reg, struct device *dev, int64_t delay_s)
{
	if (dev->probe_timer)
		loop_cancel_timer(reg->loop, dev->probe_timer);
	dev->probe_timer = loop_add_timer(reg->loop, (uint64_t)delay_s * 1000, on_probe_timer, dev);
}

static void on_probe_timer(struct loop *loop, uint64_t id, void *data)
{
	struct device *dev = data;

	(void)loop;
	(void)id;
	dev->probe_timer = 0;
	if (dev->pub.attached)
		probe_device(dev->reg, dev);
}

static void on_probe_done(const struct device_facts *facts, void *data)
{
	struct registry *reg = data;
	const char *udid = facts->udid;
	struct device *dev = device_find(reg, udid);

	if (!dev)
		return;
	dev->probing = false;
	if (dev->pub.attached || facts->probe != FACTS_PROBE_GONE) {
		/* a probe that found the phone gone must not wipe what we knew about it */
		dev->pub.facts = *facts;
		dev->pub.facts.last_backup_error = dev->last_backup_error;
		dev->pub.have_facts = true;
	}
	if (dev->pub.attached && facts->probe == FACTS_PROBE_OK && facts->has_battery) {
		/* docking window: on power since the attach when the first reading says so */
		if (!facts->external_connected)
			dev->on_power_since = 0;
		else if (!dev->on_power_since)
			dev->on_power_since =
			        dev->power_seen ? facts->probed_at_ms / 1000 : dev->docked_at;
		dev->power_seen = true;
	}
	dev->pub.facts.docked_at_unix = dev->pub.attached ? dev->docked_at : 0;
	dev->pub.facts.on_power_since_unix = dev->pub.attached ? dev->on_power_since : 0;
	reg->ops->probed(reg->data, udid, facts);
	if (!dev->pub.attached)
		return;
	reg->ops->state(reg->data, &dev->pub, false);
	if (dev->probe_again) {
		dev->probe_again = false;
		probe_device(reg, dev);
		return;
	}
	schedule_probe(reg, dev, reg->probe_interval_s);
}

void registry_on_device(enum devmon_event ev, const char *udid, void *data)
{
	struct registry *reg = data;
	bool attached = ev != DEVMON_DETACHED;
	struct device *dev;

	if (!topics_udid_valid(udid)) {
		log_warn("device '%s': UDID not usable in a topic, ignoring", udid);
		return;
	}
	dev = attached ? device_get(reg, udid) : device_find(reg, udid);
	if (!dev) {
		if (attached)
			log_error("device '%s': out of memory, ignoring", udid);
		return;
	}
	if (ev == DEVMON_PAIRED) {
		/* the person tapped Trust: read the phone now rather than at the next interval */
		log_info("device '%s': paired", udid);
		if (dev->pub.attached)
			probe_device(reg, dev);
		return;
	}
	if (attached == dev->pub.attached)
		return;
	dev->pub.attached = attached;
	if (attached) {
		log_info("device '%s': attached", udid);
		dev->docked_at = wall_now_ms() / 1000;
		dev->on_power_since = 0;
		dev->power_seen = false;
		reg->ops->presence(reg->data, &dev->pub);
		probe_device(reg, dev);
		return;
	}
	log_info("device '%s': detached", udid);
	if (dev->probe_timer) {
		loop_cancel_timer(reg->loop, dev->probe_timer);
		dev->probe_timer = 0;
	}
	dev->probe_again = false;
	/* a probe already requested is left to run: it comes back "gone" and clears
	 * dev->probing; cancelling it would leave the flag set with no answer to come */
	reg->ops->presence(reg->data, &dev->pub);
}

int registry_probe(struct registry *reg, const char *udid)
{
	struct device *dev = device_find(reg, udid);

	if (!dev)
		return -ENOENT;
	probe_device(reg, dev);
	return 0;
}

void registry_set_backup_error(struct registry *reg, const char *udid, int code)
{
	struct device *dev = device_find(reg, udid);

	if (!dev)
		return;
	dev->last_backup_error = code;
	dev->pub.facts.last_backup_error = code;
	if (dev->pub.attached)
		reg->ops->state(reg->data, &dev->pub, false);
}

/* ---- republishing every known state (after a connect) ---- */

static void on_republish_tick(struct loop *loop, uint64_t id, void *data)
{
	struct registry *reg = data;
	struct device *dev;
	size_t total = 0, seen, n = 0;

	(void)loop;
	(void)id;
	reg->republish_timer = 0;
	for (dev = reg->devices; dev; dev = dev->next)
		total++;
	/* at most one lap of the list from the cursor, wrapping at the end */
	dev = reg->republish_at;
	for (seen = 0; seen < total && reg->republish_left > 0 && n < REGISTRY_REPUBLISH_BATCH;
	     seen++) {
		if (!dev)
			dev = reg->devices;
		if (dev->republish) {
			dev->republish = false;
			reg->republish_left--;
			n++;
			reg->ops->state(reg->data, &dev->pub, true);
		}
		dev = dev->next;
	}
	reg->republish_at = dev;
	if (reg->republish_left > 0 && n > 0)
		reg->republish_timer = loop_add_timer(reg->loop, REGISTRY_REPUBLISH_TICK_MS,
		                                      on_republish_tick, reg);
	else
		reg->republish_left = 0; /* done (or a lap found nothing marked: a stale count) */
}

void registry_republish(struct registry *reg)
{
	struct device *dev;
	size_t n = 0;

	for (dev = reg->devices; dev; dev = dev->next) {
		if (!dev->pub.pub.have_state)
			continue; /* nothing published yet: its first state is still to come */
		if (!dev->republish)
			reg->republish_left++;
		dev->republish = true;
		n++;
	}
	if (n)
		log_info("republishing the state of %zu devices", n);
	if (reg->republish_left > 0 && !reg->republish_timer) {
		reg->republish_timer = loop_add_timer(reg->loop, 0, on_republish_tick, reg);
		if (!reg->republish_timer)
			log_warn("cannot schedule the republishing of device states");
	}
}

static void republish_stop(struct registry *reg)
{
	struct device *dev;

	for (dev = reg->devices; dev; dev = dev->next)
		dev->republish = false;
	if (reg->republish_timer)
		loop_cancel_timer(reg->loop, reg->republish_timer);
	reg->republish_timer = 0;
	reg->republish_left = 0;
}

/* ---- shutdown ---- */

static void on_shutdown_tick(struct loop *loop, uint64_t id, void *data)
{
	(void)id;
	(void)data;
	loop_stop(loop);
}

void registry_stop(struct registry *reg, uint64_t shutdown_ms)
{
	uint64_t deadline = loop_now_ms() + shutdown_ms;

	republish_stop(reg);
	probe_sched_stop(reg->probe);
	while (!probe_idle(reg->probe) && loop_now_ms() < deadline) {
		loop_add_timer(reg->loop, 50, on_shutdown_tick, NULL);
		loop_run(reg->loop);
	}
	reg->probe = probe_sched_free(reg->probe);
}

struct registry *registry_free(struct registry *reg)
{
	struct device *dev, *next;

	if (!reg)
		return NULL;
	republish_stop(reg);
	probe_sched_free(reg->probe);
	for (dev = reg->devices; dev; dev = next) {
		next = dev->next;
		if (dev->probe_timer)
			loop_cancel_timer(reg->loop, dev->probe_timer);
		free(dev);
	}
	free(reg);
	return NULL;
}
