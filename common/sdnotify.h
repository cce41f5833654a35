/* SPDX-License-Identifier: MIT */
/*
 * sdnotify: tells the service manager (systemd, Type=notify) how the daemon is doing, through
 * sd_notify(3) of libsystemd: READY=1 once the loop turns, STATUS= lines an admin reads in
 * `systemctl status`, WATCHDOG=1 pings and STOPPING=1.
 *
 * The watchdog pings are a timer on the daemon's own loop, at half the interval the manager
 * asked for (WATCHDOG_USEC, for this pid: WATCHDOG_PID): a loop that hangs stops pinging and
 * the manager kills and restarts the service. Without NOTIFY_SOCKET (a terminal, a test, a
 * container without systemd) every call is a no-op. Loop thread only; one per process.
 */
#ifndef CRADLE_SDNOTIFY_H
#define CRADLE_SDNOTIFY_H

#include "loop.h"

struct sdnotify;

/*
 * Sends READY=1 with STATUS=ready_status (copied) from the loop's first turn, then pings the
 * watchdog if the manager asked for one. *ret is NULL when there is no manager to tell.
 * 0 or -ENOMEM.
 */
int sdnotify_new(struct loop *loop, const char *ready_status, struct sdnotify **ret);

/* STATUS=<text>, unless it is the status sent last; no-op when n is NULL. */
void sdnotify_status(struct sdnotify *n, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* STOPPING=1 and STATUS=<text>: the manager shows "deactivating" from now on. NULL-safe. */
void sdnotify_stopping(struct sdnotify *n, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* Cancels the pings; NULL-safe; returns NULL. Before loop_free(). */
struct sdnotify *sdnotify_free(struct sdnotify *n);

#endif
