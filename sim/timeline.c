/* SPDX-License-Identifier: MIT */
/*
 * timeline: the scripted per-device events of a scenario ("at 30 s the battery drops and the
 * phone leaves power, at 60 s it is unplugged"), each on its own one-shot loop timer counted
 * from start-up. at_ms is simulated time: with a time_scale of 60 an event at one hour fires one
 * real minute after start-up. The events are owned here from timeline_start() until exit.
 */
#include "timeline.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "scenario.h"
#include "sim.h"
#include "timefmt.h"

struct timeline_slot {
	struct timeline *tl;
	struct timeline_event ev;
	uint64_t timer;
};

struct timeline {
	struct sim *sim;
	struct timeline_slot *slots;
	int n;
};

static void timeline_syslog(struct sim *sim, const struct timeline_event *ev)
{
	char line[SIM_SYSLOG_LINE_MAX + 1];

	if (!ev->process[0]) {
		sim_device_syslog(sim, ev->dev, ev->text ? ev->text : "");
		return;
	}
	if (sim_syslog_format(sim, ev->dev, ev->process, ev->level, ev->text ? ev->text : "", line,
	                      sizeof(line)) >= 0)
		sim_device_syslog(sim, ev->dev, line);
}

/* {"$now": s} is read off the simulated clock when the event fires. */
static void timeline_set(struct sim *sim, const struct timeline_event *ev)
{
	int64_t now_mac = timefmt_unix_to_mac(sim_clock_ms(sim) / 1000);
	plist_t v;

	if (ev->value_now)
		v = plist_new_uint((uint64_t)(now_mac + ev->now_offset_s));
	else
		v = ev->value ? plist_copy(ev->value) : NULL;
	sim_device_set_value(sim, ev->dev, ev->domain, ev->key, v);
}

void timeline_apply(struct sim *sim, const struct timeline_event *ev)
{
	struct sim_device *dev = ev->dev;

	switch (ev->op) {
	case TIMELINE_ATTACH:
		sim_device_attach(sim, dev);
		break;
	case TIMELINE_DETACH:
		sim_device_detach(sim, dev);
		break;
	case TIMELINE_PAIRING:
		sim_device_set_pairing(sim, dev, ev->pairing);
		break;
	case TIMELINE_SET:
		timeline_set(sim, ev);
		break;
	case TIMELINE_SYSLOG:
		timeline_syslog(sim, ev);
		break;
	}
	log_debug("timeline: %s: event at %llu ms applied", dev->udid,
	          (unsigned long long)ev->at_ms);
}

static void timeline_fire(struct loop *loop, uint64_t timer_id, void *data)
{
	struct timeline_slot *s = data;

	(void)loop;
	(void)timer_id;
	s->timer = 0;
	timeline_apply(s->tl->sim, &s->ev);
}

int timeline_start(struct sim *sim, struct scenario *sc, struct timeline **ret)
{
	struct timeline *tl;
	int i;

	tl = calloc(1, sizeof(*tl));
	if (!tl)
		return -ENOMEM;
	tl->sim = sim;
	if (sc->n_events) {
		tl->slots = calloc((size_t)sc->n_events, sizeof(*tl->slots));
		if (!tl->slots) {
			free(tl);
			return -ENOMEM;
		}
	}
	for (i = 0; i < sc->n_events; i++) {
		struct timeline_slot *s = &tl->slots[i];

		s->tl = tl;
		s->ev = sc->events[i];
		s->timer = loop_add_timer(sim->loop, sim_clock_real_ms(sim, s->ev.at_ms),
		                          timeline_fire, s);
		if (!s->timer)
			log_warn("timeline: %s: cannot schedule event", s->ev.dev->udid);
	}
	tl->n = sc->n_events;
	free(sc->events);
	sc->events = NULL;
	sc->n_events = 0;
	*ret = tl;
	return 0;
}

void timeline_stop(struct timeline *tl)
{
	int i;

	if (!tl)
		return;
	for (i = 0; i < tl->n; i++) {
		if (tl->slots[i].timer)
			loop_cancel_timer(tl->sim->loop, tl->slots[i].timer);
		scenario_event_free(&tl->slots[i].ev);
	}
	free(tl->slots);
	free(tl);
}
