/* SPDX-License-Identifier: MIT */
/* Placeholder until live updates land: a hub that keeps nothing. */
#include "hub.h"

#include <errno.h>
#include <stdlib.h>

struct hub {
	int unused;
};

struct hub *hub_new(size_t ring)
{
	(void)ring;
	return calloc(1, sizeof(struct hub));
}

struct hub *hub_free(struct hub *h)
{
	free(h);
	return NULL;
}

void hub_publish(struct hub *h, enum hub_kind kind, const char *key)
{
	(void)h;
	(void)kind;
	(void)key;
}

uint64_t hub_next_seq(struct hub *h)
{
	(void)h;
	return 0;
}

int hub_wait(struct hub *h, uint64_t *next_seq, struct hub_notice *out, size_t max, int timeout_ms)
{
	(void)h;
	(void)next_seq;
	(void)out;
	(void)max;
	(void)timeout_ms;
	return -ESHUTDOWN;
}

void hub_shutdown(struct hub *h)
{
	(void)h;
}
