/* SPDX-License-Identifier: MIT */
/*
 * facts: struct device_facts <-> one JSON object, the protocol between cradle-agent-probe and
 * the agent.
 *
 * The helper parses untrusted device data with libimobiledevice; the agent only ever sees this
 * JSON, so the parser here is the trust boundary: it is strict (size cap, every key typed and
 * bounded, unknown keys and overlong strings rejected instead of truncated) and fuzzed
 * (tests/fuzz/corpus/fuzz_facts). Optional values are simply absent, mirroring has_* flags.
 * Both directions are table-driven so a new field is one line in each table.
 */
#include "facts.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "jsontext.h"
#include "macro.h"

static const char *const probe_names[_FACTS_PROBE_MAX] = {
	[FACTS_PROBE_OK] = "ok",           [FACTS_PROBE_NOT_TRUSTED] = "not_trusted",
	[FACTS_PROBE_LOCKED] = "locked",   [FACTS_PROBE_GONE] = "gone",
	[FACTS_PROBE_TIMEOUT] = "timeout", [FACTS_PROBE_ERROR] = "error",
};

static const char *const pairing_names[_FACTS_PAIRING_MAX] = {
	[FACTS_PAIRING_PAIRED] = "paired",
	[FACTS_PAIRING_UNPAIRED] = "unpaired",
	[FACTS_PAIRING_TRUST_PENDING] = "trust_pending",
	[FACTS_PAIRING_DENIED] = "denied",
	[FACTS_PAIRING_INVALID] = "invalid",
};

const char *facts_probe_name(enum facts_probe p)
{
	return (unsigned)p < _FACTS_PROBE_MAX ? probe_names[p] : "error";
}

const char *facts_pairing_name(enum facts_pairing p)
{
	return (unsigned)p < _FACTS_PAIRING_MAX ? pairing_names[p] : "invalid";
}

void facts_init(struct device_facts *f, const char *udid)
{
	memset(f, 0, sizeof(*f));
	f->probe = FACTS_PROBE_ERROR;
	f->pairing = FACTS_PAIRING_PAIRED;
	if (udid)
		snprintf(f->udid, sizeof(f->udid), "%s", udid);
}

/* Field tables: offsets into struct device_facts. */
struct facts_str {
	const char *key;
	size_t off, size;
};

#define STR(k, m)                                                            \
 {                                                                           \
  k, offsetof(struct device_facts, m), sizeof(((struct device_facts *)0)->m) \
 }
static const struct facts_str str_fields[] = {
	STR("error_text", error_text),   STR("product_type", product_type),
	STR("ios_version", ios_version), STR("build", build),
	STR("serial", serial),           STR("device_name", device_name),
};
#undef STR

struct facts_bool {
	const char *key;
	size_t off, has_off; /* has_off == (size_t)-1: always present */
};

#define NOHAS ((size_t)-1)
#define BOOL(k, m, h)                    \
 {                                       \
  k, offsetof(struct device_facts, m), h \
 }
#define HAS(h) offsetof(struct device_facts, h)
static const struct facts_bool bool_fields[] = {
	BOOL("password_protected", password_protected, HAS(has_password_protected)),
	BOOL("icloud_enabled", icloud_enabled, HAS(has_icloud_enabled)),
	BOOL("will_encrypt", will_encrypt, HAS(has_will_encrypt)),
	BOOL("requires_encryption", requires_encryption, HAS(has_requires_encryption)),
	BOOL("external_connected", external_connected, HAS(has_battery)),
	BOOL("charging", charging, HAS(has_battery)),
};
#undef BOOL

enum facts_int_kind { INT_I64, INT_U64, INT_INT };

struct facts_int {
	const char *key;
	enum facts_int_kind kind;
	size_t off, has_off;
	double min, max;
};

/* JSON numbers are doubles: integers are exact up to 2^53, which bounds every field. */
#define I53 9007199254740992.0
#define INT(k, kind, m, h, lo, hi)                     \
 {                                                     \
  k, kind, offsetof(struct device_facts, m), h, lo, hi \
 }
static const struct facts_int int_fields[] = {
	INT("probed_at_ms", INT_I64, probed_at_ms, NOHAS, 0, I53),
	INT("lockdown_error", INT_INT, lockdown_error, NOHAS, -100000, 100000),
	INT("last_icloud_unix", INT_I64, last_icloud_unix, HAS(has_last_icloud), -I53, I53),
	INT("last_local_unix", INT_I64, last_local_unix, HAS(has_last_local), -I53, I53),
	INT("battery_pct", INT_INT, battery_pct, HAS(has_battery), 0, 100),
	INT("total_bytes", INT_U64, total_bytes, HAS(has_storage), 0, I53),
	INT("available_bytes", INT_U64, available_bytes, HAS(has_storage), 0, I53),
	INT("last_backup_error", INT_INT, last_backup_error, NOHAS, -100000, 100000),
};
#undef INT
#undef HAS

static bool *field_bool(struct device_facts *f, size_t off)
{
	return (bool *)((char *)f + off);
}

static bool field_bool_get(const struct device_facts *f, size_t off)
{
	return *(const bool *)((const char *)f + off);
}

static bool has_field(const struct device_facts *f, size_t has_off)
{
	return has_off == NOHAS || *(const bool *)((const char *)f + has_off);
}

static double int_get(const struct device_facts *f, const struct facts_int *d)
{
	const char *p = (const char *)f + d->off;

	switch (d->kind) {
	case INT_I64:
		return (double)*(const int64_t *)p;
	case INT_U64:
		return (double)*(const uint64_t *)p;
	default:
		return (double)*(const int *)p;
	}
}

static void int_set(struct device_facts *f, const struct facts_int *d, double v)
{
	char *p = (char *)f + d->off;

	switch (d->kind) {
	case INT_I64:
		*(int64_t *)p = (int64_t)v;
		break;
	case INT_U64:
		*(uint64_t *)p = (uint64_t)v;
		break;
	default:
		*(int *)p = (int)v;
		break;
	}
}

/* More than every known key: bounds the duplicate check. */
#define FACTS_JSON_MEMBERS_MAX 64

char *facts_to_json(const struct device_facts *f)
{
	cJSON *o = cJSON_CreateObject(), *arr;
	char *out = NULL;
	size_t i;
	bool ok;

	if (!o)
		return NULL;
	ok = cJSON_AddStringToObject(o, "udid", f->udid) &&
	     cJSON_AddStringToObject(o, "probe", facts_probe_name(f->probe)) &&
	     cJSON_AddStringToObject(o, "pairing", facts_pairing_name(f->pairing));
	for (i = 0; ok && i < ARRAY_SIZE(str_fields); i++) {
		const char *s = (const char *)f + str_fields[i].off;

		/* the struct's strings are NUL-terminated by contract; bound anyway */
		if (memchr(s, '\0', str_fields[i].size) && s[0])
			ok = cJSON_AddStringToObject(o, str_fields[i].key, s) != NULL;
	}
	for (i = 0; ok && i < ARRAY_SIZE(bool_fields); i++)
		if (has_field(f, bool_fields[i].has_off))
			ok = cJSON_AddBoolToObject(o, bool_fields[i].key,
			                           field_bool_get(f, bool_fields[i].off)) != NULL;
	for (i = 0; ok && i < ARRAY_SIZE(int_fields); i++)
		if (has_field(f, int_fields[i].has_off))
			ok = cJSON_AddNumberToObject(o, int_fields[i].key,
			                             int_get(f, &int_fields[i])) != NULL;
	if (ok && f->n_syslog > 0) {
		arr = cJSON_AddArrayToObject(o, "syslog");
		ok = arr != NULL;
		for (i = 0; ok && i < (size_t)f->n_syslog && i < FACTS_EVIDENCE_MAX; i++) {
			cJSON *s = cJSON_CreateString(f->syslog[i]);

			ok = s && cJSON_AddItemToArray(arr, s);
		}
	}
	if (ok)
		out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return out;
}

static int fail(char *err, size_t err_size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (err && err_size) {
		va_start(ap, fmt);
		vsnprintf(err, err_size, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Copies a JSON string into dst[size]; overlong or non-string is an error, not a truncation. */
static int copy_str(const cJSON *v, char *dst, size_t size)
{
	size_t n;

	if (!cJSON_IsString(v) || !v->valuestring)
		return -EINVAL;
	n = strlen(v->valuestring);
	if (n >= size)
		return -EINVAL;
	memcpy(dst, v->valuestring, n + 1);
	return 0;
}

static int parse_enum(const cJSON *v, const char *const *names, int n)
{
	int i;

	if (!cJSON_IsString(v) || !v->valuestring)
		return -1;
	for (i = 0; i < n; i++)
		if (names[i] && strcmp(v->valuestring, names[i]) == 0)
			return i;
	return -1;
}

static int parse_member(const cJSON *v, struct device_facts *f, char *err, size_t err_size)
{
	const char *k = v->string;
	size_t i;
	int e;

	if (strcmp(k, "udid") == 0) {
		if (copy_str(v, f->udid, sizeof(f->udid)) < 0 || !f->udid[0])
			return fail(err, err_size, "udid: expected a string of 1..%d bytes",
			            FACTS_UDID_MAX - 1);
		return 0;
	}
	if (strcmp(k, "probe") == 0) {
		if ((e = parse_enum(v, probe_names, _FACTS_PROBE_MAX)) < 0)
			return fail(err, err_size, "probe: unknown value");
		f->probe = (enum facts_probe)e;
		return 0;
	}
	if (strcmp(k, "pairing") == 0) {
		if ((e = parse_enum(v, pairing_names, _FACTS_PAIRING_MAX)) < 0)
			return fail(err, err_size, "pairing: unknown value");
		f->pairing = (enum facts_pairing)e;
		return 0;
	}
	if (strcmp(k, "syslog") == 0) {
		const cJSON *s;

		if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) > FACTS_EVIDENCE_MAX)
			return fail(err, err_size, "syslog: expected an array of <= %d strings",
			            FACTS_EVIDENCE_MAX);
		cJSON_ArrayForEach(s, v) {
			if (f->n_syslog >= FACTS_EVIDENCE_MAX)
				return fail(err, err_size, "syslog: too many lines");
			if (copy_str(s, f->syslog[f->n_syslog], FACTS_LINE_MAX) < 0)
				return fail(err, err_size,
				            "syslog[%d]: expected a string < %d bytes", f->n_syslog,
				            FACTS_LINE_MAX);
			f->n_syslog++;
		}
		return 0;
	}
	for (i = 0; i < ARRAY_SIZE(str_fields); i++)
		if (strcmp(k, str_fields[i].key) == 0) {
			if (copy_str(v, (char *)f + str_fields[i].off, str_fields[i].size) < 0)
				return fail(err, err_size, "%s: expected a string < %zu bytes", k,
				            str_fields[i].size);
			return 0;
		}
	for (i = 0; i < ARRAY_SIZE(bool_fields); i++)
		if (strcmp(k, bool_fields[i].key) == 0) {
			if (!cJSON_IsBool(v))
				return fail(err, err_size, "%s: expected a boolean", k);
			*field_bool(f, bool_fields[i].off) = cJSON_IsTrue(v);
			if (bool_fields[i].has_off != NOHAS)
				*field_bool(f, bool_fields[i].has_off) = true;
			return 0;
		}
	for (i = 0; i < ARRAY_SIZE(int_fields); i++)
		if (strcmp(k, int_fields[i].key) == 0) {
			double d = v->valuedouble;

			if (!cJSON_IsNumber(v) || !isfinite(d) || d != floor(d) ||
			    d < int_fields[i].min || d > int_fields[i].max)
				return fail(err, err_size,
				            "%s: expected an integer in [%.0f, %.0f]", k,
				            int_fields[i].min, int_fields[i].max);
			int_set(f, &int_fields[i], d);
			if (int_fields[i].has_off != NOHAS)
				*field_bool(f, int_fields[i].has_off) = true;
			return 0;
		}
	return fail(err, err_size, "%s: unknown key", k);
}

int facts_from_json(const char *json, size_t len, struct device_facts *ret, char *err,
                    size_t err_size)
{
	cJSON *o = NULL;
	const cJSON *v;
	int r;

	facts_init(ret, NULL);
	if (err && err_size)
		err[0] = '\0';
	if (!json || len > FACTS_JSON_MAX) {
		fail(err, err_size, "facts JSON larger than %d bytes", FACTS_JSON_MAX);
		return -E2BIG;
	}
	/* a NUL would cut a string (the udid, a version) short (jsontext.h) */
	if (jsontext_check_nul(json, len) < 0) {
		r = fail(err, err_size, "%s", JSONTEXT_NUL_ERR);
		goto out;
	}
	o = cJSON_ParseWithLength(json, len);
	if (!o) {
		r = fail(err, err_size, "not valid JSON");
		goto out;
	}
	if (!cJSON_IsObject(o)) {
		r = fail(err, err_size, "expected an object");
		goto out;
	}
	r = 0;
	if (cJSON_GetArraySize(o) > FACTS_JSON_MEMBERS_MAX) {
		r = fail(err, err_size, "more than %d members", FACTS_JSON_MEMBERS_MAX);
		goto out;
	}
	cJSON_ArrayForEach(v, o) {
		const cJSON *w;

		if (!v->string) {
			r = fail(err, err_size, "member without a name");
			goto out;
		}
		/* a repeated key would let a second "syslog" append past the first */
		for (w = o->child; w != v; w = w->next)
			if (strcmp(w->string, v->string) == 0) {
				r = fail(err, err_size, "%s: duplicate key", v->string);
				goto out;
			}
		r = parse_member(v, ret, err, err_size);
		if (r < 0)
			goto out;
	}
	if (!ret->udid[0])
		r = fail(err, err_size, "udid: missing");
out:
	cJSON_Delete(o);
	if (r < 0)
		facts_init(ret, NULL);
	return r;
}
