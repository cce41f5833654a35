/* SPDX-License-Identifier: MIT */
/*
 * mux: cradle-sim's usbmuxd. libusbmuxd 2.0.2 opens a fresh socket per request (ListDevices,
 * Listen, Connect, ReadBUID, *PairRecord), sends a 16-byte header and an XML plist, and accepts
 * only XML plists back (docs/device-protocols.md "usbmuxd"). A Listen socket stays open and gets
 * Attached/Detached/Paired events; a successful Connect turns the socket into a byte pipe,
 * so it is handed to the device half (sim_port_connect) once the Result has been flushed.
 *
 * Everything is non-blocking on the one loop; input and output are bounded per client, a bad
 * request gets Result 1 (BADCOMMAND) and never takes the process down. The ListDevices payload
 * is serialised once per attach/detach change: with 500 devices it is ~300 KB of XML and every
 * idevice_new() asks for it.
 */
#include "mux.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "loop.h"
#include "outbuf.h"
#include "sim.h"

#define MUX_PRODUCT_ID       0x12a8 /* iPhone */
#define MUX_CONNECTION_SPEED 480000000

struct mux_client {
	struct mux_client *next, *prev;
	struct mux *mux;
	int fd;
	uint32_t id;
	bool listening;
	bool closing;  /* close once the output is flushed */
	bool handover; /* Connect answered: give fd to the device half once flushed */
	struct sim_device *connect_dev;
	uint16_t connect_port;
	char prog_name[64];
	uint8_t *in;
	size_t in_len, in_cap;
	struct outbuf out;
};

/* ---- wire format ---- */

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

int mux_parse_header(const uint8_t *buf, size_t len, struct mux_header *h)
{
	if (len < MUX_HEADER_SIZE)
		return -EAGAIN;
	h->length = get_le32(buf);
	h->version = get_le32(buf + 4);
	h->message = get_le32(buf + 8);
	h->tag = get_le32(buf + 12);
	if (h->length < MUX_HEADER_SIZE || h->length > MUX_REQUEST_MAX)
		return -EBADMSG;
	return 0;
}

/* 0 absent (dst = ""), 1 copied, -EBADMSG wrong type, embedded NUL or too long. Never
 * plist_get_string_val(): libplist 2.2.0 asserts (aborts the process) on a string with an
 * embedded NUL, which a client can send (found by fuzz_usbmux). */
static int copy_string(plist_t dict, const char *key, char *dst, size_t size)
{
	plist_t n = plist_dict_get_item(dict, key);
	const char *s;
	uint64_t len = 0;

	dst[0] = '\0';
	if (!n)
		return 0;
	if (plist_get_node_type(n) != PLIST_STRING)
		return -EBADMSG;
	s = plist_get_string_ptr(n, &len);
	if (!s || len >= size || strlen(s) != len)
		return -EBADMSG;
	memcpy(dst, s, len + 1);
	return 1;
}

/* 0 absent, 1 present (value in *ret), -EBADMSG wrong type or out of range. */
static int get_u32(plist_t dict, const char *key, uint32_t *ret)
{
	plist_t n = plist_dict_get_item(dict, key);
	uint64_t v = 0;

	if (!n)
		return 0;
	if (plist_get_node_type(n) != PLIST_UINT)
		return -EBADMSG;
	plist_get_uint_val(n, &v);
	if (v > UINT32_MAX)
		return -EBADMSG;
	*ret = (uint32_t)v;
	return 1;
}

int mux_decode_request(const uint8_t *payload, size_t len, struct mux_request *req)
{
	plist_t p = NULL, n;
	int r = -EBADMSG;

	memset(req, 0, sizeof(*req));
	if (len == 0 || len > MUX_REQUEST_MAX)
		goto out;
	if (len >= 8 && memcmp(payload, "bplist00", 8) == 0)
		plist_from_bin((const char *)payload, (uint32_t)len, &p);
	else
		plist_from_xml((const char *)payload, (uint32_t)len, &p);
	if (!p || plist_get_node_type(p) != PLIST_DICT)
		goto out;
	if (copy_string(p, "MessageType", req->message_type, sizeof(req->message_type)) <= 0 ||
	    copy_string(p, "PairRecordID", req->record_id, sizeof(req->record_id)) < 0)
		goto out;
	/* Informational only: a strange ProgName is not worth refusing the request. */
	(void)copy_string(p, "ProgName", req->prog_name, sizeof(req->prog_name));
	(void)copy_string(p, "ClientVersionString", req->client_version,
	                  sizeof(req->client_version));
	if (get_u32(p, "DeviceID", &req->device_id) < 0)
		goto out;
	r = get_u32(p, "PortNumber", &req->port_number);
	if (r < 0)
		goto out;
	req->has_port = r > 0;
	n = plist_dict_get_item(p, "PairRecordData");
	if (n) {
		char *data = NULL;
		uint64_t dlen = 0;

		r = -EBADMSG;
		if (plist_get_node_type(n) != PLIST_DATA)
			goto out;
		plist_get_data_val(n, &data, &dlen);
		if (!data || dlen == 0) {
			free(data);
			goto out;
		}
		req->record_data = (uint8_t *)data;
		req->record_len = (size_t)dlen;
	}
	r = 0;
out:
	plist_free(p);
	return r;
}

void mux_request_done(struct mux_request *req)
{
	free(req->record_data);
	req->record_data = NULL;
	req->record_len = 0;
}

uint16_t mux_request_port(const struct mux_request *req)
{
	return ntohs((uint16_t)req->port_number);
}

/* ---- clients ---- */

static void client_free(struct mux_client *c, bool close_fd)
{
	struct mux *m = c->mux;

	if (c->fd >= 0) {
		loop_del_fd(m->sim->loop, c->fd);
		if (close_fd)
			close(c->fd);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		m->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	m->n_clients--;
	free(c->in);
	outbuf_free(&c->out);
	free(c);
}

static void client_close(struct mux_client *c)
{
	client_free(c, true);
}

/* Gives the socket to the device half; the mux forgets it. */
static void client_handover(struct mux_client *c)
{
	struct mux *m = c->mux;
	struct sim_device *dev = c->connect_dev;
	uint16_t port = c->connect_port;
	int fd = c->fd;
	uint8_t *leftover = c->in;
	size_t leftover_len = c->in_len;
	int r;

	loop_del_fd(m->sim->loop, fd);
	c->fd = -1;
	c->in = NULL;
	client_free(c, false);
	r = sim_port_connect(m->sim, dev, port, fd, leftover_len ? leftover : NULL, leftover_len);
	if (r < 0)
		log_debug_errno(r, "mux: connect %s:%u", dev->udid, port);
	free(leftover);
}

/* Writes what it can. 0, or -errno when the client must be dropped. */
static int client_flush(struct mux_client *c)
{
	int r = outbuf_flush(&c->out, c->fd);

	if (r < 0)
		return r;
	/* Once Connect is answered, input belongs to the device: leave it in the socket. */
	if (c->handover)
		return loop_mod_fd(c->mux->sim->loop, c->fd, r ? EPOLLOUT : 0);
	return loop_mod_fd(c->mux->sim->loop, c->fd, r ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static int client_queue(struct mux_client *c, uint32_t message, uint32_t tag, const void *payload,
                        size_t len)
{
	uint8_t h[MUX_HEADER_SIZE];
	int r;

	if (len > MUX_OUTPUT_MAX - MUX_HEADER_SIZE)
		return -ENOBUFS;
	put_le32(h, (uint32_t)(MUX_HEADER_SIZE + len));
	put_le32(h + 4, 1);
	put_le32(h + 8, message);
	put_le32(h + 12, tag);
	r = outbuf_append(&c->out, h, sizeof(h), MUX_OUTPUT_MAX);
	if (r == 0)
		r = outbuf_append(&c->out, payload, len, MUX_OUTPUT_MAX);
	return r;
}

static int client_send_plist(struct mux_client *c, uint32_t tag, plist_t p)
{
	char *xml = NULL;
	uint32_t len = 0;
	int r;

	plist_to_xml(p, &xml, &len);
	if (!xml)
		return -ENOMEM;
	r = client_queue(c, MUX_MSG_PLIST, tag, xml, len);
	plist_to_xml_free(xml);
	return r;
}

static int client_send_result(struct mux_client *c, uint32_t tag, uint32_t number)
{
	plist_t p = plist_new_dict();
	int r;

	plist_dict_set_item(p, "MessageType", plist_new_string("Result"));
	plist_dict_set_item(p, "Number", plist_new_uint(number));
	r = client_send_plist(c, tag, p);
	plist_free(p);
	return r;
}

/* ---- device entries and events ---- */

static uint32_t location_id(const char *udid)
{
	uint32_t h = 2166136261u;

	for (; *udid; udid++)
		h = (h ^ (uint8_t)*udid) * 16777619u;
	return (h & 0x00ffffffu) | 0x01000000u;
}

static plist_t device_entry(struct sim_device *dev)
{
	plist_t e = plist_new_dict(), props = plist_new_dict();

	plist_dict_set_item(props, "ConnectionSpeed", plist_new_uint(MUX_CONNECTION_SPEED));
	plist_dict_set_item(props, "ConnectionType", plist_new_string("USB"));
	plist_dict_set_item(props, "DeviceID", plist_new_uint(dev->device_id));
	plist_dict_set_item(props, "LocationID", plist_new_uint(location_id(dev->udid)));
	plist_dict_set_item(props, "ProductID", plist_new_uint(MUX_PRODUCT_ID));
	plist_dict_set_item(props, "SerialNumber", plist_new_string(dev->udid));
	plist_dict_set_item(e, "DeviceID", plist_new_uint(dev->device_id));
	plist_dict_set_item(e, "MessageType", plist_new_string("Attached"));
	plist_dict_set_item(e, "Properties", props);
	return e;
}

static int devlist_refresh(struct mux *m)
{
	plist_t p, list;
	int i;

	if (m->devlist_xml)
		return 0;
	p = plist_new_dict();
	list = plist_new_array();
	for (i = 0; i < m->sim->n_devices; i++)
		if (m->sim->devices[i]->attached)
			plist_array_append_item(list, device_entry(m->sim->devices[i]));
	plist_dict_set_item(p, "DeviceList", list);
	plist_to_xml(p, &m->devlist_xml, &m->devlist_len);
	plist_free(p);
	return m->devlist_xml ? 0 : -ENOMEM;
}

static void devlist_invalidate(struct mux *m)
{
	if (m->devlist_xml)
		plist_to_xml_free(m->devlist_xml);
	m->devlist_xml = NULL;
	m->devlist_len = 0;
}

/* Queues an event on every Listen client and flushes; drops clients that cannot keep up. */
static void broadcast(struct mux *m, plist_t event)
{
	struct mux_client *c, *next;
	char *xml = NULL;
	uint32_t len = 0;

	plist_to_xml(event, &xml, &len);
	if (!xml)
		return;
	for (c = m->clients; c; c = next) {
		next = c->next;
		if (!c->listening || c->closing)
			continue;
		if (client_queue(c, MUX_MSG_PLIST, 0, xml, len) < 0 || client_flush(c) < 0) {
			log_warn("mux: dropping listener %u (%s): cannot deliver events", c->id,
			         c->prog_name);
			client_close(c);
		}
	}
	plist_to_xml_free(xml);
}

static void device_changed(struct mux *m, struct sim_device *dev, bool attached)
{
	plist_t ev;

	devlist_invalidate(m);
	if (attached) {
		ev = device_entry(dev);
	} else {
		ev = plist_new_dict();
		plist_dict_set_item(ev, "DeviceID", plist_new_uint(dev->device_id));
		plist_dict_set_item(ev, "MessageType", plist_new_string("Detached"));
	}
	broadcast(m, ev);
	plist_free(ev);
}

static void device_paired(struct mux *m, struct sim_device *dev)
{
	plist_t ev;

	if (!dev->attached)
		return;
	ev = plist_new_dict();
	plist_dict_set_item(ev, "DeviceID", plist_new_uint(dev->device_id));
	plist_dict_set_item(ev, "MessageType", plist_new_string("Paired"));
	broadcast(m, ev);
	plist_free(ev);
}

/* The model's announcements: what Listen clients must hear. */
static void mux_on_event(struct sim *sim, struct sim_device *dev, enum sim_event ev, void *data)
{
	struct mux *m = data;

	(void)sim;
	switch (ev) {
	case SIM_EVENT_ATTACHED:
	case SIM_EVENT_DETACHED:
		device_changed(m, dev, ev == SIM_EVENT_ATTACHED);
		break;
	case SIM_EVENT_PAIRED:
		device_paired(m, dev);
		break;
	case SIM_EVENT_CHANGED:
		break;
	}
}

/* ---- requests ---- */

static int handle_list_devices(struct mux_client *c, uint32_t tag)
{
	struct mux *m = c->mux;
	int r = devlist_refresh(m);

	if (r < 0)
		return r;
	return client_queue(c, MUX_MSG_PLIST, tag, m->devlist_xml, m->devlist_len);
}

static int handle_listen(struct mux_client *c, uint32_t tag, const struct mux_request *req)
{
	struct sim *sim = c->mux->sim;
	int i, r;

	r = client_send_result(c, tag, MUX_RESULT_OK);
	if (r < 0)
		return r;
	c->listening = true;
	snprintf(c->prog_name, sizeof(c->prog_name), "%s", req->prog_name);
	for (i = 0; i < sim->n_devices; i++) {
		plist_t ev;

		if (!sim->devices[i]->attached)
			continue;
		ev = device_entry(sim->devices[i]);
		r = client_send_plist(c, 0, ev);
		plist_free(ev);
		if (r < 0)
			return r;
	}
	return 0;
}

static int handle_connect(struct mux_client *c, uint32_t tag, const struct mux_request *req)
{
	struct sim *sim = c->mux->sim;
	struct sim_device *dev;
	uint16_t port;

	if (!req->has_port || req->port_number > 0xffff || req->device_id == 0)
		return client_send_result(c, tag, MUX_RESULT_BADCOMMAND);
	port = mux_request_port(req);
	dev = sim_device_by_id(sim, req->device_id);
	if (!dev)
		return client_send_result(c, tag, MUX_RESULT_BADDEV);
	if (!sim_port_open(sim, dev, port))
		return client_send_result(c, tag, MUX_RESULT_CONNREFUSED);
	c->handover = true;
	c->connect_dev = dev;
	c->connect_port = port;
	return client_send_result(c, tag, MUX_RESULT_OK);
}

static int handle_read_buid(struct mux_client *c, uint32_t tag)
{
	plist_t p = plist_new_dict();
	int r;

	plist_dict_set_item(p, "BUID", plist_new_string(c->mux->sim->buid));
	r = client_send_plist(c, tag, p);
	plist_free(p);
	return r;
}

static int handle_read_pair_record(struct mux_client *c, uint32_t tag,
                                   const struct mux_request *req)
{
	plist_t rec, p;
	char *xml = NULL;
	uint32_t len = 0;
	int r;

	if (!req->record_id[0])
		return client_send_result(c, tag, MUX_RESULT_EINVAL);
	rec = sim_pair_record_get(c->mux->sim, req->record_id);
	if (!rec)
		return client_send_result(c, tag, 2 /* ENOENT */);
	plist_to_xml(rec, &xml, &len);
	plist_free(rec);
	if (!xml)
		return -ENOMEM;
	p = plist_new_dict();
	plist_dict_set_item(p, "PairRecordData", plist_new_data(xml, len));
	plist_to_xml_free(xml);
	r = client_send_plist(c, tag, p);
	plist_free(p);
	return r;
}

static int handle_save_pair_record(struct mux_client *c, uint32_t tag,
                                   const struct mux_request *req)
{
	struct sim *sim = c->mux->sim;
	struct sim_device *dev;
	plist_t rec = NULL;
	int r;

	if (!req->record_id[0] || !req->record_data || req->record_len > UINT32_MAX)
		return client_send_result(c, tag, MUX_RESULT_EINVAL);
	plist_from_memory((const char *)req->record_data, (uint32_t)req->record_len, &rec);
	if (!rec || plist_get_node_type(rec) != PLIST_DICT) {
		plist_free(rec);
		return client_send_result(c, tag, MUX_RESULT_EINVAL);
	}
	r = sim_pair_record_set(sim, req->record_id, rec);
	if (r < 0)
		return client_send_result(c, tag, MUX_RESULT_EINVAL);
	r = client_send_result(c, tag, MUX_RESULT_OK);
	dev = sim_device_by_udid(sim, req->record_id);
	if (dev)
		sim_device_paired(sim, dev);
	return r;
}

static int handle_delete_pair_record(struct mux_client *c, uint32_t tag,
                                     const struct mux_request *req)
{
	if (!req->record_id[0])
		return client_send_result(c, tag, MUX_RESULT_EINVAL);
	if (sim_pair_record_delete(c->mux->sim, req->record_id) < 0)
		return client_send_result(c, tag, 2 /* ENOENT */);
	return client_send_result(c, tag, MUX_RESULT_OK);
}

static int handle_list_listeners(struct mux_client *c, uint32_t tag)
{
	struct mux_client *l;
	plist_t p = plist_new_dict(), list = plist_new_array();
	int r;

	for (l = c->mux->clients; l; l = l->next) {
		plist_t e;

		if (!l->listening)
			continue;
		e = plist_new_dict();
		plist_dict_set_item(e, "ID String", plist_new_uint(l->id));
		plist_dict_set_item(e, "ProgName", plist_new_string(l->prog_name));
		plist_dict_set_item(e, "ConnType", plist_new_uint(0));
		plist_array_append_item(list, e);
	}
	plist_dict_set_item(p, "ListenerList", list);
	r = client_send_plist(c, tag, p);
	plist_free(p);
	return r;
}

/* One whole message. 0, or -errno to drop the client. */
static int handle_message(struct mux_client *c, const struct mux_header *h, const uint8_t *payload)
{
	struct mux_request req;
	const char *t;
	int r;

	if (h->version != 1 || h->message != MUX_MSG_PLIST) {
		log_debug("mux: client %u: version %u message %u not supported", c->id, h->version,
		          h->message);
		return client_send_result(c, h->tag, MUX_RESULT_BADCOMMAND);
	}
	r = mux_decode_request(payload, h->length - MUX_HEADER_SIZE, &req);
	if (r < 0) {
		mux_request_done(&req);
		log_debug("mux: client %u: malformed request", c->id);
		return client_send_result(c, h->tag, MUX_RESULT_BADCOMMAND);
	}
	t = req.message_type;
	log_debug("mux: client %u (%s): %s tag %u", c->id, req.prog_name, t, h->tag);
	if (c->listening)
		r = client_send_result(c, h->tag, MUX_RESULT_BADCOMMAND);
	else if (strcmp(t, "ListDevices") == 0)
		r = handle_list_devices(c, h->tag);
	else if (strcmp(t, "Listen") == 0)
		r = handle_listen(c, h->tag, &req);
	else if (strcmp(t, "Connect") == 0)
		r = handle_connect(c, h->tag, &req);
	else if (strcmp(t, "ReadBUID") == 0)
		r = handle_read_buid(c, h->tag);
	else if (strcmp(t, "ReadPairRecord") == 0)
		r = handle_read_pair_record(c, h->tag, &req);
	else if (strcmp(t, "SavePairRecord") == 0)
		r = handle_save_pair_record(c, h->tag, &req);
	else if (strcmp(t, "DeletePairRecord") == 0)
		r = handle_delete_pair_record(c, h->tag, &req);
	else if (strcmp(t, "ListListeners") == 0)
		r = handle_list_listeners(c, h->tag);
	else
		r = client_send_result(c, h->tag, MUX_RESULT_BADCOMMAND);
	mux_request_done(&req);
	return r;
}

/* Handles every complete message in the input buffer. 0 or -errno (drop). */
static int client_process(struct mux_client *c)
{
	size_t off = 0;
	int r = 0;

	while (!c->handover && !c->closing) {
		struct mux_header h;

		r = mux_parse_header(c->in + off, c->in_len - off, &h);
		if (r == -EAGAIN) {
			r = 0;
			break;
		}
		if (r < 0) {
			/* No way to find the next message: answer and hang up. */
			r = client_send_result(c, h.tag, MUX_RESULT_BADCOMMAND);
			c->closing = true;
			break;
		}
		if (c->in_len - off < h.length) {
			r = 0;
			break;
		}
		r = handle_message(c, &h, c->in + off + MUX_HEADER_SIZE);
		off += h.length;
		if (r < 0)
			break;
	}
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
	return r;
}

static int client_read(struct mux_client *c)
{
	for (;;) {
		ssize_t n;

		if (c->in_len == c->in_cap) {
			size_t cap = c->in_cap ? c->in_cap * 2 : 4096;
			uint8_t *p;

			if (cap > MUX_REQUEST_MAX + 4096)
				cap = MUX_REQUEST_MAX + 4096;
			if (cap <= c->in_len)
				return 0; /* full: process first */
			p = realloc(c->in, cap);
			if (!p)
				return -ENOMEM;
			c->in = p;
			c->in_cap = cap;
		}
		n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		c->in_len += (size_t)n;
	}
}

static void client_event(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct mux_client *c = data;
	int r = 0;

	(void)loop;
	(void)fd;
	if (c->handover) {
		/* Waiting to flush the Connect result; the device half reads what follows. */
		if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLOUT))
			r = -ECONNRESET;
	} else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (c->listening || c->closing) {
			/* Nothing more is expected from these: discard, notice hang-ups. */
			uint8_t junk[512];
			ssize_t n = recv(c->fd, junk, sizeof(junk), MSG_DONTWAIT);

			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				r = -ECONNRESET;
		} else {
			for (;;) {
				size_t before = c->in_len;

				r = client_read(c);
				if (r == 0)
					r = client_process(c);
				/* Input buffer full with a pending request: read again after
				 * processing freed space. */
				if (r < 0 || c->in_len == before || c->handover || c->closing ||
				    c->in_len < c->in_cap)
					break;
			}
		}
	}
	if (r == 0 && (outbuf_pending(&c->out) || (events & EPOLLOUT)))
		r = client_flush(c);
	if (r < 0) {
		client_close(c);
		return;
	}
	if (!outbuf_pending(&c->out)) {
		if (c->handover) {
			client_handover(c);
			return;
		}
		if (c->closing) {
			client_close(c);
			return;
		}
	}
}

static void listener_event(struct loop *loop, int lfd, uint32_t events, void *data)
{
	struct mux *m = data;

	(void)events;
	for (;;) {
		struct mux_client *c;
		int fd = listener_accept(loop, lfd);

		if (fd < 0)
			return;
		if (m->n_clients >= MUX_CLIENTS_MAX) {
			log_warn("mux: too many clients, refusing one");
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c || loop_add_fd(loop, fd, EPOLLIN, client_event, c) < 0) {
			free(c);
			close(fd);
			continue;
		}
		c->mux = m;
		c->fd = fd;
		c->id = ++m->next_listener_id;
		c->next = m->clients;
		if (m->clients)
			m->clients->prev = c;
		m->clients = c;
		m->n_clients++;
	}
}

/* ---- setup ---- */

int mux_new(struct sim *sim, struct mux **ret)
{
	struct mux *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	m->sim = sim;
	r = sim_subscribe(sim, mux_on_event, m);
	if (r < 0) {
		free(m);
		return r;
	}
	*ret = m;
	return 0;
}

static int listen_unix(struct mux_listener *l, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, r;

	if (!*path || strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked above */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 512) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	l->fd = fd;
	snprintf(l->unix_path, sizeof(l->unix_path), "%s", path);
	snprintf(l->addr, sizeof(l->addr), "UNIX:%s", path);
	return 0;
}

static int listen_tcp(struct mux_listener *l, const char *spec)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
		                  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[128], portstr[16], hbuf[NI_MAXHOST], pbuf[NI_MAXSERV];
	const char *colon = strrchr(spec, ':');
	size_t hl;
	int fd = -1, one = 1, r;

	if (!colon || !colon[1] || strlen(colon + 1) >= sizeof(portstr))
		return -EINVAL;
	hl = (size_t)(colon - spec);
	if (spec[0] == '[' && hl >= 2 && spec[hl - 1] == ']') {
		spec++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, spec, hl);
	host[hl] = '\0';
	snprintf(portstr, sizeof(portstr), "%s", colon + 1);
	if (getaddrinfo(host, portstr, &hints, &ai) != 0 || !ai)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		r = -errno;
		goto out;
	}
	if (getnameinfo((struct sockaddr *)&ss, sl, hbuf, sizeof(hbuf), pbuf, sizeof(pbuf),
	                NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		r = -EINVAL;
		goto out;
	}
	if (ss.ss_family == AF_INET6)
		snprintf(l->addr, sizeof(l->addr), "[%.100s]:%.16s", hbuf, pbuf);
	else
		snprintf(l->addr, sizeof(l->addr), "%.100s:%.16s", hbuf, pbuf);
	l->fd = fd;
	l->unix_path[0] = '\0';
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return r;
}

int mux_listen(struct mux *m, const char *spec)
{
	struct mux_listener *l;
	int r;

	if (m->n_listeners >= MUX_LISTENERS_MAX)
		return -E2BIG;
	l = &m->listeners[m->n_listeners];
	if (strncasecmp(spec, "unix:", 5) == 0)
		r = listen_unix(l, spec + 5);
	else
		r = listen_tcp(l, spec);
	if (r < 0)
		return r;
	r = loop_add_fd(m->sim->loop, l->fd, EPOLLIN, listener_event, m);
	if (r < 0) {
		close(l->fd);
		if (l->unix_path[0])
			(void)unlink(l->unix_path);
		return r;
	}
	m->n_listeners++;
	return 0;
}

void mux_free(struct mux *m)
{
	int i;

	if (!m)
		return;
	sim_unsubscribe(m->sim, mux_on_event, m);
	while (m->clients)
		client_close(m->clients);
	for (i = 0; i < m->n_listeners; i++) {
		loop_del_fd(m->sim->loop, m->listeners[i].fd);
		close(m->listeners[i].fd);
		if (m->listeners[i].unix_path[0])
			(void)unlink(m->listeners[i].unix_path);
	}
	devlist_invalidate(m);
	free(m);
}
