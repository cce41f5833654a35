/* SPDX-License-Identifier: MIT */
/*
 * proto: C structs <-> JSON for the agent's own messages of the cradle/v1 contract
 * (agent status, agent meta, device state, device event, agent event; commands live in
 * command.h).
 * proto/README.md is the contract; proto/schema/ holds the JSON Schemas these functions agree
 * with, and proto/examples/ the golden messages both sides are tested against.
 *
 * Conventions:
 *  - Unknown values are encoded as JSON null, driven by has_* flags; decode sets the flags back.
 *  - Times are Unix seconds (or ms for ts) in the structs and RFC 3339 UTC on the wire.
 *  - Encoders never fail on content: strings are truncated to their caps and made valid UTF-8
 *    without control characters (syslog lines come from the phone), so the output is always
 *    schema-valid for a struct the agent filled. They return a heap string the caller frees
 *    with free(), or NULL only on allocation failure.
 *  - Decoders are strict: payload size cap (PROTO_MAX_PAYLOAD) before parsing, required fields,
 *    types, enum values, string lengths, ranges; unknown fields are ignored (forward
 *    compatible: "add fields freely"). They return 0, -EMSGSIZE (over the cap), -EBADMSG
 *    (not JSON / not an object), -EPROTO (well-formed JSON that breaks the contract) or -ENOMEM,
 *    and on failure leave *ret zeroed. Optionally a short reason is written to err.
 *  - No logging (a codec reports through return values; its callers decide what to log), no
 *    state of our own: callable from any thread (cJSON writes one global error pointer on a
 *    parse failure; never read).
 */
#ifndef CRADLE_PROTO_H
#define CRADLE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_MAX_PAYLOAD  (64 * 1024) /* decode refuses bigger payloads before parsing */
#define PROTO_AGENT_MAX    64          /* agent id + NUL (topics.h TOPICS_AGENT_MAX) */
#define PROTO_UDID_MAX     64          /* UDID + NUL */
#define PROTO_STR_MAX      64          /* short values: versions, product type, labels */
#define PROTO_NAME_MAX     128         /* device name */
#define PROTO_TEXT_MAX     256         /* evidence, error text, remediation */
#define PROTO_CODE_MAX     32          /* cause codes, event names */
#define PROTO_MAX_CAUSES   10          /* = DIAGNOSE_MAX_CAUSES */
#define PROTO_LIST_MAX     16          /* capabilities, allowed_commands */
#define PROTO_EVENT_ID_MAX 48          /* "<session>-<seq>" */
#define PROTO_DETAILS_MAX  4096        /* longest text member the encoder copies */
#define PROTO_ERR_MAX      128         /* decode error text */

/* ---- envelope: every message has schema, agent, ts, seq (and session) ---- */

struct proto_header {
	char agent[PROTO_AGENT_MAX];
	int64_t ts_ms;   /* wall clock, Unix ms; encoded as RFC 3339 UTC with ms */
	int64_t seq;     /* per agent, >= 0, grows by one per message the agent emits */
	int64_t session; /* one run of the agent, never reused, 0..2^53-1 */
};

enum proto_type {
	PROTO_AGENT_STATUS,
	PROTO_AGENT_META,
	PROTO_DEVICE_STATE,
	PROTO_DEVICE_EVENT,
	PROTO_AGENT_EVENT,
	_PROTO_TYPE_MAX,
};

/* "cradle.agent_status.v1", ...; NULL when out of range. */
const char *proto_schema_name(enum proto_type t);

/*
 * Reads only the "schema" member of a payload (size-capped) so a consumer can dispatch.
 * Returns the type, or -ENOENT for a well-formed message of a schema this module does not
 * decode (e.g. "cradle.command.v1"), or the decode errors above.
 */
int proto_peek_type(const char *json, size_t len, enum proto_type *ret_type);

/* ---- agent status (retained; birth, graceful offline, and the MQTT will) ---- */

struct proto_agent_status {
	struct proto_header h; /* for the will (is_will): only agent and session are encoded */
	bool is_will;          /* no seq/ts: see proto/README.md "The will" */
	bool online;
	bool has_started_at;
	int64_t started_at;                /* Unix s of process start */
	char agent_version[PROTO_STR_MAX]; /* "" = omitted */
};

char *proto_agent_status_encode(const struct proto_agent_status *m);
int proto_agent_status_decode(const char *json, size_t len, struct proto_agent_status *ret,
                              char *err, size_t err_size);

/* ---- agent meta (retained) ---- */

struct proto_list {
	int n;
	char item[PROTO_LIST_MAX][PROTO_STR_MAX];
};

struct proto_agent_meta {
	struct proto_header h;
	char version_agent[PROTO_STR_MAX];
	char version_libimobiledevice[PROTO_STR_MAX];
	char version_paho[PROTO_STR_MAX];
	char site[PROTO_STR_MAX];    /* "" = null (not configured) */
	char station[PROTO_STR_MAX]; /* "" = null */
	struct proto_list capabilities;
	struct proto_list allowed_commands;
	int64_t stale_after_s;
	int64_t probe_interval_s;
	char min_ios_version[PROTO_STR_MAX]; /* "" = null (no minimum) */
	bool publish_device_name;
};

char *proto_agent_meta_encode(const struct proto_agent_meta *m);
int proto_agent_meta_decode(const char *json, size_t len, struct proto_agent_meta *ret, char *err,
                            size_t err_size);

/* ---- device state (retained) ---- */

enum proto_pairing {
	PROTO_PAIRING_PAIRED,
	PROTO_PAIRING_UNPAIRED,
	PROTO_PAIRING_TRUST_PENDING,
	PROTO_PAIRING_DENIED,
	PROTO_PAIRING_INVALID,
	_PROTO_PAIRING_MAX,
};

enum proto_probe {
	PROTO_PROBE_OK,
	PROTO_PROBE_NOT_TRUSTED,
	PROTO_PROBE_LOCKED,
	PROTO_PROBE_GONE,
	PROTO_PROBE_TIMEOUT,
	PROTO_PROBE_ERROR,
	_PROTO_PROBE_MAX,
};

enum proto_status {
	PROTO_STATUS_OK,
	PROTO_STATUS_STALE,
	PROTO_STATUS_UNKNOWN,
	_PROTO_STATUS_MAX,
};

/* Wire names ("trust_pending", "not_trusted", "stale", ...); NULL when out of range. */
const char *proto_pairing_name(enum proto_pairing p);
const char *proto_probe_name(enum proto_probe p);
const char *proto_status_name(enum proto_status s);

struct proto_cause {
	char code[PROTO_CODE_MAX]; /* open vocabulary: ^[a-z][a-z0-9_]*$, see README */
	char evidence[PROTO_TEXT_MAX];
	char remediation[PROTO_TEXT_MAX];
	char complexity[PROTO_CODE_MAX]; /* "low" | "medium" | "high" | "none" */
};

struct proto_device_state {
	struct proto_header h;
	char udid[PROTO_UDID_MAX];
	bool attached;
	bool has_probed_at;
	int64_t probed_at; /* Unix s of the probe these facts come from */

	/* device: "" = null */
	char product_type[PROTO_STR_MAX];
	char ios_version[PROTO_STR_MAX];
	char build[PROTO_STR_MAX];
	char serial[PROTO_STR_MAX];
	bool has_name;             /* false: "name" omitted (config does not allow publishing it) */
	char name[PROTO_NAME_MAX]; /* with has_name: "" = null */

	enum proto_pairing pairing;

	/* backup */
	bool has_icloud_enabled, icloud_enabled;
	bool has_last_icloud;
	int64_t last_icloud; /* Unix s; !has_last_icloud: null = never (when probe ok) */
	bool has_last_local;
	int64_t last_local;
	bool has_will_encrypt, will_encrypt;
	bool has_requires_encryption, requires_encryption;
	bool has_age;
	int64_t age_s;

	/* power */
	bool has_battery_pct;
	int battery_pct;
	bool has_external_connected, external_connected;
	bool has_charging, charging;

	/* storage */
	bool has_total_bytes;
	uint64_t total_bytes;
	bool has_available_bytes;
	uint64_t available_bytes;

	/* diagnosis */
	enum proto_status status;
	int n_causes;
	struct proto_cause causes[PROTO_MAX_CAUSES];

	enum proto_probe probe;
	char error[PROTO_TEXT_MAX]; /* "" = null */
};

char *proto_device_state_encode(const struct proto_device_state *m);
int proto_device_state_decode(const char *json, size_t len, struct proto_device_state *ret,
                              char *err, size_t err_size);

/* ---- device event (not retained) ---- */

enum proto_event {
	PROTO_EVENT_ATTACHED,
	PROTO_EVENT_DETACHED,
	PROTO_EVENT_TRUST_PROMPT,
	PROTO_EVENT_PAIRING_DENIED,
	PROTO_EVENT_PAIRING_INVALID,
	PROTO_EVENT_BACKUP_STALE,
	PROTO_EVENT_BACKUP_OK,
	PROTO_EVENT_BACKUP_STARTED,
	PROTO_EVENT_BACKUP_FINISHED,
	PROTO_EVENT_BACKUP_FAILED,
	PROTO_EVENT_PROBE_FAILED,
	_PROTO_EVENT_MAX,
};

const char *proto_event_name(enum proto_event e);
/* Returns the enum for a wire name, or -EINVAL. */
int proto_event_from_name(const char *name, enum proto_event *ret);

/*
 * The event-specific "details" object, typed. A member is encoded only when it is set ("" or
 * has_* false = omitted), so an event carries just what it knows; which event carries which
 * members is the table in proto/README.md. Decode fills the members it knows that have the
 * expected type and ignores the rest: the schema promises only an object, and consumers must
 * tolerate missing and extra members.
 */
#define PROTO_CMD_ID_MAX 48 /* cmd_id (a UUID) + NUL; command.h's COMMAND_ID_MAX fits */

struct proto_event_details {
	/* backup_started / backup_finished / backup_failed */
	char kind[PROTO_CODE_MAX];     /* "local" */
	char cmd_id[PROTO_CMD_ID_MAX]; /* the backup.local.start command */
	bool has_bytes;
	uint64_t bytes;             /* size of the finished backup */
	char cause[PROTO_CODE_MAX]; /* failure cause (^[a-z][a-z0-9_]*$, see COMMANDS.md) */
	/* trust_prompt / pairing_denied / pairing_invalid */
	bool has_lockdown_error;
	int lockdown_error; /* lockdownd_error_t of the handshake, e.g. -19 */
	/* backup_stale */
	bool has_age_s;
	int64_t age_s;
	int n_causes; /* cause codes of the diagnosis, in its order */
	char causes[PROTO_MAX_CAUSES][PROTO_CODE_MAX];
	/* backup_ok */
	bool has_last_icloud;
	int64_t last_icloud; /* Unix s */
	/* probe_failed */
	bool has_probe;
	enum proto_probe probe;
	char error[PROTO_TEXT_MAX];
};

struct proto_device_event {
	struct proto_header h;
	enum proto_event event;
	char udid[PROTO_UDID_MAX];
	char event_id[PROTO_EVENT_ID_MAX]; /* "" on encode: derived as "<session>-<seq>" */
	struct proto_event_details details;
};

char *proto_device_event_encode(const struct proto_device_event *m);
int proto_device_event_decode(const char *json, size_t len, struct proto_device_event *ret,
                              char *err, size_t err_size);

/* ---- agent event (not retained): things about the station, not about one phone ---- */

enum proto_agent_event_kind {
	PROTO_AGENT_EVENT_SECURITY_REJECTED, /* commands refused, aggregated per reason */
	PROTO_AGENT_EVENT_USBMUXD_LOST,
	PROTO_AGENT_EVENT_USBMUXD_BACK,
	PROTO_AGENT_EVENT_DISK_LOW, /* free space of state_dir under disk_low_free */
	PROTO_AGENT_EVENT_DISK_OK,
	PROTO_AGENT_EVENT_OUTBOX_PRESSURE, /* the outbox started dropping or coalescing */
	PROTO_AGENT_EVENT_OUTBOX_OK,
	PROTO_AGENT_EVENT_OUTBOX_DAMAGED, /* the journal was damaged at start: records lost */
	_PROTO_AGENT_EVENT_MAX,
};

const char *proto_agent_event_name(enum proto_agent_event_kind e);
/* Returns 0 and the enum for a wire name, or -EINVAL. */
int proto_agent_event_from_name(const char *name, enum proto_agent_event_kind *ret);

/* details of security_rejected */
struct proto_security_details {
	char reason[PROTO_CODE_MAX]; /* a command refusal reason (open vocabulary, a code) */
	int64_t count;               /* >= 1: refusals for this reason counted in this event */
	int64_t first_at, last_at;   /* Unix s of the first and the last of them */
	int64_t interval_s;          /* aggregation window: at most one event per reason per it */
	char detail[PROTO_TEXT_MAX]; /* the last refusal's explanation; "" = null */
};

/* details of usbmuxd_lost / usbmuxd_back */
struct proto_usbmuxd_details {
	int64_t devices; /* lost: listed by the last listing that worked; back: listed now */
	int64_t down_s;  /* back only: how long usbmuxd was unreachable */
};

/* details of disk_low / disk_ok */
struct proto_disk_details {
	char path[PROTO_TEXT_MAX]; /* the directory checked (state_dir) */
	uint64_t free_bytes;       /* available to the agent (statvfs f_bavail) */
	uint64_t total_bytes;
	uint64_t floor_bytes; /* disk_low_free */
	/* since disk_low: outbox writes that failed, and of their messages how many were sent
	 * best-effort (published without being journaled) and how many are held in memory */
	int64_t write_failures, best_effort, held;
};

/* details of outbox_damaged */
struct proto_outbox_damage_details {
	int64_t lost_records; /* unsent records lost to the damage */
	int64_t first_seq;    /* their outbox record numbers (not message seqs); 0 = unknown */
	int64_t last_seq;
	int64_t bytes_skipped; /* damaged bytes skipped */
	bool empty;            /* the journal had been emptied: what it held is lost, uncounted */
};

/* details of outbox_pressure / outbox_ok */
struct proto_outbox_details {
	int64_t dropped;    /* events dropped since the pressure began */
	int64_t superseded; /* unsent device states replaced by newer ones since it began */
	int64_t records;    /* unsent records now */
	int64_t bytes;      /* unsent bytes now */
	int64_t max_records, max_bytes; /* the configured caps */
};

struct proto_agent_event {
	struct proto_header h;
	enum proto_agent_event_kind event;
	char event_id[PROTO_EVENT_ID_MAX]; /* "" on encode: derived as "<session>-<seq>" */
	/* the details of the event: only the member that matches event is encoded / decoded */
	struct proto_security_details security;
	struct proto_usbmuxd_details usbmuxd;
	struct proto_disk_details disk;
	struct proto_outbox_details outbox;
	struct proto_outbox_damage_details damage;
};

/* Like the other encoders; NULL also for an event kind out of range (a programming error). */
char *proto_agent_event_encode(const struct proto_agent_event *m);
int proto_agent_event_decode(const char *json, size_t len, struct proto_agent_event *ret, char *err,
                             size_t err_size);

/* ---- helpers shared with command.c and the dashboard ---- */

/*
 * Copies src into dst (size bytes, always terminated), truncating at a UTF-8 character
 * boundary, replacing invalid UTF-8 and control characters (except none) with '?'. Returns dst.
 */
char *proto_text_copy(char *dst, size_t size, const char *src);

/* Whether s matches ^[a-z][a-z0-9_]*$ and fits PROTO_CODE_MAX (cause codes, reasons). */
bool proto_code_valid(const char *s);

#endif
