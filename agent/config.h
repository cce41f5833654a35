/* SPDX-License-Identifier: MIT */
/*
 * config: the agent's configuration file, read through common/conftab's engine with the agent's
 * own table of keys (agent/config.c). Every key is documented in agent/README.md, with the
 * value syntax (durations, sizes, booleans, lists, rates) shared with the command line.
 *
 * Threading: plain functions without global state; call them from any one thread.
 */
#ifndef CRADLE_AGENT_CONFIG_H
#define CRADLE_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conftab.h"
#include "diagnose.h"
#include "log.h"

#define AGENT_CONFIG_FILE_MAX  CONFTAB_FILE_MAX /* a config file larger than this is rejected */
#define AGENT_CONFIG_LIST_MAX  CONFTAB_LIST_MAX
#define AGENT_CONFIG_ITEM_MAX  CONFTAB_ITEM_MAX
#define AGENT_CONFIG_PATH_MAX  256
#define AGENT_CONFIG_ERROR_MAX CONFTAB_ERROR_MAX

struct agent_config {
	char agent_id[64]; /* required, topics_agent_id_valid() */
	char broker_url[AGENT_CONFIG_PATH_MAX];
	char state_dir[AGENT_CONFIG_PATH_MAX];
	char metrics_file[AGENT_CONFIG_PATH_MAX]; /* "" = off; metrics.h */
	int64_t metrics_interval_s;
	/* stale_after, min_ios_version and the three pattern lists live here */
	struct diagnose_config diagnose;
	int64_t probe_interval_s;
	int64_t refresh_interval_s;
	unsigned probe_concurrency;
	int64_t probe_timeout_s;
	int64_t resync_interval_s;
	bool publish_device_name;
	bool syslog_watch;
	int64_t syslog_window_s;
	bool evidence_capture; /* long-lived per-phone syslog + notification watch (agent/watch.h)
	                        */
	char site[AGENT_CONFIG_ITEM_MAX];
	char station[AGENT_CONFIG_ITEM_MAX];
	char mqtt_username[128];
	char mqtt_password[128]; /* secret: never logged, masked by agent_config_dump() */
	char mqtt_cafile[AGENT_CONFIG_PATH_MAX];
	char mqtt_certfile[AGENT_CONFIG_PATH_MAX];
	char mqtt_keyfile[AGENT_CONFIG_PATH_MAX];
	int64_t keepalive_s;
	int64_t will_delay_s;
	int64_t session_expiry_s;
	uint64_t outbox_max_bytes;
	uint64_t outbox_max_records;
	enum log_level log_level;
	struct conftab_list allowed_commands;
	char backup_dir[AGENT_CONFIG_PATH_MAX];
	unsigned backup_retention;
	uint64_t backup_min_free;
	unsigned max_concurrent_backups;
	int64_t restart_timeout_s;
	struct conftab_rate cmd_rate_per_device;
	int64_t cmd_id_retention_s;
	unsigned cmd_table_size;             /* replay table entries (agent/cmdtable.h) */
	unsigned cmd_intake_rate;            /* commands/s taken in at all; 0 = no limit */
	unsigned cmd_rejection_results_rate; /* refusal results/s published; 0 = no limit */
	int64_t cmd_clock_skew_s;
	int64_t backup_stall_timeout_s;
	uint64_t disk_low_free;
	int64_t disk_check_interval_s;
	int64_t security_event_interval_s;
	struct conftab_list command_keys; /* base64 Ed25519 public keys (proto/cmdsig.h) */
	bool require_signed_commands;
};

/* Fills cfg with the defaults of the table (agent_id stays empty). Never fails. */
void agent_config_defaults(struct agent_config *cfg);

/*
 * Parses text (len bytes, borrowed, need not be NUL-terminated) as a config file called name
 * (borrowed, used in messages) on top of the current contents of cfg (call
 * agent_config_defaults() first). Stops at the first error: returns -EINVAL and writes
 * "NAME:LINE: message" into ret_err (errsz bytes, may be NULL). Checks required keys and
 * cross-key rules at the end. cfg may be partly updated on error.
 */
int agent_config_parse(const char *name, const char *text, size_t len, struct agent_config *cfg,
                       char *ret_err, size_t errsz);

/*
 * Whether broker_url means TLS: 1 for ssl://, mqtts://, wss://; 0 for tcp://, mqtt://, ws://;
 * -1 when it is no broker URL. The scheme alone decides: agent_config_parse() refuses a CA or
 * client certificate with a plaintext scheme, and a TLS scheme without mqtt_cafile trusts the
 * system CA store.
 */
int agent_config_url_tls(const char *url);

/*
 * Defaults, then the file at path (borrowed), which must be a regular file (a FIFO or device
 * is refused without reading). Warns (log_warn) when the file holds mqtt_password and is
 * readable by group or others. 0, -EINVAL (syntax, message in ret_err) or
 * -errno when the file cannot be read (message in ret_err too).
 */
int agent_config_load(const char *path, struct agent_config *cfg, char *ret_err, size_t errsz);

/* Writes every key as a `key value` line, in table order, secrets masked. 0 or -EIO. */
int agent_config_dump(const struct agent_config *cfg, FILE *f);

#endif
