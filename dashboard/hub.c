/* SPDX-License-Identifier: MIT */
/*
 * hub: a ring of (seq, kind, key) notices under one mutex, and a condition variable the SSE
 * streams wait on. Notice seq numbers start at 1 and only grow; the notice with seq n lives in
 * slot n % ring while it is among the newest `ring` ones.
 */
#include "hub.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct hub {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* signalled on publish and shutdown */
	struct hub_notice *ring;
	size_t size;
	uint64_t next; /* seq of the next notice published */
	bool shutdown;
};

struct hub *hub_new(size_t ring)
{
	struct hub *h;
	pthread_condattr_t ca;

	if (ring < 1)
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->ring = calloc(ring, sizeof(*h->ring));
	if (!h->ring) {
		free(h);
		return NULL;
	}
	h->size = ring;
	h->next = 1;
	pthread_mutex_init(&h->lock, NULL);
	/* waits are timed against the monotonic clock: a wall clock step must not stall a stream */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cond, &ca);
	pthread_condattr_destroy(&ca);
	return h;
}

struct hub *hub_free(struct hub *h)
{
	if (!h)
		return NULL;
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h->ring);
	free(h);
	return NULL;
}

void hub_publish(struct hub *h, enum hub_kind kind, const char *key)
{
	struct hub_notice *n;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	n = &h->ring[h->next % h->size];
	n->seq = h->next++;
	n->kind = kind;
	snprintf(n->key, sizeof(n->key), "%s", key ? key : "");
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

uint64_t hub_next_seq(struct hub *h)
{
	uint64_t seq;

	pthread_mutex_lock(&h->lock);
	seq = h->next;
	pthread_mutex_unlock(&h->lock);
	return seq;
}

/* The oldest seq still in the ring. Called locked. */
static uint64_t hub_oldest(const struct hub *h)
{
	return h->next > h->size ? h->next - h->size : 1;
}

int hub_wait(struct hub *h, uint64_t *next_seq, struct hub_notice *out, size_t max, int timeout_ms)
{
	struct timespec deadline;
	size_t n = 0;
	int r = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (timeout_ms > 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&h->lock);
	/* a reader from the future (a bad Last-Event-ID) starts at the next notice */
	if (*next_seq > h->next)
		*next_seq = h->next;
	while (!h->shutdown && *next_seq == h->next && timeout_ms > 0) {
		if (pthread_cond_timedwait(&h->cond, &h->lock, &deadline) == ETIMEDOUT)
			break;
	}
	if (h->shutdown) {
		r = -ESHUTDOWN;
		goto out;
	}
	if (*next_seq < hub_oldest(h)) {
		*next_seq = hub_oldest(h);
		r = -ERANGE;
		goto out;
	}
	while (n < max && *next_seq < h->next) {
		out[n++] = h->ring[*next_seq % h->size];
		(*next_seq)++;
	}
	r = (int)n;
out:
	pthread_mutex_unlock(&h->lock);
	return r;
}

void hub_shutdown(struct hub *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->shutdown = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}
