/* SPDX-License-Identifier: MIT */
/*
 * devmon: see devmon.h. The known set is a sorted array of UDIDs (bounded by IDEV_LIST_MAX),
 * so a resync is one merge of two sorted lists.
 *
 * The mailbox between libusbmuxd's thread and the loop is a small refcounted struct apart from
 * struct devmon: a post already queued in the loop when devmon_free() runs finds dm == NULL
 * instead of freed memory. Events that do not fit (ring full, post failed) set "overflow",
 * which the loop answers with an immediate resync: nothing is lost, only coalesced.
 */
#include "devmon.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libimobiledevice/libimobiledevice.h>

#include "facts.h"
#include "idev.h"
#include "log.h"
#include "loop.h"

#define DEVMON_RING           256
#define DEVMON_RESYNC_DEFAULT 10000

struct devmon_msg {
	enum devmon_event ev;
	char udid[FACTS_UDID_MAX];
};

struct devmon_mbox {
	pthread_mutex_t lock;
	int refs;          /* devmon + a queued post */
	struct devmon *dm; /* NULL after devmon_free() */
	struct loop *loop;
	bool kick_pending; /* a post is queued: do not queue another */
	bool overflow;     /* events were dropped: resync */
	struct devmon_msg ring[DEVMON_RING];
	unsigned head, len;
};

struct devmon {
	struct loop *loop;
	uint64_t resync_ms;
	devmon_fn fn;
	void *data;
	struct devmon_mbox *mbox;
	bool subscribed;
	bool mux_down; /* last resync found no usbmuxd (logged once per outage) */
	uint64_t timer;
	char (*known)[FACTS_UDID_MAX]; /* sorted */
	size_t n_known;
	devmon_usbmuxd_fn mux_fn; /* agentev: usbmuxd lost / back */
	void *mux_data;
};

static bool devmon_exists;

static void mbox_unref(struct devmon_mbox *mb)
{
	bool last;

	pthread_mutex_lock(&mb->lock);
	last = --mb->refs == 0;
	pthread_mutex_unlock(&mb->lock);
	if (last) {
		pthread_mutex_destroy(&mb->lock);
		free(mb);
	}
}

static int cmp_udid(const void *a, const void *b)
{
	return strcmp((const char *)a, (const char *)b);
}

static char *find_known(const struct devmon *dm, const char *udid)
{
	if (!dm->n_known)
		return NULL;
	return bsearch(udid, dm->known, dm->n_known, sizeof(*dm->known), cmp_udid);
}

static bool known_add(struct devmon *dm, const char *udid)
{
	size_t i;

	if (find_known(dm, udid))
		return false;
	if (dm->n_known >= IDEV_LIST_MAX || strlen(udid) >= FACTS_UDID_MAX) {
		log_warn("device '%s' ignored: %d devices watched already", udid, IDEV_LIST_MAX);
		return false;
	}
	for (i = dm->n_known; i > 0 && strcmp(dm->known[i - 1], udid) > 0; i--)
		;
	memmove(dm->known[i + 1], dm->known[i], (dm->n_known - i) * sizeof(*dm->known));
	snprintf(dm->known[i], FACTS_UDID_MAX, "%s", udid);
	dm->n_known++;
	return true;
}

static bool known_del(struct devmon *dm, const char *udid)
{
	char *p = find_known(dm, udid);
	size_t i;

	if (!p)
		return false;
	i = (size_t)(p - dm->known[0]) / FACTS_UDID_MAX;
	memmove(dm->known[i], dm->known[i + 1], (dm->n_known - i - 1) * sizeof(*dm->known));
	dm->n_known--;
	return true;
}

static void emit(struct devmon *dm, enum devmon_event ev, const char *udid)
{
	log_debug("device '%s': %s", udid,
		  ev == DEVMON_ATTACHED   ? "attached"
		  : ev == DEVMON_DETACHED ? "detached"
					  : "paired");
	dm->fn(ev, udid, dm->data);
}

static void subscribe(struct devmon *dm);

/* Merges the listed set into the known set; callbacks for every difference. */
static void do_resync(struct devmon *dm)
{
	struct idev_list l;
	char udid[FACTS_UDID_MAX];
	size_t i;
	int r;

	r = idev_list(&l);
	if (r == -ENOMEM) {
		log_error("device resync: out of memory");
		return;
	}
	if (r < 0) {
		if (!dm->mux_down)
			log_notice(
				"usbmuxd is not running: no devices (normal when none is plugged)");
		dm->mux_down = true;
	} else if (dm->mux_down) {
		log_notice("usbmuxd is back");
		dm->mux_down = false;
		/* in UNIX socket mode libusbmuxd does not reconnect its event socket itself */
		subscribe(dm);
	}
	if (dm->mux_fn) /* agentev: usbmuxd lost / back */
		dm->mux_fn(r >= 0, l.n, dm->mux_data);
	/* detached: known but not listed (walk backwards: known_del shifts the tail) */
	for (i = dm->n_known; i > 0; i--) {
		if (l.n && bsearch(dm->known[i - 1], l.udid, l.n, sizeof(*l.udid), cmp_udid))
			continue;
		memcpy(udid, dm->known[i - 1], FACTS_UDID_MAX);
		known_del(dm, udid);
		emit(dm, DEVMON_DETACHED, udid);
	}
	for (i = 0; i < l.n; i++)
		if (known_add(dm, l.udid[i]))
			emit(dm, DEVMON_ATTACHED, l.udid[i]);
	idev_list_free(&l);
}

static void on_timer(struct loop *loop, uint64_t id, void *data)
{
	struct devmon *dm = data;

	(void)id;
	dm->timer = 0;
	do_resync(dm);
	dm->timer = loop_add_timer(loop, dm->resync_ms, on_timer, dm);
	if (!dm->timer)
		log_error("device resync: cannot add a timer");
}

void devmon_resync(struct devmon *dm)
{
	if (!dm)
		return;
	if (dm->timer)
		loop_cancel_timer(dm->loop, dm->timer);
	dm->timer = loop_add_timer(dm->loop, 0, on_timer, dm);
}

/* Loop thread: drain the mailbox. */
static void on_post(struct loop *loop, void *data)
{
	struct devmon_mbox *mb = data;
	struct devmon_msg msgs[DEVMON_RING];
	struct devmon *dm;
	unsigned n, i;
	bool overflow;

	(void)loop;
	pthread_mutex_lock(&mb->lock);
	mb->kick_pending = false;
	dm = mb->dm;
	n = mb->len;
	for (i = 0; i < n; i++)
		msgs[i] = mb->ring[(mb->head + i) % DEVMON_RING];
	mb->head = 0;
	mb->len = 0;
	overflow = mb->overflow;
	mb->overflow = false;
	pthread_mutex_unlock(&mb->lock);
	if (dm) {
		for (i = 0; i < n; i++) {
			if (msgs[i].ev == DEVMON_ATTACHED) {
				if (known_add(dm, msgs[i].udid))
					emit(dm, DEVMON_ATTACHED, msgs[i].udid);
			} else if (msgs[i].ev == DEVMON_DETACHED) {
				if (known_del(dm, msgs[i].udid))
					emit(dm, DEVMON_DETACHED, msgs[i].udid);
			} else if (find_known(dm, msgs[i].udid)) {
				emit(dm, DEVMON_PAIRED, msgs[i].udid);
			}
		}
		if (overflow)
			devmon_resync(dm);
	}
	mbox_unref(mb);
}

/* libusbmuxd's thread: copy, queue, post. Nothing else. */
static void on_event(const idevice_event_t *event, void *user_data)
{
	struct devmon_mbox *mb = user_data;
	struct devmon_msg *m;
	bool post = false;

	if (!event || !event->udid || event->conn_type != CONNECTION_USBMUXD)
		return;
	pthread_mutex_lock(&mb->lock);
	if (mb->len < DEVMON_RING && strlen(event->udid) < FACTS_UDID_MAX) {
		m = &mb->ring[(mb->head + mb->len) % DEVMON_RING];
		m->ev = event->event == IDEVICE_DEVICE_ADD      ? DEVMON_ATTACHED
			: event->event == IDEVICE_DEVICE_REMOVE ? DEVMON_DETACHED
								: DEVMON_PAIRED;
		memcpy(m->udid, event->udid, strlen(event->udid) + 1);
		mb->len++;
	} else {
		mb->overflow = true;
	}
	if (!mb->kick_pending) {
		mb->kick_pending = true;
		mb->refs++;
		post = true;
	}
	pthread_mutex_unlock(&mb->lock);
	if (post && loop_post(mb->loop, on_post, mb) < 0) {
		pthread_mutex_lock(&mb->lock);
		mb->kick_pending = false;
		mb->overflow = true; /* the next post or resync picks it up */
		mb->refs--;
		pthread_mutex_unlock(&mb->lock);
	}
}

static void subscribe(struct devmon *dm)
{
	if (dm->subscribed) {
		idevice_event_unsubscribe();
		dm->subscribed = false;
	}
	if (idevice_event_subscribe(on_event, dm->mbox) == IDEVICE_E_SUCCESS)
		dm->subscribed = true;
	else
		log_debug("usbmuxd event subscription failed; relying on resync");
}

struct devmon *devmon_new(struct loop *loop, uint64_t resync_ms, devmon_fn fn, void *data)
{
	struct devmon *dm;

	if (!loop || !fn || devmon_exists)
		return NULL;
	dm = calloc(1, sizeof(*dm));
	if (!dm)
		return NULL;
	dm->known = calloc(IDEV_LIST_MAX, sizeof(*dm->known));
	dm->mbox = calloc(1, sizeof(*dm->mbox));
	if (!dm->known || !dm->mbox) {
		free(dm->known);
		free(dm->mbox);
		free(dm);
		return NULL;
	}
	pthread_mutex_init(&dm->mbox->lock, NULL);
	dm->mbox->refs = 1;
	dm->mbox->dm = dm;
	dm->mbox->loop = loop;
	dm->loop = loop;
	dm->resync_ms = resync_ms ? resync_ms : DEVMON_RESYNC_DEFAULT;
	dm->fn = fn;
	dm->data = data;
	devmon_exists = true;
	return dm;
}

void devmon_watch_usbmuxd(struct devmon *dm, devmon_usbmuxd_fn fn, void *data)
{
	if (!dm)
		return;
	dm->mux_fn = fn;
	dm->mux_data = data;
}

int devmon_start(struct devmon *dm)
{
	if (!dm)
		return -EINVAL;
	subscribe(dm);
	dm->timer = loop_add_timer(dm->loop, 0, on_timer, dm);
	return dm->timer ? 0 : -ENOMEM;
}

struct devmon *devmon_free(struct devmon *dm)
{
	if (!dm)
		return NULL;
	if (dm->subscribed)
		idevice_event_unsubscribe(); /* joins the thread: no on_event() after this */
	if (dm->timer)
		loop_cancel_timer(dm->loop, dm->timer);
	pthread_mutex_lock(&dm->mbox->lock);
	dm->mbox->dm = NULL;
	pthread_mutex_unlock(&dm->mbox->lock);
	mbox_unref(dm->mbox);
	free(dm->known);
	free(dm);
	devmon_exists = false;
	return NULL;
}
