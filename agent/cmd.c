/* SPDX-License-Identifier: MIT */
/*
 * cmd: command intake, the gate between the broker and anything that touches a phone.
 *
 * A leaked dashboard credential or an ACL mistake must not let anyone restart or back up a
 * fleet (docs/decisions.md, Commands), so every command passes a fixed sequence of checks, cheapest
 * first, before it may run: the retain flag (no parsing at all), the size cap (before cJSON), the
 * Ed25519 signature over the raw bytes (so only a trusted signer's bytes are ever parsed), the
 * strict decoder (proto/command.c), the target, the allow-list and the per-command params, the
 * expiry (the broker's relative Message Expiry counted from our receive time, which does not
 * depend on clocks, and expires_at against our wall clock with a skew tolerance), the replay
 * table and finally the per-device rate limits. Only the last two have state.
 */
#include "cmd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ratelimit.h"

struct cmd {
	struct cmd_config cfg;
	struct cmdtable *table;
	cmd_device_known_fn known;
	void *userdata;
	struct ratelimit *per_device; /* NULL: no limit */
	struct ratelimit *restart;    /* NULL: no limit */
	struct cmdsig_verifier *verifier;
	struct ratelimit *intake;  /* global budget before any check; NULL: no limit */
	struct ratelimit *answers; /* global budget of rejection results; NULL: no limit */
	struct cmd_stats stats;
};

void cmd_config_defaults(struct cmd_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->allowed = CMD_ALLOW_ALL;
	cfg->rate_count = 6;
	cfg->rate_interval_s = 3600;
	cfg->restart_interval_s = 3600;
	cfg->clock_skew_s = 300;
	cfg->max_ttl_s = 24 * 3600;
	cfg->require_signed = true;
	cfg->intake_per_s = 200;
	cfg->answers_per_s = 20;
}

void cmd_message_user_property(struct cmd_message *msg, const char *name, size_t name_len,
                               const char *value, size_t value_len)
{
	const char **v = NULL;
	size_t *len = NULL;

	if (name_len == strlen(CMDSIG_PROP_SIG) && memcmp(name, CMDSIG_PROP_SIG, name_len) == 0) {
		v = &msg->signature;
		len = &msg->signature_len;
	} else if (name_len == strlen(CMDSIG_PROP_KEY_ID) &&
	           memcmp(name, CMDSIG_PROP_KEY_ID, name_len) == 0) {
		v = &msg->key_id;
		len = &msg->key_id_len;
	} else {
		return;
	}
	/* MQTT allows a name twice; which copy counts would be the receiver's guess, so refuse */
	if (*v)
		msg->sig_ambiguous = true;
	*v = value ? value : "";
	*len = value ? value_len : 0;
}

int cmd_new(const struct cmd_config *cfg, struct cmdtable *table, cmd_device_known_fn known,
            void *userdata, struct cmd **ret)
{
	struct cmd *c = NULL;
	int r = -EINVAL;

	if (!cfg || !table || !known || !ret || cfg->clock_skew_s < 0 || cfg->max_ttl_s <= 0 ||
	    cfg->restart_interval_s < 0 || cfg->rate_count > 10000 ||
	    (cfg->rate_count > 0 && cfg->rate_interval_s <= 0) || cfg->n_keys < 0 ||
	    cfg->n_keys > CMDSIG_KEYS_MAX)
		goto out;
	r = -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto out;
	c->cfg = *cfg;
	c->table = table;
	c->known = known;
	c->userdata = userdata;
	r = cmdsig_verifier_new(cfg->keys, cfg->n_keys, &c->verifier);
	if (r < 0)
		goto out;
	if (cfg->require_signed && cfg->n_keys == 0)
		log_warn("no command_keys configured and require_signed_commands is on: "
		         "every command will be refused");
	if (cfg->rate_count > 0) {
		uint64_t per_token_ms = (uint64_t)cfg->rate_interval_s * 1000 / cfg->rate_count;

		r = ratelimit_new(CMD_DEVICES_MAX, cfg->rate_count,
		                  per_token_ms > 0 ? per_token_ms : 1, &c->per_device);
		if (r < 0)
			goto out;
	}
	if (cfg->restart_interval_s > 0) {
		r = ratelimit_new(CMD_DEVICES_MAX, /* burst = */ 1,
		                  (uint64_t)cfg->restart_interval_s * 1000, &c->restart);
		if (r < 0)
			goto out;
	}
	/* one key each; a burst of one second's worth, refilled evenly */
	if (cfg->intake_per_s > 0) {
		r = ratelimit_new(1, cfg->intake_per_s, 1000 / cfg->intake_per_s ?: 1, &c->intake);
		if (r < 0)
			goto out;
	}
	if (cfg->answers_per_s > 0) {
		r = ratelimit_new(1, cfg->answers_per_s, 1000 / cfg->answers_per_s ?: 1,
		                  &c->answers);
		if (r < 0)
			goto out;
	}
	*ret = c;
	c = NULL;
	r = 0;
out:
	cmd_free(c);
	return r;
}

struct cmd *cmd_free(struct cmd *c)
{
	if (c) {
		ratelimit_free(c->per_device);
		ratelimit_free(c->restart);
		ratelimit_free(c->intake);
		ratelimit_free(c->answers);
		cmdsig_verifier_free(c->verifier);
		free(c);
	}
	return NULL;
}

/* The correlation data as a cmd_id, or "" when absent or not a UUID. */
static void correlation_id(const struct cmd_message *msg, char *id)
{
	if (command_id_normalize(msg->correlation, msg->correlation_len, id) < 0)
		id[0] = '\0';
}

/* The signature over the raw bytes; unsigned passes only when signatures are not required. */
static enum command_reject check_signature(const struct cmd *c, const struct cmd_message *msg,
                                           struct cmd_decision *d)
{
	enum cmdsig_verdict v;

	if (!msg->signature && !msg->key_id && !msg->sig_ambiguous) {
		if (!c->cfg.require_signed)
			return COMMAND_REJECT_NONE;
		snprintf(d->err, sizeof(d->err), "not signed (no %s user property)",
		         CMDSIG_PROP_SIG);
		return COMMAND_REJECT_BAD_SIGNATURE;
	}
	if (msg->sig_ambiguous) {
		snprintf(d->err, sizeof(d->err),
		         "signature properties ambiguous (one given twice, "
		         "or more user properties than the agent keeps)");
		return COMMAND_REJECT_BAD_SIGNATURE;
	}
	v = cmdsig_verify(c->verifier, msg->payload, msg->len, msg->signature, msg->signature_len,
	                  msg->key_id, msg->key_id_len, d->err, sizeof(d->err));
	if (v == CMDSIG_UNKNOWN_KEY)
		return COMMAND_REJECT_UNKNOWN_KEY;
	if (v != CMDSIG_OK)
		return COMMAND_REJECT_BAD_SIGNATURE;
	memcpy(d->key_id, msg->key_id, CMDSIG_KEY_ID_LEN);
	d->key_id[CMDSIG_KEY_ID_LEN] = '\0';
	return COMMAND_REJECT_NONE;
}

static bool expired(const struct cmd *c, const struct cmd_message *msg, const struct command *cmd,
                    uint64_t now_ms, int64_t now_wall_ms, char *err, size_t err_size)
{
	int64_t skew_ms = c->cfg.clock_skew_s * 1000;
	int64_t expires_ms = cmd->expires_at_ms;

	if (msg->expiry_s >= 0 && now_ms >= msg->received_ms &&
	    now_ms - msg->received_ms >= (uint64_t)msg->expiry_s * 1000) {
		snprintf(err, err_size, "MQTT message expiry passed");
		return true;
	}
	/* a long ttl is cut to max_ttl, so the replay table always outlives a command */
	if (expires_ms - cmd->issued_at_ms > c->cfg.max_ttl_s * 1000)
		expires_ms = cmd->issued_at_ms + c->cfg.max_ttl_s * 1000;
	if (now_wall_ms > expires_ms + skew_ms) {
		snprintf(err, err_size, "expires_at passed");
		return true;
	}
	if (cmd->issued_at_ms > now_wall_ms + skew_ms) {
		snprintf(err, err_size, "issued_at in the future");
		return true;
	}
	return false;
}

/* Rate limits: every command counts per device; device.restart also has its own interval. */
static bool rate_limited(struct cmd *c, const struct command *cmd, uint64_t now_ms, char *err,
                         size_t err_size)
{
	bool is_restart = cmd->kind == COMMAND_DEVICE_RESTART;
	uint64_t retry = 0;

	if (c->per_device && !ratelimit_check(c->per_device, cmd->udid, now_ms)) {
		ratelimit_take(c->per_device, cmd->udid, now_ms, &retry);
		snprintf(err, err_size, "device over %u commands per %llds, retry in %llus",
		         c->cfg.rate_count, (long long)c->cfg.rate_interval_s,
		         (unsigned long long)(retry + 999) / 1000);
		return true;
	}
	if (is_restart && c->restart && !ratelimit_check(c->restart, cmd->udid, now_ms)) {
		ratelimit_take(c->restart, cmd->udid, now_ms, &retry);
		snprintf(err, err_size, "device restarted recently, retry in %llus",
		         (unsigned long long)(retry + 999) / 1000);
		return true;
	}
	/* both pass: take from both, so a refused restart costs no general token */
	if (c->per_device)
		ratelimit_take(c->per_device, cmd->udid, now_ms, NULL);
	if (is_restart && c->restart)
		ratelimit_take(c->restart, cmd->udid, now_ms, NULL);
	return false;
}

static enum command_reject run_checks(struct cmd *c, const struct cmd_message *msg, uint64_t now_ms,
                                      int64_t now_wall_ms, struct cmd_decision *d)
{
	struct command *cmd = &d->command;
	char corr[COMMAND_ID_MAX];
	const struct cmdtable_entry *e;
	enum command_reject reason;
	int64_t unknown_before;
	int r;

	if (msg->retained) {
		snprintf(d->err, sizeof(d->err), "retained command ignored");
		return COMMAND_REJECT_RETAINED;
	}
	correlation_id(msg, corr);
	if (corr[0]) {
		d->attributable = true;
		memcpy(d->cmd_id, corr, sizeof(corr));
	}
	/* the size cap first, so nothing bigger is even hashed */
	if (msg->len > COMMAND_PAYLOAD_MAX) {
		snprintf(d->err, sizeof(d->err), "payload over 8 KiB");
		return COMMAND_REJECT_OVERSIZE;
	}
	reason = check_signature(c, msg, d);
	if (reason != COMMAND_REJECT_NONE)
		return reason;
	reason = command_decode(msg->payload, msg->len, cmd, d->err, sizeof(d->err));
	if (cmd->cmd_id[0]) {
		if (corr[0] && strcmp(corr, cmd->cmd_id) != 0) {
			/* answered under the payload's cmd_id (signed, unlike the correlation
			 * data); if that cmd_id is known, its last status is repeated instead
			 * (cmd_check()) */
			snprintf(d->err, sizeof(d->err), "correlation data is not the cmd_id");
			memcpy(d->cmd_id, cmd->cmd_id, sizeof(d->cmd_id));
			return COMMAND_REJECT_SCHEMA;
		}
		d->attributable = true;
		memcpy(d->cmd_id, cmd->cmd_id, sizeof(d->cmd_id));
	}
	if (reason != COMMAND_REJECT_NONE)
		return reason;
	d->parsed = true;

	if (strcmp(cmd->agent, c->cfg.agent) != 0) {
		snprintf(d->err, sizeof(d->err), "command for agent '%s'", cmd->agent);
		return COMMAND_REJECT_WRONG_AGENT;
	}
	if (!c->known(cmd->udid, c->userdata)) {
		snprintf(d->err, sizeof(d->err), "device not known to this agent");
		return COMMAND_REJECT_UNKNOWN_DEVICE;
	}
	if (!cmd->known_name || !(c->cfg.allowed & CMD_ALLOW(cmd->kind))) {
		snprintf(d->err, sizeof(d->err), "'%s' is not on this agent's allow-list",
		         cmd->name);
		return COMMAND_REJECT_NOT_ALLOWED;
	}
	if (command_params_check(cmd, d->err, sizeof(d->err)) < 0)
		return COMMAND_REJECT_BAD_PARAMS;
	if (expired(c, msg, cmd, now_ms, now_wall_ms, d->err, sizeof(d->err)))
		return COMMAND_REJECT_EXPIRED;

	cmdtable_prune(c->table, now_wall_ms);
	e = cmdtable_get(c->table, cmd->cmd_id);
	if (e) {
		snprintf(d->err, sizeof(d->err), "cmd_id seen before, last status %s",
		         command_status_str(e->status));
		return COMMAND_REJECT_REPLAY;
	}
	/* the table lost history at unknown_before: a command issued before it (by the sender's
	 * clock, which may run up to the skew ahead of ours) may have run already */
	unknown_before = cmdtable_unknown_before(c->table);
	if (unknown_before > 0 && cmd->issued_at_ms < unknown_before + c->cfg.clock_skew_s * 1000) {
		snprintf(d->err, sizeof(d->err),
		         "issued before the replay history was found damaged; send it again "
		         "with a new cmd_id");
		return COMMAND_REJECT_REPLAY_UNKNOWN;
	}
	/* not recorded: a repeat is evaluated again, which is safe because it never ran */
	if (rate_limited(c, cmd, now_ms, d->err, sizeof(d->err)))
		return COMMAND_REJECT_RATE_LIMITED;
	r = cmdtable_put(c->table, cmd->cmd_id, COMMAND_STATUS_ACCEPTED, NULL, -1, now_wall_ms);
	if (r == -EBUSY) {
		snprintf(d->err, sizeof(d->err), "command table full of live ids");
		return COMMAND_REJECT_BUSY;
	}
	if (r < 0) {
		/* without the record a repeat after a crash would run again: refuse instead */
		snprintf(d->err, sizeof(d->err), "cannot record the command");
		return COMMAND_REJECT_INTERNAL;
	}
	return COMMAND_REJECT_NONE;
}

void cmd_check(struct cmd *c, const struct cmd_message *msg, uint64_t now_ms, int64_t now_wall_ms,
               struct cmd_decision *ret)
{
	struct cmd_decision *d = ret;
	const struct cmdtable_entry *e;

	memset(d, 0, sizeof(*d));
	/* before anything else, so a flood costs a counter, not a parse, a write or a log line */
	if (c->intake && ratelimit_take(c->intake, "all", now_ms, NULL) < 0) {
		d->reason = COMMAND_REJECT_BUSY;
		d->shed = true;
		snprintf(d->err, sizeof(d->err), "over the command intake budget");
		c->stats.shed++;
		return;
	}
	d->reason = run_checks(c, msg, now_ms, now_wall_ms, d);
	if (!d->parsed)
		memset(&d->command, 0, sizeof(d->command));
	switch (d->reason) {
	case COMMAND_REJECT_RETAINED:
		/* a retained copy of a real command must not produce a second result for it */
		d->attributable = false;
		d->cmd_id[0] = '\0';
		d->security = true;
		break;
	case COMMAND_REJECT_BAD_SIGNATURE:
	case COMMAND_REJECT_UNKNOWN_KEY:
	case COMMAND_REJECT_WRONG_AGENT:
	case COMMAND_REJECT_UNKNOWN_DEVICE:
	case COMMAND_REJECT_NOT_ALLOWED:
	case COMMAND_REJECT_BAD_PARAMS:
		d->security = true;
		break;
	default:
		break;
	}
	if (d->attributable && d->reason != COMMAND_REJECT_NONE) {
		e = cmdtable_get(c->table, d->cmd_id);
		if (e) {
			d->known = true;
			d->last = *e;
		}
	}
	/* answers to refusals share one budget: over it they are counted, not sent or logged */
	if (d->reason != COMMAND_REJECT_NONE && c->answers &&
	    ratelimit_take(c->answers, "all", now_ms, NULL) < 0) {
		d->quiet = true;
		c->stats.quiet++;
		return;
	}

	if (d->reason == COMMAND_REJECT_NONE)
		log_info("cmd '%s': accepted '%s' for device '%s' (%s%s)", d->cmd_id,
		         d->command.name, d->command.udid,
		         d->key_id[0] ? "signed by key " : "unsigned", d->key_id);
	else if (d->reason == COMMAND_REJECT_REPLAY)
		log_debug("cmd '%s': repeat, answering with the last status", d->cmd_id);
	else
		log_notice("cmd '%s': rejected (%s): %s", d->attributable ? d->cmd_id : "?",
		           command_reject_str(d->reason), d->err);
}

int cmd_decision_result(const struct cmd *c, const struct cmd_decision *d,
                        struct command_result *ret)
{
	struct command_result res = { 0 };

	if (!d->attributable || d->shed || d->quiet)
		return -ENOENT;
	snprintf(res.agent, sizeof(res.agent), "%s", c->cfg.agent);
	memcpy(res.cmd_id, d->cmd_id, sizeof(res.cmd_id));
	if (d->parsed) {
		memcpy(res.udid, d->command.udid, sizeof(res.udid));
		memcpy(res.name, d->command.name, sizeof(res.name));
	}
	res.progress = -1;
	if (d->known) {
		res.status = d->last.status;
		res.replay = true;
		if (res.status == COMMAND_STATUS_REJECTED &&
		    command_reject_from_str(d->last.code, &res.reason) < 0)
			res.reason = COMMAND_REJECT_INTERNAL;
		if (res.status == COMMAND_STATUS_FAILED)
			snprintf(res.cause, sizeof(res.cause), "%s",
			         d->last.code[0] ? d->last.code : "unknown");
		if (res.status == COMMAND_STATUS_IN_PROGRESS)
			res.progress = d->last.progress >= 0 ? d->last.progress : 0;
		else if (res.status == COMMAND_STATUS_WAITING_FOR_USER)
			res.progress = d->last.progress;
	} else if (d->reason == COMMAND_REJECT_NONE) {
		res.status = COMMAND_STATUS_ACCEPTED;
	} else {
		res.status = COMMAND_STATUS_REJECTED;
		res.reason = d->reason;
		snprintf(res.detail, sizeof(res.detail), "%s", d->err);
	}
	*ret = res;
	return 0;
}

void cmd_get_stats(const struct cmd *c, struct cmd_stats *ret)
{
	*ret = c->stats;
}

int cmd_update(struct cmd *c, const char *cmd_id, enum command_status status, const char *code,
               int progress, int64_t now_wall_ms)
{
	return cmdtable_put(c->table, cmd_id, status, code, progress, now_wall_ms);
}
