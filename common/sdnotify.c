/* SPDX-License-Identifier: MIT */
/*
 * sdnotify: see sdnotify.h. libsystemd does the protocol (the datagram to NOTIFY_SOCKET, the
 * abstract-namespace and credential details); this file decides when to say what.
 */
#include "sdnotify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "log.h"

#define SDNOTIFY_STATUS_MAX 512

struct sdnotify {
	struct loop *loop;
	char ready_status[SDNOTIFY_STATUS_MAX];
	uint64_t ping_ms; /* half the manager's watchdog interval; 0 = no watchdog */
	uint64_t timer;
	bool failed;                      /* a send failed: said once, not at every ping */
	char status[SDNOTIFY_STATUS_MAX]; /* the last STATUS= sent: the same again is not sent */
};

/* Sends state; a failure is logged once (the manager may be gone: nothing else to do). */
static void send_state(struct sdnotify *n, const char *state)
{
	int r = sd_notify(0, state);

	if (r < 0 && !n->failed) {
		n->failed = true;
		log_warn_errno(r, "cannot notify the service manager");
	}
}

/* prefix and STATUS=text; a status equal to the last one alone is not sent again */
static void send_statusv(struct sdnotify *n, const char *prefix, const char *fmt, va_list ap)
{
	char text[SDNOTIFY_STATUS_MAX], msg[SDNOTIFY_STATUS_MAX + 32];

	vsnprintf(text, sizeof(text), fmt, ap);
	/* one line: a newline would start another assignment of the protocol */
	for (char *p = text; *p; p++)
		if (*p == '\n')
			*p = ' ';
	if (!*prefix && strcmp(text, n->status) == 0)
		return;
	snprintf(n->status, sizeof(n->status), "%s", text);
	snprintf(msg, sizeof(msg), "%sSTATUS=%s", prefix, text);
	send_state(n, msg);
}

static void on_ping(struct loop *loop, uint64_t id, void *data)
{
	struct sdnotify *n = data;

	(void)id;
	send_state(n, "WATCHDOG=1");
	n->timer = loop_add_timer(loop, n->ping_ms, on_ping, n);
	if (!n->timer) /* out of memory: the manager will restart us */
		log_error("watchdog: cannot schedule the next ping");
}

/* The loop's first turn: everything built before loop_run() is in place and the loop runs. */
static void on_ready(struct loop *loop, uint64_t id, void *data)
{
	struct sdnotify *n = data;
	char msg[SDNOTIFY_STATUS_MAX + 32];

	(void)id;
	if (!n->status[0]) /* else a newer status came before the loop turned: that one */
		snprintf(n->status, sizeof(n->status), "%s", n->ready_status);
	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", n->status);
	send_state(n, msg);
	n->timer = 0;
	if (n->ping_ms > 0)
		on_ping(loop, 0, n);
}

int sdnotify_new(struct loop *loop, const char *ready_status, struct sdnotify **ret)
{
	struct sdnotify *n = NULL;
	uint64_t usec = 0;
	const char *sock = getenv("NOTIFY_SOCKET");
	int r = 0;

	*ret = NULL;
	if (!sock || !*sock)
		goto out; /* no manager: nothing to tell */
	n = calloc(1, sizeof(*n));
	if (!n) {
		r = -ENOMEM;
		goto out;
	}
	n->loop = loop;
	snprintf(n->ready_status, sizeof(n->ready_status), "%s", ready_status);
	/* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is this process; the
	 * variables stay, as the manager set them, for `systemd-run --pty` style debugging */
	if (sd_watchdog_enabled(0, &usec) > 0) {
		n->ping_ms = usec / 2000;
		if (n->ping_ms == 0)
			n->ping_ms = 1;
		log_debug("watchdog: pinging every %llu ms", (unsigned long long)n->ping_ms);
	}
	n->timer = loop_add_timer(loop, 0, on_ready, n);
	if (!n->timer) {
		free(n);
		n = NULL;
		r = -ENOMEM;
		goto out;
	}
	*ret = n;
out:
	return r;
}

void sdnotify_status(struct sdnotify *n, const char *fmt, ...)
{
	va_list ap;

	if (!n)
		return;
	va_start(ap, fmt);
	send_statusv(n, "", fmt, ap);
	va_end(ap);
}

void sdnotify_stopping(struct sdnotify *n, const char *fmt, ...)
{
	va_list ap;

	if (!n)
		return;
	va_start(ap, fmt);
	send_statusv(n, "STOPPING=1\n", fmt, ap);
	va_end(ap);
}

struct sdnotify *sdnotify_free(struct sdnotify *n)
{
	if (!n)
		return NULL;
	if (n->timer)
		loop_cancel_timer(n->loop, n->timer);
	free(n);
	return NULL;
}
