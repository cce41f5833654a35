/* SPDX-License-Identifier: MIT */
/*
 * outbox: an append-only journal of framed records with an in-memory index (see outbox.h for
 * the contract and the overflow policy).
 *
 * Record framing: u32 body length, u32 crc32 of the body, body; little-endian. Bodies:
 *   'H' u64 next_seq                              first record of every journal file
 *   'P' u64 seq, u8 flags (bit 0 retained, bits 1-2 qos), u8 kind, u16 key_len,
 *       u16 topic_len, u32 payload_len, key, topic, payload
 *   'A' u64 seq                                   acked, superseded or dropped
 * Replay applies the records in file order; a superseded state was retired with an 'A' record
 * like an acked one, so replay needs no coalescing rule of its own. The index is an array in seq
 * order (puts only ever append), searched by binary search; dead entries are squeezed out when they
 * outnumber live ones. Coalescing looks for the key among live entries by a linear scan of the
 * index: with at most a few hundred devices per station and a bounded outbox this costs
 * microseconds.
 */
#include "outbox.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durable.h"
#include "log.h"

#define OUTBOX_MAGIC 0x43524f42u /* "CROB", in the header body after the type */
#define FRAME_HEADER 8
#define PUT_FIXED    (1 + 8 + 1 + 1 + 2 + 2 + 4)
#define RECORD_MAX \
 (FRAME_HEADER + PUT_FIXED + OUTBOX_KEY_MAX + OUTBOX_TOPIC_MAX + OUTBOX_PAYLOAD_MAX)
#define COMPACT_MIN_DEAD (1024 * 1024)

struct outbox_entry {
	uint64_t seq;
	uint64_t off; /* of the frame in the journal */
	uint32_t len; /* frame length */
	enum outbox_kind kind;
	bool live;
	char *key; /* NULL for events */
};

struct outbox {
	char *path;
	int fd;
	struct outbox_limits limits;
	struct outbox_entry *ent;
	size_t n_ent, cap_ent, n_live, first_live;
	uint64_t live_bytes;
	uint64_t file_size;
	uint64_t next_seq;
	uint64_t last_put; /* replay: seqs of puts must increase */
	bool dirty;
	uint64_t dropped_pending;
	struct outbox_stats stats;
};

static enum outbox_kind kind_of_key(const char *key)
{
	if (!key || !key[0])
		return OUTBOX_EVENT;
	if (strncmp(key, "result:", 7) == 0)
		return OUTBOX_RESULT;
	return OUTBOX_STATE;
}

/* Frames body (whose first 8 bytes are reserved for the frame header) in place. */
static void frame(uint8_t *buf, size_t body_len)
{
	durable_put_le(buf, body_len, 4);
	durable_put_le(buf + 4, durable_crc32(buf + FRAME_HEADER, body_len), 4);
}

static int append(struct outbox *ob, uint8_t *buf, size_t body_len)
{
	size_t len = FRAME_HEADER + body_len;
	int r;

	frame(buf, body_len);
	r = durable_pwrite_all(ob->fd, buf, len, ob->file_size);
	if (r < 0) {
		/* keep the journal parseable: cut whatever part of the frame made it */
		if (ftruncate(ob->fd, (off_t)ob->file_size) < 0)
			log_warn("outbox: cannot cut a failed write: %s", strerror(errno));
		return r;
	}
	ob->file_size += len;
	ob->dirty = true;
	return 0;
}

static int append_ack(struct outbox *ob, uint64_t seq)
{
	uint8_t buf[FRAME_HEADER + 9];

	buf[FRAME_HEADER] = 'A';
	durable_put_le(buf + FRAME_HEADER + 1, seq, 8);
	return append(ob, buf, 9);
}

static int write_header(int fd, uint64_t next_seq)
{
	uint8_t buf[FRAME_HEADER + 13];

	buf[FRAME_HEADER] = 'H';
	durable_put_le(buf + FRAME_HEADER + 1, OUTBOX_MAGIC, 4);
	durable_put_le(buf + FRAME_HEADER + 5, next_seq, 8);
	frame(buf, 13);
	return durable_pwrite_all(fd, buf, sizeof(buf), 0);
}

#define HEADER_LEN (FRAME_HEADER + 13)

static struct outbox_entry *find(const struct outbox *ob, uint64_t seq)
{
	size_t lo = 0, hi = ob->n_ent;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ob->ent[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ob->n_ent && ob->ent[lo].seq == seq)
		return &ob->ent[lo];
	return NULL;
}

/* Squeezes dead entries out of the index when they are the majority. */
static void index_gc(struct outbox *ob)
{
	size_t j = 0;

	if (ob->n_ent < 64 || ob->n_live * 2 > ob->n_ent)
		return;
	for (size_t i = 0; i < ob->n_ent; i++)
		if (ob->ent[i].live)
			ob->ent[j++] = ob->ent[i];
	ob->n_ent = j;
	ob->first_live = 0;
}

static void kill_entry(struct outbox *ob, struct outbox_entry *e)
{
	e->live = false;
	free(e->key);
	e->key = NULL;
	ob->n_live--;
	ob->live_bytes -= e->len;
}

static int index_add(struct outbox *ob, uint64_t seq, uint64_t off, uint32_t len,
                     enum outbox_kind kind, const char *key, size_t key_len)
{
	struct outbox_entry *e;
	char *k = NULL;

	if (ob->n_ent == ob->cap_ent) {
		size_t cap = ob->cap_ent ? ob->cap_ent * 2 : 256;
		struct outbox_entry *n = realloc(ob->ent, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		ob->ent = n;
		ob->cap_ent = cap;
	}
	if (key_len > 0) {
		k = strndup(key, key_len);
		if (!k)
			return -ENOMEM;
	}
	e = &ob->ent[ob->n_ent++];
	*e = (struct outbox_entry){
		.seq = seq, .off = off, .len = len, .kind = kind, .live = true, .key = k
	};
	ob->n_live++;
	ob->live_bytes += len;
	return 0;
}

/* The live entry with the same coalescing key, if any. */
static struct outbox_entry *find_key(struct outbox *ob, const char *key, size_t key_len)
{
	for (size_t i = ob->first_live; i < ob->n_ent; i++) {
		struct outbox_entry *e = &ob->ent[i];

		if (e->live && e->kind == OUTBOX_STATE && strlen(e->key) == key_len &&
		    memcmp(e->key, key, key_len) == 0)
			return e;
	}
	return NULL;
}

static void advance_first_live(struct outbox *ob)
{
	while (ob->first_live < ob->n_ent && !ob->ent[ob->first_live].live)
		ob->first_live++;
}

/* Applies one valid record body found at off during replay. */
static int replay_body(struct outbox *ob, const uint8_t *b, uint32_t blen, uint64_t off)
{
	struct outbox_entry *e;
	uint64_t seq;
	size_t klen, tlen, plen;
	int r;

	switch (b[0]) {
	case 'H':
		if (blen != 13 || durable_get_le(b + 1, 4) != OUTBOX_MAGIC)
			return -EBADMSG;
		if (durable_get_le(b + 5, 8) > ob->next_seq)
			ob->next_seq = durable_get_le(b + 5, 8);
		return 0;
	case 'A':
		if (blen != 9)
			return -EBADMSG;
		e = find(ob, durable_get_le(b + 1, 8));
		if (e && e->live)
			kill_entry(ob, e);
		return 0;
	case 'P':
		if (blen < PUT_FIXED)
			return -EBADMSG;
		seq = durable_get_le(b + 1, 8);
		klen = durable_get_le(b + 11, 2);
		tlen = durable_get_le(b + 13, 2);
		plen = durable_get_le(b + 15, 4);
		if (PUT_FIXED + klen + tlen + plen != blen || b[10] >= _OUTBOX_KIND_MAX ||
		    tlen == 0 || seq <= ob->last_put)
			return -EBADMSG;
		r = index_add(ob, seq, off, blen + FRAME_HEADER, (enum outbox_kind)b[10],
		              (const char *)b + PUT_FIXED, klen);
		if (r < 0)
			return r;
		ob->last_put = seq;
		if (seq + 1 > ob->next_seq)
			ob->next_seq = seq + 1;
		return 0;
	default:
		return -EBADMSG;
	}
}

static int replay(struct outbox *ob)
{
	uint8_t *buf = NULL;
	uint64_t off = 0;
	struct stat st;
	int r = 0;

	if (fstat(ob->fd, &st) < 0)
		return -errno;
	buf = malloc(RECORD_MAX);
	if (!buf)
		return -ENOMEM;
	while (off < (uint64_t)st.st_size) {
		uint8_t hdr[FRAME_HEADER];
		uint32_t blen;
		const char *why = NULL;

		r = durable_pread_all(ob->fd, hdr, FRAME_HEADER, off);
		if (r == -ENODATA) {
			why = "truncated frame header";
		} else if (r < 0) {
			goto out;
		} else {
			blen = (uint32_t)durable_get_le(hdr, 4);
			if (blen == 0 || blen > RECORD_MAX - FRAME_HEADER) {
				why = "bad record length";
			} else {
				r = durable_pread_all(ob->fd, buf, blen, off + FRAME_HEADER);
				if (r == -ENODATA)
					why = "truncated record";
				else if (r < 0)
					goto out;
				else if (durable_crc32(buf, blen) !=
				         (uint32_t)durable_get_le(hdr + 4, 4))
					why = "crc mismatch";
				else if (off == 0 && buf[0] != 'H')
					why = "no header";
				else if (replay_body(ob, buf, blen, off) < 0)
					why = "malformed record";
			}
		}
		r = 0;
		if (why) {
			log_warn("outbox '%s': %s at offset %" PRIu64 ", cutting %" PRIu64
			         " bytes of damaged tail",
			         ob->path, why, off, (uint64_t)st.st_size - off);
			ob->stats.truncated = (uint64_t)st.st_size - off;
			if (ftruncate(ob->fd, (off_t)off) < 0) {
				r = -errno;
				goto out;
			}
			break;
		}
		off += FRAME_HEADER + blen;
	}
	ob->file_size = off;
	if (off == 0) {
		r = write_header(ob->fd, ob->next_seq);
		if (r < 0)
			goto out;
		ob->file_size = HEADER_LEN;
		ob->dirty = true;
	}
	advance_first_live(ob);
out:
	free(buf);
	return r;
}

int outbox_open(const char *dir, const struct outbox_limits *limits, struct outbox **ret)
{
	struct outbox *ob = NULL;
	char *tmp = NULL;
	int r;

	ob = calloc(1, sizeof(*ob));
	if (!ob)
		return -ENOMEM;
	ob->fd = -1;
	ob->limits = *limits;
	ob->next_seq = 1;
	if (asprintf(&ob->path, "%s/" OUTBOX_FILE, dir) < 0 ||
	    asprintf(&tmp, "%s/" OUTBOX_FILE ".tmp", dir) < 0) {
		ob->path = NULL;
		r = -ENOMEM;
		goto out;
	}
	/* a compaction interrupted before its rename: the old journal is still complete */
	unlink(tmp);
	ob->fd = open(ob->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ob->fd < 0) {
		r = log_error_errno(-errno, "outbox '%s': cannot open", ob->path);
		goto out;
	}
	r = replay(ob);
	if (r < 0) {
		log_error_errno(r, "outbox '%s': cannot replay", ob->path);
		goto out;
	}
	r = outbox_flush(ob);
	if (r < 0)
		goto out;
	if (ob->n_live > 0)
		log_info("outbox '%s': %zu unsent records (%" PRIu64 " bytes) kept from before",
		         ob->path, ob->n_live, ob->live_bytes);
	*ret = ob;
	ob = NULL;
out:
	free(tmp);
	outbox_close(ob);
	return r;
}

struct outbox *outbox_close(struct outbox *ob)
{
	if (!ob)
		return NULL;
	if (ob->fd >= 0) {
		outbox_flush(ob);
		close(ob->fd);
	}
	for (size_t i = 0; i < ob->n_ent; i++)
		free(ob->ent[i].key);
	free(ob->ent);
	free(ob->path);
	free(ob);
	return NULL;
}

int outbox_flush(struct outbox *ob)
{
	if (!ob->dirty)
		return 0;
	if (fdatasync(ob->fd) < 0)
		return log_error_errno(-errno, "outbox '%s': fdatasync failed", ob->path);
	ob->dirty = false;
	return 0;
}

/*
 * Rewrites the live records into a fresh journal, so the file does not grow without bound.
 * Called when the dead bytes exceed both the live bytes and COMPACT_MIN_DEAD.
 */
static int compact(struct outbox *ob)
{
	struct durable_file df = { .fd = -1 };
	uint8_t *buf = NULL;
	uint64_t *new_off = NULL;
	uint64_t off = HEADER_LEN;
	size_t k = 0;
	int r;

	index_gc(ob);
	buf = malloc(RECORD_MAX);
	new_off = calloc(ob->n_ent + 1, sizeof(*new_off));
	if (!buf || !new_off) {
		r = -ENOMEM;
		goto out;
	}
	r = durable_file_open(&df, ob->path, 0600);
	if (r < 0)
		goto out;
	r = write_header(df.fd, ob->next_seq);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < ob->n_ent; i++) {
		struct outbox_entry *e = &ob->ent[i];

		if (!e->live)
			continue;
		r = durable_pread_all(ob->fd, buf, e->len, e->off);
		if (r < 0)
			goto out;
		r = durable_pwrite_all(df.fd, buf, e->len, off);
		if (r < 0)
			goto out;
		new_off[i] = off;
		off += e->len;
	}
	r = durable_file_commit(&df);
	if (!df.committed)
		goto out;
	/* the rename is done: from here on the new file is the journal */
	r = 0;
	for (size_t i = 0; i < ob->n_ent; i++)
		if (ob->ent[i].live)
			ob->ent[i].off = new_off[i];
	for (size_t i = 0; i < ob->n_ent; i++)
		if (ob->ent[i].live)
			ob->ent[k++] = ob->ent[i];
	ob->n_ent = k;
	ob->first_live = 0;
	close(ob->fd);
	ob->fd = durable_file_take_fd(&df);
	ob->file_size = off;
	ob->dirty = false;
	ob->stats.compactions++;
	log_debug("outbox '%s': compacted to %" PRIu64 " bytes", ob->path, off);
out:
	durable_file_close(&df);
	if (r < 0)
		log_warn_errno(r, "outbox '%s': compaction failed, will retry later", ob->path);
	free(new_off);
	free(buf);
	return r;
}

static void maybe_compact(struct outbox *ob)
{
	uint64_t dead = ob->file_size - HEADER_LEN - ob->live_bytes;

	if (ob->file_size < HEADER_LEN + ob->live_bytes)
		return;
	if (dead > COMPACT_MIN_DEAD && dead > ob->live_bytes)
		compact(ob);
}

/* Marks e dead in the journal and the index. */
static int retire(struct outbox *ob, struct outbox_entry *e)
{
	int r = append_ack(ob, e->seq);

	if (r < 0)
		return r;
	kill_entry(ob, e);
	advance_first_live(ob);
	return 0;
}

static bool over_limits(const struct outbox *ob, uint64_t add_bytes)
{
	return ob->n_live + 1 > ob->limits.max_records ||
	       ob->live_bytes + add_bytes > ob->limits.max_bytes;
}

/* Whether a live state newer than index i carries the same key. */
static bool has_newer_state(const struct outbox *ob, size_t i)
{
	const struct outbox_entry *e = &ob->ent[i];

	for (size_t j = i + 1; j < ob->n_ent; j++)
		if (ob->ent[j].live && ob->ent[j].kind == OUTBOX_STATE &&
		    strcmp(ob->ent[j].key, e->key) == 0)
			return true;
	return false;
}

/*
 * Makes room for a new record: first the oldest states that a newer state of the same device
 * makes redundant (never the newest one of a key: the current state is what matters), then the
 * oldest live events. Returns whether the new record fits.
 */
static bool make_room(struct outbox *ob, uint64_t add_bytes)
{
	for (size_t i = ob->first_live; i < ob->n_ent && over_limits(ob, add_bytes); i++) {
		struct outbox_entry *e = &ob->ent[i];

		if (!e->live || e->kind != OUTBOX_STATE || !has_newer_state(ob, i))
			continue;
		if (retire(ob, e) < 0)
			return false;
		ob->stats.superseded++;
	}
	for (size_t i = ob->first_live; i < ob->n_ent && over_limits(ob, add_bytes); i++) {
		struct outbox_entry *e = &ob->ent[i];

		if (!e->live || e->kind != OUTBOX_EVENT)
			continue;
		if (retire(ob, e) < 0)
			return false;
		ob->stats.dropped++;
		ob->dropped_pending++;
	}
	return !over_limits(ob, add_bytes);
}

int outbox_put(struct outbox *ob, const char *topic, const void *payload, size_t len, bool retained,
               int qos, const char *key, uint64_t *ret_seq)
{
	enum outbox_kind kind = kind_of_key(key);
	size_t tlen = topic ? strlen(topic) : 0;
	size_t klen = kind == OUTBOX_EVENT ? 0 : strlen(key);
	size_t blen = PUT_FIXED + klen + tlen + len;
	struct outbox_entry *old;
	uint8_t *buf = NULL;
	uint64_t seq, off;
	int r;

	if (tlen == 0 || tlen >= OUTBOX_TOPIC_MAX || klen >= OUTBOX_KEY_MAX ||
	    len > OUTBOX_PAYLOAD_MAX || qos < 0 || qos > 2 || (len > 0 && !payload))
		return -EINVAL;
	/*
	 * Coalescing only under pressure: while there is room every state change is kept, so a
	 * consumer sees each one in seq order without gaps; when full, the unsent older state of
	 * the same device is the first thing to give up (it frees the room for the new one).
	 */
	if (kind == OUTBOX_STATE && over_limits(ob, FRAME_HEADER + blen)) {
		old = find_key(ob, key, klen);
		if (old) {
			r = retire(ob, old);
			if (r < 0)
				return log_error_errno(r, "outbox '%s': write failed", ob->path);
			ob->stats.superseded++;
		}
	}
	if (over_limits(ob, FRAME_HEADER + blen) && !make_room(ob, FRAME_HEADER + blen)) {
		if (kind == OUTBOX_EVENT) {
			ob->stats.dropped++;
			ob->dropped_pending++;
			return -ENOBUFS;
		}
		log_debug("outbox '%s': over its limits with states and results only, "
		          "accepting '%s'",
		          ob->path, key);
	}
	buf = malloc(FRAME_HEADER + blen);
	if (!buf)
		return -ENOMEM;
	seq = ob->next_seq;
	off = ob->file_size;
	buf[FRAME_HEADER] = 'P';
	durable_put_le(buf + FRAME_HEADER + 1, seq, 8);
	buf[FRAME_HEADER + 9] = (uint8_t)((retained ? 1 : 0) | (qos << 1));
	buf[FRAME_HEADER + 10] = (uint8_t)kind;
	durable_put_le(buf + FRAME_HEADER + 11, klen, 2);
	durable_put_le(buf + FRAME_HEADER + 13, tlen, 2);
	durable_put_le(buf + FRAME_HEADER + 15, len, 4);
	memcpy(buf + FRAME_HEADER + PUT_FIXED, key ? key : "", klen);
	memcpy(buf + FRAME_HEADER + PUT_FIXED + klen, topic, tlen);
	if (len > 0)
		memcpy(buf + FRAME_HEADER + PUT_FIXED + klen + tlen, payload, len);
	r = append(ob, buf, blen);
	free(buf);
	if (r < 0)
		return log_error_errno(r, "outbox '%s': write failed", ob->path);
	r = index_add(ob, seq, off, (uint32_t)(FRAME_HEADER + blen), kind, key, klen);
	if (r < 0)
		return r;
	ob->next_seq++;
	advance_first_live(ob);
	if (ret_seq)
		*ret_seq = seq;
	/* superseded states and dropped events are dead weight too, even while nothing is acked */
	index_gc(ob);
	maybe_compact(ob);
	return 0;
}

int outbox_next(struct outbox *ob, uint64_t after_seq, struct outbox_record **ret)
{
	struct outbox_record *rec = NULL;
	struct outbox_entry *e = NULL;
	uint8_t *buf = NULL;
	size_t lo = ob->first_live, hi = ob->n_ent;
	size_t klen, tlen, plen;
	int r;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ob->ent[mid].seq <= after_seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < ob->n_ent; lo++)
		if (ob->ent[lo].live) {
			e = &ob->ent[lo];
			break;
		}
	if (!e)
		return -ENOENT;
	buf = malloc(e->len);
	rec = calloc(1, sizeof(*rec));
	if (!buf || !rec) {
		r = -ENOMEM;
		goto out;
	}
	r = durable_pread_all(ob->fd, buf, e->len, e->off);
	if (r < 0) {
		r = log_error_errno(r == -ENODATA ? -EIO : r, "outbox '%s': read failed", ob->path);
		goto out;
	}
	klen = durable_get_le(buf + FRAME_HEADER + 11, 2);
	tlen = durable_get_le(buf + FRAME_HEADER + 13, 2);
	plen = durable_get_le(buf + FRAME_HEADER + 15, 4);
	rec->seq = e->seq;
	rec->kind = e->kind;
	rec->retained = buf[FRAME_HEADER + 9] & 1;
	rec->qos = (buf[FRAME_HEADER + 9] >> 1) & 3;
	rec->topic = strndup((const char *)buf + FRAME_HEADER + PUT_FIXED + klen, tlen);
	rec->payload = malloc(plen + 1);
	if (!rec->topic || !rec->payload) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(rec->payload, buf + FRAME_HEADER + PUT_FIXED + klen + tlen, plen);
	rec->payload[plen] = '\0';
	rec->len = plen;
	*ret = rec;
	rec = NULL;
out:
	outbox_record_free(rec);
	free(buf);
	return r;
}

struct outbox_record *outbox_record_free(struct outbox_record *rec)
{
	if (!rec)
		return NULL;
	free(rec->topic);
	free(rec->payload);
	free(rec);
	return NULL;
}

bool outbox_contains(const struct outbox *ob, uint64_t seq)
{
	const struct outbox_entry *e = find(ob, seq);

	return e && e->live;
}

int outbox_ack(struct outbox *ob, uint64_t seq)
{
	struct outbox_entry *e = find(ob, seq);
	int r;

	if (!e || !e->live)
		return -ENOENT;
	r = retire(ob, e);
	if (r < 0)
		return log_error_errno(r, "outbox '%s': cannot record ack", ob->path);
	index_gc(ob);
	maybe_compact(ob);
	return 0;
}

uint64_t outbox_depth(const struct outbox *ob)
{
	return ob->n_live;
}

void outbox_get_stats(const struct outbox *ob, struct outbox_stats *ret)
{
	*ret = ob->stats;
	ret->depth = ob->n_live;
	ret->bytes = ob->live_bytes;
	ret->file_bytes = ob->file_size;
}

uint64_t outbox_take_dropped(struct outbox *ob)
{
	uint64_t n = ob->dropped_pending;

	ob->dropped_pending = 0;
	return n;
}
