/* SPDX-License-Identifier: MIT */
/*
 * idev: everything the agent says to a device through libimobiledevice: one probe as plain
 * facts, the remediation actions (iCloud Backup on/off, restart), and usbmuxd's device list.
 *
 * This is the only file that speaks libimobiledevice, except devmon.c's hot-plug subscription
 * (idevice_event_subscribe, libimobiledevice's wrapper over libusbmuxd's event thread). The
 * probe and the actions run in the helper processes (cradle-agent-probe, cradle-agent-action),
 * never in the daemon, because a libimobiledevice call can block for 30 s or hang on a broken TLS
 * read and only a process can be killed. idev_list() is the exception: one local ListDevices,
 * called from the daemon's loop thread by devmon's resync.
 *
 * Never pairs: without a pair record in usbmuxd a device is reported "unpaired" (probe) or
 * refused as "not_trusted" (action) and no lockdown handshake is attempted (the handshake would
 * send Pair and raise the Trust prompt). One handshake per probe; all values are read in that
 * one session (TLS costs ~0.2 s each).
 *
 * Threading: no state of its own; the calls block.
 */
#ifndef CRADLE_IDEV_H
#define CRADLE_IDEV_H

#include <stdbool.h>

#include "facts.h"

/* ---- probe (cradle-agent-probe) ---- */

struct idev_probe_opts {
	/* > 0: after the values, read com.apple.syslog_relay this long and keep backup lines. */
	int syslog_ms;
};

/*
 * Probes udid and fills ret (facts_init()'d first). Device states (gone, locked, not trusted,
 * lockdown errors) are results in ret->probe / ret->pairing, not errors: the return value is 0
 * then. -EINVAL for a bad udid, -ENOMEM.
 */
int idev_probe(const char *udid, const struct idev_probe_opts *opts, struct device_facts *ret);

/* ---- actions (cradle-agent-action) ---- */

enum idev_action {
	IDEV_ACTION_CLOUD_ON,  /* mobilebackup2 EnableCloudBackup, CloudBackupState true */
	IDEV_ACTION_CLOUD_OFF, /* the same with false */
	IDEV_ACTION_RESTART,   /* diagnostics_relay Restart, waiting for the disconnect */
};

#define IDEV_ERROR_MAX 256

/* What an action came to. The helper prints it as {"ok":…,"error_code":…,"error":…}. */
struct idev_outcome {
	bool ok;
	/*
	 * When !ok: -8 with error "device_disconnected" (not on usbmuxd), -29 with "not_trusted"
	 * (no pair record on this host), else the lockdownd / service error or the device's
	 * ErrorCode, with a text saying which step failed.
	 */
	int code;
	char error[IDEV_ERROR_MAX];
};

/*
 * Performs action on udid: usbmuxd lookup, pair-record check, lockdown handshake (which proves
 * the trust), then the service request. Every device problem is an outcome in ret, never a
 * crash; the call blocks up to libimobiledevice's receive timeouts (the caller's process is
 * killed at its deadline).
 */
void idev_act(const char *udid, enum idev_action action, struct idev_outcome *ret);

/* ---- the device list ---- */

/* UDIDs of the USB devices usbmuxd lists now, sorted and without duplicates. */
struct idev_list {
	char (*udid)[FACTS_UDID_MAX];
	size_t n;
};

#define IDEV_LIST_MAX 4096 /* more devices than this are ignored (and logged) */

/*
 * Fills ret (free with idev_list_free()). One ListDevices round trip on the usbmuxd socket,
 * blocking (local socket; libusbmuxd's own receive timeout, 5 s per packet, bounds it).
 * 0; -ENOTCONN only when usbmuxd is not there (its socket is missing or refuses connections:
 * the normal idle state, usbmuxd exits with the last device); -EIO when usbmuxd is there but
 * the request failed (a failed resync, not an absent usbmuxd); -ENOMEM.
 */
int idev_list(struct idev_list *ret);
void idev_list_free(struct idev_list *l);

/*
 * Whether usbmuxd accepts a connection now, at the address libusbmuxd uses
 * (USBMUXD_SOCKET_ADDRESS: `UNIX:/path` or `host:port`; else /var/run/usbmuxd). A
 * non-blocking connect bounded by 1 s. 0, -ENOENT (no socket file), -ECONNREFUSED, -ETIMEDOUT
 * or another -errno.
 */
int idev_mux_reachable(void);

/* The UNIX socket path of usbmuxd into buf, or "" when it is reached over TCP. */
void idev_mux_unix_path(char *buf, size_t size);

/*
 * Before the first idevice_event_subscribe(): makes libusbmuxd's event thread reconnect by
 * polling (once a second) rather than by inotify. libusbmuxd 2.0.2's inotify wait watches only
 * /var/run for "usbmuxd", misses a socket created between its failed connect and its watch
 * (a quick usbmuxd restart) and never sees a socket elsewhere (USBMUXD_SOCKET_ADDRESS=UNIX:):
 * the subscription then stays dead for good. Also makes the first request (libusbmuxd sets
 * its program name, unlocked, on the first one) before the event thread exists.
 */
void idev_events_prepare(void);

/* Whether a syslog_relay line is backup evidence (backupd, BackupAgent, MobileBackup). */
int idev_syslog_line_relevant(const char *line);

#endif
