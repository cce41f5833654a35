/* SPDX-License-Identifier: MIT */
/*
 * cmdsend_driver: cmdsend (dashboard/cmdsend.h) on a loop of its own, driven line by line from
 * stdin by cmdsend_test.py:
 *
 *   send AGENT UDID NAME [TTL]   -> "sent CMD_ID" or "error -ERRNO" (e.g. -107: no connection)
 *   quit                         -> exits 0
 *
 * argv: BROKER_URL KEY_PATH. The submit happens on a second thread, as the HTTP workers do.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "client.h"
#include "cmdsend.h"
#include "command.h"
#include "config.h"
#include "log.h"
#include "loop.h"

struct driver {
	struct loop *loop;
	struct cmdsend *cs;
	char line[512];
	size_t len;
};

struct submit_job {
	struct cmdsend *cs;
	struct command cmd;
	int ttl;
	int r;
};

static void *submit_thread(void *arg)
{
	struct submit_job *j = arg;

	j->r = cmdsend_submit(j->cs, &j->cmd, j->ttl);
	return NULL;
}

static void handle(struct driver *d, char *line)
{
	char agent[COMMAND_AGENT_MAX], udid[COMMAND_UDID_MAX], name[COMMAND_NAME_MAX];
	struct submit_job j = { .cs = d->cs, .ttl = 60 };
	pthread_t t;
	int n;

	if (!strcmp(line, "quit")) {
		loop_stop(d->loop);
		return;
	}
	n = sscanf(line, "send %63s %63s %47s %d", agent, udid, name, &j.ttl);
	if (n < 3) {
		printf("error bad line\n");
		fflush(stdout);
		return;
	}
	snprintf(j.cmd.agent, sizeof(j.cmd.agent), "%s", agent);
	snprintf(j.cmd.udid, sizeof(j.cmd.udid), "%s", udid);
	snprintf(j.cmd.name, sizeof(j.cmd.name), "%s", name);
	j.cmd.known_name = command_name_from_str(name, &j.cmd.kind) == 0;
	if (client_new_cmd_id(j.cmd.cmd_id) < 0)
		abort();
	j.cmd.issued_at_ms = wall_now_ms();
	j.cmd.expires_at_ms = j.cmd.issued_at_ms + (int64_t)j.ttl * 1000;
	if (pthread_create(&t, NULL, submit_thread, &j) != 0 || pthread_join(t, NULL) != 0)
		abort();
	if (j.r == 0)
		printf("sent %s\n", j.cmd.cmd_id);
	else
		printf("error %d\n", j.r);
	fflush(stdout);
}

static void on_stdin(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct driver *d = data;
	ssize_t n;
	char *nl;

	(void)events;
	n = read(fd, d->line + d->len, sizeof(d->line) - 1 - d->len);
	if (n <= 0) {
		loop_del_fd(loop, fd);
		loop_stop(loop);
		return;
	}
	d->len += (size_t)n;
	d->line[d->len] = '\0';
	while ((nl = strchr(d->line, '\n'))) {
		*nl = '\0';
		handle(d, d->line);
		d->len -= (size_t)(nl + 1 - d->line);
		memmove(d->line, nl + 1, d->len + 1);
	}
	if (d->len == sizeof(d->line) - 1)
		d->len = 0;
}

int main(int argc, char **argv)
{
	struct dash_config cfg;
	struct driver d = { 0 };
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: %s BROKER_URL KEY_PATH\n", argv[0]);
		return 2;
	}
	log_init("cmdsend-driver", LOG_LEVEL_DEBUG);
	dash_config_defaults(&cfg);
	snprintf(cfg.broker_url, sizeof(cfg.broker_url), "%s", argv[1]);
	snprintf(cfg.command_key, sizeof(cfg.command_key), "%s", argv[2]);
	snprintf(cfg.mqtt_client_id, sizeof(cfg.mqtt_client_id), "cmdsend-driver-%d", getpid());
	d.loop = loop_new();
	if (!d.loop)
		return 1;
	r = cmdsend_new(d.loop, &cfg, &d.cs);
	if (r < 0) {
		fprintf(stderr, "cmdsend_new: %s\n", strerror(-r));
		return 1;
	}
	if (loop_add_fd(d.loop, STDIN_FILENO, EPOLLIN, on_stdin, &d) < 0)
		return 1;
	printf("ready\n");
	fflush(stdout);
	r = loop_run(d.loop);
	cmdsend_free(d.cs);
	loop_free(d.loop);
	return r < 0 ? 1 : 0;
}
