/* SPDX-License-Identifier: MIT */
/*
 * devmon: see devmon.h. The known set is a sorted array of UDIDs (bounded by IDEV_LIST_MAX),
 * so a resync is one merge of two sorted lists.
 *
 * libusbmuxd's thread hands each event to the loop through a loop mailbox (common/loop.h):
 * in order, at most DEVMON_QUEUE_MAX waiting. Events that do not fit (queue full, out of
 * memory) are counted by the mailbox and reported in their place, and the loop answers with an
 * immediate resync: nothing is lost, only coalesced. devmon_free() unsubscribes first (that
 * joins the thread), then frees the mailbox with whatever still waits in it.
 */
#include "devmon.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <libimobiledevice/libimobiledevice.h>

#include "facts.h"
#include "idev.h"
#include "log.h"
#include "loop.h"

#define DEVMON_QUEUE_MAX      256
#define DEVMON_RESYNC_DEFAULT 10000
/* libusbmuxd's event thread retries its connection once a second: a resync this long after a
 * new socket appeared covers what happened before the thread was back */
#define DEVMON_FOLLOWUP_MS 2500

struct devmon_msg {
	enum devmon_event ev;
	char udid[FACTS_UDID_MAX];
};

struct devmon {
	struct loop *loop;
	uint64_t resync_ms;
	devmon_fn fn;
	void *data;
	struct loop_mailbox *mbox;
	bool subscribed;
	bool mux_down;    /* last resync found no usbmuxd (logged once per outage) */
	bool resync_fail; /* last resync failed with usbmuxd up (logged once per streak) */
	int inotify_fd;   /* the usbmuxd socket's directory (UNIX socket mode), or -1 */
	char sock_name[NAME_MAX + 1];
	uint64_t timer;
	uint64_t followup;             /* the resync after a new usbmuxd socket */
	char (*known)[FACTS_UDID_MAX]; /* sorted */
	size_t n_known;
	devmon_usbmuxd_fn mux_fn; /* agentev: usbmuxd lost / back */
	void *mux_data;
};

static bool devmon_exists;

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
	if (r == -EIO) {
		/* usbmuxd is there: the devices are not gone, only this answer */
		if (!dm->resync_fail)
			log_warn("device resync: usbmuxd is up but ListDevices failed; keeping the "
			         "known devices");
		dm->resync_fail = true;
		return;
	}
	dm->resync_fail = false;
	if (r < 0) {
		if (!dm->mux_down)
			log_notice(
			        "usbmuxd is not running: no devices (normal when none is plugged)");
		dm->mux_down = true;
	} else if (dm->mux_down) {
		log_notice("usbmuxd is back");
		dm->mux_down = false;
		/* libusbmuxd's thread reconnects itself (idev_events_prepare()); this only renews a
		 * subscription that could not be made at all */
		if (!dm->subscribed)
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

/* Loop thread: one event from the mailbox. */
static void on_mail(struct loop *loop, void *msg, void *ctx)
{
	struct devmon_msg *m = msg;
	struct devmon *dm = ctx;

	(void)loop;
	if (m->ev == DEVMON_ATTACHED) {
		if (known_add(dm, m->udid))
			emit(dm, DEVMON_ATTACHED, m->udid);
	} else if (m->ev == DEVMON_DETACHED) {
		if (known_del(dm, m->udid))
			emit(dm, DEVMON_DETACHED, m->udid);
	} else if (find_known(dm, m->udid)) {
		emit(dm, DEVMON_PAIRED, m->udid);
	}
	free(m);
}

/* Loop thread: events were dropped; a resync finds what they would have said. */
static void on_overflow(struct loop *loop, uint64_t n, void *ctx)
{
	(void)loop;
	log_warn("device events: %" PRIu64 " dropped (queue full or out of memory), resyncing", n);
	devmon_resync(ctx);
}

static const struct loop_mailbox_ops devmon_mail_ops = {
	.deliver = on_mail,
	.overflow = on_overflow,
};

/* libusbmuxd's thread: copy and post. Nothing else. */
static void on_event(const idevice_event_t *event, void *user_data)
{
	struct devmon *dm = user_data;
	struct devmon_msg *m;

	if (!event || !event->udid || event->conn_type != CONNECTION_USBMUXD)
		return;
	m = malloc(sizeof(*m));
	if (m && strlen(event->udid) < FACTS_UDID_MAX) {
		m->ev = event->event == IDEVICE_DEVICE_ADD      ? DEVMON_ATTACHED
		        : event->event == IDEVICE_DEVICE_REMOVE ? DEVMON_DETACHED
		                                                : DEVMON_PAIRED;
		memcpy(m->udid, event->udid, strlen(event->udid) + 1);
	} else {
		/* too long for a UDID: counted as dropped, the resync decides */
		free(m);
		m = NULL;
	}
	/* takes m in every case; a refusal is counted and reported to on_overflow() */
	(void)loop_mailbox_post(dm->mbox, m);
}

static void subscribe(struct devmon *dm)
{
	if (dm->subscribed) {
		idevice_event_unsubscribe();
		dm->subscribed = false;
	}
	if (idevice_event_subscribe(on_event, dm) == IDEVICE_E_SUCCESS)
		dm->subscribed = true;
	else
		log_debug("usbmuxd event subscription failed; relying on resync");
}

static void on_followup(struct loop *loop, uint64_t id, void *data)
{
	struct devmon *dm = data;

	(void)loop;
	(void)id;
	dm->followup = 0;
	do_resync(dm);
}

/*
 * Loop thread: the usbmuxd socket's directory changed. A new socket (usbmuxd restarted, however
 * quickly) means the known set may be stale: resync now rather than at the next tick.
 */
static void on_inotify(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct devmon *dm = data;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool ours = false;
	ssize_t n;

	(void)loop;
	(void)events;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const void *)p;

			if (ev->len && strcmp(ev->name, dm->sock_name) == 0)
				ours = true;
			p += sizeof(*ev) + ev->len;
		}
	}
	if (ours) {
		log_debug("usbmuxd socket created or changed: resyncing");
		devmon_resync(dm);
		if (dm->followup)
			loop_cancel_timer(dm->loop, dm->followup);
		dm->followup = loop_add_timer(dm->loop, DEVMON_FOLLOWUP_MS, on_followup, dm);
	}
}

/* UNIX socket mode: watch the socket's directory. Best effort: the resync timer remains. */
static void watch_socket(struct devmon *dm)
{
	char path[PATH_MAX], *slash;

	idev_mux_unix_path(path, sizeof(path));
	slash = strrchr(path, '/');
	if (!slash || !slash[1] || strlen(slash + 1) >= sizeof(dm->sock_name))
		return;
	snprintf(dm->sock_name, sizeof(dm->sock_name), "%s", slash + 1);
	if (slash == path)
		slash[1] = '\0';
	else
		*slash = '\0';
	dm->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (dm->inotify_fd < 0 ||
	    inotify_add_watch(dm->inotify_fd, path, IN_CREATE | IN_ATTRIB | IN_MOVED_TO) < 0 ||
	    loop_add_fd(dm->loop, dm->inotify_fd, EPOLLIN, on_inotify, dm) < 0) {
		log_debug("usbmuxd socket directory '%s' not watched; relying on resync", path);
		if (dm->inotify_fd >= 0)
			close(dm->inotify_fd);
		dm->inotify_fd = -1;
	}
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
	dm->mbox = loop_mailbox_new(loop, DEVMON_QUEUE_MAX, &devmon_mail_ops, dm);
	if (!dm->known || !dm->mbox) {
		free(dm->known);
		loop_mailbox_free(dm->mbox);
		free(dm);
		return NULL;
	}
	dm->loop = loop;
	dm->inotify_fd = -1;
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
	idev_events_prepare(); /* before the event thread exists */
	subscribe(dm);
	watch_socket(dm);
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
	if (dm->followup)
		loop_cancel_timer(dm->loop, dm->followup);
	if (dm->inotify_fd >= 0) {
		loop_del_fd(dm->loop, dm->inotify_fd);
		close(dm->inotify_fd);
	}
	/* after the join: nothing posts any more; what still waits is freed unread */
	loop_mailbox_free(dm->mbox);
	free(dm->known);
	free(dm);
	devmon_exists = false;
	return NULL;
}
