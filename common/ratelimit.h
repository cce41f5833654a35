/* SPDX-License-Identifier: MIT */
/*
 * ratelimit: per-key rate limits. The agent's command intake keys them by device UDID (or
 * "udid/command") so that a runaway bulk job or a replaying attacker cannot restart or back up
 * one phone over and over; any program may key them by whatever it must protect.
 *
 * Each key gets a token bucket of `burst` tokens refilled at one token per interval_ms,
 * implemented as GCRA (one "theoretical arrival time" per key, no timers). The key table is
 * bounded (max_keys); when it is full, the key whose bucket has been full the longest (or,
 * failing that, the least recently used) is forgotten. Time comes from the caller (monotonic ms),
 * so tests drive it.
 *
 * Threading: one owner thread; no locking.
 */
#ifndef CRADLE_RATELIMIT_H
#define CRADLE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_KEY_MAX 112 /* key text + NUL; longer keys are refused */

struct ratelimit;

/*
 * burst >= 1 tokens per key, one token back every interval_ms (>= 1), at most max_keys (>= 1)
 * keys. Returns 0 and *ret (free with ratelimit_free()), or -EINVAL / -ENOMEM.
 */
int ratelimit_new(size_t max_keys, unsigned burst, uint64_t interval_ms, struct ratelimit **ret);
/* NULL-safe; returns NULL. */
struct ratelimit *ratelimit_free(struct ratelimit *rl);

/* Whether ratelimit_take() would succeed now; changes nothing. key borrowed. */
bool ratelimit_check(const struct ratelimit *rl, const char *key, uint64_t now_ms);

/*
 * Takes one token for key (borrowed). Returns 0, -EAGAIN when the key is over its rate (then
 * *ret_retry_ms, if not NULL, says when a token is back), or -EINVAL for a bad key.
 */
int ratelimit_take(struct ratelimit *rl, const char *key, uint64_t now_ms, uint64_t *ret_retry_ms);

#endif
