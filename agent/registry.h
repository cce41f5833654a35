/* SPDX-License-Identifier: MIT */
/*
 * registry: the devices this agent knows, keyed by UDID, and the probe state machine of each:
 * probe on attach and on pairing, again every probe_interval while attached, at most one probe
 * per device at a time (a request during a probe runs once after it), and nothing new after a
 * detach (a probe already running is left to answer "gone").
 *
 * A device stays known after it is unplugged, with its last facts, so the unplug message can
 * repeat them and a command can still be refused by name. The table is a list: hundreds of
 * phones per station cost microseconds per event.
 *
 * The registry owns the probe scheduler (probe.h) and the devices; it tells its owner what
 * happened through registry_ops and never publishes or starts actions itself.
 *
 * Threading: loop thread only. devmon and the probe scheduler call in from the loop.
 */
#ifndef CRADLE_REGISTRY_H
#define CRADLE_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "devmon.h"
#include "facts.h"
#include "probe.h"
#include "publish.h"

struct loop;
struct registry;

/* One device. Owned by the registry; the owner may read it during a callback. */
struct registry_device {
	char udid[FACTS_UDID_MAX];
	bool attached;
	bool have_facts;
	struct device_facts facts; /* the last probe's, with last_backup_error merged in */
	struct publish_memo pub;   /* what was last published about it (publish.h) */
};

struct registry_ops {
	/* dev was attached or detached (dev->attached tells which) */
	void (*presence)(void *data, struct registry_device *dev);
	/* every probe result, also of a device detached meanwhile (facts borrowed) */
	void (*probed)(void *data, const char *udid, const struct device_facts *facts);
	/* dev's facts changed: publish its state (force: even if unchanged) */
	void (*state)(void *data, struct registry_device *dev, bool force);
};

/*
 * probe is copied (its helper path stays borrowed); probe_interval_s is the time between the
 * probes of an attached device. ops and data borrowed. NULL on allocation failure.
 */
struct registry *registry_new(struct loop *loop, const struct probe_config *probe,
                              int64_t probe_interval_s, const struct registry_ops *ops, void *data);

/* devmon's callback (devmon_fn): data is the registry. */
void registry_on_device(enum devmon_event ev, const char *udid, void *data);

/* The device, attached or not, or NULL. */
struct registry_device *registry_find(struct registry *reg, const char *udid);

/* Whether udid is known and attached (cmd's device_known). data is the registry. */
bool registry_attached(const char *udid, void *data);

/* How many devices are known, and how many of them are attached now (metrics). */
void registry_count(const struct registry *reg, unsigned *ret_known, unsigned *ret_attached);

/* Probe udid now (or right after the one running). -ENOENT when the device is not known. */
int registry_probe(struct registry *reg, const char *udid);

/* Records the MBErrorDomain code of the device's last local backup (0 = fine) and, while it is
 * attached, publishes its state: passcode_required shows up in the diagnosis. */
void registry_set_backup_error(struct registry *reg, const char *udid, int code);

/*
 * Publishes the state of every device that has one again (ops->state with force), attached or
 * not, paced: a batch per loop tick (registry.c), so 500 phones do not burst. Called on every
 * connect: a broker that lost its retained messages (restart without persistence, or one that
 * restored an older autosave) gets every phone's current state back within seconds instead of
 * at the next change or refresh_interval. A call during a pass marks every device again.
 */
void registry_republish(struct registry *reg);

/*
 * Shutdown: stops the probes and runs the loop until the helpers have ended (they are killed
 * at their deadline, so none outlives the agent), at most shutdown_ms. No callbacks after.
 */
void registry_stop(struct registry *reg, uint64_t shutdown_ms);

/* Stops (if not yet, without waiting) and frees the devices. NULL-safe; returns NULL. */
struct registry *registry_free(struct registry *reg);

#endif
