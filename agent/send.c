/* SPDX-License-Identifier: MIT */
/*
 * send: `cradle-agent send`, one command through the broker and its results until a final state.
 *
 * The order matters: subscribe to the agent's result topic first (SUBACK), then publish the
 * command (QoS 1, never retained, MQTT 5 Message Expiry = ttl so a command for an offline agent
 * dies on the broker, Correlation Data = cmd_id), so no result can slip past between the two.
 * The result topic carries every command's results, so lines are filtered by cmd_id.
 *
 * Paho MQTTAsync calls back on its own threads; the callbacks only copy what they got and post it
 * to the common loop (loop_post), which owns all state, the timeout timer and SIGINT/SIGTERM.
 * At the end Paho is destroyed first and the loop is then drained, so no posted copy leaks.
 */
#include "send.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "command.h"
#include "log.h"
#include "loop.h"
#include "timefmt.h"
#include "topics.h"

#define SEND_EXIT_OK     0
#define SEND_EXIT_FAILED 1
#define SEND_EXIT_ERROR  2
#define SEND_PENDING_MAX 1024 /* posted, unprocessed Paho events; more are dropped */
#define SEND_TTL_MAX     (24 * 3600)
#define SEND_TIMEOUT_MAX (7 * 24 * 3600)

enum send_event_kind {
	SEND_EV_CONNECTED,
	SEND_EV_CONNECT_FAILED,
	SEND_EV_LOST,
	SEND_EV_SUBSCRIBED,
	SEND_EV_SUBSCRIBE_FAILED,
	SEND_EV_PUBLISHED,
	SEND_EV_PUBLISH_FAILED,
	SEND_EV_MESSAGE,
	SEND_EV_DRAIN, /* last item after Paho is gone: stop the loop */
};

struct send_ctx;

/* A copy of what a Paho callback saw, owned by the loop once posted. */
struct send_event {
	struct send_ctx *ctx;
	enum send_event_kind kind;
	int code; /* reason code or Paho return code */
	char text[160];
	char *payload; /* SEND_EV_MESSAGE */
	size_t len;
};

struct send_ctx {
	struct loop *loop;
	MQTTAsync client;
	atomic_int pending;
	bool finished;
	int exit_code;
	bool json;
	int ttl_s;
	struct command cmd;
	char *payload;
	char topic_cmd[TOPICS_MAX];
	char topic_result[TOPICS_MAX];
};

static void usage(FILE *f)
{
	fputs("usage: cradle-agent send --broker URL --agent ID --udid UDID [options] COMMAND\n"
	      "\n"
	      "Sends COMMAND (device.refresh, backup.icloud.enable, backup.local.start,\n"
	      "device.restart) to an agent and prints its results until a final state.\n"
	      "\n"
	      "  --broker URL      tcp://host:1883 or ssl://host:8883\n"
	      "  --agent ID        the agent id\n"
	      "  --udid UDID       the target device\n"
	      "  --param K=V       a command parameter (true/false, integer, else string); repeatable\n"
	      "  --ttl SECONDS     command lifetime: MQTT message expiry and expires_at (300)\n"
	      "  --timeout SECONDS give up waiting for a final state (60)\n"
	      "  --cmd-id UUID     use this cmd_id (to repeat a command) instead of a new one\n"
	      "  --json            print each result message as received, one JSON per line\n"
	      "  --username NAME   MQTT user name; password from $CRADLE_MQTT_PASSWORD\n"
	      "  --cafile FILE  --cert FILE  --key FILE   TLS (ssl:// or mqtts://)\n"
	      "  --verbose         log connection steps on stderr\n"
	      "\n"
	      "Exit status: 0 succeeded, 1 failed or rejected, 2 timeout, usage or broker error.\n",
	      f);
}

/* ---- Paho threads: copy and post, nothing else ---- */

static void send_on_event(struct loop *loop, void *data);

static void post(struct send_ctx *ctx, enum send_event_kind kind, int code, const char *text,
                 const void *payload, size_t len)
{
	struct send_event *ev;

	if (atomic_fetch_add(&ctx->pending, 1) >= SEND_PENDING_MAX)
		goto drop;
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		goto drop;
	ev->ctx = ctx;
	ev->kind = kind;
	ev->code = code;
	if (text)
		snprintf(ev->text, sizeof(ev->text), "%s", text);
	if (payload) {
		ev->payload = malloc(len + 1);
		if (!ev->payload) {
			free(ev);
			goto drop;
		}
		memcpy(ev->payload, payload, len);
		ev->payload[len] = '\0';
		ev->len = len;
	}
	if (loop_post(ctx->loop, send_on_event, ev) < 0) {
		free(ev->payload);
		free(ev);
		goto drop;
	}
	return;
drop:
	atomic_fetch_sub(&ctx->pending, 1);
}

static void on_connect(void *context, MQTTAsync_successData5 *response)
{
	(void)response;
	post(context, SEND_EV_CONNECTED, 0, NULL, NULL, 0);
}

static void on_connect_failure(void *context, MQTTAsync_failureData5 *response)
{
	post(context, SEND_EV_CONNECT_FAILED, response ? response->code : -1,
	     response && response->message ? response->message : NULL, NULL, 0);
}

static void on_connection_lost(void *context, char *cause)
{
	post(context, SEND_EV_LOST, 0, cause, NULL, 0);
}

static void on_subscribe(void *context, MQTTAsync_successData5 *response)
{
	/* for one topic the granted QoS or the failure is in reasonCode */
	int rc = response ? (int)response->reasonCode : 0;

	post(context, rc >= 0x80 ? SEND_EV_SUBSCRIBE_FAILED : SEND_EV_SUBSCRIBED, rc, NULL, NULL,
	     0);
}

static void on_subscribe_failure(void *context, MQTTAsync_failureData5 *response)
{
	post(context, SEND_EV_SUBSCRIBE_FAILED, response ? (int)response->reasonCode : -1,
	     response && response->message ? response->message : NULL, NULL, 0);
}

static void on_publish(void *context, MQTTAsync_successData5 *response)
{
	int rc = response ? (int)response->reasonCode : 0;

	post(context, rc >= 0x80 ? SEND_EV_PUBLISH_FAILED : SEND_EV_PUBLISHED, rc, NULL, NULL, 0);
}

static void on_publish_failure(void *context, MQTTAsync_failureData5 *response)
{
	post(context, SEND_EV_PUBLISH_FAILED, response ? (int)response->reasonCode : -1,
	     response && response->message ? response->message : NULL, NULL, 0);
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct send_ctx *ctx = context;

	(void)topic_len;
	/* results are small; anything bigger cannot be one and is not copied */
	if (m->payloadlen >= 0 && m->payloadlen <= COMMAND_PAYLOAD_MAX)
		post(ctx, SEND_EV_MESSAGE, m->retained, NULL, m->payload, (size_t)m->payloadlen);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	return 1;
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

static int subscribe(struct send_ctx *ctx)
{
	MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
	int rc;

	opts.onSuccess5 = on_subscribe;
	opts.onFailure5 = on_subscribe_failure;
	opts.context = ctx;
	rc = MQTTAsync_subscribe(ctx->client, ctx->topic_result, 1, &opts);
	if (rc != MQTTASYNC_SUCCESS)
		log_error("send: subscribe to '%s' failed: %s", ctx->topic_result,
		          MQTTAsync_strerror(rc));
	return rc == MQTTASYNC_SUCCESS ? 0 : -EIO;
}

static int publish(struct send_ctx *ctx)
{
	MQTTAsync_responseOptions opts = MQTTAsync_responseOptions_initializer;
	MQTTAsync_message msg = MQTTAsync_message_initializer;
	MQTTProperty p;
	int rc = MQTTASYNC_SUCCESS;

	msg.payload = ctx->payload;
	msg.payloadlen = (int)strlen(ctx->payload);
	msg.qos = 1;
	msg.retained = 0;

	p.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL;
	p.value.integer4 = (unsigned)ctx->ttl_s;
	rc = MQTTProperties_add(&msg.properties, &p);
	if (rc == 0) {
		p.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA;
		p.value.data.data = ctx->cmd.cmd_id;
		p.value.data.len = (int)strlen(ctx->cmd.cmd_id);
		rc = MQTTProperties_add(&msg.properties, &p);
	}
	if (rc == 0) {
		p.identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC;
		p.value.data.data = ctx->topic_result;
		p.value.data.len = (int)strlen(ctx->topic_result);
		rc = MQTTProperties_add(&msg.properties, &p);
	}
	if (rc == 0) {
		p.identifier = MQTTPROPERTY_CODE_CONTENT_TYPE;
		p.value.data.data = (char *)(uintptr_t) "application/json";
		p.value.data.len = (int)strlen("application/json");
		rc = MQTTProperties_add(&msg.properties, &p);
	}
	if (rc == 0) {
		p.identifier = MQTTPROPERTY_CODE_PAYLOAD_FORMAT_INDICATOR;
		p.value.byte = 1; /* UTF-8 */
		rc = MQTTProperties_add(&msg.properties, &p);
	}
	if (rc != 0) {
		MQTTProperties_free(&msg.properties);
		log_error("send: cannot set MQTT properties");
		return -ENOMEM;
	}
	opts.onSuccess5 = on_publish;
	opts.onFailure5 = on_publish_failure;
	opts.context = ctx;
	rc = MQTTAsync_sendMessage(ctx->client, ctx->topic_cmd, &msg, &opts);
	MQTTProperties_free(&msg.properties);
	if (rc != MQTTASYNC_SUCCESS) {
		log_error("send: publish to '%s' failed: %s", ctx->topic_cmd,
		          MQTTAsync_strerror(rc));
		return -EIO;
	}
	return 0;
}

static void print_result(const struct send_ctx *ctx, const struct command_result *r,
                         const struct send_event *ev)
{
	char ts[TIMEFMT_RFC3339_MAX];

	if (ctx->json) {
		printf("%s\n", ev->payload);
	} else {
		if (timefmt_rfc3339(r->ts_ms / 1000, ts, sizeof(ts)) < 0)
			strcpy(ts, "?");
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

static void handle_message(struct send_ctx *ctx, const struct send_event *ev)
{
	struct command_result r;
	char err[COMMAND_ERR_MAX];

	if (ev->code) /* retained: not a live result of this command */
		return;
	if (command_result_decode(ev->payload, ev->len, &r, err, sizeof(err)) < 0) {
		log_debug("send: ignoring a result message that does not decode: %s", err);
		return;
	}
	if (strcmp(r.cmd_id, ctx->cmd.cmd_id) != 0 || strcmp(r.agent, ctx->cmd.agent) != 0)
		return;
	print_result(ctx, &r, ev);
	if (r.status == COMMAND_STATUS_SUCCEEDED)
		finish(ctx, SEND_EXIT_OK);
	else if (command_status_is_final(r.status))
		finish(ctx, SEND_EXIT_FAILED);
}

static void send_on_event(struct loop *loop, void *data)
{
	struct send_event *ev = data;
	struct send_ctx *ctx = ev->ctx;

	(void)loop;
	atomic_fetch_sub(&ctx->pending, 1);
	if (ev->kind == SEND_EV_DRAIN) {
		loop_stop(ctx->loop);
		goto out;
	}
	if (ctx->finished)
		goto out;
	switch (ev->kind) {
	case SEND_EV_CONNECTED:
		log_debug("send: connected");
		if (subscribe(ctx) < 0)
			finish(ctx, SEND_EXIT_ERROR);
		break;
	case SEND_EV_CONNECT_FAILED:
		log_error("send: cannot connect to the broker: %s (%d)",
		          ev->text[0] ? ev->text : "no reason given", ev->code);
		finish(ctx, SEND_EXIT_ERROR);
		break;
	case SEND_EV_LOST:
		log_error("send: connection to the broker lost%s%s", ev->text[0] ? ": " : "",
		          ev->text);
		finish(ctx, SEND_EXIT_ERROR);
		break;
	case SEND_EV_SUBSCRIBED:
		log_debug("send: subscribed to '%s'", ctx->topic_result);
		if (publish(ctx) < 0)
			finish(ctx, SEND_EXIT_ERROR);
		break;
	case SEND_EV_SUBSCRIBE_FAILED:
		log_error("send: the broker refused the subscription to '%s' (reason 0x%02x)",
		          ctx->topic_result, (unsigned)ev->code);
		finish(ctx, SEND_EXIT_ERROR);
		break;
	case SEND_EV_PUBLISHED:
		log_debug("send: command '%s' delivered to the broker", ctx->cmd.cmd_id);
		break;
	case SEND_EV_PUBLISH_FAILED:
		log_error("send: the broker refused the command (reason 0x%02x)%s%s",
		          (unsigned)ev->code, ev->text[0] ? ": " : "", ev->text);
		finish(ctx, SEND_EXIT_ERROR);
		break;
	case SEND_EV_MESSAGE:
		handle_message(ctx, ev);
		break;
	case SEND_EV_DRAIN:
		break;
	}
out:
	free(ev->payload);
	free(ev);
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

static int parse_seconds(const char *s, int max, int *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 1 || v > max)
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
			strcpy(p->s, eq + 1);
		}
	}
	cmd->n_params++;
	return 0;
}

static int new_uuid(char *out)
{
	uint8_t b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
		return -EIO;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	command_id_format(b, out);
	return 0;
}

struct send_opts {
	const char *broker, *username, *cafile, *cert, *key;
	int timeout_s;
	bool verbose;
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
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
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
			if (parse_seconds(optarg, SEND_TTL_MAX, &ctx->ttl_s) < 0)
				return log_error_errno(-EINVAL, "send: bad --ttl '%s'", optarg);
			break;
		case 'T':
			if (parse_seconds(optarg, SEND_TIMEOUT_MAX, &o->timeout_s) < 0)
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
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind != argc - 1 || !o->broker || !cmd->agent[0] || !cmd->udid[0]) {
		usage(stderr);
		return -EINVAL;
	}
	if (strlen(argv[optind]) >= sizeof(cmd->name))
		return log_error_errno(-EINVAL, "send: command name too long");
	strcpy(cmd->name, argv[optind]);
	return 0;
}

static int connect_broker(struct send_ctx *ctx, const struct send_opts *o)
{
	MQTTAsync_createOptions copts = MQTTAsync_createOptions_initializer5;
	MQTTAsync_connectOptions conn = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	char client_id[64];
	int rc;

	snprintf(client_id, sizeof(client_id), "cradle-send-%.8s-%ld", ctx->cmd.cmd_id,
	         (long)getpid());
	rc = MQTTAsync_createWithOptions(&ctx->client, o->broker, client_id,
	                                 MQTTCLIENT_PERSISTENCE_NONE, NULL, &copts);
	if (rc != MQTTASYNC_SUCCESS) {
		ctx->client = NULL;
		log_error("send: bad broker '%s': %s", o->broker, MQTTAsync_strerror(rc));
		return -EINVAL;
	}
	rc = MQTTAsync_setCallbacks(ctx->client, ctx, on_connection_lost, on_message, NULL);
	if (rc != MQTTASYNC_SUCCESS)
		goto fail;
	conn.cleanstart = 1;
	conn.keepAliveInterval = 30;
	conn.connectTimeout = 10;
	conn.automaticReconnect = 0;
	conn.onSuccess5 = on_connect;
	conn.onFailure5 = on_connect_failure;
	conn.context = ctx;
	conn.username = o->username;
	conn.password = o->username ? getenv("CRADLE_MQTT_PASSWORD") : NULL;
	if (o->cafile || o->cert || strncmp(o->broker, "ssl://", 6) == 0 ||
	    strncmp(o->broker, "mqtts://", 8) == 0) {
		ssl.trustStore = o->cafile;
		ssl.keyStore = o->cert;
		ssl.privateKey = o->key;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		conn.ssl = &ssl;
	}
	rc = MQTTAsync_connect(ctx->client, &conn);
	if (rc != MQTTASYNC_SUCCESS)
		goto fail;
	return 0;
fail:
	log_error("send: cannot connect to '%s': %s", o->broker, MQTTAsync_strerror(rc));
	return -EIO;
}

/* Paho is gone: run the loop until a last item, so every copy it posted is freed. */
static void drain(struct send_ctx *ctx)
{
	struct send_event *ev = calloc(1, sizeof(*ev));

	ctx->finished = true;
	if (ev) {
		ev->ctx = ctx;
		ev->kind = SEND_EV_DRAIN;
		atomic_fetch_add(&ctx->pending, 1);
		if (loop_post(ctx->loop, send_on_event, ev) == 0)
			(void)loop_run(ctx->loop);
		else
			free(ev);
	}
	ctx->loop = loop_free(ctx->loop);
}

int send_main(int argc, char **argv)
{
	struct send_ctx *ctx = NULL;
	struct send_opts o = { .timeout_s = 60 };
	int64_t now_ms = wall_now_ms();
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
	if (!ctx->cmd.cmd_id[0] && new_uuid(ctx->cmd.cmd_id) < 0) {
		log_error("send: cannot make a cmd_id");
		goto out;
	}
	ctx->cmd.issued_at_ms = now_ms;
	ctx->cmd.expires_at_ms = now_ms + (int64_t)ctx->ttl_s * 1000;
	ctx->payload = command_encode(&ctx->cmd);
	if (!ctx->payload) {
		log_error("send: '%s' is not a valid command name", ctx->cmd.name);
		goto out;
	}
	if (strlen(ctx->payload) > COMMAND_PAYLOAD_MAX) {
		log_error("send: command over %d bytes", COMMAND_PAYLOAD_MAX);
		goto out;
	}
	if (topics_build(ctx->topic_cmd, sizeof(ctx->topic_cmd), TOPICS_CMD, ctx->cmd.agent, NULL) <
	            0 ||
	    topics_build(ctx->topic_result, sizeof(ctx->topic_result), TOPICS_RESULT,
	                 ctx->cmd.agent, NULL) < 0)
		goto out;

	ctx->loop = loop_new();
	if (!ctx->loop)
		goto out;
	if (loop_add_timer(ctx->loop, (uint64_t)o.timeout_s * 1000, on_timeout, ctx) == 0 ||
	    loop_add_signal(ctx->loop, SIGINT, on_signal, ctx) < 0 ||
	    loop_add_signal(ctx->loop, SIGTERM, on_signal, ctx) < 0)
		goto out;
	fprintf(stderr, "cmd_id %s: %s for device %s on agent %s\n", ctx->cmd.cmd_id, ctx->cmd.name,
	        ctx->cmd.udid, ctx->cmd.agent);
	if (connect_broker(ctx, &o) < 0)
		goto out;
	if (loop_run(ctx->loop) < 0)
		goto out;
	code = ctx->exit_code;
out:
	if (ctx) {
		if (ctx->client) {
			MQTTAsync_disconnectOptions dopts =
			        MQTTAsync_disconnectOptions_initializer5;

			dopts.timeout = 1000;
			if (MQTTAsync_isConnected(ctx->client))
				MQTTAsync_disconnect(ctx->client, &dopts);
			MQTTAsync_destroy(&ctx->client);
		}
		if (ctx->loop)
			drain(ctx);
		free(ctx->payload);
		free(ctx);
	}
	return code;
}
