/* SPDX-License-Identifier: MIT */
/*
 * pairrec: the pair records cradle-sim keeps as usbmuxd (ReadPairRecord, SavePairRecord,
 * DeletePairRecord). The simulator is the usbmuxd, so it owns the records; they live in memory
 * for the life of the process, keyed by the UDID as usbmuxd reports it (a 24-hex UDID given by a
 * client is looked up in its dashed form). A record is a plist dict; the mux serialises it to
 * XML for ReadPairRecord. Bounded: at most PAIRREC_MAX records.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mux.h"
#include "scenario.h"
#include "sim.h"

#define PAIRREC_MAX 65536

struct pairrec {
	char udid[64];
	plist_t record;
};

static struct pairrec *pairrec_find(struct mux *m, const char *udid)
{
	char norm[64];
	int i;

	if (scenario_normalize_udid(udid, norm, sizeof(norm)) < 0)
		snprintf(norm, sizeof(norm), "%s", udid);
	for (i = 0; i < m->n_pairrecs; i++)
		if (strcmp(m->pairrecs[i].udid, norm) == 0)
			return &m->pairrecs[i];
	return NULL;
}

plist_t sim_pair_record_get(struct sim *sim, const char *udid)
{
	struct pairrec *p;

	if (!sim->mux || !udid)
		return NULL;
	p = pairrec_find(sim->mux, udid);
	return p ? plist_copy(p->record) : NULL;
}

int sim_pair_record_set(struct sim *sim, const char *udid, plist_t record)
{
	struct mux *m = sim->mux;
	struct pairrec *p;
	int r = 0;

	if (!m || !udid || !record || strlen(udid) >= sizeof(p->udid)) {
		r = -EINVAL;
		goto out;
	}
	p = pairrec_find(m, udid);
	if (p) {
		plist_free(p->record);
		p->record = record;
		record = NULL;
		goto out;
	}
	if (m->n_pairrecs >= PAIRREC_MAX) {
		r = -ENOSPC;
		goto out;
	}
	if (m->n_pairrecs == m->cap_pairrecs) {
		int cap = m->cap_pairrecs ? m->cap_pairrecs * 2 : 64;
		struct pairrec *n = realloc(m->pairrecs, (size_t)cap * sizeof(*n));

		if (!n) {
			r = -ENOMEM;
			goto out;
		}
		m->pairrecs = n;
		m->cap_pairrecs = cap;
	}
	p = &m->pairrecs[m->n_pairrecs++];
	if (scenario_normalize_udid(udid, p->udid, sizeof(p->udid)) < 0)
		snprintf(p->udid, sizeof(p->udid), "%s", udid);
	p->record = record;
	record = NULL;
out:
	plist_free(record);
	return r;
}

int pairrec_delete(struct sim *sim, const char *udid)
{
	struct mux *m = sim->mux;
	struct pairrec *p = m ? pairrec_find(m, udid) : NULL;

	if (!p)
		return -ENOENT;
	plist_free(p->record);
	*p = m->pairrecs[--m->n_pairrecs];
	return 0;
}

void pairrec_free_all(struct mux *m)
{
	int i;

	for (i = 0; i < m->n_pairrecs; i++)
		plist_free(m->pairrecs[i].record);
	free(m->pairrecs);
	m->pairrecs = NULL;
	m->n_pairrecs = m->cap_pairrecs = 0;
}
