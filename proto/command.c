/* SPDX-License-Identifier: MIT */
/*
 * command: encode/decode of cradle.command.v1 and cradle.command_result.v1.
 *
 * Commands arrive from the network and can restart or back up phones, so the decoder is the
 * first gate of the agent's intake and refuses anything that is not exactly a command: the size
 * cap comes before cJSON sees a byte (it also bounds cJSON's nesting to what 8 KiB can hold),
 * NUL bytes, \u0000 escapes (cJSON cuts the string there) and invalid UTF-8 are refused before
 * parsing (jsontext.h), duplicate members
 * are refused (cJSON silently takes the first, and two parsers could disagree on which), and
 * every field the agent acts on is checked for type, format and length. The result of each check
 * is a rejection reason the sender can read, not an errno.
 */
#include "command.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsontext.h"
#include "timefmt.h"
#include "topics.h"

/* More members than any v1 command needs; bounds the duplicate scan. */
#define COMMAND_MEMBERS_MAX 64
/* Integers travel as doubles in cJSON; beyond 2^53 they are not exact. */
#define COMMAND_INT_LIMIT 9007199254740992.0

static const char *const name_strs[_COMMAND_NAME_MAX] = {
	[COMMAND_DEVICE_REFRESH] = "device.refresh",
	[COMMAND_BACKUP_ICLOUD_ENABLE] = "backup.icloud.enable",
	[COMMAND_BACKUP_LOCAL_START] = "backup.local.start",
	[COMMAND_DEVICE_RESTART] = "device.restart",
};

static const char *const reject_strs[_COMMAND_REJECT_MAX] = {
	[COMMAND_REJECT_NONE] = "none",
	[COMMAND_REJECT_RETAINED] = "retained",
	[COMMAND_REJECT_OVERSIZE] = "oversize",
	[COMMAND_REJECT_BAD_SIGNATURE] = "bad_signature",
	[COMMAND_REJECT_UNKNOWN_KEY] = "unknown_key",
	[COMMAND_REJECT_MALFORMED] = "malformed",
	[COMMAND_REJECT_SCHEMA] = "schema",
	[COMMAND_REJECT_WRONG_AGENT] = "wrong_agent",
	[COMMAND_REJECT_UNKNOWN_DEVICE] = "unknown_device",
	[COMMAND_REJECT_NOT_ALLOWED] = "not_allowed",
	[COMMAND_REJECT_BAD_PARAMS] = "bad_params",
	[COMMAND_REJECT_EXPIRED] = "expired",
	[COMMAND_REJECT_REPLAY] = "replay",
	[COMMAND_REJECT_REPLAY_UNKNOWN] = "replay_unknown",
	[COMMAND_REJECT_RATE_LIMITED] = "rate_limited",
	[COMMAND_REJECT_BUSY] = "busy",
	[COMMAND_REJECT_INTERNAL] = "internal",
};

static const char *const status_strs[_COMMAND_STATUS_MAX] = {
	[COMMAND_STATUS_ACCEPTED] = "accepted",
	[COMMAND_STATUS_REJECTED] = "rejected",
	[COMMAND_STATUS_WAITING_FOR_USER] = "waiting_for_user",
	[COMMAND_STATUS_IN_PROGRESS] = "in_progress",
	[COMMAND_STATUS_SUCCEEDED] = "succeeded",
	[COMMAND_STATUS_FAILED] = "failed",
};

/* Per-command params: the only members allowed, and their types. */
struct param_def {
	const char *key;
	enum command_param_type type;
};

static const struct param_def local_start_params[] = {
	{ "full", COMMAND_PARAM_BOOL },
	{ NULL, 0 },
};

static const struct param_def *const param_defs[_COMMAND_NAME_MAX] = {
	[COMMAND_BACKUP_LOCAL_START] = local_start_params,
};

static int from_str(const char *const *table, int n, const char *s)
{
	int i;

	if (!s)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (table[i] && strcmp(table[i], s) == 0)
			return i;
	return -EINVAL;
}

const char *command_name_str(enum command_name n)
{
	return (unsigned)n < _COMMAND_NAME_MAX ? name_strs[n] : NULL;
}

const char *command_reject_str(enum command_reject r)
{
	return (unsigned)r < _COMMAND_REJECT_MAX ? reject_strs[r] : NULL;
}

const char *command_status_str(enum command_status s)
{
	return (unsigned)s < _COMMAND_STATUS_MAX ? status_strs[s] : NULL;
}

int command_name_from_str(const char *s, enum command_name *ret)
{
	int i = from_str(name_strs, _COMMAND_NAME_MAX, s);

	if (i < 0)
		return i;
	*ret = (enum command_name)i;
	return 0;
}

int command_reject_from_str(const char *s, enum command_reject *ret)
{
	int i = from_str(reject_strs, _COMMAND_REJECT_MAX, s);

	if (i < 0)
		return i;
	*ret = (enum command_reject)i;
	return 0;
}

int command_status_from_str(const char *s, enum command_status *ret)
{
	int i = from_str(status_strs, _COMMAND_STATUS_MAX, s);

	if (i < 0)
		return i;
	*ret = (enum command_status)i;
	return 0;
}

bool command_status_is_final(enum command_status s)
{
	return s == COMMAND_STATUS_REJECTED || s == COMMAND_STATUS_SUCCEEDED ||
	       s == COMMAND_STATUS_FAILED;
}

bool command_id_valid(const char *s)
{
	int i;

	if (!s)
		return false;
	for (i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return s[36] == '\0';
}

int command_id_normalize(const char *in, size_t len, char *out)
{
	char id[COMMAND_ID_MAX];
	int i;

	if (!in || len != COMMAND_ID_MAX - 1)
		return -EINVAL;
	memcpy(id, in, len);
	id[len] = '\0';
	if (!command_id_valid(id))
		return -EINVAL;
	for (i = 0; id[i]; i++)
		id[i] = (char)tolower((unsigned char)id[i]);
	memcpy(out, id, sizeof(id));
	return 0;
}

void command_id_format(const uint8_t *bytes, char *out)
{
	static const char hex[] = "0123456789abcdef";
	int i, o = 0;

	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[bytes[i] >> 4];
		out[o++] = hex[bytes[i] & 15];
	}
	out[o] = '\0';
}

/* ^[a-z][a-z0-9_]*$ shorter than max */
static bool code_valid(const char *s, size_t max)
{
	size_t i;

	if (!s || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (i = 1; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return i < max;
}

/* ^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$ shorter than COMMAND_NAME_MAX */
static bool name_valid(const char *s)
{
	size_t i;
	int dots = 0;
	bool seg_start = true;

	if (!s)
		return false;
	for (i = 0; s[i]; i++) {
		char c = s[i];

		if (seg_start) {
			if (!(c >= 'a' && c <= 'z'))
				return false;
			seg_start = false;
		} else if (c == '.') {
			seg_start = true;
			dots++;
		} else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) {
			return false;
		}
	}
	return !seg_start && dots > 0 && i < COMMAND_NAME_MAX;
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF) and no NUL byte. */
static bool utf8_valid(const unsigned char *p, size_t len)
{
	size_t i = 0;

	while (i < len) {
		unsigned char c = p[i];
		size_t n, k;
		uint32_t cp;

		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (k = 1; k <= n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

static void set_err(char *err, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (!err || !size)
		return;
	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
}

/*
 * Size cap, byte checks, parse, "is an object", no duplicate members, no trailing bytes.
 * Returns the tree (caller deletes) or NULL with *ret_reason set.
 */
static cJSON *parse_object(const void *payload, size_t len, enum command_reject *ret_reason,
                           int *ret_errno, char *err, size_t err_size)
{
	const char *end = NULL;
	cJSON *root = NULL, *a, *b;
	int n = 0;
	size_t i;

	if (len > COMMAND_PAYLOAD_MAX) {
		set_err(err, err_size, "%s", "payload over 8 KiB");
		*ret_reason = COMMAND_REJECT_OVERSIZE;
		*ret_errno = -EMSGSIZE;
		return NULL;
	}
	*ret_reason = COMMAND_REJECT_MALFORMED;
	*ret_errno = -EBADMSG;
	if (!payload || len == 0 || !utf8_valid(payload, len)) {
		set_err(err, err_size, "%s", "empty, NUL byte or invalid UTF-8");
		return NULL;
	}
	/* "name":"backup.icloud.enable\u0000.evil" must not read as backup.icloud.enable */
	if (jsontext_check_nul(payload, len) < 0) {
		set_err(err, err_size, "%s", JSONTEXT_NUL_ERR);
		return NULL;
	}
	root = cJSON_ParseWithLengthOpts(payload, len, &end, false);
	if (!root) {
		set_err(err, err_size, "%s", "not JSON");
		return NULL;
	}
	for (i = (size_t)(end - (const char *)payload); i < len; i++) {
		char c = ((const char *)payload)[i];

		if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
			set_err(err, err_size, "%s", "trailing bytes after the JSON value");
			goto fail;
		}
	}
	if (!cJSON_IsObject(root)) {
		set_err(err, err_size, "%s", "not a JSON object");
		goto fail;
	}
	*ret_reason = COMMAND_REJECT_SCHEMA;
	*ret_errno = -EPROTO;
	cJSON_ArrayForEach(a, root) {
		if (++n > COMMAND_MEMBERS_MAX) {
			set_err(err, err_size, "%s", "too many members");
			goto fail;
		}
		for (b = a->next; b; b = b->next) {
			if (strcmp(a->string, b->string) == 0) {
				set_err(err, err_size, "duplicate member '%.40s'", a->string);
				goto fail;
			}
		}
	}
	*ret_reason = COMMAND_REJECT_NONE;
	*ret_errno = 0;
	return root;
fail:
	cJSON_Delete(root);
	return NULL;
}

/* Copies a string member; absent is -ENOENT, wrong type or too long is -EPROTO. */
static int get_str(const cJSON *obj, const char *key, char *dst, size_t size, char *err,
                   size_t err_size)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
	size_t n;

	if (!it) {
		set_err(err, err_size, "missing '%s'", key);
		return -ENOENT;
	}
	if (!cJSON_IsString(it) || !it->valuestring) {
		set_err(err, err_size, "'%s' is not a string", key);
		return -EPROTO;
	}
	n = strlen(it->valuestring);
	if (n >= size) {
		set_err(err, err_size, "'%s' too long", key);
		return -EPROTO;
	}
	memcpy(dst, it->valuestring, n + 1);
	return 0;
}

static bool double_is_int(double d)
{
	/* range first: the cast is undefined outside int64_t; no libm needed */
	return d >= -COMMAND_INT_LIMIT && d <= COMMAND_INT_LIMIT && d == (double)(int64_t)d;
}

/* Integer member; absent is -ENOENT, anything but an exact integer is -EPROTO. */
static int get_int(const cJSON *obj, const char *key, int64_t *ret, char *err, size_t err_size)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);

	if (!it)
		return -ENOENT;
	if (!cJSON_IsNumber(it) || !double_is_int(it->valuedouble)) {
		set_err(err, err_size, "'%s' is not an integer", key);
		return -EPROTO;
	}
	*ret = (int64_t)it->valuedouble;
	return 0;
}

static int get_time_ms(const cJSON *obj, const char *key, int64_t *ret_ms, char *err,
                       size_t err_size)
{
	char buf[TIMEFMT_RFC3339_MAX + 8];
	int64_t s;
	int r;

	r = get_str(obj, key, buf, sizeof(buf), err, err_size);
	if (r < 0)
		return r;
	if (timefmt_parse_rfc3339(buf, &s) < 0 || s < 0 || s > 253402300799LL) {
		set_err(err, err_size, "'%s' is not an RFC 3339 time", key);
		return -EPROTO;
	}
	*ret_ms = s * 1000;
	return 0;
}

static int decode_params(const cJSON *params, struct command *cmd, char *err, size_t err_size)
{
	const cJSON *it;

	if (!cJSON_IsObject(params)) {
		set_err(err, err_size, "%s", "'params' is not an object");
		return -EPROTO;
	}
	cJSON_ArrayForEach(it, params) {
		struct command_param *p;

		if (cmd->n_params >= COMMAND_PARAMS_MAX) {
			set_err(err, err_size, "%s", "too many params");
			return -EPROTO;
		}
		if (!code_valid(it->string, COMMAND_KEY_MAX)) {
			set_err(err, err_size, "%s", "bad param name");
			return -EPROTO;
		}
		if (command_param_get(cmd, it->string)) {
			set_err(err, err_size, "duplicate param '%s'", it->string);
			return -EPROTO;
		}
		p = &cmd->params[cmd->n_params];
		if (cJSON_IsBool(it)) {
			p->type = COMMAND_PARAM_BOOL;
			p->b = cJSON_IsTrue(it);
		} else if (cJSON_IsNumber(it) && double_is_int(it->valuedouble)) {
			p->type = COMMAND_PARAM_INT;
			p->i = (int64_t)it->valuedouble;
		} else if (cJSON_IsString(it) && strlen(it->valuestring) < COMMAND_STR_MAX) {
			p->type = COMMAND_PARAM_STRING;
			strcpy(p->s, it->valuestring);
		} else {
			set_err(err, err_size, "param '%.31s': not a bool, integer or short string",
			        it->string);
			return -EPROTO;
		}
		strcpy(p->key, it->string);
		cmd->n_params++;
	}
	return 0;
}

enum command_reject command_decode(const void *payload, size_t len, struct command *ret, char *err,
                                   size_t err_size)
{
	struct command cmd = { 0 };
	enum command_reject reason;
	char schema[32];
	const cJSON *it;
	cJSON *root;
	int r;

	memset(ret, 0, sizeof(*ret));
	root = parse_object(payload, len, &reason, &r, err, err_size);
	if (!root)
		return reason;
	reason = COMMAND_REJECT_SCHEMA;

	/* cmd_id first: a rejection for any later reason can then still be attributed. */
	if (get_str(root, "cmd_id", cmd.cmd_id, sizeof(cmd.cmd_id), err, err_size) < 0)
		goto out;
	if (command_id_normalize(cmd.cmd_id, strlen(cmd.cmd_id), cmd.cmd_id) < 0) {
		set_err(err, err_size, "%s", "'cmd_id' is not a UUID");
		cmd.cmd_id[0] = '\0';
		goto out;
	}
	memcpy(ret->cmd_id, cmd.cmd_id, sizeof(cmd.cmd_id));

	if (get_str(root, "schema", schema, sizeof(schema), err, err_size) < 0)
		goto out;
	if (strcmp(schema, COMMAND_SCHEMA) != 0) {
		set_err(err, err_size, "%s", "'schema' is not cradle.command.v1");
		goto out;
	}
	if (get_str(root, "agent", cmd.agent, sizeof(cmd.agent), err, err_size) < 0)
		goto out;
	if (!topics_agent_id_valid(cmd.agent)) {
		set_err(err, err_size, "%s", "bad 'agent'");
		goto out;
	}
	if (get_str(root, "udid", cmd.udid, sizeof(cmd.udid), err, err_size) < 0)
		goto out;
	if (!topics_udid_valid(cmd.udid)) {
		set_err(err, err_size, "%s", "bad 'udid'");
		goto out;
	}
	if (get_str(root, "name", cmd.name, sizeof(cmd.name), err, err_size) < 0)
		goto out;
	if (!name_valid(cmd.name)) {
		set_err(err, err_size, "%s", "bad 'name'");
		goto out;
	}
	cmd.known_name = command_name_from_str(cmd.name, &cmd.kind) == 0;

	it = cJSON_GetObjectItemCaseSensitive(root, "params");
	if (!it) {
		set_err(err, err_size, "%s", "missing 'params'");
		goto out;
	}
	if (decode_params(it, &cmd, err, err_size) < 0)
		goto out;

	if (get_time_ms(root, "issued_at", &cmd.issued_at_ms, err, err_size) < 0 ||
	    get_time_ms(root, "expires_at", &cmd.expires_at_ms, err, err_size) < 0)
		goto out;
	if (cmd.expires_at_ms <= cmd.issued_at_ms) {
		set_err(err, err_size, "%s", "'expires_at' not after 'issued_at'");
		goto out;
	}

	r = get_int(root, "seq", &cmd.seq, err, err_size);
	if (r == -EPROTO || (r == 0 && cmd.seq < 0)) {
		set_err(err, err_size, "%s", "bad 'seq'");
		goto out;
	}
	cmd.has_seq = r == 0;
	r = get_str(root, "job_id", cmd.job_id, sizeof(cmd.job_id), err, err_size);
	if (r == -EPROTO)
		goto out;

	*ret = cmd;
	reason = COMMAND_REJECT_NONE;
	if (err && err_size)
		err[0] = '\0';
out:
	cJSON_Delete(root);
	return reason;
}

int command_params_check(const struct command *cmd, char *err, size_t err_size)
{
	const struct param_def *defs;
	int i, j;

	if (!cmd->known_name) {
		set_err(err, err_size, "%s", "unknown command");
		return -EINVAL;
	}
	defs = param_defs[cmd->kind];
	for (i = 0; i < cmd->n_params; i++) {
		const struct command_param *p = &cmd->params[i];
		bool ok = false;

		for (j = 0; defs && defs[j].key; j++) {
			if (strcmp(defs[j].key, p->key) == 0) {
				ok = defs[j].type == p->type;
				break;
			}
		}
		if (!ok) {
			set_err(err, err_size, "param '%.31s' not accepted by this command",
			        p->key);
			return -EINVAL;
		}
	}
	return 0;
}

const struct command_param *command_param_get(const struct command *cmd, const char *key)
{
	int i;

	for (i = 0; i < cmd->n_params; i++)
		if (strcmp(cmd->params[i].key, key) == 0)
			return &cmd->params[i];
	return NULL;
}

static bool add_time(cJSON *obj, const char *key, int64_t ms)
{
	char buf[TIMEFMT_RFC3339_MAX];

	if (timefmt_rfc3339_ms(ms, buf, sizeof(buf)) < 0)
		return false;
	return cJSON_AddStringToObject(obj, key, buf) != NULL;
}

/* Prints the tree unformatted and deletes it (consumes root). */
static char *print_consume(cJSON *root)
{
	char *s = root ? cJSON_PrintUnformatted(root) : NULL;

	cJSON_Delete(root);
	return s;
}

char *command_encode(const struct command *cmd)
{
	cJSON *root = NULL, *params;
	int i;

	if (!command_id_valid(cmd->cmd_id) || !topics_agent_id_valid(cmd->agent) ||
	    !topics_udid_valid(cmd->udid) || !name_valid(cmd->name) || cmd->n_params < 0 ||
	    cmd->n_params > COMMAND_PARAMS_MAX || cmd->expires_at_ms <= cmd->issued_at_ms)
		return NULL;
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddStringToObject(root, "schema", COMMAND_SCHEMA) ||
	    !cJSON_AddStringToObject(root, "cmd_id", cmd->cmd_id) ||
	    !cJSON_AddStringToObject(root, "agent", cmd->agent) ||
	    !cJSON_AddStringToObject(root, "udid", cmd->udid) ||
	    !cJSON_AddStringToObject(root, "name", cmd->name))
		goto fail;
	params = cJSON_AddObjectToObject(root, "params");
	if (!params)
		goto fail;
	for (i = 0; i < cmd->n_params; i++) {
		const struct command_param *p = &cmd->params[i];
		cJSON *v = NULL;

		if (!code_valid(p->key, COMMAND_KEY_MAX) || cJSON_HasObjectItem(params, p->key))
			goto fail;
		if (p->type == COMMAND_PARAM_BOOL)
			v = cJSON_AddBoolToObject(params, p->key, p->b);
		else if (p->type == COMMAND_PARAM_INT)
			v = cJSON_AddNumberToObject(params, p->key, (double)p->i);
		else if (p->type == COMMAND_PARAM_STRING)
			v = cJSON_AddStringToObject(params, p->key, p->s);
		if (!v)
			goto fail;
	}
	if (!add_time(root, "issued_at", cmd->issued_at_ms) ||
	    !add_time(root, "expires_at", cmd->expires_at_ms))
		goto fail;
	if (cmd->has_seq && !cJSON_AddNumberToObject(root, "seq", (double)cmd->seq))
		goto fail;
	if (cmd->job_id[0] && !cJSON_AddStringToObject(root, "job_id", cmd->job_id))
		goto fail;
	return print_consume(root);
fail:
	cJSON_Delete(root);
	return NULL;
}

/* Printable ASCII copy: the detail is for people and must never break a log line or a UI. */
static void printable_copy(char *dst, size_t size, const char *src)
{
	size_t i;

	for (i = 0; src[i] && i + 1 < size; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
}

static bool result_valid(const struct command_result *res)
{
	if (!command_id_valid(res->cmd_id) || !topics_agent_id_valid(res->agent) ||
	    (unsigned)res->status >= _COMMAND_STATUS_MAX || res->seq < 0 ||
	    (res->has_session && res->session < 0))
		return false;
	if (res->udid[0] && !topics_udid_valid(res->udid))
		return false;
	if (res->name[0] && !name_valid(res->name))
		return false;
	if (res->status == COMMAND_STATUS_REJECTED &&
	    (res->reason <= COMMAND_REJECT_NONE || res->reason >= _COMMAND_REJECT_MAX))
		return false;
	if (res->status == COMMAND_STATUS_FAILED && !code_valid(res->cause, COMMAND_CODE_MAX))
		return false;
	if (res->status == COMMAND_STATUS_IN_PROGRESS && (res->progress < 0 || res->progress > 100))
		return false;
	return true;
}

char *command_result_encode(const struct command_result *res)
{
	char detail[COMMAND_TEXT_MAX];
	cJSON *root = NULL;

	if (!result_valid(res))
		return NULL;
	root = cJSON_CreateObject();
	if (!root || !cJSON_AddStringToObject(root, "schema", COMMAND_RESULT_SCHEMA) ||
	    !cJSON_AddStringToObject(root, "agent", res->agent) ||
	    !cJSON_AddNumberToObject(root, "seq", (double)res->seq) ||
	    !add_time(root, "ts", res->ts_ms) ||
	    !cJSON_AddStringToObject(root, "cmd_id", res->cmd_id) ||
	    !cJSON_AddStringToObject(root, "status", command_status_str(res->status)))
		goto fail;
	if (res->has_session && !cJSON_AddNumberToObject(root, "session", (double)res->session))
		goto fail;
	if (res->udid[0] && !cJSON_AddStringToObject(root, "udid", res->udid))
		goto fail;
	if (res->name[0] && !cJSON_AddStringToObject(root, "name", res->name))
		goto fail;
	if (res->status == COMMAND_STATUS_REJECTED &&
	    !cJSON_AddStringToObject(root, "reason", command_reject_str(res->reason)))
		goto fail;
	if (res->status == COMMAND_STATUS_FAILED &&
	    !cJSON_AddStringToObject(root, "cause", res->cause))
		goto fail;
	if (res->progress >= 0 && res->progress <= 100 &&
	    (res->status == COMMAND_STATUS_IN_PROGRESS ||
	     res->status == COMMAND_STATUS_WAITING_FOR_USER) &&
	    !cJSON_AddNumberToObject(root, "progress", res->progress))
		goto fail;
	if (res->detail[0]) {
		printable_copy(detail, sizeof(detail), res->detail);
		if (!cJSON_AddStringToObject(root, "detail", detail))
			goto fail;
	}
	if (res->replay && !cJSON_AddTrueToObject(root, "replay"))
		goto fail;
	return print_consume(root);
fail:
	cJSON_Delete(root);
	return NULL;
}

int command_result_decode(const void *payload, size_t len, struct command_result *ret, char *err,
                          size_t err_size)
{
	struct command_result res = { 0 };
	enum command_reject reason;
	char buf[COMMAND_TEXT_MAX];
	const cJSON *it;
	cJSON *root;
	int64_t v;
	int r;

	memset(ret, 0, sizeof(*ret));
	root = parse_object(payload, len, &reason, &r, err, err_size);
	if (!root)
		return r;
	r = -EPROTO;
	res.progress = -1;
	if (get_str(root, "schema", buf, sizeof(buf), err, err_size) < 0)
		goto out;
	if (strcmp(buf, COMMAND_RESULT_SCHEMA) != 0) {
		set_err(err, err_size, "%s", "'schema' is not cradle.command_result.v1");
		goto out;
	}
	if (get_str(root, "agent", res.agent, sizeof(res.agent), err, err_size) < 0 ||
	    !topics_agent_id_valid(res.agent))
		goto out;
	if (get_str(root, "cmd_id", res.cmd_id, sizeof(res.cmd_id), err, err_size) < 0 ||
	    command_id_normalize(res.cmd_id, strlen(res.cmd_id), res.cmd_id) < 0)
		goto out;
	if (get_int(root, "seq", &res.seq, err, err_size) < 0 || res.seq < 0)
		goto out;
	if (get_time_ms(root, "ts", &res.ts_ms, err, err_size) < 0)
		goto out;
	r = get_int(root, "session", &res.session, err, err_size);
	if (r == -EPROTO || (r == 0 && res.session < 0))
		goto out;
	res.has_session = r == 0;
	r = -EPROTO;
	if (get_str(root, "status", buf, sizeof(buf), err, err_size) < 0 ||
	    command_status_from_str(buf, &res.status) < 0) {
		set_err(err, err_size, "%s", "bad 'status'");
		goto out;
	}
	if (cJSON_HasObjectItem(root, "udid") &&
	    (get_str(root, "udid", res.udid, sizeof(res.udid), err, err_size) < 0 ||
	     !topics_udid_valid(res.udid)))
		goto out;
	if (cJSON_HasObjectItem(root, "name") &&
	    (get_str(root, "name", res.name, sizeof(res.name), err, err_size) < 0 ||
	     !name_valid(res.name)))
		goto out;
	if (res.status == COMMAND_STATUS_REJECTED) {
		if (get_str(root, "reason", buf, sizeof(buf), err, err_size) < 0 ||
		    command_reject_from_str(buf, &res.reason) < 0 ||
		    res.reason == COMMAND_REJECT_NONE) {
			set_err(err, err_size, "%s", "rejected without a valid 'reason'");
			goto out;
		}
	}
	if (res.status == COMMAND_STATUS_FAILED &&
	    (get_str(root, "cause", res.cause, sizeof(res.cause), err, err_size) < 0 ||
	     !code_valid(res.cause, COMMAND_CODE_MAX))) {
		set_err(err, err_size, "%s", "failed without a valid 'cause'");
		goto out;
	}
	r = get_int(root, "progress", &v, err, err_size);
	if (r == -EPROTO || (r == 0 && (v < 0 || v > 100)) ||
	    (r == -ENOENT && res.status == COMMAND_STATUS_IN_PROGRESS)) {
		set_err(err, err_size, "%s", "bad or missing 'progress'");
		r = -EPROTO;
		goto out;
	}
	if (r == 0)
		res.progress = (int)v;
	r = -EPROTO;
	if (cJSON_HasObjectItem(root, "detail") &&
	    get_str(root, "detail", res.detail, sizeof(res.detail), err, err_size) < 0)
		goto out;
	it = cJSON_GetObjectItemCaseSensitive(root, "replay");
	if (it && !cJSON_IsBool(it))
		goto out;
	res.replay = cJSON_IsTrue(it);

	*ret = res;
	r = 0;
	if (err && err_size)
		err[0] = '\0';
out:
	cJSON_Delete(root);
	return r;
}
