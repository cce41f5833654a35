/* SPDX-License-Identifier: MIT */
/*
 * outbox: the agent's durable, bounded queue of messages waiting for a broker PUBACK, so that
 * nothing is lost across broker outages, agent crashes (kill -9) and power cuts.
 *
 * Storage: one append-only journal file STATE_DIR/outbox.log of framed records
 * (u32 length, u32 crc32, body). A body is a header (next seq), a PUT (seq, flags, key, topic,
 * payload) or an ACK (seq). Opening replays the journal into an in-memory index (seq, file
 * offset, key); payloads stay on disk and are read back with pread() when sent. A record whose
 * length, shape or crc is wrong is skipped: replay resumes at the next valid frame (found by
 * scanning for a length that fits, the shape of a record and its crc), so a flipped byte or a
 * bad length loses only the records it hit; a damaged tail (power cut in the middle of a write)
 * is cut. What was lost is logged and reported (outbox_get_damage). When dead records (acked,
 * superseded, dropped) outweigh live ones and OUTBOX_COMPACT_MIN_DEAD, the journal is compacted
 * into a new file (write, fsync, rename, fsync dir); when nothing is live it is cut in place.
 *
 * Full disk: a put whose write fails returns -ENOSPC/-EIO and changes nothing (the caller keeps
 * the message and retries); an ack that cannot be written is applied in memory only (a lost
 * ack costs a duplicate after a crash, never a loss); opening works without a byte of space. Why a
 * journal and not one file per record: a put is one write() and many puts share one fdatasync()
 * (outbox_flush), so it sustains thousands of records/s where file-per-record needs an fsync, a
 * rename and a directory fsync per message.
 *
 * Durability contract: outbox_put() survives a process crash as soon as it returns (the data is
 * in the kernel); outbox_flush() makes everything put so far survive a power cut. The MQTT
 * client calls outbox_flush() before it publishes anything, so nothing reaches the broker that
 * could be forgotten by the agent.
 *
 * Keys and overflow policy (also in agent/README.md):
 *   key NULL or ""     an event: droppable when the outbox is full, oldest first;
 *   key "result:..."   a command result: never dropped, never coalesced;
 *   any other key      (e.g. "state:<udid>") a state: every change is kept while there is room
 *                      (consumers see each one, no seq gaps); under pressure an unsent older
 *                      record with the same key is superseded first. The newest per key is
 *                      never dropped.
 * When a put would exceed max_records or max_bytes: a state first supersedes its own older
 * record; then older states made redundant by a newer one of the same key are superseded, then
 * the oldest events are dropped, until it fits. If it still does not fit, a new event is refused
 * (and counted as dropped), while a state or result is accepted over the limit (they are bounded by
 * devices and commands). Dropped events are counted; the daemon reads the count with
 * outbox_take_dropped() and logs a warning with it.
 *
 * Threading: a struct outbox belongs to one thread (the loop thread); no locking.
 */
#ifndef CRADLE_AGENT_OUTBOX_H
#define CRADLE_AGENT_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTBOX_TOPIC_MAX   512
#define OUTBOX_KEY_MAX     192
#define OUTBOX_PAYLOAD_MAX (256 * 1024)
#define OUTBOX_FILE        "outbox.log"
/* the journal's bound: dead bytes (acked, superseded, dropped, damaged) are compacted away once
 * they exceed both the live bytes and this, and cut in place once nothing is live and they
 * exceed OUTBOX_CUT_MIN_DEAD; so the file stays under 2 x live + this + one record */
#define OUTBOX_COMPACT_MIN_DEAD (64 * 1024)
#define OUTBOX_CUT_MIN_DEAD     (4 * 1024)

struct outbox;

struct outbox_limits {
	uint64_t max_bytes;   /* live record bytes (framing included); the file may reach ~2x */
	uint64_t max_records; /* live records */
};

enum outbox_kind {
	OUTBOX_EVENT,
	OUTBOX_STATE, /* coalescing key */
	OUTBOX_RESULT,
	_OUTBOX_KIND_MAX,
};

/* A record handed out by outbox_next(); caller frees with outbox_record_free(). */
struct outbox_record {
	uint64_t seq;
	enum outbox_kind kind;
	bool retained;
	int qos;
	char *topic; /* NUL-terminated */
	char *payload;
	size_t len;
};

struct outbox_stats {
	uint64_t depth;      /* live records */
	uint64_t bytes;      /* live bytes */
	uint64_t file_bytes; /* journal size */
	uint64_t dropped;    /* events dropped by the overflow policy since open */
	uint64_t superseded; /* coalesced away since open */
	uint64_t truncated;  /* damaged bytes skipped at open */
	uint64_t compactions;
	uint64_t write_failures;  /* puts refused because the write failed (full disk, I/O) */
	uint64_t acks_unrecorded; /* acks kept in memory only (the write failed) */
};

/*
 * What opening found damaged (a flipped byte, a bad length, a truncated tail, an emptied file).
 * Damaged frames are skipped and replay resumes at the next valid frame, so only the records hit
 * are lost. lost_records counts the unsent puts lost (acked ones found acknowledged later are not
 * lost); first_seq..last_seq are their outbox record numbers (0 when unknown). Exact for damage
 * that leaves frame lengths intact, and for a damaged length between two valid puts unless a
 * compaction had removed acked records between them (then an upper bound).
 */
struct outbox_damage {
	bool damaged;
	bool empty; /* the journal existed but was empty: what it held is lost, uncounted */
	uint64_t lost_records;
	uint64_t first_seq, last_seq;
	uint64_t bytes_skipped;
};

/*
 * Opens (creating dir/outbox.log if needed; dir must exist) and replays the journal.
 * dir and limits are copied. 0 and *ret (free with outbox_close()) or -errno.
 */
int outbox_open(const char *dir, const struct outbox_limits *limits, struct outbox **ret);

/* Flushes (fdatasync) and closes; NULL-safe; returns NULL. */
struct outbox *outbox_close(struct outbox *ob);

/*
 * Appends a message: topic (NUL-terminated, < OUTBOX_TOPIC_MAX), payload (len bytes,
 * <= OUTBOX_PAYLOAD_MAX), key (see above; may be NULL). All borrowed. qos 0..2.
 * Returns 0 and the new seq in *ret_seq (may be NULL); -ENOBUFS when an event was refused by
 * the overflow policy; -EINVAL for bad arguments; -EIO/-ENOSPC when the write failed (the
 * journal is left as before, counted in write_failures).
 */
int outbox_put(struct outbox *ob, const char *topic, const void *payload, size_t len, bool retained,
               int qos, const char *key, uint64_t *ret_seq);

/* Makes every put so far durable (fdatasync when something is unsynced). 0 or -errno. */
int outbox_flush(struct outbox *ob);

/*
 * The live record with the smallest seq > after_seq. 0 and *ret (caller frees with
 * outbox_record_free()), -ENOENT when there is none, -EIO/-ENOMEM.
 */
int outbox_next(struct outbox *ob, uint64_t after_seq, struct outbox_record **ret);
struct outbox_record *outbox_record_free(struct outbox_record *rec);

/* Whether seq is still live (not acked, superseded or dropped). */
bool outbox_contains(const struct outbox *ob, uint64_t seq);

/*
 * Deletes seq after the broker acknowledged it. 0, or -ENOENT when it is already gone (a
 * duplicate ack, or it was superseded meanwhile: harmless). The ack itself is not fsynced: a
 * lost ack only means one duplicate after a power cut.
 */
int outbox_ack(struct outbox *ob, uint64_t seq);

uint64_t outbox_depth(const struct outbox *ob);
void outbox_get_stats(const struct outbox *ob, struct outbox_stats *ret);

/* What outbox_open() found damaged (all zero: nothing). */
void outbox_get_damage(const struct outbox *ob, struct outbox_damage *ret);

/*
 * Retries a compaction that failed (full disk) now rather than after more acks: call every
 * second or so; failed tries back off to one call in 64. Cheap when there is nothing to do.
 */
void outbox_maintain(struct outbox *ob);

/* Events dropped since the last call (then reset to 0), for the daemon's overflow warning. */
uint64_t outbox_take_dropped(struct outbox *ob);

#endif
