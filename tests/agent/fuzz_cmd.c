/* SPDX-License-Identifier: MIT */
/*
 * fuzz_cmd: bytes -> the whole command intake (agent/cmd.c: retained flag, size cap, strict
 * decode, target, allow-list, params, expiry, replay table, rate limits) and the result codec.
 *
 * Input layout: byte 0 holds flags (bit 0 retained, bit 1 correlation data = the 36 bytes after
 * the flags, bit 2 MQTT expiry present, bits 3-7 the expiry in seconds), the rest is the payload.
 * Besides "no crash, no leak, no UB", it checks round trips: a command that decodes re-encodes
 * to one that decodes to the same fields, and so does a result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "cmdtable.h"
#include "command.h"
#include "log.h"

#define T0 1768442400000LL /* 2026-01-15T02:00:00Z: the corpus commands are valid then */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];
static char path[128];
static struct cmdtable *table;
static struct cmd *cmd;

static bool known(const char *udid, void *userdata)
{
	(void)userdata;
	return udid[0] != 'X'; /* every device but those starting with X */
}

static void cleanup(void)
{
	cmd_free(cmd);
	cmdtable_free(table);
	unlink(path);
	rmdir(dir);
}

static void init(void)
{
	struct cmd_config cfg;

	log_init("fuzz_cmd", LOG_LEVEL_ERROR);
	snprintf(dir, sizeof(dir), "/tmp/fuzz-cmd-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/cmdtable", dir);
	if (cmdtable_open(path, 256, 48LL * 3600 * 1000, T0, &table) < 0)
		abort();
	cmd_config_defaults(&cfg);
	snprintf(cfg.agent, sizeof(cfg.agent), "station-07");
	if (cmd_new(&cfg, table, known, NULL, &cmd) < 0)
		abort();
	atexit(cleanup);
}

static void round_trip_command(const uint8_t *data, size_t size)
{
	struct command a, b;
	char *json;

	if (command_decode(data, size, &a, NULL, 0) != COMMAND_REJECT_NONE)
		return;
	json = command_encode(&a);
	if (!json)
		abort(); /* whatever decodes must encode */
	if (command_decode(json, strlen(json), &b, NULL, 0) != COMMAND_REJECT_NONE ||
	    strcmp(a.cmd_id, b.cmd_id) || strcmp(a.name, b.name) || strcmp(a.udid, b.udid) ||
	    a.n_params != b.n_params || a.issued_at_ms / 1000 != b.issued_at_ms / 1000 ||
	    a.expires_at_ms / 1000 != b.expires_at_ms / 1000)
		abort();
	free(json);
}

static void round_trip_result(const uint8_t *data, size_t size)
{
	struct command_result a, b;
	char *json;

	if (command_result_decode(data, size, &a, NULL, 0) < 0)
		return;
	json = command_result_encode(&a);
	if (!json)
		abort();
	if (command_result_decode(json, strlen(json), &b, NULL, 0) < 0 || a.status != b.status ||
	    a.reason != b.reason || a.progress != b.progress || strcmp(a.cmd_id, b.cmd_id) ||
	    strcmp(a.cause, b.cause))
		abort();
	free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmd_message m = { .expiry_s = -1, .received_ms = 1000 };
	struct cmd_decision d;
	struct command_result res;
	char *json;
	uint8_t flags;

	if (!cmd)
		init();
	if (size < 1)
		return 0;
	flags = data[0];
	data++;
	size--;
	m.retained = flags & 1;
	if ((flags & 2) && size >= 36) {
		m.correlation = data;
		m.correlation_len = 36;
		data += 36;
		size -= 36;
	}
	if (flags & 4)
		m.expiry_s = flags >> 3;
	m.payload = data;
	m.len = size;

	cmd_check(cmd, &m, 1500, T0 + 1000, &d);
	if (d.reason == COMMAND_REJECT_NONE && !d.parsed)
		abort();
	if (cmd_decision_result(cmd, &d, &res) == 0) {
		res.seq = 1;
		res.ts_ms = T0;
		json = command_result_encode(&res);
		if (!json)
			abort(); /* every attributable decision must give a valid result */
		free(json);
	} else if (d.attributable) {
		abort();
	}
	if (d.reason == COMMAND_REJECT_NONE)
		cmd_update(cmd, d.cmd_id, COMMAND_STATUS_SUCCEEDED, NULL, -1, T0 + 2000);

	round_trip_command(data, size);
	round_trip_result(data, size);
	return 0;
}
