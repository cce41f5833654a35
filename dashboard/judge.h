/* SPDX-License-Identifier: MIT */
/*
 * judge: the dashboard's own verdict on a phone, with the dashboard's clock. An agent's retained
 * state is a snapshot from when it was published: a phone that left its cart five days ago
 * still has an `ok` from five days ago. The dashboard therefore never shows the agent's status
 * as is; it recomputes it from the facts and now. The rule (documented in dashboard/README.md):
 *
 *   missing  the phone is not docked now (not attached, or its agent is not online) and was
 *            last seen docked more than missing_after ago;
 *   unknown  otherwise, when the dashboard has no backup facts for it (no probe succeeded
 *            and no last_icloud is known);
 *   stale    otherwise, when last_icloud is null (never backed up) or now - last_icloud is
 *            more than stale_after (the phone's site's override, else the global value);
 *   ok       otherwise.
 *
 * Pure functions, no state: callable from any thread. judge_sql_register() makes the same rule
 * available inside SQL (cradle_status(...)), so filters and counts in queries cannot disagree
 * with the C code.
 */
#ifndef CRADLE_DASH_JUDGE_H
#define CRADLE_DASH_JUDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct sqlite3;

enum judge_status {
	JUDGE_OK,
	JUDGE_STALE,
	JUDGE_UNKNOWN,
	JUDGE_MISSING,
	_JUDGE_STATUS_MAX,
};

/* What the judge looks at, as the store keeps it for a phone. */
struct judge_facts {
	const char *site;     /* "" or NULL: none */
	bool docked;          /* attached now, and its agent online */
	int64_t last_seen;    /* Unix s the phone was last seen docked (now while docked) */
	bool has_facts;       /* a probe succeeded at least once (backup facts are known) */
	bool has_last_icloud; /* false: never backed up (when has_facts) */
	int64_t last_icloud;  /* Unix s */
};

enum judge_status judge_status(const struct dash_config *cfg, const struct judge_facts *f,
                               int64_t now);

/* "ok", "stale", "unknown", "missing"; NULL when out of range. */
const char *judge_status_name(enum judge_status s);
/* -EINVAL for an unknown name. */
int judge_status_from_name(const char *name, enum judge_status *ret);

/*
 * Registers cradle_status(site, docked, last_seen, has_facts, last_icloud, now) -> 'ok' | ...
 * (last_icloud NULL = never) on db, bound to cfg (borrowed; must outlive db). 0 or -EIO.
 */
int judge_sql_register(struct sqlite3 *db, const struct dash_config *cfg);

#endif
