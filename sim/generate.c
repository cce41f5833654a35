/* SPDX-License-Identifier: MIT */
/*
 * generate: builds a scenario document of N phones in a realistic mix of states (mostly
 * healthy; some stale, never backed up, iCloud Backup off, old iOS, off power, not trusted,
 * waiting for a passcode) and runs it through the ordinary scenario parser, so generated
 * devices obey exactly the same rules as hand-written ones. splitmix64 keeps it deterministic
 * per seed on every platform.
 */
#include "generate.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "macro.h"
#include "scenario.h"
#include "timefmt.h"

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static const char *const product_types[] = { "iPhone12,8", "iPhone13,2", "iPhone14,5",
	                                     "iPhone14,7", "iPhone15,2", "iPhone16,1" };
static const char *const versions[] = { "16.7.8", "17.0", "17.5.1", "17.5.1", "18.1" };

enum profile {
	P_HEALTHY,
	P_STALE,
	P_NEVER,
	P_CLOUD_OFF,
	P_OLD_IOS,
	P_NO_POWER,
	P_UNPAIRED,
	P_TRUST_PENDING,
	P_DENIED,
	P_INVALID_HOST,
	P_PASSCODE,
	P_STORAGE_FULL,
};

/* Out of 100: 55 healthy, the rest spread over the problems. */
static enum profile pick_profile(uint64_t r)
{
	static const struct {
		int upto;
		enum profile p;
	} w[] = {
		{ 55, P_HEALTHY },      { 62, P_STALE },         { 67, P_NEVER },
		{ 72, P_CLOUD_OFF },    { 76, P_OLD_IOS },       { 81, P_NO_POWER },
		{ 84, P_UNPAIRED },     { 87, P_TRUST_PENDING }, { 89, P_DENIED },
		{ 91, P_INVALID_HOST }, { 95, P_PASSCODE },      { 100, P_STORAGE_FULL },
	};
	int v = (int)(r % 100);
	size_t i;

	for (i = 0; i < ARRAY_SIZE(w); i++)
		if (v < w[i].upto)
			return w[i].p;
	return P_HEALTHY;
}

static cJSON *make_device(int i, uint64_t *rng, int64_t now_unix)
{
	cJSON *d = cJSON_CreateObject(), *values, *root, *backup, *battery, *disk;
	enum profile p = pick_profile(splitmix64(rng));
	int64_t mac_now = timefmt_unix_to_mac(now_unix);
	char udid[32], name[32];
	uint64_t cap = 64ull << (splitmix64(rng) % 4); /* 64..512 GB */
	int batt = 20 + (int)(splitmix64(rng) % 81);

	snprintf(udid, sizeof(udid), "00008110%08X%08X", (unsigned)(splitmix64(rng) >> 32),
	         (unsigned)i);
	snprintf(name, sizeof(name), "Cart iPhone %04d", i);
	cJSON_AddStringToObject(d, "udid", udid);
	values = cJSON_AddObjectToObject(d, "values");
	root = cJSON_AddObjectToObject(values, "");
	cJSON_AddStringToObject(root, "DeviceName", name);
	cJSON_AddStringToObject(root, "ProductType",
	                        product_types[splitmix64(rng) % (ARRAY_SIZE(product_types))]);
	cJSON_AddStringToObject(
	        root, "ProductVersion",
	        p == P_OLD_IOS ? "15.8.2" : versions[splitmix64(rng) % (ARRAY_SIZE(versions))]);
	backup = cJSON_AddObjectToObject(values, "com.apple.mobile.backup");
	cJSON_AddBoolToObject(backup, "CloudBackupEnabled", p != P_CLOUD_OFF);
	cJSON_AddStringToObject(backup, "Version", "2.0");
	cJSON_AddNumberToObject(backup, "RequiresEncryption", 0);
	cJSON_AddBoolToObject(backup, "WillEncrypt", false);
	if (p != P_NEVER) {
		int64_t age = (int64_t)(splitmix64(rng) % (20 * 3600)); /* < 20 h: fresh */

		if (p == P_STALE || p == P_CLOUD_OFF || p == P_STORAGE_FULL || p == P_NO_POWER)
			age = 4 * 86400 + (int64_t)(splitmix64(rng) % (30 * 86400));
		cJSON_AddNumberToObject(backup, "LastCloudBackupDate", (double)(mac_now - age));
		cJSON_AddStringToObject(backup, "LastCloudBackupTZ", "GMT+1");
	}
	battery = cJSON_AddObjectToObject(values, "com.apple.mobile.battery");
	cJSON_AddNumberToObject(battery, "BatteryCurrentCapacity", batt);
	cJSON_AddBoolToObject(battery, "BatteryIsCharging", p != P_NO_POWER && batt < 80);
	cJSON_AddBoolToObject(battery, "ExternalConnected", p != P_NO_POWER);
	cJSON_AddBoolToObject(battery, "ExternalChargeCapable", p != P_NO_POWER);
	cJSON_AddBoolToObject(battery, "FullyCharged", batt == 100);
	cJSON_AddBoolToObject(battery, "HasBattery", true);
	disk = cJSON_AddObjectToObject(values, "com.apple.disk_usage");
	cJSON_AddNumberToObject(disk, "TotalDiskCapacity", (double)(cap * 1000000000ull));
	cJSON_AddNumberToObject(disk, "TotalDataCapacity", (double)(cap * 940000000ull));
	cJSON_AddNumberToObject(disk, "AmountDataAvailable",
	                        (double)(cap * (100000000ull + splitmix64(rng) % 500000000ull)));
	switch (p) {
	case P_UNPAIRED:
		cJSON_AddStringToObject(d, "pairing", "unpaired");
		break;
	case P_TRUST_PENDING:
		cJSON_AddStringToObject(d, "pairing", "trust_pending");
		break;
	case P_DENIED:
		cJSON_AddStringToObject(d, "pairing", "denied");
		break;
	case P_INVALID_HOST:
		cJSON_AddStringToObject(d, "pairing", "invalid_host");
		break;
	case P_PASSCODE: {
		cJSON *b = cJSON_AddObjectToObject(d, "backup");

		cJSON_AddNumberToObject(b, "error_code", 208);
		cJSON_AddStringToObject(b, "error_text", "Passcode required to back up");
		cJSON_AddNumberToObject(b, "delay_ms", 200);
		break;
	}
	case P_STORAGE_FULL: {
		cJSON *s = cJSON_AddArrayToObject(d, "syslog");

		cJSON_AddItemToArray(
		        s, cJSON_CreateString("backupd[312] <Error>: Backup failed: "
		                              "MBErrorDomain/105 Not enough iCloud storage "
		                              "(storage full)"));
		break;
	}
	default:
		break;
	}
	return d;
}

cJSON *generate_document(int n, uint64_t seed, int64_t now_unix)
{
	cJSON *doc = cJSON_CreateObject(), *arr;
	uint64_t rng = seed;
	int i;

	if (!doc)
		return NULL;
	arr = cJSON_AddArrayToObject(doc, "devices");
	for (i = 0; arr && i < n; i++) {
		cJSON *d = make_device(i, &rng, now_unix);

		if (!d)
			break;
		cJSON_AddItemToArray(arr, d);
	}
	if (!arr || i < n) {
		cJSON_Delete(doc);
		return NULL;
	}
	return doc;
}

int generate_devices(struct scenario *sc, int n, uint64_t seed, int64_t now_unix, char *err,
                     size_t errlen)
{
	cJSON *doc;
	int r;

	if (n < 0 || n > GENERATE_MAX) {
		snprintf(err, errlen, "--generate: expected 0..%d", GENERATE_MAX);
		return -EINVAL;
	}
	doc = generate_document(n, seed, now_unix);
	if (!doc) {
		snprintf(err, errlen, "--generate: out of memory");
		return -ENOMEM;
	}
	r = scenario_parse_json(sc, doc, err, errlen);
	cJSON_Delete(doc);
	return r;
}
