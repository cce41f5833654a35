/* SPDX-License-Identifier: MIT */
/*
 * outbuf: a bounded output queue for a non-blocking socket (the mux and control clients).
 * The owner embeds struct outbuf (zero-initialised) and frees it with outbuf_free().
 */
#ifndef CRADLE_SIM_OUTBUF_H
#define CRADLE_SIM_OUTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct outbuf {
	uint8_t *data;
	size_t off, len, cap; /* unsent bytes are data[off..len) */
};

/* Queues n bytes. 0, -ENOBUFS when more than max bytes would be pending, or -ENOMEM. */
int outbuf_append(struct outbuf *b, const void *p, size_t n, size_t max);
/* Sends what the socket takes now (MSG_NOSIGNAL). 0 = all sent, 1 = bytes still pending
 * (wait for EPOLLOUT), -errno = the peer is gone. */
int outbuf_flush(struct outbuf *b, int fd);
bool outbuf_pending(const struct outbuf *b);
void outbuf_free(struct outbuf *b);

#endif
