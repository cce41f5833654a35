/* SPDX-License-Identifier: MIT */
/*
 * durable: the small pieces every crash-safe file of the project uses (the agent's outbox,
 * command table and state file): CRC-32 to recognise a torn or damaged record, little-endian
 * integer encoding for on-disk records, and fsync of a directory so that a create or rename
 * survives a power cut.
 */
#ifndef CRADLE_DURABLE_H
#define CRADLE_DURABLE_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32 (IEEE 802.3, the zlib one) of n bytes. Thread-safe. */
uint32_t durable_crc32(const void *buf, size_t n);

/* fsync(2) of the directory dir. 0 or -errno. */
int durable_fsync_dir(const char *dir);
/* fsync(2) of the directory that contains path. 0 or -errno. */
int durable_fsync_parent(const char *path);

static inline void durable_put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t durable_get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

#endif
