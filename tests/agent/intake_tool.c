/* SPDX-License-Identifier: MIT */
/*
 * intake_tool: the real command intake (agent/cmd.c + agent/cmdtable.c in a state directory)
 * behind a line protocol on stdin/stdout, so the integration test's Python responder can feed it
 * real MQTT deliveries (payload, retain flag, message expiry, correlation data) and publish what
 * it answers. It stands in for the daemon's wiring until the lead does it.
 *
 *   stdin:  M <retained 0|1> <expiry_s|-1> <correlation hex|-> <payload hex|-> [<props hex>]
 *           U <cmd_id> <status> <code|-> <progress|-1>        (a later execution state)
 *   stdout: R <reason> <result JSON|->                          (one line per input line)
 *
 * props: the MQTT 5 user properties, as "name\tvalue\n" records (hex encoded like the rest).
 *
 * usage: intake_tool [-k PUBKEY]... [-u] AGENT_ID STATE_DIR KNOWN_UDID...
 *   -k  trust this base64 Ed25519 public key (command_keys); -u  accept unsigned commands
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmdtable.h"
#include "command.h"
#include "log.h"
#include "loop.h"

#define LINE_MAX_BYTES (4 * COMMAND_PAYLOAD_MAX + 256)

static char **known_udids;
static int n_known;
static int64_t seq;

static bool known(const char *udid, void *userdata)
{
	(void)userdata;
	for (int i = 0; i < n_known; i++)
		if (strcmp(known_udids[i], udid) == 0)
			return true;
	return false;
}

/* Decodes hex in place; returns the length or -1. "-" is NULL. */
static long unhex(char *s, char **ret)
{
	size_t n = strlen(s), i;

	if (strcmp(s, "-") == 0) {
		*ret = NULL;
		return 0;
	}
	if (n % 2)
		return -1;
	for (i = 0; i < n / 2; i++) {
		unsigned v;

		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -1;
		s[i] = (char)v;
	}
	*ret = s;
	return (long)(n / 2);
}

/* Offers each "name\tvalue\n" record of props (modified in place) to the intake. */
static int user_props(struct cmd_message *m, char *props, size_t len)
{
	char *p = props, *end = props + len;

	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *tab = memchr(p, '\t', (size_t)((nl ? nl : end) - p));

		if (!nl || !tab)
			return -EINVAL;
		cmd_message_user_property(m, p, (size_t)(tab - p), tab + 1, (size_t)(nl - tab - 1));
		p = nl + 1;
	}
	return 0;
}

static void print_result(const char *reason, struct command_result *res)
{
	char *json;

	res->seq = ++seq;
	res->ts_ms = wall_now_ms();
	json = command_result_encode(res);
	printf("R %s %s\n", reason, json ? json : "-");
	free(json);
}

int main(int argc, char **argv)
{
	static char line[LINE_MAX_BYTES];
	struct cmdtable *table = NULL;
	struct cmd *cmd = NULL;
	struct cmd_config cfg;
	char path[4096];
	int r = 1, c;

	cmd_config_defaults(&cfg);
	while ((c = getopt(argc, argv, "k:u")) != -1) {
		if (c == 'u') {
			cfg.require_signed = false;
		} else if (c == 'k' && cfg.n_keys < CMDSIG_KEYS_MAX &&
		           cmdsig_pubkey_parse(optarg, strlen(optarg), &cfg.keys[cfg.n_keys]) ==
		                   0) {
			cfg.n_keys++;
		} else {
			fprintf(stderr, "intake_tool: bad option\n");
			return 2;
		}
	}
	argc -= optind - 1;
	argv += optind - 1;
	if (argc < 3) {
		fprintf(stderr, "usage: intake_tool [-k PUBKEY]... [-u] AGENT_ID STATE_DIR "
		                "KNOWN_UDID...\n");
		return 2;
	}
	log_init("intake_tool", LOG_LEVEL_INFO);
	known_udids = argv + 3;
	n_known = argc - 3;
	snprintf(cfg.agent, sizeof(cfg.agent), "%s", argv[1]);
	snprintf(path, sizeof(path), "%s/cmdtable", argv[2]);
	if (cmdtable_open(path, 1000, 48LL * 3600 * 1000, wall_now_ms(), &table) < 0 ||
	    cmd_new(&cfg, table, known, NULL, &cmd) < 0)
		goto out;
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");

	while (fgets(line, sizeof(line), stdin)) {
		char *tok[6] = { 0 }, *save = NULL, *p = line;
		struct command_result res;
		int n = 0;

		while (n < 6 && (tok[n] = strtok_r(p, " \n", &save))) {
			n++;
			p = NULL;
		}
		if ((n == 5 || n == 6) && strcmp(tok[0], "M") == 0) {
			struct cmd_message m = { 0 };
			struct cmd_decision d;
			char *corr, *payload, *props = NULL;
			long clen = unhex(tok[3], &corr), plen = unhex(tok[4], &payload);
			long prlen = n == 6 ? unhex(tok[5], &props) : 0;

			if (clen < 0 || plen < 0 || prlen < 0 ||
			    (props && user_props(&m, props, (size_t)prlen) < 0)) {
				printf("R error -\n");
				continue;
			}
			m.retained = strcmp(tok[1], "1") == 0;
			m.expiry_s = strtoll(tok[2], NULL, 10);
			m.correlation = corr;
			m.correlation_len = (size_t)clen;
			m.payload = payload ? payload : "";
			m.len = (size_t)plen;
			m.received_ms = loop_now_ms();
			cmd_check(cmd, &m, loop_now_ms(), wall_now_ms(), &d);
			if (cmd_decision_result(cmd, &d, &res) < 0)
				printf("R %s -\n", command_reject_str(d.reason));
			else
				print_result(command_reject_str(d.reason), &res);
		} else if (n == 5 && strcmp(tok[0], "U") == 0) {
			struct command_result base = { .progress = -1 };

			snprintf(base.agent, sizeof(base.agent), "%s", cfg.agent);
			snprintf(base.cmd_id, sizeof(base.cmd_id), "%s", tok[1]);
			if (command_status_from_str(tok[2], &base.status) < 0) {
				printf("R error -\n");
				continue;
			}
			if (strcmp(tok[3], "-") != 0)
				snprintf(base.cause, sizeof(base.cause), "%s", tok[3]);
			base.progress = atoi(tok[4]);
			if (cmd_update(cmd, tok[1], base.status, base.cause, base.progress,
			               wall_now_ms()) < 0) {
				printf("R error -\n");
				continue;
			}
			print_result("none", &base);
		} else {
			printf("R error -\n");
		}
	}
	r = 0;
out:
	cmd_free(cmd);
	cmdtable_free(table);
	return r;
}
