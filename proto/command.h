/* SPDX-License-Identifier: MIT */
/*
 * command: the wire side of remote commands (cradle.command.v1, dashboard/CLI -> agent) and of
 * their execution status stream (cradle.command_result.v1, agent -> dashboard/CLI).
 * proto/COMMANDS.md is the contract; proto/schema/command*.v1.json the JSON Schemas these
 * functions agree with; proto/examples/command*.json the golden messages.
 *
 * The decoder is strict and typed: each failure maps to one rejection reason, so the agent can
 * tell the sender why (command_decode() returns the reason, not an errno). It checks the
 * envelope only (sizes, types, formats); whether a name is allowed here, whether its params are
 * right (command_params_check()), expiry and replay are the agent's intake (agent/cmd.h).
 *
 * No logging, no global state: every function is reentrant and callable from any thread.
 */
#ifndef CRADLE_COMMAND_H
#define CRADLE_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COMMAND_SCHEMA        "cradle.command.v1"
#define COMMAND_RESULT_SCHEMA "cradle.command_result.v1"

#define COMMAND_PAYLOAD_MAX 8192 /* bytes; bigger commands are refused before parsing */
#define COMMAND_ID_MAX      37   /* UUID text (8-4-4-4-12 hex) + NUL, stored lowercase */
#define COMMAND_AGENT_MAX   64   /* = TOPICS_AGENT_MAX */
#define COMMAND_UDID_MAX    64   /* = TOPICS_UDID_MAX */
#define COMMAND_NAME_MAX    48   /* ^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$ */
#define COMMAND_KEY_MAX     32   /* param names: ^[a-z][a-z0-9_]*$ */
#define COMMAND_STR_MAX     128  /* string param values and job ids */
#define COMMAND_PARAMS_MAX  8    /* params per command */
#define COMMAND_CODE_MAX    48   /* reason and cause codes: ^[a-z][a-z0-9_]*$ */
#define COMMAND_TEXT_MAX    256  /* human-readable detail in a result */
#define COMMAND_ERR_MAX     128  /* decode error text */

/* The commands of v1. The wire name is the identity; this enum is the agent's dispatch key. */
enum command_name {
	COMMAND_DEVICE_REFRESH,       /* "device.refresh": probe now */
	COMMAND_BACKUP_ICLOUD_ENABLE, /* "backup.icloud.enable": mobilebackup2 EnableCloudBackup */
	COMMAND_BACKUP_LOCAL_START,   /* "backup.local.start" {full: bool} */
	COMMAND_DEVICE_RESTART,       /* "device.restart": diagnostics_relay */
	_COMMAND_NAME_MAX,
};

/*
 * Why a command was not accepted, in the order the agent checks (see proto/COMMANDS.md).
 * COMMAND_REJECT_NONE means accepted. Wire names are the lowercase suffixes ("rate_limited").
 */
enum command_reject {
	COMMAND_REJECT_NONE,
	COMMAND_REJECT_RETAINED,      /* delivered with the retain flag: never executed */
	COMMAND_REJECT_OVERSIZE,      /* payload > COMMAND_PAYLOAD_MAX (not parsed) */
	COMMAND_REJECT_BAD_SIGNATURE, /* signature missing, malformed or not verifying (cmdsig.h) */
	COMMAND_REJECT_UNKNOWN_KEY,   /* signed by a key id this agent does not trust */
	COMMAND_REJECT_MALFORMED,     /* not UTF-8 JSON object text (NUL bytes, truncation) */
	COMMAND_REJECT_SCHEMA,        /* JSON, but not a valid cradle.command.v1 envelope */
	COMMAND_REJECT_WRONG_AGENT,   /* "agent" is not this agent */
	COMMAND_REJECT_UNKNOWN_DEVICE, /* "udid" is not a device this agent knows */
	COMMAND_REJECT_NOT_ALLOWED,    /* name unknown in v1 or not on this agent's allow-list */
	COMMAND_REJECT_BAD_PARAMS,     /* params do not fit the command */
	COMMAND_REJECT_EXPIRED,        /* MQTT message expiry or expires_at has passed */
	COMMAND_REJECT_REPLAY,         /* cmd_id seen before: the last status is sent again */
	COMMAND_REJECT_REPLAY_UNKNOWN, /* issued before the replay history was found damaged */
	COMMAND_REJECT_RATE_LIMITED,   /* per-device rate limit */
	COMMAND_REJECT_BUSY,           /* the replay table is full of live ids: nothing evicted */
	COMMAND_REJECT_INTERNAL,       /* the agent could not record the command (disk) */
	_COMMAND_REJECT_MAX,
};

/* Execution states the agent emits; dashboard-only states (queued, sent, ...) are not here. */
enum command_status {
	COMMAND_STATUS_ACCEPTED,
	COMMAND_STATUS_REJECTED,         /* final, with reason */
	COMMAND_STATUS_WAITING_FOR_USER, /* a person must act on the phone (trust, passcode) */
	COMMAND_STATUS_IN_PROGRESS,      /* with progress 0..100 */
	COMMAND_STATUS_SUCCEEDED,        /* final */
	COMMAND_STATUS_FAILED,           /* final, with cause */
	_COMMAND_STATUS_MAX,
};

/* Wire names; NULL when out of range. */
const char *command_name_str(enum command_name n);
const char *command_reject_str(enum command_reject r);
const char *command_status_str(enum command_status s);
/* Wire name -> enum; -EINVAL when unknown. */
int command_name_from_str(const char *s, enum command_name *ret);
int command_reject_from_str(const char *s, enum command_reject *ret);
int command_status_from_str(const char *s, enum command_status *ret);
/* Whether the status ends the execution (rejected, succeeded, failed). */
bool command_status_is_final(enum command_status s);

/* Whether s is a UUID in text form (either case). */
bool command_id_valid(const char *s);
/*
 * Validates the UUID text in (len bytes, need not be NUL-terminated) and writes its lowercase
 * form to out (COMMAND_ID_MAX bytes), the one spelling used for comparisons. 0 or -EINVAL (out
 * untouched).
 */
int command_id_normalize(const char *in, size_t len, char *out);
/* Writes the 16 bytes of a UUID as lowercase text to out (COMMAND_ID_MAX bytes). */
void command_id_format(const uint8_t *bytes, char *out);

enum command_param_type {
	COMMAND_PARAM_BOOL,
	COMMAND_PARAM_INT,
	COMMAND_PARAM_STRING,
	_COMMAND_PARAM_TYPE_MAX,
};

/* One params member. Params are flat: nested objects/arrays are a schema error. */
struct command_param {
	char key[COMMAND_KEY_MAX];
	enum command_param_type type;
	bool b;
	int64_t i;
	char s[COMMAND_STR_MAX];
};

struct command {
	char cmd_id[COMMAND_ID_MAX]; /* lowercase, so case variants cannot dodge replay checks */
	char agent[COMMAND_AGENT_MAX];
	char udid[COMMAND_UDID_MAX];
	char name[COMMAND_NAME_MAX];
	bool known_name;        /* name is one of v1's commands */
	enum command_name kind; /* valid when known_name */
	int n_params;
	struct command_param params[COMMAND_PARAMS_MAX];
	int64_t issued_at_ms;  /* Unix ms */
	int64_t expires_at_ms; /* Unix ms, > issued_at_ms */
	/* optional */
	bool has_seq;
	int64_t seq;
	char job_id[COMMAND_STR_MAX]; /* "" = absent */
};

/*
 * Decodes a command payload (borrowed; need not be NUL-terminated). Returns
 * COMMAND_REJECT_NONE and fills *ret, or one of OVERSIZE, MALFORMED, SCHEMA (leaving *ret
 * zeroed except that ret->cmd_id is kept when a valid one was read, so the rejection can be
 * attributed). err (may be NULL) gets a short reason text. Unknown members are ignored;
 * duplicate members are a schema error (cJSON would silently take the first).
 */
enum command_reject command_decode(const void *payload, size_t len, struct command *ret, char *err,
                                   size_t err_size);

/*
 * Checks params against the command's definition (known_name must be true): only the
 * documented members, of the documented types. Returns 0 or -EINVAL with err filled.
 */
int command_params_check(const struct command *cmd, char *err, size_t err_size);

/* The param named key, or NULL. Pointer valid as long as cmd. */
const struct command_param *command_param_get(const struct command *cmd, const char *key);

/*
 * Encodes a command (borrowed) as a cradle.command.v1 JSON text. Returns a heap string the
 * caller frees with free(), or NULL when a field is invalid (bad cmd_id, agent, udid, name) or
 * on allocation failure. Used by the send client, the dashboard and the tests.
 */
char *command_encode(const struct command *cmd);

/* ---- results ---- */

struct command_result {
	char agent[COMMAND_AGENT_MAX];
	char cmd_id[COMMAND_ID_MAX];
	char udid[COMMAND_UDID_MAX]; /* "" = omitted (unattributable rejections) */
	char name[COMMAND_NAME_MAX]; /* "" = omitted */
	enum command_status status;
	bool has_session;
	int64_t session;               /* agent session (proto.h), encoded with has_session */
	int64_t seq;                   /* per agent, from the agent's publisher */
	int64_t ts_ms;                 /* wall clock, Unix ms */
	enum command_reject reason;    /* with REJECTED (then != NONE) */
	int progress;                  /* with IN_PROGRESS: 0..100; -1 = omitted */
	char cause[COMMAND_CODE_MAX];  /* with FAILED: ^[a-z][a-z0-9_]*$ (e.g. passcode_required) */
	char detail[COMMAND_TEXT_MAX]; /* "" = omitted; human text, never parsed */
	bool replay; /* this is the last status sent again for a repeated cmd_id */
};

/*
 * Encodes a result (borrowed). Returns a heap string the caller frees with free(), or NULL when
 * the result breaks the schema (bad cmd_id/agent, REJECTED without reason, FAILED without a
 * valid cause, progress out of range) or on allocation failure. detail is made printable ASCII.
 */
char *command_result_encode(const struct command_result *res);

/*
 * Decodes a result payload (borrowed, size-capped at COMMAND_PAYLOAD_MAX). Returns 0,
 * -EMSGSIZE, -EBADMSG (not a JSON object), -EPROTO (breaks the schema) or -ENOMEM; *ret is
 * zeroed on failure. err (may be NULL) gets a short reason text.
 */
int command_result_decode(const void *payload, size_t len, struct command_result *ret, char *err,
                          size_t err_size);

#endif
