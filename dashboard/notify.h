/* SPDX-License-Identifier: MIT */
/*
 * notify: delivery of alert notifications to receivers (webhook, Slack, Teams, e-mail). This
 * header is the contract between the alerts engine (alerts.c, the caller) and delivery (the
 * notify slice, which owns it and replaces notify.c).
 */
#ifndef CRADLE_DASH_NOTIFY_H
#define CRADLE_DASH_NOTIFY_H

#include <stdint.h>

struct store;

struct notify_alert {
	const char *alert_id;
	const char *rule;
	const char *state;        /* "firing" | "resolved" */
	const char *subject_kind; /* "udid" | "agent" | "site" | "station" */
	const char *subject;
	const char *site;
	const char *station;
	const char *summary;     /* one line for humans */
	const char *detail_json; /* object */
	int64_t fired_at;        /* Unix s */
	int64_t resolved_at;     /* Unix s, 0 = none */
};

/* Loop thread, inside the caller's store transaction: one queue row per receiver that takes this
 * rule. 0 or -errno. */
int notify_enqueue(struct store *s, const struct notify_alert *a);

#endif
