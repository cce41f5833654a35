// SPDX-License-Identifier: MIT
/*
 * devport: connections to a simulated device's ports after a usbmuxd Connect.
 *
 * Every connection reads raw bytes into a bounded buffer. With TLS on, raw bytes go into the
 * SSL object's memory read BIO and decrypted bytes come out into the input buffer; whatever
 * SSL writes lands in its memory write BIO and is moved to the bounded output buffer. Memory
 * BIOs (rather than SSL_set_fd) are what let lockdownd switch TLS on in the middle of a
 * plaintext stream (StartSession) and off again (StopSession, docs/device-protocols.md): the
 * bytes after the client's close_notify stay in the read BIO and are handed back as plaintext.
 * (We send no close_notify of our own at StopSession: see devport_stop_tls.)
 *
 * Lifetime: a connection is destroyed only at the end of the callback that runs it (fd event
 * or timer), never under a service's feet; svc_close() and errors just mark it. Service ports:
 * the 1.3.0 tools close lockdown before connecting to the port StartService returned, so the
 * port is a reservation on the device with an expiry, consumed by the first Connect.
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "crypto.h"
#include "devport.h"
#include "log.h"
#include "loop.h"
#include "outbuf.h"
#include "sim.h"
#include "svc.h"

#define DEVPORT_READ_CHUNK  (64u * 1024)
#define DEVPORT_READ_BUDGET (1u << 20) /* per wakeup, so one busy client cannot starve others */
#define DEVPORT_PORT_FIRST  49152

enum devport_tls {
	DEVPORT_TLS_OFF,
	DEVPORT_TLS_HANDSHAKE,
	DEVPORT_TLS_ON,
	DEVPORT_TLS_STOPPING, /* StopSession answered; waiting for the client's close_notify */
};

struct devport_resv {
	uint16_t port;
	const struct svc_ops *ops;
	uint64_t expires_ms;
};

struct devport_state {
	struct svc_conn *conns; /* doubly linked */
	int n_conns;
	struct devport_resv resv[DEVPORT_RESV_MAX];
	int n_resv;
	uint16_t next_port;
	char trusted[DEVPORT_TRUST_MAX][64];
	int n_trusted;
};

struct svc_timer {
	struct svc_timer *next;
	struct svc_conn *c;
	uint64_t id;
	svc_timer_fn fn;
};

struct svc_conn {
	struct svc_conn *prev, *next;
	struct sim *sim;
	struct sim_device *dev;
	int fd;
	uint16_t port;
	const struct svc_ops *ops;
	void *state;
	uint8_t *in;
	size_t in_len, in_cap;
	struct outbuf out; /* raw bytes for the socket (TLS records when TLS is on) */
	SSL *ssl;
	BIO *rbio, *wbio; /* owned by ssl */
	enum devport_tls tls;
	bool tls_start; /* devport_start_tls() during input(): switch after it returns */
	bool opened;    /* ops->open ran (so ops->close must) */
	bool closing;   /* svc_close(): flush, then destroy */
	bool dead;      /* destroy at the end of the current callback */
	bool eof;       /* the client closed its side */
	int depth;      /* callbacks running on this connection */
	uint32_t events;
	uint64_t linger_timer;
	enum devport_after after;
	struct svc_timer *timers;
};

static void conn_settle(struct svc_conn *c);

/* The device half's state, hung on sim->ports_data by devport_init(). */
struct devport {
	struct crypto *crypto;
	const struct svc_ops *lockdownd; /* on SIM_LOCKDOWN_PORT */
};

static struct devport *devport_of(struct sim *sim)
{
	return sim ? sim->ports_data : NULL;
}

struct crypto *devport_crypto(struct sim *sim)
{
	struct devport *dp = devport_of(sim);

	return dp ? dp->crypto : NULL;
}

static void devport_state_free(struct sim_device *dev);

static struct devport_state *devport_state(struct sim_device *dev, bool create)
{
	if (!dev->port_state && create) {
		dev->port_state = calloc(1, sizeof(struct devport_state));
		if (dev->port_state)
			dev->port_state_free = devport_state_free;
	}
	return dev->port_state;
}

/* ---- reservations and trust ---- */

static void devport_expire(struct devport_state *st, uint64_t now)
{
	int i = 0;

	while (i < st->n_resv) {
		if (st->resv[i].expires_ms <= now)
			st->resv[i] = st->resv[--st->n_resv];
		else
			i++;
	}
}

static struct devport_resv *devport_find_resv(struct devport_state *st, uint16_t port)
{
	int i;

	devport_expire(st, loop_now_ms());
	for (i = 0; i < st->n_resv; i++)
		if (st->resv[i].port == port)
			return &st->resv[i];
	return NULL;
}

int devport_reserve(struct sim *sim, struct sim_device *dev, const struct svc_ops *ops,
                    uint16_t *ret_port)
{
	struct devport_state *st = devport_state(dev, true);
	struct devport_resv *rv;
	uint16_t port;
	int tries;

	(void)sim;
	if (!st)
		return -ENOMEM;
	devport_expire(st, loop_now_ms());
	if (st->n_resv >= DEVPORT_RESV_MAX)
		return -ENOSPC;
	for (tries = 0; tries < 16384; tries++) {
		if (st->next_port < DEVPORT_PORT_FIRST)
			st->next_port = DEVPORT_PORT_FIRST;
		port = st->next_port++;
		if (port != SIM_LOCKDOWN_PORT && !devport_find_resv(st, port))
			break;
	}
	rv = &st->resv[st->n_resv++];
	rv->port = port;
	rv->ops = ops;
	rv->expires_ms = loop_now_ms() + DEVPORT_RESV_TTL_MS;
	*ret_port = port;
	return 0;
}

bool devport_host_trusted(struct sim_device *dev, const char *host_id)
{
	struct devport_state *st = devport_state(dev, false);
	int i;

	if (!st || !host_id)
		return false;
	for (i = 0; i < st->n_trusted; i++)
		if (strcmp(st->trusted[i], host_id) == 0)
			return true;
	return false;
}

int devport_trust_host(struct sim_device *dev, const char *host_id)
{
	struct devport_state *st = devport_state(dev, true);

	if (!st)
		return -ENOMEM;
	if (!host_id || strlen(host_id) >= sizeof(st->trusted[0]))
		return -EINVAL;
	if (devport_host_trusted(dev, host_id))
		return 0;
	if (st->n_trusted == DEVPORT_TRUST_MAX) {
		memmove(st->trusted[0], st->trusted[1],
		        sizeof(st->trusted[0]) * (DEVPORT_TRUST_MAX - 1));
		st->n_trusted--;
	}
	snprintf(st->trusted[st->n_trusted++], sizeof(st->trusted[0]), "%s", host_id);
	return 0;
}

void devport_untrust_host(struct sim_device *dev, const char *host_id)
{
	struct devport_state *st = devport_state(dev, false);
	int i;

	if (!st || !host_id)
		return;
	for (i = 0; i < st->n_trusted; i++)
		if (strcmp(st->trusted[i], host_id) == 0) {
			memmove(st->trusted[i], st->trusted[i + 1],
			        sizeof(st->trusted[0]) * (size_t)(st->n_trusted - i - 1));
			st->n_trusted--;
			return;
		}
}

static bool devport_is_open(struct sim *sim, struct sim_device *dev, uint16_t port)
{
	struct devport_state *st;

	(void)sim;
	if (!dev || !dev->attached)
		return false;
	st = devport_state(dev, false);
	/* at the cap, refuse on the mux (Result 3) rather than accept and hang up */
	if (st && st->n_conns >= DEVPORT_CONNS_MAX)
		return false;
	if (port == SIM_LOCKDOWN_PORT)
		return true;
	return st && devport_find_resv(st, port);
}

/* ---- buffers ---- */

static int devport_reserve_buf(uint8_t **buf, size_t *cap, size_t need, size_t max)
{
	size_t ncap;
	uint8_t *n;

	if (need <= *cap)
		return 0;
	if (need > max)
		return -ENOBUFS;
	ncap = *cap ? *cap : 4096;
	while (ncap < need)
		ncap *= 2;
	if (ncap > max)
		ncap = max;
	n = realloc(*buf, ncap);
	if (!n)
		return -ENOMEM;
	*buf = n;
	*cap = ncap;
	return 0;
}

static int conn_in_append(struct svc_conn *c, const void *data, size_t len)
{
	int r = devport_reserve_buf(&c->in, &c->in_cap, c->in_len + len, DEVPORT_INPUT_MAX);

	if (r < 0)
		return r;
	memcpy(c->in + c->in_len, data, len);
	c->in_len += len;
	return 0;
}

static int conn_out_append(struct svc_conn *c, const void *data, size_t len)
{
	/* headroom over the svc_write cap for TLS record overhead */
	return outbuf_append(&c->out, data, len, DEVPORT_OUTPUT_MAX + 65536);
}

/* Moves what SSL wrote into its memory BIO to the output buffer. */
static int conn_drain_wbio(struct svc_conn *c)
{
	uint8_t buf[16384];
	int n, r;

	if (!c->wbio)
		return 0;
	while ((n = BIO_read(c->wbio, buf, sizeof(buf))) > 0) {
		r = conn_out_append(c, buf, (size_t)n);
		if (r < 0)
			return r;
	}
	return 0;
}

static void conn_update_events(struct svc_conn *c)
{
	uint32_t ev = EPOLLIN;

	if (c->fd < 0)
		return;
	if (outbuf_pending(&c->out))
		ev |= EPOLLOUT;
	if (c->eof || c->closing)
		ev &= ~(uint32_t)EPOLLIN;
	if (ev != c->events && loop_mod_fd(c->sim->loop, c->fd, ev) == 0)
		c->events = ev;
}

static void conn_flush(struct svc_conn *c)
{
	if (!c->dead && c->fd >= 0 && outbuf_flush(&c->out, c->fd) < 0)
		c->dead = true;
	conn_update_events(c);
}

/* ---- svc.h I/O ---- */

int svc_write(struct svc_conn *c, const void *buf, size_t len)
{
	size_t queued = c->out.len - c->out.off;
	int r;

	if (c->dead)
		return -EPIPE;
	if (len > DEVPORT_OUTPUT_MAX || queued + len > DEVPORT_OUTPUT_MAX)
		return -ENOBUFS;
	if (len == 0)
		return 0;
	if (c->ssl && c->tls == DEVPORT_TLS_ON) {
		size_t off = 0;

		while (off < len) {
			size_t chunk = len - off > (1u << 30) ? (1u << 30) : len - off;
			int n = SSL_write(c->ssl, (const uint8_t *)buf + off, (int)chunk);

			if (n <= 0) {
				ERR_clear_error();
				c->dead = true;
				return -EIO;
			}
			off += (size_t)n;
		}
		r = conn_drain_wbio(c);
	} else if (c->ssl) {
		/* handshake not done or shutting down: nothing may be written in clear */
		return -EAGAIN;
	} else {
		r = conn_out_append(c, buf, len);
	}
	if (r < 0)
		return r;
	if (c->fd >= 0)
		conn_flush(c);
	return 0;
}

int svc_write_plist(struct svc_conn *c, plist_t p, bool binary)
{
	char *data = NULL;
	uint32_t len = 0, be;
	int r;

	if (binary)
		plist_to_bin(p, &data, &len);
	else
		plist_to_xml(p, &data, &len);
	if (!data) {
		r = -ENOMEM;
		goto out;
	}
	be = htobe32(len);
	/* one buffer so one TLS record carries both, as the real lockdownd does */
	{
		uint8_t *frame = malloc((size_t)len + 4);

		if (!frame) {
			r = -ENOMEM;
			goto out;
		}
		memcpy(frame, &be, 4);
		memcpy(frame + 4, data, len);
		r = svc_write(c, frame, (size_t)len + 4);
		free(frame);
	}
out:
	free(data);
	return r;
}

/* A deep copy through the public setters, so nothing a client sends reaches libplist 2.2.0's
 * weak spots (both found by fuzz_lockdown):
 *  - a binary plist string with a NUL inside keeps its parsed length but is stored with
 *    strdup, so plist_to_xml of it (or of a copy: SetValue then GetValue) reads past the end;
 *  - a binary dict whose key is not a string yields a non-key node where a key belongs, and
 *    plist_dict_next_item asserts (abort) on it, plist_dict_get_item misreads it.
 * Rebuilt strings and keys are consistent. NULL if the plist is deeper than
 * DEVPORT_PLIST_DEPTH or holds such a dict or a node type a client has no business sending. */
#define DEVPORT_PLIST_DEPTH 64

static plist_t devport_plist_clean(plist_t p, int depth)
{
	plist_t out = NULL, item, v;
	plist_dict_iter it = NULL;
	char *key;
	uint32_t i, n;
	const char *str;

	if (depth > DEVPORT_PLIST_DEPTH)
		return NULL;
	switch (plist_get_node_type(p)) {
	case PLIST_DICT:
		out = plist_new_dict();
		plist_dict_new_iter(p, &it);
		n = plist_dict_get_size(p);
		for (i = 0; i < n; i++) {
			plist_t knode;

			/* values only: asking for the key asserts when it is not a key node */
			item = NULL;
			plist_dict_next_item(p, it, NULL, &item);
			knode = item ? plist_dict_item_get_key(item) : NULL;
			if (!knode || plist_get_node_type(knode) != PLIST_KEY)
				goto bad;
			v = devport_plist_clean(item, depth + 1);
			if (!v)
				goto bad;
			key = NULL;
			plist_get_key_val(knode, &key);
			if (!key) {
				plist_free(v);
				goto bad;
			}
			plist_dict_set_item(out, key, v);
			free(key);
		}
		free(it);
		return out;
	bad:
		free(it);
		plist_free(out);
		return NULL;
	case PLIST_ARRAY:
		out = plist_new_array();
		n = plist_array_get_size(p);
		for (i = 0; i < n; i++) {
			v = devport_plist_clean(plist_array_get_item(p, i), depth + 1);
			if (!v) {
				plist_free(out);
				return NULL;
			}
			plist_array_append_item(out, v);
		}
		return out;
	case PLIST_STRING:
		str = plist_get_string_ptr(p, NULL);
		return plist_new_string(str ? str : "");
	case PLIST_BOOLEAN:
	case PLIST_UINT:
	case PLIST_REAL:
	case PLIST_DATE:
	case PLIST_DATA:
	case PLIST_UID:
		return plist_copy(p);
	default:
		return NULL;
	}
}

static uint64_t devport_be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	while (n--)
		v = v << 8 | *p++;
	return v;
}

/* Object i's marker offset and, for strings/dicts, its count and the start of its content. */
static int devport_bplist_object(const uint8_t *b, size_t len, uint64_t off, uint64_t *ret_count,
                                 uint64_t *ret_start)
{
	uint8_t marker, info;
	uint64_t count, start;

	if (off >= len)
		return -EBADMSG;
	marker = b[off];
	info = marker & 0x0f;
	count = info;
	start = off + 1;
	if (info == 0x0f) {
		unsigned ilen;

		if (start >= len || (b[start] & 0xf0) != 0x10 || (b[start] & 0x0f) > 3)
			return -EBADMSG;
		ilen = 1u << (b[start] & 0x0f);
		if (start + 1 + ilen > len)
			return -EBADMSG;
		count = devport_be(b + start + 1, ilen);
		start += 1 + ilen;
	}
	*ret_count = count;
	*ret_start = start;
	return marker >> 4;
}

/* libplist 2.2.0 asserts (aborts) on a dict key holding a NUL byte or a dict key that is not a
 * string, and mishandles strings with NULs: refuse such binary plists before parsing them.
 * Walks every object of the offset table; anything out of bounds is refused too. */
static bool devport_bplist_safe(const uint8_t *b, size_t len)
{
	const uint8_t *t;
	unsigned osz, rsz;
	uint64_t nobj, table, i, j;

	if (len < 8 + 32)
		return false;
	t = b + len - 32;
	osz = t[6];
	rsz = t[7];
	nobj = devport_be(t + 8, 8);
	table = devport_be(t + 24, 8);
	if (osz < 1 || osz > 8 || rsz < 1 || rsz > 8 || nobj > len || table >= len ||
	    nobj * osz > len - table)
		return false;
	for (i = 0; i < nobj; i++) {
		uint64_t off = devport_be(b + table + i * osz, osz), count, start;
		int type = devport_bplist_object(b, len, off, &count, &start);

		if (type < 0)
			return false;
		if (type == 0x5 && (count > len - start || memchr(b + start, 0, count)))
			return false;
		if (type == 0x6) {
			if (count > (len - start) / 2)
				return false;
			for (j = 0; j < count; j++)
				if (b[start + 2 * j] == 0 && b[start + 2 * j + 1] == 0)
					return false;
		}
		if (type == 0xd) {
			if (count > (len - start) / (2 * rsz))
				return false;
			for (j = 0; j < count; j++) {
				uint64_t ref = devport_be(b + start + j * rsz, rsz), kc, ks, koff;
				int kt;

				if (ref >= nobj)
					return false;
				koff = devport_be(b + table + ref * osz, osz);
				kt = devport_bplist_object(b, len, koff, &kc, &ks);
				if (kt != 0x5 && kt != 0x6)
					return false;
			}
		}
	}
	return true;
}

ssize_t svc_parse_frame(const uint8_t *buf, size_t len, plist_t *ret)
{
	uint32_t n;
	plist_t p = NULL, clean;

	if (len < 4)
		return 0;
	n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	if (n > SVC_FRAME_MAX || n == 0)
		return -EBADMSG;
	if (len - 4 < n)
		return 0;
	if (n >= 8 && memcmp(buf + 4, "bplist00", 8) == 0) {
		if (!devport_bplist_safe(buf + 4, n))
			return -EBADMSG;
		plist_from_bin((const char *)buf + 4, n, &p);
	} else if (n >= 5 && memchr(buf + 4, '<', n < 64 ? n : 64))
		plist_from_xml((const char *)buf + 4, n, &p);
	if (!p)
		return -EBADMSG;
	clean = devport_plist_clean(p, 0);
	plist_free(p);
	if (!clean)
		return -EBADMSG;
	*ret = clean;
	return (ssize_t)n + 4;
}

ssize_t devport_input_frames(struct svc_conn *c, const uint8_t *buf, size_t len,
                             devport_frame_fn handle)
{
	size_t used = 0;

	while (used < len) {
		plist_t req = NULL;
		ssize_t n = svc_parse_frame(buf + used, len - used, &req);
		int r;

		if (n < 0)
			return n;
		if (n == 0)
			break;
		used += (size_t)n;
		r = handle(c, req);
		plist_free(req);
		if (r < 0)
			return r;
		if (r > 0)
			break;
	}
	return (ssize_t)used;
}

static void conn_linger_fire(struct loop *loop, uint64_t id, void *data)
{
	struct svc_conn *c = data;

	(void)loop;
	(void)id;
	c->linger_timer = 0;
	c->dead = true;
	conn_settle(c);
}

void svc_close(struct svc_conn *c)
{
	if (c->closing || c->dead)
		return;
	c->closing = true;
	if (outbuf_pending(&c->out) && c->fd >= 0)
		c->linger_timer =
		        loop_add_timer(c->sim->loop, DEVPORT_CLOSE_LINGER_MS, conn_linger_fire, c);
	conn_update_events(c);
}

struct sim *svc_sim(struct svc_conn *c)
{
	return c->sim;
}

struct sim_device *svc_device(struct svc_conn *c)
{
	return c->dev;
}

void **svc_state(struct svc_conn *c)
{
	return &c->state;
}

static void conn_timer_fire(struct loop *loop, uint64_t id, void *data)
{
	struct svc_timer *t = data, **pp;
	struct svc_conn *c = t->c;

	(void)loop;
	(void)id;
	for (pp = &c->timers; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	if (!c->dead && !c->closing) {
		c->depth++;
		t->fn(c);
		c->depth--;
	}
	free(t);
	conn_settle(c);
}

uint64_t svc_add_timer(struct svc_conn *c, uint64_t delay_ms, svc_timer_fn fn)
{
	struct svc_timer *t;

	if (c->dead || !fn)
		return 0;
	t = calloc(1, sizeof(*t));
	if (!t)
		return 0;
	t->c = c;
	t->fn = fn;
	t->id = loop_add_timer(c->sim->loop, delay_ms, conn_timer_fire, t);
	if (!t->id) {
		free(t);
		return 0;
	}
	t->next = c->timers;
	c->timers = t;
	return t->id;
}

/* ---- TLS ---- */

static int conn_ssl_new(struct svc_conn *c)
{
	struct crypto *cr = devport_crypto(c->sim);

	if (!cr || !cr->ctx)
		return -ENOTSUP;
	c->ssl = SSL_new(cr->ctx);
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (!c->ssl || !c->rbio || !c->wbio) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		SSL_free(c->ssl);
		c->ssl = NULL;
		c->rbio = c->wbio = NULL;
		return -ENOMEM;
	}
	/* an empty memory BIO means "try again later", not EOF */
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	SSL_set_accept_state(c->ssl);
	c->tls = DEVPORT_TLS_HANDSHAKE;
	return 0;
}

static void conn_ssl_free(struct svc_conn *c)
{
	SSL_free(c->ssl);
	c->ssl = NULL;
	c->rbio = c->wbio = NULL;
	c->tls = DEVPORT_TLS_OFF;
}

int devport_start_tls(struct svc_conn *c)
{
	if (c->ssl || c->tls_start)
		return -EALREADY;
	if (!devport_crypto(c->sim))
		return -ENOTSUP;
	c->tls_start = true;
	return 0;
}

int devport_stop_tls(struct svc_conn *c)
{
	if (!c->ssl || c->tls != DEVPORT_TLS_ON)
		return -EINVAL;
	/* No close_notify from us: the 1.3.0 client's first SSL_shutdown returns 0 and, with
	 * OpenSSL 3, SSL_get_error(ssl, 0) is not SSL_ERROR_NONE, so it skips the bidirectional
	 * shutdown and sends its next request in plaintext at once. An alert from us would sit
	 * in front of our plaintext reply and be read as a frame length (seen: a 350 MB read). */
	c->tls = DEVPORT_TLS_STOPPING;
	return 0;
}

bool devport_tls_active(struct svc_conn *c)
{
	return c->ssl != NULL || c->tls_start;
}

void devport_after_close(struct svc_conn *c, enum devport_after what)
{
	c->after = what;
}

/* The client's close_notify arrived: back to plaintext with whatever follows it. */
static int conn_tls_finish_stop(struct svc_conn *c)
{
	uint8_t buf[4096];
	int n, r = 0;

	/* whatever SSL queued in answer (nothing, normally) is dropped with it, see stop_tls */
	while (r == 0 && (n = BIO_read(c->rbio, buf, sizeof(buf))) > 0)
		r = conn_in_append(c, buf, (size_t)n);
	conn_ssl_free(c);
	return r;
}

/* Runs the TLS engine over what arrived: handshake, then decrypt into c->in. */
static int conn_tls_pump(struct svc_conn *c)
{
	uint8_t buf[16384];
	int n, err, r;

	if (c->tls == DEVPORT_TLS_HANDSHAKE) {
		n = SSL_do_handshake(c->ssl);
		r = conn_drain_wbio(c);
		if (r < 0)
			return r;
		if (n != 1) {
			err = SSL_get_error(c->ssl, n);
			if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
				return 0;
			log_debug("devport %s:%u: TLS handshake failed (%d)", c->dev->udid, c->port,
			          err);
			ERR_clear_error();
			return -EPROTO;
		}
		c->tls = DEVPORT_TLS_ON;
		if (!c->opened && c->ops->open) {
			c->opened = true;
			r = c->ops->open(c);
			if (r < 0)
				return r;
		}
		c->opened = true;
	}
	while (c->ssl && (c->tls == DEVPORT_TLS_ON || c->tls == DEVPORT_TLS_STOPPING)) {
		if (c->in_len >= DEVPORT_INPUT_MAX)
			break;
		n = SSL_read(c->ssl, buf, sizeof(buf));
		if (n > 0) {
			r = conn_in_append(c, buf, (size_t)n);
			if (r < 0)
				return r;
			continue;
		}
		err = SSL_get_error(c->ssl, n);
		if (err == SSL_ERROR_ZERO_RETURN && c->tls == DEVPORT_TLS_STOPPING)
			return conn_tls_finish_stop(c);
		r = conn_drain_wbio(c);
		if (r < 0)
			return r;
		if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
			return 0;
		if (err == SSL_ERROR_ZERO_RETURN) {
			/* the client ended TLS outside StopSession: answer and hang up */
			SSL_shutdown(c->ssl);
			ERR_clear_error();
			conn_drain_wbio(c);
			c->closing = true;
			return 0;
		}
		ERR_clear_error();
		return -EPROTO;
	}
	return 0;
}

/* ---- connection lifecycle ---- */

static void conn_destroy(struct svc_conn *c)
{
	struct devport_state *st = c->dev->port_state;
	struct sim *sim = c->sim;
	struct sim_device *dev = c->dev;
	enum devport_after after = c->after;
	struct svc_timer *t;

	if (c->opened && c->ops->close)
		c->ops->close(c);
	while ((t = c->timers)) {
		c->timers = t->next;
		loop_cancel_timer(sim->loop, t->id);
		free(t);
	}
	if (c->linger_timer)
		loop_cancel_timer(sim->loop, c->linger_timer);
	if (c->fd >= 0) {
		loop_del_fd(sim->loop, c->fd);
		close(c->fd);
	}
	if (c->ssl)
		conn_ssl_free(c);
	if (st) {
		if (c->prev)
			c->prev->next = c->next;
		else
			st->conns = c->next;
		if (c->next)
			c->next->prev = c->prev;
		st->n_conns--;
	}
	free(c->in);
	outbuf_free(&c->out);
	free(c);
	/* after the connection is gone, so the device change cannot reach it */
	if (after == DEVPORT_AFTER_RESTART && dev->attached)
		sim_device_restart(sim, dev);
	else if (after == DEVPORT_AFTER_DETACH && dev->attached)
		sim_device_detach(sim, dev);
}

/* End of every callback: destroy when dead, or closing and flushed, or the client is gone. */
static void conn_settle(struct svc_conn *c)
{
	if (c->depth > 0)
		return;
	if (!c->dead && outbuf_pending(&c->out))
		conn_flush(c);
	if (c->dead || (c->closing && !outbuf_pending(&c->out)) || c->eof)
		conn_destroy(c);
}

/* Feeds c->in to the service until it wants more, switching TLS on when lockdown asked. */
static int conn_dispatch(struct svc_conn *c)
{
	ssize_t n;
	int r;

	for (;;) {
		if (c->ssl) {
			r = conn_tls_pump(c);
			if (r < 0)
				return r;
		}
		if (!c->opened)
			return 0; /* handshake still running */
		if (c->in_len == 0 || c->closing || c->dead)
			return 0;
		c->depth++;
		n = c->ops->input(c, c->in, c->in_len);
		c->depth--;
		if (n < 0)
			return (int)n;
		if ((size_t)n > c->in_len)
			return -EINVAL;
		if (n == 0 && !c->tls_start) {
			if (c->in_len >= DEVPORT_INPUT_MAX)
				return -ENOBUFS;
			return 0;
		}
		memmove(c->in, c->in + n, c->in_len - (size_t)n);
		c->in_len -= (size_t)n;
		if (c->tls_start) {
			/* the rest of the input is the ClientHello: hand it to the TLS engine */
			c->tls_start = false;
			r = conn_ssl_new(c);
			if (r < 0)
				return r;
			if (c->in_len &&
			    BIO_write(c->rbio, c->in, (int)c->in_len) != (int)c->in_len)
				return -ENOMEM;
			c->in_len = 0;
			c->tls = DEVPORT_TLS_HANDSHAKE;
			/* lockdown is already open: skip open() after this handshake */
		}
	}
}

static void conn_io(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct svc_conn *c = data;
	uint8_t buf[DEVPORT_READ_CHUNK];
	size_t budget = DEVPORT_READ_BUDGET;
	int r = 0;

	(void)loop;
	c->depth++;
	if (events & EPOLLOUT)
		conn_flush(c);
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->closing && !c->dead) {
		while (budget > 0 && !c->eof) {
			ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN)
					c->dead = true;
				break;
			}
			if (n == 0) {
				c->eof = true;
				break;
			}
			budget -= (size_t)n < budget ? (size_t)n : budget;
			if (c->ssl) {
				if (BIO_write(c->rbio, buf, (int)n) != (int)n)
					r = -ENOMEM;
			} else {
				r = conn_in_append(c, buf, (size_t)n);
			}
			if (r < 0)
				break;
			/* cap what sits in the read BIO too */
			if (c->ssl && BIO_ctrl_pending(c->rbio) > DEVPORT_INPUT_MAX)
				r = -ENOBUFS;
			if (r < 0)
				break;
		}
		if (r == 0 && !c->dead)
			r = conn_dispatch(c);
		if (r < 0) {
			log_debug_errno(r, "devport %s:%u: dropping connection", c->dev->udid,
			                c->port);
			c->dead = true;
		}
	} else if (events & (EPOLLHUP | EPOLLERR)) {
		c->dead = true;
	}
	c->depth--;
	if (!c->dead)
		conn_flush(c);
	conn_settle(c);
}

static int devport_accept(struct sim *sim, struct sim_device *dev, uint16_t port, int fd,
                          const uint8_t *leftover, size_t leftover_len)
{
	struct devport_state *st = devport_state(dev, true);
	const struct svc_ops *ops = NULL;
	struct svc_conn *c = NULL;
	bool ssl = false;
	int r;

	if (!st) {
		r = -ENOMEM;
		goto fail;
	}
	if (!dev->attached) {
		r = -ENODEV;
		goto fail;
	}
	if (port == SIM_LOCKDOWN_PORT) {
		ops = devport_of(sim)->lockdownd;
	} else {
		struct devport_resv *rv = devport_find_resv(st, port);

		if (!rv) {
			r = -ECONNREFUSED;
			goto fail;
		}
		ops = rv->ops;
		ssl = ops->ssl && !sim->plaintext;
		*rv = st->resv[--st->n_resv]; /* one connection per StartService */
	}
	if (st->n_conns >= DEVPORT_CONNS_MAX) {
		r = -EMFILE;
		goto fail;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		r = -ENOMEM;
		goto fail;
	}
	c->sim = sim;
	c->dev = dev;
	c->fd = fd;
	c->port = port;
	c->ops = ops;
	c->events = EPOLLIN;
	r = loop_add_fd(sim->loop, fd, EPOLLIN, conn_io, c);
	if (r < 0) {
		free(c);
		goto fail;
	}
	c->next = st->conns;
	if (st->conns)
		st->conns->prev = c;
	st->conns = c;
	st->n_conns++;

	c->depth++;
	r = 0;
	if (ssl) {
		r = conn_ssl_new(c);
		if (r == 0 && leftover_len &&
		    BIO_write(c->rbio, leftover, (int)leftover_len) != (int)leftover_len)
			r = -ENOMEM;
	} else {
		if (leftover_len)
			r = conn_in_append(c, leftover, leftover_len);
		if (r == 0) {
			c->opened = true;
			r = ops->open ? ops->open(c) : 0;
		}
	}
	if (r == 0)
		r = conn_dispatch(c);
	c->depth--;
	if (r < 0) {
		log_debug_errno(r, "devport %s:%u: connection failed", dev->udid, port);
		c->dead = true;
	}
	conn_settle(c);
	return 0;
fail:
	close(fd);
	return r;
}

static void devport_device_gone(struct sim *sim, struct sim_device *dev)
{
	struct devport_state *st = devport_state(dev, false);
	struct svc_conn *c, *next;

	(void)sim;
	if (!st)
		return;
	st->n_resv = 0;
	for (c = st->conns; c; c = next) {
		next = c->next;
		c->after = DEVPORT_AFTER_NOTHING;
		if (c->depth > 0) {
			/* running right now (a service detaching its own device): finish later, but
			 * hang up the socket now so the client sees the unplug */
			c->dead = true;
			if (c->fd >= 0)
				shutdown(c->fd, SHUT_RDWR);
			continue;
		}
		conn_destroy(c);
	}
}

static void devport_state_free(struct sim_device *dev)
{
	struct devport_state *st = dev->port_state;

	if (!st)
		return;
	/* every connection must be gone by now (device_gone ran at detach); be safe anyway */
	while (st->conns) {
		st->conns->after = DEVPORT_AFTER_NOTHING;
		conn_destroy(st->conns);
	}
	free(st);
	dev->port_state = NULL;
}

/* What a pre-paired phone's record holds: the keys of "the host that already paired", the
 * phone's own WiFi address. */
static plist_t devport_make_pair_record(struct sim *sim, struct sim_device *dev)
{
	const char *wifi = "00:00:00:00:00:00";
	plist_t root = plist_dict_get_item(dev->values, "");
	plist_t v = root ? plist_dict_get_item(root, "WiFiAddress") : NULL;

	if (v && plist_get_node_type(v) == PLIST_STRING) {
		const char *s = plist_get_string_ptr(v, NULL);

		if (s)
			wifi = s;
	}
	return crypto_pair_record(devport_crypto(sim), sim->buid, wifi);
}

/* May run from a timer, the control socket or another connection's callback (mobilebackup2
 * changing a value), hence the depth guard and a settle each (a write may find the peer gone;
 * settling inside the connection's own callback is deferred by the guard). Only the connection
 * handled is settled, so next stays valid. */
static int devport_notice(struct sim *sim, struct sim_device *dev, const struct sim_notice *n)
{
	struct devport_state *st = devport_state(dev, false);
	struct svc_conn *c, *next;
	int took = 0;

	(void)sim;
	for (c = st ? st->conns : NULL; c; c = next) {
		next = c->next;
		if (!c->opened || c->dead || c->closing || !c->ops->notice)
			continue;
		c->depth++;
		took += c->ops->notice(c, n) > 0;
		c->depth--;
		conn_settle(c);
	}
	return took;
}

static const struct sim_ports devport_ports = {
	.is_open = devport_is_open,
	.connect = devport_accept,
	.gone = devport_device_gone,
	.make_pair_record = devport_make_pair_record,
	.notice = devport_notice,
};

int devport_init(struct sim *sim, const struct svc_ops *lockdownd)
{
	struct devport *dp;
	int r;

	if (sim->ports)
		return 0;
	dp = calloc(1, sizeof(*dp));
	if (!dp)
		return -ENOMEM;
	r = crypto_new(&dp->crypto);
	if (r < 0) {
		free(dp);
		return r;
	}
	dp->lockdownd = lockdownd;
	sim->ports_data = dp;
	sim->ports = &devport_ports;
	return 0;
}

void devport_free(struct sim *sim)
{
	struct devport *dp = devport_of(sim);

	if (!dp)
		return;
	crypto_free(dp->crypto);
	free(dp);
	sim->ports = NULL;
	sim->ports_data = NULL;
}
