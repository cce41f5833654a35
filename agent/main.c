/* SPDX-License-Identifier: MIT */
/*
 * cradle-agent: the command line. One getopt_long pass over every flag, in any order, then the
 * mode they select:
 *
 *   cradle-agent [-c FILE] [--test-config] [--dump-config] [--agent-id ID] [--broker URL]
 *                [--state-dir DIR]                                       daemon (daemon.h)
 *   cradle-agent --once [-c FILE] [--udid U] [--concurrency N] [--timeout 30s] [--syslog 5s]
 *                [--agent ID] [--publish-device-name] [--probe-helper PATH] [--log-level L]
 *                                                                        once (once.h)
 *   cradle-agent send --broker URL --agent ID --udid U COMMAND [...]
 *                                            client/send.c, which parses its own options
 *   cradle-agent --version | --help
 *
 * `send` is a subcommand: it must be the first argument and gets the rest of argv. Otherwise
 * --once selects the one-shot probe and anything else is the daemon. A flag of the other mode,
 * an unknown flag, a missing or bad value, or a stray argument is a usage error: a message and
 * the usage on stderr, exit status 2. A bad configuration file is exit status 1. With --once the
 * file is read first and the flags override it, wherever -c stands. The daemon's file is
 * AGENT_DEFAULT_CONFIG (the package's conffile) unless -c names another; --once reads none
 * unless -c names one.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
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
#include "topics.h"
#include "version.h"

#define MAIN_PATH_MAX 512
/* the installed layout's configuration file (packaging/debian, docs/packaging.md) */
#define AGENT_DEFAULT_CONFIG "/etc/cradle/cradle-agent.conf"

/* The flags of both modes, as parsed; NULL / false = not given. */
struct main_args {
	const char *file; /* -c FILE, both modes */
	bool once;
	/* daemon */
	bool test, dump;
	const char *agent_id, *broker, *state_dir;
	/* --once */
	const char *udid, *agent, *helper;
	bool has_concurrency, has_timeout, has_syslog, publish_device_name;
	unsigned concurrency;
	uint64_t timeout_ms;
	int syslog_ms;
	/* the first flag given that only one mode knows, for the error message */
	const char *daemon_flag, *once_flag;
};

/* A duration flag (parse.h: "30s", "2m", "1h", "1500ms", bare seconds) within [min, max] ms. */
static int parse_flag_ms(const char *s, uint64_t min_ms, uint64_t max_ms, uint64_t *ret)
{
	uint64_t v;

	if (parse_duration_ms(s, &v) < 0 || v < min_ms || v > max_ms)
		return -EINVAL;
	*ret = v;
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: cradle-agent [-c FILE] [--test-config] [--dump-config] [--agent-id ID]\n"
	        "                    [--broker URL] [--state-dir DIR]\n"
	        "       cradle-agent --once [-c FILE] [--udid U] [--concurrency N] [--timeout 30s]\n"
	        "                    [--syslog 5s] [--agent ID] [--publish-device-name]\n"
	        "                    [--probe-helper PATH] [--log-level L]\n"
	        "       cradle-agent send --broker URL --agent ID --udid UDID [options] COMMAND\n"
	        "                    (the options of cradle-send: cradle-agent send --help)\n"
	        "       cradle-agent --version | -h | --help\n");
}

static int usage_error(void)
{
	usage(stderr);
	return 2;
}

/*
 * Parses argv into a. 0, 1 when --help or --version was given (and answered), or -EINVAL
 * (reported).
 */
static int parse_args(int argc, char **argv, struct main_args *a)
{
	enum {
		OPT_ONCE = 256,
		OPT_TEST_CONFIG,
		OPT_DUMP_CONFIG,
		OPT_AGENT_ID,
		OPT_BROKER,
		OPT_STATE_DIR,
		OPT_UDID,
		OPT_CONCURRENCY,
		OPT_TIMEOUT,
		OPT_SYSLOG,
		OPT_AGENT,
		OPT_PUBLISH_DEVICE_NAME,
		OPT_PROBE_HELPER,
		OPT_LOG_LEVEL,
		OPT_VERSION,
	};
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "once", no_argument, NULL, OPT_ONCE },
		{ "test-config", no_argument, NULL, OPT_TEST_CONFIG },
		{ "dump-config", no_argument, NULL, OPT_DUMP_CONFIG },
		{ "agent-id", required_argument, NULL, OPT_AGENT_ID },
		{ "broker", required_argument, NULL, OPT_BROKER },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "udid", required_argument, NULL, OPT_UDID },
		{ "concurrency", required_argument, NULL, OPT_CONCURRENCY },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "syslog", required_argument, NULL, OPT_SYSLOG },
		{ "agent", required_argument, NULL, OPT_AGENT },
		{ "publish-device-name", no_argument, NULL, OPT_PUBLISH_DEVICE_NAME },
		{ "probe-helper", required_argument, NULL, OPT_PROBE_HELPER },
		{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
		{ 0 },
	};
	unsigned long n;
	uint64_t ms;
	enum log_level lvl;
	char *end;
	int c, idx;

	opterr = 0; /* our own messages, in the log's format */
	optind = 1;
	while ((idx = -1, c = getopt_long(argc, argv, ":c:h", opts, &idx)) != -1) {
		const char *flag = argv[optind - 1];

		if (c >= OPT_TEST_CONFIG && c <= OPT_STATE_DIR && !a->daemon_flag)
			a->daemon_flag = opts[idx].name;
		else if (c >= OPT_UDID && c <= OPT_LOG_LEVEL && !a->once_flag)
			a->once_flag = opts[idx].name;
		switch (c) {
		case 'c':
			a->file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 1;
		case OPT_VERSION:
			puts("cradle-agent " CRADLE_VERSION);
			return 1;
		case OPT_ONCE:
			a->once = true;
			break;
		case OPT_TEST_CONFIG:
			a->test = true;
			break;
		case OPT_DUMP_CONFIG:
			a->dump = true;
			break;
		case OPT_AGENT_ID:
			a->agent_id = optarg;
			break;
		case OPT_BROKER:
			a->broker = optarg;
			break;
		case OPT_STATE_DIR:
			a->state_dir = optarg;
			break;
		case OPT_UDID:
			a->udid = optarg;
			break;
		case OPT_CONCURRENCY:
			errno = 0;
			n = strtoul(optarg, &end, 10);
			if (errno || *end || n < 1 || n > 256) {
				log_error("--concurrency: expected 1..256");
				return -EINVAL;
			}
			a->has_concurrency = true;
			a->concurrency = (unsigned)n;
			break;
		case OPT_TIMEOUT:
			if (parse_flag_ms(optarg, 1000, 3600000, &a->timeout_ms) < 0) {
				log_error("--timeout: expected a duration of 1s..1h (e.g. 30s)");
				return -EINVAL;
			}
			a->has_timeout = true;
			break;
		case OPT_SYSLOG:
			if (parse_flag_ms(optarg, 0, 300000, &ms) < 0) {
				log_error("--syslog: expected a duration of 0..5m (e.g. 5s)");
				return -EINVAL;
			}
			a->has_syslog = true;
			a->syslog_ms = (int)ms;
			break;
		case OPT_AGENT:
			a->agent = optarg;
			break;
		case OPT_PUBLISH_DEVICE_NAME:
			a->publish_device_name = true;
			break;
		case OPT_PROBE_HELPER:
			a->helper = optarg;
			break;
		case OPT_LOG_LEVEL:
			if (log_level_from_string(optarg, &lvl) < 0) {
				log_error("--log-level: expected error|warn|notice|info|debug");
				return -EINVAL;
			}
			log_set_level(lvl);
			break;
		case ':':
			log_error("option '%s' needs a value", flag);
			return -EINVAL;
		default:
			if (optopt)
				log_error("unknown option '-%c'", optopt);
			else
				log_error("unknown option '%s'", flag);
			return -EINVAL;
		}
	}
	if (optind != argc) {
		if (strcmp(argv[optind], "send") == 0)
			log_error("'send' must be the first argument");
		else
			log_error("unexpected argument '%s'", argv[optind]);
		return -EINVAL;
	}
	return 0;
}

/* ---- --once ---- */

static int run_once(const struct main_args *a)
{
	static struct agent_config cfg; /* large: off the stack */
	char err[AGENT_CONFIG_ERROR_MAX];
	char helper[PATH_MAX + 32];
	struct once_opts o = {
		.agent = "local",
		.concurrency = 16,
		.timeout_ms = 30000,
	};
	int r;

	selfpath_sibling(helper, sizeof(helper), "cradle-agent-probe");
	o.helper = getenv("CRADLE_PROBE_HELPER") ? getenv("CRADLE_PROBE_HELPER") : helper;
	if (a->file) {
		/* the daemon's file: its diagnosis settings, probe limits and syslog window; the
		 * flags override them */
		if (agent_config_load(a->file, &cfg, err, sizeof(err)) < 0) {
			log_error("%s", err);
			return 1;
		}
		o.diag = &cfg.diagnose;
		o.agent = cfg.agent_id;
		o.concurrency = cfg.probe_concurrency;
		o.timeout_ms = (uint64_t)cfg.probe_timeout_s * 1000;
		o.syslog_ms = cfg.syslog_watch ? (int)(cfg.syslog_window_s * 1000) : 0;
		o.publish_device_name = cfg.publish_device_name;
	}
	if (a->udid)
		o.udid = a->udid;
	if (a->agent)
		o.agent = a->agent;
	if (a->helper)
		o.helper = a->helper;
	if (a->has_concurrency)
		o.concurrency = a->concurrency;
	if (a->has_timeout)
		o.timeout_ms = a->timeout_ms;
	if (a->has_syslog)
		o.syslog_ms = a->syslog_ms;
	if (a->publish_device_name)
		o.publish_device_name = true;
	r = once_run(&o, stdout);
	return r < 0 ? 1 : 0;
}

/* ---- the daemon ---- */

static int run_daemon(const struct main_args *a)
{
	static struct agent_config cfg; /* large: keep it off the stack */
	struct daemon_paths paths;
	char err[AGENT_CONFIG_ERROR_MAX], probe_helper[MAIN_PATH_MAX], action_helper[MAIN_PATH_MAX],
	        watch_helper[MAIN_PATH_MAX];
	int r;

	r = agent_config_load(a->file, &cfg, err, sizeof(err));
	/* the flags win over the file, but the file must still be valid on its own terms, except
	 * for the required agent_id that a flag may supply */
	if (r < 0 && !(a->agent_id && strstr(err, "agent_id"))) {
		log_error("%s", err);
		return 1;
	}
	if (a->agent_id) {
		if (!topics_agent_id_valid(a->agent_id)) {
			log_error("--agent-id: '%s' does not match [a-z0-9][a-z0-9-]{2,62}",
			          a->agent_id);
			return 1;
		}
		snprintf(cfg.agent_id, sizeof(cfg.agent_id), "%s", a->agent_id);
	}
	if (a->broker)
		snprintf(cfg.broker_url, sizeof(cfg.broker_url), "%s", a->broker);
	if (a->state_dir)
		snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", a->state_dir);
	if (!cfg.backup_dir[0] &&
	    (size_t)snprintf(cfg.backup_dir, sizeof(cfg.backup_dir), "%.200s/backups",
	                     cfg.state_dir) >= sizeof(cfg.backup_dir)) {
		log_error("state_dir '%s' is too long", cfg.state_dir);
		return 1;
	}
	log_set_level(cfg.log_level);
	if (a->dump)
		agent_config_dump(&cfg, stdout);
	if (a->test || a->dump) {
		if (a->test)
			printf("%s: configuration ok\n", a->file);
		return 0;
	}
	if (selfpath_sibling(probe_helper, sizeof(probe_helper), "cradle-agent-probe") < 0 ||
	    selfpath_sibling(action_helper, sizeof(action_helper), "cradle-agent-action") < 0 ||
	    selfpath_sibling(watch_helper, sizeof(watch_helper), "cradle-agent-watch") < 0) {
		log_error("the path of our own executable is too long");
		return 1;
	}
	paths.probe_helper =
	        getenv("CRADLE_PROBE_HELPER") ? getenv("CRADLE_PROBE_HELPER") : probe_helper;
	paths.action_helper =
	        getenv("CRADLE_ACTION_HELPER") ? getenv("CRADLE_ACTION_HELPER") : action_helper;
	paths.watch_helper =
	        getenv("CRADLE_WATCH_HELPER") ? getenv("CRADLE_WATCH_HELPER") : watch_helper;
	paths.backup_tool = getenv("CRADLE_BACKUP_TOOL") ? getenv("CRADLE_BACKUP_TOOL")
	                                                 : "/usr/bin/idevicebackup2";
	return daemon_run(&cfg, &paths);
}

int main(int argc, char **argv)
{
	struct main_args a = { 0 };
	int r;

	log_init("cradle-agent", LOG_LEVEL_NOTICE);
	/* the send client parses from its own argv[0] = "send" */
	if (argc > 1 && strcmp(argv[1], "send") == 0)
		return send_main(argc - 1, argv + 1);
	r = parse_args(argc, argv, &a);
	if (r < 0)
		return usage_error();
	if (r > 0)
		return 0;
	if (a.once && a.daemon_flag) {
		log_error("--%s is not an option of --once", a.daemon_flag);
		return usage_error();
	}
	if (a.once)
		return run_once(&a);
	if (a.once_flag) {
		log_error("--%s is an option of --once only", a.once_flag);
		return usage_error();
	}
	if (!a.file)
		a.file = AGENT_DEFAULT_CONFIG;
	return run_daemon(&a);
}
