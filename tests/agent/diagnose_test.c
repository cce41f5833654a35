/* SPDX-License-Identifier: MIT */
/*
 * diagnose: every cause from a table of facts, combinations, thresholds, and hostile facts.
 * Each row starts from a healthy, fresh, on-power phone and changes what the row is about.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "diagnose.h"
#include "idev.h"
#include "macro.h"

#define NOW  1764000000LL /* 2025-11-24T16:00:00Z */
#define HOUR 3600LL
#define END  (-1)

static void healthy(struct device_facts *f)
{
	memset(f, 0, sizeof(*f));
	snprintf(f->udid, sizeof(f->udid), "00008110-001A2B3C4D5E801E");
	f->probed_at_ms = NOW * 1000;
	f->probe = FACTS_PROBE_OK;
	f->pairing = FACTS_PAIRING_PAIRED;
	snprintf(f->product_type, sizeof(f->product_type), "iPhone14,5");
	snprintf(f->ios_version, sizeof(f->ios_version), "17.5.1");
	f->has_icloud_enabled = true;
	f->icloud_enabled = true;
	f->has_last_icloud = true;
	f->last_icloud_unix = NOW - 5 * HOUR;
	f->has_battery = true;
	f->battery_pct = 80;
	f->external_connected = true;
}

static void add_line(struct device_facts *f, const char *line)
{
	snprintf(f->syslog[f->n_syslog++], FACTS_LINE_MAX, "%s", line);
}

/* mutations, one per row */
static void m_none(struct device_facts *f)
{
	(void)f;
}
static void m_disabled(struct device_facts *f)
{
	f->icloud_enabled = false;
}
static void m_disabled_stale(struct device_facts *f)
{
	f->icloud_enabled = false;
	f->last_icloud_unix = NOW - 96 * HOUR;
}
static void m_never(struct device_facts *f)
{
	f->has_last_icloud = false;
}
static void m_never_disabled(struct device_facts *f)
{
	f->has_last_icloud = false;
	f->icloud_enabled = false;
}
static void m_outdated(struct device_facts *f)
{
	snprintf(f->ios_version, sizeof(f->ios_version), "15.7");
}
static void m_outdated_stale(struct device_facts *f)
{
	snprintf(f->ios_version, sizeof(f->ios_version), "15.8.3");
	f->last_icloud_unix = NOW - 200 * HOUR;
}
static void m_no_power_stale(struct device_facts *f)
{
	f->external_connected = false;
	f->last_icloud_unix = NOW - 80 * HOUR;
}
static void m_no_power_fresh(struct device_facts *f)
{
	f->external_connected = false;
}
static void m_no_battery_info(struct device_facts *f)
{
	f->has_battery = false;
	f->external_connected = false;
}
static void m_stale(struct device_facts *f)
{
	f->last_icloud_unix = NOW - 73 * HOUR;
}
static void m_at_threshold(struct device_facts *f)
{
	f->last_icloud_unix = NOW - 72 * HOUR;
}
static void m_past_threshold(struct device_facts *f)
{
	f->last_icloud_unix = NOW - 72 * HOUR - 1;
}
static void m_future(struct device_facts *f)
{
	f->last_icloud_unix = NOW + 600;
}
static void m_trust_pending(struct device_facts *f)
{
	f->probe = FACTS_PROBE_NOT_TRUSTED;
	f->pairing = FACTS_PAIRING_TRUST_PENDING;
	f->has_icloud_enabled = f->has_last_icloud = f->has_battery = false;
}
static void m_unpaired(struct device_facts *f)
{
	m_trust_pending(f);
	f->pairing = FACTS_PAIRING_UNPAIRED;
}
static void m_denied(struct device_facts *f)
{
	m_trust_pending(f);
	f->pairing = FACTS_PAIRING_DENIED;
}
static void m_invalid(struct device_facts *f)
{
	m_trust_pending(f);
	f->pairing = FACTS_PAIRING_INVALID;
}
static void m_locked(struct device_facts *f)
{
	f->probe = FACTS_PROBE_LOCKED;
	f->has_icloud_enabled = f->has_last_icloud = f->has_battery = false;
}
static void m_gone(struct device_facts *f)
{
	f->probe = FACTS_PROBE_GONE;
	f->has_icloud_enabled = f->has_last_icloud = f->has_battery = false;
}
static void m_timeout(struct device_facts *f)
{
	f->probe = FACTS_PROBE_TIMEOUT;
	f->has_icloud_enabled = f->has_last_icloud = f->has_battery = false;
}
static void m_error(struct device_facts *f)
{
	f->probe = FACTS_PROBE_ERROR;
	snprintf(f->error_text, sizeof(f->error_text), "lockdown error -8");
}
static void m_timeout_values_read(struct device_facts *f)
{
	/* values present but the probe did not finish: still unknown, no invented staleness */
	f->probe = FACTS_PROBE_TIMEOUT;
	f->last_icloud_unix = NOW - 500 * HOUR;
}
static void m_passcode_208(struct device_facts *f)
{
	f->last_backup_error = 208;
	f->last_icloud_unix = NOW - 100 * HOUR;
}
static void m_other_mb_error(struct device_facts *f)
{
	f->last_backup_error = 205;
	f->last_icloud_unix = NOW - 100 * HOUR;
}
static void m_storage(struct device_facts *f)
{
	f->last_icloud_unix = NOW - 100 * HOUR;
	add_line(f, "Nov 24 15:01:02 iPhone backupd[321] <Notice>: starting backup");
	add_line(f, "Nov 24 15:01:09 iPhone backupd[321] <Error>: Backup failed: Not Enough iCloud "
	            "Storage to back up");
}
static void m_quota(struct device_facts *f)
{
	f->last_icloud_unix = NOW - 100 * HOUR;
	add_line(f, "backupd[1] <Error>: MBErrorDomain/Code=303 QUOTA exceeded");
}
static void m_network(struct device_facts *f)
{
	f->last_icloud_unix = NOW - 100 * HOUR;
	add_line(f, "backupd[321] <Error>: Error Domain=NSURLErrorDomain Code=-1009 \"The Internet "
	            "connection appears to be offline.\"");
}
static void m_apple_id(struct device_facts *f)
{
	f->last_icloud_unix = NOW - 100 * HOUR;
	add_line(f, "backupd[321] <Error>: AKAuthenticationError Code=-7005 account not signed in");
}
static void m_syslog_no_match(struct device_facts *f)
{
	f->last_icloud_unix = NOW - 100 * HOUR;
	add_line(f, "backupd[321] <Notice>: Scheduling next backup");
}
static void m_syslog_fresh(struct device_facts *f)
{
	add_line(f, "backupd[321] <Error>: request timed out");
}
static void m_syslog_gone(struct device_facts *f)
{
	m_gone(f);
	add_line(f, "backupd[321] <Error>: not enough storage");
}
static void m_everything(struct device_facts *f)
{
	f->icloud_enabled = false;
	f->last_icloud_unix = NOW - 1000 * HOUR;
	snprintf(f->ios_version, sizeof(f->ios_version), "14.8");
	f->external_connected = false;
	f->last_backup_error = 208;
	add_line(f, "backupd: insufficient storage");
	add_line(f, "backupd: network is down");
	add_line(f, "backupd: Apple ID needs authentication");
}

struct row {
	const char *name;
	void (*mutate)(struct device_facts *f);
	enum diagnose_status status;
	int64_t age_s;
	int causes[DIAGNOSE_MAX_CAUSES + 1]; /* END-terminated, in vocabulary order */
	const char *evidence;                /* substring of the first cause's evidence */
};

static const struct row rows[] = {
	{ "healthy", m_none, DIAGNOSE_OK, 5 * HOUR, { END }, NULL },
	{ "disabled, fresh: early warning",
	  m_disabled,
	  DIAGNOSE_OK,
	  5 * HOUR,
	  { CAUSE_ICLOUD_BACKUP_DISABLED, END },
	  "CloudBackupEnabled=false" },
	{ "disabled, stale",
	  m_disabled_stale,
	  DIAGNOSE_STALE,
	  96 * HOUR,
	  { CAUSE_ICLOUD_BACKUP_DISABLED, END },
	  "CloudBackupEnabled=false" },
	{ "never backed up",
	  m_never,
	  DIAGNOSE_STALE,
	  -1,
	  { CAUSE_NEVER_BACKED_UP, CAUSE_UNKNOWN, END },
	  "LastCloudBackupDate missing" },
	{ "never + disabled",
	  m_never_disabled,
	  DIAGNOSE_STALE,
	  -1,
	  { CAUSE_ICLOUD_BACKUP_DISABLED, CAUSE_NEVER_BACKED_UP, END },
	  "CloudBackupEnabled=false" },
	{ "ios outdated, fresh",
	  m_outdated,
	  DIAGNOSE_OK,
	  5 * HOUR,
	  { CAUSE_IOS_OUTDATED, END },
	  "ProductVersion 15.7 < minimum 16.0" },
	{ "ios outdated, stale",
	  m_outdated_stale,
	  DIAGNOSE_STALE,
	  200 * HOUR,
	  { CAUSE_IOS_OUTDATED, END },
	  "ProductVersion 15.8.3 < minimum 16.0" },
	{ "not on power, stale",
	  m_no_power_stale,
	  DIAGNOSE_STALE,
	  80 * HOUR,
	  { CAUSE_NOT_ON_POWER, END },
	  "ExternalConnected=false" },
	{ "not on power, fresh: early warning",
	  m_no_power_fresh,
	  DIAGNOSE_OK,
	  5 * HOUR,
	  { CAUSE_NOT_ON_POWER, END },
	  "ExternalConnected=false" },
	{ "no battery domain: no power claim",
	  m_no_battery_info,
	  DIAGNOSE_OK,
	  5 * HOUR,
	  { END },
	  NULL },
	{ "stale, nothing found",
	  m_stale,
	  DIAGNOSE_STALE,
	  73 * HOUR,
	  { CAUSE_UNKNOWN, END },
	  "no cause" },
	{ "exactly at threshold", m_at_threshold, DIAGNOSE_OK, 72 * HOUR, { END }, NULL },
	{ "one second past threshold",
	  m_past_threshold,
	  DIAGNOSE_STALE,
	  72 * HOUR + 1,
	  { CAUSE_UNKNOWN, END },
	  NULL },
	{ "backup in the future (clock skew)", m_future, DIAGNOSE_OK, 0, { END }, NULL },
	{ "trust pending",
	  m_trust_pending,
	  DIAGNOSE_UNKNOWN,
	  -1,
	  { CAUSE_NOT_TRUSTED, END },
	  "-19" },
	{ "unpaired", m_unpaired, DIAGNOSE_UNKNOWN, -1, { CAUSE_NOT_TRUSTED, END }, "pair record" },
	{ "denied", m_denied, DIAGNOSE_UNKNOWN, -1, { CAUSE_NOT_TRUSTED, END }, "-18" },
	{ "pairing invalid", m_invalid, DIAGNOSE_UNKNOWN, -1, { CAUSE_NOT_TRUSTED, END }, "-21" },
	{ "locked",
	  m_locked,
	  DIAGNOSE_UNKNOWN,
	  -1,
	  { CAUSE_PASSCODE_REQUIRED, END },
	  "PasswordProtected" },
	{ "gone", m_gone, DIAGNOSE_UNKNOWN, -1, { END }, NULL },
	{ "timeout", m_timeout, DIAGNOSE_UNKNOWN, -1, { END }, NULL },
	{ "error", m_error, DIAGNOSE_UNKNOWN, 5 * HOUR, { END }, NULL },
	{ "timeout with values",
	  m_timeout_values_read,
	  DIAGNOSE_UNKNOWN,
	  500 * HOUR,
	  { END },
	  NULL },
	{ "local backup waits for passcode",
	  m_passcode_208,
	  DIAGNOSE_STALE,
	  100 * HOUR,
	  { CAUSE_PASSCODE_REQUIRED, END },
	  "MBErrorDomain 208" },
	{ "other MB error: no passcode claim",
	  m_other_mb_error,
	  DIAGNOSE_STALE,
	  100 * HOUR,
	  { CAUSE_UNKNOWN, END },
	  NULL },
	{ "syslog: storage full",
	  m_storage,
	  DIAGNOSE_STALE,
	  100 * HOUR,
	  { CAUSE_ICLOUD_STORAGE_FULL, END },
	  "backupd: Nov 24 15:01:09 iPhone backupd[321] <Error>" },
	{ "syslog: quota",
	  m_quota,
	  DIAGNOSE_STALE,
	  100 * HOUR,
	  { CAUSE_ICLOUD_STORAGE_FULL, END },
	  "QUOTA exceeded" },
	{ "syslog: network",
	  m_network,
	  DIAGNOSE_STALE,
	  100 * HOUR,
	  { CAUSE_NETWORK_UNAVAILABLE, END },
	  "NSURLErrorDomain Code=-1009" },
	{ "syslog: apple id",
	  m_apple_id,
	  DIAGNOSE_STALE,
	  100 * HOUR,
	  { CAUSE_APPLE_ID_PROBLEM, END },
	  "AKAuthenticationError" },
	{ "syslog: no match",
	  m_syslog_no_match,
	  DIAGNOSE_STALE,
	  100 * HOUR,
	  { CAUSE_UNKNOWN, END },
	  NULL },
	{ "syslog on a fresh phone: warning",
	  m_syslog_fresh,
	  DIAGNOSE_OK,
	  5 * HOUR,
	  { CAUSE_NETWORK_UNAVAILABLE, END },
	  "timed out" },
	{ "syslog on a gone phone",
	  m_syslog_gone,
	  DIAGNOSE_UNKNOWN,
	  -1,
	  { CAUSE_ICLOUD_STORAGE_FULL, END },
	  "not enough storage" },
	{ "everything at once",
	  m_everything,
	  DIAGNOSE_STALE,
	  1000 * HOUR,
	  { CAUSE_ICLOUD_STORAGE_FULL, CAUSE_NETWORK_UNAVAILABLE, CAUSE_ICLOUD_BACKUP_DISABLED,
	    CAUSE_APPLE_ID_PROBLEM, CAUSE_IOS_OUTDATED, CAUSE_NOT_ON_POWER, CAUSE_PASSCODE_REQUIRED,
	    END },
	  "insufficient storage" },
};

static void config(struct diagnose_config *cfg)
{
	diagnose_config_defaults(cfg);
	snprintf(cfg->min_ios_version, sizeof(cfg->min_ios_version), "16.0");
}

static void test_table(void **state)
{
	struct diagnose_config cfg;
	size_t i;

	(void)state;
	config(&cfg);
	for (i = 0; i < ARRAY_SIZE(rows); i++) {
		const struct row *r = &rows[i];
		struct device_facts f;
		struct diagnosis dx;
		int n = 0, k;

		healthy(&f);
		r->mutate(&f);
		memset(&dx, 0xa5, sizeof(dx)); /* diagnose must overwrite everything */
		diagnose(&f, &cfg, NOW, &dx);
		while (r->causes[n] != END)
			n++;
		if (dx.status != r->status || dx.n_causes != n || dx.age_s != r->age_s)
			fail_msg("row '%s': status %s causes %d age %lld, want %s %d %lld", r->name,
			         diagnose_status_name(dx.status), dx.n_causes, (long long)dx.age_s,
			         diagnose_status_name(r->status), n, (long long)r->age_s);
		for (k = 0; k < n; k++) {
			if ((int)dx.causes[k].cause != r->causes[k])
				fail_msg("row '%s': cause %d is %s, want %s", r->name, k,
				         diagnose_cause_code(dx.causes[k].cause),
				         diagnose_cause_code(r->causes[k]));
			if (dx.causes[k].evidence[0] == '\0')
				fail_msg("row '%s': cause %d has no evidence", r->name, k);
		}
		if (r->evidence && !strstr(dx.causes[0].evidence, r->evidence))
			fail_msg("row '%s': evidence '%s' lacks '%s'", r->name,
			         dx.causes[0].evidence, r->evidence);
	}
}

static void test_evidence_exact(void **state)
{
	struct diagnose_config cfg;
	struct device_facts f;
	struct diagnosis dx;

	(void)state;
	config(&cfg);
	healthy(&f);
	m_everything(&f);
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.n_causes, 7);
	assert_string_equal(dx.causes[0].evidence, "backupd: backupd: insufficient storage");
	assert_string_equal(dx.causes[1].evidence, "backupd: backupd: network is down");
	assert_string_equal(dx.causes[2].evidence, "CloudBackupEnabled=false");
	assert_string_equal(dx.causes[3].evidence,
	                    "backupd: backupd: Apple ID needs authentication");
	assert_string_equal(dx.causes[4].evidence, "ProductVersion 14.8 < minimum 16.0");
	assert_string_equal(dx.causes[5].evidence, "ExternalConnected=false");
	assert_string_equal(dx.causes[6].evidence, "MBErrorDomain 208");
}

static void test_stale_after_config(void **state)
{
	struct diagnose_config cfg;
	struct device_facts f;
	struct diagnosis dx;

	(void)state;
	config(&cfg);
	healthy(&f);
	f.last_icloud_unix = NOW - 25 * HOUR;
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.status, DIAGNOSE_OK);
	cfg.stale_after_s = 24 * HOUR;
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.status, DIAGNOSE_STALE);
	assert_int_equal(dx.age_s, 25 * HOUR);
}

static void test_min_ios(void **state)
{
	struct diagnose_config cfg;
	struct device_facts f;
	struct diagnosis dx;

	(void)state;
	config(&cfg);
	healthy(&f);
	snprintf(f.ios_version, sizeof(f.ios_version), "9.3.5");
	cfg.min_ios_version[0] = '\0'; /* no minimum configured */
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.n_causes, 0);
	config(&cfg);
	f.ios_version[0] = '\0'; /* version unknown: not "outdated" */
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.n_causes, 0);
	snprintf(f.ios_version, sizeof(f.ios_version), "16.0");
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.n_causes, 0);
	snprintf(cfg.min_ios_version, sizeof(cfg.min_ios_version), "16.0.1");
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.n_causes, 1);
	assert_int_equal(dx.causes[0].cause, CAUSE_IOS_OUTDATED);
	assert_string_equal(dx.causes[0].evidence, "ProductVersion 16.0 < minimum 16.0.1");
}

static void test_version_compare(void **state)
{
	static const struct {
		const char *a, *b;
		int r, cmp;
	} t[] = {
		{ "15.7", "16.0", 0, -1 },    { "16.0", "15.7", 0, 1 },
		{ "16", "16.0", 0, 0 },       { "16.0.0", "16", 0, 0 },
		{ "16.0.1", "16.0", 0, 1 },   { "9.3", "10.0", 0, -1 },
		{ "17.10", "17.9", 0, 1 },    { "17.0b2", "17.0", 0, 0 },
		{ "18.4.1", "18.4.1", 0, 0 }, { "", "16.0", -1, 0 },
		{ "beta", "16.0", -1, 0 },    { "16.0", "x", -1, 0 },
		{ "16..1", "16.0.1", -1, 0 }, { "99999999999.1", "1", 0, 1 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < ARRAY_SIZE(t); i++) {
		int cmp = 42, r = diagnose_version_compare(t[i].a, t[i].b, &cmp);

		if (r != t[i].r || (r == 0 && cmp != t[i].cmp))
			fail_msg("compare('%s', '%s') = %d/%d, want %d/%d", t[i].a, t[i].b, r, cmp,
			         t[i].r, t[i].cmp);
	}
	assert_int_equal(diagnose_version_compare(NULL, "1", &(int){ 0 }), -1);
}

static void test_patterns_from_config(void **state)
{
	struct diagnose_config cfg;
	struct device_facts f;
	struct diagnosis dx;

	(void)state;
	config(&cfg);
	healthy(&f);
	f.last_icloud_unix = NOW - 100 * HOUR;
	add_line(&f, "backupd: iOS 27 says: Speicher voll");
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.causes[0].cause, CAUSE_UNKNOWN); /* defaults do not know the wording */
	snprintf(cfg.storage_full.text[cfg.storage_full.n++], sizeof(cfg.storage_full.text[0]),
	         "SPEICHER VOLL");
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.n_causes, 1);
	assert_int_equal(dx.causes[0].cause, CAUSE_ICLOUD_STORAGE_FULL);
	/* no patterns at all: syslog evidence is never matched, an empty pattern never matches */
	cfg.storage_full.n = 1;
	cfg.storage_full.text[0][0] = '\0';
	cfg.network.n = cfg.apple_id.n = 0;
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.causes[0].cause, CAUSE_UNKNOWN);
}

static void test_defaults_and_names(void **state)
{
	static const char *const codes[_CAUSE_MAX] = {
		"icloud_storage_full", "network_unavailable",   "icloud_backup_disabled",
		"apple_id_problem",    "ios_outdated",          "not_on_power",
		"never_backed_up",     "not_trusted",           "passcode_required",
		"no_backup_attempt",   "backup_attempt_failed", "unknown",
	};
	static const char *const complexity[_CAUSE_MAX] = {
		"low",  "low", "medium", "medium", "high",   "low",
		"none", "low", "low",    "medium", "medium", "none",
	};
	struct diagnose_config cfg;
	int c, i;
	bool quota = false;

	(void)state;
	diagnose_config_defaults(&cfg);
	assert_int_equal(cfg.stale_after_s, 72 * HOUR);
	assert_string_equal(cfg.min_ios_version, "");
	assert_true(cfg.storage_full.n > 0 && cfg.network.n > 0 && cfg.apple_id.n > 0);
	for (i = 0; i < cfg.storage_full.n; i++)
		quota |= strcmp(cfg.storage_full.text[i], "quota") == 0;
	assert_true(quota);
	for (c = 0; c < _CAUSE_MAX; c++) {
		assert_string_equal(diagnose_cause_code(c), codes[c]);
		assert_string_equal(diagnose_cause_complexity(c), complexity[c]);
		assert_non_null(diagnose_cause_remediation(c));
		assert_true(strlen(diagnose_cause_remediation(c)) > 10);
	}
	assert_string_equal(diagnose_cause_remediation(CAUSE_ICLOUD_BACKUP_DISABLED),
	                    "switch iCloud Backup on: backup.icloud.enable over USB");
	assert_null(diagnose_cause_code(_CAUSE_MAX));
	assert_null(diagnose_cause_code((enum diagnose_cause) - 1));
	assert_string_equal(diagnose_status_name(DIAGNOSE_STALE), "stale");
	assert_null(diagnose_status_name(_DIAGNOSE_STATUS_MAX));
}

/* Facts arrive from another process: unterminated strings and wild counts must not hurt. */
static void test_hostile_facts(void **state)
{
	struct diagnose_config cfg;
	struct device_facts f;
	struct diagnosis dx;

	(void)state;
	config(&cfg);
	memset(&f, 'A', sizeof(f));
	/* bools must hold 0/1 (anything else is undefined behaviour before diagnose runs) */
	f.has_password_protected = f.password_protected = f.has_icloud_enabled = true;
	f.icloud_enabled = f.has_last_local = f.has_will_encrypt = f.will_encrypt = true;
	f.has_requires_encryption = f.requires_encryption = f.has_battery = true;
	f.external_connected = f.charging = f.has_storage = true;
	f.probe = FACTS_PROBE_OK;
	f.pairing = FACTS_PAIRING_PAIRED;
	f.has_last_icloud = true;
	f.last_icloud_unix = INT64_MIN;
	f.n_syslog = 1000;
	f.capture_on = true;
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.status, DIAGNOSE_STALE);
	assert_true(dx.n_causes <= DIAGNOSE_MAX_CAUSES);
	f.n_syslog = -5;
	f.pairing = (enum facts_pairing)77;
	f.probe = (enum facts_probe)99;
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.status, DIAGNOSE_UNKNOWN);
	memset(&cfg, 'B', sizeof(cfg));
	cfg.stale_after_s = 0;
	cfg.storage_full.n = cfg.network.n = cfg.apple_id.n = 1000;
	cfg.attempt_start.n = cfg.attempt_ok.n = cfg.attempt_failed.n = 1000;
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.status, DIAGNOSE_UNKNOWN);
	f.n_ring = -3;
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.status, DIAGNOSE_UNKNOWN);
}

/* ---- evidence capture: the ring and the docking window ---- */

#define RL "Dec  3 02:10:04 iPhone backupd[412] <Notice>: "

static void ring(struct device_facts *f, int64_t t_s, const char *msg)
{
	f->ring[f->n_ring].t_ms = t_s * 1000;
	snprintf(f->ring[f->n_ring].text, FACTS_LINE_MAX, RL "%s", msg);
	f->n_ring++;
}

/* A stale phone docked 7 h ago, on power and captured since. */
static void docked(struct device_facts *f)
{
	healthy(f);
	f->last_icloud_unix = NOW - 100 * HOUR;
	f->capture_on = true;
	f->docked_at_unix = f->on_power_since_unix = f->capture_since_unix = NOW - 7 * HOUR;
	f->has_password_protected = f->password_protected = true;
}

static bool has(const struct diagnosis *dx, enum diagnose_cause c, const char **ev)
{
	for (int i = 0; i < dx->n_causes; i++)
		if (dx->causes[i].cause == c) {
			if (ev)
				*ev = dx->causes[i].evidence;
			return true;
		}
	return false;
}

static void test_capture_attempts(void **state)
{
	struct diagnose_config cfg;
	struct diagnose_last_attempt la;
	struct device_facts f;
	struct diagnosis dx;
	const char *ev = NULL;

	(void)state;
	config(&cfg);
	/* a failed attempt naming the quota: storage, quoted with its time */
	docked(&f);
	ring(&f, NOW - 3 * HOUR, "Starting backup");
	ring(&f, NOW - 3 * HOUR + 60, "Backup failed: not enough iCloud storage");
	diagnose_last_attempt(&f, &cfg, &la);
	assert_int_equal(la.outcome, DIAGNOSE_ATTEMPT_FAILED);
	assert_int_equal(la.first, 0);
	assert_int_equal(la.line, 1);
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.status, DIAGNOSE_STALE);
	assert_true(has(&dx, CAUSE_ICLOUD_STORAGE_FULL, &ev));
	assert_string_equal(ev, "backupd 2025-11-24T13:01:00Z: " RL
	                        "Backup failed: not enough iCloud storage");
	assert_false(has(&dx, CAUSE_BACKUP_ATTEMPT_FAILED, NULL));
	assert_false(has(&dx, CAUSE_UNKNOWN, NULL));
	assert_false(has(&dx, CAUSE_NO_BACKUP_ATTEMPT, NULL)); /* an attempt was seen */

	/* a failure without a known reason: backup_attempt_failed, quoting it */
	docked(&f);
	ring(&f, NOW - 2 * HOUR, "Backup started");
	ring(&f, NOW - 2 * HOUR + 5, "Backup failed: MBErrorDomain 999");
	diagnose(&f, &cfg, NOW, &dx);
	assert_true(has(&dx, CAUSE_BACKUP_ATTEMPT_FAILED, &ev));
	assert_string_equal(ev,
	                    "backupd 2025-11-24T14:00:05Z: " RL "Backup failed: MBErrorDomain 999");
	assert_false(has(&dx, CAUSE_UNKNOWN, NULL));

	/* an older failure followed by a success: history, no cause from it */
	docked(&f);
	ring(&f, NOW - 5 * HOUR, "Backup failed: network connection was lost");
	ring(&f, NOW - 1 * HOUR, "Starting backup");
	ring(&f, NOW - 1 * HOUR + 300, "Backup succeeded");
	diagnose_last_attempt(&f, &cfg, &la);
	assert_int_equal(la.outcome, DIAGNOSE_ATTEMPT_OK);
	assert_int_equal(la.first, 1);
	diagnose(&f, &cfg, NOW, &dx);
	assert_false(has(&dx, CAUSE_NETWORK_UNAVAILABLE, NULL));
	assert_false(has(&dx, CAUSE_BACKUP_ATTEMPT_FAILED, NULL));

	/* the ring wins over the probe window's lines; a running attempt has no outcome yet */
	docked(&f);
	snprintf(f.syslog[f.n_syslog++], FACTS_LINE_MAX, RL "Backup failed: quota");
	ring(&f, NOW - 600, "Starting iCloud backup");
	diagnose_last_attempt(&f, &cfg, &la);
	assert_int_equal(la.outcome, DIAGNOSE_ATTEMPT_RUNNING);
	diagnose(&f, &cfg, NOW, &dx);
	assert_false(has(&dx, CAUSE_ICLOUD_STORAGE_FULL, NULL));
	assert_true(has(&dx, CAUSE_UNKNOWN, NULL));
}

/* The capture's privacy filter (agent/idev.c): the process of the header decides. */
static void test_capture_filter(void **state)
{
	(void)state;
	assert_true(idev_syslog_line_relevant("Dec  3 02:10:04 iPhone backupd[412] <Error>: x"));
	assert_true(idev_syslog_line_relevant("Dec  3 02:10:04 Anna's iPhone BackupAgent2[9] "
	                                      "<Notice>: INFO: Backup status"));
	assert_true(idev_syslog_line_relevant("Dec  3 02:10:04 iPhone backupd(CloudKit)[412] "
	                                      "<Notice>: y"));
	assert_true(
	        idev_syslog_line_relevant("Dec  3 02:10:04 iPhone MobileBackup[7] <Notice>: z"));
	/* another process mentioning backupd, a message with brackets, no header at all */
	assert_false(idev_syslog_line_relevant("Dec  3 02:10:04 iPhone SpringBoard[58] <Notice>: "
	                                       "backupd[412] asked for the lock state"));
	assert_false(idev_syslog_line_relevant("Dec  3 02:10:04 iPhone locationd[77] <Notice>: "
	                                       "client backupd[3] denied"));
	assert_false(idev_syslog_line_relevant("backupd is great"));
	assert_false(idev_syslog_line_relevant(""));
	assert_false(idev_syslog_line_relevant("Dec  3 02:10:04 iPhone [412] <Notice>: a"));
}

static void test_docking_window(void **state)
{
	struct diagnose_config cfg;
	struct device_facts f;
	struct diagnosis dx;
	const char *ev = NULL;

	(void)state;
	config(&cfg);
	docked(&f);
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.status, DIAGNOSE_STALE);
	assert_true(has(&dx, CAUSE_NO_BACKUP_ATTEMPT, &ev));
	assert_string_equal(ev, "docked, on power and watched since 2025-11-24T09:00:00Z "
	                        "(window 6h, passcode set): no backup attempt seen");
	assert_false(has(&dx, CAUSE_UNKNOWN, NULL));

	/* the window is the latest of dock, power and capture: power came 2 h ago */
	docked(&f);
	f.on_power_since_unix = NOW - 2 * HOUR;
	diagnose(&f, &cfg, NOW, &dx);
	assert_false(has(&dx, CAUSE_NO_BACKUP_ATTEMPT, NULL));
	assert_true(has(&dx, CAUSE_UNKNOWN, NULL));
	cfg.backup_window_s = 90 * 60 + 30;
	diagnose(&f, &cfg, NOW, &dx);
	assert_true(has(&dx, CAUSE_NO_BACKUP_ATTEMPT, &ev));
	assert_non_null(strstr(ev, "(window 1h30m30s, passcode set)"));
	config(&cfg);

	/* no capture, never on power, iCloud Backup off, a backup inside the window: no code */
	docked(&f);
	f.capture_on = false;
	diagnose(&f, &cfg, NOW, &dx);
	assert_false(has(&dx, CAUSE_NO_BACKUP_ATTEMPT, NULL));
	docked(&f);
	f.on_power_since_unix = 0;
	diagnose(&f, &cfg, NOW, &dx);
	assert_false(has(&dx, CAUSE_NO_BACKUP_ATTEMPT, NULL));
	docked(&f);
	f.icloud_enabled = false;
	diagnose(&f, &cfg, NOW, &dx);
	assert_false(has(&dx, CAUSE_NO_BACKUP_ATTEMPT, NULL));
	assert_true(has(&dx, CAUSE_ICLOUD_BACKUP_DISABLED, NULL));
	docked(&f);
	f.last_icloud_unix = NOW - HOUR; /* fresh: no cause, status ok */
	diagnose(&f, &cfg, NOW, &dx);
	assert_int_equal(dx.status, DIAGNOSE_OK);
	assert_int_equal(dx.n_causes, 0);

	/* an attempt line inside the window (even one without an outcome) is an attempt */
	docked(&f);
	ring(&f, NOW - HOUR, "Starting backup");
	diagnose(&f, &cfg, NOW, &dx);
	assert_false(has(&dx, CAUSE_NO_BACKUP_ATTEMPT, NULL));
	/* one from before the window is not */
	docked(&f);
	f.n_ring = 0;
	ring(&f, NOW - 30 * HOUR, "Backup succeeded");
	diagnose(&f, &cfg, NOW, &dx);
	assert_true(has(&dx, CAUSE_NO_BACKUP_ATTEMPT, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_evidence_exact),
		cmocka_unit_test(test_stale_after_config),
		cmocka_unit_test(test_min_ios),
		cmocka_unit_test(test_version_compare),
		cmocka_unit_test(test_patterns_from_config),
		cmocka_unit_test(test_defaults_and_names),
		cmocka_unit_test(test_hostile_facts),
		cmocka_unit_test(test_capture_attempts),
		cmocka_unit_test(test_docking_window),
		cmocka_unit_test(test_capture_filter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
