/* SPDX-License-Identifier: MIT */
/*
 * devmon: which iPhones are attached, as attach/detach calls on the loop thread.
 *
 * Two sources, deduplicated by UDID so each change is reported once:
 *  - usbmuxd events (idevice_event_subscribe): fast, but missed while usbmuxd restarts (the
 *    event thread reconnects by polling once a second: idev_events_prepare()) or when a post
 *    fails;
 *  - a resync every resync_ms with one ListDevices: heals any missed event and reports
 *    everything as detached when usbmuxd is gone (socket missing or connection refused;
 *    usbmuxd exits with its last device, so that is the normal idle state: logged once, not
 *    an error). Another failure of the listing changes nothing;
 *  - in UNIX socket mode, an inotify watch on the socket's directory: a new socket (a restart,
 *    however quick) means a resync at once and one more after the event thread is back.
 * libusbmuxd 2.0.2's event thread leaks one socket per usbmuxd restart (agent/README.md).
 *
 * Threading: the libusbmuxd thread only copies the UDID into a bounded loop mailbox (loop.h);
 * everything else runs on the loop thread. libimobiledevice allows a single event subscription
 * per process, so there is at most one devmon at a time.
 * The resync's ListDevices blocks the loop thread briefly (local socket, ~ms at 500 devices;
 * libusbmuxd's 5 s receive timeout bounds it).
 */
#ifndef CRADLE_DEVMON_H
#define CRADLE_DEVMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct devmon;

enum devmon_event {
	DEVMON_ATTACHED,
	DEVMON_DETACHED,
	DEVMON_PAIRED, /* usbmuxd saved a pair record (the user tapped Trust): probe again */
};

/* udid borrowed for the call. Never called from inside devmon_start()/devmon_free(). */
typedef void (*devmon_fn)(enum devmon_event ev, const char *udid, void *data);

/*
 * Called after every resync's ListDevices: up = usbmuxd answered; devices = how many it listed
 * (0 when it did not answer). For agent-level events (agentev.h).
 */
typedef void (*devmon_usbmuxd_fn)(bool up, size_t devices, void *data);

/* resync_ms: 0 = 10 s. NULL on allocation failure or when a devmon already exists. */
struct devmon *devmon_new(struct loop *loop, uint64_t resync_ms, devmon_fn fn, void *data);

/* Sets (fn NULL: clears) the usbmuxd watcher. NULL-safe. */
void devmon_watch_usbmuxd(struct devmon *dm, devmon_usbmuxd_fn fn, void *data);

/* Subscribes and schedules the first resync at once. 0 or -errno (usbmuxd absence is not one). */
int devmon_start(struct devmon *dm);

/* Resync now (e.g. on command). */
void devmon_resync(struct devmon *dm);

/* Unsubscribes (joins libusbmuxd's thread), cancels the timer, frees. No callbacks after. */
struct devmon *devmon_free(struct devmon *dm);

#endif
