/* SPDX-License-Identifier: MIT */
/*
 * strmap: a hash map from C strings (copied) to pointers, for ingest's in-memory indexes (agents,
 * phones, the changes of a batch). Open addressing with linear probing and backward-shift
 * deletion, grown at 50 % load, so lookups stay a probe or two at 100 000 phones.
 *
 * Threading: one owner thread; no locking.
 */
#ifndef CRADLE_DASH_STRMAP_H
#define CRADLE_DASH_STRMAP_H

#include <stddef.h>

struct strmap;

/* NULL when out of memory. */
struct strmap *strmap_new(void);
/* Calls free_value (when not NULL) on every value. NULL-safe; returns NULL. */
struct strmap *strmap_free(struct strmap *m, void (*free_value)(void *));

/* The value for key, NULL when absent. */
void *strmap_get(const struct strmap *m, const char *key);
/* Sets key (copied) to value (not NULL); an existing value is replaced and returned in *ret_old
 * (may be NULL). 0 or -ENOMEM. */
int strmap_put(struct strmap *m, const char *key, void *value, void **ret_old);
/* Removes key; returns its value, NULL when absent. */
void *strmap_remove(struct strmap *m, const char *key);
/* Removes every key (free_value as in strmap_free()); keeps the table's size. */
void strmap_clear(struct strmap *m, void (*free_value)(void *));

size_t strmap_size(const struct strmap *m);
/* Calls fn for every entry, in no particular order; fn must not change m. */
void strmap_foreach(const struct strmap *m, void (*fn)(const char *key, void *value, void *ctx),
                    void *ctx);

#endif
