/* SPDX-License-Identifier: MIT */
/*
 * cmdsend: the dashboard's command sender (cmdsend.h). HTTP workers hand a stored command over
 * through a bounded mailbox; the loop thread passes it to the command client (client/client.h),
 * which signs, subscribes to the agent's result topic and publishes with expiry and correlation
 * data. Results are ingest's: the client's own result callback is not needed here.
 *
 * The client library does not reconnect. When its connection fails or is lost, the client is
 * freed and a new one is made after a backoff (1 s doubling to 30 s). A command handed over but
 * not yet acknowledged by the broker (PUBACK) is kept and sent again on the next connection
 * while it has not expired; the agent's command table answers a repeated cmd_id from its record,
 * so a command that did get through before the connection dropped never runs twice. New
 * commands are refused with -ENOTCONN while there is no connection, so the API can say so at
 * once instead of promising a command that may never leave.
 *
 * The signing key (cfg->command_key) is an Ed25519 PEM file as `openssl genpkey -algorithm
 * ed25519` writes it; when missing it is created (mode 0600, replaced atomically) on first use.
 */
#include "cmdsend.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "cmdsig.h"
#include "command.h"
#include "config.h"
#include "durable.h"
#include "log.h"
#include "loop.h"

#define CMDSEND_MAILBOX_MAX 256  /* commands waiting for the loop thread */
#define CMDSEND_PENDING_MAX 1024 /* commands not yet acknowledged by the broker */
#define CMDSEND_BACKOFF_MIN 1000 /* ms */
#define CMDSEND_BACKOFF_MAX 30000

struct cmdsend_pending {
	struct command cmd;
	uint64_t gen; /* client generation it was handed to; 0 = none yet */
};

struct cmdsend {
	struct loop *loop;
	const struct dash_config *cfg;
	struct cmdsig_signer *signer;
	struct loop_mailbox *mb;
	struct client *client;
	uint64_t gen; /* of the current client */
	atomic_bool connected;
	uint64_t retry_timer;
	uint64_t pump_timer; /* sends more pending commands after an ack */
	size_t n_inflight;   /* handed to the current client, not yet acknowledged */
	uint64_t backoff_ms;
	char client_id[192];
	struct cmdsend_pending *pending;
	size_t n_pending;
	/* submitted and not yet acknowledged (mailbox + pending): cmdsend_submit refuses more than
	 * CMDSEND_PENDING_MAX with -ENOBUFS, so a caller (a bulk job) learns to try again later
	 * instead of having its command dropped on the loop thread after it was accepted */
	atomic_size_t held;
};

/* ---- the signing key ---- */

/* Creates the directory holding path when it is missing (one level, 0700). */
static int make_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int key_create(const char *path)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;
	int r = -EIO;

	if (!pkey || !bio || !PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)) {
		ERR_clear_error();
		log_error("cmdsend: cannot generate a signing key");
		goto out;
	}
	len = BIO_get_mem_data(bio, &data);
	if (len <= 0)
		goto out;
	r = make_parent(path);
	if (r < 0) {
		log_error_errno(r, "cmdsend: cannot create the directory of '%s'", path);
		goto out;
	}
	r = durable_replace(path, data, (size_t)len, 0600);
	if (r < 0)
		log_error_errno(r, "cmdsend: cannot write the signing key '%s'", path);
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return r;
}

/* Loads cfg->command_key, creating it first when it does not exist. 0 or -errno (logged). */
static int key_load(const struct dash_config *cfg, struct cmdsig_signer **ret)
{
	char err[CMDSIG_ERR_MAX + PATH_MAX];
	char pub[CMDSIG_PUBKEY_B64_LEN + 1];
	int r;

	if (!cfg->command_key[0]) {
		log_error("cmdsend: command_key is not set");
		return -EINVAL;
	}
	r = cmdsig_signer_load(cfg->command_key, ret, err, sizeof(err));
	if (r != -ENOENT) {
		if (r < 0)
			log_error("cmdsend: %s", err);
		return r;
	}
	r = key_create(cfg->command_key);
	if (r < 0)
		return r;
	r = cmdsig_signer_load(cfg->command_key, ret, err, sizeof(err));
	if (r < 0) {
		log_error("cmdsend: %s", err);
		return r;
	}
	cmdsig_pubkey_format(cmdsig_signer_pubkey(*ret), pub);
	log_notice("cmdsend: created the command signing key '%s'; agents trust it with "
	           "`command_keys %s`",
	           cfg->command_key, pub);
	return 0;
}

int cmdsend_key_public(const struct dash_config *cfg, FILE *out)
{
	struct cmdsig_signer *signer = NULL;
	char pub[CMDSIG_PUBKEY_B64_LEN + 1];
	int r = key_load(cfg, &signer);

	if (r < 0) {
		fprintf(stderr, "cannot load or create the command key '%s': %s\n",
		        cfg->command_key, strerror(-r));
		return r;
	}
	cmdsig_pubkey_format(cmdsig_signer_pubkey(signer), pub);
	fprintf(out, "%s\n", pub);
	cmdsig_signer_free(signer);
	return fflush(out) == 0 ? 0 : -EIO;
}

/* ---- loop thread ---- */

static void connect_now(struct cmdsend *c);

static void pending_remove(struct cmdsend *c, size_t i)
{
	c->pending[i] = c->pending[--c->n_pending];
	atomic_fetch_sub(&c->held, 1);
}

static ssize_t pending_find(struct cmdsend *c, const char *cmd_id)
{
	for (size_t i = 0; i < c->n_pending; i++)
		if (!strcmp(c->pending[i].cmd.cmd_id, cmd_id))
			return (ssize_t)i;
	return -1;
}

/* Hands pending entry i to the current client. false when it was dropped (i now holds the next
 * entry). */
static bool pending_send(struct cmdsend *c, size_t i)
{
	struct cmdsend_pending *p = &c->pending[i];
	int64_t left_ms = p->cmd.expires_at_ms - wall_now_ms();
	int ttl, r;

	if (left_ms < 1000) {
		log_warn("cmdsend: command %s (%s to %s) expired before the broker took it",
		         p->cmd.cmd_id, p->cmd.name, p->cmd.udid);
		pending_remove(c, i);
		return false;
	}
	ttl = (int)(left_ms / 1000 > CLIENT_TTL_MAX ? CLIENT_TTL_MAX : left_ms / 1000);
	r = client_send(c->client, &p->cmd, ttl);
	if (r == -ENOTCONN)
		return true; /* closing: the next client sends it */
	if (r < 0) {
		log_error_errno(r, "cmdsend: command %s (%s to %s) cannot be sent", p->cmd.cmd_id,
		                p->cmd.name, p->cmd.udid);
		pending_remove(c, i);
		return false;
	}
	p->gen = c->gen;
	c->n_inflight++;
	return true;
}

/*
 * Commands handed to Paho and not yet acknowledged, at most: the broker's Receive Maximum
 * (mosquitto's default: 20). Beyond it Paho queues publishes and sends them from its own timer,
 * about 20 a second (bench/jobs); the rest wait in pending and go out as acks return.
 */
static bool room(struct cmdsend *c)
{
	return c->n_inflight < client_receive_maximum(c->client);
}

/* Hands pending commands not yet with the current client to it, as far as there is room. */
static void pump(struct cmdsend *c)
{
	if (!c->client || !atomic_load(&c->connected))
		return;
	for (size_t i = 0; i < c->n_pending && room(c);) {
		if (c->pending[i].gen == c->gen || pending_send(c, i))
			i++;
	}
}

static void on_pump(struct loop *loop, uint64_t id, void *data)
{
	struct cmdsend *c = data;

	(void)loop;
	(void)id;
	c->pump_timer = 0;
	pump(c);
}

static void on_connected(struct client *cl, void *data)
{
	struct cmdsend *c = data;

	(void)cl;
	log_info("cmdsend: connected to %s", c->cfg->broker_url);
	c->backoff_ms = CMDSEND_BACKOFF_MIN;
	atomic_store(&c->connected, true);
	c->n_inflight = 0; /* a new client: nothing handed to it yet */
	pump(c);
}

static void on_retry(struct loop *loop, uint64_t id, void *data)
{
	struct cmdsend *c = data;

	(void)loop;
	(void)id;
	c->retry_timer = 0;
	connect_now(c);
}

static void schedule_retry(struct cmdsend *c)
{
	if (c->retry_timer)
		return;
	c->retry_timer = loop_add_timer(c->loop, c->backoff_ms, on_retry, c);
	c->backoff_ms *= 2;
	if (c->backoff_ms > CMDSEND_BACKOFF_MAX)
		c->backoff_ms = CMDSEND_BACKOFF_MAX;
}

static void on_closed(struct client *cl, const char *why, void *data)
{
	struct cmdsend *c = data;

	log_warn("cmdsend: broker connection closed (%s); reconnecting in %llu ms", why,
	         (unsigned long long)c->backoff_ms);
	atomic_store(&c->connected, false);
	client_free(cl);
	c->client = NULL;
	schedule_retry(c);
}

static void on_published(struct client *cl, const char *cmd_id, int err, const char *why,
                         void *data)
{
	struct cmdsend *c = data;
	ssize_t i = pending_find(c, cmd_id);

	/* results are ingest's: the client need not follow this command any longer */
	client_forget(cl, cmd_id);
	if (i >= 0 && c->pending[i].gen == c->gen && c->n_inflight > 0)
		c->n_inflight--;
	/* room for more: sent from the loop, not from inside the client's callback */
	if (!c->pump_timer && c->n_pending > 0)
		c->pump_timer = loop_add_timer(c->loop, 0, on_pump, c);
	if (err == -EIO)
		return; /* not handed to Paho: kept for the next connection */
	if (i >= 0)
		pending_remove(c, (size_t)i);
	if (err)
		log_error("cmdsend: the broker refused command %s: %s", cmd_id,
		          why ? why : "no reason given");
}

static void connect_now(struct cmdsend *c)
{
	const struct dash_config *cfg = c->cfg;
	struct client_options o = {
		.url = cfg->broker_url,
		.client_id = c->client_id[0] ? c->client_id : NULL,
		.username = cfg->mqtt_username[0] ? cfg->mqtt_username : NULL,
		.password = cfg->mqtt_password[0] ? cfg->mqtt_password : NULL,
		.cafile = cfg->mqtt_cafile[0] ? cfg->mqtt_cafile : NULL,
		.certfile = cfg->mqtt_certfile[0] ? cfg->mqtt_certfile : NULL,
		.keyfile = cfg->mqtt_keyfile[0] ? cfg->mqtt_keyfile : NULL,
		.signer = c->signer,
	};
	struct client_callbacks cb = {
		.connected = on_connected,
		.closed = on_closed,
		.published = on_published,
	};
	int r = client_new(c->loop, &o, &cb, c, &c->client);

	if (r < 0) {
		c->client = NULL;
		log_warn_errno(r, "cmdsend: cannot start a broker connection; retrying in %llu ms",
		               (unsigned long long)c->backoff_ms);
		schedule_retry(c);
		return;
	}
	c->gen++;
}

static void deliver(struct loop *loop, void *msg, void *ctx)
{
	struct cmdsend *c = ctx;
	struct command *cmd = msg;
	size_t i;

	(void)loop;
	if (c->n_pending == CMDSEND_PENDING_MAX) {
		log_error("cmdsend: %d commands wait for the broker; command %s dropped",
		          CMDSEND_PENDING_MAX, cmd->cmd_id);
		atomic_fetch_sub(&c->held, 1);
		free(cmd);
		return;
	}
	i = c->n_pending++;
	c->pending[i].cmd = *cmd;
	c->pending[i].gen = 0;
	free(cmd);
	if (c->client && atomic_load(&c->connected) && room(c))
		pending_send(c, i);
}

static void overflow(struct loop *loop, uint64_t n, void *ctx)
{
	(void)loop;
	(void)ctx;
	log_error("cmdsend: %llu commands were refused (too many waiting)", (unsigned long long)n);
}

int cmdsend_new(struct loop *loop, const struct dash_config *cfg, struct cmdsend **ret)
{
	static const struct loop_mailbox_ops ops = { .deliver = deliver, .overflow = overflow };
	struct cmdsend *c = calloc(1, sizeof(*c));
	int r = -ENOMEM;

	if (!c)
		goto fail;
	c->loop = loop;
	c->cfg = cfg;
	c->backoff_ms = CMDSEND_BACKOFF_MIN;
	atomic_init(&c->connected, false);
	/* the ingest connection uses mqtt_client_id: a second connection with the same id would
	 * throw it off the broker */
	if (cfg->mqtt_client_id[0])
		snprintf(c->client_id, sizeof(c->client_id), "%s-cmd", cfg->mqtt_client_id);
	c->pending = calloc(CMDSEND_PENDING_MAX, sizeof(*c->pending));
	if (!c->pending)
		goto fail;
	r = key_load(cfg, &c->signer);
	if (r < 0)
		goto fail;
	c->mb = loop_mailbox_new(loop, CMDSEND_MAILBOX_MAX, &ops, c);
	if (!c->mb) {
		r = -ENOMEM;
		goto fail;
	}
	connect_now(c);
	*ret = c;
	return 0;
fail:
	cmdsend_free(c);
	*ret = NULL;
	return r;
}

struct cmdsend *cmdsend_free(struct cmdsend *c)
{
	if (!c)
		return NULL;
	if (c->retry_timer)
		loop_cancel_timer(c->loop, c->retry_timer);
	if (c->pump_timer)
		loop_cancel_timer(c->loop, c->pump_timer);
	client_free(c->client);
	loop_mailbox_free(c->mb);
	if (c->n_pending)
		log_warn(
		        "cmdsend: %zu commands were not acknowledged by the broker before the stop",
		        c->n_pending);
	cmdsig_signer_free(c->signer);
	free(c->pending);
	free(c);
	return NULL;
}

/* ---- any thread ---- */

int cmdsend_submit(struct cmdsend *c, const struct command *cmd, int ttl_s)
{
	struct command *copy;
	int r;

	(void)ttl_s; /* the expiry is cmd->expires_at_ms: a resend uses what is left of it */
	if (!c || !atomic_load(&c->connected))
		return -ENOTCONN;
	if (atomic_fetch_add(&c->held, 1) >= CMDSEND_PENDING_MAX) {
		atomic_fetch_sub(&c->held, 1);
		return -ENOBUFS;
	}
	copy = malloc(sizeof(*copy));
	if (!copy) {
		atomic_fetch_sub(&c->held, 1);
		return -ENOMEM;
	}
	*copy = *cmd;
	r = loop_mailbox_post(c->mb, copy);
	if (r < 0)
		atomic_fetch_sub(&c->held, 1);
	return r;
}
