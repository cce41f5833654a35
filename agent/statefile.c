/* SPDX-License-Identifier: MIT */
/*
 * statefile: small persisted counters (session, next seq) for the agent.
 *
 * The file is rewritten whole on every save with durable_replace() (temp file, fsync, rename,
 * directory fsync), so after a crash or power cut it holds either the old or the new content.
 * Saves are rare (once per start and once per STATEFILE_SEQ_BLOCK messages), so the cost of
 * two fsyncs does not matter.
 */
#include "statefile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "durable.h"
#include "parse.h"

#define STATEFILE_MAX 4096

/* A counter: decimal digits only (parse.h); anything else means a damaged file. */
static int parse_counter(const char *s, uint64_t *ret)
{
	return parse_uint(s, ret) < 0 ? -EBADMSG : 0;
}

int statefile_load(const char *path, struct statefile *sf)
{
	char buf[STATEFILE_MAX + 1];
	struct statefile tmp = { 0 };
	size_t len = 0;
	char *line, *save = NULL;
	int fd = -1;
	int r = 0;

	memset(sf, 0, sizeof(*sf));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf) - 1) {
			r = -EBADMSG;
			goto out;
		}
	}
	buf[len] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *sp = strchr(line, ' ');

		if (!sp) {
			r = -EBADMSG;
			goto out;
		}
		*sp = '\0';
		if (strcmp(line, "session") == 0)
			r = parse_counter(sp + 1, &tmp.session);
		else if (strcmp(line, "next_seq") == 0)
			r = parse_counter(sp + 1, &tmp.next_seq);
		if (r < 0)
			goto out;
	}
	tmp.reserved_end = tmp.next_seq;
	*sf = tmp;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

int statefile_save(const char *path, const struct statefile *sf)
{
	uint64_t next = sf->next_seq > sf->reserved_end ? sf->next_seq : sf->reserved_end;
	char text[128];
	int len;

	len = snprintf(text, sizeof(text), "session %" PRIu64 "\nnext_seq %" PRIu64 "\n",
	               sf->session, next);
	return durable_replace(path, text, (size_t)len, 0600);
}

/* The wall clock in µs, 0 if it cannot be read. */
static uint64_t wall_now_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || ts.tv_sec < 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t statefile_session_after(uint64_t last, uint64_t now_us)
{
	uint64_t next = last < STATEFILE_SESSION_MAX ? last + 1 : 0;

	/* a value past the wire's integer range can only come from a damaged file: the clock
	 * alone then, which is as good as a lost file */
	if (now_us > STATEFILE_SESSION_MAX)
		now_us = STATEFILE_SESSION_MAX;
	return next > now_us ? next : now_us;
}

int statefile_begin_session(const char *path, struct statefile *sf)
{
	struct statefile next = *sf;
	int r;

	next.session = statefile_session_after(sf->session, wall_now_us());
	if (next.next_seq < next.reserved_end)
		next.next_seq = next.reserved_end;
	next.reserved_end = next.next_seq;
	r = statefile_save(path, &next);
	if (r < 0)
		return r;
	*sf = next;
	return 0;
}

int statefile_next_seq(const char *path, struct statefile *sf, uint64_t *ret_seq)
{
	int r;

	if (sf->next_seq >= sf->reserved_end) {
		struct statefile next = *sf;

		next.reserved_end = sf->next_seq + STATEFILE_SEQ_BLOCK;
		r = statefile_save(path, &next);
		if (r < 0)
			return r;
		sf->reserved_end = next.reserved_end;
	}
	*ret_seq = sf->next_seq++;
	return 0;
}
