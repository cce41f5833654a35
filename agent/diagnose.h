/* SPDX-License-Identifier: MIT */
/*
 * diagnose: a pure function (facts, config, now) -> status + causes with evidence.
 * No I/O, no logging, no clock: everything it needs is passed in, so every cause is
 * unit-testable from a table of facts.
 */
#ifndef CRADLE_DIAGNOSE_H
#define CRADLE_DIAGNOSE_H

#include <stdint.h>

#include "facts.h"

#define DIAGNOSE_MAX_CAUSES   10
#define DIAGNOSE_EVIDENCE_MAX 256
#define DIAGNOSE_PATTERNS_MAX 16

enum diagnose_status {
	DIAGNOSE_OK,
	DIAGNOSE_STALE,
	DIAGNOSE_UNKNOWN,
	_DIAGNOSE_STATUS_MAX,
};

/* The v1 vocabulary of docs/diagnosis.md; the wire names come from diagnose_cause_code(). */
enum diagnose_cause {
	CAUSE_ICLOUD_STORAGE_FULL,
	CAUSE_NETWORK_UNAVAILABLE,
	CAUSE_ICLOUD_BACKUP_DISABLED,
	CAUSE_APPLE_ID_PROBLEM,
	CAUSE_IOS_OUTDATED,
	CAUSE_NOT_ON_POWER,
	CAUSE_NEVER_BACKED_UP,
	CAUSE_NOT_TRUSTED,
	CAUSE_PASSCODE_REQUIRED,
	CAUSE_NO_BACKUP_ATTEMPT,     /* added within v1 (issue 12) */
	CAUSE_BACKUP_ATTEMPT_FAILED, /* added within v1 (issue 12) */
	CAUSE_UNKNOWN,
	_CAUSE_MAX,
};

/* Case-insensitive substrings matched against syslog evidence lines, per cause. */
struct diagnose_patterns {
	int n;
	char text[DIAGNOSE_PATTERNS_MAX][64];
};

struct diagnose_config {
	int64_t stale_after_s;    /* default 72 h */
	char min_ios_version[16]; /* "" = no minimum */
	struct diagnose_patterns storage_full, network, apple_id;
	/* what marks a backup attempt's start, success and failure in captured lines */
	struct diagnose_patterns attempt_start, attempt_ok, attempt_failed;
	int64_t backup_window_s; /* default 6 h: docked, on power and watched this long */
};

/* What the captured lines say about the phone's last iCloud backup attempt. */
enum diagnose_attempt {
	DIAGNOSE_ATTEMPT_NONE,    /* no attempt line captured */
	DIAGNOSE_ATTEMPT_RUNNING, /* started, no outcome yet */
	DIAGNOSE_ATTEMPT_OK,
	DIAGNOSE_ATTEMPT_FAILED,
};

struct diagnose_last_attempt {
	enum diagnose_attempt outcome;
	int64_t t_ms; /* when its last line arrived (0 = unknown: a probe-window line) */
	int line;     /* index in the merged lines of the outcome line, -1 when none */
	int first;    /* index of the attempt's first line */
};

struct diagnose_finding {
	enum diagnose_cause cause;
	char evidence[DIAGNOSE_EVIDENCE_MAX];
};

struct diagnosis {
	enum diagnose_status status;
	int64_t age_s; /* seconds since the last iCloud backup, -1 when never or unknown */
	int n_causes;
	struct diagnose_finding causes[DIAGNOSE_MAX_CAUSES];
};

/* Fills cfg with the documented defaults (docs/diagnosis.md, agent/README.md). */
void diagnose_config_defaults(struct diagnose_config *cfg);

/* now_unix: wall-clock seconds. Never fails. */
void diagnose(const struct device_facts *facts, const struct diagnose_config *cfg, int64_t now_unix,
              struct diagnosis *ret);

/*
 * Dotted numeric version compare ("15.7" < "16.0" < "16.0.1" = "16.0.1.0"): components are
 * compared as integers, missing trailing components count as 0, a non-digit suffix inside a
 * component ("17.0b2") is ignored, at most 8 components are read. Returns 0 and sets *ret_cmp to
 * -1/0/1, or -1 when either string does not start with a digit (then no ios_outdated cause).
 */
int diagnose_version_compare(const char *a, const char *b, int *ret_cmp);

/*
 * The last attempt in facts' captured lines (ring first, else the probe window's lines):
 * the last line matching a start, ok or failed pattern, and for a start the outcome that
 * follows it. Used by diagnose(); exported for tests and tools.
 */
void diagnose_last_attempt(const struct device_facts *f, const struct diagnose_config *cfg,
                           struct diagnose_last_attempt *ret);

const char *diagnose_status_name(enum diagnose_status s);
const char *diagnose_cause_code(enum diagnose_cause c); /* "icloud_storage_full", … */
const char *diagnose_cause_remediation(enum diagnose_cause c);
const char *
diagnose_cause_complexity(enum diagnose_cause c); /* "low" | "medium" | "high" | "none" */

#endif
