/* SPDX-License-Identifier: MIT */
/*
 * client_drive: uses the client library as a program with its own loop would (the dashboard):
 * one client, every command given on the command line sent at once (before the connection is
 * up), results printed as they come, and the client freed from inside its last result callback.
 *
 *   usage: client_drive URL KEY.pem AGENT:UDID:NAME...
 *   stdout: "sent CMD_ID AGENT" per command, then "result CMD_ID AGENT STATUS [REASON]" per
 *           result passed on; exit 0 when every command reached a final status, 2 otherwise.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "cmdsig.h"
#include "log.h"
#include "loop.h"

struct drive {
	struct loop *loop;
	struct client *client;
	int finals, total, code;
};

static void on_result(struct client *c, const struct command_result *r, const char *json,
                      size_t len, void *data)
{
	struct drive *d = data;

	(void)json;
	(void)len;
	printf("result %s %s %s%s%s\n", r->cmd_id, r->agent, command_status_str(r->status),
	       r->status == COMMAND_STATUS_REJECTED ? " " : "",
	       r->status == COMMAND_STATUS_REJECTED ? command_reject_str(r->reason) : "");
	fflush(stdout);
	if (command_status_is_final(r->status) && ++d->finals == d->total) {
		if (client_in_flight(c) != 0)
			d->code = 3;
		else
			d->code = 0;
		/* freeing from inside the client's own callback must be safe */
		d->client = client_free(c);
		loop_stop(d->loop);
	}
}

static void on_closed(struct client *c, const char *why, void *data)
{
	(void)c;
	fprintf(stderr, "closed: %s\n", why);
	loop_stop(((struct drive *)data)->loop);
}

static void on_timeout(struct loop *loop, uint64_t id, void *data)
{
	(void)id;
	(void)data;
	fprintf(stderr, "timeout\n");
	loop_stop(loop);
}

int main(int argc, char **argv)
{
	static const struct client_callbacks cb = { .result = on_result, .closed = on_closed };
	struct drive d = { .code = 2 };
	struct cmdsig_signer *signer = NULL;
	struct client_options o = { 0 };
	char err[CMDSIG_ERR_MAX];
	int64_t now = wall_now_ms();

	log_init("client_drive", LOG_LEVEL_NOTICE);
	if (argc < 4) {
		fprintf(stderr, "usage: client_drive URL KEY.pem AGENT:UDID:NAME...\n");
		return 2;
	}
	if (cmdsig_signer_load(argv[2], &signer, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	d.loop = loop_new();
	o.url = argv[1];
	o.signer = signer;
	if (!d.loop || loop_add_timer(d.loop, 20000, on_timeout, &d) == 0 ||
	    client_new(d.loop, &o, &cb, &d, &d.client) < 0)
		goto out;
	for (int i = 3; i < argc; i++) {
		struct command cmd = { .issued_at_ms = now, .expires_at_ms = now + 300000 };
		char *s = strdup(argv[i]), *udid, *name;

		udid = s ? strchr(s, ':') : NULL;
		name = udid ? strchr(udid + 1, ':') : NULL;
		if (!name) {
			free(s);
			goto out;
		}
		*udid++ = '\0';
		*name++ = '\0';
		snprintf(cmd.agent, sizeof(cmd.agent), "%s", s);
		snprintf(cmd.udid, sizeof(cmd.udid), "%s", udid);
		snprintf(cmd.name, sizeof(cmd.name), "%s", name);
		free(s);
		if (client_new_cmd_id(cmd.cmd_id) < 0 || client_send(d.client, &cmd, 300) < 0)
			goto out;
		/* the same cmd_id twice while in flight is refused */
		if (client_send(d.client, &cmd, 300) != -EINVAL)
			goto out;
		printf("sent %s %s\n", cmd.cmd_id, cmd.agent);
		d.total++;
	}
	fflush(stdout);
	loop_run(d.loop);
out:
	/* nothing left to drain: client_free() dropped what Paho had posted (LSan checks) */
	d.client = client_free(d.client);
	loop_free(d.loop);
	cmdsig_signer_free(signer);
	return d.code;
}
