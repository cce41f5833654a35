/* SPDX-License-Identifier: MIT */
/*
 * lockdown: lockdownd of a simulated device (port 62078). Request dispatch is a pure-ish
 * function over (device, session, request) -> (reply, action) so the fuzz target and unit tests
 * drive it without sockets; lockdown_ops glues it to a devport connection (framing, TLS switch).
 *
 * Ownership: the reply is the caller's. The session lives in the connection's svc_state slot.
 */
#ifndef CRADLE_SIM_LOCKDOWN_H
#define CRADLE_SIM_LOCKDOWN_H

#include <stdbool.h>

#include <plist/plist.h>

#include "sim.h"
#include "svc.h"

struct lockdown_session {
	bool active; /* StartSession succeeded, no StopSession yet */
	bool ssl;    /* that session asked for TLS */
	char session_id[40];
	char host_id[64];
	char label[64]; /* the client's Label (tool name), for the journal */
};

enum lockdown_action {
	LOCKDOWN_CONTINUE,
	LOCKDOWN_START_TLS, /* after this reply (sent in clear), TLS on the same socket */
	LOCKDOWN_STOP_TLS,  /* after this reply (sent over TLS), close_notify, then plaintext */
	LOCKDOWN_CLOSE,     /* after this reply */
};

/* Answers one request. *ret_reply is always set (a dict with Request echoed when the request
 * had one; Error on failure). 0, or -ENOMEM. */
int lockdown_dispatch(struct sim *sim, struct sim_device *dev, struct lockdown_session *s,
                      plist_t req, plist_t *ret_reply, enum lockdown_action *ret_action);

extern const struct svc_ops lockdown_ops;

#endif
