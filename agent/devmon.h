/* SPDX-License-Identifier: MIT */
/*
 * devmon: which iPhones are attached, as attach/detach calls on the loop thread.
 *
 * Three sources, deduplicated by UDID so each change is reported once:
 *  - usbmuxd events on a Listen connection devmon owns (idev_listen_*), a socket on the loop:
 *    fast. When it ends (usbmuxd stopped or restarted, however quickly) devmon closes it,
 *    resyncs at once and connects again with a back-off (100 ms doubling to 2 s); once usbmuxd
 *    accepts it again, one more resync covers what happened in between;
 *  - a resync every resync_ms with one ListDevices: heals anything missed and reports
 *    everything as detached when usbmuxd is gone (socket missing or connection refused;
 *    usbmuxd exits with its last device, so that is the normal idle state: logged once, not
 *    an error). Another failure of the listing changes nothing;
 *  - in UNIX socket mode, an inotify watch on the socket's directory: a new socket means a
 *    resync and a reconnection at once.
 *
 * Threading: none of its own; everything runs on the loop thread, and no socket outlives its
 * connection. The resync's ListDevices blocks the loop thread briefly (local socket, ~ms at 500
 * devices; libusbmuxd's 5 s receive timeout bounds it).
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

/* resync_ms: 0 = 10 s. NULL on allocation failure. */
struct devmon *devmon_new(struct loop *loop, uint64_t resync_ms, devmon_fn fn, void *data);

/* Sets (fn NULL: clears) the usbmuxd watcher. NULL-safe. */
void devmon_watch_usbmuxd(struct devmon *dm, devmon_usbmuxd_fn fn, void *data);

/*
 * Connects for events (or schedules it) and schedules the first resync at once. 0 or -errno
 * (usbmuxd absence is not one).
 */
int devmon_start(struct devmon *dm);

/* Resync now (e.g. on command). */
void devmon_resync(struct devmon *dm);

/* Closes the event connection, cancels the timers, frees. No callbacks after. */
struct devmon *devmon_free(struct devmon *dm);

#endif
