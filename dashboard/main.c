/* SPDX-License-Identifier: MIT */
/*
 * cradle-dashboard: the command line. One getopt_long pass over every flag, then the mode:
 *
 *   cradle-dashboard [-c FILE] [--broker URL] [--http ADDR:PORT] [--db PATH]  the service
 *   cradle-dashboard [-c FILE] [flags] --test-config | --dump-config
 *   cradle-dashboard -c FILE user add NAME --role ROLE    (password: first line of stdin)
 *   cradle-dashboard -c FILE user list
 *   cradle-dashboard -c FILE user role NAME --role ROLE
 *   cradle-dashboard -c FILE user delete NAME
 *   cradle-dashboard -c FILE token add NAME --role ROLE   (prints the token once)
 *   cradle-dashboard -c FILE token list
 *   cradle-dashboard -c FILE token revoke NAME
 *   cradle-dashboard -c FILE key public                   (for the agents' command_keys)
 *   cradle-dashboard --version | --help
 *
 * FILE is DASH_DEFAULT_CONFIG (the package's conffile) unless -c names another, for the
 * subcommands too. Flags override the file. A usage error is exit status 2, a bad configuration 1,
 * a failed subcommand 1.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "cmdsend.h"
#include "config.h"
#include "daemon.h"
#include "log.h"
#include "version.h"

/* the installed layout's configuration file (packaging/debian, docs/packaging.md) */
#define DASH_DEFAULT_CONFIG "/etc/cradle/cradle-dashboard.conf"

struct main_args {
	const char *file;
	const char *broker, *http, *db, *role;
	bool test, dump;
	int n_words;
	char **words; /* the subcommand: "user add NAME", ... */
};

static void usage(FILE *f)
{
	fputs("usage: cradle-dashboard [-c FILE] [--broker URL] [--http ADDR:PORT] [--db PATH]\n"
	      "                        [--test-config] [--dump-config]\n"
	      "       cradle-dashboard -c FILE user add NAME --role viewer|operator|admin\n"
	      "       cradle-dashboard -c FILE user list\n"
	      "       cradle-dashboard -c FILE user role NAME --role viewer|operator|admin\n"
	      "       cradle-dashboard -c FILE user delete NAME\n"
	      "       cradle-dashboard -c FILE token add NAME --role viewer|operator|admin\n"
	      "       cradle-dashboard -c FILE token list\n"
	      "       cradle-dashboard -c FILE token revoke NAME\n"
	      "       cradle-dashboard -c FILE key public\n"
	      "       cradle-dashboard --version | -h | --help\n",
	      f);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("cradle-dashboard: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	return 2;
}

enum {
	OPT_BROKER = 256,
	OPT_HTTP,
	OPT_DB,
	OPT_ROLE,
	OPT_TEST_CONFIG,
	OPT_DUMP_CONFIG,
	OPT_VERSION,
};

/* 0, or an exit status (2: usage; -1: done, exit 0) */
static int parse_args(int argc, char **argv, struct main_args *a)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "broker", required_argument, NULL, OPT_BROKER },
		{ "http", required_argument, NULL, OPT_HTTP },
		{ "db", required_argument, NULL, OPT_DB },
		{ "role", required_argument, NULL, OPT_ROLE },
		{ "test-config", no_argument, NULL, OPT_TEST_CONFIG },
		{ "dump-config", no_argument, NULL, OPT_DUMP_CONFIG },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			a->file = optarg;
			break;
		case OPT_BROKER:
			a->broker = optarg;
			break;
		case OPT_HTTP:
			a->http = optarg;
			break;
		case OPT_DB:
			a->db = optarg;
			break;
		case OPT_ROLE:
			a->role = optarg;
			break;
		case OPT_TEST_CONFIG:
			a->test = true;
			break;
		case OPT_DUMP_CONFIG:
			a->dump = true;
			break;
		case OPT_VERSION:
			puts("cradle-dashboard " CRADLE_VERSION);
			return -1;
		case 'h':
			usage(stdout);
			return -1;
		case ':':
			return usage_error("option '%s' needs a value", argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	a->words = argv + optind;
	a->n_words = argc - optind;
	if (!a->file)
		a->file = DASH_DEFAULT_CONFIG;
	return 0;
}

static int set_flag(char *field, size_t size, const char *value, const char *flag)
{
	if (strlen(value) >= size)
		return usage_error("%s: value too long", flag);
	snprintf(field, size, "%s", value);
	return 0;
}

static bool is(const struct main_args *a, int n, const char *w0, const char *w1)
{
	return a->n_words == n && strcmp(a->words[0], w0) == 0 &&
	       (!w1 || strcmp(a->words[1], w1) == 0);
}

/* The subcommands: each opens what it needs and reports on stderr. */
static int run_subcommand(const struct dash_config *cfg, const struct main_args *a)
{
	bool needs_role =
	        (is(a, 3, "user", "add") || is(a, 3, "token", "add") || is(a, 3, "user", "role"));
	int r;

	if (a->role && !needs_role)
		return usage_error("--role goes with 'user add', 'user role' and 'token add'");
	if (needs_role && !a->role)
		return usage_error("'%s %s' needs --role viewer|operator|admin", a->words[0],
		                   a->words[1]);
	if (is(a, 3, "user", "add"))
		r = auth_cli_user_add(cfg, a->words[2], a->role, stdin);
	else if (is(a, 2, "user", "list"))
		r = auth_cli_user_list(cfg, stdout);
	else if (is(a, 3, "user", "role"))
		r = auth_cli_user_role(cfg, a->words[2], a->role);
	else if (is(a, 3, "user", "delete"))
		r = auth_cli_user_delete(cfg, a->words[2]);
	else if (is(a, 3, "token", "add"))
		r = auth_cli_token_add(cfg, a->words[2], a->role, stdout);
	else if (is(a, 2, "token", "list"))
		r = auth_cli_token_list(cfg, stdout);
	else if (is(a, 3, "token", "revoke"))
		r = auth_cli_token_revoke(cfg, a->words[2]);
	else if (is(a, 2, "key", "public"))
		r = cmdsend_key_public(cfg, stdout);
	else
		return usage_error("unknown command '%s'", a->words[0]);
	if (r == -ENOSYS)
		fprintf(stderr, "cradle-dashboard: '%s %s' is not available in this build\n",
		        a->words[0], a->words[1]);
	if (fflush(stdout) != 0 && r == 0)
		r = -EIO;
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct main_args a = { 0 };
	struct dash_config cfg;
	char err[CONFTAB_ERROR_MAX];
	int r;

	log_init("cradle-dashboard", LOG_LEVEL_INFO);
	r = parse_args(argc, argv, &a);
	if (r != 0)
		return r < 0 ? 0 : r;
	dash_config_defaults(&cfg);
	r = dash_config_load(&cfg, a.file, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "cradle-dashboard: %s\n", err);
		return 1;
	}
	if ((a.broker &&
	     (r = set_flag(cfg.broker_url, sizeof(cfg.broker_url), a.broker, "--broker")) != 0) ||
	    (a.http &&
	     (r = set_flag(cfg.http_listen, sizeof(cfg.http_listen), a.http, "--http")) != 0) ||
	    (a.db && (r = set_flag(cfg.db, sizeof(cfg.db), a.db, "--db")) != 0))
		return r;
	if (dash_config_check(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "cradle-dashboard: %s: %s\n", a.file, err);
		return 1;
	}
	log_set_level(cfg.log_level);
	if (a.test || a.dump) {
		if (a.n_words > 0)
			return usage_error("'%s' does not go with --test-config or --dump-config",
			                   a.words[0]);
		if (a.dump && dash_config_dump(&cfg, stdout) < 0)
			return 1;
		if (a.test && !a.dump)
			printf("%s: configuration ok\n", a.file);
		return 0;
	}
	if (a.n_words > 0)
		return run_subcommand(&cfg, &a);
	if (a.role)
		return usage_error("--role goes with 'user add', 'user role' and 'token add'");
	r = daemon_run(&cfg);
	log_flush();
	return r < 0 ? 1 : 0;
}
