/* SPDX-License-Identifier: MIT */
/*
 * config: the dashboard's configuration (one `key value` file, common/conftab.h syntax).
 * The key table lives in config.c; every key is documented in dashboard/README.md. Command-line
 * flags (--broker, --http, --db) override the file.
 */
#ifndef CRADLE_DASH_CONFIG_H
#define CRADLE_DASH_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "conftab.h"
#include "log.h"

#define DASH_SITES_MAX 64 /* per-site stale_after overrides */
#define DASH_SITE_MAX  64 /* bytes of a site name, NUL included (= PROTO_STR_MAX) */

struct dash_site_stale {
	char site[DASH_SITE_MAX];
	int64_t stale_after_s;
};

/* A per-site list of durations (keys *_site: "north=48h, south=5d"). */
struct dash_site_durations {
	int n;
	struct dash_site_stale v[DASH_SITES_MAX];
};

/* notify: one alert receiver (keys receiver1..receiver8; dashboard/README.md "Notifications") */
#define DASH_RECEIVERS_MAX 8

enum dash_receiver_type {
	DASH_RECEIVER_NONE, /* the key is unset */
	DASH_RECEIVER_WEBHOOK,
	DASH_RECEIVER_SLACK,
	DASH_RECEIVER_TEAMS,
	DASH_RECEIVER_EMAIL,
};

struct dash_receiver {
	enum dash_receiver_type type;
	char name[64];
	char url[512];         /* http(s):// for the webhooks, smtp:// (STARTTLS) or smtps:// */
	char secret[256];      /* webhook: the HMAC-SHA256 key (secret) */
	char rules[256];       /* rule names, comma separated; "" = every rule */
	int64_t digest_s;      /* > 0: at most one message every digest_s */
	char from[256];        /* e-mail */
	char to[512];          /* e-mail: addresses, comma separated */
	char user[128];        /* e-mail: SMTP login (optional) */
	char password[256];    /* secret */
	char cacert[PATH_MAX]; /* "" = the system's CAs */
};

struct dash_config {
	/* MQTT (ingest and commands use the same broker and identity) */
	char broker_url[256];     /* tcp://127.0.0.1:1883, ssl://, mqtts:// */
	char mqtt_client_id[128]; /* "" = cradle-dashboard-<hostname> */
	char mqtt_username[128];
	char mqtt_password[256]; /* secret */
	char mqtt_cafile[PATH_MAX];
	char mqtt_certfile[PATH_MAX];
	char mqtt_keyfile[PATH_MAX];
	char mqtt_share_group[64]; /* "" = plain subscriptions; else events and results via $share
	                            */

	/* HTTP */
	char http_listen[128];   /* ADDR:PORT, default 127.0.0.1:8080 */
	char tls_cert[PATH_MAX]; /* both set: HTTPS (GnuTLS through libmicrohttpd) */
	char tls_key[PATH_MAX];
	uint64_t http_max_body; /* bytes; a larger request body is refused with 413 */
	unsigned http_max_connections;
	int64_t session_ttl_s;          /* UI login session lifetime */
	struct conftab_rate login_rate; /* failed logins per client address */
	char metrics_listen[128];       /* "" = off; ADDR:PORT of /metrics (metrics.h) */

	/* store */
	char db[PATH_MAX];     /* SQLite file */
	unsigned history_days; /* history older than this is deleted */

	/* staleness, judged with the dashboard's own clock (judge.h) */
	int64_t stale_after_s;
	int n_site_stale;
	struct dash_site_stale site_stale[DASH_SITES_MAX]; /* key stale_after_site: site=dur,... */
	int64_t missing_after_s;

	/* commands */
	char command_key[PATH_MAX]; /* Ed25519 signing key; created on first use */
	int64_t command_ttl_s;      /* expiry of a command sent from the API */

	enum log_level log_level;

	/* alerts (alerts.h): rule thresholds with per-site overrides, evaluation, hysteresis */
	int64_t alert_interval_s;     /* evaluation period */
	int64_t alert_for_s;          /* a condition must hold this long before it fires */
	int64_t alert_clear_for_s;    /* and be gone this long before the alert resolves */
	int64_t alert_backup_stale_s; /* backup_stale: no iCloud backup for longer than this */
	struct dash_site_durations alert_backup_stale_site;
	int64_t alert_device_missing_s; /* device_missing: not docked for longer than this */
	struct dash_site_durations alert_device_missing_site;
	int64_t alert_agent_offline_s; /* agent_offline: offline or lost for longer than this */
	struct dash_site_durations alert_agent_offline_site;
	unsigned alert_site_network_pct; /* site_network: share of stale phones (%) ... */
	unsigned alert_site_network_min; /* ... and count with network_unavailable */

	/* notify (notify.h): delivery of alert notifications */
	uint64_t notify_queue_max; /* undelivered queue rows; a full queue drops the oldest */
	int64_t notify_timeout_s;  /* one delivery attempt */
	unsigned notify_attempts;  /* attempts before a notification becomes a dead letter */
	int64_t notify_backoff_s;  /* first retry delay, doubled per attempt (jittered) */
	int64_t notify_backoff_max_s;
	struct dash_receiver receiver[DASH_RECEIVERS_MAX];
};

/* Defaults of every key. */
void dash_config_defaults(struct dash_config *cfg);

/* Reads path on top of cfg. 0, or -errno with "FILE:LINE: message" in err. */
int dash_config_load(struct dash_config *cfg, const char *path, char *err, size_t errsz);

/* Checks what single keys cannot (cert without key, bad listen address, ...). 0 or -EINVAL. */
int dash_config_check(const struct dash_config *cfg, char *err, size_t errsz);

/* `key value` lines, secrets masked (--dump-config). 0 or -EIO. */
int dash_config_dump(const struct dash_config *cfg, FILE *f);

/* stale_after for site ("" or NULL: the global value). */
int64_t dash_config_stale_after(const struct dash_config *cfg, const char *site);

/* The value of list for site, else def. */
int64_t dash_config_site_duration(const struct dash_site_durations *list, const char *site,
                                  int64_t def);

#endif
