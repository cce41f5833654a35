/* SPDX-License-Identifier: MIT */
/*
 * cmdtable: the agent's persistent table of recent command ids and their last status.
 *
 * Commands arrive at least once (MQTT QoS 1, dashboard re-sends), so the agent must recognise a
 * cmd_id it has seen, even after a restart or a kill -9, and answer with the last status instead
 * of running the command again. The table lives in one append-only file in the state directory
 * (fixed-size records with a CRC; each new status is fsynced before the caller acts on it) and
 * is compacted by write-temp/fsync/rename when the log grows past twice the live entries. A torn
 * tail record from a crash is cut off on open; a damaged header moves the file aside.
 *
 * Bounds: at most max_entries ids, and ids older than retention are forgotten. A full table never
 * forgets a live id: inserting a new one fails with -EBUSY (the intake refuses the command as
 * "busy"). Keep retention >= the longest command ttl plus clock skew: an id that has been
 * forgotten then belongs to an expired command, which the intake refuses anyway. Lookups are
 * O(1) (open addressing over a FIFO ring of entries).
 *
 * Damage fails closed. Every record has a CRC; a guard file next to the table (path + ".guard")
 * holds how many records the log had at its last synced write and the replay_unknown watermark.
 * When on open a record is damaged (it is skipped, the records after it still count), the tail
 * is cut or torn, the log holds fewer records than the guard vouches for, the table is missing,
 * empty or not a table while the guard exists, or the guard is missing or damaged while the
 * table exists, the history is incomplete: the watermark becomes the open time (synced before
 * cmdtable_open() returns; if the disk refuses, it holds in memory and the damage is found
 * again at the next open) and the intake refuses every command issued before it
 * (cmdtable_unknown_before()). Deleting both files is a new installation.
 *
 * Threading: a table belongs to one thread (the agent's loop thread); no locking.
 */
#ifndef CRADLE_CMDTABLE_H
#define CRADLE_CMDTABLE_H

#include <stddef.h>
#include <stdint.h>

#include "command.h"

#define CMDTABLE_ENTRIES_MAX 100000 /* hard cap on max_entries (about 10 MB of log at most) */

struct cmdtable;

struct cmdtable_entry {
	char cmd_id[COMMAND_ID_MAX]; /* lowercase UUID text */
	enum command_status status;
	char code[COMMAND_CODE_MAX]; /* reason (rejected) or cause (failed); "" otherwise */
	int progress;                /* last progress 0..100, -1 = none */
	int64_t created_ms;          /* wall clock of the first status, Unix ms */
	int64_t updated_ms;          /* wall clock of the last status */
};

/*
 * Opens (creating it if needed, mode 0600) the table file at path (borrowed), loads it, cuts a
 * torn tail, forgets entries older than retention_ms at now_ms and compacts if worthwhile.
 * max_entries is 1..CMDTABLE_ENTRIES_MAX. Returns 0 and *ret (free with cmdtable_free()), or
 * -EINVAL, -ENOMEM, or the -errno of a file operation. Logs what it repairs.
 */
int cmdtable_open(const char *path, size_t max_entries, int64_t retention_ms, int64_t now_ms,
                  struct cmdtable **ret);

/* Closes the file and frees everything; NULL-safe; returns NULL. */
struct cmdtable *cmdtable_free(struct cmdtable *t);

/*
 * The entry for cmd_id (any case), or NULL. The pointer is valid until the next cmdtable_put(),
 * cmdtable_prune() or cmdtable_free().
 */
const struct cmdtable_entry *cmdtable_get(struct cmdtable *t, const char *cmd_id);

/*
 * Records status for cmd_id (inserted if new; -EBUSY when the table is full of live ids). code is
 * the reason or cause ("" or NULL for none; truncated to COMMAND_CODE_MAX - 1), progress 0..100
 * or -1. The record is on disk when this returns 0 (fdatasync), except for a progress-only
 * change of an in_progress entry, which is written without a sync: losing the latest percentage
 * in a crash is harmless. Returns 0, -EINVAL (bad cmd_id), -EBUSY, or -errno from the write (the
 * table in memory is then unchanged).
 */
int cmdtable_put(struct cmdtable *t, const char *cmd_id, enum command_status status,
                 const char *code, int progress, int64_t now_ms);

/*
 * At agent start: every entry that is not final (accepted, waiting_for_user, in_progress) belongs
 * to an execution the previous process did not finish, and nothing will ever finish it. Records
 * them as failed with cause code (e.g. "agent_restarted"), so that a repeat gets a final status
 * rather than "accepted" forever. before (may be NULL) sees each entry as it will be recorded,
 * before the write: the agent publishes the final result there (into its durable outbox), so a
 * crash between the two repeats the result at the next start rather than losing it, and once
 * recorded the entry is final and is never reported again. Returns how many were changed, or
 * -errno from the first failed write.
 */
typedef void (*cmdtable_entry_fn)(const struct cmdtable_entry *e, void *userdata);
int cmdtable_fail_unfinished(struct cmdtable *t, const char *code, int64_t now_ms,
                             cmdtable_entry_fn before, void *userdata);

/*
 * For a caller that knows history was lost (the agent ran here before, yet the table and its
 * guard are both gone): moves the watermark to now_ms, durably. Returns 0 or -errno.
 */
int cmdtable_mark_unknown(struct cmdtable *t, int64_t now_ms);

/*
 * The replay_unknown watermark (Unix ms): the history before it may be incomplete, so a command
 * issued before it (plus the clock skew) must be refused. 0 = the history is complete.
 */
int64_t cmdtable_unknown_before(const struct cmdtable *t);

/* Forgets entries created before now_ms - retention. Returns how many were forgotten. */
size_t cmdtable_prune(struct cmdtable *t, int64_t now_ms);

size_t cmdtable_count(const struct cmdtable *t);

/* Records in the log file (live plus superseded); for tests and the compaction rule. */
size_t cmdtable_log_records(const struct cmdtable *t);

#endif
