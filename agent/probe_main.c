/* SPDX-License-Identifier: MIT */
/*
 * cradle-agent-probe: probe one device and print its facts as one JSON line on stdout.
 *
 *   cradle-agent-probe --udid U [--syslog-ms N] [--timeout S]
 *
 * A separate process so the agent can kill a probe stuck in libimobiledevice (a hung TLS read
 * cannot be cancelled in a thread) and so device-supplied data is parsed outside the daemon.
 * Exit 0 whenever facts were printed, whatever the device state; non-zero only when the helper
 * itself failed (usage, memory). --timeout is a self-imposed alarm as a second line of defence
 * behind the parent's deadline: on expiry it prints "timeout" facts and exits.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "facts.h"
#include "idev.h"
#include "log.h"
#include "loop.h"
#include "version.h"

static char arg_udid[FACTS_UDID_MAX];

/* async-signal-safe: a precomputed line, written with write(2) */
static char timeout_line[512];
static size_t timeout_len;

static void on_alarm(int sig)
{
	(void)sig;
	if (timeout_len && write(STDOUT_FILENO, timeout_line, timeout_len) < 0) {
		/* nothing more to do in a signal handler */
	}
	_exit(0);
}

static int prepare_timeout_line(void)
{
	struct device_facts f;
	char *json;
	int n;

	facts_init(&f, arg_udid);
	f.probed_at_ms = wall_now_ms();
	f.probe = FACTS_PROBE_TIMEOUT;
	snprintf(f.error_text, sizeof(f.error_text), "probe helper timed out");
	json = facts_to_json(&f);
	if (!json)
		return -ENOMEM;
	n = snprintf(timeout_line, sizeof(timeout_line), "%s\n", json);
	free(json);
	if (n < 0 || (size_t)n >= sizeof(timeout_line))
		return -E2BIG;
	timeout_len = (size_t)n;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: cradle-agent-probe --udid UDID [--syslog-ms N] [--timeout SECONDS]\n"
	           "       cradle-agent-probe --version | -h | --help\n");
}

static int parse_int(const char *s, long lo, long hi, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return -EINVAL;
	*ret = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "udid", required_argument, NULL, 'u' },
		{ "syslog-ms", required_argument, NULL, 's' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct idev_probe_opts po = { 0 };
	struct device_facts f;
	long v, timeout_s = 0;
	char *json;
	int c;

	log_init("cradle-agent-probe", LOG_LEVEL_WARN);
	while ((c = getopt_long(argc, argv, "u:s:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			if (!optarg[0] || strlen(optarg) >= sizeof(arg_udid)) {
				log_error("--udid: expected 1..%d characters", FACTS_UDID_MAX - 1);
				return 2;
			}
			snprintf(arg_udid, sizeof(arg_udid), "%s", optarg);
			break;
		case 's':
			if (parse_int(optarg, 0, 600000, &v) < 0) {
				log_error("--syslog-ms: expected 0..600000");
				return 2;
			}
			po.syslog_ms = (int)v;
			break;
		case 't':
			if (parse_int(optarg, 0, 3600, &timeout_s) < 0) {
				log_error("--timeout: expected 0..3600 seconds");
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			puts("cradle-agent-probe " CRADLE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!arg_udid[0] || optind != argc) {
		usage(stderr);
		return 2;
	}
	/* libusbmuxd writes to sockets that may close under it */
	signal(SIGPIPE, SIG_IGN);
	if (timeout_s > 0) {
		if (prepare_timeout_line() < 0)
			return 1;
		signal(SIGALRM, on_alarm);
		alarm((unsigned)timeout_s);
	}

	if (idev_probe(arg_udid, &po, &f) < 0)
		return 1;
	alarm(0);
	json = facts_to_json(&f);
	if (!json)
		return 1;
	printf("%s\n", json);
	free(json);
	return fflush(stdout) == 0 ? 0 : 1;
}
