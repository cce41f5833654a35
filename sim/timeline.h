/* SPDX-License-Identifier: MIT */
/*
 * timeline: plays a scenario's scripted per-device events (scenario.h, struct timeline_event)
 * on loop timers counted from start-up, through the model (sim.h) like any other driver.
 *
 * Ownership: struct timeline takes the events over from the scenario in timeline_start() and
 * frees them in timeline_stop().
 */
#ifndef CRADLE_SIM_TIMELINE_H
#define CRADLE_SIM_TIMELINE_H

#include "scenario.h"

struct sim;
struct timeline;

/* Schedules every event of sc on sim->loop and takes them over. 0 or -ENOMEM. */
int timeline_start(struct sim *sim, struct scenario *sc, struct timeline **ret);
void timeline_stop(struct timeline *tl); /* cancels what has not fired; NULL-safe */
/* Applies one event now. */
void timeline_apply(struct sim *sim, const struct timeline_event *ev);

#endif
