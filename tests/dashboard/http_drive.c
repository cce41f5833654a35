/* SPDX-License-Identifier: MIT */
/*
 * http_drive: the dashboard's web server alone, for the tests of http.c, auth.c and hub.c.
 *
 *   http_drive CONFIG serve            serves cfg->http_listen until SIGTERM; every stdin line
 *                                      "device|agent|command|summary KEY" is published into the
 *                                      hub (what ingest does after a batch)
 *   http_drive CONFIG user add NAME ROLE   (password on stdin)
 *   http_drive CONFIG user role NAME ROLE | user delete NAME
 *   http_drive CONFIG user list | token add NAME ROLE | token list | token revoke NAME
 *
 * The subcommands call the same auth_cli_* functions cradle-dashboard's main.c calls.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "http.h"
#include "hub.h"
#include "log.h"
#include "store.h"

static void *stdin_thread(void *arg)
{
	struct hub *hub = arg;
	char line[256], key[HUB_KEY_MAX];

	while (fgets(line, sizeof(line), stdin)) {
		char kind[16];

		key[0] = '\0';
		if (sscanf(line, "%15s %63s", kind, key) < 1)
			continue;
		if (strcmp(kind, "device") == 0)
			hub_publish(hub, HUB_DEVICE, key);
		else if (strcmp(kind, "agent") == 0)
			hub_publish(hub, HUB_AGENT, key);
		else if (strcmp(kind, "command") == 0)
			hub_publish(hub, HUB_COMMAND, key);
		else if (strcmp(kind, "summary") == 0)
			hub_publish(hub, HUB_SUMMARY, "");
	}
	return NULL;
}

static int serve(const struct dash_config *cfg)
{
	struct http_services svc = { .cfg = cfg, .db_path = cfg->db };
	struct store *s = NULL;
	struct http *h = NULL;
	pthread_t t;
	sigset_t set;
	char err[256] = "";
	int sig = 0, r;

	/* the database exists and is migrated before the first request */
	r = store_open(cfg->db, cfg, &s, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "http_drive: %s\n", err);
		return 1;
	}
	svc.hub = hub_new(1024);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	r = http_start(&svc, &h);
	if (r < 0)
		goto out;
	pthread_create(&t, NULL, stdin_thread, svc.hub);
	pthread_detach(t);
	printf("ready\n");
	fflush(stdout);
	sigwait(&set, &sig);
	h = http_stop(h);
out:
	/* the stdin thread may still publish: the hub stays allocated until exit */
	store_close(s);
	return r < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct dash_config cfg;
	char err[512] = "";

	log_init("http_drive", LOG_LEVEL_INFO);
	if (argc < 3) {
		fputs("usage: http_drive CONFIG serve|user ...|token ...\n", stderr);
		return 2;
	}
	dash_config_defaults(&cfg);
	if (dash_config_load(&cfg, argv[1], err, sizeof(err)) < 0 ||
	    dash_config_check(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "http_drive: %s\n", err);
		return 2;
	}
	log_set_level(cfg.log_level);
	if (strcmp(argv[2], "serve") == 0)
		return serve(&cfg);
	if (argc == 6 && strcmp(argv[2], "user") == 0 && strcmp(argv[3], "add") == 0)
		return auth_cli_user_add(&cfg, argv[4], argv[5], stdin) < 0;
	if (argc == 4 && strcmp(argv[2], "user") == 0 && strcmp(argv[3], "list") == 0)
		return auth_cli_user_list(&cfg, stdout) < 0;
	if (argc == 6 && strcmp(argv[2], "user") == 0 && strcmp(argv[3], "role") == 0)
		return auth_cli_user_role(&cfg, argv[4], argv[5]) < 0;
	if (argc == 5 && strcmp(argv[2], "user") == 0 && strcmp(argv[3], "delete") == 0)
		return auth_cli_user_delete(&cfg, argv[4]) < 0;
	if (argc == 6 && strcmp(argv[2], "token") == 0 && strcmp(argv[3], "add") == 0)
		return auth_cli_token_add(&cfg, argv[4], argv[5], stdout) < 0;
	if (argc == 4 && strcmp(argv[2], "token") == 0 && strcmp(argv[3], "list") == 0)
		return auth_cli_token_list(&cfg, stdout) < 0;
	if (argc == 5 && strcmp(argv[2], "token") == 0 && strcmp(argv[3], "revoke") == 0)
		return auth_cli_token_revoke(&cfg, argv[4]) < 0;
	fputs("http_drive: unknown command\n", stderr);
	return 2;
}
