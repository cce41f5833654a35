/* SPDX-License-Identifier: MIT */
/*
 * svc: the contract between devport.c (connections, TLS, the service-port table) and the
 * device-side services started through lockdownd StartService (svc_*.c).
 *
 * A service sees only bytes and framed plists; whether TLS is on, how the socket is polled
 * and when it is closed is devport's business. Everything runs on the loop thread.
 */
#ifndef CRADLE_SVC_H
#define CRADLE_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <plist/plist.h>

struct sim;
struct sim_device;
struct sim_notice;
struct svc_conn;

/* Largest plist frame a service accepts from a client. */
#define SVC_FRAME_MAX (16u * 1024 * 1024)

struct svc_ops {
	const char *name; /* lockdown service name, e.g. "com.apple.mobilebackup2" */
	bool ssl; /* answer StartService with EnableServiceSSL = this (unless --plaintext) */
	/* Connected (after the TLS handshake when ssl). May write. 0 or -errno (closes). */
	int (*open)(struct svc_conn *c);
	/* Called whenever unread input exists, with all of it. Returns the bytes consumed (0 =
	 * wait for more), or -errno to close the connection. */
	ssize_t (*input)(struct svc_conn *c, const uint8_t *buf, size_t len);
	/* The connection is going away (client closed, device detached, or svc_close()). Free the
	 * per-connection state here. Must not write. */
	void (*close)(struct svc_conn *c);
	/* Optional: the model pushes n (a live syslog line, a changed value) to this open
	 * connection. Returns 1 if it took it (wrote something), 0 if not. May write, must not
	 * close. */
	int (*notice)(struct svc_conn *c, const struct sim_notice *n);
};

/* ---- provided by devport.c ---- */

/* Queues bytes for the client (through TLS when on). 0 or -ENOBUFS past the output cap. */
int svc_write(struct svc_conn *c, const void *buf, size_t len);
/* Queues a u32 big-endian length then the plist, XML or binary. 0 or -errno. */
int svc_write_plist(struct svc_conn *c, plist_t p, bool binary);
/* Parses one frame (u32 BE length + XML or binary plist) from buf.
 * Returns bytes consumed and sets *ret (caller frees), 0 if more bytes are needed, or
 * -EBADMSG (length over SVC_FRAME_MAX, or not a plist). */
ssize_t svc_parse_frame(const uint8_t *buf, size_t len, plist_t *ret);
/* Closes after pending output is flushed; close() runs then. */
void svc_close(struct svc_conn *c);
struct sim *svc_sim(struct svc_conn *c);
struct sim_device *svc_device(struct svc_conn *c);
/* A per-connection slot owned by the service. */
void **svc_state(struct svc_conn *c);
/* One-shot timer on the connection; cancelled automatically when the connection closes. */
typedef void (*svc_timer_fn)(struct svc_conn *c);
uint64_t svc_add_timer(struct svc_conn *c, uint64_t delay_ms, svc_timer_fn fn);

/* ---- provided by svc_*.c ---- */
extern const struct svc_ops svc_diagnostics_relay; /* + the fallback name, see devport.c */
extern const struct svc_ops svc_notification_proxy;
extern const struct svc_ops svc_syslog_relay;
extern const struct svc_ops svc_mobilebackup2;

#endif
