/* SPDX-License-Identifier: MIT */
/*
 * ratelimit: bounded per-key GCRA token buckets.
 *
 * GCRA keeps one number per key, the theoretical arrival time `tat`: a request at `now` passes
 * when now >= tat - (burst - 1) * interval, and then tat = max(tat, now) + interval. That is a
 * token bucket of `burst` tokens refilled every `interval` without floating point or timers. A
 * key whose tat is in the past has a full bucket and carries no information, so forgetting it
 * changes nothing; that makes it the first choice when the bounded table is full. The table is
 * scanned linearly: it holds at most a few hundred devices and commands are rare.
 */
#include "ratelimit.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct ratelimit_slot {
	char key[RATELIMIT_KEY_MAX]; /* "" = free */
	uint64_t tat;
	uint64_t last_used;
};

struct ratelimit {
	size_t max_keys;
	uint64_t interval;
	uint64_t tolerance; /* (burst - 1) * interval */
	struct ratelimit_slot *slots;
};

int ratelimit_new(size_t max_keys, unsigned burst, uint64_t interval_ms, struct ratelimit **ret)
{
	struct ratelimit *rl;

	if (max_keys < 1 || max_keys > 65536 || burst < 1 || interval_ms < 1 ||
	    interval_ms > UINT64_MAX / 2 / burst || !ret)
		return -EINVAL;
	rl = calloc(1, sizeof(*rl));
	if (!rl)
		return -ENOMEM;
	rl->slots = calloc(max_keys, sizeof(*rl->slots));
	if (!rl->slots) {
		free(rl);
		return -ENOMEM;
	}
	rl->max_keys = max_keys;
	rl->interval = interval_ms;
	rl->tolerance = (uint64_t)(burst - 1) * interval_ms;
	*ret = rl;
	return 0;
}

struct ratelimit *ratelimit_free(struct ratelimit *rl)
{
	if (rl) {
		free(rl->slots);
		free(rl);
	}
	return NULL;
}

static bool key_valid(const char *key)
{
	return key && key[0] && strnlen(key, RATELIMIT_KEY_MAX) < RATELIMIT_KEY_MAX;
}

static struct ratelimit_slot *find(const struct ratelimit *rl, const char *key)
{
	size_t i;

	for (i = 0; i < rl->max_keys; i++)
		if (rl->slots[i].key[0] && strcmp(rl->slots[i].key, key) == 0)
			return &rl->slots[i];
	return NULL;
}

/* A free slot, else the key with the oldest full bucket, else the least recently used one. */
static struct ratelimit_slot *victim(struct ratelimit *rl, uint64_t now)
{
	struct ratelimit_slot *full = NULL, *lru = NULL;
	size_t i;

	for (i = 0; i < rl->max_keys; i++) {
		struct ratelimit_slot *s = &rl->slots[i];

		if (!s->key[0])
			return s;
		if (s->tat <= now && (!full || s->tat < full->tat))
			full = s;
		if (!lru || s->last_used < lru->last_used)
			lru = s;
	}
	return full ? full : lru;
}

static bool allowed(const struct ratelimit *rl, const struct ratelimit_slot *s, uint64_t now)
{
	return !s || s->tat <= now + rl->tolerance;
}

bool ratelimit_check(const struct ratelimit *rl, const char *key, uint64_t now_ms)
{
	return key_valid(key) && allowed(rl, find(rl, key), now_ms);
}

int ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now_ms, uint64_t *ret_retry_ms)
{
	struct ratelimit_slot *s;

	if (!key_valid(key))
		return -EINVAL;
	s = find(rl, key);
	if (!allowed(rl, s, now_ms)) {
		if (ret_retry_ms)
			*ret_retry_ms = s->tat - rl->tolerance - now_ms;
		return -EAGAIN;
	}
	if (!s) {
		s = victim(rl, now_ms);
		memcpy(s->key, key, strlen(key) + 1); /* key_valid(): it fits */
		s->tat = now_ms;
	}
	s->tat = (s->tat > now_ms ? s->tat : now_ms) + rl->interval;
	s->last_used = now_ms;
	return 0;
}
