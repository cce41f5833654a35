/* SPDX-License-Identifier: MIT */
/*
 * facts: everything one probe learned about one device, as plain data.
 *
 * The probe helper fills it from one lockdown session (plus optional syslog evidence), the
 * diagnosis reads it, and the device-state message is built from it. Unknown values are
 * marked with has_* flags rather than sentinel numbers, because "the key is missing" is
 * itself a finding (LastCloudBackupDate missing = never backed up).
 */
#ifndef CRADLE_FACTS_H
#define CRADLE_FACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FACTS_UDID_MAX     64
#define FACTS_STR_MAX      64
#define FACTS_NAME_MAX     128
#define FACTS_EVIDENCE_MAX 8 /* backup-related syslog lines kept per probe */
#define FACTS_LINE_MAX     256
#define FACTS_RING_MAX     16 /* captured lines with times, per phone (agent/watch.h) */

/* One backup-related syslog line and when the agent received it. */
struct facts_evline {
	int64_t t_ms; /* Unix ms, host wall clock */
	char text[FACTS_LINE_MAX];
};

/* How far the probe got; domain states, not errors. */
enum facts_probe {
	FACTS_PROBE_OK,          /* session opened, values read */
	FACTS_PROBE_NOT_TRUSTED, /* pairing state says why (see facts.pairing) */
	FACTS_PROBE_LOCKED,      /* lockdown PasswordProtected (-17) */
	FACTS_PROBE_GONE,        /* device vanished mid-probe (mux error, not found) */
	FACTS_PROBE_TIMEOUT,     /* the probe deadline passed */
	FACTS_PROBE_ERROR,       /* anything else; error_text says what */
	_FACTS_PROBE_MAX,
};

enum facts_pairing {
	FACTS_PAIRING_PAIRED,
	FACTS_PAIRING_UNPAIRED,      /* no pair record on this host */
	FACTS_PAIRING_TRUST_PENDING, /* -19 PairingDialogResponsePending */
	FACTS_PAIRING_DENIED,        /* -18 UserDeniedPairing */
	FACTS_PAIRING_INVALID,       /* -21 InvalidHostID / stale pair record */
	_FACTS_PAIRING_MAX,
};

struct device_facts {
	char udid[FACTS_UDID_MAX];
	int64_t probed_at_ms; /* Unix ms, wall clock */
	enum facts_probe probe;
	enum facts_pairing pairing;
	int lockdown_error; /* lockdownd_error_t of the failure, 0 when none */
	char error_text[FACTS_LINE_MAX];

	/* root domain */
	char product_type[FACTS_STR_MAX];
	char ios_version[FACTS_STR_MAX];
	char build[FACTS_STR_MAX];
	char serial[FACTS_STR_MAX];
	char device_name[FACTS_NAME_MAX]; /* published only when the config allows it */
	bool has_password_protected;
	bool password_protected;

	/* com.apple.mobile.backup */
	bool has_icloud_enabled;
	bool icloud_enabled;
	bool has_last_icloud;
	int64_t last_icloud_unix; /* converted from Apple's 2001 epoch */
	bool has_last_local;
	int64_t last_local_unix;
	bool has_will_encrypt;
	bool will_encrypt;
	bool has_requires_encryption;
	bool requires_encryption;

	/* com.apple.mobile.battery */
	bool has_battery;
	int battery_pct;
	bool external_connected; /* "on power": BatteryIsCharging is false at the 80 % hold */
	bool charging;

	/* com.apple.disk_usage */
	bool has_storage;
	uint64_t total_bytes;
	uint64_t available_bytes;

	/* evidence from outside lockdown values */
	int n_syslog;
	char syslog[FACTS_EVIDENCE_MAX][FACTS_LINE_MAX]; /* backupd / BackupAgent lines */
	int last_backup_error; /* MBErrorDomain code of the last failed local backup, 0 if none */

	/*
	 * The daemon's evidence capture (agent/watch.h) and docking window, merged in before the
	 * diagnosis. Never in the helper's JSON: the probe helper cannot know them.
	 */
	bool capture_on;             /* the phone's syslog stream has been up since capture_since */
	int64_t capture_since_unix;  /* the stream's continuous coverage began (0 = unknown) */
	int64_t docked_at_unix;      /* this docking began (0 = unknown) */
	int64_t on_power_since_unix; /* every probe since then saw ExternalConnected (0 = not) */
	int64_t probe_duration_ms;   /* the helper's run, set by probe.c (metrics) */
	int n_ring;
	struct facts_evline ring[FACTS_RING_MAX]; /* oldest first */
};

/* ---- facts <-> JSON (agent/facts.c): the probe helper's stdout, one object on one line ---- */

/* Largest facts JSON the parent accepts (the helper's worst case is well below). */
#define FACTS_JSON_MAX 16384

/* Stable names of the enums as used in the facts JSON ("ok", "trust_pending", ...). */
const char *facts_probe_name(enum facts_probe p);
const char *facts_pairing_name(enum facts_pairing p);

/* Sets f to "nothing known" for udid (probe ERROR, pairing PAIRED, no values). */
void facts_init(struct device_facts *f, const char *udid);

/* One-line JSON object (no newline); the caller frees it. NULL on allocation failure. */
char *facts_to_json(const struct device_facts *f);

/*
 * Strict parse of what facts_to_json() writes: len <= FACTS_JSON_MAX, an object, udid required,
 * every known key with its type and bounds, unknown keys rejected, overlong strings rejected.
 * On error ret is left in facts_init() state and err (optional) says why.
 * 0, -EINVAL (bad input), -E2BIG (over the cap) or -ENOMEM.
 */
int facts_from_json(const char *json, size_t len, struct device_facts *ret, char *err,
                    size_t err_size);

#endif
