/* SPDX-License-Identifier: MIT */
/* durable: see durable.h. The CRC table is built once, on first use, under pthread_once. */
#include "durable.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
		crc_table[i] = c;
	}
}

uint32_t durable_crc32(const void *buf, size_t n)
{
	const uint8_t *p = buf;
	uint32_t c = 0xffffffffu;

	pthread_once(&crc_once, crc_init);
	while (n--)
		c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
	return c ^ 0xffffffffu;
}

int durable_free_bytes(const char *path, uint64_t *ret_free, uint64_t *ret_total)
{
	struct statvfs st;

	if (statvfs(path, &st) < 0)
		return -errno;
	if (ret_free)
		*ret_free = (uint64_t)st.f_bavail * st.f_frsize;
	if (ret_total)
		*ret_total = (uint64_t)st.f_blocks * st.f_frsize;
	return 0;
}

int durable_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		r = -errno;
	close(fd);
	return r;
}

int durable_fsync_parent(const char *path)
{
	char *copy = strdup(path);
	int r;

	if (!copy)
		return -ENOMEM;
	r = durable_fsync_dir(dirname(copy));
	free(copy);
	return r;
}

int durable_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int durable_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ENODATA;
		p += n;
		off += (uint64_t)n;
		len -= (size_t)n;
	}
	return 0;
}

int durable_file_open(struct durable_file *df, const char *path, mode_t mode)
{
	int r;

	*df = (struct durable_file){ .fd = -1 };
	df->path = strdup(path);
	if (!df->path || asprintf(&df->tmp, "%s.tmp", path) < 0) {
		df->tmp = NULL;
		r = -ENOMEM;
		goto fail;
	}
	/* a temp file left by a crash: its content was never committed */
	if (unlink(df->tmp) < 0 && errno != ENOENT) {
		r = -errno;
		goto fail;
	}
	df->fd = open(df->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	if (df->fd < 0) {
		r = -errno;
		goto fail;
	}
	return 0;
fail:
	free(df->path);
	free(df->tmp);
	*df = (struct durable_file){ .fd = -1 };
	return r;
}

int durable_file_commit(struct durable_file *df)
{
	if (df->fd < 0 || df->committed)
		return -EBADF;
	if (fdatasync(df->fd) < 0 || rename(df->tmp, df->path) < 0)
		return -errno;
	df->committed = true;
	return durable_fsync_parent(df->path);
}

int durable_file_take_fd(struct durable_file *df)
{
	int fd = df->fd;

	df->fd = -1;
	return fd;
}

void durable_file_close(struct durable_file *df)
{
	if (df->fd >= 0)
		close(df->fd);
	if (df->tmp && !df->committed)
		unlink(df->tmp);
	free(df->path);
	free(df->tmp);
	*df = (struct durable_file){ .fd = -1 };
}

int durable_replace(const char *path, const void *buf, size_t len, mode_t mode)
{
	struct durable_file df;
	int r;

	r = durable_file_open(&df, path, mode);
	if (r < 0)
		return r;
	r = durable_pwrite_all(df.fd, buf, len, 0);
	if (r == 0)
		r = durable_file_commit(&df);
	durable_file_close(&df);
	return r;
}
