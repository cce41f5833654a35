/* SPDX-License-Identifier: MIT */
/*
 * cmdtable: persistent cmd_id -> last status, so a repeated command is answered, never re-run.
 *
 * File format (little endian), chosen so a crash can only ever damage the last record:
 *   header  16 bytes: "CRDLCMT1" + 8 zero bytes
 *   record  96 bytes: u8 version(1), u8 status, i8 progress, u8 0, u8[16] cmd_id (binary UUID),
 *           i64 created_ms, i64 updated_ms, char[48] code (NUL padded), u8[8] 0,
 *           u32 crc32 of the first 92 bytes
 * Each status change appends one full record (the latest record for an id wins on load), so an
 * update is one write + fdatasync, like a write-ahead log. A bad record is skipped on load (the
 * next one starts RECORD_SIZE later) and a short tail is cut, but either means an id may be
 * missing, so the table fails closed (cmdtable.h). A kill -9 cannot tear a record (the kernel
 * finishes a write()); only a power cut can, and refusing older commands then is the safe side.
 *   guard   32 bytes (path.guard): "CRDLCMG1", u64 records vouched for, i64 replay_unknown
 *           watermark (Unix ms), u32 0, u32 crc32 of the first 28 bytes; rewritten in place
 *           after every synced append (records are cheap: only accepted commands and their
 *           later states are written, at most a few per device per hour).
 * When the log holds more than twice the live entries it is rewritten (temp file,
 * fsync, rename, fsync of the directory: durable.h), so the file stays O(max_entries).
 *
 * In memory, entries sit in a FIFO ring in insertion order (eviction of the oldest and age
 * pruning pop the head) and an open-addressing hash (linear probing, backward-shift deletion)
 * maps the id to its ring slot.
 */
#include "cmdtable.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durable.h"
#include "log.h"

#define HEADER_SIZE    16
#define RECORD_SIZE    96
#define RECORD_VERSION 1
#define CODE_OFF       36
#define CRC_OFF        92
#define LOAD_CHUNK     64 /* records per read on open */
static const char header_magic[8] = { 'C', 'R', 'D', 'L', 'C', 'M', 'T', '1' };

struct cmdtable {
	char *path;
	int fd;
	size_t max;   /* ring capacity */
	size_t head;  /* ring index of the oldest entry */
	size_t count; /* live entries */
	struct cmdtable_entry *ring;
	int32_t *slots; /* hash: ring index or -1 */
	size_t mask;    /* hash size - 1 */
	int64_t retention_ms;
	size_t log_records;
	int gfd;                /* the guard file */
	char *gpath;            /* path + ".guard" */
	uint64_t guard_records; /* records the guard vouches for */
	int64_t unknown_before; /* replay_unknown watermark, Unix ms; 0 = history intact */
	bool damaged;           /* found while loading */
	bool headerless;        /* a new file whose header could not be written yet (disk full) */
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return (c >= 'a' && c <= 'f') ? c - 'a' + 10 : -1;
}

/* UUID text (validated by the caller) -> 16 bytes */
static void id_to_bin(const char *id, uint8_t *bin)
{
	int n = 0, i;

	for (i = 0; id[i] && n < 32; i++) {
		if (id[i] == '-')
			continue;
		if (n % 2 == 0)
			bin[n / 2] = (uint8_t)(hexval(id[i]) << 4);
		else
			bin[n / 2] |= (uint8_t)hexval(id[i]);
		n++;
	}
}

static size_t id_hash(const struct cmdtable *t, const char *id)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *id; id++)
		h = (h ^ (uint8_t)*id) * 1099511628211ULL;
	return (size_t)(h ^ (h >> 29)) & t->mask;
}

/* Hash slot holding id, or the empty slot where it would go. */
static size_t find_slot(const struct cmdtable *t, const char *id)
{
	size_t i = id_hash(t, id);

	while (t->slots[i] >= 0 && strcmp(t->ring[t->slots[i]].cmd_id, id) != 0)
		i = (i + 1) & t->mask;
	return i;
}

static void hash_delete(struct cmdtable *t, size_t i)
{
	size_t j = i, k;

	for (;;) {
		j = (j + 1) & t->mask;
		if (t->slots[j] < 0)
			break;
		k = id_hash(t, t->ring[t->slots[j]].cmd_id);
		/* move j back into the hole at i unless its home k lies cyclically in (i, j] */
		if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
			t->slots[i] = t->slots[j];
			i = j;
		}
	}
	t->slots[i] = -1;
}

static void pop_head(struct cmdtable *t)
{
	size_t s = find_slot(t, t->ring[t->head].cmd_id);

	if (t->slots[s] >= 0)
		hash_delete(t, s);
	memset(&t->ring[t->head], 0, sizeof(t->ring[t->head]));
	t->head = (t->head + 1) % t->max;
	t->count--;
}

/* Inserts or overwrites in memory (no I/O). Returns the entry. */
static struct cmdtable_entry *mem_put(struct cmdtable *t, const struct cmdtable_entry *e)
{
	size_t s = find_slot(t, e->cmd_id), idx;

	if (t->slots[s] >= 0) {
		struct cmdtable_entry *old = &t->ring[t->slots[s]];
		int64_t created = old->created_ms;

		*old = *e;
		old->created_ms = created;
		return old;
	}
	if (t->count == t->max)
		return NULL; /* never evict a live id: the caller refuses the command instead */
	idx = (t->head + t->count) % t->max;
	t->ring[idx] = *e;
	t->slots[s] = (int32_t)idx;
	t->count++;
	return &t->ring[idx];
}

static void record_encode(const struct cmdtable_entry *e, uint8_t *rec)
{
	size_t n = strnlen(e->code, COMMAND_CODE_MAX - 1);

	memset(rec, 0, RECORD_SIZE);
	rec[0] = RECORD_VERSION;
	rec[1] = (uint8_t)e->status;
	rec[2] = (uint8_t)(int8_t)e->progress;
	id_to_bin(e->cmd_id, rec + 4);
	durable_put_le(rec + 20, (uint64_t)e->created_ms, 8);
	durable_put_le(rec + 28, (uint64_t)e->updated_ms, 8);
	memcpy(rec + CODE_OFF, e->code, n);
	durable_put_le(rec + CRC_OFF, durable_crc32(rec, CRC_OFF), 4);
}

static bool record_decode(const uint8_t *rec, struct cmdtable_entry *e)
{
	int8_t progress = (int8_t)rec[2];

	if ((uint32_t)durable_get_le(rec + CRC_OFF, 4) != durable_crc32(rec, CRC_OFF) ||
	    rec[0] != RECORD_VERSION || rec[1] >= _COMMAND_STATUS_MAX || progress < -1 ||
	    progress > 100 || memchr(rec + CODE_OFF, 0, COMMAND_CODE_MAX) == NULL)
		return false;
	memset(e, 0, sizeof(*e));
	e->status = (enum command_status)rec[1];
	e->progress = progress;
	command_id_format(rec + 4, e->cmd_id);
	e->created_ms = (int64_t)durable_get_le(rec + 20, 8);
	e->updated_ms = (int64_t)durable_get_le(rec + 28, 8);
	memcpy(e->code, rec + CODE_OFF, COMMAND_CODE_MAX);
	return true;
}

static int write_header(int fd)
{
	uint8_t h[HEADER_SIZE] = { 0 };

	memcpy(h, header_magic, sizeof(header_magic));
	return durable_pwrite_all(fd, h, sizeof(h), 0);
}

static int guard_write(struct cmdtable *t);

/* Rewrites the file with the live entries only (durable.h: temp, fsync, rename, dir fsync). */
static int compact(struct cmdtable *t)
{
	struct durable_file df;
	uint8_t rec[RECORD_SIZE];
	size_t i;
	int r;

	r = durable_file_open(&df, t->path, 0600);
	if (r < 0)
		return log_error_errno(r, "cmdtable '%s': cannot create a temp file", t->path);
	r = write_header(df.fd);
	for (i = 0; r == 0 && i < t->count; i++) {
		record_encode(&t->ring[(t->head + i) % t->max], rec);
		r = durable_pwrite_all(df.fd, rec, sizeof(rec), HEADER_SIZE + i * RECORD_SIZE);
	}
	/* the guard first: a crash before the rename leaves more records than it vouches for */
	if (r == 0) {
		t->guard_records = t->count;
		r = guard_write(t);
	}
	if (r == 0)
		r = durable_file_commit(&df);
	if (!df.committed) {
		log_error_errno(r, "cmdtable '%s': compaction failed", t->path);
		goto out;
	}
	/* renamed: the new file is the table now, even if the directory fsync failed */
	close(t->fd);
	t->fd = durable_file_take_fd(&df);
	t->log_records = t->count;
	r = 0;
out:
	durable_file_close(&df);
	return r;
}

static bool needs_compaction(const struct cmdtable *t)
{
	return t->log_records > 2 * t->count + 64;
}

/* ---- the guard: how many records the log must hold, and the replay_unknown watermark ---- */

#define GUARD_SIZE 32
static const char guard_magic[8] = { 'C', 'R', 'D', 'L', 'C', 'M', 'G', '1' };

static int guard_write(struct cmdtable *t)
{
	uint8_t g[GUARD_SIZE] = { 0 };
	int r;

	memcpy(g, guard_magic, sizeof(guard_magic));
	durable_put_le(g + 8, t->guard_records, 8);
	durable_put_le(g + 16, (uint64_t)t->unknown_before, 8);
	durable_put_le(g + 28, durable_crc32(g, 28), 4);
	/* 32 bytes at offset 0 sit in one sector: the write replaces the old content whole */
	r = durable_pwrite_all(t->gfd, g, sizeof(g), 0);
	if (r == 0 && fdatasync(t->gfd) < 0)
		r = -errno;
	if (r < 0)
		log_warn_errno(r, "cmdtable '%s': cannot write the guard", t->gpath);
	return r;
}

/* Reads the guard; false when it is missing or damaged (then nothing is vouched for). */
static bool guard_read(struct cmdtable *t, bool *ret_existed)
{
	uint8_t g[GUARD_SIZE];
	struct stat st;

	*ret_existed = fstat(t->gfd, &st) == 0 && st.st_size > 0;
	if (!*ret_existed || durable_pread_all(t->gfd, g, sizeof(g), 0) < 0 ||
	    memcmp(g, guard_magic, sizeof(guard_magic)) != 0 ||
	    (uint32_t)durable_get_le(g + 28, 4) != durable_crc32(g, 28))
		return false;
	t->guard_records = durable_get_le(g + 8, 8);
	t->unknown_before = (int64_t)durable_get_le(g + 16, 8);
	return true;
}

static void damage(struct cmdtable *t, const char *what)
{
	if (!t->damaged)
		log_error("cmdtable '%s': %s: the replay history is not complete", t->path, what);
	t->damaged = true;
}

/*
 * Reads the records after the header, a chunk at a time. A bad record is skipped (records have
 * a fixed size, so the next one is found again) and counted as damage; so is a short tail.
 */
static int load(struct cmdtable *t, off_t size, int64_t now_ms)
{
	uint8_t buf[LOAD_CHUNK * RECORD_SIZE];
	off_t off = HEADER_SIZE;
	struct cmdtable_entry e;
	size_t bad = 0;

	while (off + RECORD_SIZE <= size) {
		size_t want = sizeof(buf), got, i;
		ssize_t n;

		if ((off_t)want > size - off)
			want = (size_t)(size - off);
		n = pread(t->fd, buf, want, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return log_error_errno(-errno, "cmdtable '%s': read failed", t->path);
		if (n < RECORD_SIZE)
			break;
		got = (size_t)n / RECORD_SIZE;
		for (i = 0; i < got; i++, off += RECORD_SIZE) {
			t->log_records++;
			if (!record_decode(buf + i * RECORD_SIZE, &e)) {
				bad++;
				continue;
			}
			if (!mem_put(t, &e)) {
				cmdtable_prune(t, now_ms);
				if (!mem_put(t, &e))
					damage(t, "more live ids than the table holds");
			}
		}
	}
	if (bad > 0) {
		log_warn("cmdtable '%s': %zu damaged records", t->path, bad);
		damage(t, "damaged records");
	}
	if (off != size)
		damage(t, "a torn or cut record at the end");
	if (t->log_records < t->guard_records)
		damage(t, "fewer records than written (truncated)");
	return 0;
}

/*
 * Opens the file; *ret_size = 0 when it is new, empty or not a command table (the last is moved
 * aside).
 */
static int open_file(struct cmdtable *t, off_t *ret_size)
{
	uint8_t h[HEADER_SIZE];
	struct stat st;
	char *aside = NULL;
	int r = 0;

	*ret_size = 0;
	t->fd = open(t->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (t->fd < 0)
		return log_error_errno(-errno, "cmdtable '%s': cannot open", t->path);
	if (fstat(t->fd, &st) < 0)
		return log_error_errno(-errno, "cmdtable '%s': cannot stat", t->path);
	if (!S_ISREG(st.st_mode))
		return log_error_errno(-EINVAL, "cmdtable '%s': not a regular file", t->path);
	if (st.st_size == 0)
		return 0;
	if (st.st_size >= HEADER_SIZE && pread(t->fd, h, sizeof(h), 0) == HEADER_SIZE &&
	    memcmp(h, header_magic, sizeof(header_magic)) == 0) {
		*ret_size = st.st_size;
		return 0;
	}
	if (asprintf(&aside, "%s.corrupt", t->path) < 0)
		return -ENOMEM;
	log_warn("cmdtable '%s': not a command table, moving it to '%s' and starting empty",
	         t->path, aside);
	damage(t, "no command table header");
	if (rename(t->path, aside) < 0)
		r = log_error_errno(-errno, "cmdtable '%s': cannot move aside", t->path);
	free(aside);
	if (r < 0)
		return r;
	close(t->fd);
	t->fd = open(t->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (t->fd < 0)
		return log_error_errno(-errno, "cmdtable '%s': cannot create", t->path);
	return 0;
}

/*
 * The history is incomplete: from now on refuse every command issued before now (the caller
 * adds the skew), durably, and start a clean log of what is still known.
 */
static int fail_closed(struct cmdtable *t, int64_t now_ms)
{
	int r;

	if (now_ms > t->unknown_before)
		t->unknown_before = now_ms;
	log_error("cmdtable '%s': refusing every command issued before %lld (replay_unknown)",
	          t->path, (long long)t->unknown_before);
	/* not fatal (a full disk must not keep the agent down): the watermark holds in memory for
	 * this run, and a table that could not be rewritten is found damaged again next time */
	r = guard_write(t);
	if (r == 0)
		r = compact(t);
	return r;
}

int cmdtable_open(const char *path, size_t max_entries, int64_t retention_ms, int64_t now_ms,
                  struct cmdtable **ret)
{
	struct cmdtable *t = NULL;
	size_t hsize = 1, i;
	off_t size = 0;
	bool guard_ok, guard_existed;
	int r;

	if (!path || !ret || max_entries < 1 || max_entries > CMDTABLE_ENTRIES_MAX ||
	    retention_ms <= 0)
		return -EINVAL;
	r = -ENOMEM;
	t = calloc(1, sizeof(*t));
	if (!t)
		goto out;
	t->fd = -1;
	t->gfd = -1;
	t->max = max_entries;
	t->retention_ms = retention_ms;
	while (hsize < 2 * max_entries)
		hsize <<= 1;
	t->mask = hsize - 1;
	t->path = strdup(path);
	if (asprintf(&t->gpath, "%s.guard", path) < 0)
		t->gpath = NULL;
	t->ring = calloc(max_entries, sizeof(*t->ring));
	t->slots = malloc(hsize * sizeof(*t->slots));
	if (!t->path || !t->gpath || !t->ring || !t->slots)
		goto out;
	for (i = 0; i < hsize; i++)
		t->slots[i] = -1;

	t->gfd = open(t->gpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (t->gfd < 0) {
		r = log_error_errno(-errno, "cmdtable '%s': cannot open", t->gpath);
		goto out;
	}
	guard_ok = guard_read(t, &guard_existed);
	r = open_file(t, &size);
	if (r < 0)
		goto out;
	if (size == 0 && guard_existed)
		damage(t, "the table is missing or empty");
	if (!guard_ok && (size > 0 || guard_existed))
		damage(t, guard_existed ? "the guard is damaged" : "the guard is missing");
	if (size > 0) {
		r = load(t, size, now_ms);
		if (r < 0)
			goto out;
	}
	cmdtable_prune(t, now_ms);
	/* failures are logged and not fatal, so the agent starts on a full disk: appends then
	 * fail and the intake refuses commands (internal) rather than run them unrecorded */
	if (t->damaged)
		(void)fail_closed(t, now_ms);
	else if ((size == 0 || needs_compaction(t)) && compact(t) < 0 && size == 0)
		t->headerless = true; /* compact() makes a new table's header and guard */
	log_debug("cmdtable '%s': %zu recent command ids", t->path, t->count);
	*ret = t;
	t = NULL;
	r = 0;
out:
	cmdtable_free(t);
	return r;
}

struct cmdtable *cmdtable_free(struct cmdtable *t)
{
	if (!t)
		return NULL;
	if (t->fd >= 0)
		close(t->fd);
	if (t->gfd >= 0)
		close(t->gfd);
	free(t->gpath);
	free(t->slots);
	free(t->ring);
	free(t->path);
	free(t);
	return NULL;
}

const struct cmdtable_entry *cmdtable_get(struct cmdtable *t, const char *cmd_id)
{
	char id[COMMAND_ID_MAX];
	size_t s;

	if (!cmd_id || command_id_normalize(cmd_id, strlen(cmd_id), id) < 0)
		return NULL;
	s = find_slot(t, id);
	return t->slots[s] >= 0 ? &t->ring[t->slots[s]] : NULL;
}

int cmdtable_put(struct cmdtable *t, const char *cmd_id, enum command_status status,
                 const char *code, int progress, int64_t now_ms)
{
	const struct cmdtable_entry *old;
	struct cmdtable_entry e = { 0 };
	uint8_t rec[RECORD_SIZE];
	off_t off;
	bool sync = true;
	int r;

	if (!cmd_id || command_id_normalize(cmd_id, strlen(cmd_id), e.cmd_id) < 0 ||
	    (unsigned)status >= _COMMAND_STATUS_MAX || progress < -1 || progress > 100)
		return -EINVAL;
	e.status = status;
	if (code)
		snprintf(e.code, sizeof(e.code), "%s", code);
	e.progress = progress;
	e.created_ms = now_ms;
	e.updated_ms = now_ms;
	old = cmdtable_get(t, e.cmd_id);
	if (old) {
		e.created_ms = old->created_ms;
		sync = !(old->status == COMMAND_STATUS_IN_PROGRESS &&
		         status == COMMAND_STATUS_IN_PROGRESS);
	} else if (t->count == t->max) {
		cmdtable_prune(t, now_ms);
		if (t->count == t->max)
			return -EBUSY; /* every id is live: forgetting one would allow its replay */
	}

	if (t->headerless) {
		r = write_header(t->fd);
		if (r < 0)
			return log_error_errno(r, "cmdtable '%s': cannot write the header",
			                       t->path);
		t->headerless = false;
	}
	record_encode(&e, rec);
	off = HEADER_SIZE + (off_t)(t->log_records * RECORD_SIZE);
	r = durable_pwrite_all(t->fd, rec, sizeof(rec), (uint64_t)off);
	if (r == 0 && sync && fdatasync(t->fd) < 0)
		r = -errno;
	if (r < 0) {
		/* keep the log aligned on records for the next append */
		if (ftruncate(t->fd, off) < 0)
			log_warn_errno(-errno, "cmdtable '%s': cannot cut a failed append",
			               t->path);
		return log_error_errno(r, "cmdtable '%s': cannot record command '%s'", t->path,
		                       e.cmd_id);
	}
	t->log_records++;
	mem_put(t, &e);
	if (sync) {
		/* after the record's sync, so the guard never vouches for more than the disk has */
		t->guard_records = t->log_records;
		(void)guard_write(t); /* logged; a stale count only weakens truncation detection */
	}
	if (needs_compaction(t))
		(void)compact(t);
	return 0;
}

int cmdtable_fail_unfinished(struct cmdtable *t, const char *code, int64_t now_ms,
                             cmdtable_entry_fn before, void *userdata)
{
	char id[COMMAND_ID_MAX];
	size_t i;
	int n = 0, r;

	for (i = 0; i < t->count; i++) {
		const struct cmdtable_entry *e = &t->ring[(t->head + i) % t->max];

		if (command_status_is_final(e->status))
			continue;
		/* put() may compact but never reorders or evicts an existing id */
		memcpy(id, e->cmd_id, sizeof(id));
		if (before) {
			struct cmdtable_entry f = *e;

			f.status = COMMAND_STATUS_FAILED;
			snprintf(f.code, sizeof(f.code), "%s", code ? code : "");
			f.progress = -1;
			f.updated_ms = now_ms;
			before(&f, userdata);
		}
		r = cmdtable_put(t, id, COMMAND_STATUS_FAILED, code, -1, now_ms);
		if (r < 0)
			return r;
		n++;
	}
	return n;
}

size_t cmdtable_prune(struct cmdtable *t, int64_t now_ms)
{
	size_t n = 0;

	while (t->count > 0 && t->ring[t->head].created_ms < now_ms - t->retention_ms) {
		pop_head(t);
		n++;
	}
	return n;
}

int cmdtable_mark_unknown(struct cmdtable *t, int64_t now_ms)
{
	return fail_closed(t, now_ms);
}

int64_t cmdtable_unknown_before(const struct cmdtable *t)
{
	return t->unknown_before;
}

size_t cmdtable_count(const struct cmdtable *t)
{
	return t->count;
}

size_t cmdtable_log_records(const struct cmdtable *t)
{
	return t->log_records;
}
