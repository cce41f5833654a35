/* SPDX-License-Identifier: MIT */
/*
 * pairrec: a store of pair records keyed by exact strings, the container behind the model's
 * sim_pair_record_*() (sim.h normalises the UDID into the key). A record is a plist dict.
 * Bounded: at most PAIRREC_MAX records.
 *
 * Ownership: the store owns its records; the owner embeds struct pairrec_store
 * (zero-initialised) and frees it with pairrec_free_all().
 */
#ifndef CRADLE_SIM_PAIRREC_H
#define CRADLE_SIM_PAIRREC_H

#include <plist/plist.h>

#define PAIRREC_MAX     65536
#define PAIRREC_KEY_MAX 64 /* bytes with the NUL */

struct pairrec;

struct pairrec_store {
	struct pairrec *v;
	int n, cap;
};

/* A copy of the record under key (caller frees), NULL if none. */
plist_t pairrec_get(const struct pairrec_store *s, const char *key);
/* Stores record under key, replacing any. Takes ownership of record in every case. 0, -EINVAL
 * (key too long), -ENOSPC (PAIRREC_MAX records) or -ENOMEM. */
int pairrec_set(struct pairrec_store *s, const char *key, plist_t record);
int pairrec_delete(struct pairrec_store *s, const char *key); /* 0 or -ENOENT */
void pairrec_free_all(struct pairrec_store *s);

#endif
