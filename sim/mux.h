/* SPDX-License-Identifier: MIT */
/*
 * mux: the usbmuxd half of cradle-sim. Listening sockets (UNIX and TCP), one non-blocking
 * connection per client, the plist protocol of usbmuxd (version 1, XML replies), Listen
 * clients and their Attached/Detached/Paired events, the cached ListDevices reply.
 *
 * Ownership: struct mux is created/freed by mux_new()/mux_free(). It owns its listeners and
 * client connections; the devices and pair records it serves are the model's (sim.h), which it
 * reads and changes only through sim_*() and hears about through its subscription. A client
 * that Connects to a device port is handed to the device half and forgotten here. Everything
 * runs on the loop thread.
 */
#ifndef CRADLE_SIM_MUX_H
#define CRADLE_SIM_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <plist/plist.h>

struct sim;
struct sim_device;

#define MUX_HEADER_SIZE   16
#define MUX_REQUEST_MAX   (1u << 20)  /* whole request, header included */
#define MUX_OUTPUT_MAX    (64u << 20) /* queued bytes per client before it is dropped */
#define MUX_LISTENERS_MAX 8
#define MUX_CLIENTS_MAX   4096

/* Header message types (docs/device-protocols.md "usbmuxd"). */
enum {
	MUX_MSG_RESULT = 1,
	MUX_MSG_CONNECT = 2,
	MUX_MSG_LISTEN = 3,
	MUX_MSG_DEVICE_ADD = 4,
	MUX_MSG_DEVICE_REMOVE = 5,
	MUX_MSG_DEVICE_PAIRED = 6,
	MUX_MSG_PLIST = 8,
};

/* Result numbers. */
enum {
	MUX_RESULT_OK = 0,
	MUX_RESULT_BADCOMMAND = 1,
	MUX_RESULT_BADDEV = 2,
	MUX_RESULT_CONNREFUSED = 3,
	MUX_RESULT_EINVAL = 22,
};

struct mux_header {
	uint32_t length; /* whole message, header included */
	uint32_t version;
	uint32_t message;
	uint32_t tag;
};

/* One decoded plist request; everything copied out of the plist, bounded. */
struct mux_request {
	char message_type[32];
	char prog_name[64];
	char client_version[64];
	uint32_t device_id;   /* Connect, SavePairRecord (0 = absent) */
	uint32_t port_number; /* Connect, as sent (htons'ed); see mux_request_port() */
	bool has_port;
	char record_id[64];   /* *PairRecord: the UDID */
	uint8_t *record_data; /* SavePairRecord: owned, free with mux_request_done() */
	size_t record_len;
};

struct mux_listener {
	int fd;
	char unix_path[108]; /* unlinked on free; "" for TCP */
	char addr[160];      /* as printed on the ready line */
};

struct mux_client;

struct mux {
	struct sim *sim;
	struct mux_listener listeners[MUX_LISTENERS_MAX];
	int n_listeners;
	struct mux_client *clients; /* doubly linked */
	int n_clients;
	uint32_t next_listener_id;
	char *devlist_xml; /* cached ListDevices payload; NULL = stale */
	uint32_t devlist_len;
};

/* ---- the wire format, pure (fuzz_usbmux) ---- */

/* Parses the 16-byte header at buf. Returns 0 when a header is there (then *h is set),
 * -EAGAIN when fewer than 16 bytes, -EBADMSG when length is < 16 or > MUX_REQUEST_MAX. */
int mux_parse_header(const uint8_t *buf, size_t len, struct mux_header *h);
/* Decodes an XML (or binary) plist request payload. 0, or -EBADMSG (not a dict, no
 * MessageType, wrong key types). Call mux_request_done() in both cases. */
int mux_decode_request(const uint8_t *payload, size_t len, struct mux_request *req);
void mux_request_done(struct mux_request *req);
/* PortNumber arrives htons'ed (libusbmuxd puts htons(port) in the integer): swap back. */
uint16_t mux_request_port(const struct mux_request *req);

/* ---- the service ---- */

/* Serves the devices of sim (subscribes to its events). 0 or -errno. */
int mux_new(struct sim *sim, struct mux **ret);
/* "unix:/path" (or "UNIX:/path") or "HOST:PORT" ("127.0.0.1:0" picks a free port). The
 * address actually bound is kept in listeners[i].addr. 0 or -errno. */
int mux_listen(struct mux *m, const char *spec);
/* Closes everything and unsubscribes; NULL-safe. */
void mux_free(struct mux *m);

#endif
