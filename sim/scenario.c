/* SPDX-License-Identifier: MIT */
/*
 * scenario: reads cradle-sim's JSON scenario into devices. `values` holds raw lockdown domains
 * so any key can be simulated without code; this file only maps JSON types onto plist types,
 * checks the types of the keys the agent relies on (a LastCloudBackupDate given as a string
 * would silently test nothing) and fills in identity keys a real phone always has.
 *
 * A bad scenario is refused as a whole with one message that names the JSON path, because the
 * person who wrote it needs to find the line; nothing half-loaded survives an error. Every
 * size is capped (file, devices, syslog lines, nesting depth).
 */
#include "scenario.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "loop.h"
#include "sim.h"
#include "timefmt.h"

#define SCENARIO_DEPTH_MAX    32
#define SCENARIO_SYSLOG_MAX   100000
#define SCENARIO_LINE_MAX     8192
#define SCENARIO_TIMELINE_MAX 10000
#define PATH_MAX_LEN          512
#define SCENARIO_NOW_MAX      (10 * 366 * 24 * 3600) /* $now offsets: +-10 years */

enum key_type { KT_INT, KT_BOOL, KT_STRING };

/* Keys whose type the agent depends on (docs/device-protocols.md, "Lockdown values the agent
 * reads"). */
static const struct {
	const char *domain;
	const char *key;
	enum key_type type;
} known_keys[] = {
	{ "", "ProductVersion", KT_STRING },
	{ "", "BuildVersion", KT_STRING },
	{ "", "ProductType", KT_STRING },
	{ "", "DeviceName", KT_STRING },
	{ "", "SerialNumber", KT_STRING },
	{ "", "UniqueDeviceID", KT_STRING },
	{ "", "PasswordProtected", KT_BOOL },
	{ "com.apple.mobile.backup", "LastCloudBackupDate", KT_INT },
	{ "com.apple.mobile.backup", "LastiTunesBackupDate", KT_INT },
	{ "com.apple.mobile.backup", "CloudBackupEnabled", KT_BOOL },
	{ "com.apple.mobile.backup", "WillEncrypt", KT_BOOL },
	{ "com.apple.mobile.backup", "RequiresEncryption", KT_INT },
	{ "com.apple.mobile.backup", "LastCloudBackupTZ", KT_STRING },
	{ "com.apple.mobile.backup", "LastiTunesBackupTZ", KT_STRING },
	{ "com.apple.mobile.battery", "BatteryCurrentCapacity", KT_INT },
	{ "com.apple.mobile.battery", "BatteryIsCharging", KT_BOOL },
	{ "com.apple.mobile.battery", "ExternalConnected", KT_BOOL },
	{ "com.apple.mobile.battery", "ExternalChargeCapable", KT_BOOL },
	{ "com.apple.mobile.battery", "FullyCharged", KT_BOOL },
	{ "com.apple.mobile.battery", "HasBattery", KT_BOOL },
	{ "com.apple.disk_usage", "AmountDataAvailable", KT_INT },
	{ "com.apple.disk_usage", "AmountDataReserved", KT_INT },
	{ "com.apple.disk_usage", "TotalDataAvailable", KT_INT },
	{ "com.apple.disk_usage", "TotalDataCapacity", KT_INT },
	{ "com.apple.disk_usage", "TotalDiskCapacity", KT_INT },
	{ "com.apple.disk_usage", "TotalSystemAvailable", KT_INT },
	{ "com.apple.disk_usage", "TotalSystemCapacity", KT_INT },
};

static const char *const pairing_names[_SIM_PAIRING_MAX] = {
	[SIM_PAIRING_PAIRED] = "paired",
	[SIM_PAIRING_UNPAIRED] = "unpaired",
	[SIM_PAIRING_TRUST_PENDING] = "trust_pending",
	[SIM_PAIRING_DENIED] = "denied",
	[SIM_PAIRING_INVALID_HOST] = "invalid_host",
};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt,
                                                      ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

int scenario_pairing_from_string(const char *s, enum sim_pairing *ret)
{
	int i;

	for (i = 0; s && i < _SIM_PAIRING_MAX; i++)
		if (strcmp(s, pairing_names[i]) == 0) {
			*ret = (enum sim_pairing)i;
			return 0;
		}
	return -EINVAL;
}

const char *scenario_pairing_to_string(enum sim_pairing p)
{
	return (unsigned)p < _SIM_PAIRING_MAX ? pairing_names[p] : "unknown";
}

/* Appends .key or ["key"] to path. */
static void path_key(char *dst, size_t size, const char *path, const char *key)
{
	bool ident = (isalpha((unsigned char)key[0]) || key[0] == '_');
	const char *p;

	for (p = key; ident && *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			ident = false;
	if (ident)
		snprintf(dst, size, "%s%s%s", path, *path ? "." : "", key);
	else
		snprintf(dst, size, "%s[\"%.200s\"]", path, key);
}

static int known_type(const char *domain, const char *key)
{
	size_t i;

	if (!domain || !key)
		return -1;
	for (i = 0; i < sizeof(known_keys) / sizeof(known_keys[0]); i++)
		if (strcmp(known_keys[i].domain, domain) == 0 &&
		    strcmp(known_keys[i].key, key) == 0)
			return (int)known_keys[i].type;
	return -1;
}

static bool json_is_integer(const cJSON *j)
{
	double d;

	if (!cJSON_IsNumber(j))
		return false;
	d = j->valuedouble;
	/* range first: converting a double outside the target type is undefined behaviour */
	if (!(d >= -9223372036854775808.0 && d < 18446744073709551616.0))
		return false;
	if (d < 0)
		return d == (double)(long long)d;
	return d == (double)(unsigned long long)d;
}

static int base64_value(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Standard or URL-safe base64, padding optional, whitespace ignored. 0 or -EINVAL. */
static int base64_decode(const char *s, uint8_t **ret, size_t *ret_len)
{
	size_t n = strlen(s), len = 0;
	uint8_t *out = malloc(n / 4 * 3 + 3);
	uint32_t acc = 0;
	int bits = 0, pad = 0;

	if (!out)
		return -ENOMEM;
	for (; *s; s++) {
		int v;

		if (isspace((unsigned char)*s))
			continue;
		if (*s == '=') {
			pad++;
			continue;
		}
		v = base64_value((unsigned char)*s);
		if (v < 0 || pad) {
			free(out);
			return -EINVAL;
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[len++] = (uint8_t)(acc >> bits);
		}
	}
	if (pad > 2 || bits >= 6) {
		free(out);
		return -EINVAL;
	}
	*ret = out;
	*ret_len = len;
	return 0;
}

static int value_to_plist(const cJSON *j, int type, const char *path, int depth, plist_t *ret,
                          char *err, size_t errlen)
{
	char sub[PATH_MAX_LEN];
	const cJSON *c;
	plist_t p = NULL;
	int r, i;

	*ret = NULL;
	if (depth > SCENARIO_DEPTH_MAX)
		return fail(err, errlen, "%s: nested too deeply", path);
	/* {"$ago": seconds}: an Apple absolute time (integer) that far before now, so that a
	 * checked-in scenario keeps meaning "backed up 2 hours ago" whenever it is run. */
	if (cJSON_IsObject(j) && j->child && !j->child->next && j->child->string &&
	    strcmp(j->child->string, "$ago") == 0) {
		int64_t now_mac = timefmt_unix_to_mac(wall_now_ms() / 1000);

		if (type != -1 && type != KT_INT)
			return fail(err, errlen, "%s: expected %s", path,
			            type == KT_BOOL ? "boolean" : "string");
		if (!json_is_integer(j->child) || j->child->valuedouble < 0 ||
		    j->child->valuedouble > (double)now_mac)
			return fail(err, errlen, "%s: $ago: expected seconds (0..now)", path);
		p = plist_new_uint((uint64_t)(now_mac - (int64_t)j->child->valuedouble));
		*ret = p;
		return p ? 0 : fail(err, errlen, "%s: out of memory", path);
	}
	/* {"$now": seconds}: an Apple absolute time that far after now (negative: before). In a
	 * timeline `set` or a control `set`, "now" is the simulated time when it is applied. */
	if (cJSON_IsObject(j) && j->child && !j->child->next && j->child->string &&
	    strcmp(j->child->string, "$now") == 0) {
		int64_t now_mac = timefmt_unix_to_mac(wall_now_ms() / 1000);

		if (type != -1 && type != KT_INT)
			return fail(err, errlen, "%s: expected %s", path,
			            type == KT_BOOL ? "boolean" : "string");
		if (!json_is_integer(j->child) || j->child->valuedouble > SCENARIO_NOW_MAX ||
		    j->child->valuedouble < -SCENARIO_NOW_MAX)
			return fail(err, errlen, "%s: $now: expected seconds (-%d..%d)", path,
			            SCENARIO_NOW_MAX, SCENARIO_NOW_MAX);
		p = plist_new_uint((uint64_t)(now_mac + (int64_t)j->child->valuedouble));
		*ret = p;
		return p ? 0 : fail(err, errlen, "%s: out of memory", path);
	}
	if (type == KT_INT && !json_is_integer(j))
		return fail(err, errlen, "%s: expected integer", path);
	if (type == KT_BOOL && !cJSON_IsBool(j))
		return fail(err, errlen, "%s: expected boolean", path);
	if (type == KT_STRING && !cJSON_IsString(j))
		return fail(err, errlen, "%s: expected string", path);

	if (cJSON_IsBool(j)) {
		p = plist_new_bool(cJSON_IsTrue(j));
	} else if (cJSON_IsNumber(j)) {
		if (json_is_integer(j))
			p = plist_new_uint(j->valuedouble < 0 ? (uint64_t)(int64_t)j->valuedouble
			                                      : (uint64_t)j->valuedouble);
		else
			p = plist_new_real(j->valuedouble);
	} else if (cJSON_IsString(j)) {
		p = plist_new_string(j->valuestring);
	} else if (cJSON_IsArray(j)) {
		p = plist_new_array();
		i = 0;
		cJSON_ArrayForEach(c, j) {
			plist_t item;

			snprintf(sub, sizeof(sub), "%s[%d]", path, i++);
			r = value_to_plist(c, -1, sub, depth + 1, &item, err, errlen);
			if (r < 0) {
				plist_free(p);
				return r;
			}
			plist_array_append_item(p, item);
		}
	} else if (cJSON_IsObject(j)) {
		const cJSON *only = j->child;

		if (only && !only->next && only->string && strcmp(only->string, "$date") == 0) {
			int64_t unix_s, mac;

			if (!cJSON_IsString(only) ||
			    timefmt_parse_rfc3339(only->valuestring, &unix_s) < 0)
				return fail(err, errlen, "%s: $date: expected an RFC 3339 string",
				            path);
			mac = timefmt_unix_to_mac(unix_s);
			if (mac < INT32_MIN || mac > INT32_MAX)
				return fail(err, errlen, "%s: $date: out of range", path);
			p = plist_new_date((int32_t)mac, 0);
		} else if (only && !only->next && only->string &&
		           strcmp(only->string, "$data") == 0) {
			uint8_t *data;
			size_t len;

			if (!cJSON_IsString(only) ||
			    base64_decode(only->valuestring, &data, &len) < 0)
				return fail(err, errlen, "%s: $data: expected a base64 string",
				            path);
			p = plist_new_data((const char *)data, len);
			free(data);
		} else {
			p = plist_new_dict();
			cJSON_ArrayForEach(c, j) {
				plist_t item;

				path_key(sub, sizeof(sub), path, c->string);
				r = value_to_plist(c, -1, sub, depth + 1, &item, err, errlen);
				if (r < 0) {
					plist_free(p);
					return r;
				}
				plist_dict_set_item(p, c->string, item);
			}
		}
	} else {
		return fail(err, errlen, "%s: null is not a plist value", path);
	}
	if (!p)
		return fail(err, errlen, "%s: out of memory", path);
	*ret = p;
	return 0;
}

int scenario_value_to_plist(const cJSON *j, const char *domain, const char *key, const char *path,
                            plist_t *ret, char *err, size_t errlen)
{
	return value_to_plist(j, known_type(domain ? domain : "", key), path, 0, ret, err, errlen);
}

/* ---- devices ---- */

static uint64_t fnv64(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 1099511628211ull;
	return h;
}

static void set_default_string(plist_t dict, const char *key, const char *val)
{
	if (!plist_dict_get_item(dict, key))
		plist_dict_set_item(dict, key, plist_new_string(val));
}

static const char *build_for_version(const char *v)
{
	static const struct {
		const char *version, *build;
	} builds[] = {
		{ "18.1", "22B83" },    { "17.5.1", "21F90" }, { "17.0", "21A329" },
		{ "16.7.8", "20H343" }, { "16.0", "20A362" },  { "15.8.2", "19H384" },
		{ "14.8.1", "18H107" }, { "13.7", "17H35" },   { "12.5.7", "16H81" },
	};
	size_t i;

	for (i = 0; v && i < sizeof(builds) / sizeof(builds[0]); i++)
		if (strcmp(builds[i].version, v) == 0)
			return builds[i].build;
	return "21F90";
}

/* Identity keys a real phone always answers (idevicebackup2 needs several of them). */
static void fill_identity(struct sim_device *dev)
{
	static const char alnum[] = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ";
	plist_t root = plist_dict_get_item(dev->values, "");
	uint64_t h = fnv64(dev->udid);
	char serial[13], name[64], mac[18], bt[18];
	const char *version = NULL;
	plist_t pv;
	int i;

	serial[0] = 'F';
	for (i = 1; i < 12; i++)
		serial[i] = alnum[(h >> (i * 5)) % (sizeof(alnum) - 1)];
	serial[12] = '\0';
	snprintf(name, sizeof(name), "iPhone %.4s", dev->udid + strlen(dev->udid) - 4);
	snprintf(mac, sizeof(mac), "a4:83:e7:%02x:%02x:%02x", (unsigned)(h >> 8) & 0xff,
	         (unsigned)(h >> 16) & 0xff, (unsigned)(h >> 24) & 0xff);
	snprintf(bt, sizeof(bt), "a4:83:e7:%02x:%02x:%02x", (unsigned)(h >> 8) & 0xff,
	         (unsigned)(h >> 16) & 0xff, (unsigned)((h >> 24) + 1) & 0xff);

	set_default_string(root, "UniqueDeviceID", dev->udid);
	set_default_string(root, "ProductType", "iPhone14,5");
	set_default_string(root, "ProductVersion", "17.5.1");
	pv = plist_dict_get_item(root, "ProductVersion");
	if (plist_get_node_type(pv) == PLIST_STRING)
		version = plist_get_string_ptr(pv, NULL);
	set_default_string(root, "BuildVersion", build_for_version(version));
	set_default_string(root, "DeviceName", name);
	set_default_string(root, "SerialNumber", serial);
	set_default_string(root, "DeviceClass", "iPhone");
	set_default_string(root, "ProductName", "iPhone OS");
	set_default_string(root, "HardwareModel", "D17AP");
	set_default_string(root, "ModelNumber", "MLPF3");
	set_default_string(root, "RegionInfo", "LL/A");
	set_default_string(root, "CPUArchitecture", "arm64e");
	set_default_string(root, "ActivationState", "Activated");
	set_default_string(root, "WiFiAddress", mac);
	set_default_string(root, "BluetoothAddress", bt);
	set_default_string(root, "TimeZone", "Europe/Berlin");
	if (!plist_dict_get_item(root, "PasswordProtected"))
		plist_dict_set_item(root, "PasswordProtected", plist_new_bool(1));
	if (!plist_dict_get_item(root, "UniqueChipID"))
		plist_dict_set_item(root, "UniqueChipID", plist_new_uint(h & 0xffffffffffffull));
}

static int get_int(const cJSON *obj, const char *key, const char *path, int min, int max, int *ret,
                   char *err, size_t errlen)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!j)
		return 0;
	if (!json_is_integer(j))
		return fail(err, errlen, "%s.%s: expected integer", path, key);
	if (j->valuedouble < min || j->valuedouble > max)
		return fail(err, errlen, "%s.%s: out of range %d..%d", path, key, min, max);
	*ret = (int)j->valuedouble;
	return 0;
}

static int get_text(const cJSON *obj, const char *key, const char *path, char *dst, size_t size,
                    char *err, size_t errlen)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!j)
		return 0;
	if (!cJSON_IsString(j))
		return fail(err, errlen, "%s.%s: expected string", path, key);
	if (strlen(j->valuestring) >= size)
		return fail(err, errlen, "%s.%s: longer than %zu bytes", path, key, size - 1);
	memcpy(dst, j->valuestring, strlen(j->valuestring) + 1);
	return 0;
}

static int check_keys(const cJSON *obj, const char *path, const char *const *allowed, char *err,
                      size_t errlen)
{
	const cJSON *c;
	size_t i;

	cJSON_ArrayForEach(c, obj) {
		bool ok = false;

		for (i = 0; allowed[i]; i++)
			if (strcmp(c->string, allowed[i]) == 0)
				ok = true;
		if (!ok) {
			char sub[PATH_MAX_LEN];

			path_key(sub, sizeof(sub), path, c->string);
			return fail(err, errlen, "%s: unknown key", sub);
		}
	}
	return 0;
}

static int parse_values(struct sim_device *dev, const cJSON *values, const char *path, char *err,
                        size_t errlen)
{
	char dpath[PATH_MAX_LEN], kpath[PATH_MAX_LEN];
	const cJSON *d, *k;
	int r;

	if (!cJSON_IsObject(values))
		return fail(err, errlen, "%s: expected object", path);
	cJSON_ArrayForEach(d, values) {
		plist_t dict;

		snprintf(dpath, sizeof(dpath), "%.250s[\"%.200s\"]", path, d->string);
		if (!cJSON_IsObject(d))
			return fail(err, errlen, "%s: expected object", dpath);
		dict = plist_dict_get_item(dev->values, d->string);
		if (!dict) {
			dict = plist_new_dict();
			plist_dict_set_item(dev->values, d->string, dict);
		}
		cJSON_ArrayForEach(k, d) {
			plist_t v;

			path_key(kpath, sizeof(kpath), dpath, k->string);
			r = scenario_value_to_plist(k, d->string, k->string, kpath, &v, err,
			                            errlen);
			if (r < 0)
				return r;
			plist_dict_set_item(dict, k->string, v);
		}
	}
	return 0;
}

static int parse_syslog(struct sim_device *dev, const cJSON *arr, const char *path, char *err,
                        size_t errlen)
{
	const cJSON *c;
	int n, i = 0;

	if (!cJSON_IsArray(arr))
		return fail(err, errlen, "%s: expected array of strings", path);
	n = cJSON_GetArraySize(arr);
	if (n > SCENARIO_SYSLOG_MAX)
		return fail(err, errlen, "%s: more than %d lines", path, SCENARIO_SYSLOG_MAX);
	dev->syslog = calloc((size_t)n + 1, sizeof(char *));
	if (!dev->syslog)
		return fail(err, errlen, "%s: out of memory", path);
	cJSON_ArrayForEach(c, arr) {
		if (!cJSON_IsString(c))
			return fail(err, errlen, "%s[%d]: expected string", path, i);
		if (strlen(c->valuestring) > SCENARIO_LINE_MAX)
			return fail(err, errlen, "%s[%d]: longer than %d bytes", path, i,
			            SCENARIO_LINE_MAX);
		dev->syslog[i] = strdup(c->valuestring);
		if (!dev->syslog[i])
			return fail(err, errlen, "%s: out of memory", path);
		dev->n_syslog = ++i;
	}
	return 0;
}

static int parse_backup(struct sim_device *dev, const cJSON *b, const char *path, char *err,
                        size_t errlen)
{
	static const char *const keys[] = { "file_count", "file_size", "error_code",
		                            "error_text", "delay_ms",  "purge_disk_space",
		                            NULL };
	const cJSON *j;
	int r;

	if (!cJSON_IsObject(b))
		return fail(err, errlen, "%s: expected object", path);
	r = check_keys(b, path, keys, err, errlen);
	if (r == 0)
		r = get_int(b, "file_count", path, 0, 100000, &dev->backup.file_count, err, errlen);
	if (r == 0)
		r = get_int(b, "file_size", path, 0, 64 << 20, &dev->backup.file_size, err, errlen);
	if (r == 0)
		r = get_int(b, "error_code", path, -1000000, 1000000, &dev->backup.error_code, err,
		            errlen);
	if (r == 0)
		r = get_text(b, "error_text", path, dev->backup.error_text,
		             sizeof(dev->backup.error_text), err, errlen);
	if (r == 0)
		r = get_int(b, "delay_ms", path, 0, 3600000, &dev->backup.delay_ms, err, errlen);
	if (r < 0)
		return r;
	j = cJSON_GetObjectItemCaseSensitive(b, "purge_disk_space");
	if (j && !cJSON_IsBool(j))
		return fail(err, errlen, "%s.purge_disk_space: expected boolean", path);
	if (j)
		dev->backup.purge_disk_space = cJSON_IsTrue(j);
	return 0;
}

static int parse_cloud(struct sim_device *dev, const cJSON *b, const char *path, char *err,
                       size_t errlen)
{
	static const char *const keys[] = { "error_code", "error_text", NULL };
	int r;

	if (!cJSON_IsObject(b))
		return fail(err, errlen, "%s: expected object", path);
	r = check_keys(b, path, keys, err, errlen);
	if (r == 0)
		r = get_int(b, "error_code", path, -1000000, 1000000, &dev->cloud.error_code, err,
		            errlen);
	if (r == 0)
		r = get_text(b, "error_text", path, dev->cloud.error_text,
		             sizeof(dev->cloud.error_text), err, errlen);
	return r;
}

bool scenario_is_now(const cJSON *j, int64_t *offset_s)
{
	if (!cJSON_IsObject(j) || !j->child || j->child->next || !j->child->string ||
	    strcmp(j->child->string, "$now") != 0 || !cJSON_IsNumber(j->child))
		return false;
	*offset_s = (int64_t)j->child->valuedouble;
	return true;
}

void scenario_event_free(struct timeline_event *ev)
{
	plist_free(ev->value);
	ev->value = NULL;
	free(ev->text);
	ev->text = NULL;
}

/* {"op":"syslog", "line": L} or {"op":"syslog", "process": P, "message": M, "level": V}. */
static int parse_syslog_event(const cJSON *e, const char *path, struct timeline_event *ev,
                              char *err, size_t errlen)
{
	const cJSON *line = cJSON_GetObjectItemCaseSensitive(e, "line");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
	const cJSON *text;
	int r;

	if (!!line == !!msg)
		return fail(err, errlen, "%s: syslog: expected either line or process and message",
		            path);
	text = line ? line : msg;
	if (!cJSON_IsString(text))
		return fail(err, errlen, "%s.%s: expected string", path, line ? "line" : "message");
	if (strlen(text->valuestring) > SCENARIO_LINE_MAX)
		return fail(err, errlen, "%s.%s: longer than %d bytes", path,
		            line ? "line" : "message", SCENARIO_LINE_MAX);
	if (line && (cJSON_GetObjectItemCaseSensitive(e, "process") ||
	             cJSON_GetObjectItemCaseSensitive(e, "level")))
		return fail(err, errlen, "%s: syslog: process and level go with message, not line",
		            path);
	r = get_text(e, "process", path, ev->process, sizeof(ev->process), err, errlen);
	if (r == 0)
		r = get_text(e, "level", path, ev->level, sizeof(ev->level), err, errlen);
	if (r < 0)
		return r;
	if (msg && !ev->process[0])
		return fail(err, errlen, "%s.process: missing (a message needs its process)", path);
	if (!ev->level[0])
		snprintf(ev->level, sizeof(ev->level), "Notice");
	ev->text = strdup(text->valuestring);
	return ev->text ? 0 : fail(err, errlen, "%s: out of memory", path);
}

static int parse_event(struct sim_device *dev, const cJSON *e, const char *path,
                       struct timeline_event *ev, char *err, size_t errlen)
{
	static const char *const keys[] = { "at_ms",   "op",    "domain",  "key",
		                            "value",   "state", "comment", "line",
		                            "process", "level", "message", NULL };
	static const char ops_msg[] = "%s.op: expected one of set, attach, detach, pairing, syslog";
	const cJSON *op, *v;
	char sub[PATH_MAX_LEN];
	int at = -1, r;

	memset(ev, 0, sizeof(*ev));
	ev->dev = dev;
	if (!cJSON_IsObject(e))
		return fail(err, errlen, "%s: expected object", path);
	r = check_keys(e, path, keys, err, errlen);
	if (r < 0)
		return r;
	if (!cJSON_GetObjectItemCaseSensitive(e, "at_ms"))
		return fail(err, errlen, "%s.at_ms: missing", path);
	r = get_int(e, "at_ms", path, 0, 7 * 24 * 3600 * 1000, &at, err, errlen);
	if (r < 0)
		return r;
	ev->at_ms = (uint64_t)at;
	op = cJSON_GetObjectItemCaseSensitive(e, "op");
	if (!cJSON_IsString(op))
		return fail(err, errlen, ops_msg, path);
	if (strcmp(op->valuestring, "attach") == 0) {
		ev->op = TIMELINE_ATTACH;
	} else if (strcmp(op->valuestring, "detach") == 0) {
		ev->op = TIMELINE_DETACH;
	} else if (strcmp(op->valuestring, "syslog") == 0) {
		ev->op = TIMELINE_SYSLOG;
		return parse_syslog_event(e, path, ev, err, errlen);
	} else if (strcmp(op->valuestring, "pairing") == 0) {
		ev->op = TIMELINE_PAIRING;
		v = cJSON_GetObjectItemCaseSensitive(e, "state");
		if (!cJSON_IsString(v) ||
		    scenario_pairing_from_string(v->valuestring, &ev->pairing))
			return fail(err, errlen,
			            "%s.state: expected one of paired, unpaired, trust_pending, "
			            "denied, invalid_host",
			            path);
	} else if (strcmp(op->valuestring, "set") == 0) {
		ev->op = TIMELINE_SET;
		r = get_text(e, "domain", path, ev->domain, sizeof(ev->domain), err, errlen);
		if (r == 0)
			r = get_text(e, "key", path, ev->key, sizeof(ev->key), err, errlen);
		if (r < 0)
			return r;
		if (!ev->key[0])
			return fail(err, errlen, "%s.key: missing", path);
		v = cJSON_GetObjectItemCaseSensitive(e, "value");
		if (!v)
			return fail(err, errlen, "%s.value: missing (null removes the key)", path);
		if (!cJSON_IsNull(v)) {
			snprintf(sub, sizeof(sub), "%.400s.value", path);
			r = scenario_value_to_plist(v, ev->domain, ev->key, sub, &ev->value, err,
			                            errlen);
			if (r < 0)
				return r;
			ev->value_now = scenario_is_now(v, &ev->now_offset_s);
		}
	} else {
		return fail(err, errlen, ops_msg, path);
	}
	return 0;
}

/* "refuse_services": service names StartService answers with ServiceProhibited. */
static int parse_refused(struct sim_device *dev, const cJSON *arr, const char *path, char *err,
                         size_t errlen)
{
	const cJSON *c;
	int n, i = 0;

	if (!cJSON_IsArray(arr))
		return fail(err, errlen, "%s: expected array of service names", path);
	n = cJSON_GetArraySize(arr);
	if (n > 64)
		return fail(err, errlen, "%s: more than 64 services", path);
	dev->refused = calloc((size_t)n + 1, sizeof(char *));
	if (!dev->refused)
		return fail(err, errlen, "%s: out of memory", path);
	cJSON_ArrayForEach(c, arr) {
		if (!cJSON_IsString(c) || !c->valuestring[0] || strlen(c->valuestring) > 200)
			return fail(err, errlen, "%s[%d]: expected a service name", path, i);
		dev->refused[i] = strdup(c->valuestring);
		if (!dev->refused[i])
			return fail(err, errlen, "%s: out of memory", path);
		dev->n_refused = ++i;
	}
	return 0;
}

static bool udid_taken(const struct scenario *sc, const char *udid)
{
	int i;

	for (i = 0; i < sc->n_devices; i++)
		if (strcasecmp(sc->devices[i]->udid, udid) == 0)
			return true;
	return false;
}

static int parse_device(struct scenario *sc, const cJSON *d, const char *path,
                        struct sim_device **ret, struct timeline_event **events, int *n_events,
                        char *err, size_t errlen)
{
	static const char *const keys[] = {
		"udid",     "pairing",      "values",           "syslog",
		"backup",   "cloud_toggle", "restart_delay_ms", "attached",
		"timeline", "comment",      "refuse_services",  "expect",
		NULL
	};
	char sub[PATH_MAX_LEN], udid[64];
	struct sim_device *dev = NULL;
	const cJSON *j, *e;
	int r, i;

	*ret = NULL;
	if (!cJSON_IsObject(d))
		return fail(err, errlen, "%s: expected object", path);
	r = check_keys(d, path, keys, err, errlen);
	if (r < 0)
		return r;
	j = cJSON_GetObjectItemCaseSensitive(d, "udid");
	if (!j)
		return fail(err, errlen, "%s.udid: missing", path);
	if (!cJSON_IsString(j) || sim_normalize_udid(j->valuestring, udid, sizeof(udid)) < 0)
		return fail(err, errlen,
		            "%s.udid: expected 24 or 40 hex digits (or 8-16 hex with a dash)",
		            path);
	if (udid_taken(sc, udid))
		return fail(err, errlen, "%s.udid: duplicate %s", path, udid);
	dev = sim_device_new(udid);
	if (!dev)
		return fail(err, errlen, "%s: out of memory", path);
	/* Defaults that make a plain device behave like a healthy phone. */
	dev->backup.file_count = 8;
	dev->backup.file_size = 1024;
	dev->backup.delay_ms = 10;
	dev->restart_delay_ms = 500;
	dev->attached = true; /* "wants to be attached"; main attaches it for real */

	j = cJSON_GetObjectItemCaseSensitive(d, "pairing");
	if (j &&
	    (!cJSON_IsString(j) || scenario_pairing_from_string(j->valuestring, &dev->pairing))) {
		r = fail(err, errlen,
		         "%s.pairing: expected one of paired, unpaired, trust_pending, denied, "
		         "invalid_host",
		         path);
		goto out;
	}
	j = cJSON_GetObjectItemCaseSensitive(d, "values");
	if (j) {
		snprintf(sub, sizeof(sub), "%s.values", path);
		r = parse_values(dev, j, sub, err, errlen);
		if (r < 0)
			goto out;
	}
	fill_identity(dev);
	j = cJSON_GetObjectItemCaseSensitive(d, "syslog");
	if (j) {
		snprintf(sub, sizeof(sub), "%s.syslog", path);
		r = parse_syslog(dev, j, sub, err, errlen);
		if (r < 0)
			goto out;
	}
	/* ground truth for tests that score a client (sim/README.md); not used here */
	j = cJSON_GetObjectItemCaseSensitive(d, "expect");
	if (j && !cJSON_IsObject(j)) {
		r = fail(err, errlen, "%s.expect: expected object", path);
		goto out;
	}
	j = cJSON_GetObjectItemCaseSensitive(d, "refuse_services");
	if (j) {
		snprintf(sub, sizeof(sub), "%s.refuse_services", path);
		r = parse_refused(dev, j, sub, err, errlen);
		if (r < 0)
			goto out;
	}
	j = cJSON_GetObjectItemCaseSensitive(d, "backup");
	if (j) {
		snprintf(sub, sizeof(sub), "%s.backup", path);
		r = parse_backup(dev, j, sub, err, errlen);
		if (r < 0)
			goto out;
	}
	j = cJSON_GetObjectItemCaseSensitive(d, "cloud_toggle");
	if (j) {
		snprintf(sub, sizeof(sub), "%s.cloud_toggle", path);
		r = parse_cloud(dev, j, sub, err, errlen);
		if (r < 0)
			goto out;
	}
	r = get_int(d, "restart_delay_ms", path, 0, 3600000, &dev->restart_delay_ms, err, errlen);
	if (r < 0)
		goto out;
	j = cJSON_GetObjectItemCaseSensitive(d, "attached");
	if (j && !cJSON_IsBool(j)) {
		r = fail(err, errlen, "%s.attached: expected boolean", path);
		goto out;
	}
	if (j)
		dev->attached = cJSON_IsTrue(j);
	j = cJSON_GetObjectItemCaseSensitive(d, "timeline");
	if (j) {
		int n = cJSON_GetArraySize(j);
		struct timeline_event *grown;

		if (!cJSON_IsArray(j)) {
			r = fail(err, errlen, "%s.timeline: expected array", path);
			goto out;
		}
		if (n > SCENARIO_TIMELINE_MAX || *n_events > SCENARIO_TIMELINE_MAX * 10) {
			r = fail(err, errlen, "%s.timeline: too many events", path);
			goto out;
		}
		grown = realloc(*events, (size_t)(*n_events + n + 1) * sizeof(**events));
		if (!grown) {
			r = fail(err, errlen, "%s: out of memory", path);
			goto out;
		}
		*events = grown;
		i = 0;
		cJSON_ArrayForEach(e, j) {
			snprintf(sub, sizeof(sub), "%s.timeline[%d]", path, i++);
			r = parse_event(dev, e, sub, &(*events)[*n_events], err, errlen);
			if (r < 0) {
				scenario_event_free(&(*events)[*n_events]);
				goto out;
			}
			(*n_events)++;
		}
	}
	*ret = dev;
	dev = NULL;
	r = 0;
out:
	sim_device_free(dev);
	return r;
}

int scenario_parse_json(struct scenario *sc, const cJSON *doc, char *err, size_t errlen)
{
	static const char *const keys[] = { "devices",     "$schema",    "comment",
		                            "description", "time_scale", NULL };
	struct timeline_event *events = NULL;
	struct sim_device **devs = NULL;
	const cJSON *arr, *d;
	char path[64];
	int n, n_events = 0, i = 0, r, base = sc->n_devices;
	double scale;

	if (!cJSON_IsObject(doc))
		return fail(err, errlen, "(top level): expected object");
	r = check_keys(doc, "", keys, err, errlen);
	if (r < 0)
		return r;
	arr = cJSON_GetObjectItemCaseSensitive(doc, "time_scale");
	if (arr && (!cJSON_IsNumber(arr) || !(arr->valuedouble >= 1) ||
	            arr->valuedouble > SIM_TIME_SCALE_MAX))
		return fail(err, errlen, "time_scale: expected a number from 1 to %d",
		            SIM_TIME_SCALE_MAX);
	scale = arr ? arr->valuedouble : 0;
	arr = cJSON_GetObjectItemCaseSensitive(doc, "devices");
	if (!cJSON_IsArray(arr))
		return fail(err, errlen, "devices: expected array");
	n = cJSON_GetArraySize(arr);
	if (n + sc->n_devices > SCENARIO_DEVICES_MAX)
		return fail(err, errlen, "devices: more than %d devices", SCENARIO_DEVICES_MAX);
	devs = realloc(sc->devices, (size_t)(sc->n_devices + n + 1) * sizeof(*devs));
	if (!devs)
		return fail(err, errlen, "devices: out of memory");
	sc->devices = devs;
	cJSON_ArrayForEach(d, arr) {
		snprintf(path, sizeof(path), "devices[%d]", i++);
		r = parse_device(sc, d, path, &sc->devices[sc->n_devices], &events, &n_events, err,
		                 errlen);
		if (r < 0)
			goto fail;
		sc->n_devices++;
	}
	if (n_events) {
		struct timeline_event *all =
		        realloc(sc->events, (size_t)(sc->n_events + n_events) * sizeof(*all));

		if (!all) {
			r = fail(err, errlen, "timeline: out of memory");
			goto fail;
		}
		memcpy(all + sc->n_events, events, (size_t)n_events * sizeof(*all));
		sc->events = all;
		sc->n_events += n_events;
	}
	free(events);
	if (scale > 0)
		sc->time_scale = scale;
	return 0;
fail:
	/* Nothing half-loaded survives: drop this document's devices and events. */
	for (i = 0; i < n_events; i++)
		scenario_event_free(&events[i]);
	free(events);
	while (sc->n_devices > base)
		sim_device_free(sc->devices[--sc->n_devices]);
	return r;
}

int scenario_parse(struct scenario *sc, const char *buf, size_t len, char *err, size_t errlen)
{
	const char *end = NULL;
	cJSON *doc;
	int r;

	if (len > SCENARIO_FILE_MAX)
		return fail(err, errlen, "larger than %u bytes", SCENARIO_FILE_MAX);
	doc = cJSON_ParseWithLengthOpts(buf, len, &end, false);
	if (!doc) {
		size_t off = end && end >= buf ? (size_t)(end - buf) : 0;
		int line = 1;
		size_t i;

		for (i = 0; i < off && i < len; i++)
			if (buf[i] == '\n')
				line++;
		return fail(err, errlen, "invalid JSON near line %d (byte %zu)", line, off);
	}
	r = scenario_parse_json(sc, doc, err, errlen);
	cJSON_Delete(doc);
	return r;
}

int scenario_load_file(struct scenario *sc, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int r;

	if (!f)
		return fail(err, errlen, "%s: %s", path, strerror(errno));
	for (;;) {
		size_t n;

		if (len == cap) {
			char *p;

			cap = cap ? cap * 2 : 65536;
			if (cap > SCENARIO_FILE_MAX + 1)
				cap = SCENARIO_FILE_MAX + 1;
			if (len == cap) {
				r = fail(err, errlen, "%s: larger than %u bytes", path,
				         SCENARIO_FILE_MAX);
				goto out;
			}
			p = realloc(buf, cap);
			if (!p) {
				r = fail(err, errlen, "%s: out of memory", path);
				goto out;
			}
			buf = p;
		}
		n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	if (ferror(f)) {
		r = fail(err, errlen, "%s: read error", path);
		goto out;
	}
	r = scenario_parse(sc, buf, len, err, errlen);
out:
	free(buf);
	fclose(f);
	return r;
}

void scenario_free(struct scenario *sc)
{
	int i;

	for (i = 0; i < sc->n_devices; i++)
		sim_device_free(sc->devices[i]);
	free(sc->devices);
	for (i = 0; i < sc->n_events; i++)
		scenario_event_free(&sc->events[i]);
	free(sc->events);
	memset(sc, 0, sizeof(*sc));
}
