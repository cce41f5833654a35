/* SPDX-License-Identifier: MIT */
/*
 * statefile: a few persisted counters of the agent (the session number, bumped at every start,
 * and the next message seq), written crash-safely: temp file, fsync, rename, fsync of the dir.
 *
 * Format: text lines `key value` ("session 12", "next_seq 4001"), so an operator can read it;
 * unknown keys are ignored (a newer agent may add some), a damaged file is an error the caller
 * reports (it then starts from 0 and a new session, which the dashboard sees as a new session).
 *
 * Seq allocation without an fsync per message: statefile_next_seq() hands out numbers from a
 * reserved block and persists "next_seq" = end of the block before the block is used. After a
 * crash the agent continues after the block, so seqs are unique and increasing within and
 * across sessions; unused numbers of a block show up as a gap only at a session change, which
 * the dashboard must not count as loss (it tracks gaps per session).
 *
 * Threading: none; a struct statefile belongs to one thread.
 */
#ifndef CRADLE_AGENT_STATEFILE_H
#define CRADLE_AGENT_STATEFILE_H

#include <stdint.h>

#define STATEFILE_SEQ_BLOCK 1000

struct statefile {
	uint64_t session;
	uint64_t next_seq;     /* next seq to hand out */
	uint64_t reserved_end; /* seqs below this are covered by the file on disk */
};

/*
 * Reads path (borrowed) into sf. A missing file gives zeros and returns 0; a damaged file
 * (bad number, line too long) gives zeros and -EBADMSG; other read errors -errno.
 */
int statefile_load(const char *path, struct statefile *sf);

/* Writes session and next_seq (= max(next_seq, reserved_end)) crash-safely. 0 or -errno. */
int statefile_save(const char *path, const struct statefile *sf);

/* Start of a run: session += 1 and persist. 0 or -errno (then the counters are unchanged). */
int statefile_begin_session(const char *path, struct statefile *sf);

/* Next message seq; persists a new block when the current one is used up. 0 or -errno. */
int statefile_next_seq(const char *path, struct statefile *sf, uint64_t *ret_seq);

#endif
