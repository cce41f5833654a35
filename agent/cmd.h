/* SPDX-License-Identifier: MIT */
/*
 * cmd: the agent's command intake. A message from cradle/v1/agent/{agent}/cmd goes in (bytes,
 * the MQTT retain flag, the MQTT 5 message expiry and correlation data); a decision comes out:
 * accepted (execute it) or rejected with one reason code, plus the result to publish on
 * cradle/v1/agent/{agent}/result. Nothing is executed here; the daemon hands accepted commands
 * to the executor and reports their later states with cmd_update().
 *
 * Checks, cheapest first, the first failure wins (proto/COMMANDS.md documents the codes):
 *   intake budget (shed: counted only) -> retained -> oversize -> bad_signature / unknown_key
 *   -> malformed -> schema -> wrong_agent -> unknown_device -> not_allowed -> bad_params
 *   -> expired -> replay -> replay_unknown -> rate_limited -> busy (table full of live ids)
 *   (and internal: disk write failed)
 * The signature (proto/cmdsig.h) is checked on the raw bytes before anything parses them, so
 * an unsigned or forged message never reaches cJSON.
 * A command that passes is recorded as "accepted" in the persistent cmdtable (synced) before
 * cmd_check() returns, so after a crash a repeat is a replay and never a second execution.
 * Rejections are never recorded: a repeat is evaluated again, which is safe because it never ran,
 * and so a flood of refused commands cannot fill the table that protects executed ones. A
 * rejection is never published for a cmd_id the table knows: the known last status is
 * sent again instead (a late repeat of a command that succeeded must not turn into "rejected").
 *
 * Wiring (for the daemon): at start, cmdtable_open(state_dir/cmdtable, ..., cmd_id_retention)
 * then cmdtable_fail_unfinished(t, "agent_restarted", now, ...), publishing each failed result
 * from its callback (an execution the last process did not finish will never finish, and its
 * sender is told without asking again), then cmd_new(). Per delivery: cmd_message_user_property()
 * for each MQTT 5 user property (the signature travels there), cmd_check(); publish
 * cmd_decision_result() if it returns 0 (the publisher sets seq/ts); execute only when reason is
 * COMMAND_REJECT_NONE; report every refusal to agentev (security_rejected). Per later state:
 * cmd_update() first, then publish. Answer only on this agent's own result topic, whatever
 * Response Topic the message carries.
 *
 * Threading: loop thread only (the Paho callback copies the message and posts it).
 */
#ifndef CRADLE_CMD_H
#define CRADLE_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmdsig.h"
#include "cmdtable.h"
#include "command.h"

#define CMD_DEVICES_MAX 1024 /* rate-limit keys (devices); above the 500 phones of a station */

/* Bit for an allowed command in cmd_config.allowed. */
#define CMD_ALLOW(name) (1u << (name))
#define CMD_ALLOW_ALL   ((1u << _COMMAND_NAME_MAX) - 1)

struct cmd_config {
	char agent[COMMAND_AGENT_MAX]; /* this agent's id */
	unsigned allowed;              /* CMD_ALLOW() bits: the allow-list from the config */
	/* at most rate_count accepted commands per device per rate_interval_s (config
	 * cmd_rate_per_device "6/1h": the burst is rate_count, one comes back every
	 * interval / count); rate_count 0 = no limit */
	unsigned rate_count;
	int64_t rate_interval_s;
	/* at most one device.restart per device per this many seconds; 0 = no extra limit */
	int64_t restart_interval_s;
	/* tolerance between the sender's clock and ours when reading expires_at/issued_at */
	int64_t clock_skew_s;
	/* a command lives at most this long after issued_at whatever its expires_at says; keep
	 * max_ttl_s + 2 * clock_skew_s <= the cmdtable retention (see cmdtable.h) */
	int64_t max_ttl_s;
	/* the keys whose signatures are trusted (config command_keys); several = rotation */
	struct cmdsig_pubkey keys[CMDSIG_KEYS_MAX];
	int n_keys;
	/* refuse unsigned commands (config require_signed_commands); a signed command is always
	 * verified, whatever this says */
	bool require_signed;
	/* global intake budget, commands per second (config cmd_intake_rate), checked before
	 * anything is parsed, written or logged; a command over it is only counted (shed, no
	 * result). 0 = no limit */
	unsigned intake_per_s;
	/* at most this many refusal results (and their log lines) per second; the others are
	 * counted (quiet) and reach the dashboard only through the aggregated security_rejected
	 * agent event. 0 = no limit */
	unsigned answers_per_s;
};

/* Counters since cmd_new(). */
struct cmd_stats {
	uint64_t shed;  /* over the intake budget: not even parsed */
	uint64_t quiet; /* refused without a result (over the answers budget) */
};

/* Defaults: everything allowed, 6/1h per device (as config.c), 1 restart per hour, 300 s skew,
 * 24 h max ttl, signatures required, no trusted key (so nothing is accepted until keys are
 * configured), 200 commands/s intake, 20 refusal results/s. */
void cmd_config_defaults(struct cmd_config *cfg);

/* Whether udid (borrowed) is a device the agent currently knows. Called on the loop thread. */
typedef bool (*cmd_device_known_fn)(const char *udid, void *userdata);

/* One delivered MQTT message. All pointers borrowed for the duration of cmd_check(). */
struct cmd_message {
	const void *payload;
	size_t len;
	bool retained;           /* the retain flag as delivered */
	int64_t expiry_s;        /* MQTT 5 Message Expiry Interval as delivered; -1 = absent */
	const void *correlation; /* MQTT 5 Correlation Data (should be the cmd_id); NULL = absent */
	size_t correlation_len;
	uint64_t received_ms; /* loop_now_ms() when it arrived; the expiry counts from here */
	/* MQTT 5 user properties cradle-sig and cradle-key-id (set them with
	 * cmd_message_user_property()); NULL = absent */
	const char *signature;
	size_t signature_len;
	const char *key_id;
	size_t key_id_len;
	/* one of them came more than once, or the transport cut the user properties: refused */
	bool sig_ambiguous;
};

/*
 * Offers one MQTT 5 user property of the message (all borrowed, as long as msg): the signature
 * properties are kept, others ignored. Call it for every user property, in any order.
 */
void cmd_message_user_property(struct cmd_message *msg, const char *name, size_t name_len,
                               const char *value, size_t value_len);

struct cmd_decision {
	enum command_reject reason; /* COMMAND_REJECT_NONE: accepted, execute command */
	bool parsed;                /* command is the decoded command (reason past schema) */
	struct command command;
	bool attributable; /* cmd_id is known (payload or correlation data): publish a result */
	char cmd_id[COMMAND_ID_MAX];
	bool known; /* the cmdtable had this cmd_id: last is its last status */
	struct cmdtable_entry last;
	char key_id[CMDSIG_KEY_ID_LEN + 1]; /* the key that signed it ("" = unsigned) */
	bool security; /* a misuse hint (retained, bad signature, unknown key, wrong agent/device,
	                * not allowed, bad params): the daemon logs it as a warning */
	char err[COMMAND_ERR_MAX]; /* human-readable detail for logs and the result */
	bool shed;  /* over the intake budget: reason BUSY, nothing checked, no result, no log */
	bool quiet; /* a refusal over the answers budget: no result, no log line (counted) */
};

struct cmd;

/*
 * cfg is copied. table and userdata are borrowed and must outlive the cmd. Returns 0 and *ret
 * (free with cmd_free()), or -EINVAL / -ENOMEM. Warns when signatures are required and no key
 * is trusted (every command will be refused).
 */
int cmd_new(const struct cmd_config *cfg, struct cmdtable *table, cmd_device_known_fn known,
            void *userdata, struct cmd **ret);
struct cmd *cmd_free(struct cmd *c);

/*
 * Runs the checks on msg at monotonic now_ms and wall clock now_wall_ms and fills *ret. Never
 * fails: problems (including a failed table write) are rejection reasons. Logs rejections at
 * notice level (debug for replays).
 */
void cmd_check(struct cmd *c, const struct cmd_message *msg, uint64_t now_ms, int64_t now_wall_ms,
               struct cmd_decision *ret);

/*
 * The result to publish for a decision (seq and ts_ms are left 0 for the publisher to set):
 * accepted, rejected with the reason, or, for a cmd_id the table knows, its last status again
 * with replay = true. Returns 0, or -ENOENT when the decision is not attributable (publish
 * nothing; log it).
 */
int cmd_decision_result(const struct cmd *c, const struct cmd_decision *d,
                        struct command_result *ret);

/*
 * Records a later execution state of an accepted command (waiting_for_user, in_progress with
 * progress, succeeded, failed with cause) so a repeat is answered with it. Call before
 * publishing the result. Returns 0 or -errno from cmdtable_put().
 */
void cmd_get_stats(const struct cmd *c, struct cmd_stats *ret);

int cmd_update(struct cmd *c, const char *cmd_id, enum command_status status, const char *code,
               int progress, int64_t now_wall_ms);

#endif
