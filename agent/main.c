/* SPDX-License-Identifier: MIT */
/*
 * cradle-agent: command line entry point, a small dispatcher over the agent's modes.
 *
 *   cradle-agent --once [-c FILE] [--udid U] [--concurrency N] [--timeout 30s] [--syslog 5s]
 *                [--agent ID] [--publish-device-name] [--probe-helper PATH]
 *   cradle-agent -c FILE [--test-config] [--dump-config] [--agent-id ID] [--broker URL]
 *                [--state-dir DIR]                                   (daemon.c)
 *   cradle-agent send --broker URL --agent ID --udid U COMMAND [...]  (send.c)
 *
 * Each mode is one row of `modes[]`: the flag that selects it and a function that gets the
 * whole argv. Adding a mode (-c FILE for the daemon, --test-config, send) is one row plus its
 * function; the mode parses its own options, so modes do not share option state.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "macro.h"
#include "once.h"
#include "parse.h"
#include "selfpath.h"
#include "send.h"

/* A duration flag (parse.h: "30s", "2m", "1h", "1500ms", bare seconds) within [min, max] ms. */
static int parse_flag_ms(const char *s, uint64_t min_ms, uint64_t max_ms, uint64_t *ret)
{
	uint64_t v;

	if (parse_duration_ms(s, &v) < 0 || v < min_ms || v > max_ms)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int mode_once(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "once", no_argument, NULL, 'o' },
		{ "udid", required_argument, NULL, 'u' },
		{ "concurrency", required_argument, NULL, 'n' },
		{ "timeout", required_argument, NULL, 't' },
		{ "syslog", required_argument, NULL, 's' },
		{ "agent", required_argument, NULL, 'a' },
		{ "publish-device-name", no_argument, NULL, 'p' },
		{ "probe-helper", required_argument, NULL, 'H' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "config", required_argument, NULL, 'c' },
		{ 0 },
	};
	static struct agent_config cfg; /* large: off the stack */
	char err[AGENT_CONFIG_ERROR_MAX];
	char helper[PATH_MAX + 32];
	struct once_opts o = {
		.agent = "local",
		.concurrency = 16,
		.timeout_ms = 30000,
	};
	uint64_t ms;
	char *end;
	unsigned long n;
	enum log_level lvl;
	int c, r;

	selfpath_sibling(helper, sizeof(helper), "cradle-agent-probe");
	o.helper = getenv("CRADLE_PROBE_HELPER") ? getenv("CRADLE_PROBE_HELPER") : helper;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
		switch (c) {
		case 'o':
			break;
		case 'c':
			/* the daemon's file: its diagnosis settings, probe limits and syslog
			 * window; flags given after -c still override them */
			if (agent_config_load(optarg, &cfg, err, sizeof(err)) < 0) {
				log_error("%s", err);
				return 1;
			}
			o.diag = &cfg.diagnose;
			o.agent = cfg.agent_id;
			o.concurrency = cfg.probe_concurrency;
			o.timeout_ms = (uint64_t)cfg.probe_timeout_s * 1000;
			o.syslog_ms = cfg.syslog_watch ? (int)(cfg.syslog_window_s * 1000) : 0;
			o.publish_device_name = cfg.publish_device_name;
			break;
		case 'u':
			o.udid = optarg;
			break;
		case 'n':
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || *end || n < 1 || n > 256) {
				log_error("--concurrency: expected 1..256");
				return 2;
			}
			o.concurrency = (unsigned)n;
			break;
		case 't':
			if (parse_flag_ms(optarg, 1000, 3600000, &o.timeout_ms) < 0) {
				log_error("--timeout: expected a duration of 1s..1h (e.g. 30s)");
				return 2;
			}
			break;
		case 's':
			if (parse_flag_ms(optarg, 0, 300000, &ms) < 0) {
				log_error("--syslog: expected a duration of 0..5m (e.g. 5s)");
				return 2;
			}
			o.syslog_ms = (int)ms;
			break;
		case 'a':
			o.agent = optarg;
			break;
		case 'p':
			o.publish_device_name = true;
			break;
		case 'H':
			o.helper = optarg;
			break;
		case 'l':
			if (log_level_from_string(optarg, &lvl) < 0) {
				log_error("--log-level: expected error|warn|notice|info|debug");
				return 2;
			}
			log_set_level(lvl);
			break;
		default:
			return 2;
		}
	}
	if (optind != argc) {
		log_error("unexpected argument '%s'", argv[optind]);
		return 2;
	}
	r = once_run(&o, stdout);
	return r < 0 ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: cradle-agent -c FILE [--test-config] [--dump-config] [--agent-id ID]\n"
	        "                    [--broker URL] [--state-dir DIR]\n"
	        "       cradle-agent --once [-c FILE] [--udid U] [--concurrency N] [--timeout 30s]\n"
	        "                    [--syslog 5s] [--agent ID] [--publish-device-name]\n"
	        "                    [--probe-helper PATH] [--log-level L]\n"
	        "       cradle-agent send --broker URL --agent ID --udid UDID COMMAND\n"
	        "                    [--param K=V] [--ttl S] [--timeout S] [--cmd-id UUID] [--json]\n");
}

struct mode {
	const char *flag; /* the argv element that selects the mode */
	int (*run)(int argc, char **argv);
};

/* `cradle-agent send …`: the send client parses from its own argv[0] = "send" */
static int mode_send(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "send") != 0) {
		log_error("'send' must be the first argument");
		return 2;
	}
	return send_main(argc - 1, argv + 1);
}

static const struct mode modes[] = {
	{ "--once", mode_once },
	{ "send", mode_send },
	{ "-c", daemon_main },
	{ "--config", daemon_main },
};

int main(int argc, char **argv)
{
	size_t i;
	int k;

	log_init("cradle-agent", LOG_LEVEL_NOTICE);
	for (k = 1; k < argc; k++) {
		if (strcmp(argv[k], "--help") == 0 || strcmp(argv[k], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		for (i = 0; i < ARRAY_SIZE(modes); i++)
			if (strcmp(argv[k], modes[i].flag) == 0)
				return modes[i].run(argc, argv);
	}
	usage(stderr);
	return 2;
}
