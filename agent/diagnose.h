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

const char *diagnose_status_name(enum diagnose_status s);
const char *diagnose_cause_code(enum diagnose_cause c); /* "icloud_storage_full", … */
const char *diagnose_cause_remediation(enum diagnose_cause c);
const char *
diagnose_cause_complexity(enum diagnose_cause c); /* "low" | "medium" | "high" | "none" */

#endif
