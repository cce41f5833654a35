/* SPDX-License-Identifier: MIT */
/*
 * api: the /api/v1 handlers (dashboard/API.md is the reference, openapi.json the schemas), except
 * the auth endpoints and the SSE stream, which http.c serves. http.c has authenticated the caller
 * and checked the route's role before a handler runs; handlers parse and check their input,
 * ask query.h, and answer JSON (CSV for the device list when asked).
 *
 * Sending a command: the phone must be known (404), docked now at an online agent that allows
 * the command (409 otherwise: queuing for a later docking belongs to bulk jobs); the command is
 * stored first (commands row, history row, who sent it), then handed to cmdsend for the loop
 * thread. A broker that is down now gives 503 and the stored command is marked send_failed, so
 * nothing claims to be on its way that is not.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alerts.h"
#include "client.h"
#include "cmdsend.h"
#include "command.h"
#include "config.h"
#include "http.h"
#include "hub.h"
#include "jobs.h"
#include "jsontext.h"
#include "log.h"
#include "loop.h"
#include "macro.h"
#include "notify.h"
#include "parse.h"
#include "query.h"
#include "store.h"

/* openapi.json, compiled in by dashboard/embed.cmake */
extern const unsigned char openapi_json[];
extern const size_t openapi_json_len;

#define API_HISTORY_LIMIT_DEFAULT 50
#define API_COMMANDS_LIMIT        50

static int64_t now_s(void)
{
	return wall_now_ms() / 1000;
}

static void internal_error(struct http_response *res)
{
	http_error(res, 500, "internal", "the store could not answer; see the service log");
}

/* A count parameter (limit, offset) into *ret when present. false: res is the 400. */
static bool count_param(struct http_request *req, struct http_response *res, const char *name,
                        int64_t min, int64_t max, int64_t *ret)
{
	const char *v = http_query(req, name);
	uint64_t n;

	if (!v)
		return true;
	if (parse_uint(v, &n) < 0 || n < (uint64_t)min || n > (uint64_t)max) {
		http_error(res, 400, "bad_parameter", "%s: want an integer from %lld to %lld", name,
		           (long long)min, (long long)max);
		return false;
	}
	*ret = (int64_t)n;
	return true;
}

/* ---- devices ---- */

static const char *const device_params[] = {
	"status", "cause", "agent", "site", "station", "ios_below", "q", "sort", "limit", "offset",
};

static bool want_csv(struct http_request *req, struct http_response *res, bool *csv)
{
	const char *fmt = http_query(req, "format");
	const char *accept = http_header(req, "Accept");

	*csv = false;
	if (fmt) {
		if (!strcmp(fmt, "csv")) {
			*csv = true;
		} else if (strcmp(fmt, "json") != 0) {
			http_error(res, 400, "bad_parameter", "format: want json or csv");
			return false;
		}
		return true;
	}
	*csv = accept && strstr(accept, "text/csv") != NULL;
	return true;
}

static void devices_csv(struct http_request *req, struct http_response *res,
                        const struct query_devices *q)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	int r;

	if (!f) {
		internal_error(res);
		return;
	}
	r = query_devices_csv(req->store, q, now_s(), f);
	if (fclose(f) != 0 && r == 0)
		r = -EIO;
	if (r < 0) {
		free(buf);
		internal_error(res);
		return;
	}
	res->status = 200;
	res->content_type = "text/csv; charset=utf-8";
	res->content_disposition = "attachment; filename=\"devices.csv\"";
	res->body = buf;
	res->len = len;
}

static void devices_list(struct http_request *req, struct http_response *res)
{
	struct query_devices q;
	char err[256];
	bool csv;
	cJSON *root;

	query_devices_init(&q);
	for (size_t i = 0; i < ARRAY_SIZE(device_params); i++) {
		const char *v = http_query(req, device_params[i]);

		if (v && query_devices_param(&q, device_params[i], v, err, sizeof(err)) < 0) {
			http_error(res, 400, "bad_parameter", "%s", err);
			return;
		}
	}
	if (!want_csv(req, res, &csv))
		return;
	if (csv) {
		devices_csv(req, res, &q);
		return;
	}
	root = query_devices_json(req->store, &q, now_s());
	if (!root) {
		internal_error(res);
		return;
	}
	http_json(res, 200, root);
}

/* 404 when udid is not a known phone, else 500 (a query that returned NULL). */
static void device_missing(struct http_request *req, struct http_response *res, const char *udid)
{
	char agent[COMMAND_AGENT_MAX];
	bool attached, online;
	unsigned mask;

	if (query_device_route(req->store, udid, agent, sizeof(agent), &attached, &online, &mask) ==
	    -ENOENT)
		http_error(res, 404, "not_found", "no phone with UDID '%.64s' is known", udid);
	else
		internal_error(res);
}

static void device_get(struct http_request *req, struct http_response *res)
{
	const char *udid = req->args[0];
	cJSON *d =
	        query_device_detail_json(req->store, udid, now_s(), req->who.role >= AUTH_OPERATOR);

	if (!d) {
		device_missing(req, res, udid);
		return;
	}
	http_json(res, 200, d);
}

static void device_history(struct http_request *req, struct http_response *res)
{
	int64_t limit = API_HISTORY_LIMIT_DEFAULT, offset = 0;
	cJSON *h;

	if (!count_param(req, res, "limit", 1, QUERY_LIMIT_MAX, &limit) ||
	    !count_param(req, res, "offset", 0, 1000000000, &offset))
		return;
	h = query_history_json(req->store, req->args[0], limit, offset);
	if (!h) {
		device_missing(req, res, req->args[0]);
		return;
	}
	http_json(res, 200, h);
}

static void device_commands(struct http_request *req, struct http_response *res)
{
	int64_t limit = API_COMMANDS_LIMIT;
	char agent[COMMAND_AGENT_MAX];
	bool attached, online;
	unsigned mask;
	cJSON *c;
	int r;

	if (!count_param(req, res, "limit", 1, QUERY_COMMANDS_MAX, &limit))
		return;
	r = query_device_route(req->store, req->args[0], agent, sizeof(agent), &attached, &online,
	                       &mask);
	if (r < 0) {
		device_missing(req, res, req->args[0]);
		return;
	}
	c = query_device_commands_json(req->store, req->args[0], limit);
	if (!c) {
		internal_error(res);
		return;
	}
	http_json(res, 200, c);
}

/* ---- sending a command ---- */

/* The body's params object into cmd. false: res is the 400. */
static bool body_params(const cJSON *params, struct command *cmd, struct http_response *res)
{
	const cJSON *p;

	if (!params || cJSON_IsNull(params))
		return true;
	if (!cJSON_IsObject(params)) {
		http_error(res, 400, "bad_params", "params: want an object");
		return false;
	}
	cJSON_ArrayForEach(p, params) {
		struct command_param *cp;

		if (cmd->n_params == COMMAND_PARAMS_MAX) {
			http_error(res, 400, "bad_params", "params: more than %d members",
			           COMMAND_PARAMS_MAX);
			return false;
		}
		if (strlen(p->string) >= COMMAND_KEY_MAX) {
			http_error(res, 400, "bad_params", "params: member name too long");
			return false;
		}
		cp = &cmd->params[cmd->n_params];
		memset(cp, 0, sizeof(*cp));
		memcpy(cp->key, p->string, strlen(p->string) + 1);
		if (cJSON_IsBool(p)) {
			cp->type = COMMAND_PARAM_BOOL;
			cp->b = cJSON_IsTrue(p);
		} else if (cJSON_IsNumber(p) && p->valuedouble == (double)(int64_t)p->valuedouble &&
		           p->valuedouble >= -9007199254740991.0 &&
		           p->valuedouble <= 9007199254740991.0) {
			cp->type = COMMAND_PARAM_INT;
			cp->i = (int64_t)p->valuedouble;
		} else if (cJSON_IsString(p) && strlen(p->valuestring) < COMMAND_STR_MAX) {
			cp->type = COMMAND_PARAM_STRING;
			memcpy(cp->s, p->valuestring, strlen(p->valuestring) + 1);
		} else {
			http_error(
			        res, 400, "bad_params",
			        "params.%.32s: want a boolean, an integer or a string of at most %d "
			        "bytes",
			        p->string, COMMAND_STR_MAX - 1);
			return false;
		}
		cmd->n_params++;
	}
	return true;
}

/* The request body as a command for udid (name and params checked). false: res is the 400. */
static bool body_command(struct http_request *req, struct http_response *res, struct command *cmd)
{
	cJSON *root = NULL;
	const cJSON *name;
	char err[COMMAND_ERR_MAX];
	bool ok = false;

	if (!req->body || !req->body_len) {
		http_error(res, 400, "bad_json",
		           "the body must be a JSON object {\"name\", \"params\"}");
		return false;
	}
	if (jsontext_check_nul(req->body, req->body_len) < 0) {
		http_error(res, 400, "bad_json", "the body holds " JSONTEXT_NUL_ERR);
		return false;
	}
	root = cJSON_ParseWithLength(req->body, req->body_len);
	if (!cJSON_IsObject(root)) {
		http_error(res, 400, "bad_json", "the body is not a JSON object");
		goto out;
	}
	name = cJSON_GetObjectItemCaseSensitive(root, "name");
	if (!cJSON_IsString(name)) {
		http_error(res, 400, "bad_command", "name: missing or not a string");
		goto out;
	}
	if (command_name_from_str(name->valuestring, &cmd->kind) < 0) {
		http_error(res, 400, "bad_command",
		           "name: '%.48s' is not a single-phone command (device.refresh, "
		           "backup.icloud.enable, backup.local.start, device.restart)",
		           name->valuestring);
		goto out;
	}
	cmd->known_name = true;
	snprintf(cmd->name, sizeof(cmd->name), "%s", command_name_str(cmd->kind));
	if (!body_params(cJSON_GetObjectItemCaseSensitive(root, "params"), cmd, res))
		goto out;
	if (command_params_check(cmd, err, sizeof(err)) < 0) {
		http_error(res, 400, "bad_params", "params: %s", err);
		goto out;
	}
	ok = true;
out:
	cJSON_Delete(root);
	return ok;
}

static cJSON *params_json(const struct command *cmd)
{
	cJSON *o = cJSON_CreateObject();

	for (int i = 0; o && i < cmd->n_params; i++) {
		const struct command_param *p = &cmd->params[i];

		if (p->type == COMMAND_PARAM_BOOL)
			cJSON_AddBoolToObject(o, p->key, p->b);
		else if (p->type == COMMAND_PARAM_INT)
			cJSON_AddNumberToObject(o, p->key, (double)p->i);
		else
			cJSON_AddStringToObject(o, p->key, p->s);
	}
	return o;
}

static int exec_bind(struct store *s, const char *sql, const char *const *text, int n_text,
                     const int64_t *ints, int n_ints)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	for (int i = 0; i < n_text; i++)
		sqlite3_bind_text(st, i + 1, text[i], -1, SQLITE_TRANSIENT);
	for (int i = 0; i < n_ints; i++)
		sqlite3_bind_int64(st, n_text + i + 1, ints[i]);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = 0;
out:
	if (r < 0)
		log_error("api: store: %s", sqlite3_errmsg(store_db(s)));
	sqlite3_finalize(st);
	return r;
}

/* The commands row and the phone's history row, in one transaction. */
static int store_command(struct store *s, const struct command *cmd, const char *sent_by)
{
	cJSON *params = params_json(cmd), *detail = cJSON_CreateObject();
	char *params_txt = NULL, *detail_txt = NULL, summary[160];
	int r = -ENOMEM;

	if (!params || !detail || !cJSON_AddStringToObject(detail, "cmd_id", cmd->cmd_id) ||
	    !cJSON_AddStringToObject(detail, "sent_by", sent_by))
		goto out;
	params_txt = cJSON_PrintUnformatted(params);
	if (!params_txt || !cJSON_AddItemReferenceToObject(detail, "params", params))
		goto out;
	detail_txt = cJSON_PrintUnformatted(detail);
	if (!detail_txt)
		goto out;
	snprintf(summary, sizeof(summary), "%s sent by %s", cmd->name, sent_by);
	r = store_begin(s);
	if (r < 0)
		goto out;
	r = exec_bind(s,
	              "INSERT INTO commands(cmd_id, udid, agent, name, params_json, sent_by,"
	              " sent_at_ms, expires_at_ms, status, updated_ms)"
	              " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'sent', ?7)",
	              (const char *[]){ cmd->cmd_id, cmd->udid, cmd->agent, cmd->name, params_txt,
	                                sent_by },
	              6, (const int64_t[]){ cmd->issued_at_ms, cmd->expires_at_ms }, 2);
	if (r == 0)
		r = exec_bind(
		        s,
		        "INSERT INTO history(udid, agent, ts_ms, kind, name, summary, json)"
		        " VALUES (?1, ?2, ?6, 'command', ?3, ?4, ?5)",
		        (const char *[]){ cmd->udid, cmd->agent, cmd->name, summary, detail_txt },
		        5, (const int64_t[]){ cmd->issued_at_ms }, 1);
	if (r < 0) {
		store_rollback(s);
		goto out;
	}
	r = store_commit(s);
out:
	cJSON_Delete(detail);
	cJSON_Delete(params);
	free(params_txt);
	free(detail_txt);
	return r;
}

static void command_post(struct http_request *req, struct http_response *res)
{
	const struct http_services *svc = req->svc;
	const char *udid = req->args[0];
	struct command cmd;
	bool attached, online;
	unsigned allowed;
	int64_t ttl;
	cJSON *out;
	int r;

	memset(&cmd, 0, sizeof(cmd));
	if (!body_command(req, res, &cmd))
		return;
	r = query_device_route(req->store, udid, cmd.agent, sizeof(cmd.agent), &attached, &online,
	                       &allowed);
	if (r == -ENOENT) {
		http_error(res, 404, "not_found", "no phone with UDID '%.64s' is known", udid);
		return;
	}
	if (r < 0) {
		internal_error(res);
		return;
	}
	if (!online) {
		http_error(res, 409, "agent_offline",
		           "phone '%.64s' was last seen at agent '%s', which is not online now; "
		           "commands go only to a phone docked at an online station",
		           udid, cmd.agent);
		return;
	}
	if (!attached) {
		http_error(res, 409, "not_attached",
		           "phone '%.64s' is not docked now (last seen at agent '%s'); dock it and "
		           "send the command again",
		           udid, cmd.agent);
		return;
	}
	if (!(allowed & (1u << cmd.kind))) {
		http_error(res, 409, "not_allowed",
		           "agent '%s' does not allow %s (its allowed_commands)", cmd.agent,
		           cmd.name);
		return;
	}
	if (!svc || !svc->cmdsend) {
		http_error(res, 503, "unavailable", "commands cannot be sent: no command sender");
		return;
	}
	if (snprintf(cmd.udid, sizeof(cmd.udid), "%s", udid) >= (int)sizeof(cmd.udid)) {
		http_error(res, 404, "not_found", "no phone with that UDID is known");
		return;
	}
	if (client_new_cmd_id(cmd.cmd_id) < 0) {
		internal_error(res);
		return;
	}
	ttl = svc->cfg ? svc->cfg->command_ttl_s : 600;
	if (ttl < 1)
		ttl = 1;
	if (ttl > CLIENT_TTL_MAX)
		ttl = CLIENT_TTL_MAX;
	cmd.issued_at_ms = wall_now_ms();
	cmd.expires_at_ms = cmd.issued_at_ms + ttl * 1000;
	if (store_command(req->store, &cmd, req->who.name) < 0) {
		internal_error(res);
		return;
	}
	r = cmdsend_submit(svc->cmdsend, &cmd, (int)ttl);
	if (r < 0) {
		exec_bind(req->store,
		          "UPDATE commands SET status = 'send_failed', updated_ms = ?2"
		          " WHERE cmd_id = ?1",
		          (const char *[]){ cmd.cmd_id }, 1, (const int64_t[]){ wall_now_ms() }, 1);
		if (svc->hub)
			hub_publish(svc->hub, HUB_COMMAND, cmd.cmd_id);
		http_error(res, 503, "broker_unavailable",
		           "command %s could not be sent: %s; it is recorded as send_failed",
		           cmd.cmd_id,
		           r == -ENOTCONN  ? "no connection to the MQTT broker now"
		           : r == -ENOBUFS ? "too many commands are waiting to be sent"
		                           : "out of memory");
		return;
	}
	log_info("api: %s sent %s to phone %s at agent %s (cmd_id %s)", req->who.name, cmd.name,
	         cmd.udid, cmd.agent, cmd.cmd_id);
	if (svc->hub) {
		hub_publish(svc->hub, HUB_COMMAND, cmd.cmd_id);
		hub_publish(svc->hub, HUB_DEVICE, cmd.udid);
	}
	out = cJSON_CreateObject();
	if (!out || !cJSON_AddStringToObject(out, "cmd_id", cmd.cmd_id)) {
		cJSON_Delete(out);
		internal_error(res);
		return;
	}
	http_json(res, 202, out);
}

static void command_get(struct http_request *req, struct http_response *res)
{
	cJSON *c = query_command_json(req->store, req->args[0]);

	if (!c) {
		http_error(res, 404, "not_found", "no command with cmd_id '%.40s' is known",
		           req->args[0]);
		return;
	}
	http_json(res, 200, c);
}

/* ---- agents, summary, the OpenAPI document ---- */

static void agents_list(struct http_request *req, struct http_response *res)
{
	cJSON *a = query_agents_json(req->store, now_s());

	if (!a) {
		internal_error(res);
		return;
	}
	http_json(res, 200, a);
}

static void agent_get(struct http_request *req, struct http_response *res)
{
	cJSON *a = query_agent_json(req->store, req->args[0], now_s());

	if (!a) {
		http_error(res, 404, "not_found", "no agent '%.64s' is known", req->args[0]);
		return;
	}
	http_json(res, 200, a);
}

static void summary_get(struct http_request *req, struct http_response *res)
{
	cJSON *s = query_summary_json(req->store, now_s());

	if (!s) {
		internal_error(res);
		return;
	}
	http_json(res, 200, s);
}

static void openapi_get(struct http_request *req, struct http_response *res)
{
	char *body = malloc(openapi_json_len + 1);

	(void)req;
	if (!body) {
		internal_error(res);
		return;
	}
	memcpy(body, openapi_json, openapi_json_len);
	body[openapi_json_len] = '\0';
	res->status = 200;
	res->content_type = "application/json";
	res->body = body;
	res->len = openapi_json_len;
}

const struct http_route api_routes[] = {
	{ "GET", "/api/v1/devices", AUTH_VIEWER, devices_list },
	{ "GET", "/api/v1/devices/{udid}", AUTH_VIEWER, device_get },
	{ "GET", "/api/v1/devices/{udid}/history", AUTH_VIEWER, device_history },
	{ "GET", "/api/v1/devices/{udid}/commands", AUTH_VIEWER, device_commands },
	{ "POST", "/api/v1/devices/{udid}/commands", AUTH_OPERATOR, command_post },
	{ "GET", "/api/v1/commands/{cmd_id}", AUTH_VIEWER, command_get },
	{ "GET", "/api/v1/agents", AUTH_VIEWER, agents_list },
	{ "GET", "/api/v1/agents/{agent}", AUTH_VIEWER, agent_get },
	{ "GET", "/api/v1/summary", AUTH_VIEWER, summary_get },
	{ "GET", "/api/v1/openapi.json", AUTH_VIEWER, openapi_get },
	/* alerts (alerts_api.c) */
	{ "GET", "/api/v1/alerts", AUTH_VIEWER, alerts_api_list },
	{ "GET", "/api/v1/alerts/rules", AUTH_VIEWER, alerts_api_rules },
	{ "GET", "/api/v1/silences", AUTH_VIEWER, alerts_api_silences },
	{ "POST", "/api/v1/silences", AUTH_OPERATOR, alerts_api_silence_add },
	{ "DELETE", "/api/v1/silences/{id}", AUTH_OPERATOR, alerts_api_silence_delete },
	/* bulk jobs (jobs_api.c) */
	{ "POST", "/api/v1/jobs", AUTH_OPERATOR, jobs_api_create },
	{ "GET", "/api/v1/jobs", AUTH_OPERATOR, jobs_api_list },
	{ "GET", "/api/v1/jobs/{id}", AUTH_OPERATOR, jobs_api_get },
	{ "GET", "/api/v1/jobs/{id}/executions", AUTH_OPERATOR, jobs_api_executions },
	{ "POST", "/api/v1/jobs/{id}/cancel", AUTH_OPERATOR, jobs_api_cancel },
	/* notify: delivery queue, receivers, dead letters (notify.c) */
	{ "GET", "/api/v1/notify/status", AUTH_VIEWER, notify_api_status },
};
const size_t api_n_routes = ARRAY_SIZE(api_routes);
