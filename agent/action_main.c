/* SPDX-License-Identifier: MIT */
/*
 * cradle-agent-action: the killable helper that performs one remediation on one device over USB
 * and prints one JSON line with the outcome, e.g.
 *
 *     cradle-agent-action --udid U cloud-on      -> {"ok":true}
 *     cradle-agent-action --udid U restart       -> {"ok":false,"error_code":-3,"error":"…"}
 *
 * Like the probe helper it runs in its own process so that the daemon can kill it at a
 * deadline: libimobiledevice calls block (30 s receive timeouts, a phone that shows a dialog),
 * and a thread cannot be killed. It never pairs: without a pair record on this host it refuses,
 * because the handshake's automatic Pair would put a trust prompt on the phone.
 *
 *     cradle-agent-action --exec /usr/bin/idevicebackup2 -u U backup DIR
 *
 * --exec runs a tool in place of this process after arranging that it dies with the agent
 * (PR_SET_PDEATHSIG survives exec): a kill -9 of the agent must not leave a backup running that
 * nobody follows, writing into a folder the restarted agent discards.
 *
 * Exit status: 0 when the outcome was printed (ok or not), 2 on bad usage. The device work is
 * idev_act() (idev.c); this file parses the arguments and prints the outcome.
 */
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "idev.h"
#include "version.h"

static void print_outcome(const struct idev_outcome *out)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	cJSON_AddBoolToObject(o, "ok", out->ok);
	if (!out->ok) {
		cJSON_AddNumberToObject(o, "error_code", out->code);
		cJSON_AddStringToObject(o, "error", out->error);
	}
	s = cJSON_PrintUnformatted(o);
	if (s)
		printf("%s\n", s);
	fflush(stdout);
	free(s);
	cJSON_Delete(o);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: cradle-agent-action --udid UDID cloud-on|cloud-off|restart\n"
	           "       cradle-agent-action --exec TOOL [ARG...]\n"
	           "       cradle-agent-action --version | -h | --help\n");
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		enum idev_action action;
	} actions[] = {
		{ "cloud-on", IDEV_ACTION_CLOUD_ON },
		{ "cloud-off", IDEV_ACTION_CLOUD_OFF },
		{ "restart", IDEV_ACTION_RESTART },
	};
	const char *udid = NULL, *name = NULL;
	struct idev_outcome out;
	size_t k;
	int i;

	if (argc > 2 && strcmp(argv[1], "--exec") == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
			return 2; /* the agent is already gone */
		execv(argv[2], argv + 2);
		perror(argv[2]);
		return 2;
	}
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		puts("cradle-agent-action " CRADLE_VERSION);
		return 0;
	}
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--udid") == 0 && i + 1 < argc)
			udid = argv[++i];
		else if (!name && argv[i][0] != '-')
			name = argv[i];
		else {
			usage(stderr);
			return 2;
		}
	}
	for (k = 0; name && k < sizeof(actions) / sizeof(actions[0]); k++)
		if (strcmp(name, actions[k].name) == 0)
			break;
	if (!udid || !name || k == sizeof(actions) / sizeof(actions[0])) {
		usage(stderr);
		return 2;
	}
	idev_act(udid, actions[k].action, &out);
	print_outcome(&out);
	return 0;
}
