/* SPDX-License-Identifier: MIT */
/*
 * config: the agent's table of keys (name, type, field, range, flags, default as text); the
 * engine that parses, checks and dumps it is common/conftab.c, shared with every program that
 * has a config file. What stays here is what only the agent knows: its keys, the agent id
 * rule (proto/topics), the pattern lists whose defaults belong to the diagnosis
 * (diagnose_config_defaults()), and the rules that tie keys together.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmdsig.h"
#include "command.h"
#include "log.h"
#include "macro.h"
#include "parse.h"
#include "topics.h"

enum config_type {
	CONFIG_AGENT_ID = CONFTAB_CUSTOM, /* a string checked by proto/topics */
	CONFIG_PATTERNS,                  /* struct diagnose_patterns */
	CONFIG_PUBKEYS,                   /* a list of base64 Ed25519 public keys (cmdsig.h) */
};

static int agent_id_parse(struct conftab_parser *p, const struct conftab_key *k, char *v,
                          void *field)
{
	if (!topics_agent_id_valid(v))
		return conftab_error(p, "'%s': '%.80s' does not match [a-z0-9][a-z0-9-]{2,62}",
		                     k->name, v);
	return conftab_set_string(p, k, v, field);
}

static void agent_id_dump(FILE *f, const struct conftab_key *k, const void *field)
{
	(void)k;
	conftab_dump_string(f, field);
}

/* The diagnosis keeps its patterns in its own struct: a list-like custom type. */
static int patterns_parse(struct conftab_parser *p, const struct conftab_key *k, char *v,
                          void *field)
{
	struct diagnose_patterns *pat = field;
	char items[DIAGNOSE_PATTERNS_MAX][CONFTAB_ITEM_MAX] = { { 0 } };
	int n, r;

	_Static_assert(sizeof(pat->text[0]) == CONFTAB_ITEM_MAX, "pattern size");
	r = conftab_split_list(p, k, v, &n, items, DIAGNOSE_PATTERNS_MAX);
	if (r < 0)
		return r;
	pat->n = n;
	memcpy(pat->text, items, sizeof(items[0]) * (size_t)n);
	return 0;
}

static void patterns_dump(FILE *f, const struct conftab_key *k, const void *field)
{
	const struct diagnose_patterns *pat = field;

	(void)k;
	conftab_dump_items(f, pat->n, pat->text);
}

/* Every item must be a public key: a typo must not silently drop a trusted key. */
static int pubkeys_parse(struct conftab_parser *p, const struct conftab_key *k, char *v,
                         void *field)
{
	struct conftab_list tmp, *l = field;
	struct cmdsig_pubkey key;
	int r;

	r = conftab_split_list(p, k, v, &tmp.n, tmp.item, CONFTAB_LIST_MAX);
	if (r < 0)
		return r;
	for (int i = 0; i < tmp.n; i++)
		if (cmdsig_pubkey_parse(tmp.item[i], strlen(tmp.item[i]), &key) < 0)
			return conftab_error(
			        p,
			        "'%s': item %d '%.16s...' is not an Ed25519 public key "
			        "(want %d characters of base64, e.g. from "
			        "'cradle-agent send --print-public-key --sign-key FILE')",
			        k->name, i + 1, tmp.item[i], CMDSIG_PUBKEY_B64_LEN);
	*l = tmp;
	return 0;
}

static void pubkeys_dump(FILE *f, const struct conftab_key *k, const void *field)
{
	const struct conftab_list *l = field;

	(void)k;
	conftab_dump_items(f, l->n, l->item);
}

static const struct conftab_ops config_types[] = {
	[CONFIG_AGENT_ID - CONFTAB_CUSTOM] = { agent_id_parse, agent_id_dump },
	[CONFIG_PATTERNS - CONFTAB_CUSTOM] = { patterns_parse, patterns_dump },
	[CONFIG_PUBKEYS - CONFTAB_CUSTOM] = { pubkeys_parse, pubkeys_dump },
};

#define OFF(f)  offsetof(struct agent_config, f)
#define STR(f)  OFF(f), sizeof(((struct agent_config *)0)->f)
#define DAY     (24 * 3600ULL)
#define NOLIMIT 0, 0

static const struct conftab_key config_keys[] = {
	{ "agent_id", CONFIG_AGENT_ID, STR(agent_id), NOLIMIT, CONFTAB_REQUIRED, NULL },
	{ "broker_url", CONFTAB_STRING, STR(broker_url), NOLIMIT, 0, "tcp://127.0.0.1:1883" },
	{ "state_dir", CONFTAB_STRING, STR(state_dir), NOLIMIT, 0, "/var/lib/cradle-agent" },
	{ "metrics_file", CONFTAB_STRING, STR(metrics_file), NOLIMIT, 0, "\"\"" },
	{ "metrics_interval", CONFTAB_DURATION, OFF(metrics_interval_s), 0, 1, 3600, 0, "15s" },
	{ "stale_after", CONFTAB_DURATION, OFF(diagnose.stale_after_s), 0, 60, 365 * DAY, 0,
	  "72h" },
	{ "probe_interval", CONFTAB_DURATION, OFF(probe_interval_s), 0, 10, 7 * DAY, 0, "15m" },
	{ "refresh_interval", CONFTAB_DURATION, OFF(refresh_interval_s), 0, 60, 7 * DAY, 0, "1h" },
	{ "min_ios_version", CONFTAB_STRING, STR(diagnose.min_ios_version), NOLIMIT, 0, "\"\"" },
	{ "probe_concurrency", CONFTAB_UINT, OFF(probe_concurrency), 0, 1, 256, 0, "16" },
	{ "probe_timeout", CONFTAB_DURATION, OFF(probe_timeout_s), 0, 1, 3600, 0, "30s" },
	{ "resync_interval", CONFTAB_DURATION, OFF(resync_interval_s), 0, 1, 3600, 0, "10s" },
	{ "publish_device_name", CONFTAB_BOOL, OFF(publish_device_name), 0, NOLIMIT, 0, "false" },
	{ "syslog_watch", CONFTAB_BOOL, OFF(syslog_watch), 0, NOLIMIT, 0, "false" },
	{ "syslog_window", CONFTAB_DURATION, OFF(syslog_window_s), 0, 1, 300, 0, "5s" },
	{ "pattern_storage_full", CONFIG_PATTERNS, OFF(diagnose.storage_full), 0, NOLIMIT, 0,
	  NULL },
	{ "pattern_network", CONFIG_PATTERNS, OFF(diagnose.network), 0, NOLIMIT, 0, NULL },
	{ "pattern_apple_id", CONFIG_PATTERNS, OFF(diagnose.apple_id), 0, NOLIMIT, 0, NULL },
	{ "evidence_capture", CONFTAB_BOOL, OFF(evidence_capture), 0, NOLIMIT, 0, "false" },
	{ "backup_window_min", CONFTAB_DURATION, OFF(diagnose.backup_window_s), 0, 10, 7 * DAY, 0,
	  "6h" },
	{ "pattern_attempt_start", CONFIG_PATTERNS, OFF(diagnose.attempt_start), 0, NOLIMIT, 0,
	  NULL },
	{ "pattern_attempt_ok", CONFIG_PATTERNS, OFF(diagnose.attempt_ok), 0, NOLIMIT, 0, NULL },
	{ "pattern_attempt_failed", CONFIG_PATTERNS, OFF(diagnose.attempt_failed), 0, NOLIMIT, 0,
	  NULL },
	{ "site", CONFTAB_STRING, STR(site), NOLIMIT, 0, "\"\"" },
	{ "station", CONFTAB_STRING, STR(station), NOLIMIT, 0, "\"\"" },
	{ "mqtt_username", CONFTAB_STRING, STR(mqtt_username), NOLIMIT, 0, "\"\"" },
	{ "mqtt_password", CONFTAB_STRING, STR(mqtt_password), NOLIMIT, CONFTAB_SECRET, "\"\"" },
	{ "mqtt_cafile", CONFTAB_STRING, STR(mqtt_cafile), NOLIMIT, 0, "\"\"" },
	{ "mqtt_certfile", CONFTAB_STRING, STR(mqtt_certfile), NOLIMIT, 0, "\"\"" },
	{ "mqtt_keyfile", CONFTAB_STRING, STR(mqtt_keyfile), NOLIMIT, 0, "\"\"" },
	{ "keepalive", CONFTAB_DURATION, OFF(keepalive_s), 0, 5, 3600, 0, "30s" },
	{ "will_delay", CONFTAB_DURATION, OFF(will_delay_s), 0, 0, 3600, 0, "15s" },
	/* Paho 1.3.12 keeps sessionExpiry in a signed int: stay far below 2^31 */
	{ "session_expiry", CONFTAB_DURATION, OFF(session_expiry_s), 0, 1, 30 * DAY, 0, "1h" },
	{ "outbox_max_bytes", CONFTAB_SIZE, OFF(outbox_max_bytes), 0, 64 * 1024, 1ULL << 40, 0,
	  "64M" },
	{ "outbox_max_records", CONFTAB_UINT, OFF(outbox_max_records), 8, 16, 10000000, 0,
	  "100000" },
	{ "log_level", CONFTAB_LOG_LEVEL, OFF(log_level), 0, NOLIMIT, 0, "info" },
	{ "allowed_commands", CONFTAB_LIST, OFF(allowed_commands), 0, NOLIMIT, 0,
	  "device.refresh,backup.icloud.enable,device.restart,backup.local.start" },
	{ "backup_dir", CONFTAB_STRING, STR(backup_dir), NOLIMIT, 0, "" },
	{ "backup_retention", CONFTAB_UINT, OFF(backup_retention), 0, 1, 100, 0, "2" },
	{ "backup_min_free", CONFTAB_SIZE, OFF(backup_min_free), 0, 0, 1ULL << 50, 0, "1G" },
	{ "max_concurrent_backups", CONFTAB_UINT, OFF(max_concurrent_backups), 0, 1, 64, 0, "2" },
	{ "restart_timeout", CONFTAB_DURATION, OFF(restart_timeout_s), 0, 10, 3600, 0, "3m" },
	{ "cmd_rate_per_device", CONFTAB_RATE, OFF(cmd_rate_per_device), 0, 1, 10000, 0, "6/1h" },
	{ "cmd_id_retention", CONFTAB_DURATION, OFF(cmd_id_retention_s), 0, 3600, 365 * DAY, 0,
	  "7d" },
	/* issue 8: replay table size, intake budget, refusal results, clock skew (agent/cmd.h) */
	{ "cmd_table_size", CONFTAB_UINT, OFF(cmd_table_size), 0, 16, 100000, 0, "20000" },
	{ "cmd_intake_rate", CONFTAB_UINT, OFF(cmd_intake_rate), 0, 0, 100000, 0, "200" },
	{ "cmd_rejection_results_rate", CONFTAB_UINT, OFF(cmd_rejection_results_rate), 0, 0, 100000,
	  0, "20" },
	{ "cmd_clock_skew", CONFTAB_DURATION, OFF(cmd_clock_skew_s), 0, 0, 3600, 0, "5m" },
	{ "backup_stall_timeout", CONFTAB_DURATION, OFF(backup_stall_timeout_s), 0, 1, 6 * 3600, 0,
	  "10m" },
	{ "disk_low_free", CONFTAB_SIZE, OFF(disk_low_free), 0, 0, 1ULL << 50, 0, "2G" },
	{ "disk_check_interval", CONFTAB_DURATION, OFF(disk_check_interval_s), 0, 1, DAY, 0, "1m" },
	{ "security_event_interval", CONFTAB_DURATION, OFF(security_event_interval_s), 0, 1, DAY, 0,
	  "1m" },
	{ "command_keys", CONFIG_PUBKEYS, OFF(command_keys), 0, NOLIMIT, 0, "\"\"" },
	{ "require_signed_commands", CONFTAB_BOOL, OFF(require_signed_commands), 0, NOLIMIT, 0,
	  "true" },
};

static const struct conftab config_table = { config_keys, ARRAY_SIZE(config_keys), config_types,
	                                     ARRAY_SIZE(config_types) };

void agent_config_defaults(struct agent_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	diagnose_config_defaults(&cfg->diagnose);
	conftab_defaults(&config_table, cfg);
}

/* 1 TLS, 0 plaintext, -1 not a broker URL (no known scheme or no host). */
int agent_config_url_tls(const char *url)
{
	int r = parse_broker_url_tls(url);

	return r < 0 ? -1 : r;
}

/* "17", "16.4", "16.4.1": one to four numbers of at most 5 digits, dot separated. */
static bool version_valid(const char *v)
{
	int parts = 0;

	do {
		size_t n = strspn(v, "0123456789");

		if (n == 0 || n > 5 || ++parts > 4)
			return false;
		v += n;
		if (*v == '\0')
			return true;
	} while (*v++ == '.');
	return false;
}

/* Rules between keys, checked once the whole file is read. */
static int config_check(struct conftab_parser *p, const struct agent_config *cfg)
{
	int tls = agent_config_url_tls(cfg->broker_url);

	/* an accepted cmd_id must outlive any repeat that is not expired: at least a minute of
	 * ttl plus the skew on both clocks (agent/cmd.h) */
	if (cfg->cmd_id_retention_s < 60 + 2 * cfg->cmd_clock_skew_s)
		return conftab_error(p,
		                     "cmd_id_retention (%" PRId64 "s) must be at least 60s + 2 x "
		                     "cmd_clock_skew (%" PRId64 "s)",
		                     cfg->cmd_id_retention_s, cfg->cmd_clock_skew_s);
	/* the URL is not quoted: it may carry user:password@ */
	if (tls < 0)
		return conftab_error(p,
		                     "broker_url: want tcp://, mqtt://, ssl://, mqtts://, ws:// or "
		                     "wss:// followed by host:port");
	/* the scheme decides: a CA file with a plaintext URL would send the password in clear */
	if (!tls && (cfg->mqtt_cafile[0] || cfg->mqtt_certfile[0]))
		return conftab_error(p,
		                     "mqtt_cafile/mqtt_certfile set but broker_url is plaintext: "
		                     "use ssl:// (or mqtts://) for TLS");
	if (cfg->diagnose.min_ios_version[0] && !version_valid(cfg->diagnose.min_ios_version))
		return conftab_error(p,
		                     "min_ios_version: want a dotted version such as 16 or 16.4.1");
	for (int i = 0; i < cfg->allowed_commands.n; i++) {
		enum command_name name;

		if (command_name_from_str(cfg->allowed_commands.item[i], &name) < 0)
			return conftab_error(p, "allowed_commands: item %d '%s' is not a command",
			                     i + 1, cfg->allowed_commands.item[i]);
	}
	/* a will delay >= session expiry makes the broker send the will at once (MQTT 5 3.1.3.2.2)
	 */
	if (cfg->will_delay_s >= cfg->session_expiry_s)
		return conftab_error(p,
		                     "will_delay (%" PRId64
		                     "s) must be shorter than session_expiry (%" PRId64 "s)",
		                     cfg->will_delay_s, cfg->session_expiry_s);
	if ((cfg->mqtt_certfile[0] == '\0') != (cfg->mqtt_keyfile[0] == '\0'))
		return conftab_error(p, "mqtt_certfile and mqtt_keyfile must be set together");
	return 0;
}

int agent_config_parse(const char *name, const char *text, size_t len, struct agent_config *cfg,
                       char *ret_err, size_t errsz)
{
	struct conftab_parser p = { .name = name, .err = ret_err, .errsz = errsz };
	int r;

	r = conftab_parse(&config_table, &p, text, len, cfg);
	if (r == 0)
		r = config_check(&p, cfg);
	return r;
}

int agent_config_load(const char *path, struct agent_config *cfg, char *ret_err, size_t errsz)
{
	struct conftab_parser p = { .name = path, .err = ret_err, .errsz = errsz };
	char *text = NULL;
	struct stat st;
	size_t len = 0;
	int r;

	agent_config_defaults(cfg);
	r = conftab_read_file(&p, path, &text, &len);
	if (r == 0)
		r = agent_config_parse(path, text, len, cfg, ret_err, errsz);
	if (r == 0 && cfg->mqtt_password[0] && stat(path, &st) == 0 &&
	    (st.st_mode & (S_IRGRP | S_IROTH)))
		log_warn("%s holds mqtt_password but is readable by group or others (mode %04o): "
		         "chmod 600 it",
		         path, (unsigned)(st.st_mode & 07777));
	free(text);
	return r;
}

int agent_config_dump(const struct agent_config *cfg, FILE *f)
{
	return conftab_dump(&config_table, cfg, f);
}
