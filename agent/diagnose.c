/* SPDX-License-Identifier: MIT */
/*
 * diagnose: why is this iPhone's iCloud backup stale, from one probe's facts.
 *
 * A pure function of (facts, config, now): no I/O, no clock, no logging, so every rule below is a
 * row in a unit-test table. Rules (the contract, with every code, is docs/diagnosis.md):
 *
 *  - status is "unknown" when the probe did not read values (not trusted, locked, gone, timeout,
 *    error); "stale" when the last iCloud backup is older than stale_after_s or there is none;
 *    "ok" otherwise.
 *  - Causes are reported whenever their fact holds, whatever the status. On a stale phone they
 *    say why it is stale; on an ok phone they are early warnings (iCloud Backup was just switched
 *    off, the port does not charge, ...) that an admin can act on before the phone goes stale.
 *    Alerting keys on status, never on the mere presence of a cause.
 *  - never_backed_up describes the symptom, not its reason, so "unknown" (stale, no reason found)
 *    is added when nothing else explains a stale phone.
 *  - Syslog lines are matched against case-insensitive substrings from the config, because
 *    Apple's backupd wording changes between iOS releases; the first matching line is quoted.
 *    Lines come from the capture ring (with their times) when the daemon keeps one, else from
 *    the probe's window. When an attempt's start or outcome is recognised, only the last
 *    attempt's lines count: an older failure is history once a later attempt succeeded.
 *  - The docking window (docked, on power, watched) yields no_backup_attempt when nothing
 *    happened in it: no new backup and no attempt line for backup_window_s.
 *  - Causes come out in vocabulary (enum) order, so equal facts give byte-equal messages.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "diagnose.h"
#include "macro.h"
#include "timefmt.h"

/* MBErrorDomain code of a local backup that waits for the passcode (iOS 16.1+). */
#define MB_ERROR_PASSCODE_REQUIRED 208

struct cause_text {
	const char *code, *remediation, *complexity;
};

/* docs/diagnosis.md, "Cause codes": keep the texts there and here equal. */
static const struct cause_text cause_texts[_CAUSE_MAX] = {
	[CAUSE_ICLOUD_STORAGE_FULL] = { "icloud_storage_full",
	                                "free iCloud space or buy a bigger plan (person); take a "
	                                "local backup meanwhile",
	                                "low" },
	[CAUSE_NETWORK_UNAVAILABLE] = { "network_unavailable",
	                                "fix the Wi-Fi / router; avoid captive networks (backup needs "
	                                "Wi-Fi, never cellular)",
	                                "low" },
	[CAUSE_ICLOUD_BACKUP_DISABLED] = { "icloud_backup_disabled",
	                                   "switch iCloud Backup on: backup.icloud.enable over USB",
	                                   "medium" },
	[CAUSE_APPLE_ID_PROBLEM] = { "apple_id_problem", "sign in to the Apple ID again (person)",
	                             "medium" },
	[CAUSE_IOS_OUTDATED] = { "ios_outdated",
	                         "update iOS (MDM); restore the device as a last resort", "high" },
	[CAUSE_NOT_ON_POWER] = { "not_on_power", "check the cable and the station port", "low" },
	[CAUSE_NEVER_BACKED_UP] = { "never_backed_up",
	                            "as for a stale backup: resolve the other causes; switch "
	                            "iCloud Backup on if needed",
	                            "none" },
	[CAUSE_NOT_TRUSTED] = { "not_trusted", "tap Trust on the phone and enter the passcode",
	                        "low" },
	[CAUSE_PASSCODE_REQUIRED] = { "passcode_required",
	                              "a person at the station enters the passcode on the phone",
	                              "low" },
	[CAUSE_NO_BACKUP_ATTEMPT] = { "no_backup_attempt",
	                              "check the phone's Wi-Fi and that its Apple ID is signed in "
	                              "(person); a restart often brings backupd back",
	                              "medium" },
	[CAUSE_BACKUP_ATTEMPT_FAILED] = { "backup_attempt_failed",
	                                  "read the quoted line; restart the device and let it "
	                                  "back up on Wi-Fi and power; take a local backup meanwhile",
	                                  "medium" },
	[CAUSE_UNKNOWN] = { "unknown", "restart the device, then escalate", "none" },
};

static const char *const status_names[_DIAGNOSE_STATUS_MAX] = {
	[DIAGNOSE_OK] = "ok",
	[DIAGNOSE_STALE] = "stale",
	[DIAGNOSE_UNKNOWN] = "unknown",
};

static const char *const pairing_evidence[_FACTS_PAIRING_MAX] = {
	[FACTS_PAIRING_PAIRED] = "pairing paired",
	[FACTS_PAIRING_UNPAIRED] = "no pair record on this host",
	[FACTS_PAIRING_TRUST_PENDING] = "PairingDialogResponsePending (lockdown -19)",
	[FACTS_PAIRING_DENIED] = "UserDeniedPairing (lockdown -18)",
	[FACTS_PAIRING_INVALID] = "InvalidHostID (lockdown -21)",
};

static const char *const default_storage_full[] = {
	"not enough iCloud storage",
	"not enough storage",
	"insufficient storage",
	"storage is full",
	"quota",
};
static const char *const default_network[] = {
	"network",
	"offline",
	"NSURLErrorDomain",
	"timed out",
	"not connected to the internet",
	"connection was lost",
};
static const char *const default_apple_id[] = {
	"authentication", "not signed in", "AKAuthentication",
	"Apple ID",       "AuthKit",       "re-enter your password",
};
static const char *const default_attempt_start[] = {
	"Starting backup",
	"Backup started",
	"Starting iCloud backup",
	"Beginning backup",
};
static const char *const default_attempt_ok[] = {
	"Backup succeeded",
	"Backup completed",
	"Backup finished successfully",
	"Finished backup",
};
static const char *const default_attempt_failed[] = {
	"Backup failed",           "Backup aborted", "Backup cancelled",
	"Backup did not complete", "backup stopped", "Cannot back up",
};

static void set_patterns(struct diagnose_patterns *p, const char *const *list, int n)
{
	int i;

	memset(p, 0, sizeof(*p));
	for (i = 0; i < n && i < DIAGNOSE_PATTERNS_MAX; i++)
		snprintf(p->text[i], sizeof(p->text[i]), "%s", list[i]);
	p->n = i;
}

void diagnose_config_defaults(struct diagnose_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->stale_after_s = 72 * 3600;
	set_patterns(&cfg->storage_full, default_storage_full,
	             (int)ARRAY_SIZE(default_storage_full));
	set_patterns(&cfg->network, default_network, (int)ARRAY_SIZE(default_network));
	set_patterns(&cfg->apple_id, default_apple_id, (int)ARRAY_SIZE(default_apple_id));
	set_patterns(&cfg->attempt_start, default_attempt_start,
	             (int)ARRAY_SIZE(default_attempt_start));
	set_patterns(&cfg->attempt_ok, default_attempt_ok, (int)ARRAY_SIZE(default_attempt_ok));
	set_patterns(&cfg->attempt_failed, default_attempt_failed,
	             (int)ARRAY_SIZE(default_attempt_failed));
	cfg->backup_window_s = 6 * 3600;
}

const char *diagnose_status_name(enum diagnose_status s)
{
	if ((unsigned)s >= _DIAGNOSE_STATUS_MAX)
		return NULL;
	return status_names[s];
}

const char *diagnose_cause_code(enum diagnose_cause c)
{
	if ((unsigned)c >= _CAUSE_MAX)
		return NULL;
	return cause_texts[c].code;
}

const char *diagnose_cause_remediation(enum diagnose_cause c)
{
	if ((unsigned)c >= _CAUSE_MAX)
		return NULL;
	return cause_texts[c].remediation;
}

const char *diagnose_cause_complexity(enum diagnose_cause c)
{
	if ((unsigned)c >= _CAUSE_MAX)
		return NULL;
	return cause_texts[c].complexity;
}

/*
 * Reads the leading decimal digits of *p as one version component and moves *p past the
 * component (up to and including the next '.'). Returns -1 when the component has no digits.
 */
static long version_component(const char **p)
{
	const char *s = *p;
	long v = 0;
	int digits = 0;

	while (*s >= '0' && *s <= '9') {
		if (v < 1000000)
			v = v * 10 + (*s - '0');
		s++;
		digits++;
	}
	while (*s && *s != '.') /* suffixes such as "17.0b2" or "16.4 (a)" are ignored */
		s++;
	if (*s == '.')
		s++;
	*p = s;
	return digits ? v : -1;
}

int diagnose_version_compare(const char *a, const char *b, int *ret_cmp)
{
	const char *pa = a, *pb = b;
	int i;

	if (!a || !b || !(*a >= '0' && *a <= '9') || !(*b >= '0' && *b <= '9'))
		return -1;
	for (i = 0; i < 8 && (*pa || *pb); i++) {
		long va = *pa ? version_component(&pa) : 0;
		long vb = *pb ? version_component(&pb) : 0;

		if (va < 0 || vb < 0)
			return -1;
		if (va != vb) {
			*ret_cmp = va < vb ? -1 : 1;
			return 0;
		}
	}
	*ret_cmp = 0;
	return 0;
}

/* Bounded case-insensitive substring search; empty patterns never match. */
static bool contains_nocase(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (n == 0)
		return false;
	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

/* The lines diagnose reads: the capture ring when it holds any, else the probe window's. */
static int n_lines(const struct device_facts *f)
{
	if (f->n_ring > 0)
		return f->n_ring > FACTS_RING_MAX ? FACTS_RING_MAX : f->n_ring;
	if (f->n_syslog <= 0)
		return 0;
	return f->n_syslog > FACTS_EVIDENCE_MAX ? FACTS_EVIDENCE_MAX : f->n_syslog;
}

/* Line i into buf (terminated even when facts are not: they may come from another process). */
static int64_t line_at(const struct device_facts *f, int i, char buf[FACTS_LINE_MAX])
{
	if (f->n_ring > 0) {
		snprintf(buf, FACTS_LINE_MAX, "%.*s", FACTS_LINE_MAX - 1, f->ring[i].text);
		return f->ring[i].t_ms;
	}
	snprintf(buf, FACTS_LINE_MAX, "%.*s", FACTS_LINE_MAX - 1, f->syslog[i]);
	return 0;
}

static bool line_matches(const char *line, const struct diagnose_patterns *p)
{
	int j, np = p->n > DIAGNOSE_PATTERNS_MAX ? DIAGNOSE_PATTERNS_MAX : p->n;

	for (j = 0; j < np; j++) {
		char pat[sizeof(p->text[0])];

		snprintf(pat, sizeof(pat), "%.*s", (int)sizeof(pat) - 1, p->text[j]);
		if (contains_nocase(line, pat))
			return true;
	}
	return false;
}

/* Index of the first line at or after from matching one of the patterns, or -1. */
static int match_syslog(const struct device_facts *f, const struct diagnose_patterns *p, int from)
{
	int i, n = n_lines(f);

	for (i = from < 0 ? 0 : from; i < n; i++) {
		char line[FACTS_LINE_MAX];

		line_at(f, i, line);
		if (line_matches(line, p))
			return i;
	}
	return -1;
}

void diagnose_last_attempt(const struct device_facts *f, const struct diagnose_config *cfg,
                           struct diagnose_last_attempt *ret)
{
	int i, n = n_lines(f);

	memset(ret, 0, sizeof(*ret));
	ret->line = -1;
	for (i = n - 1; i >= 0; i--) {
		char line[FACTS_LINE_MAX];
		int64_t t = line_at(f, i, line);
		enum diagnose_attempt o;

		if (line_matches(line, &cfg->attempt_failed))
			o = DIAGNOSE_ATTEMPT_FAILED;
		else if (line_matches(line, &cfg->attempt_ok))
			o = DIAGNOSE_ATTEMPT_OK;
		else if (line_matches(line, &cfg->attempt_start))
			o = DIAGNOSE_ATTEMPT_RUNNING;
		else
			continue;
		if (ret->outcome == DIAGNOSE_ATTEMPT_NONE) {
			/* the newest attempt line: its outcome, or a start without one yet */
			ret->outcome = o;
			ret->t_ms = t;
			ret->line = o == DIAGNOSE_ATTEMPT_RUNNING ? -1 : i;
			ret->first = i;
			if (o == DIAGNOSE_ATTEMPT_RUNNING)
				return;
			continue;
		}
		/* walking back to the start of the attempt whose outcome was found */
		if (o != DIAGNOSE_ATTEMPT_RUNNING)
			return;
		ret->first = i;
		return;
	}
}

struct found {
	bool on[_CAUSE_MAX];
	char evidence[_CAUSE_MAX][DIAGNOSE_EVIDENCE_MAX];
};

static void add(struct found *fd, enum diagnose_cause c, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Records cause c with its evidence; the first evidence found for a cause wins. */
static void add(struct found *fd, enum diagnose_cause c, const char *fmt, ...)
{
	va_list ap;

	if (fd->on[c])
		return;
	fd->on[c] = true;
	va_start(ap, fmt);
	vsnprintf(fd->evidence[c], sizeof(fd->evidence[c]), fmt, ap);
	va_end(ap);
}

/* Quotes line i: "backupd: LINE", or "backupd 2026-12-03T02:10:00Z: LINE" with its time. */
static void add_line(struct found *fd, enum diagnose_cause c, const struct device_facts *f, int i)
{
	char line[FACTS_LINE_MAX], when[40];
	int64_t t = line_at(f, i, line);

	if (t > 0 && timefmt_rfc3339(t / 1000, when, sizeof(when)) == 0)
		add(fd, c, "backupd %s: %s", when, line);
	else
		add(fd, c, "backupd: %s", line);
}

static bool add_syslog(struct found *fd, enum diagnose_cause c, const struct device_facts *f,
                       const struct diagnose_patterns *p, int from)
{
	int i = match_syslog(f, p, from);

	if (i < 0)
		return false;
	add_line(fd, c, f, i);
	return true;
}

/* The newest of the times, 0 when any is unknown. */
static int64_t window_start(const struct device_facts *f)
{
	int64_t t = f->docked_at_unix;

	if (f->docked_at_unix <= 0 || f->on_power_since_unix <= 0 || f->capture_since_unix <= 0)
		return 0;
	if (f->on_power_since_unix > t)
		t = f->on_power_since_unix;
	if (f->capture_since_unix > t)
		t = f->capture_since_unix;
	return t;
}

/* A duration as the config writes it: "6h", "1h30m", "45s". */
static void fmt_duration(int64_t s, char *buf, size_t size)
{
	int n = 0;

	buf[0] = '\0';
	if (s >= 3600)
		n += snprintf(buf + n, size - (size_t)n, "%lldh", (long long)(s / 3600));
	if (s % 3600 >= 60 && (size_t)n < size)
		n += snprintf(buf + n, size - (size_t)n, "%lldm", (long long)(s % 3600 / 60));
	if ((s % 60 || s == 0) && (size_t)n < size)
		snprintf(buf + n, size - (size_t)n, "%llds", (long long)(s % 60));
}

/*
 * no_backup_attempt: iCloud Backup on, docked, on power and watched for the whole window, no
 * backup newer than the window's start and no attempt line in it.
 */
static void check_window(struct found *fd, const struct device_facts *f,
                         const struct diagnose_config *cfg, const struct diagnose_last_attempt *la,
                         int64_t now_unix)
{
	int64_t from = window_start(f), len;
	char when[40], window[48];

	if (!f->capture_on || from <= 0 || cfg->backup_window_s <= 0 || !f->has_icloud_enabled ||
	    !f->icloud_enabled)
		return;
	if (__builtin_sub_overflow(now_unix, from, &len) || len < cfg->backup_window_s)
		return;
	if (f->has_last_icloud && f->last_icloud_unix >= from)
		return;
	if (la->outcome != DIAGNOSE_ATTEMPT_NONE && (la->t_ms <= 0 || la->t_ms / 1000 >= from))
		return;
	if (timefmt_rfc3339(from, when, sizeof(when)) < 0)
		return;
	fmt_duration(cfg->backup_window_s, window, sizeof(window));
	add(fd, CAUSE_NO_BACKUP_ATTEMPT,
	    "docked, on power and watched since %s (window %s, %s): no backup attempt seen", when,
	    window,
	    !f->has_password_protected ? "passcode unknown"
	    : f->password_protected    ? "passcode set"
	                               : "no passcode");
}

/*
 * Syslog causes. With a recognised attempt only its lines count; a failed attempt whose lines
 * name no known reason is backup_attempt_failed, quoting the failure line.
 */
static void check_lines(struct found *fd, const struct device_facts *f,
                        const struct diagnose_config *cfg, const struct diagnose_last_attempt *la)
{
	int from = la->outcome == DIAGNOSE_ATTEMPT_NONE ? 0 : la->first;
	bool named = false;

	if (la->outcome == DIAGNOSE_ATTEMPT_OK)
		return; /* the last attempt worked: earlier failures are history */
	named |= add_syslog(fd, CAUSE_ICLOUD_STORAGE_FULL, f, &cfg->storage_full, from);
	named |= add_syslog(fd, CAUSE_NETWORK_UNAVAILABLE, f, &cfg->network, from);
	named |= add_syslog(fd, CAUSE_APPLE_ID_PROBLEM, f, &cfg->apple_id, from);
	if (la->outcome == DIAGNOSE_ATTEMPT_FAILED && !named && la->line >= 0)
		add_line(fd, CAUSE_BACKUP_ATTEMPT_FAILED, f, la->line);
}

void diagnose(const struct device_facts *f, const struct diagnose_config *cfg, int64_t now_unix,
              struct diagnosis *ret)
{
	struct diagnose_last_attempt la;
	struct found fd;
	bool read_values = f->probe == FACTS_PROBE_OK;
	bool stale = false, explained = false;
	int c;

	memset(&fd, 0, sizeof(fd));
	memset(ret, 0, sizeof(*ret));
	ret->age_s = -1;
	if (f->has_last_icloud) {
		/* a backup "in the future" is clock skew between phone and host: call it fresh */
		if (__builtin_sub_overflow(now_unix, f->last_icloud_unix, &ret->age_s))
			ret->age_s = f->last_icloud_unix < 0 ? INT64_MAX : 0;
		if (ret->age_s < 0)
			ret->age_s = 0;
	}

	if ((unsigned)f->pairing < _FACTS_PAIRING_MAX && f->pairing != FACTS_PAIRING_PAIRED)
		add(&fd, CAUSE_NOT_TRUSTED, "%s", pairing_evidence[f->pairing]);
	else if (f->probe == FACTS_PROBE_NOT_TRUSTED)
		add(&fd, CAUSE_NOT_TRUSTED, "probe not_trusted");
	if (f->probe == FACTS_PROBE_LOCKED)
		add(&fd, CAUSE_PASSCODE_REQUIRED, "PasswordProtected (lockdown -17)");
	if (f->last_backup_error == MB_ERROR_PASSCODE_REQUIRED)
		add(&fd, CAUSE_PASSCODE_REQUIRED, "MBErrorDomain 208");

	if (read_values) {
		int cmp;

		if (f->has_icloud_enabled && !f->icloud_enabled)
			add(&fd, CAUSE_ICLOUD_BACKUP_DISABLED, "CloudBackupEnabled=false");
		if (!f->has_last_icloud)
			add(&fd, CAUSE_NEVER_BACKED_UP, "LastCloudBackupDate missing");
		if (cfg->min_ios_version[0] &&
		    diagnose_version_compare(f->ios_version, cfg->min_ios_version, &cmp) == 0 &&
		    cmp < 0) {
			char v[FACTS_STR_MAX], min[sizeof(cfg->min_ios_version)];

			snprintf(v, sizeof(v), "%.*s", (int)sizeof(v) - 1, f->ios_version);
			snprintf(min, sizeof(min), "%.*s", (int)sizeof(min) - 1,
			         cfg->min_ios_version);
			add(&fd, CAUSE_IOS_OUTDATED, "ProductVersion %s < minimum %s", v, min);
		}
		if (f->has_battery && !f->external_connected)
			add(&fd, CAUSE_NOT_ON_POWER, "ExternalConnected=false");
		stale = !f->has_last_icloud || ret->age_s > cfg->stale_after_s;
	}
	/* syslog evidence is independent of the lockdown session */
	diagnose_last_attempt(f, cfg, &la);
	check_lines(&fd, f, cfg, &la);
	if (read_values)
		check_window(&fd, f, cfg, &la, now_unix);

	for (c = 0; c < _CAUSE_MAX; c++)
		if (fd.on[c] && c != CAUSE_NEVER_BACKED_UP)
			explained = true;
	if (stale && !explained)
		add(&fd, CAUSE_UNKNOWN, "stale and no cause identified");

	ret->status = !read_values ? DIAGNOSE_UNKNOWN : stale ? DIAGNOSE_STALE : DIAGNOSE_OK;
	for (c = 0; c < _CAUSE_MAX && ret->n_causes < DIAGNOSE_MAX_CAUSES; c++) {
		struct diagnose_finding *out;

		if (!fd.on[c])
			continue;
		out = &ret->causes[ret->n_causes++];
		out->cause = c;
		memcpy(out->evidence, fd.evidence[c], sizeof(out->evidence));
	}
}
