/* SPDX-License-Identifier: MIT */
/*
 * agentev: see agentev.h. Three small state machines (usbmuxd, disk, outbox) and one table of
 * refusal reasons, each with its own aggregation window. One timer serves all windows: it is
 * armed for the earliest window end, and every window that has ended is flushed (count > 0:
 * one event, and the next window opens) or closed (nothing counted: the next refusal of that
 * reason is reported at once again).
 */
#include "agentev.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "durable.h"
#include "log.h"
#include "loop.h"
#include "outbox.h"

#define AGENTEV_REASONS_MAX        32 /* refusal reasons tracked; v1 has about a dozen */
#define AGENTEV_DEFAULT_MS         60000
#define AGENTEV_OUTBOX_RECHECK_MS  1000 /* while under pressure: acks drain it without a put */
#define AGENTEV_FREE_AFTER_FAILURE (256 * 1024) /* free space for disk_ok after failed writes */

struct reason_window {
	char reason[PROTO_CODE_MAX];
	bool open;
	uint64_t end_ms;           /* monotonic end of the window */
	int64_t count;             /* refusals in this window, not yet published */
	int64_t first_at, last_at; /* wall s */
	char detail[PROTO_TEXT_MAX];
};

enum mux_state { MUX_UNKNOWN, MUX_UP, MUX_DOWN };

struct agentev {
	struct loop *loop;
	struct agentev_config cfg;
	agentev_emit_fn emit;
	void *data;

	struct reason_window reasons[AGENTEV_REASONS_MAX];
	int n_reasons;
	uint64_t security_timer;

	enum mux_state mux;
	bool mux_lost_sent;
	uint64_t mux_down_ms;
	size_t mux_devices; /* listed by the last listing that worked */

	uint64_t disk_timer;
	bool disk_low;
	bool disk_failed;       /* the free space could not be read last time: logged once */
	bool write_failing;     /* an outbox write failed and none has worked since */
	bool disk_emitting;     /* publishing a disk event may fail to write too */
	int64_t write_failures; /* since disk_low */
	int64_t best_effort;
	int64_t held;

	bool outbox_pressure;
	bool outbox_checking; /* publishing from inside a check puts into the outbox */
	uint64_t outbox_timer;
	uint64_t seen_dropped, seen_superseded; /* counters at the last check */
	uint64_t base_dropped, base_superseded; /* counters when the pressure began */
};

static void emit(struct agentev *ae, struct proto_agent_event *ev, const char *key)
{
	log_debug("agent event %s", proto_agent_event_name(ev->event));
	ae->emit(ae->data, ev, key);
}

static void event_init(struct proto_agent_event *ev, enum proto_agent_event_kind kind)
{
	memset(ev, 0, sizeof(*ev));
	ev->event = kind;
}

/* ---- security_rejected ---- */

static void publish_window(struct agentev *ae, const struct reason_window *w, int64_t count)
{
	struct proto_agent_event ev;

	event_init(&ev, PROTO_AGENT_EVENT_SECURITY_REJECTED);
	memcpy(ev.security.reason, w->reason, sizeof(ev.security.reason));
	ev.security.count = count;
	ev.security.first_at = w->first_at;
	ev.security.last_at = w->last_at;
	ev.security.interval_s = (int64_t)(ae->cfg.security_interval_ms / 1000);
	memcpy(ev.security.detail, w->detail, sizeof(ev.security.detail));
	emit(ae, &ev, NULL);
}

static void on_security_timer(struct loop *loop, uint64_t id, void *data);

/* Arms the one timer for the earliest open window. */
static void arm_security_timer(struct agentev *ae)
{
	uint64_t now = loop_now_ms(), first = UINT64_MAX;
	int i;

	if (ae->security_timer)
		loop_cancel_timer(ae->loop, ae->security_timer);
	ae->security_timer = 0;
	for (i = 0; i < ae->n_reasons; i++)
		if (ae->reasons[i].open && ae->reasons[i].end_ms < first)
			first = ae->reasons[i].end_ms;
	if (first == UINT64_MAX)
		return;
	ae->security_timer =
	        loop_add_timer(ae->loop, first > now ? first - now : 0, on_security_timer, ae);
	if (!ae->security_timer)
		log_warn("agent events: cannot add a timer, refusal counts wait for the next one");
}

static void on_security_timer(struct loop *loop, uint64_t id, void *data)
{
	struct agentev *ae = data;
	uint64_t now = loop_now_ms();
	int i;

	(void)loop;
	(void)id;
	ae->security_timer = 0;
	for (i = 0; i < ae->n_reasons; i++) {
		struct reason_window *w = &ae->reasons[i];

		if (!w->open || w->end_ms > now)
			continue;
		if (w->count == 0) {
			w->open = false;
			continue;
		}
		publish_window(ae, w, w->count);
		w->count = 0;
		w->end_ms = now + ae->cfg.security_interval_ms;
	}
	arm_security_timer(ae);
}

static struct reason_window *window_get(struct agentev *ae, const char *reason)
{
	struct reason_window *w;
	int i;

	for (i = 0; i < ae->n_reasons; i++)
		if (strcmp(ae->reasons[i].reason, reason) == 0)
			return &ae->reasons[i];
	if (ae->n_reasons == AGENTEV_REASONS_MAX)
		return NULL;
	w = &ae->reasons[ae->n_reasons++];
	memset(w, 0, sizeof(*w));
	snprintf(w->reason, sizeof(w->reason), "%s", reason);
	return w;
}

void agentev_command_rejected(struct agentev *ae, const char *reason, const char *detail)
{
	int64_t now_s = wall_now_ms() / 1000;
	struct reason_window *w;

	if (!ae || !reason || strcmp(reason, "internal") == 0)
		return; /* "internal" is our own disk failing, not a hostile sender */
	w = window_get(ae, proto_code_valid(reason) ? reason : "unknown");
	if (!w) {
		log_warn("agent events: too many refusal reasons, '%s' not reported", reason);
		return;
	}
	if (w->count == 0)
		w->first_at = now_s;
	w->last_at = now_s;
	proto_text_copy(w->detail, sizeof(w->detail), detail ? detail : "");
	if (w->open) {
		w->count++;
		return;
	}
	/* the first refusal after a quiet window is news: report it now, count the rest */
	publish_window(ae, w, 1);
	w->open = true;
	w->count = 0;
	w->end_ms = loop_now_ms() + ae->cfg.security_interval_ms;
	arm_security_timer(ae);
}

void agentev_flush(struct agentev *ae)
{
	int i;

	if (!ae)
		return;
	for (i = 0; i < ae->n_reasons; i++) {
		struct reason_window *w = &ae->reasons[i];

		if (w->open && w->count > 0)
			publish_window(ae, w, w->count);
		w->count = 0;
		w->open = false;
	}
	arm_security_timer(ae);
}

/* ---- usbmuxd ---- */

void agentev_usbmuxd(struct agentev *ae, bool up, size_t devices)
{
	struct proto_agent_event ev;
	uint64_t now = loop_now_ms();

	if (!ae)
		return;
	/* only changes after the first listing: an agent started while usbmuxd is away (no phone
	 * plugged, the normal idle state) has lost nothing */
	if (up && ae->mux == MUX_DOWN && ae->mux_lost_sent) {
		event_init(&ev, PROTO_AGENT_EVENT_USBMUXD_BACK);
		ev.usbmuxd.devices = (int64_t)devices;
		ev.usbmuxd.down_s = (int64_t)((now - ae->mux_down_ms) / 1000);
		emit(ae, &ev, NULL);
		ae->mux_lost_sent = false;
	} else if (!up && ae->mux == MUX_UP) {
		/* not the devices known now: libusbmuxd reports every phone removed as soon as its
		 * event socket breaks, before the listing fails */
		event_init(&ev, PROTO_AGENT_EVENT_USBMUXD_LOST);
		ev.usbmuxd.devices = (int64_t)ae->mux_devices;
		emit(ae, &ev, NULL);
		ae->mux_lost_sent = true;
		ae->mux_down_ms = now;
	}
	ae->mux = up ? MUX_UP : MUX_DOWN;
	if (up)
		ae->mux_devices = devices;
}

/* ---- disk ---- */

static void on_disk_timer(struct loop *loop, uint64_t id, void *data);

static void disk_check(struct agentev *ae)
{
	struct proto_agent_event ev;
	uint64_t free_b, total_b, floor = ae->cfg.disk_low_free;
	int r;
	bool low;

	if (!ae->cfg.disk_path)
		return;
	r = durable_free_bytes(ae->cfg.disk_path, &free_b, &total_b);
	if (r < 0) {
		if (!ae->disk_failed)
			log_warn_errno(r, "agent events: cannot read the free space of '%s'",
			               ae->cfg.disk_path);
		ae->disk_failed = true;
		return;
	}
	ae->disk_failed = false;
	/* back to ok only 10 % above the floor: a value hovering at it must not flap; and not
	 * while the outbox still cannot write */
	low = (ae->disk_low ? free_b < floor + floor / 10 : free_b < floor) || ae->write_failing;
	/* after failed writes, one that worked may only have filled a page already allocated */
	if (ae->disk_low && ae->write_failures && free_b < AGENTEV_FREE_AFTER_FAILURE)
		low = true;
	if (low == ae->disk_low)
		return;
	ae->disk_low = low;
	event_init(&ev, low ? PROTO_AGENT_EVENT_DISK_LOW : PROTO_AGENT_EVENT_DISK_OK);
	proto_text_copy(ev.disk.path, sizeof(ev.disk.path), ae->cfg.disk_path);
	ev.disk.free_bytes = free_b;
	ev.disk.total_bytes = total_b;
	ev.disk.floor_bytes = floor;
	ev.disk.write_failures = ae->write_failures;
	ev.disk.best_effort = ae->best_effort;
	ev.disk.held = ae->held;
	if (!low)
		ae->write_failures = ae->best_effort = 0;
	if (low && ae->write_failing)
		log_warn("outbox writes in '%s' fail (%llu KiB free): messages are published "
		         "best-effort or held in memory until space comes back",
		         ae->cfg.disk_path, (unsigned long long)(free_b >> 10));
	else if (low)
		log_warn("free space of '%s' is %llu MiB, below disk_low_free (%llu MiB)",
		         ae->cfg.disk_path, (unsigned long long)(free_b >> 20),
		         (unsigned long long)(floor >> 20));
	else
		log_notice("free space of '%s' is back to %llu MiB", ae->cfg.disk_path,
		           (unsigned long long)(free_b >> 20));
	ae->disk_emitting = true;
	emit(ae, &ev, NULL);
	ae->disk_emitting = false;
}

void agentev_write_failed(struct agentev *ae, bool best_effort, uint64_t held)
{
	if (!ae)
		return;
	ae->write_failures++;
	if (best_effort)
		ae->best_effort++;
	ae->held = (int64_t)held;
	ae->write_failing = true;
	if (ae->disk_emitting || ae->disk_low)
		return;
	disk_check(ae); /* low now, whatever the floor */
	/* watched from now on, also with no floor set, so disk_ok follows the recovery */
	if (!ae->disk_timer)
		ae->disk_timer = loop_add_timer(ae->loop, ae->cfg.disk_check_ms, on_disk_timer, ae);
}

void agentev_write_ok(struct agentev *ae)
{
	if (!ae)
		return;
	if (!ae->write_failing)
		return;
	ae->write_failing = false;
	ae->held = 0;
	if (ae->disk_low && !ae->disk_emitting)
		disk_check(ae); /* disk_ok now if there is room again */
}

static void on_disk_timer(struct loop *loop, uint64_t id, void *data)
{
	struct agentev *ae = data;

	(void)id;
	ae->disk_timer = 0;
	disk_check(ae);
	/* with no floor set, only while a write failure is being watched */
	if (ae->cfg.disk_low_free || ae->disk_low)
		ae->disk_timer = loop_add_timer(loop, ae->cfg.disk_check_ms, on_disk_timer, ae);
}

/* ---- outbox ---- */

static void outbox_details(const struct agentev *ae, const struct outbox_stats *st,
                           struct proto_outbox_details *d)
{
	d->dropped = (int64_t)(st->dropped - ae->base_dropped);
	d->superseded = (int64_t)(st->superseded - ae->base_superseded);
	d->records = (int64_t)st->depth;
	d->bytes = (int64_t)st->bytes;
	d->max_records = (int64_t)ae->cfg.outbox_max_records;
	d->max_bytes = (int64_t)ae->cfg.outbox_max_bytes;
}

static void on_outbox_timer(struct loop *loop, uint64_t id, void *data)
{
	struct agentev *ae = data;

	(void)loop;
	(void)id;
	ae->outbox_timer = 0;
	agentev_outbox_check(ae);
}

void agentev_outbox_check(struct agentev *ae)
{
	struct proto_agent_event ev;
	struct outbox_stats st;

	if (!ae || !ae->cfg.outbox || ae->outbox_checking)
		return;
	ae->outbox_checking = true;
	outbox_get_stats(ae->cfg.outbox, &st);
	if (!ae->outbox_pressure &&
	    st.dropped + st.superseded > ae->seen_dropped + ae->seen_superseded) {
		ae->outbox_pressure = true;
		ae->base_dropped = ae->seen_dropped;
		ae->base_superseded = ae->seen_superseded;
		event_init(&ev, PROTO_AGENT_EVENT_OUTBOX_PRESSURE);
		outbox_details(ae, &st, &ev.outbox);
		emit(ae, &ev, AGENTEV_OUTBOX_KEY);
	} else if (ae->outbox_pressure && st.depth <= ae->cfg.outbox_max_records / 2 &&
	           st.bytes <= ae->cfg.outbox_max_bytes / 2) {
		ae->outbox_pressure = false;
		event_init(&ev, PROTO_AGENT_EVENT_OUTBOX_OK);
		outbox_details(ae, &st, &ev.outbox);
		emit(ae, &ev, AGENTEV_OUTBOX_KEY);
	}
	/* the events just put may have moved the counters: they belong to this episode */
	outbox_get_stats(ae->cfg.outbox, &st);
	ae->seen_dropped = st.dropped;
	ae->seen_superseded = st.superseded;
	if (ae->outbox_pressure && !ae->outbox_timer)
		ae->outbox_timer =
		        loop_add_timer(ae->loop, AGENTEV_OUTBOX_RECHECK_MS, on_outbox_timer, ae);
	ae->outbox_checking = false;
}

void agentev_outbox_damaged(struct agentev *ae, const struct outbox_damage *d)
{
	struct proto_agent_event ev;

	if (!ae || !d || !d->damaged)
		return;
	event_init(&ev, PROTO_AGENT_EVENT_OUTBOX_DAMAGED);
	ev.damage.lost_records = (int64_t)d->lost_records;
	ev.damage.first_seq = (int64_t)d->first_seq;
	ev.damage.last_seq = (int64_t)d->last_seq;
	ev.damage.bytes_skipped = (int64_t)d->bytes_skipped;
	ev.damage.empty = d->empty;
	/* under its own key: stored like a state, never dropped by an overflow */
	emit(ae, &ev, AGENTEV_DAMAGE_KEY);
}

/* ---- lifetime ---- */

struct agentev *agentev_new(struct loop *loop, const struct agentev_config *cfg,
                            agentev_emit_fn emit_fn, void *data)
{
	struct agentev *ae;
	struct outbox_stats st;

	if (!loop || !cfg || !emit_fn)
		return NULL;
	ae = calloc(1, sizeof(*ae));
	if (!ae)
		return NULL;
	ae->loop = loop;
	ae->cfg = *cfg;
	ae->emit = emit_fn;
	ae->data = data;
	if (!ae->cfg.disk_check_ms)
		ae->cfg.disk_check_ms = AGENTEV_DEFAULT_MS;
	if (!ae->cfg.security_interval_ms)
		ae->cfg.security_interval_ms = AGENTEV_DEFAULT_MS;
	if (ae->cfg.outbox) {
		/* what the outbox did before we watched (replay at open) is not pressure */
		outbox_get_stats(ae->cfg.outbox, &st);
		ae->seen_dropped = st.dropped;
		ae->seen_superseded = st.superseded;
	}
	if (ae->cfg.disk_low_free && ae->cfg.disk_path) {
		ae->disk_timer = loop_add_timer(loop, 0, on_disk_timer, ae);
		if (!ae->disk_timer) {
			free(ae);
			return NULL;
		}
	}
	return ae;
}

struct agentev *agentev_free(struct agentev *ae)
{
	if (!ae)
		return NULL;
	if (ae->security_timer)
		loop_cancel_timer(ae->loop, ae->security_timer);
	if (ae->disk_timer)
		loop_cancel_timer(ae->loop, ae->disk_timer);
	if (ae->outbox_timer)
		loop_cancel_timer(ae->loop, ae->outbox_timer);
	free(ae);
	return NULL;
}
