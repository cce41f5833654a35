/* SPDX-License-Identifier: MIT */
/*
 * notify_send: one message to one receiver over libcurl (notify.h's worker), and the bodies of
 * each receiver type. A message carries one notification, or in digest mode several; alerts is
 * always a JSON array of alert objects (the webhook body's "alerts", dashboard/README.md).
 *
 * Threading: no shared state; called on the worker thread (the bodies from tests too).
 */
#ifndef CRADLE_DASH_NOTIFY_SEND_H
#define CRADLE_DASH_NOTIFY_SEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cJSON;
struct dash_receiver;

enum notify_send_result {
	NOTIFY_SENT,      /* the receiver took it (HTTP 2xx, SMTP accepted) */
	NOTIFY_RETRY,     /* failed; worth another attempt */
	NOTIFY_PERMANENT, /* refused for good (HTTP 4xx other than 408 and 429, a bad URL) */
	NOTIFY_ABORTED,   /* the worker is stopping: not an attempt */
};

#define NOTIFY_TEXT_LINES_MAX 100 /* alert lines of a human message; more are counted */

/*
 * Sends alerts to rcv as one message (digest: a digest, even of one alert), each attempt at
 * most timeout_s; stop set aborts a transfer in flight. err gets the failure's reason.
 */
enum notify_send_result notify_send(const struct dash_receiver *rcv, const struct cJSON *alerts,
                                    bool digest, int64_t timeout_s, atomic_bool *stop, char *err,
                                    size_t errsz);

/* Bodies (heap strings, free()); now is Unix s. NULL when out of memory. */
char *notify_body_webhook(const struct dash_receiver *rcv, const struct cJSON *alerts, bool digest,
                          int64_t now);
char *notify_body_slack(const struct cJSON *alerts, bool digest);
char *notify_body_teams(const struct cJSON *alerts, bool digest);
/* The whole e-mail (headers and text, CRLF lines). */
char *notify_body_email(const struct dash_receiver *rcv, const struct cJSON *alerts, bool digest,
                        int64_t now);

#endif
