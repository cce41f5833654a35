/* SPDX-License-Identifier: MIT */
/*
 * config: the dashboard's table of keys; the engine that parses, checks and dumps it is
 * common/conftab.c. What stays here is what only the dashboard knows: its keys, the per-site
 * stale_after list, and the rules that tie keys together.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "notify.h"
#include "parse.h"

enum dash_config_type {
	DASH_CONFIG_SITE_STALE = CONFTAB_CUSTOM, /* site=duration,... */
	DASH_CONFIG_SITE_DURATIONS,              /* the same into a struct dash_site_durations */
	DASH_CONFIG_RECEIVER,                    /* notify.h: NAME TYPE URL [opt=value ...] */
};

#define DAY (24 * 3600ULL)

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
		*--e = '\0';
	return s;
}

/* "north=48h, south=5d": a site may have any name a site key of an agent takes (no '=' or ','). */
static int site_list_parse(struct conftab_parser *p, const struct conftab_key *k, char *v,
                           struct dash_site_stale *out, int *ret_n)
{
	struct dash_site_stale tmp[DASH_SITES_MAX] = { { { 0 }, 0 } };
	char *save = NULL, *item;
	int n = 0;

	for (item = strtok_r(v, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char *eq, *site, *dur;
		uint64_t s;

		item = trim(item);
		if (*item == '\0')
			continue;
		eq = strchr(item, '=');
		if (!eq)
			return conftab_error(p, "'%s': '%.80s' is not SITE=DURATION", k->name,
			                     item);
		*eq = '\0';
		site = trim(item);
		dur = trim(eq + 1);
		if (*site == '\0' || strlen(site) >= DASH_SITE_MAX)
			return conftab_error(p, "'%s': bad site name '%.80s' (1..%d bytes)",
			                     k->name, site, DASH_SITE_MAX - 1);
		if (parse_duration(dur, &s) < 0 || s < 60 || s > 365 * DAY)
			return conftab_error(p,
			                     "'%s': bad duration '%.80s' for site '%s' (1m..365d)",
			                     k->name, dur, site);
		for (int i = 0; i < n; i++)
			if (strcmp(tmp[i].site, site) == 0)
				return conftab_error(p, "'%s': site '%s' given twice", k->name,
				                     site);
		if (n == DASH_SITES_MAX)
			return conftab_error(p, "'%s': more than %d sites", k->name,
			                     DASH_SITES_MAX);
		snprintf(tmp[n].site, sizeof(tmp[n].site), "%s", site);
		tmp[n].stale_after_s = (int64_t)s;
		n++;
	}
	memcpy(out, tmp, sizeof(tmp));
	*ret_n = n;
	return 0;
}

static int site_stale_parse(struct conftab_parser *p, const struct conftab_key *k, char *v,
                            void *field)
{
	struct dash_config *cfg =
	        (void *)((char *)field - offsetof(struct dash_config, site_stale));

	return site_list_parse(p, k, v, cfg->site_stale, &cfg->n_site_stale);
}

static int site_durations_parse(struct conftab_parser *p, const struct conftab_key *k, char *v,
                                void *field)
{
	struct dash_site_durations *l = field;

	return site_list_parse(p, k, v, l->v, &l->n);
}

static void dump_duration(FILE *f, int64_t s)
{
	if (s != 0 && s % 86400 == 0)
		fprintf(f, "%" PRId64 "d", s / 86400);
	else if (s != 0 && s % 3600 == 0)
		fprintf(f, "%" PRId64 "h", s / 3600);
	else if (s != 0 && s % 60 == 0)
		fprintf(f, "%" PRId64 "m", s / 60);
	else
		fprintf(f, "%" PRId64 "s", s);
}

static void site_list_dump(FILE *f, const struct dash_site_stale *v, int n)
{
	if (n == 0)
		fputs("\"\"", f);
	for (int i = 0; i < n; i++) {
		fprintf(f, "%s%s=", i ? "," : "", v[i].site);
		dump_duration(f, v[i].stale_after_s);
	}
}

static void site_stale_dump(FILE *f, const struct conftab_key *k, const void *field)
{
	const struct dash_config *cfg =
	        (const void *)((const char *)field - offsetof(struct dash_config, site_stale));

	(void)k;
	site_list_dump(f, cfg->site_stale, cfg->n_site_stale);
}

static void site_durations_dump(FILE *f, const struct conftab_key *k, const void *field)
{
	const struct dash_site_durations *l = field;

	(void)k;
	site_list_dump(f, l->v, l->n);
}

static const struct conftab_ops config_types[] = {
	[DASH_CONFIG_SITE_STALE - CONFTAB_CUSTOM] = { site_stale_parse, site_stale_dump },
	[DASH_CONFIG_SITE_DURATIONS -
	        CONFTAB_CUSTOM] = { site_durations_parse, site_durations_dump },
	[DASH_CONFIG_RECEIVER - CONFTAB_CUSTOM] = { notify_receiver_parse, notify_receiver_dump },
};

#define OFF(f)  offsetof(struct dash_config, f)
#define STR(f)  OFF(f), sizeof(((struct dash_config *)0)->f)
#define NOLIMIT 0, 0

/* Keep in the order of dashboard/README.md's table; a unit test checks every key is there. */
static const struct conftab_key config_keys[] = {
	{ "broker_url", CONFTAB_STRING, STR(broker_url), NOLIMIT, 0, "tcp://127.0.0.1:1883" },
	{ "mqtt_client_id", CONFTAB_STRING, STR(mqtt_client_id), NOLIMIT, 0, "\"\"" },
	{ "mqtt_username", CONFTAB_STRING, STR(mqtt_username), NOLIMIT, 0, "\"\"" },
	{ "mqtt_password", CONFTAB_STRING, STR(mqtt_password), NOLIMIT, CONFTAB_SECRET, "\"\"" },
	{ "mqtt_cafile", CONFTAB_STRING, STR(mqtt_cafile), NOLIMIT, 0, "\"\"" },
	{ "mqtt_certfile", CONFTAB_STRING, STR(mqtt_certfile), NOLIMIT, 0, "\"\"" },
	{ "mqtt_keyfile", CONFTAB_STRING, STR(mqtt_keyfile), NOLIMIT, 0, "\"\"" },
	{ "mqtt_share_group", CONFTAB_STRING, STR(mqtt_share_group), NOLIMIT, 0, "\"\"" },
	{ "http_listen", CONFTAB_STRING, STR(http_listen), NOLIMIT, 0, "127.0.0.1:8080" },
	{ "tls_cert", CONFTAB_STRING, STR(tls_cert), NOLIMIT, 0, "\"\"" },
	{ "tls_key", CONFTAB_STRING, STR(tls_key), NOLIMIT, 0, "\"\"" },
	{ "http_max_body", CONFTAB_SIZE, OFF(http_max_body), 0, 1024, 64ULL << 20, 0, "64K" },
	{ "http_max_connections", CONFTAB_UINT, OFF(http_max_connections), 0, 1, 65536, 0, "256" },
	{ "session_ttl", CONFTAB_DURATION, OFF(session_ttl_s), 0, 60, 90 * DAY, 0, "12h" },
	{ "login_rate", CONFTAB_RATE, OFF(login_rate), 0, 1, 100000, 0, "5/1m" },
	{ "metrics_listen", CONFTAB_STRING, STR(metrics_listen), NOLIMIT, 0, "\"\"" },
	{ "db", CONFTAB_STRING, STR(db), NOLIMIT, 0, "/var/lib/cradle-dashboard/cradle.db" },
	{ "history_days", CONFTAB_UINT, OFF(history_days), 0, 1, 36500, 0, "90" },
	{ "stale_after", CONFTAB_DURATION, OFF(stale_after_s), 0, 60, 365 * DAY, 0, "72h" },
	{ "stale_after_site", DASH_CONFIG_SITE_STALE, OFF(site_stale), 0, NOLIMIT, 0, "\"\"" },
	{ "missing_after", CONFTAB_DURATION, OFF(missing_after_s), 0, 60, 3650 * DAY, 0, "7d" },
	{ "command_key", CONFTAB_STRING, STR(command_key), NOLIMIT, 0,
	  "/var/lib/cradle-dashboard/command.key" },
	{ "command_ttl", CONFTAB_DURATION, OFF(command_ttl_s), 0, 60, DAY, 0, "10m" },
	{ "log_level", CONFTAB_LOG_LEVEL, OFF(log_level), 0, NOLIMIT, 0, "info" },
	/* --- alerts: rules (alerts.h); dashboard/README.md "Alerts" --- */
	{ "alert_interval", CONFTAB_DURATION, OFF(alert_interval_s), 0, 1, 3600, 0, "30s" },
	{ "alert_for", CONFTAB_DURATION, OFF(alert_for_s), 0, 0, DAY, 0, "0s" },
	{ "alert_clear_for", CONFTAB_DURATION, OFF(alert_clear_for_s), 0, 0, DAY, 0, "5m" },
	{ "alert_backup_stale", CONFTAB_DURATION, OFF(alert_backup_stale_s), 0, 1, 365 * DAY, 0,
	  "72h" },
	{ "alert_backup_stale_site", DASH_CONFIG_SITE_DURATIONS, OFF(alert_backup_stale_site), 0,
	  NOLIMIT, 0, "\"\"" },
	{ "alert_device_missing", CONFTAB_DURATION, OFF(alert_device_missing_s), 0, 1, 3650 * DAY,
	  0, "7d" },
	{ "alert_device_missing_site", DASH_CONFIG_SITE_DURATIONS, OFF(alert_device_missing_site),
	  0, NOLIMIT, 0, "\"\"" },
	{ "alert_agent_offline", CONFTAB_DURATION, OFF(alert_agent_offline_s), 0, 1, 30 * DAY, 0,
	  "10m" },
	{ "alert_agent_offline_site", DASH_CONFIG_SITE_DURATIONS, OFF(alert_agent_offline_site), 0,
	  NOLIMIT, 0, "\"\"" },
	{ "alert_site_network_pct", CONFTAB_UINT, OFF(alert_site_network_pct), 0, 1, 100, 0, "50" },
	{ "alert_site_network_min", CONFTAB_UINT, OFF(alert_site_network_min), 0, 1, 1000000, 0,
	  "5" },
	/* --- notify: delivery (notify.h); dashboard/README.md "Notifications" --- */
	{ "notify_queue_max", CONFTAB_UINT, OFF(notify_queue_max), 8, 1, 10000000, 0, "10000" },
	{ "notify_timeout", CONFTAB_DURATION, OFF(notify_timeout_s), 0, 1, 300, 0, "10s" },
	{ "notify_attempts", CONFTAB_UINT, OFF(notify_attempts), 0, 1, 1000, 0, "12" },
	{ "notify_backoff", CONFTAB_DURATION, OFF(notify_backoff_s), 0, 1, 3600, 0, "10s" },
	{ "notify_backoff_max", CONFTAB_DURATION, OFF(notify_backoff_max_s), 0, 1, DAY, 0, "30m" },
	{ "receiver1", DASH_CONFIG_RECEIVER, OFF(receiver[0]), 0, NOLIMIT, 0, "\"\"" },
	{ "receiver2", DASH_CONFIG_RECEIVER, OFF(receiver[1]), 0, NOLIMIT, 0, "\"\"" },
	{ "receiver3", DASH_CONFIG_RECEIVER, OFF(receiver[2]), 0, NOLIMIT, 0, "\"\"" },
	{ "receiver4", DASH_CONFIG_RECEIVER, OFF(receiver[3]), 0, NOLIMIT, 0, "\"\"" },
	{ "receiver5", DASH_CONFIG_RECEIVER, OFF(receiver[4]), 0, NOLIMIT, 0, "\"\"" },
	{ "receiver6", DASH_CONFIG_RECEIVER, OFF(receiver[5]), 0, NOLIMIT, 0, "\"\"" },
	{ "receiver7", DASH_CONFIG_RECEIVER, OFF(receiver[6]), 0, NOLIMIT, 0, "\"\"" },
	{ "receiver8", DASH_CONFIG_RECEIVER, OFF(receiver[7]), 0, NOLIMIT, 0, "\"\"" },
};

static const struct conftab config_table = { config_keys, ARRAY_SIZE(config_keys), config_types,
	                                     ARRAY_SIZE(config_types) };

void dash_config_defaults(struct dash_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	conftab_defaults(&config_table, cfg);
}

int dash_config_load(struct dash_config *cfg, const char *path, char *err, size_t errsz)
{
	struct conftab_parser p = { .name = path, .err = err, .errsz = errsz };
	char *text = NULL;
	size_t len = 0;
	int r;

	r = conftab_read_file(&p, path, &text, &len);
	if (r == 0)
		r = conftab_parse(&config_table, &p, text, len, cfg);
	free(text);
	return r;
}

static int check_error(char *err, size_t errsz, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int check_error(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (err && errsz) {
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ADDR:PORT with a numeric port 1..65535; ADDR an IPv4 address, a name, or [IPv6]. */
static bool listen_valid(const char *s)
{
	const char *colon = strrchr(s, ':');
	uint64_t port;

	if (!colon || colon == s)
		return false;
	if (s[0] == '[' && colon[-1] != ']')
		return false;
	if (parse_uint(colon + 1, &port) < 0 || port == 0 || port > 65535)
		return false;
	return true;
}

int dash_config_check(const struct dash_config *cfg, char *err, size_t errsz)
{
	int tls = parse_broker_url_tls(cfg->broker_url);

	if (cfg->broker_url[0] == '\0')
		return check_error(err, errsz, "broker_url is empty");
	if (tls < 0)
		return check_error(
		        err, errsz,
		        "broker_url '%s': want tcp://, mqtt://, ssl://, mqtts://, ws:// or "
		        "wss:// followed by host:port",
		        cfg->broker_url);
	/* Paho would connect in plaintext and send the password in clear */
	if (!tls && (cfg->mqtt_cafile[0] || cfg->mqtt_certfile[0]))
		return check_error(err, errsz,
		                   "mqtt_cafile/mqtt_certfile set but broker_url is plaintext: use "
		                   "ssl:// (or mqtts://) for TLS");
	if (!listen_valid(cfg->http_listen))
		return check_error(err, errsz,
		                   "http_listen '%s' is not ADDR:PORT (e.g. 127.0.0.1:8080)",
		                   cfg->http_listen);
	if (cfg->metrics_listen[0] && !listen_valid(cfg->metrics_listen))
		return check_error(err, errsz,
		                   "metrics_listen '%s' is not ADDR:PORT (e.g. 127.0.0.1:9108)",
		                   cfg->metrics_listen);
	if (cfg->metrics_listen[0] && strcmp(cfg->metrics_listen, cfg->http_listen) == 0)
		return check_error(err, errsz, "metrics_listen must differ from http_listen");
	if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0'))
		return check_error(err, errsz, "tls_cert and tls_key must be set together");
	if ((cfg->mqtt_certfile[0] == '\0') != (cfg->mqtt_keyfile[0] == '\0'))
		return check_error(err, errsz,
		                   "mqtt_certfile and mqtt_keyfile must be set together");
	if (cfg->db[0] == '\0')
		return check_error(err, errsz, "db is empty");
	if (cfg->command_key[0] == '\0')
		return check_error(err, errsz, "command_key is empty");
	/* '/', '+' and '#' would change the topic filter $share/<group>/... */
	if (strpbrk(cfg->mqtt_share_group, "/+#"))
		return check_error(err, errsz, "mqtt_share_group '%s' must not contain / + or #",
		                   cfg->mqtt_share_group);
	return notify_config_check(cfg, err, errsz);
}

int dash_config_dump(const struct dash_config *cfg, FILE *f)
{
	return conftab_dump(&config_table, cfg, f);
}

int64_t dash_config_site_duration(const struct dash_site_durations *list, const char *site,
                                  int64_t def)
{
	if (site && site[0])
		for (int i = 0; i < list->n; i++)
			if (strcmp(list->v[i].site, site) == 0)
				return list->v[i].stale_after_s;
	return def;
}

int64_t dash_config_stale_after(const struct dash_config *cfg, const char *site)
{
	if (site && site[0])
		for (int i = 0; i < cfg->n_site_stale; i++)
			if (strcmp(cfg->site_stale[i].site, site) == 0)
				return cfg->site_stale[i].stale_after_s;
	return cfg->stale_after_s;
}
