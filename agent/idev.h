/* SPDX-License-Identifier: MIT */
/*
 * idev: one probe of one device through libimobiledevice, as plain facts.
 *
 * Together with devmon.c this is the only code that includes libimobiledevice headers. It runs
 * in the cradle-agent-probe helper process (never in the daemon), because a libimobiledevice
 * call can block for 30 s or hang on a broken TLS read and only a process can be killed.
 *
 * Never pairs: without a pair record in usbmuxd the device is reported "unpaired" and no
 * lockdown handshake is attempted (the handshake would send Pair and raise the Trust prompt).
 * One handshake per probe; all values are read in that one session (TLS costs ~0.2 s each).
 */
#ifndef CRADLE_IDEV_H
#define CRADLE_IDEV_H

#include "facts.h"

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

/* UDIDs of the USB devices usbmuxd lists now, sorted and without duplicates. */
struct idev_list {
	char (*udid)[FACTS_UDID_MAX];
	size_t n;
};

#define IDEV_LIST_MAX 4096 /* more devices than this are ignored (and logged) */

/*
 * Fills ret (free with idev_list_free()). One ListDevices round trip on the usbmuxd socket,
 * blocking (local socket; libusbmuxd's own receive timeout bounds it). 0, -ENOTCONN when
 * usbmuxd is not there (the normal idle state: it exits with the last device), -ENOMEM.
 */
int idev_list(struct idev_list *ret);
void idev_list_free(struct idev_list *l);

/* Whether a syslog_relay line is backup evidence (backupd, BackupAgent, MobileBackup). */
int idev_syslog_line_relevant(const char *line);

#endif
