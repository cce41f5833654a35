/* SPDX-License-Identifier: MIT */
/*
 * devmon: see devmon.h. The known set is a sorted array of UDIDs (bounded by IDEV_LIST_MAX),
 * so a resync is one merge of two sorted lists.
 *
 * The Listen connection is a socket on the loop (idev_listen_*): no thread. When it ends, it is
 * closed at once and made again with a back-off (100 ms doubling to 2 s; reset by a connection
 * that lasted 10 s), at once when the socket's directory shows a new usbmuxd socket; each time
 * usbmuxd accepts it again, a resync covers what happened in between.
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

#include "facts.h"
#include "idev.h"
#include "log.h"
#include "loop.h"

#define DEVMON_RESYNC_DEFAULT 10000
/* reconnecting the Listen connection: first delay, doubled up to the last */
#define DEVMON_RETRY_MIN_MS 100
#define DEVMON_RETRY_MAX_MS 2000
/* usbmuxd answers Listen at once; a connection with no answer by then is made again */
#define DEVMON_LISTEN_TIMEOUT_MS 5000
/* a connection that lasted this long resets the back-off: one that usbmuxd keeps ending at
 * once is retried at most every DEVMON_RETRY_MAX_MS, never in a loop */
#define DEVMON_LISTEN_STABLE_MS 10000

struct devmon {
	struct loop *loop;
	uint64_t resync_ms;
	devmon_fn fn;
	void *data;
	struct idev_listen *listen; /* the usbmuxd event connection, or NULL */
	bool listening;             /* usbmuxd accepted it */
	bool listen_lost;           /* an earlier one ended (logged once per streak) */
	uint64_t retry; /* the next idev_listen_open(), or the Listen answer's deadline */
	uint64_t retry_ms;
	uint64_t listening_since; /* loop_now_ms() at the Result */
	bool mux_down;            /* last resync found no usbmuxd (logged once per outage) */
	bool resync_fail;         /* last resync failed with usbmuxd up (logged once per streak) */
	int inotify_fd;           /* the usbmuxd socket's directory (UNIX socket mode), or -1 */
	char sock_name[NAME_MAX + 1];
	uint64_t timer;
	char (*known)[FACTS_UDID_MAX]; /* sorted */
	size_t n_known;
	devmon_usbmuxd_fn mux_fn; /* agentev: usbmuxd lost / back */
	void *mux_data;
};

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

static void listen_start(struct devmon *dm);

static void listen_stop(struct devmon *dm)
{
	if (dm->retry)
		loop_cancel_timer(dm->loop, dm->retry);
	dm->retry = 0;
	if (dm->listen)
		loop_del_fd(dm->loop, idev_listen_fd(dm->listen));
	dm->listen = idev_listen_free(dm->listen);
	dm->listening = false;
}

static void on_retry(struct loop *loop, uint64_t id, void *data)
{
	struct devmon *dm = data;

	(void)loop;
	(void)id;
	dm->retry = 0;
	if (dm->listen && !dm->listening) {
		log_warn("usbmuxd did not answer Listen within %d s: connecting again",
		         DEVMON_LISTEN_TIMEOUT_MS / 1000);
		listen_stop(dm);
	}
	listen_start(dm);
}

static void retry_in(struct devmon *dm, uint64_t ms)
{
	if (dm->retry)
		loop_cancel_timer(dm->loop, dm->retry);
	dm->retry = loop_add_timer(dm->loop, ms, on_retry, dm);
	if (!dm->retry)
		log_error("usbmuxd events: cannot add a timer; relying on resync");
}

/* The connection ended or could not be made: try again later, sooner each time it works. */
static void listen_later(struct devmon *dm)
{
	retry_in(dm, dm->retry_ms);
	dm->retry_ms =
	        dm->retry_ms * 2 > DEVMON_RETRY_MAX_MS ? DEVMON_RETRY_MAX_MS : dm->retry_ms * 2;
}

/* Loop thread (from idev_listen_read()): one usbmuxd event. */
static void on_mux_event(enum idev_mux_event ev, const char *udid, void *data)
{
	struct devmon *dm = data;

	switch (ev) {
	case IDEV_MUX_LISTENING:
		dm->listening = true;
		dm->listening_since = loop_now_ms();
		if (dm->retry)
			loop_cancel_timer(dm->loop, dm->retry);
		dm->retry = 0;
		if (dm->listen_lost) {
			log_info("usbmuxd events: listening again");
			dm->listen_lost = false;
			/* what changed while no connection listened, and usbmuxd_back */
			devmon_resync(dm);
		}
		break;
	case IDEV_MUX_ATTACHED:
		if (known_add(dm, udid))
			emit(dm, DEVMON_ATTACHED, udid);
		break;
	case IDEV_MUX_DETACHED:
		if (known_del(dm, udid))
			emit(dm, DEVMON_DETACHED, udid);
		break;
	case IDEV_MUX_PAIRED:
		if (find_known(dm, udid))
			emit(dm, DEVMON_PAIRED, udid);
		break;
	}
}

/* Loop thread: the Listen connection is readable (events, or its end). */
static void on_listen_io(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct devmon *dm = data;
	int r;

	(void)loop;
	(void)fd;
	(void)events;
	r = idev_listen_read(dm->listen);
	if (r >= 0)
		return;
	if (r == -ECONNRESET)
		log_info("usbmuxd closed the event connection: resyncing, connecting again");
	else
		log_warn("usbmuxd event connection: %s; resyncing, connecting again", strerror(-r));
	if (dm->listening && loop_now_ms() - dm->listening_since >= DEVMON_LISTEN_STABLE_MS)
		dm->retry_ms = DEVMON_RETRY_MIN_MS;
	listen_stop(dm);
	dm->listen_lost = true;
	/* usbmuxd gone (all detached, usbmuxd_lost) or already back: the list says which */
	devmon_resync(dm);
	listen_later(dm);
}

/* Opens the Listen connection, or schedules the next try. */
static void listen_start(struct devmon *dm)
{
	int r;

	if (dm->listen)
		return;
	r = idev_listen_open(on_mux_event, dm, &dm->listen);
	if (r == 0) {
		r = loop_add_fd(dm->loop, idev_listen_fd(dm->listen), EPOLLIN, on_listen_io, dm);
		if (r < 0) {
			log_error("usbmuxd events: cannot watch the connection: %s", strerror(-r));
			dm->listen = idev_listen_free(dm->listen);
		}
	}
	if (r < 0) {
		/* usbmuxd absent is the idle state of a station: the resync logs that */
		if (r == -EINVAL && !dm->listen_lost)
			log_error("USBMUXD_SOCKET_ADDRESS is neither UNIX:/path nor a numeric "
			          "HOST:PORT: no usbmuxd events, only the resync");
		else if (r != -ENOENT && r != -ECONNREFUSED && !dm->listen_lost)
			log_warn("usbmuxd events: cannot connect: %s; trying again", strerror(-r));
		dm->listen_lost = true;
		listen_later(dm);
		return;
	}
	/* the answer's deadline */
	retry_in(dm, DEVMON_LISTEN_TIMEOUT_MS);
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
		/* a waiting reconnection goes now; a connection that was made is left alone: if
		 * the socket it used is gone, its end comes as EOF */
		if (!dm->listen) {
			dm->retry_ms = DEVMON_RETRY_MIN_MS;
			retry_in(dm, 0);
		}
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

	if (!loop || !fn)
		return NULL;
	dm = calloc(1, sizeof(*dm));
	if (!dm)
		return NULL;
	dm->known = calloc(IDEV_LIST_MAX, sizeof(*dm->known));
	if (!dm->known) {
		free(dm);
		return NULL;
	}
	dm->loop = loop;
	dm->inotify_fd = -1;
	dm->resync_ms = resync_ms ? resync_ms : DEVMON_RESYNC_DEFAULT;
	dm->retry_ms = DEVMON_RETRY_MIN_MS;
	dm->fn = fn;
	dm->data = data;
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
	listen_start(dm);
	watch_socket(dm);
	dm->timer = loop_add_timer(dm->loop, 0, on_timer, dm);
	return dm->timer ? 0 : -ENOMEM;
}

struct devmon *devmon_free(struct devmon *dm)
{
	if (!dm)
		return NULL;
	listen_stop(dm);
	if (dm->timer)
		loop_cancel_timer(dm->loop, dm->timer);
	if (dm->inotify_fd >= 0) {
		loop_del_fd(dm->loop, dm->inotify_fd);
		close(dm->inotify_fd);
	}
	free(dm->known);
	free(dm);
	return NULL;
}
