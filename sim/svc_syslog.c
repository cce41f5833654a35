// SPDX-License-Identifier: MIT
/*
 * svc_syslog: com.apple.syslog_relay (docs/device-protocols.md "Services"). A raw byte stream
 * with no framing: each scenario line goes out followed by "\n" and a NUL byte, as a phone sends it
 * (idevicesyslog 1.3.0 treats the NUL as the end of a line). Lines are written in batches on a
 * timer so a long script never exceeds the connection's output cap; then the stream stays open,
 * as a phone's does, until the client goes away. Live lines (sim_device_syslog: timeline and
 * control `syslog`) are written to every open stream the moment they are emitted; a stream still
 * replaying the scenario's lines queues them (capped) and sends them after, so order holds. An
 * idle stream costs nothing: no timer, no polling.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "svc.h"

#define SYSLOG_BATCH       256 /* lines per tick */
#define SYSLOG_TICK_MS     1
#define SYSLOG_LINE_MAX    SIM_SYSLOG_LINE_MAX
#define SYSLOG_PENDING_MAX 4096 /* live lines queued behind the replay; more are dropped */

struct syslog_pending {
	struct syslog_pending *next;
	size_t len;
	char buf[]; /* line, "\n", NUL */
};

struct syslog_state {
	int next; /* index of the next line of dev->syslog */
	struct syslog_pending *head, **tail;
	int n_pending;
};

/* line + "\n" + NUL into buf (SYSLOG_LINE_MAX + 2 bytes); returns the length. */
static size_t syslog_frame(char *buf, const char *s, size_t len)
{
	if (len > SYSLOG_LINE_MAX)
		len = SYSLOG_LINE_MAX;
	memcpy(buf, s, len);
	if (len == 0 || buf[len - 1] != '\n')
		buf[len++] = '\n';
	buf[len++] = '\0';
	return len;
}

static void syslog_pump(struct svc_conn *c);

static void syslog_tick(struct svc_conn *c)
{
	syslog_pump(c);
}

static void syslog_pump(struct svc_conn *c)
{
	struct syslog_state *st = *svc_state(c);
	struct sim_device *dev = svc_device(c);
	char line[SYSLOG_LINE_MAX + 2];
	int sent = 0;

	while (st->next < dev->n_syslog && sent < SYSLOG_BATCH) {
		const char *s = dev->syslog[st->next] ? dev->syslog[st->next] : "";
		size_t len = syslog_frame(line, s, strnlen(s, SYSLOG_LINE_MAX));

		if (svc_write(c, line, len) < 0)
			break; /* output cap: try again next tick */
		st->next++;
		sent++;
	}
	while (st->next >= dev->n_syslog && st->head && sent < SYSLOG_BATCH) {
		struct syslog_pending *p = st->head;

		if (svc_write(c, p->buf, p->len) < 0)
			break;
		st->head = p->next;
		if (!st->head)
			st->tail = &st->head;
		st->n_pending--;
		free(p);
		sent++;
	}
	if (st->next < dev->n_syslog || st->head)
		svc_add_timer(c, SYSLOG_TICK_MS, syslog_tick);
}

/* A live line: straight out when the replay is done, else behind it. A stream whose reader is
 * past the output cap loses the line, as a phone drops what a slow host does not read. */
static int syslog_notice(struct svc_conn *c, const struct sim_notice *n)
{
	struct syslog_state *st = *svc_state(c);
	struct syslog_pending *p;
	char line[SYSLOG_LINE_MAX + 2];
	size_t len;

	if (n->kind != SIM_NOTICE_SYSLOG || !st)
		return 0;
	if (st->next >= svc_device(c)->n_syslog && !st->head) {
		len = syslog_frame(line, n->line, n->len);
		return svc_write(c, line, len) == 0;
	}
	if (st->n_pending >= SYSLOG_PENDING_MAX)
		return 0;
	p = malloc(sizeof(*p) + (n->len > SYSLOG_LINE_MAX ? SYSLOG_LINE_MAX : n->len) + 2);
	if (!p)
		return 0;
	p->len = syslog_frame(p->buf, n->line, n->len);
	p->next = NULL;
	*st->tail = p;
	st->tail = &p->next;
	st->n_pending++;
	return 1;
}

static int syslog_open(struct svc_conn *c)
{
	struct syslog_state *st = calloc(1, sizeof(*st));

	if (!st)
		return -ENOMEM;
	st->tail = &st->head;
	*svc_state(c) = st;
	syslog_pump(c);
	return 0;
}

/* The client sends nothing meaningful; swallow it. */
static ssize_t syslog_input(struct svc_conn *c, const uint8_t *buf, size_t len)
{
	(void)c;
	(void)buf;
	return (ssize_t)len;
}

static void syslog_close(struct svc_conn *c)
{
	struct syslog_state *st = *svc_state(c);

	while (st && st->head) {
		struct syslog_pending *p = st->head;

		st->head = p->next;
		free(p);
	}
	free(st);
	*svc_state(c) = NULL;
}

const struct svc_ops svc_syslog_relay = {
	.name = "com.apple.syslog_relay",
	.ssl = true,
	.open = syslog_open,
	.input = syslog_input,
	.close = syslog_close,
	.notice = syslog_notice,
};
