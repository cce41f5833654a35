/* SPDX-License-Identifier: MIT */
/*
 * devport: the device side of a usbmuxd Connect. Owns every connection to a simulated
 * device's ports (62078 lockdownd and the service ports StartService hands out), their
 * non-blocking I/O with bounded input and output buffers, TLS through memory BIOs (so it can
 * start and stop on a live socket, as lockdownd's StartSession/StopSession do), the per-device
 * table of reserved service ports with expiry, and the HostIDs each device trusts.
 * It implements the I/O half of svc.h; lockdown.c and svc_*.c sit on top. To the rest of the
 * simulator it is the model's port provider (struct sim_ports in sim.h): the mux half hands
 * it connected clients through the model and never calls it by name.
 *
 * Ownership: devport_init() hangs the keys (crypto.h) on sim->ports_data until devport_free().
 * Connections and reservations live in dev->port_state (emptied when the device detaches,
 * freed with the device). Everything runs on the loop thread.
 */
#ifndef CRADLE_SIM_DEVPORT_H
#define CRADLE_SIM_DEVPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "sim.h"
#include "svc.h"

#define DEVPORT_OUTPUT_MAX      (32u << 20) /* queued bytes per connection (svc_write -ENOBUFS) */
#define DEVPORT_INPUT_MAX       (SVC_FRAME_MAX + 4) /* unconsumed bytes per connection */
#define DEVPORT_CONNS_MAX       64                  /* open connections per device */
#define DEVPORT_RESV_MAX        32                  /* reserved service ports per device */
#define DEVPORT_RESV_TTL_MS     30000 /* a reservation not connected to within this expires */
#define DEVPORT_TRUST_MAX       16    /* trusted HostIDs per device (oldest forgotten) */
#define DEVPORT_CLOSE_LINGER_MS 5000  /* svc_close: give up flushing after this */

struct crypto;

/* Makes the keys and registers devport as sim's port provider, with lockdownd on
 * SIM_LOCKDOWN_PORT (main passes lockdown_ops: devport does not know its services). Once per
 * sim; 0 or -errno. */
int devport_init(struct sim *sim, const struct svc_ops *lockdownd);
/* Unregisters and frees the keys; after sim_done(). NULL-safe. */
void devport_free(struct sim *sim);
/* The keys and certificates, NULL before devport_init(). */
struct crypto *devport_crypto(struct sim *sim);

/* Reserves a free service port on dev for ops (one connection, DEVPORT_RESV_TTL_MS to connect).
 * 0 and *ret_port, or -ENOSPC (too many reservations) / -ENOMEM. */
int devport_reserve(struct sim *sim, struct sim_device *dev, const struct svc_ops *ops,
                    uint16_t *ret_port);

/* Trust store of a device (who may StartSession). */
bool devport_host_trusted(struct sim_device *dev, const char *host_id);
int devport_trust_host(struct sim_device *dev, const char *host_id); /* 0 or -ENOMEM */
void devport_untrust_host(struct sim_device *dev, const char *host_id);

/* The input() loop every framed service needs: hands each complete frame in buf to handle
 * (the plist is freed after it returns). handle returns 0 to go on, 1 to stop after this frame
 * (what follows is not plist, e.g. TLS), or -errno. Returns bytes consumed or -errno, the shape
 * of svc_ops.input. */
typedef int (*devport_frame_fn)(struct svc_conn *c, plist_t req);
ssize_t devport_input_frames(struct svc_conn *c, const uint8_t *buf, size_t len,
                             devport_frame_fn handle);

/* lockdownd's TLS switch on its own connection. start: everything after the bytes consumed so
 * far is TLS (server side; the plaintext reply already queued goes out first). stop: sends
 * close_notify after what is queued; plaintext resumes once the client's close_notify arrives. */
int devport_start_tls(struct svc_conn *c);
int devport_stop_tls(struct svc_conn *c);
bool devport_tls_active(struct svc_conn *c);

/* What to do with the device once this connection has been flushed and closed (diagnostics
 * Restart / Shutdown): the device must not vanish before the client has read the reply. */
enum devport_after {
	DEVPORT_AFTER_NOTHING,
	DEVPORT_AFTER_RESTART, /* sim_device_restart() */
	DEVPORT_AFTER_DETACH,  /* sim_device_detach(): no return */
};
void devport_after_close(struct svc_conn *c, enum devport_after what);

#endif
