/* SPDX-License-Identifier: MIT */
/*
 * notify: PLACEHOLDER until delivery lands (the notify slice replaces this file entirely). It
 * queues nothing and sends nothing: it only counts the notifications handed to it and logs each
 * at debug level, so the alerts engine can be built and tested on its own.
 */
#include "notify.h"

#include <errno.h>
#include <stdatomic.h>

#include "log.h"

static atomic_ulong notify_handed;

int notify_enqueue(struct store *s, const struct notify_alert *a)
{
	(void)s;
	if (!a || !a->alert_id || !a->rule || !a->state)
		return -EINVAL;
	atomic_fetch_add(&notify_handed, 1);
	log_debug("notify (placeholder, not delivered): alert %s %s %s %s", a->alert_id, a->rule,
	          a->state, a->subject ? a->subject : "");
	return 0;
}
