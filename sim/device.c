/* SPDX-License-Identifier: MIT */
/*
 * device: the device table of cradle-sim as the mux half sees it. Lookup by UDID and by
 * DeviceID, attach/detach (a fresh DeviceID on every attach, like usbmuxd re-enumerating after
 * a reboot), the restart dance used by diagnostics_relay Restart, and the per-device journal
 * the control socket hands to tests ("what did the client ask this phone to do").
 *
 * Devices are created at load time and live until exit, so loop timers may point at them. The
 * journal is capped: past SIM_JOURNAL_MAX entries the oldest go, so a client that polls a
 * device forever cannot grow the simulator without bound.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "log.h"
#include "loop.h"
#include "mux.h"
#include "scenario.h"
#include "sim.h"
#include "timefmt.h"

#define SIM_JOURNAL_MAX 4096

struct mux_pending {
	struct mux_pending *next;
	struct sim *sim;
	struct sim_device *dev;
	uint64_t timer;
};

struct sim_device *sim_device_new(const char *udid)
{
	struct sim_device *dev = calloc(1, sizeof(*dev));

	if (!dev)
		return NULL;
	snprintf(dev->udid, sizeof(dev->udid), "%s", udid);
	dev->values = plist_new_dict();
	plist_dict_set_item(dev->values, "", plist_new_dict());
	dev->journal = cJSON_CreateArray();
	dev->pairing = SIM_PAIRING_PAIRED;
	if (!dev->values || !dev->journal) {
		sim_device_free(dev);
		return NULL;
	}
	return dev;
}

void sim_device_free(struct sim_device *dev)
{
	int i;

	if (!dev)
		return;
	devport_device_free(dev);
	plist_free(dev->values);
	for (i = 0; i < dev->n_syslog; i++)
		free(dev->syslog[i]);
	free(dev->syslog);
	cJSON_Delete(dev->journal);
	free(dev);
}

struct sim_device *sim_device_by_udid(struct sim *sim, const char *udid)
{
	char norm[64];
	int i;

	if (!udid)
		return NULL;
	if (scenario_normalize_udid(udid, norm, sizeof(norm)) < 0)
		return NULL;
	for (i = 0; i < sim->n_devices; i++)
		if (strcmp(sim->devices[i]->udid, norm) == 0)
			return sim->devices[i];
	return NULL;
}

struct sim_device *sim_device_by_id(struct sim *sim, uint32_t device_id)
{
	int i;

	if (device_id == 0)
		return NULL;
	for (i = 0; i < sim->n_devices; i++)
		if (sim->devices[i]->attached && sim->devices[i]->device_id == device_id)
			return sim->devices[i];
	return NULL;
}

void sim_device_attach(struct sim *sim, struct sim_device *dev)
{
	struct mux *m = sim->mux;

	if (dev->attached)
		return;
	dev->device_id = m ? m->next_device_id++ : dev->device_id + 1;
	dev->attached = true;
	log_debug("device %s: attached as %u", dev->udid, dev->device_id);
	mux_device_changed(sim, dev, true);
}

void sim_device_detach(struct sim *sim, struct sim_device *dev)
{
	if (!dev->attached)
		return;
	dev->attached = false;
	devport_device_gone(sim, dev);
	log_debug("device %s: detached (was %u)", dev->udid, dev->device_id);
	mux_device_changed(sim, dev, false);
}

static void restart_fire(struct loop *loop, uint64_t timer_id, void *data)
{
	struct mux_pending *p = data, **pp;
	struct mux *m = p->sim->mux;

	(void)loop;
	(void)timer_id;
	for (pp = &m->pending; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	sim_device_attach(p->sim, p->dev);
	free(p);
}

void sim_device_restart(struct sim *sim, struct sim_device *dev)
{
	struct mux *m = sim->mux;
	struct mux_pending *p;
	int delay = dev->restart_delay_ms > 0 ? dev->restart_delay_ms : 0;

	sim_device_detach(sim, dev);
	if (!m)
		return;
	p = calloc(1, sizeof(*p));
	if (!p) {
		sim_device_attach(sim, dev);
		return;
	}
	p->sim = sim;
	p->dev = dev;
	p->timer = loop_add_timer(sim->loop, (uint64_t)delay, restart_fire, p);
	if (!p->timer) {
		free(p);
		sim_device_attach(sim, dev);
		return;
	}
	p->next = m->pending;
	m->pending = p;
}

void sim_device_cancel_restarts(struct sim *sim)
{
	struct mux *m = sim->mux;

	while (m && m->pending) {
		struct mux_pending *p = m->pending;

		m->pending = p->next;
		loop_cancel_timer(sim->loop, p->timer);
		free(p);
	}
}

void sim_journal(struct sim_device *dev, const char *op, struct cJSON *fields)
{
	char ts[TIMEFMT_RFC3339_MAX];
	cJSON *e = NULL, *item;

	if (!dev->journal)
		goto out;
	e = cJSON_CreateObject();
	if (!e)
		goto out;
	if (timefmt_rfc3339_ms(wall_now_ms(), ts, sizeof(ts)) == 0)
		cJSON_AddStringToObject(e, "ts", ts);
	cJSON_AddStringToObject(e, "op", op);
	if (fields && cJSON_IsObject(fields)) {
		while ((item = fields->child)) {
			cJSON_DetachItemViaPointer(fields, item);
			if (cJSON_GetObjectItemCaseSensitive(e, item->string))
				cJSON_Delete(item);
			else
				cJSON_AddItemToObject(e, item->string, item);
		}
	}
	while (cJSON_GetArraySize(dev->journal) >= SIM_JOURNAL_MAX)
		cJSON_DeleteItemFromArray(dev->journal, 0);
	cJSON_AddItemToArray(dev->journal, e);
	e = NULL;
out:
	cJSON_Delete(e);
	cJSON_Delete(fields);
}
