/* SPDX-License-Identifier: MIT */
/*
 * durable: the small pieces every crash-safe file of the project uses (the agent's outbox,
 * command table and state file): replacing a whole file so that a crash or power cut leaves
 * either the old or the new content, never a mix; CRC-32 to recognise a torn or damaged
 * record; little-endian integer encoding for on-disk records; positioned reads and writes that
 * finish; and fsync of a directory so that a create or rename survives a power cut.
 *
 * Replacement is the classic sequence: write a temp file in the same directory
 * ("<path>.tmp", so the rename cannot cross file systems), fdatasync it, rename it over path,
 * fsync the directory. One writer per path at a time (the temp name is fixed, so a temp file
 * left by a crash is reused, not accumulated).
 */
#ifndef CRADLE_DURABLE_H
#define CRADLE_DURABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A replacement in progress: write the new content into fd, then commit or close. */
struct durable_file {
	int fd;         /* the temp file, O_RDWR; after a commit it is the file at path */
	bool committed; /* renamed over path */
	char *path;
	char *tmp;
};

/*
 * Creates "<path>.tmp" with mode (a stale one is removed first; symlinks are not followed).
 * 0 or -errno; on failure df needs no durable_file_close() (it does no harm).
 */
int durable_file_open(struct durable_file *df, const char *path, mode_t mode);

/*
 * fdatasync, rename over path, fsync of the directory. 0, or -errno: when df->committed is
 * still false path is untouched, otherwise the new content is in place but the directory
 * fsync failed (it may not survive a power cut). fd stays open either way.
 */
int durable_file_commit(struct durable_file *df);

/* Hands the fd over to the caller (typically after a commit, to keep using the new file). */
int durable_file_take_fd(struct durable_file *df);

/* Closes the fd unless taken, removes the temp file unless committed, frees. Idempotent. */
void durable_file_close(struct durable_file *df);

/* The whole sequence for a buffer: path then holds exactly buf. 0 or -errno. */
int durable_replace(const char *path, const void *buf, size_t len, mode_t mode);

/* pwrite/pread of exactly len bytes at off, retrying on EINTR and short transfers. 0 or -errno;
 * a write that makes no progress is -EIO, a read that hits the end of file -ENODATA. */
int durable_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
int durable_pread_all(int fd, void *buf, size_t len, uint64_t off);

/* CRC-32 (IEEE 802.3, the zlib one) of n bytes. Thread-safe. */
uint32_t durable_crc32(const void *buf, size_t n);

/*
 * The space of the file system holding path: what an unprivileged writer may still use
 * (f_bavail) and its size, in bytes. Either pointer may be NULL. 0 or -errno.
 */
int durable_free_bytes(const char *path, uint64_t *ret_free, uint64_t *ret_total);

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
