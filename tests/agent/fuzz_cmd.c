/* SPDX-License-Identifier: MIT */
/*
 * fuzz_cmd: bytes -> the whole command intake (agent/cmd.c: retained flag, size cap, signature,
 * strict decode, target, allow-list, params, expiry, replay table, rate limits) and the result
 * codec.
 *
 * Input layout: byte 0 holds flags (bit 0 retained, bit 1 correlation data = the 36 bytes after
 * the flags, bit 2 MQTT expiry present, bits 3-7 the expiry in seconds), the rest is the payload.
 * Such an input goes unsigned to an intake that does not require signatures.
 *
 * An input that starts with "SIG:" exercises the signature path (proto/cmdsig.c): then comes a
 * mode byte, then the layout above.
 *   mode bits 0-1: 0 = the signature and key id come from the input: u8 length + bytes each,
 *                  before the flags byte; 1 = the target signs the payload with the trusted
 *                  key; 2 = signs it, then flips a bit of the payload (the byte after the mode
 *                  says where); 3 = signs it with a key the intake does not trust
 *   bit 2: the intake requires signatures; bit 3: the signature property is given twice
 * The keys are RFC 8032's test keys 1 (trusted) and 2 (not), so corpus entries stay valid.
 * Oracles: a valid signature never gives bad_signature/unknown_key, a flipped bit always gives
 * bad_signature, the untrusted key always unknown_key (unless an earlier check fired).
 *
 * Besides "no crash, no leak, no UB", it checks round trips: a command that decodes re-encodes
 * to one that decodes to the same fields, and so does a result.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "cmdsig.h"
#include "cmdtable.h"
#include "command.h"
#include "log.h"

#define T0 1768442400000LL /* 2026-01-15T02:00:00Z: the corpus commands are valid then */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PEM(b64) "-----BEGIN PRIVATE KEY-----\n" b64 "\n-----END PRIVATE KEY-----\n"
/* RFC 8032 section 7.1 TEST 1 and TEST 2 secret keys as `openssl genpkey` writes them */
static const char *const pems[2] = {
	PEM("MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g"),
	PEM("MC4CAQAwBQYDK2VwBCIEIEzNCJso/5banbbDRuwRTg9bijGfNaumJNqM9u1PuKb7"),
};

static char dir[64];
static char path[160], path_req[160];
static struct cmdtable *table, *table_req;
static struct cmd *cmd, *cmd_req;        /* signatures optional / required */
static struct cmdsig_signer *signers[2]; /* [0] trusted, [1] not */

static bool known(const char *udid, void *userdata)
{
	(void)userdata;
	return udid[0] != 'X'; /* every device but those starting with X */
}

static void cleanup(void)
{
	char guard[sizeof(path) + 8];

	cmd_free(cmd);
	cmd_free(cmd_req);
	cmdtable_free(table);
	cmdtable_free(table_req);
	cmdsig_signer_free(signers[0]);
	cmdsig_signer_free(signers[1]);
	unlink(path);
	unlink(path_req);
	/* the tables' guard files sit next to them */
	snprintf(guard, sizeof(guard), "%s.guard", path);
	unlink(guard);
	snprintf(guard, sizeof(guard), "%s.guard", path_req);
	unlink(guard);
	rmdir(dir);
}

static void init(void)
{
	struct cmd_config cfg;

	log_init("fuzz_cmd", LOG_LEVEL_ERROR);
	snprintf(dir, sizeof(dir), "/tmp/fuzz-cmd-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	for (int i = 0; i < 2; i++) {
		char key[128];
		FILE *f;

		snprintf(key, sizeof(key), "%s/key.pem", dir);
		f = fopen(key, "w");
		if (!f || fputs(pems[i], f) < 0 || fclose(f) != 0 ||
		    cmdsig_signer_load(key, &signers[i], NULL, 0) < 0)
			abort();
		unlink(key);
	}
	snprintf(path, sizeof(path), "%s/cmdtable", dir);
	snprintf(path_req, sizeof(path_req), "%s/cmdtable-req", dir);
	if (cmdtable_open(path, 256, 48LL * 3600 * 1000, T0, &table) < 0 ||
	    cmdtable_open(path_req, 256, 48LL * 3600 * 1000, T0, &table_req) < 0)
		abort();
	cmd_config_defaults(&cfg);
	snprintf(cfg.agent, sizeof(cfg.agent), "station-07");
	/* the clock stands still here: budgets would shed everything after the first few */
	cfg.intake_per_s = 0;
	cfg.answers_per_s = 0;
	cfg.keys[0] = *cmdsig_signer_pubkey(signers[0]);
	cfg.n_keys = 1;
	if (cmd_new(&cfg, table_req, known, NULL, &cmd_req) < 0)
		abort();
	cfg.require_signed = false;
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

/* Reads a u8-length-prefixed field; NULL when the input is too short. */
static const char *take(const uint8_t **data, size_t *size, size_t *ret_len)
{
	const char *p;
	size_t n;

	if (*size < 1 || (size_t)(*data)[0] + 1 > *size)
		return NULL;
	n = (*data)[0];
	p = (const char *)*data + 1;
	*data += n + 1;
	*size -= n + 1;
	*ret_len = n;
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cmd_message m = { .expiry_s = -1, .received_ms = 1000 };
	struct cmd_decision d;
	struct command_result res;
	struct cmd *c;
	char sig[CMDSIG_SIG_B64_LEN + 1];
	const char *in_sig = NULL, *in_kid = NULL;
	size_t in_sig_len = 0, in_kid_len = 0;
	uint8_t *copy = NULL;
	int mode = -1, flip = 0;
	char *json;
	uint8_t flags;

	if (!cmd)
		init();
	c = cmd;
	if (size >= 5 && memcmp(data, "SIG:", 4) == 0) {
		mode = data[4];
		data += 5;
		size -= 5;
		if (mode & 4)
			c = cmd_req;
		if ((mode & 3) == 0) {
			in_sig = take(&data, &size, &in_sig_len);
			in_kid = take(&data, &size, &in_kid_len);
			if (!in_sig || !in_kid)
				return 0;
		} else if ((mode & 3) == 2) {
			if (size < 1)
				return 0;
			flip = data[0];
			data++;
			size--;
		}
	}
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
	if (mode >= 0 && (mode & 3) != 0) {
		if (cmdsig_sign(signers[(mode & 3) == 3], data, size, sig) < 0)
			abort();
		in_sig = sig;
		in_sig_len = strlen(sig);
		in_kid = cmdsig_signer_pubkey(signers[(mode & 3) == 3])->id;
		in_kid_len = strlen(in_kid);
		if ((mode & 3) == 2 && size > 0) {
			copy = malloc(size);
			if (!copy)
				abort();
			memcpy(copy, data, size);
			copy[(size_t)flip % size] ^= (uint8_t)(1u << (flip % 8));
			m.payload = copy;
		}
	}
	if (in_sig) {
		cmd_message_user_property(&m, CMDSIG_PROP_SIG, strlen(CMDSIG_PROP_SIG), in_sig,
		                          in_sig_len);
		cmd_message_user_property(&m, CMDSIG_PROP_KEY_ID, strlen(CMDSIG_PROP_KEY_ID),
		                          in_kid, in_kid_len);
		if (mode & 8)
			cmd_message_user_property(&m, CMDSIG_PROP_SIG, strlen(CMDSIG_PROP_SIG),
			                          in_sig, in_sig_len);
	}

	cmd_check(c, &m, 1500, T0 + 1000, &d);
	if (d.reason == COMMAND_REJECT_NONE && !d.parsed)
		abort();
	/* the signature oracles, where no earlier check (retain flag, size cap) decided */
	if (mode >= 0 && d.reason != COMMAND_REJECT_RETAINED &&
	    d.reason != COMMAND_REJECT_OVERSIZE) {
		bool sig_reason = d.reason == COMMAND_REJECT_BAD_SIGNATURE ||
		                  d.reason == COMMAND_REJECT_UNKNOWN_KEY;

		if ((mode & 3) == 1 && !(mode & 8) && sig_reason)
			abort(); /* a valid signature of a trusted key */
		if ((mode & 3) == 2 && size > 0 && d.reason != COMMAND_REJECT_BAD_SIGNATURE)
			abort(); /* one flipped bit */
		if ((mode & 3) == 3 && !(mode & 8) && d.reason != COMMAND_REJECT_UNKNOWN_KEY)
			abort(); /* an untrusted key */
		if ((mode & 8) && d.reason != COMMAND_REJECT_BAD_SIGNATURE)
			abort(); /* ambiguous */
	}
	if (cmd_decision_result(c, &d, &res) == 0) {
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
		cmd_update(c, d.cmd_id, COMMAND_STATUS_SUCCEEDED, NULL, -1, T0 + 2000);
	free(copy);

	round_trip_command(data, size);
	round_trip_result(data, size);
	return 0;
}
