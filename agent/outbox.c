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
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durable.h"
#include "log.h"

#define OUTBOX_MAGIC 0x43524f42u /* "CROB", in the header body after the type */
#define FRAME_HEADER 8
#define PUT_FIXED    (1 + 8 + 1 + 1 + 2 + 2 + 4)
#define RECORD_MAX \
 (FRAME_HEADER + PUT_FIXED + OUTBOX_KEY_MAX + OUTBOX_TOPIC_MAX + OUTBOX_PAYLOAD_MAX)
#define OUTBOX_DAMAGE_SEQS_MAX 64

/* one damaged region met during replay, counted once the whole journal is read */
struct outbox_damage_region {
	uint64_t from, to; /* file offsets */
	uint64_t after;    /* seq of the last valid put before it (0: none) */
	uint64_t before;   /* seq of the first valid put after it (0: none) */
	bool chained;      /* the frame lengths lead exactly through it */
	size_t n_frames, n_puts;
	uint64_t seqs[OUTBOX_DAMAGE_SEQS_MAX]; /* as read from the damaged puts */
	uint8_t broken_type;                   /* not chained: type byte of its first frame */
	uint64_t broken_seq;
};

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
	struct outbox_damage damage;
	uint64_t file_bytes_damaged;  /* damaged bytes still in the file (before a compaction) */
	uint64_t compact_failed_dead; /* dead bytes when a compaction last failed (0: none) */
	bool write_failing;           /* the last put's write failed */
	unsigned maintain_wait, maintain_backoff; /* outbox_maintain() calls to skip */
	/* replay only */
	struct outbox_damage_region *regions;
	size_t n_regions, cap_regions;
	uint64_t *orphans; /* acks of seqs not in the index */
	size_t n_orphans, cap_orphans;
};

static int damage_note_ack(struct outbox *ob, uint64_t seq);
static int compact(struct outbox *ob);
static int cut_to_header(struct outbox *ob);
static uint64_t dead_bytes(const struct outbox *ob);
static void damage_close(struct outbox *ob, uint64_t seq);

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

static int append_header(struct outbox *ob)
{
	uint8_t buf[FRAME_HEADER + 13];

	buf[FRAME_HEADER] = 'H';
	durable_put_le(buf + FRAME_HEADER + 1, OUTBOX_MAGIC, 4);
	durable_put_le(buf + FRAME_HEADER + 5, ob->next_seq, 8);
	return append(ob, buf, 13);
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

/* Makes room for one more element in *arr (n used of *cap, elements of size bytes). */
static int grow(void *arr, size_t *cap, size_t n, size_t size, size_t first_cap)
{
	void **p = arr;
	size_t c;
	void *m;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : first_cap;
	m = realloc(*p, c * size);
	if (!m)
		return -ENOMEM;
	*p = m;
	*cap = c;
	return 0;
}

/* A put's write failed: counted, logged at the first of a run (a full disk fails them all). */
static int write_failed(struct outbox *ob, int r)
{
	ob->stats.write_failures++;
	if (ob->write_failing)
		return r;
	ob->write_failing = true;
	return log_error_errno(r, "outbox '%s': write failed (logged once until one works)",
	                       ob->path);
}

/*
 * Writes the header of an empty journal. When that fails (a full disk) the empty file goes
 * again, since an empty journal found at open means damage; the next put creates it anew.
 */
static int start_journal(struct outbox *ob)
{
	int r;

	if (ob->fd < 0) {
		ob->fd = open(ob->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (ob->fd < 0)
			return -errno;
	}
	r = write_header(ob->fd, ob->next_seq);
	if (r < 0) {
		close(ob->fd);
		ob->fd = -1;
		unlink(ob->path);
		return r;
	}
	ob->file_size = HEADER_LEN;
	ob->dirty = true;
	return 0;
}

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

	if (grow(&ob->ent, &ob->cap_ent, ob->n_ent, sizeof(*ob->ent), 256) < 0)
		return -ENOMEM;
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
	size_t klen;
	int r;

	switch (b[0]) {
	case 'H':
		if (durable_get_le(b + 5, 8) > ob->next_seq)
			ob->next_seq = durable_get_le(b + 5, 8);
		return 0;
	case 'A':
		seq = durable_get_le(b + 1, 8);
		e = find(ob, seq);
		if (e && e->live)
			kill_entry(ob, e);
		else if (!e)
			return damage_note_ack(ob, seq);
		return 0;
	case 'P':
		seq = durable_get_le(b + 1, 8);
		klen = durable_get_le(b + 11, 2);
		if (seq <= ob->last_put)
			return -EBADMSG;
		r = index_add(ob, seq, off, blen + FRAME_HEADER, (enum outbox_kind)b[10],
		              (const char *)b + PUT_FIXED, klen);
		if (r < 0)
			return r;
		ob->last_put = seq;
		if (seq + 1 > ob->next_seq)
			ob->next_seq = seq + 1;
		damage_close(ob, seq);
		return 0;
	default:
		return -EBADMSG;
	}
}

/* Whether body b (blen bytes) has the shape of a record: the cheap test before the crc. */
static bool body_shape_ok(const uint8_t *b, uint64_t blen)
{
	switch (b[0]) {
	case 'H':
		return blen == 13 && durable_get_le(b + 1, 4) == OUTBOX_MAGIC;
	case 'A':
		return blen == 9;
	case 'P':
		return blen >= PUT_FIXED && b[10] < _OUTBOX_KIND_MAX &&
		       durable_get_le(b + 13, 2) > 0 &&
		       PUT_FIXED + durable_get_le(b + 11, 2) + durable_get_le(b + 13, 2) +
		                       durable_get_le(b + 15, 4) ==
		               blen;
	default:
		return false;
	}
}

/* Whether a whole, well-formed frame with a matching crc starts at off; its length then. */
static bool frame_valid(const uint8_t *map, uint64_t size, uint64_t off, uint32_t *ret_len)
{
	uint64_t blen;

	if (size - off < FRAME_HEADER + 1)
		return false;
	blen = durable_get_le(map + off, 4);
	if (blen == 0 || blen > RECORD_MAX - FRAME_HEADER || blen > size - off - FRAME_HEADER)
		return false;
	if (!body_shape_ok(map + off + FRAME_HEADER, blen) ||
	    durable_crc32(map + off + FRAME_HEADER, blen) !=
	            (uint32_t)durable_get_le(map + off + 4, 4))
		return false;
	*ret_len = (uint32_t)(FRAME_HEADER + blen);
	return true;
}

/*
 * A damaged region [from, to) ends here: how many records did it hold? Follow the frame
 * lengths from its start (a flipped byte in a body or crc leaves them intact): when they lead
 * exactly to the next valid frame (or past the end of a truncated tail), the region held that
 * many frames, and the puts among them carry their seqs unless the damage hit them. Otherwise
 * (a damaged length) the lost puts are the seqs between the valid puts around the region,
 * known once the next one is replayed (damage_close).
 */
static int damage_open(struct outbox *ob, const uint8_t *map, uint64_t size, uint64_t from,
                       uint64_t to)
{
	struct outbox_damage_region *g;
	uint64_t p = from;

	if (grow(&ob->regions, &ob->cap_regions, ob->n_regions, sizeof(*ob->regions), 8) < 0)
		return -ENOMEM;
	g = &ob->regions[ob->n_regions++];
	*g = (struct outbox_damage_region){ .after = ob->last_put, .from = from, .to = to };
	ob->damage.bytes_skipped += to - from;
	while (p < to) {
		uint64_t blen;
		uint8_t type;

		if (size - p < FRAME_HEADER) {
			/* a frame header cut short: a record begun, lost */
			g->n_frames++;
			g->n_puts++;
			p = to;
			break;
		}
		blen = durable_get_le(map + p, 4);
		if (blen == 0 || blen > RECORD_MAX - FRAME_HEADER ||
		    (p + FRAME_HEADER + blen > to && to != size)) {
			/* a damaged length: the region is taken as that one frame, unless the
			 * valid puts around it say otherwise (damage_finish) */
			g->broken_type = size - p > FRAME_HEADER ? map[p + FRAME_HEADER] : 0;
			if (size - p >= FRAME_HEADER + 9)
				g->broken_seq = durable_get_le(map + p + FRAME_HEADER + 1, 8);
			break;
		}
		type = size - p > FRAME_HEADER ? map[p + FRAME_HEADER] : 0;
		/* the fixed lengths of acks and headers identify them even with a damaged type */
		if (blen == 9 || (type == 'A' && blen < PUT_FIXED))
			type = 'A';
		else if (blen == 13)
			type = 'H';
		else
			type = 'P';
		g->n_frames++;
		if (type == 'P') {
			uint64_t seq = 0;

			if (size - p >= FRAME_HEADER + 9)
				seq = durable_get_le(map + p + FRAME_HEADER + 1, 8);
			if (g->n_puts < OUTBOX_DAMAGE_SEQS_MAX)
				g->seqs[g->n_puts] = seq;
			g->n_puts++;
		}
		p += FRAME_HEADER + blen;
	}
	g->chained = p >= to;
	return 0;
}

/* The next valid put (seq) after open damaged regions bounds their lost seqs. */
static void damage_close(struct outbox *ob, uint64_t seq)
{
	for (size_t i = ob->n_regions; i-- > 0 && !ob->regions[i].before;)
		ob->regions[i].before = seq;
}

/* An ack of a seq not in the index: the put it acknowledges may be in a damaged region. */
static int damage_note_ack(struct outbox *ob, uint64_t seq)
{
	if (ob->n_regions == 0)
		return 0;
	if (grow(&ob->orphans, &ob->cap_orphans, ob->n_orphans, sizeof(*ob->orphans), 64) < 0)
		return -ENOMEM;
	ob->orphans[ob->n_orphans++] = seq;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool orphan_acked(const struct outbox *ob, uint64_t seq)
{
	return ob->n_orphans &&
	       bsearch(&seq, ob->orphans, ob->n_orphans, sizeof(seq), cmp_u64) != NULL;
}

static void damage_count(struct outbox *ob, uint64_t seq)
{
	struct outbox_damage *d = &ob->damage;

	if (seq && orphan_acked(ob, seq))
		return; /* delivered before the damage: nothing lost */
	d->lost_records++;
	if (!seq)
		return;
	if (!d->first_seq || seq < d->first_seq)
		d->first_seq = seq;
	if (seq > d->last_seq)
		d->last_seq = seq;
}

/* Counts the puts lost in every damaged region, and logs each region. */
static void damage_finish(struct outbox *ob)
{
	struct outbox_damage *d = &ob->damage;
	uint64_t before_lost;

	if (ob->n_orphans)
		qsort(ob->orphans, ob->n_orphans, sizeof(*ob->orphans), cmp_u64);
	for (size_t i = 0; i < ob->n_regions; i++) {
		struct outbox_damage_region *g = &ob->regions[i];
		/* without a valid put after it, only dense seqs after the last one are believed */
		uint64_t hi = g->before ? g->before : g->after + g->n_puts + 1;
		bool seqs_ok = g->chained && g->n_puts <= OUTBOX_DAMAGE_SEQS_MAX;
		uint64_t prev = g->after;

		before_lost = d->lost_records;
		if (!g->chained) {
			/* one frame with a damaged length, or a wider damage: the seqs between
			 * the valid puts around it when both are known (exact unless a
			 * compaction had removed acked records between them: then an upper
			 * bound); otherwise the one frame, unless it was a header or an ack */
			g->n_frames = g->n_puts = 0;
			if (g->before && g->after) {
				for (uint64_t s = g->after + 1; s < g->before; s++)
					damage_count(ob, s);
			} else if (!((g->broken_type == 'H' || g->broken_type == 'A') &&
			             g->to - g->from <= FRAME_HEADER + 13)) {
				uint64_t s = g->broken_seq;

				damage_count(ob, s > g->after && s < (g->before ? g->before
				                                                : g->after + 2)
				                         ? s
				                         : g->after + 1);
			}
		} else {
			for (size_t k = 0; seqs_ok && k < g->n_puts; k++) {
				seqs_ok = g->seqs[k] > prev && g->seqs[k] < hi;
				prev = g->seqs[k];
			}
			if (!seqs_ok && g->before && g->before - g->after - 1 == g->n_puts) {
				for (uint64_t s = g->after + 1; s < g->before; s++)
					damage_count(ob, s);
			} else {
				for (size_t k = 0; k < g->n_puts; k++)
					damage_count(ob, seqs_ok ? g->seqs[k] : g->after + 1 + k);
			}
		}
		log_warn("outbox '%s': damaged bytes %" PRIu64 "..%" PRIu64 " skipped, %" PRIu64
		         " unsent records lost there (after record %" PRIu64 ")",
		         ob->path, g->from, g->to, d->lost_records - before_lost, g->after);
	}
	if (ob->n_regions > 0) {
		d->damaged = true;
		/* a lost record's number is not given to a new one */
		if (d->last_seq >= ob->next_seq)
			ob->next_seq = d->last_seq + 1;
		log_warn("outbox '%s': damaged: %" PRIu64 " records lost (records %" PRIu64
		         "..%" PRIu64 "), %" PRIu64 " bytes skipped, the rest recovered",
		         ob->path, d->lost_records, d->first_seq, d->last_seq, d->bytes_skipped);
	}
	free(ob->regions);
	ob->regions = NULL;
	ob->n_regions = ob->cap_regions = 0;
	free(ob->orphans);
	ob->orphans = NULL;
	ob->n_orphans = ob->cap_orphans = 0;
}

/*
 * Reads the journal into the index. A frame that is not valid (bad length, crc mismatch,
 * malformed body, cut short) starts a damaged region; the scan then looks at every following
 * byte for the start of the next valid frame (a length that fits, the shape of a record, the
 * crc) and goes on from there, so one bad byte costs the records it hit, not the rest.
 */
static int replay(struct outbox *ob, bool existed)
{
	uint8_t *map = NULL;
	uint64_t off = 0, bad = UINT64_MAX, size, tail_cut = UINT64_MAX;
	struct stat st;
	int r = 0;

	if (fstat(ob->fd, &st) < 0)
		return -errno;
	size = (uint64_t)st.st_size;
	if (size == 0 && existed) {
		/* we always write a header first: an empty journal lost its content */
		ob->damage.damaged = true;
		ob->damage.empty = true;
		log_warn("outbox '%s': the journal is empty (no header): whatever it held is lost, "
		         "and how much cannot be known",
		         ob->path);
	}
	if (size > 0) {
		map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, ob->fd, 0);
		if (map == MAP_FAILED)
			return -errno;
	}
	while (off < size) {
		uint32_t flen;

		if (frame_valid(map, size, off, &flen)) {
			if (bad != UINT64_MAX) {
				r = damage_open(ob, map, size, bad, off);
				if (r < 0)
					goto out;
				bad = UINT64_MAX;
			}
			r = replay_body(ob, map + off + FRAME_HEADER, flen - FRAME_HEADER, off);
			if (r == 0) {
				off += flen;
				continue;
			}
			if (r != -EBADMSG)
				goto out;
			r = 0;
		}
		if (bad == UINT64_MAX)
			bad = off;
		off++;
	}
	if (bad != UINT64_MAX) {
		r = damage_open(ob, map, size, bad, size);
		if (r < 0)
			goto out;
		tail_cut = bad;
	}
	damage_finish(ob);
	ob->stats.truncated = ob->damage.bytes_skipped;
	ob->file_size = size;
	if (tail_cut != UINT64_MAX) {
		/* new records go right after the last valid one */
		if (ftruncate(ob->fd, (off_t)tail_cut) < 0)
			log_warn_errno(-errno, "outbox '%s': cannot cut the damaged tail",
			               ob->path);
		else
			ob->file_size = tail_cut;
	}
	ob->file_bytes_damaged = ob->damage.bytes_skipped - (size - ob->file_size);
	if (ob->file_size == 0) {
		r = start_journal(ob);
		if (r < 0) /* a full disk: start anyway, the first put that fits writes it */
			log_warn_errno(r, "outbox '%s': cannot write the journal header yet",
			               ob->path);
		r = 0;
	}
	advance_first_live(ob);
out:
	if (map)
		munmap(map, size);
	return r;
}

int outbox_open(const char *dir, const struct outbox_limits *limits, struct outbox **ret)
{
	struct outbox *ob = NULL;
	char *tmp = NULL;
	bool existed = true;
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
	ob->fd = open(ob->path, O_RDWR | O_CLOEXEC);
	if (ob->fd < 0 && errno == ENOENT) {
		existed = false;
		ob->fd = open(ob->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	}
	if (ob->fd < 0) {
		r = log_error_errno(-errno, "outbox '%s': cannot open", ob->path);
		goto out;
	}
	r = replay(ob, existed);
	if (r < 0) {
		log_error_errno(r, "outbox '%s': cannot replay", ob->path);
		goto out;
	}
	/* damaged bytes left in the middle: rewrite without them, so they are reported once */
	if (ob->file_bytes_damaged > 0)
		(void)compact(ob); /* logged; on failure the next open finds them again */
	/* a full disk must not stop the agent: unsynced records are synced at the next flush */
	if (outbox_flush(ob) < 0)
		log_warn("outbox '%s': cannot sync yet, will retry", ob->path);
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

/* Bytes of the journal that no live record needs (acked, superseded, dropped, damaged). */
static uint64_t dead_bytes(const struct outbox *ob)
{
	if (ob->file_size < HEADER_LEN + ob->live_bytes)
		return 0;
	return ob->file_size - HEADER_LEN - ob->live_bytes;
}

/*
 * Rewrites the live records into a fresh journal, so the file does not grow without bound.
 * Called when the dead bytes exceed both the live bytes and OUTBOX_COMPACT_MIN_DEAD.
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
	ob->file_bytes_damaged = 0;
	ob->compact_failed_dead = 0;
	ob->stats.compactions++;
	log_debug("outbox '%s': compacted to %" PRIu64 " bytes", ob->path, off);
out:
	durable_file_close(&df);
	if (r < 0) {
		log_warn_errno(r, "outbox '%s': compaction failed, will retry later", ob->path);
		ob->compact_failed_dead = dead_bytes(ob) ? dead_bytes(ob) : 1;
	}
	free(new_off);
	free(buf);
	return r;
}

/*
 * Everything acked: cut the journal back to its header in place. Needs no free space (a
 * compaction needs room for a copy), so a full disk is freed of our own dead records first.
 */
static int cut_to_header(struct outbox *ob)
{
	if (ftruncate(ob->fd, HEADER_LEN) < 0)
		return log_warn_errno(-errno, "outbox '%s': cannot cut the journal", ob->path);
	ob->file_size = HEADER_LEN;
	ob->file_bytes_damaged = 0;
	ob->compact_failed_dead = 0;
	ob->dirty = true;
	ob->n_ent = 0;
	ob->first_live = 0;
	ob->stats.compactions++;
	/* the header's next_seq is older now: record the current one (the seqs stay increasing
	 * across a reopen); if even these bytes do not fit, the puts still carry their seqs */
	if (append_header(ob) < 0)
		log_debug("outbox '%s': no room for a header record yet", ob->path);
	return 0;
}

/*
 * Keeps the journal within its live content plus a bound: compacted once the dead bytes exceed
 * both the live bytes and OUTBOX_COMPACT_MIN_DEAD (so the copying stays proportional to the
 * acks), cut in place as soon as nothing is live. After a failed compaction (a full disk) the
 * next attempt waits for more dead bytes or for outbox_maintain().
 */
static void maybe_compact(struct outbox *ob)
{
	uint64_t dead = dead_bytes(ob);

	if (ob->file_size == 0 || dead == 0)
		return;
	if (ob->n_live == 0 && (dead >= OUTBOX_CUT_MIN_DEAD || ob->compact_failed_dead)) {
		cut_to_header(ob);
		return;
	}
	if (ob->compact_failed_dead && dead < ob->compact_failed_dead + OUTBOX_COMPACT_MIN_DEAD)
		return;
	if (dead > OUTBOX_COMPACT_MIN_DEAD && dead > ob->live_bytes)
		compact(ob);
}

void outbox_maintain(struct outbox *ob)
{
	if (!ob->compact_failed_dead)
		return;
	/* each try may copy much of the live data before it fails: back off to once a minute */
	if (ob->maintain_wait > 0) {
		ob->maintain_wait--;
		return;
	}
	ob->compact_failed_dead = 0;
	maybe_compact(ob);
	if (!ob->compact_failed_dead) {
		ob->maintain_backoff = 0;
		return;
	}
	ob->maintain_backoff = ob->maintain_backoff ? ob->maintain_backoff * 2 : 1;
	if (ob->maintain_backoff > 64)
		ob->maintain_backoff = 64;
	ob->maintain_wait = ob->maintain_backoff;
}

/*
 * Marks e dead in the index and, if the disk lets us, in the journal. An ack that cannot be
 * written is not an error: it is not fsynced anyway (a lost ack only means one duplicate after
 * a crash), and the next compaction drops the record for good.
 */
static void retire(struct outbox *ob, struct outbox_entry *e)
{
	if (append_ack(ob, e->seq) < 0)
		ob->stats.acks_unrecorded++;
	kill_entry(ob, e);
	advance_first_live(ob);
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
		retire(ob, e);
		ob->stats.superseded++;
	}
	for (size_t i = ob->first_live; i < ob->n_ent && over_limits(ob, add_bytes); i++) {
		struct outbox_entry *e = &ob->ent[i];

		if (!e->live || e->kind != OUTBOX_EVENT)
			continue;
		retire(ob, e);
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
			retire(ob, old);
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
	if (ob->file_size == 0) {
		/* opened on a full disk: the header still has to go first */
		r = start_journal(ob);
		if (r < 0) {
			free(buf);
			return write_failed(ob, r);
		}
	}
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
	if (r < 0 && ob->n_live == 0 && dead_bytes(ob) > 0 && cut_to_header(ob) == 0) {
		/* a full disk: our own dead records go first (cutting needs no space) */
		off = ob->file_size;
		r = append(ob, buf, blen);
	}
	free(buf);
	if (r < 0)
		return write_failed(ob, r);
	ob->write_failing = false;
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

	if (!e || !e->live)
		return -ENOENT;
	retire(ob, e);
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

void outbox_get_damage(const struct outbox *ob, struct outbox_damage *ret)
{
	*ret = ob->damage;
}

uint64_t outbox_take_dropped(struct outbox *ob)
{
	uint64_t n = ob->dropped_pending;

	ob->dropped_pending = 0;
	return n;
}
