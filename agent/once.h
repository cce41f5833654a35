/* SPDX-License-Identifier: MIT */
/*
 * once: `cradle-agent --once`: probe every attached device (or one) a single time and print one
 * device-state JSON object per line, sorted by UDID. No broker and no state dir; a config file
 * (-c) only lends its thresholds and log patterns.
 *
 * The same probe scheduler and helper as the daemon, so this is also the quickest way to see
 * what the daemon would publish. usbmuxd not running means no devices: nothing printed, 0.
 */
#ifndef CRADLE_ONCE_H
#define CRADLE_ONCE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "diagnose.h"

struct once_opts {
	const char *helper;       /* cradle-agent-probe path */
	const char *udid;         /* NULL: every attached device */
	const char *agent;        /* agent id in the messages */
	unsigned concurrency;     /* >= 1 */
	uint64_t timeout_ms;      /* per probe, > 0 */
	int syslog_ms;            /* 0 = no syslog_relay */
	bool publish_device_name; /* include "name" */
	/* thresholds and log patterns of the diagnosis; NULL = the documented defaults */
	const struct diagnose_config *diag;
};

/* Prints the lines to out. 0, or -errno when the run itself failed (loop, memory). */
int once_run(const struct once_opts *o, FILE *out);

#endif
