/* SPDX-License-Identifier: MIT */
/*
 * idev: everything the agent says to a device through libimobiledevice: one probe as plain
 * facts, the remediation actions (iCloud Backup on/off, restart), and usbmuxd's device list.
 *
 * This is the only file that speaks libimobiledevice or usbmuxd. Hot-plug events come from a
 * usbmuxd Listen connection it makes itself on a socket the caller watches (idev_listen_*),
 * not from libusbmuxd's event thread, which never closes the socket of an ended connection
 * (libusbmuxd 2.0.2: one socket leaked per usbmuxd restart) and missed quick restarts. The
 * probe and the actions run in the helper processes (cradle-agent-probe, cradle-agent-action),
 * never in the daemon, because a libimobiledevice call can block for 30 s or hang on a broken TLS
 * read and only a process can be killed. idev_list() and idev_listen_*() are the exceptions:
 * one local ListDevices for devmon's resync, and the Listen connection devmon keeps, both on
 * the daemon's loop thread.
 *
 * Never pairs: without a pair record in usbmuxd a device is reported "unpaired" (probe) or
 * refused as "not_trusted" (action) and no lockdown handshake is attempted (the handshake would
 * send Pair and raise the Trust prompt). One handshake per probe; all values are read in that
 * one session (TLS costs ~0.2 s each).
 *
 * Threading: no state of its own but an idev_listen, used by one thread; the calls block,
 * except idev_listen_read().
 */
#ifndef CRADLE_IDEV_H
#define CRADLE_IDEV_H

#include <stdatomic.h>
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
 * (USBMUXD_SOCKET_ADDRESS: `UNIX:/path` or `HOST:PORT` with a numeric host, `[v6]` or
 * localhost; else /var/run/usbmuxd). A non-blocking connect bounded by 1 s. 0, -ENOENT (no
 * socket file), -ECONNREFUSED, -ETIMEDOUT, -EINVAL (an address this cannot use: a host name
 * would need a blocking lookup) or another -errno.
 */
int idev_mux_reachable(void);

/* The UNIX socket path of usbmuxd into buf, or "" when it is reached over TCP. */
void idev_mux_unix_path(char *buf, size_t size);

/* ---- usbmuxd events: a Listen connection of the caller's own ---- */

enum idev_mux_event {
	IDEV_MUX_LISTENING, /* usbmuxd accepted the Listen request (udid NULL) */
	IDEV_MUX_ATTACHED,  /* a USB device (network devices are not reported) */
	IDEV_MUX_DETACHED,
	IDEV_MUX_PAIRED, /* usbmuxd saved a pair record for it */
};

/* udid borrowed for the call, as libusbmuxd spells it (a dash in 24-digit serials). */
typedef void (*idev_mux_fn)(enum idev_mux_event ev, const char *udid, void *data);

/* A larger usbmuxd message ends the connection (an event is about 1 KiB). */
#define IDEV_MUX_MSG_MAX (64 * 1024)

struct idev_listen;

/*
 * Connects to usbmuxd (the address idev_mux_reachable() uses, at most 1 s) and sends Listen.
 * The socket is non-blocking and the caller's to watch (idev_listen_fd()); no thread, no
 * libusbmuxd. 0, or -ENOENT / -ECONNREFUSED (usbmuxd not there), -EINVAL (unusable address),
 * -ENOMEM or another -errno.
 */
int idev_listen_open(idev_mux_fn fn, void *data, struct idev_listen **ret);

int idev_listen_fd(const struct idev_listen *l);

/*
 * Reads what the socket has (call when it is readable) and calls fn for each complete
 * message: IDEV_MUX_LISTENING once for the Result, then one call per event. Detached and
 * Paired name only a DeviceID: they are reported for devices this connection announced.
 * 0 while the connection goes on (also after a bounded batch of messages with more waiting);
 * -ECONNRESET when usbmuxd closed it, -ECONNREFUSED when it refused Listen, -EPROTO for a
 * malformed message, -EMSGSIZE above IDEV_MUX_MSG_MAX, or another -errno. After a negative
 * return the connection is over: free it. fn must not free l.
 */
int idev_listen_read(struct idev_listen *l);

/* Closes the socket and frees. NULL-safe; returns NULL. */
struct idev_listen *idev_listen_free(struct idev_listen *l);

/*
 * Whether a syslog_relay line is backup evidence: its header's process is backupd, BackupAgent
 * (BackupAgent2) or MobileBackup. Every other line is dropped unread (the privacy rule,
 * docs/diagnosis.md "Evidence capture").
 */
int idev_syslog_line_relevant(const char *line);

/* ---- evidence capture (cradle-agent-watch) ---- */

#define IDEV_BACKUP_DOMAIN_CHANGED "com.apple.mobile.backup.domain_changed"

struct idev_watch_ops {
	/* the stream is up; np: domain_changed is observed (false: the phone refused the service,
	 * or it granted it and observing failed, which idev_watch() logs as a warning) */
	void (*up)(bool np, void *data);
	/* a relevant line (borrowed, control bytes blanked, at most FACTS_LINE_MAX - 1 bytes) */
	void (*line)(const char *line, void *data);
	/* domain_changed was posted; runs on libimobiledevice's notifier thread. May be NULL. */
	void (*changed)(void *data);
};

/*
 * Keeps udid's syslog_relay stream (and, when ops->changed is set, a notification_proxy
 * observing IDEV_BACKUP_DOMAIN_CHANGED) open and reports through ops until *stop becomes
 * non-zero (checked every second; atomic: another thread sets it) or the stream ends. Blocking:
 * run it on a thread of its own.
 * 0 after *stop; -ENODEV (not on usbmuxd), -EPERM (no pair record or the handshake refused:
 * never pairs), -EIO (the relay could not be started), -ECONNRESET (the stream ended: the phone
 * or usbmuxd dropped it), -EINVAL.
 */
int idev_watch(const char *udid, const struct idev_watch_ops *ops, void *data,
               const atomic_int *stop);

#endif
