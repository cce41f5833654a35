/* SPDX-License-Identifier: MIT */
/*
 * fuzz_outbox: arbitrary bytes as a damaged outbox journal (power cut, disk error, tampering).
 * Opening must skip the damaged frames and never crash or leak; what it reports lost must be
 * consistent; what survives must be readable, and a new record must be appendable and survive a
 * reopen, which then finds no damage (it was compacted or cut away).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "outbox.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

static void cleanup(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/" OUTBOX_FILE, dir);
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct outbox_limits lim = { .max_bytes = 1 << 20, .max_records = 64 };
	struct outbox_record *rec = NULL;
	struct outbox *ob = NULL;
	struct outbox_damage dmg;
	char path[128];
	uint64_t after = 0, seq = 0;
	int fd;

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/fuzz-outbox-XXXXXX");
		if (!mkdtemp(dir))
			abort();
		atexit(cleanup);
		log_init("fuzz_outbox", LOG_LEVEL_ERROR);
	}
	snprintf(path, sizeof(path), "%s/" OUTBOX_FILE, dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
	if (outbox_open(dir, &lim, &ob) < 0)
		return 0;
	outbox_get_damage(ob, &dmg);
	if (dmg.bytes_skipped > size || dmg.first_seq > dmg.last_seq ||
	    (!dmg.damaged && (dmg.lost_records || dmg.bytes_skipped)))
		abort();
	while (outbox_next(ob, after, &rec) == 0) {
		after = rec->seq;
		if (strlen(rec->topic) == 0)
			abort();
		rec = outbox_record_free(rec);
	}
	if (outbox_put(ob, "t", "new", 3, false, 1, "state:x", &seq) != 0 || seq <= after)
		abort();
	ob = outbox_close(ob);
	if (outbox_open(dir, &lim, &ob) < 0 || !outbox_contains(ob, seq))
		abort();
	outbox_get_damage(ob, &dmg);
	if (dmg.damaged)
		abort();
	outbox_close(ob);
	return 0;
}
