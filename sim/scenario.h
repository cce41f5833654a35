/* SPDX-License-Identifier: MIT */
/*
 * scenario: cradle-sim's JSON scenario (sim/README.md, sim/scenario.schema.json) turned into
 * devices and timeline events, and the JSON -> plist value mapping that the control socket's
 * `set` shares. Errors name the offending JSON path, e.g.
 *   devices[3].values["com.apple.mobile.backup"].LastCloudBackupDate: expected integer
 *
 * Ownership: struct scenario owns what it parsed until the caller moves devices into struct
 * sim and events into a timeline (then it clears the pointers). scenario_free() frees the rest.
 * The timeline that plays the events is timeline.h.
 */
#ifndef CRADLE_SIM_SCENARIO_H
#define CRADLE_SIM_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <plist/plist.h>

#include "sim.h"

struct cJSON;

#define SCENARIO_FILE_MAX    (64u << 20)
#define SCENARIO_DEVICES_MAX 10000
#define SCENARIO_ERR_MAX     512

enum timeline_op {
	TIMELINE_SET, /* values[domain][key] = value (NULL value removes the key) */
	TIMELINE_ATTACH,
	TIMELINE_DETACH,
	TIMELINE_PAIRING, /* pairing state change (the pair record follows: sim_device_set_pairing)
	                   */
	TIMELINE_SYSLOG,  /* a live syslog line (sim_device_syslog) */
};

struct timeline_event {
	struct sim_device *dev; /* borrowed from the scenario / sim */
	uint64_t at_ms;         /* simulated ms after start (real ms / time_scale) */
	enum timeline_op op;
	char domain[128];
	char key[128];
	plist_t value;        /* owned; NULL = remove */
	bool value_now;       /* set {"$now": s}: the simulated time + now_offset_s when applied */
	int64_t now_offset_s; /* seconds added to the simulated time (may be negative) */
	enum sim_pairing pairing;
	char *text;       /* syslog: the line as sent, or the message when process is set; owned */
	char process[64]; /* syslog: "" = text is the whole line; else formatted at that time */
	char level[16];   /* syslog: "Notice", "Error", ... */
};

struct scenario {
	struct sim_device **devices; /* owned until moved into struct sim */
	int n_devices;
	struct timeline_event *events; /* owned */
	int n_events;
	double time_scale; /* top-level "time_scale" (0: not given, i.e. 1) */
};

/* Parses a scenario document and appends its devices and events to sc. On error returns
 * -EINVAL with a message naming the JSON path in err (sc keeps what it had before). */
int scenario_parse(struct scenario *sc, const char *buf, size_t len, char *err, size_t errlen);
/* Same from a parsed document (generate.c builds one). */
int scenario_parse_json(struct scenario *sc, const struct cJSON *doc, char *err, size_t errlen);
int scenario_load_file(struct scenario *sc, const char *path, char *err, size_t errlen);
void scenario_free(struct scenario *sc);
/* Frees what one event owns (value, text). */
void scenario_event_free(struct timeline_event *ev);
/* Is j the special object {"$now": seconds}? Sets *offset_s. */
bool scenario_is_now(const struct cJSON *j, int64_t *offset_s);

/* JSON -> plist: integers -> uint (negative -> int), other numbers -> real, strings, booleans,
 * {"$date":"RFC 3339"}, {"$data":"base64"}, arrays, objects -> dicts. When domain/key name a
 * key of known type (LastCloudBackupDate is an integer...) the type is checked. path names the
 * value in error messages. 0 or -EINVAL. */
int scenario_value_to_plist(const struct cJSON *j, const char *domain, const char *key,
                            const char *path, plist_t *ret, char *err, size_t errlen);

/* "paired", "unpaired", "trust_pending", "denied", "invalid_host". */
int scenario_pairing_from_string(const char *s, enum sim_pairing *ret);
const char *scenario_pairing_to_string(enum sim_pairing p);

#endif
