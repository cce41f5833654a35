/* SPDX-License-Identifier: MIT */
/*
 * control: cradle-sim's control socket (sim/README.md): JSON lines on a UNIX socket, one reply
 * line per request. Tests attach/detach devices, change values and pairing, and read the
 * journal of what clients asked each device to do.
 *
 * Ownership: struct control is created by control_new() and freed by control_free(); it owns
 * the listening socket (unlinked on free) and its client connections.
 */
#ifndef CRADLE_SIM_CONTROL_H
#define CRADLE_SIM_CONTROL_H

#include <stddef.h>

struct sim;
struct control;

#define CONTROL_LINE_MAX    (1u << 20)
#define CONTROL_OUTPUT_MAX  (64u << 20)
#define CONTROL_CLIENTS_MAX 64

/* spec: "unix:/path" or a plain path. 0 or -errno. */
int control_new(struct sim *sim, const char *spec, struct control **ret);
void control_free(struct control *ctl); /* NULL-safe */
const char *control_path(const struct control *ctl);

/* Handles one request line; returns the reply (one JSON object, no newline), caller frees.
 * Never NULL except on allocation failure. Pure with respect to sockets (fuzzable). */
char *control_handle_line(struct sim *sim, const char *line, size_t len);

#endif
