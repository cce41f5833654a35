/* SPDX-License-Identifier: MIT */
/*
 * pairrec: the pair records cradle-sim keeps as usbmuxd (ReadPairRecord, SavePairRecord,
 * DeletePairRecord, and the records of pre-paired devices). The simulator is the usbmuxd, so it
 * owns the records; they live in memory for the life of the process. A plain array: a lookup
 * per request over at most a few hundred records costs nothing next to the plist work around it.
 */
#include "pairrec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct pairrec {
	char key[PAIRREC_KEY_MAX];
	plist_t record;
};

static struct pairrec *pairrec_find(const struct pairrec_store *s, const char *key)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->v[i].key, key) == 0)
			return &s->v[i];
	return NULL;
}

plist_t pairrec_get(const struct pairrec_store *s, const char *key)
{
	struct pairrec *p = pairrec_find(s, key);

	return p ? plist_copy(p->record) : NULL;
}

int pairrec_set(struct pairrec_store *s, const char *key, plist_t record)
{
	struct pairrec *p;
	size_t len = strlen(key);
	int r = 0;

	if (len >= PAIRREC_KEY_MAX) {
		r = -EINVAL;
		goto out;
	}
	p = pairrec_find(s, key);
	if (p) {
		plist_free(p->record);
		p->record = record;
		record = NULL;
		goto out;
	}
	if (s->n >= PAIRREC_MAX) {
		r = -ENOSPC;
		goto out;
	}
	if (s->n == s->cap) {
		int cap = s->cap ? s->cap * 2 : 64;
		struct pairrec *n = realloc(s->v, (size_t)cap * sizeof(*n));

		if (!n) {
			r = -ENOMEM;
			goto out;
		}
		s->v = n;
		s->cap = cap;
	}
	p = &s->v[s->n++];
	memcpy(p->key, key, len + 1);
	p->record = record;
	record = NULL;
out:
	plist_free(record);
	return r;
}

int pairrec_delete(struct pairrec_store *s, const char *key)
{
	struct pairrec *p = pairrec_find(s, key);

	if (!p)
		return -ENOENT;
	plist_free(p->record);
	*p = s->v[--s->n];
	return 0;
}

void pairrec_free_all(struct pairrec_store *s)
{
	int i;

	for (i = 0; i < s->n; i++)
		plist_free(s->v[i].record);
	free(s->v);
	s->v = NULL;
	s->n = s->cap = 0;
}
