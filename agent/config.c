/* SPDX-License-Identifier: MIT */
/*
 * config: one table of keys (name, type, default, range, flags) drives the parser, the defaults
 * and --dump-config, so a key cannot be documented in one place and forgotten in another.
 *
 * Defaults are written in the table as text and go through the same value parser as the file,
 * so "72h" in the table means exactly what "72h" means in a file. The three syslog pattern
 * lists are the exception: their defaults belong to the diagnosis and come from
 * diagnose_config_defaults(). Parsing is strict: unknown keys, repeated keys, values out of
 * range or with trailing junk are errors with FILE:LINE, because a typo in a fleet config that
 * silently falls back to a default is worse than an agent that refuses to start.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmdsig.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))

enum config_type {
	CONFIG_STRING,
	CONFIG_AGENT_ID,
	CONFIG_DURATION,
	CONFIG_SIZE,
	CONFIG_UINT,
	CONFIG_BOOL,
	CONFIG_LIST,
	CONFIG_PATTERNS,
	CONFIG_LOG_LEVEL,
	CONFIG_RATE,
	_CONFIG_TYPE_MAX,
};

enum config_flags {
	CONFIG_SECRET = 1 << 0,   /* masked in dumps, never logged */
	CONFIG_REQUIRED = 1 << 1, /* must be set by the file */
};

struct config_key {
	const char *name;
	enum config_type type;
	size_t offset;
	size_t size;       /* CONFIG_STRING: buffer size */
	uint64_t min, max; /* numbers: inclusive range (durations in seconds) */
	unsigned flags;
	const char *def; /* NULL: no default in the table (required, or patterns) */
};

#define OFF(f)  offsetof(struct agent_config, f)
#define STR(f)  OFF(f), sizeof(((struct agent_config *)0)->f)
#define DAY     (24 * 3600ULL)
#define NOLIMIT 0, 0

static const struct config_key config_keys[] = {
	{ "agent_id", CONFIG_AGENT_ID, STR(agent_id), NOLIMIT, CONFIG_REQUIRED, NULL },
	{ "broker_url", CONFIG_STRING, STR(broker_url), NOLIMIT, 0, "tcp://127.0.0.1:1883" },
	{ "state_dir", CONFIG_STRING, STR(state_dir), NOLIMIT, 0, "/var/lib/cradle-agent" },
	{ "stale_after", CONFIG_DURATION, OFF(diagnose.stale_after_s), 0, 60, 365 * DAY, 0, "72h" },
	{ "probe_interval", CONFIG_DURATION, OFF(probe_interval_s), 0, 10, 7 * DAY, 0, "15m" },
	{ "refresh_interval", CONFIG_DURATION, OFF(refresh_interval_s), 0, 60, 7 * DAY, 0, "1h" },
	{ "min_ios_version", CONFIG_STRING, STR(diagnose.min_ios_version), NOLIMIT, 0, "\"\"" },
	{ "probe_concurrency", CONFIG_UINT, OFF(probe_concurrency), 0, 1, 256, 0, "16" },
	{ "probe_timeout", CONFIG_DURATION, OFF(probe_timeout_s), 0, 1, 3600, 0, "30s" },
	{ "resync_interval", CONFIG_DURATION, OFF(resync_interval_s), 0, 1, 3600, 0, "10s" },
	{ "publish_device_name", CONFIG_BOOL, OFF(publish_device_name), 0, NOLIMIT, 0, "false" },
	{ "syslog_watch", CONFIG_BOOL, OFF(syslog_watch), 0, NOLIMIT, 0, "false" },
	{ "syslog_window", CONFIG_DURATION, OFF(syslog_window_s), 0, 1, 300, 0, "5s" },
	{ "pattern_storage_full", CONFIG_PATTERNS, OFF(diagnose.storage_full), 0, NOLIMIT, 0,
	  NULL },
	{ "pattern_network", CONFIG_PATTERNS, OFF(diagnose.network), 0, NOLIMIT, 0, NULL },
	{ "pattern_apple_id", CONFIG_PATTERNS, OFF(diagnose.apple_id), 0, NOLIMIT, 0, NULL },
	{ "site", CONFIG_STRING, STR(site), NOLIMIT, 0, "\"\"" },
	{ "station", CONFIG_STRING, STR(station), NOLIMIT, 0, "\"\"" },
	{ "mqtt_username", CONFIG_STRING, STR(mqtt_username), NOLIMIT, 0, "\"\"" },
	{ "mqtt_password", CONFIG_STRING, STR(mqtt_password), NOLIMIT, CONFIG_SECRET, "\"\"" },
	{ "mqtt_cafile", CONFIG_STRING, STR(mqtt_cafile), NOLIMIT, 0, "\"\"" },
	{ "mqtt_certfile", CONFIG_STRING, STR(mqtt_certfile), NOLIMIT, 0, "\"\"" },
	{ "mqtt_keyfile", CONFIG_STRING, STR(mqtt_keyfile), NOLIMIT, 0, "\"\"" },
	{ "keepalive", CONFIG_DURATION, OFF(keepalive_s), 0, 5, 3600, 0, "30s" },
	{ "will_delay", CONFIG_DURATION, OFF(will_delay_s), 0, 0, 3600, 0, "15s" },
	/* Paho 1.3.12 keeps sessionExpiry in a signed int: stay far below 2^31 */
	{ "session_expiry", CONFIG_DURATION, OFF(session_expiry_s), 0, 1, 30 * DAY, 0, "1h" },
	{ "outbox_max_bytes", CONFIG_SIZE, OFF(outbox_max_bytes), 0, 64 * 1024, 1ULL << 40, 0,
	  "64M" },
	{ "outbox_max_records", CONFIG_UINT, OFF(outbox_max_records), 8, 16, 10000000, 0,
	  "100000" },
	{ "log_level", CONFIG_LOG_LEVEL, OFF(log_level), 0, NOLIMIT, 0, "info" },
	{ "allowed_commands", CONFIG_LIST, OFF(allowed_commands), 0, NOLIMIT, 0,
	  "device.refresh,backup.icloud.enable,device.restart,backup.local.start" },
	{ "backup_dir", CONFIG_STRING, STR(backup_dir), NOLIMIT, 0, "" },
	{ "backup_retention", CONFIG_UINT, OFF(backup_retention), 0, 1, 100, 0, "2" },
	{ "backup_min_free", CONFIG_SIZE, OFF(backup_min_free), 0, 0, 1ULL << 50, 0, "1G" },
	{ "max_concurrent_backups", CONFIG_UINT, OFF(max_concurrent_backups), 0, 1, 64, 0, "2" },
	{ "restart_timeout", CONFIG_DURATION, OFF(restart_timeout_s), 0, 10, 3600, 0, "3m" },
	{ "cmd_rate_per_device", CONFIG_RATE, OFF(cmd_rate_per_device), 0, 1, 10000, 0, "6/1h" },
	{ "cmd_id_retention", CONFIG_DURATION, OFF(cmd_id_retention_s), 0, 3600, 365 * DAY, 0,
	  "7d" },
	{ "backup_stall_timeout", CONFIG_DURATION, OFF(backup_stall_timeout_s), 0, 1, 6 * 3600, 0,
	  "10m" },
	{ "disk_low_free", CONFIG_SIZE, OFF(disk_low_free), 0, 0, 1ULL << 50, 0, "2G" },
	{ "disk_check_interval", CONFIG_DURATION, OFF(disk_check_interval_s), 0, 1, DAY, 0, "1m" },
	{ "security_event_interval", CONFIG_DURATION, OFF(security_event_interval_s), 0, 1, DAY, 0,
	  "1m" },
	{ "command_keys", CONFIG_LIST, OFF(command_keys), 0, NOLIMIT, 0, "\"\"" },
	{ "require_signed_commands", CONFIG_BOOL, OFF(require_signed_commands), 0, NOLIMIT, 0,
	  "true" },
};

struct config_parser {
	const char *name;
	unsigned line;
	char *err;
	size_t errsz;
};

static int config_error(struct config_parser *p, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int config_error(struct config_parser *p, const char *fmt, ...)
{
	char msg[AGENT_CONFIG_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->err && p->errsz > 0) {
		if (p->line > 0)
			snprintf(p->err, p->errsz, "%s:%u: %s", p->name, p->line, msg);
		else
			snprintf(p->err, p->errsz, "%s: %s", p->name, msg);
	}
	return -EINVAL;
}

/* Unsigned decimal with overflow check; *end points after the digits. */
static int parse_u64(const char *s, uint64_t *ret, const char **end)
{
	uint64_t v = 0;
	const char *q = s;

	if (!isdigit((unsigned char)*q))
		return -EINVAL;
	for (; isdigit((unsigned char)*q); q++) {
		unsigned d = (unsigned)(*q - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*ret = v;
	*end = q;
	return 0;
}

struct config_unit {
	char suffix;
	uint64_t mult;
};

static const struct config_unit duration_units[] = {
	{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 0, 0 }
};
static const struct config_unit size_units[] = {
	{ 'K', 1ULL << 10 }, { 'M', 1ULL << 20 }, { 'G', 1ULL << 30 }, { 'T', 1ULL << 40 }, { 0, 0 }
};

/*
 * A number with one suffix from units (multiplied, overflow-checked). A bare number is taken
 * as is when bare_ok, otherwise only 0 is (durations must say their unit).
 */
static int parse_scaled(const char *s, const struct config_unit *units, bool bare_ok, uint64_t *ret)
{
	const char *end;
	uint64_t v;
	int r;

	r = parse_u64(s, &v, &end);
	if (r < 0)
		return r;
	if (*end == '\0') {
		if (!bare_ok && v != 0)
			return -EINVAL;
		*ret = v;
		return 0;
	}
	if (end[1] != '\0')
		return -EINVAL;
	for (; units->suffix; units++) {
		if (units->suffix != *end)
			continue;
		if (v > UINT64_MAX / units->mult)
			return -ERANGE;
		*ret = v * units->mult;
		return 0;
	}
	return -EINVAL;
}

/* "30s", "5m", "72h", "2d" or "0"; result in seconds. */
static int parse_duration(const char *s, uint64_t *ret)
{
	return parse_scaled(s, duration_units, false, ret);
}

/* "512", "64K", "16M", "1G", "1T" (binary multiples). */
static int parse_size(const char *s, uint64_t *ret)
{
	return parse_scaled(s, size_units, true, ret);
}

static int parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < N_ELEMS(yes); i++) {
		if (strcmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

static bool agent_id_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 3 || n > 63)
		return false;
	if (!islower((unsigned char)s[0]) && !isdigit((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !isdigit((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* Splits s (modified) at commas into n/items of item_size bytes each; blanks trimmed. */
static int parse_list(struct config_parser *p, const struct config_key *k, char *s, int *ret_n,
                      char (*items)[AGENT_CONFIG_ITEM_MAX], int max)
{
	int n = 0;

	if (*s == '\0') {
		*ret_n = 0;
		return 0;
	}
	for (;;) {
		char *comma = strchr(s, ',');
		char *e;

		if (comma)
			*comma = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
		e = s + strlen(s);
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			*--e = '\0';
		if (*s == '\0')
			return config_error(p, "'%s': empty list item", k->name);
		if (n >= max)
			return config_error(p, "'%s': more than %d items", k->name, max);
		if (strlen(s) >= AGENT_CONFIG_ITEM_MAX)
			return config_error(p, "'%s': item '%.32s...' longer than %d bytes",
			                    k->name, s, AGENT_CONFIG_ITEM_MAX - 1);
		strcpy(items[n++], s);
		if (!comma)
			break;
		s = comma + 1;
	}
	*ret_n = n;
	return 0;
}

static int range_check(struct config_parser *p, const struct config_key *k, uint64_t v)
{
	if (k->min == 0 && k->max == 0)
		return 0;
	if (v < k->min || v > k->max)
		return config_error(
		        p, "'%s': value %" PRIu64 " out of range [%" PRIu64 ", %" PRIu64 "]",
		        k->name, v, k->min, k->max);
	return 0;
}

/* Stores the value text v (modified, already unquoted) for key k into cfg. */
static int config_set(struct config_parser *p, const struct config_key *k, char *v,
                      struct agent_config *cfg)
{
	char *field = (char *)cfg + k->offset;
	uint64_t u;
	bool b;
	int r;

	switch (k->type) {
	case CONFIG_AGENT_ID:
		if (!agent_id_valid(v))
			return config_error(p,
			                    "'%s': '%.80s' does not match [a-z0-9][a-z0-9-]{2,62}",
			                    k->name, v);
		/* a valid id is stored like any string */
		__attribute__((fallthrough));
	case CONFIG_STRING:
		if (strlen(v) >= k->size)
			return config_error(p, "'%s': value longer than %zu bytes", k->name,
			                    k->size - 1);
		memcpy(field, v, strlen(v) + 1);
		return 0;
	case CONFIG_DURATION:
		r = parse_duration(v, &u);
		if (r < 0)
			return config_error(
			        p, "'%s': bad duration '%.80s' (want e.g. 30s, 5m, 72h, 2d)",
			        k->name, v);
		r = range_check(p, k, u);
		if (r < 0)
			return r;
		*(int64_t *)(void *)field = (int64_t)u;
		return 0;
	case CONFIG_SIZE:
		r = parse_size(v, &u);
		if (r < 0)
			return config_error(p,
			                    "'%s': bad size '%.80s' (want e.g. 512, 64K, 16M, 1G)",
			                    k->name, v);
		r = range_check(p, k, u);
		if (r < 0)
			return r;
		*(uint64_t *)(void *)field = u;
		return 0;
	case CONFIG_UINT: {
		const char *end;

		r = parse_u64(v, &u, &end);
		if (r < 0 || *end != '\0')
			return config_error(p, "'%s': bad number '%.80s'", k->name, v);
		r = range_check(p, k, u);
		if (r < 0)
			return r;
		/* size 8 marks a uint64_t field, anything else an unsigned */
		if (k->size == 8)
			*(uint64_t *)(void *)field = u;
		else
			*(unsigned *)(void *)field = (unsigned)u;
		return 0;
	}
	case CONFIG_BOOL:
		if (parse_bool(v, &b) < 0)
			return config_error(p, "'%s': bad boolean '%.80s' (want true or false)",
			                    k->name, v);
		*(bool *)(void *)field = b;
		return 0;
	case CONFIG_LIST: {
		struct agent_config_list *l = (struct agent_config_list *)(void *)field;
		struct agent_config_list tmp;

		r = parse_list(p, k, v, &tmp.n, tmp.item, AGENT_CONFIG_LIST_MAX);
		if (r < 0)
			return r;
		*l = tmp;
		return 0;
	}
	case CONFIG_PATTERNS: {
		struct diagnose_patterns *pat = (struct diagnose_patterns *)(void *)field;
		char items[DIAGNOSE_PATTERNS_MAX][AGENT_CONFIG_ITEM_MAX];
		int n;

		/* the diagnosis keeps patterns in char[64], same as a list item */
		_Static_assert(sizeof(pat->text[0]) == AGENT_CONFIG_ITEM_MAX, "pattern size");
		r = parse_list(p, k, v, &n, items, DIAGNOSE_PATTERNS_MAX);
		if (r < 0)
			return r;
		pat->n = n;
		memcpy(pat->text, items, sizeof(items[0]) * (size_t)n);
		return 0;
	}
	case CONFIG_LOG_LEVEL: {
		enum log_level lvl;

		if (log_level_from_string(v, &lvl) < 0)
			return config_error(
			        p,
			        "'%s': bad level '%.80s' (want error, warn, notice, info, debug)",
			        k->name, v);
		*(enum log_level *)(void *)field = lvl;
		return 0;
	}
	case CONFIG_RATE: {
		struct agent_config_rate *rate = (struct agent_config_rate *)(void *)field;
		char *slash = strchr(v, '/');
		const char *end;

		if (!slash)
			return config_error(
			        p, "'%s': bad rate '%.80s' (want COUNT/DURATION, e.g. 6/1h)",
			        k->name, v);
		*slash = '\0';
		r = parse_u64(v, &u, &end);
		if (r < 0 || *end != '\0')
			return config_error(p, "'%s': bad count '%.80s' in rate", k->name, v);
		r = range_check(p, k, u);
		if (r < 0)
			return r;
		rate->count = (unsigned)u;
		r = parse_duration(slash + 1, &u);
		if (r < 0 || u == 0 || u > 30 * DAY)
			return config_error(p, "'%s': bad interval '%.80s' in rate (1s..30d)",
			                    k->name, slash + 1);
		rate->interval_s = (int64_t)u;
		return 0;
	}
	case _CONFIG_TYPE_MAX:
		break;
	}
	return config_error(p, "'%s': internal error: bad type", k->name);
}

/* Every command_keys item must be a public key: a typo must not silently drop a trusted key. */
static int check_command_keys(struct config_parser *p, const struct agent_config *cfg)
{
	const struct agent_config_list *l = &cfg->command_keys;
	struct cmdsig_pubkey k;

	for (int i = 0; i < l->n; i++)
		if (cmdsig_pubkey_parse(l->item[i], strlen(l->item[i]), &k) < 0)
			return config_error(
			        p,
			        "'command_keys': item %d '%.16s...' is not an Ed25519 "
			        "public key (want %d characters of base64, e.g. from "
			        "'cradle-agent send --print-public-key --sign-key FILE')",
			        i + 1, l->item[i], CMDSIG_PUBKEY_B64_LEN);
	return 0;
}

static const struct config_key *config_find(const char *name)
{
	for (size_t i = 0; i < N_ELEMS(config_keys); i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

/* Removes one pair of double quotes around v (in place); -EINVAL on a lone quote. */
static int unquote(char **v)
{
	char *s = *v;
	size_t n = strlen(s);

	if (n == 0 || s[0] != '"')
		return strchr(s, '"') ? -EINVAL : 0;
	if (n < 2 || s[n - 1] != '"')
		return -EINVAL;
	s[n - 1] = '\0';
	s++;
	if (strchr(s, '"'))
		return -EINVAL;
	*v = s;
	return 0;
}

void agent_config_defaults(struct agent_config *cfg)
{
	struct config_parser p = { .name = "(defaults)" };

	memset(cfg, 0, sizeof(*cfg));
	diagnose_config_defaults(&cfg->diagnose);
	for (size_t i = 0; i < N_ELEMS(config_keys); i++) {
		char buf[256];
		char *v = buf;

		if (!config_keys[i].def)
			continue;
		snprintf(buf, sizeof(buf), "%s", config_keys[i].def);
		/* the table is constant: a failure here is a programming error caught by tests */
		if (unquote(&v) < 0 || config_set(&p, &config_keys[i], v, cfg) < 0)
			abort();
	}
}

static int config_line(struct config_parser *p, char *s, struct agent_config *cfg, unsigned *seen)
{
	const struct config_key *k;
	char *key, *v, *e;
	int r;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == '#')
		return 0;
	key = s;
	while (*s && *s != ' ' && *s != '\t')
		s++;
	if (*s)
		*s++ = '\0';
	while (*s == ' ' || *s == '\t')
		s++;
	v = s;
	e = v + strlen(v);
	while (e > v && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	for (const char *c = key; *c; c++)
		if (!isprint((unsigned char)*c))
			return config_error(p, "key contains a control or non-ASCII byte");
	k = config_find(key);
	if (!k)
		return config_error(p, "unknown key '%.64s'", key);
	if (seen[k - config_keys])
		return config_error(p, "'%s' set twice (first on line %u)", k->name,
		                    seen[k - config_keys]);
	seen[k - config_keys] = p->line;
	if (*v == '\0')
		return config_error(p, "'%s': missing value (use \"\" for an empty string)",
		                    k->name);
	for (const char *c = v; *c; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t')
			return config_error(p, "'%s': value contains a control byte", k->name);
	r = unquote(&v);
	if (r < 0)
		return config_error(p, "'%s': unbalanced or embedded quote", k->name);
	return config_set(p, k, v, cfg);
}

int agent_config_parse(const char *name, const char *text, size_t len, struct agent_config *cfg,
                       char *ret_err, size_t errsz)
{
	struct config_parser p = { .name = name, .err = ret_err, .errsz = errsz };
	unsigned seen[N_ELEMS(config_keys)] = { 0 };
	char *buf = NULL;
	size_t pos = 0;
	int r = 0;

	if (ret_err && errsz > 0)
		ret_err[0] = '\0';
	if (len > AGENT_CONFIG_FILE_MAX) {
		r = config_error(&p, "file larger than %d bytes", AGENT_CONFIG_FILE_MAX);
		goto out;
	}
	buf = malloc(len + 1);
	if (!buf) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(buf, text, len);
	buf[len] = '\0';
	while (pos < len) {
		char *line = buf + pos;
		char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;

		p.line++;
		line[n] = '\0';
		if (memchr(line, '\0', n)) {
			r = config_error(&p, "NUL byte in line");
			goto out;
		}
		r = config_line(&p, line, cfg, seen);
		if (r < 0)
			goto out;
		pos += n + 1;
	}
	p.line = seen[config_find("command_keys") - config_keys];
	r = check_command_keys(&p, cfg);
	if (r < 0)
		goto out;
	p.line = 0;
	for (size_t i = 0; i < N_ELEMS(config_keys); i++)
		if ((config_keys[i].flags & CONFIG_REQUIRED) && !seen[i]) {
			r = config_error(&p, "missing required key '%s'", config_keys[i].name);
			goto out;
		}
	/* a will delay >= session expiry makes the broker send the will at once (MQTT 5 3.1.3.2.2)
	 */
	if (cfg->will_delay_s >= cfg->session_expiry_s) {
		r = config_error(&p,
		                 "will_delay (%" PRId64
		                 "s) must be shorter than session_expiry (%" PRId64 "s)",
		                 cfg->will_delay_s, cfg->session_expiry_s);
		goto out;
	}
	if ((cfg->mqtt_certfile[0] == '\0') != (cfg->mqtt_keyfile[0] == '\0')) {
		r = config_error(&p, "mqtt_certfile and mqtt_keyfile must be set together");
		goto out;
	}
out:
	free(buf);
	return r;
}

int agent_config_load(const char *path, struct agent_config *cfg, char *ret_err, size_t errsz)
{
	struct config_parser p = { .name = path, .err = ret_err, .errsz = errsz };
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	int fd = -1;
	int r;

	agent_config_defaults(cfg);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		config_error(&p, "cannot read: %s", strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > AGENT_CONFIG_FILE_MAX) {
		r = config_error(&p, "not a regular file of at most %d bytes",
		                 AGENT_CONFIG_FILE_MAX);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, text + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			config_error(&p, "read failed: %s", strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	r = agent_config_parse(path, text, len, cfg, ret_err, errsz);
out:
	free(text);
	if (fd >= 0)
		close(fd);
	return r;
}

/* Prints a string value so that reading the dump back gives the same value. */
static void dump_string(FILE *f, const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t')
		fprintf(f, "\"%s\"", s);
	else
		fputs(s, f);
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

static void dump_items(FILE *f, int n, const char (*items)[AGENT_CONFIG_ITEM_MAX])
{
	if (n == 0)
		fputs("\"\"", f);
	for (int i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? "," : "", items[i]);
}

int agent_config_dump(const struct agent_config *cfg, FILE *f)
{
	static const char *const levels[] = { "error", "warn", "notice", "info", "debug" };

	for (size_t i = 0; i < N_ELEMS(config_keys); i++) {
		const struct config_key *k = &config_keys[i];
		const char *field = (const char *)cfg + k->offset;

		fprintf(f, "%s ", k->name);
		switch (k->type) {
		case CONFIG_AGENT_ID:
		case CONFIG_STRING:
			if ((k->flags & CONFIG_SECRET) && field[0])
				fputs("********", f);
			else
				dump_string(f, field);
			break;
		case CONFIG_DURATION:
			dump_duration(f, *(const int64_t *)(const void *)field);
			break;
		case CONFIG_SIZE:
			fprintf(f, "%" PRIu64, *(const uint64_t *)(const void *)field);
			break;
		case CONFIG_UINT:
			if (k->size == 8)
				fprintf(f, "%" PRIu64, *(const uint64_t *)(const void *)field);
			else
				fprintf(f, "%u", *(const unsigned *)(const void *)field);
			break;
		case CONFIG_BOOL:
			fputs(*(const bool *)(const void *)field ? "true" : "false", f);
			break;
		case CONFIG_LIST: {
			const struct agent_config_list *l = (const void *)field;

			dump_items(f, l->n, l->item);
			break;
		}
		case CONFIG_PATTERNS: {
			const struct diagnose_patterns *pat = (const void *)field;

			dump_items(f, pat->n, pat->text);
			break;
		}
		case CONFIG_LOG_LEVEL: {
			enum log_level lvl = *(const enum log_level *)(const void *)field;

			fputs(lvl < _LOG_LEVEL_MAX ? levels[lvl] : "info", f);
			break;
		}
		case CONFIG_RATE: {
			const struct agent_config_rate *rate = (const void *)field;

			fprintf(f, "%u/", rate->count);
			dump_duration(f, rate->interval_s);
			break;
		}
		case _CONFIG_TYPE_MAX:
			break;
		}
		fputc('\n', f);
	}
	return ferror(f) ? -EIO : 0;
}
