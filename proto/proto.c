/* SPDX-License-Identifier: MIT */
/*
 * proto: JSON codec for agent status, agent meta, device state, device event and agent event
 * (cradle/v1).
 *
 * Encoding builds a cJSON tree from a flat struct; unknown values (has_* false, "" strings) go
 * out as null. Decoding is a strict reader for untrusted bytes from the broker: the size cap is
 * checked before cJSON sees the payload, then every required member is looked up by name with
 * its type, enum value, length and range checked, and copied into fixed-size fields, so a
 * decoded struct never points into the tree. Unknown members are ignored: v1 grows by adding
 * fields (proto/README.md, "Versioning").
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jsontext.h"
#include "macro.h"
#include "proto.h"
#include "timefmt.h"
#include "topics.h"

/* Integers on the wire stay within the range a double (and JavaScript) represents exactly. */
#define PROTO_INT_MAX 9007199254740991LL

static const char *const schema_names[_PROTO_TYPE_MAX] = {
	[PROTO_AGENT_STATUS] = "cradle.agent_status.v1",
	[PROTO_AGENT_META] = "cradle.agent_meta.v1",
	[PROTO_DEVICE_STATE] = "cradle.device_state.v1",
	[PROTO_DEVICE_EVENT] = "cradle.device_event.v1",
	[PROTO_AGENT_EVENT] = "cradle.agent_event.v1",
};

static const char *const pairing_names[_PROTO_PAIRING_MAX] = {
	[PROTO_PAIRING_PAIRED] = "paired",
	[PROTO_PAIRING_UNPAIRED] = "unpaired",
	[PROTO_PAIRING_TRUST_PENDING] = "trust_pending",
	[PROTO_PAIRING_DENIED] = "denied",
	[PROTO_PAIRING_INVALID] = "invalid",
};

static const char *const probe_names[_PROTO_PROBE_MAX] = {
	[PROTO_PROBE_OK] = "ok",           [PROTO_PROBE_NOT_TRUSTED] = "not_trusted",
	[PROTO_PROBE_LOCKED] = "locked",   [PROTO_PROBE_GONE] = "gone",
	[PROTO_PROBE_TIMEOUT] = "timeout", [PROTO_PROBE_ERROR] = "error",
};

static const char *const status_names[_PROTO_STATUS_MAX] = {
	[PROTO_STATUS_OK] = "ok",
	[PROTO_STATUS_STALE] = "stale",
	[PROTO_STATUS_UNKNOWN] = "unknown",
};

static const char *const event_names[_PROTO_EVENT_MAX] = {
	[PROTO_EVENT_ATTACHED] = "attached",
	[PROTO_EVENT_DETACHED] = "detached",
	[PROTO_EVENT_TRUST_PROMPT] = "trust_prompt",
	[PROTO_EVENT_PAIRING_DENIED] = "pairing_denied",
	[PROTO_EVENT_PAIRING_INVALID] = "pairing_invalid",
	[PROTO_EVENT_BACKUP_STALE] = "backup_stale",
	[PROTO_EVENT_BACKUP_OK] = "backup_ok",
	[PROTO_EVENT_BACKUP_STARTED] = "backup_started",
	[PROTO_EVENT_BACKUP_FINISHED] = "backup_finished",
	[PROTO_EVENT_BACKUP_FAILED] = "backup_failed",
	[PROTO_EVENT_PROBE_FAILED] = "probe_failed",
};

static const char *const agent_event_names[_PROTO_AGENT_EVENT_MAX] = {
	[PROTO_AGENT_EVENT_SECURITY_REJECTED] = "security_rejected",
	[PROTO_AGENT_EVENT_USBMUXD_LOST] = "usbmuxd_lost",
	[PROTO_AGENT_EVENT_USBMUXD_BACK] = "usbmuxd_back",
	[PROTO_AGENT_EVENT_DISK_LOW] = "disk_low",
	[PROTO_AGENT_EVENT_DISK_OK] = "disk_ok",
	[PROTO_AGENT_EVENT_OUTBOX_PRESSURE] = "outbox_pressure",
	[PROTO_AGENT_EVENT_OUTBOX_OK] = "outbox_ok",
	[PROTO_AGENT_EVENT_OUTBOX_DAMAGED] = "outbox_damaged",
};

static const char *const complexity_names[] = { "low", "medium", "high", "none" };

static const char *name_of(const char *const *names, int n, int v)
{
	if (v < 0 || v >= n)
		return NULL;
	return names[v];
}

const char *proto_schema_name(enum proto_type t)
{
	return name_of(schema_names, _PROTO_TYPE_MAX, (int)t);
}

const char *proto_pairing_name(enum proto_pairing p)
{
	return name_of(pairing_names, _PROTO_PAIRING_MAX, (int)p);
}

const char *proto_probe_name(enum proto_probe p)
{
	return name_of(probe_names, _PROTO_PROBE_MAX, (int)p);
}

const char *proto_status_name(enum proto_status s)
{
	return name_of(status_names, _PROTO_STATUS_MAX, (int)s);
}

const char *proto_event_name(enum proto_event e)
{
	return name_of(event_names, _PROTO_EVENT_MAX, (int)e);
}

static int index_of(const char *const *names, int n, const char *s)
{
	int i;

	for (i = 0; s && i < n; i++)
		if (names[i] && strcmp(names[i], s) == 0)
			return i;
	return -EINVAL;
}

int proto_event_from_name(const char *name, enum proto_event *ret)
{
	int i = index_of(event_names, _PROTO_EVENT_MAX, name);

	if (i >= 0)
		*ret = i;
	return i < 0 ? i : 0;
}

const char *proto_agent_event_name(enum proto_agent_event_kind e)
{
	return name_of(agent_event_names, _PROTO_AGENT_EVENT_MAX, (int)e);
}

int proto_agent_event_from_name(const char *name, enum proto_agent_event_kind *ret)
{
	int i = index_of(agent_event_names, _PROTO_AGENT_EVENT_MAX, name);

	if (i >= 0)
		*ret = i;
	return i < 0 ? i : 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	/* overlong forms, surrogates, beyond U+10FFFF */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

char *proto_text_copy(char *dst, size_t size, const char *src)
{
	const unsigned char *s = (const unsigned char *)(src ? src : "");
	size_t o = 0;

	if (size == 0)
		return dst;
	while (*s) {
		size_t n = utf8_len(s);

		if (n == 0 || (n == 1 && (*s < 0x20 || *s == 0x7f))) {
			/* tabs are common in log lines: keep them readable as a space */
			if (o + 1 >= size)
				break;
			dst[o++] = *s == '\t' ? ' ' : '?';
			s++;
			continue;
		}
		if (o + n >= size)
			break; /* truncate at a character boundary */
		memcpy(dst + o, s, n);
		o += n;
		s += n;
	}
	dst[o] = '\0';
	return dst;
}

bool proto_code_valid(const char *s)
{
	size_t i;

	if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (i = 1; s[i]; i++) {
		if (i >= PROTO_CODE_MAX - 1)
			return false;
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------ encoding */

/* All add_* helpers tolerate a NULL parent (an earlier allocation failed; checked at the end). */
static void add_text(cJSON *o, const char *key, const char *s, size_t cap)
{
	char buf[PROTO_DETAILS_MAX];

	if (cap > sizeof(buf))
		cap = sizeof(buf);
	if (!s || !s[0]) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	cJSON_AddStringToObject(o, key, proto_text_copy(buf, cap, s));
}

static void add_int(cJSON *o, const char *key, bool has, int64_t v)
{
	if (!has || v < -PROTO_INT_MAX || v > PROTO_INT_MAX)
		cJSON_AddNullToObject(o, key);
	else
		cJSON_AddNumberToObject(o, key, (double)v);
}

static void add_bool(cJSON *o, const char *key, bool has, bool v)
{
	if (!has)
		cJSON_AddNullToObject(o, key);
	else
		cJSON_AddBoolToObject(o, key, v);
}

static void add_time(cJSON *o, const char *key, bool has, int64_t unix_s)
{
	char buf[TIMEFMT_RFC3339_MAX];

	if (!has || timefmt_rfc3339(unix_s, buf, sizeof(buf)) < 0)
		cJSON_AddNullToObject(o, key);
	else
		cJSON_AddStringToObject(o, key, buf);
}

static cJSON *new_message(enum proto_type t, const struct proto_header *h, bool with_seq_ts)
{
	cJSON *o = cJSON_CreateObject();
	char ts[TIMEFMT_RFC3339_MAX];

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "schema", schema_names[t]);
	add_text(o, "agent", h->agent, sizeof(h->agent));
	add_int(o, "session", true, h->session < 0 ? 0 : h->session);
	if (with_seq_ts) {
		add_int(o, "seq", true, h->seq < 0 ? 0 : h->seq);
		if (timefmt_rfc3339_ms(h->ts_ms, ts, sizeof(ts)) < 0)
			snprintf(ts, sizeof(ts), "1970-01-01T00:00:00.000Z");
		cJSON_AddStringToObject(o, "ts", ts);
	}
	return o;
}

static cJSON *add_object(cJSON *parent, const char *key)
{
	cJSON *o = cJSON_CreateObject();

	if (o && !cJSON_AddItemToObject(parent, key, o)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static void add_list(cJSON *o, const char *key, const struct proto_list *l)
{
	cJSON *a = cJSON_AddArrayToObject(o, key);
	char buf[PROTO_STR_MAX];
	int i;

	for (i = 0; a && i < l->n && i < PROTO_LIST_MAX; i++)
		cJSON_AddItemToArray(
		        a, cJSON_CreateString(proto_text_copy(buf, sizeof(buf), l->item[i])));
}

/*
 * Prints and frees the tree. Any allocation failure while building shows up as a missing
 * member, so the member count is checked against what the builder promised.
 */
static char *finish(cJSON *o, bool ok)
{
	char *s = NULL;

	if (o && ok)
		s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

char *proto_agent_status_encode(const struct proto_agent_status *m)
{
	cJSON *o = new_message(PROTO_AGENT_STATUS, &m->h, !m->is_will);
	int n = m->is_will ? 4 : 6; /* schema, agent, session, online (+ seq, ts) */

	cJSON_AddBoolToObject(o, "online", m->is_will ? false : m->online);
	if (!m->is_will && m->has_started_at) {
		add_time(o, "started_at", true, m->started_at);
		n++;
	}
	if (!m->is_will && m->agent_version[0]) {
		cJSON *v = add_object(o, "versions");

		add_text(v, "agent", m->agent_version, sizeof(m->agent_version));
		n++;
	}
	return finish(o, o && cJSON_GetArraySize(o) == n);
}

char *proto_agent_meta_encode(const struct proto_agent_meta *m)
{
	cJSON *o = new_message(PROTO_AGENT_META, &m->h, true);
	cJSON *v = add_object(o, "versions"), *c;

	add_text(v, "agent", m->version_agent, sizeof(m->version_agent));
	add_text(v, "libimobiledevice", m->version_libimobiledevice,
	         sizeof(m->version_libimobiledevice));
	add_text(v, "paho", m->version_paho, sizeof(m->version_paho));
	add_text(o, "site", m->site, sizeof(m->site));
	add_text(o, "station", m->station, sizeof(m->station));
	add_list(o, "capabilities", &m->capabilities);
	add_list(o, "allowed_commands", &m->allowed_commands);
	c = add_object(o, "config");
	add_int(c, "stale_after_s", true, m->stale_after_s);
	add_int(c, "probe_interval_s", true, m->probe_interval_s);
	add_text(c, "min_ios_version", m->min_ios_version, sizeof(m->min_ios_version));
	cJSON_AddBoolToObject(c, "publish_device_name", m->publish_device_name);
	return finish(o, o && v && c && cJSON_GetArraySize(o) == 11 && cJSON_GetArraySize(v) == 3 &&
	                         cJSON_GetArraySize(c) == 4);
}

char *proto_device_state_encode(const struct proto_device_state *m)
{
	cJSON *o = new_message(PROTO_DEVICE_STATE, &m->h, true);
	cJSON *d, *b, *p, *s, *g, *causes;
	const char *pairing = proto_pairing_name(m->pairing);
	const char *probe = proto_probe_name(m->probe);
	const char *status = proto_status_name(m->status);
	int i, n = m->n_causes;

	add_text(o, "udid", m->udid, sizeof(m->udid));
	cJSON_AddBoolToObject(o, "attached", m->attached);
	add_time(o, "probed_at", m->has_probed_at, m->probed_at);

	d = add_object(o, "device");
	add_text(d, "product_type", m->product_type, sizeof(m->product_type));
	add_text(d, "ios_version", m->ios_version, sizeof(m->ios_version));
	add_text(d, "build", m->build, sizeof(m->build));
	add_text(d, "serial", m->serial, sizeof(m->serial));
	if (m->has_name)
		add_text(d, "name", m->name, sizeof(m->name));

	/* out-of-range enums are a programming error; the least-wrong wire value is sent */
	cJSON_AddStringToObject(o, "pairing", pairing ? pairing : "invalid");

	b = add_object(o, "backup");
	add_bool(b, "icloud_enabled", m->has_icloud_enabled, m->icloud_enabled);
	add_time(b, "last_icloud", m->has_last_icloud, m->last_icloud);
	add_time(b, "last_local", m->has_last_local, m->last_local);
	add_bool(b, "will_encrypt", m->has_will_encrypt, m->will_encrypt);
	add_bool(b, "requires_encryption", m->has_requires_encryption, m->requires_encryption);
	add_int(b, "age_s", m->has_age && m->age_s >= 0, m->age_s);

	p = add_object(o, "power");
	add_int(p, "battery_pct",
	        m->has_battery_pct && m->battery_pct >= 0 && m->battery_pct <= 100, m->battery_pct);
	add_bool(p, "external_connected", m->has_external_connected, m->external_connected);
	add_bool(p, "charging", m->has_charging, m->charging);

	s = add_object(o, "storage");
	add_int(s, "total_bytes", m->has_total_bytes, (int64_t)(m->total_bytes & PROTO_INT_MAX));
	add_int(s, "available_bytes", m->has_available_bytes,
	        (int64_t)(m->available_bytes & PROTO_INT_MAX));

	g = add_object(o, "diagnosis");
	cJSON_AddStringToObject(g, "status", status ? status : "unknown");
	causes = cJSON_AddArrayToObject(g, "causes");
	if (n < 0)
		n = 0;
	if (n > PROTO_MAX_CAUSES)
		n = PROTO_MAX_CAUSES;
	for (i = 0; causes && i < n; i++) {
		const struct proto_cause *c = &m->causes[i];
		cJSON *co = cJSON_CreateObject();

		if (!co || !cJSON_AddItemToArray(causes, co)) {
			cJSON_Delete(co);
			break;
		}
		cJSON_AddStringToObject(co, "code",
		                        proto_code_valid(c->code) ? c->code : "unknown");
		add_text(co, "evidence", c->evidence, sizeof(c->evidence));
		add_text(co, "remediation", c->remediation, sizeof(c->remediation));
		cJSON_AddStringToObject(co, "complexity",
		                        index_of(complexity_names,
		                                 (int)ARRAY_SIZE(complexity_names),
		                                 c->complexity) >= 0
		                                ? c->complexity
		                                : "none");
		if (cJSON_GetArraySize(co) != 4)
			break;
	}

	cJSON_AddStringToObject(o, "probe", probe ? probe : "error");
	add_text(o, "error", m->error, sizeof(m->error));
	return finish(o, o && d && b && p && s && g && causes && cJSON_GetArraySize(o) == 16 &&
	                         cJSON_GetArraySize(d) == (m->has_name ? 5 : 4) &&
	                         cJSON_GetArraySize(b) == 6 && cJSON_GetArraySize(p) == 3 &&
	                         cJSON_GetArraySize(s) == 2 && cJSON_GetArraySize(causes) == n);
}

static void add_str(cJSON *o, const char *key, const char *s, size_t cap)
{
	char buf[PROTO_TEXT_MAX];

	cJSON_AddStringToObject(o, key,
	                        proto_text_copy(buf, cap < sizeof(buf) ? cap : sizeof(buf), s));
}

/* Only the members that are set, in the order of proto/README.md's table. 0, or -ENOMEM when
 * one could not be added. */
static int encode_details(cJSON *o, const struct proto_event_details *dt)
{
	const char *probe = dt->has_probe ? proto_probe_name(dt->probe) : NULL;
	int i, n = 0, nc = dt->n_causes < PROTO_MAX_CAUSES ? dt->n_causes : PROTO_MAX_CAUSES;
	cJSON *a = NULL;

	if (dt->kind[0]) {
		add_str(o, "kind", dt->kind, sizeof(dt->kind));
		n++;
	}
	if (dt->cmd_id[0]) {
		add_str(o, "cmd_id", dt->cmd_id, sizeof(dt->cmd_id));
		n++;
	}
	if (dt->has_bytes) {
		add_int(o, "bytes", true, (int64_t)(dt->bytes & PROTO_INT_MAX));
		n++;
	}
	if (dt->cause[0]) {
		add_str(o, "cause", dt->cause, sizeof(dt->cause));
		n++;
	}
	if (dt->has_lockdown_error) {
		add_int(o, "lockdown_error", true, dt->lockdown_error);
		n++;
	}
	if (dt->has_age_s) {
		add_int(o, "age_s", true, dt->age_s < 0 ? 0 : dt->age_s);
		n++;
	}
	if (nc > 0) {
		a = cJSON_AddArrayToObject(o, "causes");
		for (i = 0; a && i < nc; i++)
			cJSON_AddItemToArray(a, cJSON_CreateString(proto_code_valid(dt->causes[i])
			                                                   ? dt->causes[i]
			                                                   : "unknown"));
		if (cJSON_GetArraySize(a) != nc)
			return -ENOMEM;
		n++;
	}
	if (dt->has_last_icloud) {
		add_time(o, "last_icloud", true, dt->last_icloud);
		n++;
	}
	if (probe) {
		cJSON_AddStringToObject(o, "probe", probe);
		n++;
	}
	if (dt->error[0]) {
		add_str(o, "error", dt->error, sizeof(dt->error));
		n++;
	}
	return cJSON_GetArraySize(o) == n ? 0 : -ENOMEM;
}

/* "event_id": the given one, or "<session>-<seq>" of this message when none is given. */
static void add_event_id(cJSON *o, const struct proto_header *h, const char *given)
{
	char id[PROTO_EVENT_ID_MAX];

	if (given[0])
		proto_text_copy(id, sizeof(id), given);
	else
		snprintf(id, sizeof(id), "%lld-%lld", (long long)(h->session < 0 ? 0 : h->session),
		         (long long)(h->seq < 0 ? 0 : h->seq));
	cJSON_AddStringToObject(o, "event_id", id);
}

char *proto_device_event_encode(const struct proto_device_event *m)
{
	cJSON *o = new_message(PROTO_DEVICE_EVENT, &m->h, true);
	cJSON *details;
	const char *name = proto_event_name(m->event);

	cJSON_AddStringToObject(o, "event", name ? name : "probe_failed");
	add_text(o, "udid", m->udid, sizeof(m->udid));
	add_event_id(o, &m->h, m->event_id);
	details = add_object(o, "details");
	if (details && encode_details(details, &m->details) < 0)
		details = NULL;
	return finish(o, o && details && cJSON_GetArraySize(o) == 9);
}

/* A count is never null and never out of [min, 2^53-1] on the wire: clamped, not dropped. */
static void add_count(cJSON *o, const char *key, int64_t v, int64_t min)
{
	add_int(o, key, true, v < min ? min : v > PROTO_INT_MAX ? PROTO_INT_MAX : v);
}

static int64_t u64_count(uint64_t v)
{
	return v > (uint64_t)PROTO_INT_MAX ? PROTO_INT_MAX : (int64_t)v;
}

/* Adds the members of m's details to d; returns how many it promised to add. */
static int add_agent_event_details(cJSON *d, const struct proto_agent_event *m)
{
	const struct proto_security_details *s = &m->security;
	const struct proto_usbmuxd_details *u = &m->usbmuxd;
	const struct proto_disk_details *k = &m->disk;
	const struct proto_outbox_details *b = &m->outbox;
	const struct proto_outbox_damage_details *g = &m->damage;

	switch (m->event) {
	case PROTO_AGENT_EVENT_SECURITY_REJECTED:
		cJSON_AddStringToObject(d, "reason",
		                        proto_code_valid(s->reason) ? s->reason : "unknown");
		add_count(d, "count", s->count, 1);
		add_time(d, "first_at", true, s->first_at);
		add_time(d, "last_at", true, s->last_at);
		add_count(d, "interval_s", s->interval_s, 0);
		add_text(d, "detail", s->detail, sizeof(s->detail));
		return 6;
	case PROTO_AGENT_EVENT_USBMUXD_LOST:
		add_count(d, "devices", u->devices, 0);
		return 1;
	case PROTO_AGENT_EVENT_USBMUXD_BACK:
		add_count(d, "devices", u->devices, 0);
		add_count(d, "down_s", u->down_s, 0);
		return 2;
	case PROTO_AGENT_EVENT_DISK_LOW:
	case PROTO_AGENT_EVENT_DISK_OK:
		add_text(d, "path", k->path[0] ? k->path : "?", sizeof(k->path));
		add_count(d, "free_bytes", u64_count(k->free_bytes), 0);
		add_count(d, "total_bytes", u64_count(k->total_bytes), 0);
		add_count(d, "floor_bytes", u64_count(k->floor_bytes), 0);
		add_count(d, "write_failures", k->write_failures, 0);
		add_count(d, "best_effort", k->best_effort, 0);
		add_count(d, "held", k->held, 0);
		return 7;
	case PROTO_AGENT_EVENT_OUTBOX_PRESSURE:
	case PROTO_AGENT_EVENT_OUTBOX_OK:
		add_count(d, "dropped", b->dropped, 0);
		add_count(d, "superseded", b->superseded, 0);
		add_count(d, "records", b->records, 0);
		add_count(d, "bytes", b->bytes, 0);
		add_count(d, "max_records", b->max_records, 0);
		add_count(d, "max_bytes", b->max_bytes, 0);
		return 6;
	case PROTO_AGENT_EVENT_OUTBOX_DAMAGED:
		add_count(d, "lost_records", g->lost_records, 0);
		add_count(d, "first_seq", g->first_seq, 0);
		add_count(d, "last_seq", g->last_seq, 0);
		add_count(d, "bytes_skipped", g->bytes_skipped, 0);
		cJSON_AddBoolToObject(d, "empty", g->empty);
		return 5;
	default:
		return 0;
	}
}

char *proto_agent_event_encode(const struct proto_agent_event *m)
{
	cJSON *o = new_message(PROTO_AGENT_EVENT, &m->h, true);
	const char *name = proto_agent_event_name(m->event);
	cJSON *d;
	int n;

	/* an out-of-range kind is a programming error: refuse rather than invent details */
	if (!name) {
		cJSON_Delete(o);
		return NULL;
	}
	cJSON_AddStringToObject(o, "event", name);
	add_event_id(o, &m->h, m->event_id);
	d = add_object(o, "details");
	n = add_agent_event_details(d, m);
	return finish(o, o && d && cJSON_GetArraySize(o) == 8 && cJSON_GetArraySize(d) == n);
}

/* ------------------------------------------------------------------ decoding */

struct dec {
	char *err;
	size_t err_size;
};

static int fail(struct dec *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records the first decode error (the one that explains the rejection) and returns -EPROTO. */
static int fail(struct dec *d, const char *fmt, ...)
{
	va_list ap;

	if (d->err && d->err_size && !d->err[0]) {
		va_start(ap, fmt);
		vsnprintf(d->err, d->err_size, fmt, ap);
		va_end(ap);
	}
	return -EPROTO;
}

static cJSON *member(cJSON *o, const char *key)
{
	/* case-sensitive: "Seq" is not "seq" */
	return cJSON_GetObjectItemCaseSensitive(o, key);
}

static int get_obj(struct dec *d, cJSON *o, const char *key, cJSON **ret)
{
	cJSON *v = member(o, key);

	if (!cJSON_IsObject(v))
		return fail(d, "'%s' must be an object", key);
	*ret = v;
	return 0;
}

/* String member; nullable allows JSON null (written as ""); an absent member is an error. */
static int get_str(struct dec *d, cJSON *o, const char *key, bool nullable, char *dst, size_t cap)
{
	cJSON *v = member(o, key);
	size_t n;

	if (nullable && cJSON_IsNull(v)) {
		dst[0] = '\0';
		return 0;
	}
	if (!cJSON_IsString(v) || !v->valuestring)
		return fail(d, "'%s' must be a string%s", key, nullable ? " or null" : "");
	n = strlen(v->valuestring);
	if (n >= cap)
		return fail(d, "'%s' longer than %zu bytes", key, cap - 1);
	if (!nullable && n == 0)
		return fail(d, "'%s' is empty", key);
	memcpy(dst, v->valuestring, n + 1);
	return 0;
}

static int get_int(struct dec *d, cJSON *o, const char *key, bool nullable, int64_t min,
                   int64_t max, bool *ret_has, int64_t *ret)
{
	cJSON *v = member(o, key);
	double x;

	if (nullable && cJSON_IsNull(v)) {
		*ret_has = false;
		*ret = 0;
		return 0;
	}
	if (!cJSON_IsNumber(v))
		return fail(d, "'%s' must be an integer%s", key, nullable ? " or null" : "");
	x = v->valuedouble;
	/* range first: the cast is only defined for values that fit int64_t */
	if (!isfinite(x) || x < (double)min || x > (double)max || (double)(int64_t)x != x)
		return fail(d, "'%s' must be an integer in [%lld, %lld]", key, (long long)min,
		            (long long)max);
	*ret_has = true;
	*ret = (int64_t)x;
	return 0;
}

static int get_bool(struct dec *d, cJSON *o, const char *key, bool nullable, bool *ret_has,
                    bool *ret)
{
	cJSON *v = member(o, key);

	if (nullable && cJSON_IsNull(v)) {
		*ret_has = false;
		*ret = false;
		return 0;
	}
	if (!cJSON_IsBool(v))
		return fail(d, "'%s' must be a boolean%s", key, nullable ? " or null" : "");
	*ret_has = true;
	*ret = cJSON_IsTrue(v);
	return 0;
}

static int get_enum(struct dec *d, cJSON *o, const char *key, const char *const *names, int n,
                    int *ret)
{
	cJSON *v = member(o, key);
	int i;

	if (!cJSON_IsString(v) || !v->valuestring)
		return fail(d, "'%s' must be a string", key);
	i = index_of(names, n, v->valuestring);
	if (i < 0)
		return fail(d, "'%s' has an unknown value", key);
	*ret = i;
	return 0;
}

/* Parses RFC 3339 UTC ("...Z") into Unix ms; the fraction beyond ms is dropped. */
static int parse_time_ms(const char *s, int64_t *ret_ms)
{
	int64_t sec;
	int ms = 0, digits = 0;
	const char *p;

	/* the contract says UTC: an offset is valid RFC 3339 but not valid cradle/v1 */
	if (!s[0] || s[strlen(s) - 1] != 'Z' || timefmt_parse_rfc3339(s, &sec) < 0)
		return -EINVAL;
	p = strchr(s, 'T');
	if (p && strlen(p) > 9 && p[9] == '.')
		for (p += 10; *p >= '0' && *p <= '9'; p++)
			if (digits++ < 3)
				ms = ms * 10 + (*p - '0');
	while (digits > 0 && digits < 3) {
		ms *= 10;
		digits++;
	}
	if (sec > PROTO_INT_MAX / 1000 || sec < -(PROTO_INT_MAX / 1000))
		return -EINVAL;
	*ret_ms = sec * 1000 + ms;
	return 0;
}

static int get_time(struct dec *d, cJSON *o, const char *key, bool nullable, bool *ret_has,
                    int64_t *ret_unix_s)
{
	char buf[TIMEFMT_RFC3339_MAX + 16];
	int64_t ms;
	int r;

	r = get_str(d, o, key, nullable, buf, sizeof(buf));
	if (r < 0)
		return r;
	if (!buf[0]) {
		*ret_has = false;
		*ret_unix_s = 0;
		return 0;
	}
	if (parse_time_ms(buf, &ms) < 0)
		return fail(d, "'%s' is not an RFC 3339 date-time", key);
	*ret_has = true;
	*ret_unix_s = ms / 1000;
	return 0;
}

/* Size cap, parse, and "must be an object with our schema". Caller deletes *ret_root. */
static int parse_root(struct dec *d, const char *json, size_t len, enum proto_type t,
                      cJSON **ret_root)
{
	cJSON *root;
	char schema[PROTO_STR_MAX];
	int r;

	if (!json || len > PROTO_MAX_PAYLOAD) {
		fail(d, "payload larger than %d bytes", PROTO_MAX_PAYLOAD);
		return -EMSGSIZE;
	}
	/* a NUL would cut a string short of what the schema validates (jsontext.h) */
	if (jsontext_check_nul(json, len) < 0) {
		fail(d, "%s", JSONTEXT_NUL_ERR);
		return -EBADMSG;
	}
	root = cJSON_ParseWithLength(json, len);
	if (!root) {
		if (d->err && d->err_size && !d->err[0])
			snprintf(d->err, d->err_size, "not JSON");
		return -EBADMSG; /* cJSON does not tell allocation failure from bad syntax */
	}
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		fail(d, "not a JSON object");
		return -EBADMSG;
	}
	if (t < _PROTO_TYPE_MAX) {
		r = get_str(d, root, "schema", false, schema, sizeof(schema));
		if (r == 0 && strcmp(schema, schema_names[t]) != 0)
			r = fail(d, "schema is not %s", schema_names[t]);
		if (r < 0) {
			cJSON_Delete(root);
			return r;
		}
	}
	*ret_root = root;
	return 0;
}

static int get_header(struct dec *d, cJSON *o, bool with_seq_ts, struct proto_header *h)
{
	char ts[TIMEFMT_RFC3339_MAX + 16];
	bool has;
	int r;

	r = get_str(d, o, "agent", false, h->agent, sizeof(h->agent));
	if (r < 0)
		return r;
	if (!topics_agent_id_valid(h->agent))
		return fail(d, "'agent' is not a valid agent id");
	r = get_int(d, o, "session", false, 0, PROTO_INT_MAX, &has, &h->session);
	if (r < 0 || !with_seq_ts) {
		h->seq = -1;
		h->ts_ms = -1;
		return r;
	}
	r = get_int(d, o, "seq", false, 0, PROTO_INT_MAX, &has, &h->seq);
	if (r < 0)
		return r;
	r = get_str(d, o, "ts", false, ts, sizeof(ts));
	if (r < 0)
		return r;
	if (parse_time_ms(ts, &h->ts_ms) < 0)
		return fail(d, "'ts' is not an RFC 3339 date-time");
	return 0;
}

static void dec_init(struct dec *d, char *err, size_t err_size, void *ret, size_t ret_size)
{
	d->err = err;
	d->err_size = err_size;
	if (err && err_size)
		err[0] = '\0';
	memset(ret, 0, ret_size);
}

int proto_peek_type(const char *json, size_t len, enum proto_type *ret_type)
{
	struct dec d = { NULL, 0 };
	cJSON *root = NULL;
	char schema[PROTO_STR_MAX];
	int r, i;

	r = parse_root(&d, json, len, _PROTO_TYPE_MAX, &root);
	if (r < 0)
		return r;
	r = get_str(&d, root, "schema", false, schema, sizeof(schema));
	if (r < 0)
		goto out;
	i = index_of(schema_names, _PROTO_TYPE_MAX, schema);
	if (i < 0) {
		r = -ENOENT;
		goto out;
	}
	*ret_type = i;
out:
	cJSON_Delete(root);
	return r;
}

int proto_agent_status_decode(const char *json, size_t len, struct proto_agent_status *ret,
                              char *err, size_t err_size)
{
	struct dec d;
	cJSON *root = NULL, *versions = NULL;
	bool has;
	int r;

	dec_init(&d, err, err_size, ret, sizeof(*ret));
	r = parse_root(&d, json, len, PROTO_AGENT_STATUS, &root);
	if (r < 0)
		return r;
	r = get_bool(&d, root, "online", false, &has, &ret->online);
	if (r < 0)
		goto out;
	/* the will has neither seq nor ts (fixed at connect time); only an offline status may */
	ret->is_will = !ret->online && !member(root, "seq") && !member(root, "ts");
	r = get_header(&d, root, !ret->is_will, &ret->h);
	if (r < 0)
		goto out;
	if (member(root, "started_at")) {
		r = get_time(&d, root, "started_at", true, &ret->has_started_at, &ret->started_at);
		if (r < 0)
			goto out;
	}
	versions = member(root, "versions");
	if (versions) {
		r = get_obj(&d, root, "versions", &versions);
		if (r == 0 && member(versions, "agent"))
			r = get_str(&d, versions, "agent", true, ret->agent_version,
			            sizeof(ret->agent_version));
		if (r < 0)
			goto out;
	}
out:
	cJSON_Delete(root);
	if (r < 0)
		memset(ret, 0, sizeof(*ret));
	return r;
}

static int get_list(struct dec *d, cJSON *o, const char *key, struct proto_list *l)
{
	cJSON *a = member(o, key), *it;
	int i;

	if (!cJSON_IsArray(a))
		return fail(d, "'%s' must be an array", key);
	if (cJSON_GetArraySize(a) > PROTO_LIST_MAX)
		return fail(d, "'%s' has more than %d items", key, PROTO_LIST_MAX);
	l->n = 0;
	cJSON_ArrayForEach(it, a) {
		if (!cJSON_IsString(it) || !it->valuestring || !it->valuestring[0] ||
		    strlen(it->valuestring) >= PROTO_STR_MAX)
			return fail(d, "'%s' items must be non-empty strings of at most %d bytes",
			            key, PROTO_STR_MAX - 1);
		for (i = 0; i < l->n; i++)
			if (strcmp(l->item[i], it->valuestring) == 0)
				return fail(d, "'%s' lists '%s' twice", key, it->valuestring);
		memcpy(l->item[l->n++], it->valuestring, strlen(it->valuestring) + 1);
	}
	return 0;
}

int proto_agent_meta_decode(const char *json, size_t len, struct proto_agent_meta *ret, char *err,
                            size_t err_size)
{
	struct dec d;
	cJSON *root = NULL, *v = NULL, *c = NULL;
	bool has;
	int r;

	dec_init(&d, err, err_size, ret, sizeof(*ret));
	r = parse_root(&d, json, len, PROTO_AGENT_META, &root);
	if (r < 0)
		return r;
	if ((r = get_header(&d, root, true, &ret->h)) < 0 ||
	    (r = get_obj(&d, root, "versions", &v)) < 0 ||
	    (r = get_str(&d, v, "agent", true, ret->version_agent, PROTO_STR_MAX)) < 0 ||
	    (r = get_str(&d, v, "libimobiledevice", true, ret->version_libimobiledevice,
	                 PROTO_STR_MAX)) < 0 ||
	    (r = get_str(&d, v, "paho", true, ret->version_paho, PROTO_STR_MAX)) < 0 ||
	    (r = get_str(&d, root, "site", true, ret->site, PROTO_STR_MAX)) < 0 ||
	    (r = get_str(&d, root, "station", true, ret->station, PROTO_STR_MAX)) < 0 ||
	    (r = get_list(&d, root, "capabilities", &ret->capabilities)) < 0 ||
	    (r = get_list(&d, root, "allowed_commands", &ret->allowed_commands)) < 0 ||
	    (r = get_obj(&d, root, "config", &c)) < 0 ||
	    (r = get_int(&d, c, "stale_after_s", false, 0, PROTO_INT_MAX, &has,
	                 &ret->stale_after_s)) < 0 ||
	    (r = get_int(&d, c, "probe_interval_s", false, 0, PROTO_INT_MAX, &has,
	                 &ret->probe_interval_s)) < 0 ||
	    (r = get_str(&d, c, "min_ios_version", true, ret->min_ios_version, PROTO_STR_MAX)) <
	            0 ||
	    (r = get_bool(&d, c, "publish_device_name", false, &has, &ret->publish_device_name)) <
	            0)
		goto out;
out:
	cJSON_Delete(root);
	if (r < 0)
		memset(ret, 0, sizeof(*ret));
	return r;
}

static int get_causes(struct dec *d, cJSON *g, struct proto_device_state *m)
{
	cJSON *a = member(g, "causes"), *it;
	int r;

	if (!cJSON_IsArray(a))
		return fail(d, "'causes' must be an array");
	if (cJSON_GetArraySize(a) > PROTO_MAX_CAUSES)
		return fail(d, "more than %d causes", PROTO_MAX_CAUSES);
	m->n_causes = 0;
	cJSON_ArrayForEach(it, a) {
		struct proto_cause *c = &m->causes[m->n_causes];

		if (!cJSON_IsObject(it))
			return fail(d, "a cause must be an object");
		if ((r = get_str(d, it, "code", false, c->code, sizeof(c->code))) < 0 ||
		    (r = get_str(d, it, "evidence", true, c->evidence, sizeof(c->evidence))) < 0 ||
		    (r = get_str(d, it, "remediation", true, c->remediation,
		                 sizeof(c->remediation))) < 0 ||
		    (r = get_str(d, it, "complexity", false, c->complexity,
		                 sizeof(c->complexity))) < 0)
			return r;
		if (!proto_code_valid(c->code))
			return fail(d, "cause code is not ^[a-z][a-z0-9_]*$");
		if (index_of(complexity_names, (int)ARRAY_SIZE(complexity_names), c->complexity) <
		    0)
			return fail(d, "'complexity' has an unknown value");
		m->n_causes++;
	}
	return 0;
}

int proto_device_state_decode(const char *json, size_t len, struct proto_device_state *ret,
                              char *err, size_t err_size)
{
	struct dec d;
	cJSON *root = NULL, *dv = NULL, *b = NULL, *p = NULL, *s = NULL, *g = NULL;
	int64_t i64;
	bool has, dummy;
	int r, e;

	dec_init(&d, err, err_size, ret, sizeof(*ret));
	r = parse_root(&d, json, len, PROTO_DEVICE_STATE, &root);
	if (r < 0)
		return r;
	if ((r = get_header(&d, root, true, &ret->h)) < 0 ||
	    (r = get_str(&d, root, "udid", false, ret->udid, sizeof(ret->udid))) < 0)
		goto out;
	if (!topics_udid_valid(ret->udid)) {
		r = fail(&d, "'udid' is not a valid UDID");
		goto out;
	}
	if ((r = get_bool(&d, root, "attached", false, &dummy, &ret->attached)) < 0 ||
	    (r = get_time(&d, root, "probed_at", true, &ret->has_probed_at, &ret->probed_at)) < 0)
		goto out;

	if ((r = get_obj(&d, root, "device", &dv)) < 0 ||
	    (r = get_str(&d, dv, "product_type", true, ret->product_type, PROTO_STR_MAX)) < 0 ||
	    (r = get_str(&d, dv, "ios_version", true, ret->ios_version, PROTO_STR_MAX)) < 0 ||
	    (r = get_str(&d, dv, "build", true, ret->build, PROTO_STR_MAX)) < 0 ||
	    (r = get_str(&d, dv, "serial", true, ret->serial, PROTO_STR_MAX)) < 0)
		goto out;
	ret->has_name = member(dv, "name") != NULL;
	if (ret->has_name && (r = get_str(&d, dv, "name", true, ret->name, PROTO_NAME_MAX)) < 0)
		goto out;

	if ((r = get_enum(&d, root, "pairing", pairing_names, _PROTO_PAIRING_MAX, &e)) < 0)
		goto out;
	ret->pairing = e;

	if ((r = get_obj(&d, root, "backup", &b)) < 0 ||
	    (r = get_bool(&d, b, "icloud_enabled", true, &ret->has_icloud_enabled,
	                  &ret->icloud_enabled)) < 0 ||
	    (r = get_time(&d, b, "last_icloud", true, &ret->has_last_icloud, &ret->last_icloud)) <
	            0 ||
	    (r = get_time(&d, b, "last_local", true, &ret->has_last_local, &ret->last_local)) < 0 ||
	    (r = get_bool(&d, b, "will_encrypt", true, &ret->has_will_encrypt,
	                  &ret->will_encrypt)) < 0 ||
	    (r = get_bool(&d, b, "requires_encryption", true, &ret->has_requires_encryption,
	                  &ret->requires_encryption)) < 0 ||
	    (r = get_int(&d, b, "age_s", true, 0, PROTO_INT_MAX, &ret->has_age, &ret->age_s)) < 0)
		goto out;

	if ((r = get_obj(&d, root, "power", &p)) < 0 ||
	    (r = get_int(&d, p, "battery_pct", true, 0, 100, &ret->has_battery_pct, &i64)) < 0 ||
	    (r = get_bool(&d, p, "external_connected", true, &ret->has_external_connected,
	                  &ret->external_connected)) < 0 ||
	    (r = get_bool(&d, p, "charging", true, &ret->has_charging, &ret->charging)) < 0)
		goto out;
	ret->battery_pct = (int)i64;

	if ((r = get_obj(&d, root, "storage", &s)) < 0 ||
	    (r = get_int(&d, s, "total_bytes", true, 0, PROTO_INT_MAX, &ret->has_total_bytes,
	                 &i64)) < 0)
		goto out;
	ret->total_bytes = (uint64_t)i64;
	if ((r = get_int(&d, s, "available_bytes", true, 0, PROTO_INT_MAX,
	                 &ret->has_available_bytes, &i64)) < 0)
		goto out;
	ret->available_bytes = (uint64_t)i64;

	if ((r = get_obj(&d, root, "diagnosis", &g)) < 0 ||
	    (r = get_enum(&d, g, "status", status_names, _PROTO_STATUS_MAX, &e)) < 0)
		goto out;
	ret->status = e;
	if ((r = get_causes(&d, g, ret)) < 0)
		goto out;

	if ((r = get_enum(&d, root, "probe", probe_names, _PROTO_PROBE_MAX, &e)) < 0)
		goto out;
	ret->probe = e;
	if ((r = get_str(&d, root, "error", true, ret->error, sizeof(ret->error))) < 0)
		goto out;
	(void)has;
out:
	cJSON_Delete(root);
	if (r < 0)
		memset(ret, 0, sizeof(*ret));
	return r;
}

static bool event_id_valid(const char *s)
{
	const char *dash = strchr(s, '-');
	size_t i;

	if (!dash || dash == s || !dash[1])
		return false;
	for (i = 0; s[i]; i++)
		if (s + i != dash && !(s[i] >= '0' && s[i] <= '9'))
			return false;
	return true;
}

/* A string member that fits cap, else dst stays "" (details are lenient, see proto.h). */
static void opt_str(cJSON *o, const char *key, char *dst, size_t cap)
{
	cJSON *v = member(o, key);

	if (cJSON_IsString(v) && v->valuestring && strlen(v->valuestring) < cap)
		memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
}

/* An integer member in [min, max]: true and *ret, else false. */
static bool opt_int(cJSON *o, const char *key, int64_t min, int64_t max, int64_t *ret)
{
	struct dec quiet = { 0 };
	bool has = false;

	if (!member(o, key) || get_int(&quiet, o, key, false, min, max, &has, ret) < 0)
		return false;
	return has;
}

static void decode_details(cJSON *o, struct proto_event_details *dt)
{
	struct dec quiet = { 0 };
	cJSON *a = member(o, "causes"), *c;
	int64_t v;
	int p;

	if (!cJSON_IsArray(a))
		a = NULL;
	opt_str(o, "kind", dt->kind, sizeof(dt->kind));
	opt_str(o, "cmd_id", dt->cmd_id, sizeof(dt->cmd_id));
	if (opt_int(o, "bytes", 0, PROTO_INT_MAX, &v)) {
		dt->has_bytes = true;
		dt->bytes = (uint64_t)v;
	}
	opt_str(o, "cause", dt->cause, sizeof(dt->cause));
	if (opt_int(o, "lockdown_error", INT32_MIN, INT32_MAX, &v)) {
		dt->has_lockdown_error = true;
		dt->lockdown_error = (int)v;
	}
	dt->has_age_s = opt_int(o, "age_s", 0, PROTO_INT_MAX, &dt->age_s);
	cJSON_ArrayForEach(c, a) {
		if (dt->n_causes < PROTO_MAX_CAUSES && cJSON_IsString(c) &&
		    proto_code_valid(c->valuestring))
			snprintf(dt->causes[dt->n_causes++], PROTO_CODE_MAX, "%s", c->valuestring);
	}
	if (member(o, "last_icloud") &&
	    get_time(&quiet, o, "last_icloud", false, &dt->has_last_icloud, &dt->last_icloud) < 0)
		dt->has_last_icloud = false;
	if (member(o, "probe") &&
	    get_enum(&quiet, o, "probe", probe_names, _PROTO_PROBE_MAX, &p) == 0) {
		dt->has_probe = true;
		dt->probe = p;
	}
	opt_str(o, "error", dt->error, sizeof(dt->error));
}

int proto_device_event_decode(const char *json, size_t len, struct proto_device_event *ret,
                              char *err, size_t err_size)
{
	struct dec d;
	cJSON *root = NULL, *details;
	char name[PROTO_CODE_MAX];
	int r, e;

	dec_init(&d, err, err_size, ret, sizeof(*ret));
	r = parse_root(&d, json, len, PROTO_DEVICE_EVENT, &root);
	if (r < 0)
		return r;
	if ((r = get_header(&d, root, true, &ret->h)) < 0 ||
	    (r = get_str(&d, root, "event", false, name, sizeof(name))) < 0 ||
	    (r = get_str(&d, root, "udid", false, ret->udid, sizeof(ret->udid))) < 0 ||
	    (r = get_str(&d, root, "event_id", false, ret->event_id, sizeof(ret->event_id))) < 0)
		goto out;
	e = index_of(event_names, _PROTO_EVENT_MAX, name);
	if (e < 0) {
		r = fail(&d, "'event' has an unknown value");
		goto out;
	}
	ret->event = e;
	if (!topics_udid_valid(ret->udid)) {
		r = fail(&d, "'udid' is not a valid UDID");
		goto out;
	}
	if (!event_id_valid(ret->event_id)) {
		r = fail(&d, "'event_id' is not <session>-<seq>");
		goto out;
	}
	details = member(root, "details");
	if (details && !cJSON_IsObject(details)) {
		r = fail(&d, "'details' must be an object");
		goto out;
	}
	if (details)
		decode_details(details, &ret->details);
out:
	cJSON_Delete(root);
	if (r < 0)
		memset(ret, 0, sizeof(*ret));
	return r;
}

static int get_count(struct dec *d, cJSON *o, const char *key, int64_t min, int64_t *ret)
{
	bool has;

	return get_int(d, o, key, false, min, PROTO_INT_MAX, &has, ret);
}

static int get_bytes(struct dec *d, cJSON *o, const char *key, uint64_t *ret)
{
	int64_t v;
	int r = get_count(d, o, key, 0, &v);

	*ret = (uint64_t)v;
	return r;
}

static int get_agent_event_details(struct dec *d, cJSON *o, struct proto_agent_event *m)
{
	struct proto_security_details *s = &m->security;
	struct proto_usbmuxd_details *u = &m->usbmuxd;
	struct proto_disk_details *k = &m->disk;
	struct proto_outbox_details *b = &m->outbox;
	struct proto_outbox_damage_details *g = &m->damage;
	bool has;
	int r;

	switch (m->event) {
	case PROTO_AGENT_EVENT_SECURITY_REJECTED:
		if ((r = get_str(d, o, "reason", false, s->reason, sizeof(s->reason))) < 0 ||
		    (r = get_count(d, o, "count", 1, &s->count)) < 0 ||
		    (r = get_time(d, o, "first_at", false, &has, &s->first_at)) < 0 ||
		    (r = get_time(d, o, "last_at", false, &has, &s->last_at)) < 0 ||
		    (r = get_count(d, o, "interval_s", 0, &s->interval_s)) < 0 ||
		    (r = get_str(d, o, "detail", true, s->detail, sizeof(s->detail))) < 0)
			return r;
		if (!proto_code_valid(s->reason))
			return fail(d, "'reason' is not ^[a-z][a-z0-9_]*$");
		return 0;
	case PROTO_AGENT_EVENT_USBMUXD_BACK:
		if ((r = get_count(d, o, "down_s", 0, &u->down_s)) < 0)
			return r;
		return get_count(d, o, "devices", 0, &u->devices);
	case PROTO_AGENT_EVENT_USBMUXD_LOST:
		return get_count(d, o, "devices", 0, &u->devices);
	case PROTO_AGENT_EVENT_DISK_LOW:
	case PROTO_AGENT_EVENT_DISK_OK:
		if ((r = get_str(d, o, "path", false, k->path, sizeof(k->path))) < 0 ||
		    (r = get_bytes(d, o, "free_bytes", &k->free_bytes)) < 0 ||
		    (r = get_bytes(d, o, "total_bytes", &k->total_bytes)) < 0 ||
		    (r = get_bytes(d, o, "floor_bytes", &k->floor_bytes)) < 0)
			return r;
		/* added within v1: optional */
		if ((member(o, "write_failures") &&
		     (r = get_count(d, o, "write_failures", 0, &k->write_failures)) < 0) ||
		    (member(o, "best_effort") &&
		     (r = get_count(d, o, "best_effort", 0, &k->best_effort)) < 0) ||
		    (member(o, "held") && (r = get_count(d, o, "held", 0, &k->held)) < 0))
			return r;
		return 0;
	case PROTO_AGENT_EVENT_OUTBOX_PRESSURE:
	case PROTO_AGENT_EVENT_OUTBOX_OK:
		if ((r = get_count(d, o, "dropped", 0, &b->dropped)) < 0 ||
		    (r = get_count(d, o, "superseded", 0, &b->superseded)) < 0 ||
		    (r = get_count(d, o, "records", 0, &b->records)) < 0 ||
		    (r = get_count(d, o, "bytes", 0, &b->bytes)) < 0 ||
		    (r = get_count(d, o, "max_records", 0, &b->max_records)) < 0 ||
		    (r = get_count(d, o, "max_bytes", 0, &b->max_bytes)) < 0)
			return r;
		return 0;
	case PROTO_AGENT_EVENT_OUTBOX_DAMAGED:
		if ((r = get_count(d, o, "lost_records", 0, &g->lost_records)) < 0 ||
		    (r = get_count(d, o, "first_seq", 0, &g->first_seq)) < 0 ||
		    (r = get_count(d, o, "last_seq", 0, &g->last_seq)) < 0 ||
		    (r = get_count(d, o, "bytes_skipped", 0, &g->bytes_skipped)) < 0 ||
		    (r = get_bool(d, o, "empty", false, &has, &g->empty)) < 0)
			return r;
		return 0;
	default:
		return fail(d, "'event' has an unknown value");
	}
}

int proto_agent_event_decode(const char *json, size_t len, struct proto_agent_event *ret, char *err,
                             size_t err_size)
{
	struct dec d;
	cJSON *root = NULL, *details = NULL;
	int r, e;

	dec_init(&d, err, err_size, ret, sizeof(*ret));
	r = parse_root(&d, json, len, PROTO_AGENT_EVENT, &root);
	if (r < 0)
		return r;
	if ((r = get_header(&d, root, true, &ret->h)) < 0 ||
	    (r = get_enum(&d, root, "event", agent_event_names, _PROTO_AGENT_EVENT_MAX, &e)) < 0)
		goto out;
	ret->event = e;
	if ((r = get_str(&d, root, "event_id", false, ret->event_id, sizeof(ret->event_id))) < 0)
		goto out;
	if (!event_id_valid(ret->event_id)) {
		r = fail(&d, "'event_id' is not <session>-<seq>");
		goto out;
	}
	if ((r = get_obj(&d, root, "details", &details)) < 0)
		goto out;
	r = get_agent_event_details(&d, details, ret);
out:
	cJSON_Delete(root);
	if (r < 0)
		memset(ret, 0, sizeof(*ret));
	return r;
}
