/* SPDX-License-Identifier: MIT */
/*
 * actions: executes accepted remediation commands on phones over USB and reports their
 * execution states. Intake (checks, replay table, rate limits) is cmd.c's; this module starts
 * the work and follows it to a final state.
 *
 *   device.refresh        probe now; succeeded when the probe read the phone
 *   backup.icloud.enable  cradle-agent-action cloud-on (mobilebackup2 EnableCloudBackup), then a
 *                         probe; succeeded only when the phone reports CloudBackupEnabled true
 *   device.restart        cradle-agent-action restart (diagnostics_relay Restart); succeeded
 *                         only when the phone detaches and attaches again within restart_timeout
 *   backup.local.start    idevicebackup2 backup into the backup store (backupstore.h), progress
 *                         as in_progress; MBErrorDomain 208 -> failed passcode_required; unplug ->
 *                         failed device_disconnected; no output line for backup_stall_timeout ->
 *                         killed, failed stalled (idevicebackup2 1.3.0 waits forever after a
 *                         DLMessagePurgeDiskSpace); the last good backup is never replaced by
 *                         an incomplete one
 *
 * Every device action runs in a helper process under a deadline (common/child.h), so a phone
 * that hangs never blocks the agent. One action per device at a time (a second gets failed
 * device_busy); at most max_concurrent_backups local backups on the host, later ones wait in a
 * bounded FIFO. Loop thread only.
 */
#ifndef CRADLE_ACTIONS_H
#define CRADLE_ACTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "backupstore.h"
#include "command.h"
#include "facts.h"

struct loop;
struct actions;

#define ACTIONS_QUEUE_MAX 512 /* waiting local backups (one per device at most anyway) */

struct actions_config {
	const char *action_helper; /* path of cradle-agent-action (borrowed) */
	const char *backup_tool;   /* path of idevicebackup2 (borrowed) */
	struct backupstore_config store;
	unsigned max_concurrent_backups;
	int64_t restart_timeout_s;
	int64_t action_timeout_s; /* helper deadline for cloud-on and restart */
	int64_t backup_timeout_s; /* deadline of one local backup */
	/* a backup tool that prints no line for this long is killed: failed "stalled"; 0 = never */
	int64_t backup_stall_timeout_s;
};

struct actions_ops {
	/* An execution state of cmd (borrowed). progress: 0..100 with IN_PROGRESS, else -1.
	 * cause: with FAILED. detail: human text or NULL. */
	void (*report)(void *data, const struct command *cmd, enum command_status status,
	               int progress, const char *cause, const char *detail);
	/* Probe udid now; the daemon calls actions_probe_done() with the result. */
	void (*probe)(void *data, const char *udid);
	/* The last probe's facts of udid, or NULL if none (borrowed, valid during the call). */
	const struct device_facts *(*facts)(void *data, const char *udid);
	/* MBErrorDomain code of a failed local backup (0 after a good one): diagnosis evidence. */
	void (*backup_error)(void *data, const char *udid, int code);
};

/* cfg strings and data are borrowed and must outlive the module. NULL on allocation failure. */
struct actions *actions_new(struct loop *loop, const struct actions_config *cfg,
                            const struct actions_ops *ops, void *data);
/* Terminates running helpers (without waiting) and frees. NULL-safe; returns NULL. */
struct actions *actions_free(struct actions *a);

/* Starts an accepted command (copied). Reports every later state through ops->report. */
void actions_start(struct actions *a, const struct command *cmd);

/* Device events and probe results, as the daemon learns them. */
void actions_device_attached(struct actions *a, const char *udid);
void actions_device_detached(struct actions *a, const char *udid);
void actions_probe_done(struct actions *a, const char *udid, const struct device_facts *facts);

/* Number of actions running or waiting (for tests and the status message). */
int actions_busy(const struct actions *a);

#endif
