/* SPDX-License-Identifier: MIT */
/*
 * fuzz_mobilebackup2: cradle-sim's mobilebackup2 service (sim/svc_mobilebackup2.c) on arbitrary
 * host bytes, the whole state machine included: binary/XML plist frames, the raw file stream
 * after DownloadFiles, StatusResponses, timers and the paced upload with its output cap.
 *
 * The service is compiled into this file and runs against a test double of the svc.h I/O layer
 * (devport.c needs sockets, TLS and a loop): writes go to a byte counter with a small cap, so
 * the -ENOBUFS retry path runs too, and timers fire synchronously between input chunks, bounded
 * so a run always ends. Input: byte 0 picks the device script (bits 0-2 file_count / 11, bit 3
 * error 208, bit 4 purge_disk_space, bit 5 a previous backup, bit 6 cloud error), byte 1 the
 * file size; the rest is fed in chunks, each a u16 big-endian length and its bytes, as a socket
 * would split it (timers fire between chunks: the host's answers come after the device asked). One
 * device and one connection per input, freed after, so ASan sees leaks.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <plist/plist.h>

#include "sim.h"
#include "svc.h"

#include "../../sim/svc_mobilebackup2.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_OUT_CAP     (96u * 1024) /* small, so the upload hits -ENOBUFS */
#define FZ_TIMERS_MAX  64
#define FZ_FIRINGS_MAX 20000
#define FZ_INPUT_MAX   (1u << 20)

struct svc_conn {
	struct sim_device *dev;
	void *state;
	bool closing;
	size_t out; /* queued and not yet "read by the host" */
	svc_timer_fn timers[FZ_TIMERS_MAX];
	int n_timers;
	uint64_t timer_ids;
};

int svc_write(struct svc_conn *c, const void *buf, size_t len)
{
	(void)buf;
	if (c->closing)
		return -EPIPE;
	if (c->out + len > FZ_OUT_CAP)
		return -ENOBUFS;
	c->out += len;
	return 0;
}

int svc_write_plist(struct svc_conn *c, plist_t p, bool binary)
{
	char *data = NULL;
	uint32_t len = 0;
	int r;

	if (binary)
		plist_to_bin(p, &data, &len);
	else
		plist_to_xml(p, &data, &len);
	if (!data)
		return -ENOMEM;
	r = svc_write(c, data, (size_t)len + 4);
	free(data);
	return r;
}

/* The framing rules of devport's svc_parse_frame (u32 BE length, bplist00 or XML). */
ssize_t svc_parse_frame(const uint8_t *buf, size_t len, plist_t *ret)
{
	uint32_t n;
	plist_t p = NULL;

	if (len < 4)
		return 0;
	n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
	if (n > SVC_FRAME_MAX || n == 0)
		return -EBADMSG;
	if (len - 4 < n)
		return 0;
	if (n >= 8 && memcmp(buf + 4, "bplist00", 8) == 0)
		plist_from_bin((const char *)buf + 4, n, &p);
	else if (n >= 5 && memchr(buf + 4, '<', n < 64 ? n : 64))
		plist_from_xml((const char *)buf + 4, n, &p);
	if (!p)
		return -EBADMSG;
	*ret = p;
	return (ssize_t)n + 4;
}

void svc_close(struct svc_conn *c)
{
	c->closing = true;
}

struct sim *svc_sim(struct svc_conn *c)
{
	(void)c;
	return NULL;
}

struct sim_device *svc_device(struct svc_conn *c)
{
	return c->dev;
}

void **svc_state(struct svc_conn *c)
{
	return &c->state;
}

uint64_t svc_add_timer(struct svc_conn *c, uint64_t delay_ms, svc_timer_fn fn)
{
	(void)delay_ms;
	if (c->closing || c->n_timers == FZ_TIMERS_MAX)
		return 0;
	c->timers[c->n_timers++] = fn;
	return ++c->timer_ids;
}

void sim_journal(struct sim_device *dev, const char *op, struct cJSON *fields)
{
	(void)dev;
	(void)op;
	cJSON_Delete(fields);
}

/* The model's value store, as sim.c keeps it (no notices: there is no device half here). */
int sim_device_set_value(struct sim *sim, struct sim_device *dev, const char *domain,
                         const char *key, plist_t value)
{
	plist_t dict = plist_dict_get_item(dev->values, domain);

	(void)sim;
	if (!dict || plist_get_node_type(dict) != PLIST_DICT) {
		dict = plist_new_dict();
		plist_dict_set_item(dev->values, domain, dict);
	}
	if (value)
		plist_dict_set_item(dict, key, value);
	else if (plist_dict_get_item(dict, key))
		plist_dict_remove_item(dict, key);
	return 0;
}

int64_t sim_clock_ms(const struct sim *sim)
{
	(void)sim;
	return 1700000000000; /* a fixed time: runs are reproducible */
}

/* Fires pending timers, oldest first, the host draining the output before each. */
static void fz_run_timers(struct svc_conn *c, int *firings)
{
	while (c->n_timers > 0 && !c->closing && *firings < FZ_FIRINGS_MAX) {
		svc_timer_fn fn = c->timers[0];

		memmove(c->timers, c->timers + 1, sizeof(c->timers[0]) * (size_t)--c->n_timers);
		c->out = 0;
		fn(c);
		(*firings)++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sim_device dev;
	struct svc_conn c;
	uint8_t *in = NULL;
	size_t in_len = 0, off = 2;
	int firings = 0;

	if (size < 2 || size > FZ_INPUT_MAX)
		return 0;
	log_set_level(LOG_LEVEL_ERROR); /* "bad input, closing" on most inputs is expected */
	memset(&dev, 0, sizeof(dev));
	memset(&c, 0, sizeof(c));
	snprintf(dev.udid, sizeof(dev.udid), "00008030-001A2B3C4D5E0B01");
	dev.values = plist_new_dict();
	plist_dict_set_item(dev.values, "", plist_new_dict());
	plist_dict_set_item(plist_dict_get_item(dev.values, ""), "ProductType",
	                    plist_new_string("iPhone12,8"));
	dev.backup.file_count = (data[0] & 7) * 11; /* up to 77: two upload batches */
	dev.backup.file_size = data[1] * 523;       /* up to ~130 KiB: several chunks, batches */
	dev.backup.error_code = data[0] & 8 ? 208 : 0;
	dev.backup.purge_disk_space = data[0] & 16;
	dev.backups_done = data[0] & 32 ? 1 : 0;
	dev.cloud.error_code = data[0] & 64 ? 211 : 0;
	c.dev = &dev;
	in = malloc(FZ_INPUT_MAX);
	if (!in)
		goto out;

	if (svc_mobilebackup2.open(&c) < 0)
		goto out;
	while (off < size && !c.closing) {
		size_t chunk;
		ssize_t n;

		if (size - off < 2)
			break;
		chunk = (size_t)data[off] << 8 | data[off + 1];
		off += 2;
		if (chunk > size - off)
			chunk = size - off;
		memcpy(in + in_len, data + off, chunk);
		in_len += chunk;
		off += chunk;
		n = svc_mobilebackup2.input(&c, in, in_len);
		if (n < 0)
			break;
		if ((size_t)n > in_len)
			abort(); /* consumed more than it was given */
		memmove(in, in + n, in_len - (size_t)n);
		in_len -= (size_t)n;
		c.out = 0;
		fz_run_timers(&c, &firings);
	}
out:
	svc_mobilebackup2.close(&c);
	if (c.state)
		abort(); /* close() must free the state */
	free(in);
	plist_free(dev.values);
	return 0;
}
