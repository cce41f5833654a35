/* SPDX-License-Identifier: MIT */
/*
 * outbuf: what a slow reader has not taken yet. Every client of the simulator gets one, with a
 * cap chosen by its owner, so a client that stops reading costs at most that much memory and
 * is then dropped instead of growing the process.
 */
#include "outbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int outbuf_append(struct outbuf *b, const void *p, size_t n, size_t max)
{
	size_t need;

	if (b->off > 0 && b->off == b->len)
		b->off = b->len = 0;
	if (n > max || b->len - b->off > max - n)
		return -ENOBUFS;
	need = b->len + n;
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		uint8_t *d;

		/* Reclaim the sent prefix before growing. */
		if (b->off > 0) {
			memmove(b->data, b->data + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
			need = b->len + n;
		}
		while (cap < need)
			cap *= 2;
		if (cap > b->cap) {
			d = realloc(b->data, cap);
			if (!d)
				return -ENOMEM;
			b->data = d;
			b->cap = cap;
		}
	}
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int outbuf_flush(struct outbuf *b, int fd)
{
	while (b->off < b->len) {
		ssize_t n =
		        send(fd, b->data + b->off, b->len - b->off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 1;
			return -errno;
		}
		b->off += (size_t)n;
	}
	b->off = b->len = 0;
	return 0;
}

bool outbuf_pending(const struct outbuf *b)
{
	return b->off < b->len;
}

void outbuf_free(struct outbuf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}
