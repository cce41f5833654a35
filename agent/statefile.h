/* SPDX-License-Identifier: MIT */
/*
 * statefile: a few persisted counters of the agent (the session number, new at every start, and
 * the next message seq), written crash-safely: temp file, fsync, rename, fsync of the dir.
 *
 * Format: text lines `key value` ("session 1764712345678901", "next_seq 4001"), so an operator
 * can read it; unknown keys are ignored (a newer agent may add some), a damaged file is an error
 * the caller reports (it then starts seq from 0 in a new session, which the dashboard sees as a
 * new session: the session comes from the clock, so it still differs from every earlier one and
 * the event ids "<session>-<seq>" never repeat).
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

#define STATEFILE_SEQ_BLOCK   1000
#define STATEFILE_SESSION_MAX 9007199254740991ULL /* 2^53 - 1 */

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

/*
 * Start of a run: a new session number, persisted. 0 or -errno (then the counters are unchanged).
 * The session is statefile_session_after(the loaded session, the wall clock in µs).
 */
int statefile_begin_session(const char *path, struct statefile *sf);

/*
 * The session after last: the wall clock at start in µs (now_us), or last + 1 when that is
 * greater (a clock set back). So a run never reuses an earlier session while the file exists,
 * and when the file is lost or damaged (last = 0) the clock still gives a number no earlier run
 * had, unless the clock repeats a microsecond of an earlier start. At most STATEFILE_SESSION_MAX
 * (2^53 - 1, exact in every JSON implementation; the clock reaches it in the year 2255): a
 * larger last (only a damaged file has one) is ignored.
 */
uint64_t statefile_session_after(uint64_t last, uint64_t now_us);

/* Next message seq; persists a new block when the current one is used up. 0 or -errno. */
int statefile_next_seq(const char *path, struct statefile *sf, uint64_t *ret_seq);

#endif
