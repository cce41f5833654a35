/* SPDX-License-Identifier: MIT */
/*
 * watch: see watch.h. One list of phones (hundreds per station cost microseconds per line),
 * each with its ring, its stream state and its debounce timer. The helper's lines are parsed
 * strictly: anything that is not one of its four events is logged once and ignored.
 */
#include "watch.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "child.h"
#include "log.h"
#include "loop.h"
#include "topics.h"

#define WATCH_LINE_MAX    4096
#define WATCH_DEBOUNCE_MS 2000
#define WATCH_EXPIRY_S    (24 * 3600)
#define WATCH_RESTART_MIN 1000
#define WATCH_RESTART_MAX 60000

struct wphone {
	struct watch *w;
	char udid[FACTS_UDID_MAX];
	bool up, np;
	bool detached;       /* the registry saw it leave; the next "up" starts a new ring */
	int64_t up_since_ms; /* wall ms of the current stream's "up" */
	int64_t detached_ms;
	uint64_t debounce_timer;
	bool pending;       /* a change arrived during the debounce */
	bool pending_probe; /* ... and it was a domain_changed */
	bool window_probe;  /* the call that opened the current quiet time was a probe */
	int n;
	struct facts_evline ring[WATCH_RING];
	struct wphone *next;
};

struct watch {
	struct loop *loop;
	struct watch_config cfg;
	watch_changed_fn changed;
	void *data;
	struct child *child;
	uint64_t restart_timer;
	uint64_t restart_ms;
	int64_t started_ms;
	struct wphone *phones;
	bool warned_bad;
	bool dying;
	bool *gone; /* watch_free()'s flag: the helper was reaped and w freed */
};

static int helper_start(struct watch *w);

static struct wphone *phone_find(struct watch *w, const char *udid)
{
	struct wphone *p;

	for (p = w->phones; p; p = p->next)
		if (strcmp(p->udid, udid) == 0)
			return p;
	return NULL;
}

static struct wphone *phone_get(struct watch *w, const char *udid)
{
	struct wphone *p = phone_find(w, udid);

	if (p || !topics_udid_valid(udid))
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->w = w;
	snprintf(p->udid, sizeof(p->udid), "%s", udid);
	p->next = w->phones;
	w->phones = p;
	return p;
}

static void phone_free(struct watch *w, struct wphone *p)
{
	if (p->debounce_timer)
		loop_cancel_timer(w->loop, p->debounce_timer);
	free(p);
}

/* Drops the rings of phones detached longer than the expiry. */
static void expire(struct watch *w, int64_t now_ms)
{
	struct wphone **pp = &w->phones, *p;

	while ((p = *pp)) {
		if (p->detached && !p->up &&
		    now_ms - p->detached_ms > w->cfg.ring_expiry_s * 1000) {
			*pp = p->next;
			phone_free(w, p);
			continue;
		}
		pp = &p->next;
	}
}

static void on_debounce(struct loop *loop, uint64_t id, void *data)
{
	struct wphone *p = data;
	bool probe = p->pending_probe;

	(void)loop;
	(void)id;
	p->debounce_timer = 0;
	if (!p->pending)
		return;
	p->pending = p->pending_probe = false;
	p->window_probe = probe;
	p->w->changed(p->udid, probe, p->w->data);
	/* a change during the quiet time after this call runs at its end */
	p->debounce_timer = loop_add_timer(p->w->loop, p->w->cfg.debounce_ms, on_debounce, p);
}

/*
 * The first change calls at once; more within debounce_ms make one call at its end. A probe
 * does not wait behind the quiet time of a line (a backup's last line and its domain_changed
 * come together): it calls at once and opens a quiet time of its own.
 */
static void phone_changed(struct wphone *p, bool probe)
{
	p->pending = true;
	p->pending_probe |= probe;
	if (p->debounce_timer && (!probe || p->window_probe))
		return;
	if (p->debounce_timer)
		loop_cancel_timer(p->w->loop, p->debounce_timer);
	p->debounce_timer = 0;
	on_debounce(p->w->loop, 0, p);
}

/*
 * Adds a line; false for a line the ring already holds (a relay that replays its buffer on a
 * reconnect: the header's timestamp makes a repeated text the same event).
 */
static bool ring_add(struct wphone *p, int64_t t_ms, const char *text)
{
	int i;

	for (i = 0; i < p->n; i++)
		if (strcmp(p->ring[i].text, text) == 0)
			return false;
	if (p->n == WATCH_RING) {
		memmove(&p->ring[0], &p->ring[1], sizeof(p->ring[0]) * (WATCH_RING - 1));
		p->n--;
	}
	p->ring[p->n].t_ms = t_ms;
	snprintf(p->ring[p->n].text, sizeof(p->ring[p->n].text), "%s", text);
	p->n++;
	return true;
}

static void bad_line(struct watch *w, const char *why)
{
	if (w->warned_bad)
		return;
	w->warned_bad = true;
	log_warn("cradle-agent-watch: ignoring a bad line (%s); further ones are not logged", why);
}

static void helper_line(struct child *c, const char *line, void *data)
{
	struct watch *w = data;
	cJSON *o = cJSON_Parse(line);
	const cJSON *udid, *ev, *np, *t, *text;
	struct wphone *p;

	(void)c;
	if (w->dying)
		goto out; /* watch_free() waits for the exit: no more calls to the owner */
	if (!o || !cJSON_IsObject(o)) {
		bad_line(w, "not a JSON object");
		goto out;
	}
	udid = cJSON_GetObjectItemCaseSensitive(o, "udid");
	ev = cJSON_GetObjectItemCaseSensitive(o, "ev");
	if (!cJSON_IsString(udid) || !cJSON_IsString(ev)) {
		bad_line(w, "no udid or ev");
		goto out;
	}
	p = phone_get(w, udid->valuestring);
	if (!p) {
		bad_line(w, "unusable udid");
		goto out;
	}
	if (strcmp(ev->valuestring, "up") == 0) {
		np = cJSON_GetObjectItemCaseSensitive(o, "np");
		if (p->detached) {
			/* docked again: the last docking's lines are history */
			p->detached = false;
			if (p->n > 0) {
				p->n = 0;
				phone_changed(p, false);
			}
		}
		p->up = true;
		p->np = cJSON_IsTrue(np);
		p->up_since_ms = wall_now_ms();
		log_debug("device '%s': evidence capture up%s", p->udid,
		          p->np ? "" : " (no notification_proxy: re-probed on the interval)");
	} else if (strcmp(ev->valuestring, "down") == 0) {
		p->up = false;
		p->np = false;
	} else if (strcmp(ev->valuestring, "line") == 0) {
		t = cJSON_GetObjectItemCaseSensitive(o, "t");
		text = cJSON_GetObjectItemCaseSensitive(o, "text");
		if (!cJSON_IsNumber(t) || !cJSON_IsString(text) || t->valuedouble < 0) {
			bad_line(w, "line without t or text");
			goto out;
		}
		if (ring_add(p, (int64_t)t->valuedouble, text->valuestring))
			phone_changed(p, false);
	} else if (strcmp(ev->valuestring, "changed") == 0) {
		log_debug("device '%s': backup domain changed", p->udid);
		phone_changed(p, true);
	} else {
		bad_line(w, "unknown ev");
	}
out:
	cJSON_Delete(o);
}

static void on_restart(struct loop *loop, uint64_t id, void *data)
{
	struct watch *w = data;

	(void)loop;
	(void)id;
	w->restart_timer = 0;
	if (helper_start(w) < 0)
		w->restart_timer = loop_add_timer(w->loop, w->restart_ms, on_restart, w);
}

static void helper_exit(struct child *c, int status, bool timed_out, void *data)
{
	struct watch *w = data;
	struct wphone *p;
	int64_t now = wall_now_ms();

	(void)c;
	(void)timed_out;
	w->child = NULL;
	if (w->dying) {
		/* watch_free() is waiting: it frees w after its loop (the owner may still call
		 * watch_merge() in this iteration); after it gave up, nobody else will */
		if (w->gone)
			*w->gone = true;
		else
			free(w);
		return;
	}
	for (p = w->phones; p; p = p->next)
		p->up = p->np = false;
	/* a helper that ran a while is restarted at once; one that keeps dying, ever slower */
	if (now - w->started_ms > WATCH_RESTART_MAX)
		w->restart_ms = WATCH_RESTART_MIN;
	log_warn("cradle-agent-watch ended (status %d): restarting in %llu ms", status,
	         (unsigned long long)w->restart_ms);
	w->restart_timer = loop_add_timer(w->loop, w->restart_ms, on_restart, w);
	w->restart_ms =
	        w->restart_ms * 2 > WATCH_RESTART_MAX ? WATCH_RESTART_MAX : w->restart_ms * 2;
}

static const struct child_ops helper_ops = {
	.line = helper_line,
	.exit = helper_exit,
};

static int helper_start(struct watch *w)
{
	char rescan[24];
	const char *argv[4];
	int n = 0, r;

	argv[n++] = w->cfg.helper;
	if (w->cfg.rescan_ms > 0) {
		snprintf(rescan, sizeof(rescan), "--rescan-ms=%d", w->cfg.rescan_ms);
		argv[n++] = rescan;
	}
	argv[n] = NULL;
	expire(w, wall_now_ms());
	w->started_ms = wall_now_ms();
	r = child_spawn(w->loop, argv, 0, WATCH_LINE_MAX, &helper_ops, w, &w->child);
	if (r < 0)
		log_error_errno(r, "cannot start %s: no evidence capture until it starts",
		                w->cfg.helper);
	return r;
}

struct watch *watch_new(struct loop *loop, const struct watch_config *cfg, watch_changed_fn changed,
                        void *data)
{
	struct watch *w;

	if (!loop || !cfg || !cfg->helper || !changed)
		return NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	w->loop = loop;
	w->cfg = *cfg;
	if (!w->cfg.debounce_ms)
		w->cfg.debounce_ms = WATCH_DEBOUNCE_MS;
	if (w->cfg.ring_expiry_s <= 0)
		w->cfg.ring_expiry_s = WATCH_EXPIRY_S;
	w->changed = changed;
	w->data = data;
	w->restart_ms = WATCH_RESTART_MIN;
	if (helper_start(w) < 0)
		w->restart_timer = loop_add_timer(loop, w->restart_ms, on_restart, w);
	return w;
}

void watch_presence(struct watch *w, const char *udid, bool attached)
{
	struct wphone *p;

	if (!w)
		return;
	expire(w, wall_now_ms());
	p = phone_find(w, udid);
	if (!p || attached)
		return;
	p->detached = true;
	p->detached_ms = wall_now_ms();
}

void watch_merge(struct watch *w, const char *udid, struct device_facts *f)
{
	struct wphone *p = w ? phone_find(w, udid) : NULL;

	f->capture_on = false;
	f->capture_since_unix = 0;
	f->n_ring = 0;
	if (!p)
		return;
	f->capture_on = p->up;
	f->capture_since_unix = p->up ? p->up_since_ms / 1000 : 0;
	f->n_ring = p->n;
	memcpy(f->ring, p->ring, sizeof(p->ring[0]) * (size_t)p->n);
}

bool watch_notifies(struct watch *w, const char *udid)
{
	struct wphone *p = w ? phone_find(w, udid) : NULL;

	return p && p->up && p->np;
}

static void on_stop_tick(struct loop *loop, uint64_t id, void *data)
{
	(void)id;
	(void)data;
	loop_stop(loop);
}

struct watch *watch_free(struct watch *w)
{
	struct wphone *p, *next;
	struct loop *loop;
	uint64_t deadline;
	bool gone = false;

	if (!w)
		return NULL;
	loop = w->loop;
	if (w->restart_timer)
		loop_cancel_timer(w->loop, w->restart_timer);
	w->restart_timer = 0;
	for (p = w->phones; p; p = next) {
		next = p->next;
		phone_free(w, p);
	}
	w->phones = NULL;
	if (!w->child) {
		free(w);
		return NULL;
	}
	/* freed here once the loop has reaped the helper: run the loop until then
	 * (SIGTERM ends it at once, SIGKILL follows after the grace) */
	w->dying = true;
	child_terminate(w->child);
	deadline = loop_now_ms() + CHILD_KILL_GRACE_MS + 1000;
	w->gone = &gone;
	while (!gone && loop_now_ms() < deadline) {
		loop_add_timer(loop, 50, on_stop_tick, NULL);
		loop_run(loop);
	}
	if (gone)
		free(w);
	else
		w->gone = NULL; /* helper_exit() frees it if the helper is ever reaped */
	return NULL;
}
