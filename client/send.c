/* SPDX-License-Identifier: MIT */
/*
 * send: `cradle-agent send` (and `cradle-send`), the command line over the client library
 * (client.h): one command, its results printed until a final state, the outcome as exit status.
 *
 * The library does the protocol (sign, subscribe before publish, correlate by cmd_id); this file
 * parses the options, prints, and owns the loop with the timeout timer and SIGINT/SIGTERM. At
 * the end client_free() destroys Paho and frees what it had posted, so the loop can go at once.
 */
#include "send.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "cmdsig.h"
#include "command.h"
#include "log.h"
#include "loop.h"
#include "parse.h"
#include "timefmt.h"
#include "topics.h"
#include "version.h"

#define SEND_EXIT_OK     0
#define SEND_EXIT_FAILED 1
#define SEND_EXIT_ERROR  2
#define SEND_TIMEOUT_MAX (7 * 24 * 3600)

struct send_ctx {
	struct loop *loop;
	struct client *client;
	bool finished;
	int exit_code;
	bool json;
	int ttl_s;
	struct command cmd;
};

/* "cradle-agent send" or "cradle-send": argv[0] is "send" for the agent's subcommand */
static const char *program(char **argv)
{
	return strcmp(argv[0], "send") == 0 ? "cradle-agent send" : "cradle-send";
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
	        "usage: %s --broker URL --agent ID --udid UDID [options] COMMAND\n"
	        "       %s --print-public-key --sign-key FILE\n"
	        "       %s --version | -h | --help\n"
	        "\n"
	        "Sends COMMAND (device.refresh, backup.icloud.enable, backup.local.start,\n"
	        "device.restart) to an agent and prints its results until a final state.\n"
	        "\n"
	        "  --broker URL      tcp://host:1883 or ssl://host:8883\n"
	        "  --agent ID        the agent id\n"
	        "  --udid UDID       the target device\n"
	        "  --param K=V       a command parameter (true/false, integer, else string); repeatable\n"
	        "  --ttl DURATION    command lifetime: MQTT message expiry and expires_at (300;\n"
	        "                    a bare number is seconds, or e.g. 30s, 5m, 1h30m)\n"
	        "  --timeout DURATION  give up waiting for a final state (60)\n"
	        "  --cmd-id UUID     use this cmd_id (to repeat a command) instead of a new one\n"
	        "  --json            print each result message as received, one JSON per line\n"
	        "  --sign-key FILE   sign the command with this Ed25519 private key (PEM)\n"
	        "  --print-public-key  print the base64 public key of --sign-key (for command_keys)\n"
	        "  --username NAME   MQTT user name; password from $CRADLE_MQTT_PASSWORD\n"
	        "  --cafile FILE  --cert FILE  --key FILE   TLS (ssl:// or mqtts://)\n"
	        "  --verbose         log connection steps on stderr\n"
	        "  --version         print the version and exit\n"
	        "  -h, --help        print this help and exit\n"
	        "\n"
	        "Exit status: 0 succeeded, 1 failed or rejected, 2 timeout, usage or broker error.\n",
	        prog, prog, prog);
}

/* ---- loop thread ---- */

static void finish(struct send_ctx *ctx, int code)
{
	if (ctx->finished)
		return;
	ctx->finished = true;
	ctx->exit_code = code;
	loop_stop(ctx->loop);
}

static void print_result(const struct send_ctx *ctx, const struct command_result *r,
                         const char *json)
{
	char ts[TIMEFMT_RFC3339_MAX];

	if (ctx->json) {
		printf("%s\n", json);
	} else {
		if (timefmt_rfc3339(r->ts_ms / 1000, ts, sizeof(ts)) < 0)
			snprintf(ts, sizeof(ts), "?");
		printf("%s %s", ts, command_status_str(r->status));
		if (r->status == COMMAND_STATUS_REJECTED)
			printf(" %s", command_reject_str(r->reason));
		if (r->status == COMMAND_STATUS_FAILED)
			printf(" %s", r->cause);
		if (r->progress >= 0)
			printf(" %d%%", r->progress);
		if (r->replay)
			printf(" (repeat of an earlier command)");
		if (r->detail[0])
			printf(": %s", r->detail);
		printf("\n");
	}
	fflush(stdout);
}

static void on_client_closed(struct client *c, const char *why, void *data)
{
	(void)c;
	log_error("send: %s", why);
	finish(data, SEND_EXIT_ERROR);
}

static void on_client_published(struct client *c, const char *cmd_id, int err, const char *why,
                                void *data)
{
	(void)c;
	if (err == 0)
		return;
	log_error("send: command '%s' not sent: %s", cmd_id, why ? why : "unknown error");
	finish(data, SEND_EXIT_ERROR);
}

static void on_client_result(struct client *c, const struct command_result *r, const char *json,
                             size_t len, void *data)
{
	struct send_ctx *ctx = data;

	(void)c;
	(void)len;
	if (ctx->finished)
		return;
	print_result(ctx, r, json);
	if (r->status == COMMAND_STATUS_SUCCEEDED)
		finish(ctx, SEND_EXIT_OK);
	else if (command_status_is_final(r->status))
		finish(ctx, SEND_EXIT_FAILED);
}

static void on_timeout(struct loop *loop, uint64_t id, void *data)
{
	struct send_ctx *ctx = data;

	(void)loop;
	(void)id;
	log_error("send: no final state for command '%s' before the timeout", ctx->cmd.cmd_id);
	finish(ctx, SEND_EXIT_ERROR);
}

static void on_signal(struct loop *loop, int signo, void *data)
{
	(void)loop;
	log_error("send: interrupted by signal %d", signo);
	finish(data, SEND_EXIT_ERROR);
}

/* ---- options ---- */

/* A duration (parse.h: a bare number is seconds, or 30s, 5m, 1h30m) of 1..max seconds. */
static int duration_in_range(const char *s, int max, int *ret)
{
	uint64_t v;

	if (parse_duration(s, &v) < 0 || v < 1 || v > (uint64_t)max)
		return -EINVAL;
	*ret = (int)v;
	return 0;
}

/* "k=v": true/false -> bool, a decimal integer -> int, anything else -> string. */
static int parse_param(const char *arg, struct command *cmd)
{
	const char *eq = strchr(arg, '=');
	struct command_param *p;
	char *end;
	long long v;
	size_t klen;

	if (!eq || cmd->n_params >= COMMAND_PARAMS_MAX)
		return -EINVAL;
	klen = (size_t)(eq - arg);
	if (klen == 0 || klen >= COMMAND_KEY_MAX || strlen(eq + 1) >= COMMAND_STR_MAX)
		return -EINVAL;
	p = &cmd->params[cmd->n_params];
	memset(p, 0, sizeof(*p));
	memcpy(p->key, arg, klen);
	if (command_param_get(cmd, p->key))
		return -EINVAL;
	if (strcmp(eq + 1, "true") == 0 || strcmp(eq + 1, "false") == 0) {
		p->type = COMMAND_PARAM_BOOL;
		p->b = eq[1] == 't';
	} else {
		errno = 0;
		v = strtoll(eq + 1, &end, 10);
		if (eq[1] && !*end && !errno && v >= -(1LL << 53) && v <= (1LL << 53)) {
			p->type = COMMAND_PARAM_INT;
			p->i = v;
		} else {
			p->type = COMMAND_PARAM_STRING;
			snprintf(p->s, sizeof(p->s), "%s", eq + 1);
		}
	}
	cmd->n_params++;
	return 0;
}

struct send_opts {
	const char *broker, *username, *cafile, *cert, *key;
	const char *sign_key; /* Ed25519 private key (PEM) to sign with; never the key itself */
	int timeout_s;
	bool verbose;
	bool print_public_key;
};

static int parse_args(int argc, char **argv, struct send_ctx *ctx, struct send_opts *o)
{
	static const struct option longopts[] = {
		{ "broker", required_argument, NULL, 'b' },
		{ "agent", required_argument, NULL, 'a' },
		{ "udid", required_argument, NULL, 'u' },
		{ "param", required_argument, NULL, 'p' },
		{ "ttl", required_argument, NULL, 't' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "cmd-id", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "username", required_argument, NULL, 'U' },
		{ "cafile", required_argument, NULL, 'C' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "sign-key", required_argument, NULL, 'S' },
		{ "print-public-key", no_argument, NULL, 'P' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct command *cmd = &ctx->cmd;
	int c;

	optind = 1;
	opterr = 1;
	while ((c = getopt_long(argc, argv, "b:a:u:p:t:T:i:jvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			o->broker = optarg;
			break;
		case 'a':
			if (!topics_agent_id_valid(optarg))
				return log_error_errno(-EINVAL, "send: bad agent id '%s'", optarg);
			snprintf(cmd->agent, sizeof(cmd->agent), "%s", optarg);
			break;
		case 'u':
			if (!topics_udid_valid(optarg))
				return log_error_errno(-EINVAL, "send: bad udid '%s'", optarg);
			snprintf(cmd->udid, sizeof(cmd->udid), "%s", optarg);
			break;
		case 'p':
			if (parse_param(optarg, cmd) < 0)
				return log_error_errno(-EINVAL, "send: bad --param '%s'", optarg);
			break;
		case 't':
			if (duration_in_range(optarg, CLIENT_TTL_MAX, &ctx->ttl_s) < 0)
				return log_error_errno(-EINVAL, "send: bad --ttl '%s'", optarg);
			break;
		case 'T':
			if (duration_in_range(optarg, SEND_TIMEOUT_MAX, &o->timeout_s) < 0)
				return log_error_errno(-EINVAL, "send: bad --timeout '%s'", optarg);
			break;
		case 'i':
			if (command_id_normalize(optarg, strlen(optarg), cmd->cmd_id) < 0)
				return log_error_errno(-EINVAL, "send: --cmd-id '%s' is not a UUID",
				                       optarg);
			break;
		case 'j':
			ctx->json = true;
			break;
		case 'U':
			o->username = optarg;
			break;
		case 'C':
			o->cafile = optarg;
			break;
		case 'c':
			o->cert = optarg;
			break;
		case 'k':
			o->key = optarg;
			break;
		case 'S':
			o->sign_key = optarg;
			break;
		case 'P':
			o->print_public_key = true;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout, program(argv));
			return 1;
		case 'V':
			/* the program, without the subcommand */
			printf("%s %s\n",
			       strcmp(argv[0], "send") == 0 ? "cradle-agent" : "cradle-send",
			       CRADLE_VERSION);
			return 1;
		default:
			usage(stderr, program(argv));
			return -EINVAL;
		}
	}
	if (o->print_public_key) {
		if (optind != argc || !o->sign_key) {
			log_error(
			        "send: --print-public-key takes --sign-key FILE and nothing else");
			return -EINVAL;
		}
		return 0;
	}
	if (optind != argc - 1 || !o->broker || !cmd->agent[0] || !cmd->udid[0]) {
		usage(stderr, program(argv));
		return -EINVAL;
	}
	if (strlen(argv[optind]) >= sizeof(cmd->name))
		return log_error_errno(-EINVAL, "send: command name too long");
	snprintf(cmd->name, sizeof(cmd->name), "%s", argv[optind]);
	return 0;
}

/* --print-public-key: the line to put into an agent's command_keys. */
static int print_public_key(const struct cmdsig_signer *signer)
{
	char text[CMDSIG_PUBKEY_B64_LEN + 1];

	cmdsig_pubkey_format(cmdsig_signer_pubkey(signer), text);
	printf("%s\n", text);
	fprintf(stderr, "key id %s\n", cmdsig_signer_pubkey(signer)->id);
	return fflush(stdout) == 0 ? SEND_EXIT_OK : SEND_EXIT_ERROR;
}

int send_main(int argc, char **argv)
{
	static const struct client_callbacks cb = {
		.closed = on_client_closed,
		.published = on_client_published,
		.result = on_client_result,
	};
	struct send_ctx *ctx = NULL;
	struct send_opts o = { .timeout_s = 60 };
	struct cmdsig_signer *signer = NULL;
	struct client_options copts = { 0 };
	int64_t now_ms = wall_now_ms();
	char err[CMDSIG_ERR_MAX];
	int r, code = SEND_EXIT_ERROR;

	if (log_get_level() > LOG_LEVEL_NOTICE)
		log_set_level(LOG_LEVEL_NOTICE);
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		goto out;
	ctx->ttl_s = 300;
	ctx->exit_code = SEND_EXIT_ERROR;
	r = parse_args(argc, argv, ctx, &o);
	if (r != 0) {
		code = r > 0 ? SEND_EXIT_OK : SEND_EXIT_ERROR;
		goto out;
	}
	if (o.verbose)
		log_set_level(LOG_LEVEL_DEBUG);
	if (o.sign_key && cmdsig_signer_load(o.sign_key, &signer, err, sizeof(err)) < 0) {
		log_error("send: %s", err);
		goto out;
	}
	if (o.print_public_key) {
		code = print_public_key(signer);
		goto out;
	}
	if (!signer)
		log_notice("send: the command is not signed (no --sign-key); agents that require "
		           "signed commands reject it as bad_signature");
	if (!ctx->cmd.cmd_id[0] && client_new_cmd_id(ctx->cmd.cmd_id) < 0) {
		log_error("send: cannot make a cmd_id");
		goto out;
	}
	ctx->cmd.issued_at_ms = now_ms;
	ctx->cmd.expires_at_ms = now_ms + (int64_t)ctx->ttl_s * 1000;
	{
		/* check what can be checked before connecting: usage errors publish nothing */
		char *payload = command_encode(&ctx->cmd);
		size_t len = payload ? strlen(payload) : 0;

		free(payload);
		if (!payload) {
			log_error("send: '%s' is not a valid command name", ctx->cmd.name);
			goto out;
		}
		if (len > COMMAND_PAYLOAD_MAX) {
			log_error("send: command over %d bytes", COMMAND_PAYLOAD_MAX);
			goto out;
		}
	}

	ctx->loop = loop_new();
	if (!ctx->loop)
		goto out;
	if (loop_add_timer(ctx->loop, (uint64_t)o.timeout_s * 1000, on_timeout, ctx) == 0 ||
	    loop_add_signal(ctx->loop, SIGINT, on_signal, ctx) < 0 ||
	    loop_add_signal(ctx->loop, SIGTERM, on_signal, ctx) < 0)
		goto out;
	fprintf(stderr, "cmd_id %s: %s for device %s on agent %s\n", ctx->cmd.cmd_id, ctx->cmd.name,
	        ctx->cmd.udid, ctx->cmd.agent);
	copts.url = o.broker;
	copts.username = o.username;
	copts.password = o.username ? getenv("CRADLE_MQTT_PASSWORD") : NULL;
	copts.cafile = o.cafile;
	copts.certfile = o.cert;
	copts.keyfile = o.key;
	copts.signer = signer;
	if (client_new(ctx->loop, &copts, &cb, ctx, &ctx->client) < 0)
		goto out;
	if (client_send(ctx->client, &ctx->cmd, ctx->ttl_s) < 0) {
		log_error("send: cannot send the command");
		goto out;
	}
	if (loop_run(ctx->loop) < 0)
		goto out;
	code = ctx->exit_code;
out:
	if (ctx) {
		ctx->finished = true;
		ctx->client = client_free(ctx->client);
		ctx->loop = loop_free(ctx->loop);
		free(ctx);
	}
	cmdsig_signer_free(signer);
	return code;
}
