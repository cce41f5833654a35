// SPDX-License-Identifier: MIT
/*
 * svc_syslog: com.apple.syslog_relay (docs/device-protocols.md "Services"). A raw byte stream
 * with no framing: each scenario line goes out followed by "\n" and a NUL byte, as a phone sends it
 * (idevicesyslog 1.3.0 treats the NUL as the end of a line). Lines are written in batches on a
 * timer so a long script never exceeds the connection's output cap; then the stream stays open
 * and idle, as a quiet phone's does, until the client goes away.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"
#include "svc.h"

#define SYSLOG_BATCH    256 /* lines per tick */
#define SYSLOG_TICK_MS  1
#define SYSLOG_LINE_MAX 8192

struct syslog_state {
	int next; /* index of the next line of dev->syslog */
};

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
		size_t len = strnlen(s, SYSLOG_LINE_MAX);

		memcpy(line, s, len);
		if (len == 0 || line[len - 1] != '\n')
			line[len++] = '\n';
		line[len++] = '\0';
		if (svc_write(c, line, len) < 0)
			break; /* output cap: try again next tick */
		st->next++;
		sent++;
	}
	if (st->next < dev->n_syslog)
		svc_add_timer(c, SYSLOG_TICK_MS, syslog_tick);
}

static int syslog_open(struct svc_conn *c)
{
	struct syslog_state *st = calloc(1, sizeof(*st));

	if (!st)
		return -ENOMEM;
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
	free(*svc_state(c));
	*svc_state(c) = NULL;
}

const struct svc_ops svc_syslog_relay = {
	.name = "com.apple.syslog_relay",
	.ssl = true,
	.open = syslog_open,
	.input = syslog_input,
	.close = syslog_close,
};
