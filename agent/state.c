/* SPDX-License-Identifier: MIT */
/*
 * state: facts + diagnosis -> struct proto_device_state (and its JSON), plus transition events.
 *
 * The only place where the agent's internal view (struct device_facts, struct diagnosis) meets
 * the wire contract (struct proto_device_state): enum values are mapped by explicit tables, not
 * by relying on equal ordering, and facts strings are copied with bounds because they come from
 * the probe helper process. DeviceName is personal data (often the owner's name), so it is
 * published only when the configuration says so; otherwise the member is omitted, which
 * consumers can tell apart from null (= unknown).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "state.h"

static const enum proto_pairing pairing_map[_FACTS_PAIRING_MAX] = {
	[FACTS_PAIRING_PAIRED] = PROTO_PAIRING_PAIRED,
	[FACTS_PAIRING_UNPAIRED] = PROTO_PAIRING_UNPAIRED,
	[FACTS_PAIRING_TRUST_PENDING] = PROTO_PAIRING_TRUST_PENDING,
	[FACTS_PAIRING_DENIED] = PROTO_PAIRING_DENIED,
	[FACTS_PAIRING_INVALID] = PROTO_PAIRING_INVALID,
};

static const enum proto_probe probe_map[_FACTS_PROBE_MAX] = {
	[FACTS_PROBE_OK] = PROTO_PROBE_OK,
	[FACTS_PROBE_NOT_TRUSTED] = PROTO_PROBE_NOT_TRUSTED,
	[FACTS_PROBE_LOCKED] = PROTO_PROBE_LOCKED,
	[FACTS_PROBE_GONE] = PROTO_PROBE_GONE,
	[FACTS_PROBE_TIMEOUT] = PROTO_PROBE_TIMEOUT,
	[FACTS_PROBE_ERROR] = PROTO_PROBE_ERROR,
};

static const enum proto_status status_map[_DIAGNOSE_STATUS_MAX] = {
	[DIAGNOSE_OK] = PROTO_STATUS_OK,
	[DIAGNOSE_STALE] = PROTO_STATUS_STALE,
	[DIAGNOSE_UNKNOWN] = PROTO_STATUS_UNKNOWN,
};

/* Bounded copy from a fixed-size source field that may lack its terminator. */
#define COPY(dst, src) snprintf((dst), sizeof(dst), "%.*s", (int)sizeof(src) - 1, (src))

void state_build(const struct device_facts *f, const struct diagnosis *dx, bool attached,
                 bool publish_device_name, struct proto_device_state *ret)
{
	int i, n;

	memset(ret, 0, sizeof(*ret));
	COPY(ret->udid, f->udid);
	ret->attached = attached;
	ret->has_probed_at = f->probed_at_ms > 0;
	ret->probed_at = f->probed_at_ms / 1000;

	COPY(ret->product_type, f->product_type);
	COPY(ret->ios_version, f->ios_version);
	COPY(ret->build, f->build);
	COPY(ret->serial, f->serial);
	ret->has_name = publish_device_name;
	if (publish_device_name)
		COPY(ret->name, f->device_name);

	ret->pairing = (unsigned)f->pairing < _FACTS_PAIRING_MAX ? pairing_map[f->pairing]
	                                                         : PROTO_PAIRING_INVALID;

	ret->has_icloud_enabled = f->has_icloud_enabled;
	ret->icloud_enabled = f->icloud_enabled;
	ret->has_last_icloud = f->has_last_icloud;
	ret->last_icloud = f->last_icloud_unix;
	ret->has_last_local = f->has_last_local;
	ret->last_local = f->last_local_unix;
	ret->has_will_encrypt = f->has_will_encrypt;
	ret->will_encrypt = f->will_encrypt;
	ret->has_requires_encryption = f->has_requires_encryption;
	ret->requires_encryption = f->requires_encryption;
	ret->has_age = dx->age_s >= 0;
	ret->age_s = dx->age_s;

	ret->has_battery_pct = f->has_battery && f->battery_pct >= 0 && f->battery_pct <= 100;
	ret->battery_pct = f->battery_pct;
	ret->has_external_connected = f->has_battery;
	ret->external_connected = f->external_connected;
	ret->has_charging = f->has_battery;
	ret->charging = f->charging;

	ret->has_total_bytes = f->has_storage;
	ret->total_bytes = f->total_bytes;
	ret->has_available_bytes = f->has_storage;
	ret->available_bytes = f->available_bytes;

	ret->status = (unsigned)dx->status < _DIAGNOSE_STATUS_MAX ? status_map[dx->status]
	                                                          : PROTO_STATUS_UNKNOWN;
	n = dx->n_causes < 0 ? 0 : dx->n_causes;
	if (n > PROTO_MAX_CAUSES)
		n = PROTO_MAX_CAUSES;
	if (n > DIAGNOSE_MAX_CAUSES)
		n = DIAGNOSE_MAX_CAUSES;
	for (i = 0; i < n; i++) {
		const char *code = diagnose_cause_code(dx->causes[i].cause);
		struct proto_cause *c = &ret->causes[ret->n_causes];

		if (!code)
			continue;
		snprintf(c->code, sizeof(c->code), "%s", code);
		COPY(c->evidence, dx->causes[i].evidence);
		snprintf(c->remediation, sizeof(c->remediation), "%s",
		         diagnose_cause_remediation(dx->causes[i].cause));
		snprintf(c->complexity, sizeof(c->complexity), "%s",
		         diagnose_cause_complexity(dx->causes[i].cause));
		ret->n_causes++;
	}

	ret->probe =
	        (unsigned)f->probe < _FACTS_PROBE_MAX ? probe_map[f->probe] : PROTO_PROBE_ERROR;
	COPY(ret->error, f->error_text);
}

void state_set_header(struct proto_device_state *s, const struct state_ctx *ctx)
{
	memset(&s->h, 0, sizeof(s->h));
	snprintf(s->h.agent, sizeof(s->h.agent), "%s", ctx->agent ? ctx->agent : "");
	s->h.session = ctx->session;
	s->h.seq = ctx->seq;
	s->h.ts_ms = ctx->now_ms;
}

char *state_encode(const struct device_facts *facts, bool attached, const struct state_ctx *ctx,
                   struct diagnosis *ret_dx)
{
	struct diagnose_config defaults;
	const struct diagnose_config *cfg = ctx->diag;
	struct proto_device_state *s = NULL;
	struct diagnosis dx;
	char *json = NULL;

	if (!cfg) {
		diagnose_config_defaults(&defaults);
		cfg = &defaults;
	}
	/* ~5 KiB: keep it off the caller's (possibly small, loop-thread) stack */
	s = calloc(1, sizeof(*s));
	if (!s)
		goto out;
	diagnose(facts, cfg, ctx->now_ms / 1000, &dx);
	state_build(facts, &dx, attached, ctx->publish_device_name, s);
	state_set_header(s, ctx);
	json = proto_device_state_encode(s);
	if (json && ret_dx)
		*ret_dx = dx;
out:
	free(s);
	return json;
}

/* The message text without the members that change on every probe; caller frees. */
static char *comparable(const struct proto_device_state *s)
{
	struct proto_device_state *c = malloc(sizeof(*c));
	char *json = NULL;

	if (!c)
		return NULL;
	*c = *s;
	memset(&c->h, 0, sizeof(c->h));
	c->has_probed_at = false;
	c->has_age = false;
	json = proto_device_state_encode(c);
	free(c);
	return json;
}

int state_same(const struct proto_device_state *a, const struct proto_device_state *b)
{
	char *ja = comparable(a), *jb = comparable(b);
	int r = -ENOMEM;

	if (ja && jb)
		r = strcmp(ja, jb) == 0;
	free(ja);
	free(jb);
	return r;
}

static bool entered(bool was, bool is)
{
	return is && !was;
}

int state_events(const struct proto_device_state *prev, const struct proto_device_state *cur,
                 enum proto_event *ret, int max)
{
	static const struct {
		enum proto_pairing pairing;
		enum proto_event event;
	} pairing_events[] = {
		{ PROTO_PAIRING_TRUST_PENDING, PROTO_EVENT_TRUST_PROMPT },
		{ PROTO_PAIRING_DENIED, PROTO_EVENT_PAIRING_DENIED },
		{ PROTO_PAIRING_INVALID, PROTO_EVENT_PAIRING_INVALID },
	};
	int n = 0;
	size_t i;

#define EMIT(e)  \
 do {            \
  if (n < max)   \
   ret[n++] = e; \
 } while (0)

	for (i = 0; i < ARRAY_SIZE(pairing_events); i++)
		if (entered(prev && prev->pairing == pairing_events[i].pairing,
		            cur->pairing == pairing_events[i].pairing))
			EMIT(pairing_events[i].event);
	if (entered(prev && prev->probe >= PROTO_PROBE_GONE, cur->probe >= PROTO_PROBE_GONE))
		EMIT(PROTO_EVENT_PROBE_FAILED);
	if (entered(prev && prev->status == PROTO_STATUS_STALE, cur->status == PROTO_STATUS_STALE))
		EMIT(PROTO_EVENT_BACKUP_STALE);
	if (prev && prev->status == PROTO_STATUS_STALE && cur->status == PROTO_STATUS_OK)
		EMIT(PROTO_EVENT_BACKUP_OK);
#undef EMIT
	return n;
}

void state_event_details(enum proto_event ev, const struct device_facts *facts,
                         const struct proto_device_state *cur, struct proto_event_details *ret)
{
	int i;

	memset(ret, 0, sizeof(*ret));
	switch (ev) {
	case PROTO_EVENT_TRUST_PROMPT:
	case PROTO_EVENT_PAIRING_DENIED:
	case PROTO_EVENT_PAIRING_INVALID:
		ret->has_lockdown_error = facts->lockdown_error != 0;
		ret->lockdown_error = facts->lockdown_error;
		break;
	case PROTO_EVENT_BACKUP_STALE:
		ret->has_age_s = cur->has_age;
		ret->age_s = cur->age_s;
		for (i = 0; i < cur->n_causes && i < PROTO_MAX_CAUSES; i++)
			snprintf(ret->causes[ret->n_causes++], PROTO_CODE_MAX, "%s",
			         cur->causes[i].code);
		break;
	case PROTO_EVENT_BACKUP_OK:
		ret->has_last_icloud = cur->has_last_icloud;
		ret->last_icloud = cur->last_icloud;
		break;
	case PROTO_EVENT_PROBE_FAILED:
		ret->has_probe = true;
		ret->probe = cur->probe;
		snprintf(ret->error, sizeof(ret->error), "%s", cur->error);
		break;
	default:
		break;
	}
}
