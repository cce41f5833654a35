/* SPDX-License-Identifier: MIT */
/*
 * backupstore: the host's local backup store, one directory per device.
 *
 *   <backup_dir>/<udid>/                 mode 0700
 *       snapshots/<YYYYmmddTHHMMSSZ>/    one complete backup each (idevicebackup2 layout:
 *                                        <snapshot>/<UDID>/Manifest.db, 3d/3d0d7e…, …)
 *       current -> snapshots/<newest>    symlink to the last good backup
 *       .incoming/                       the backup being made
 *
 * A backup is made into .incoming, which starts as a copy of the last good snapshot so that
 * mobilebackup2 can run incrementally: data files are hard links (idevicebackup2 removes a
 * file before writing it, so a new version never changes the old snapshot's inode), the
 * metadata files at the top of the device folder (Info.plist, Status.plist, Manifest.*) are
 * real copies because they are rewritten in place. Only a completed backup is renamed into
 * snapshots/ and pointed to by current, so an interrupted backup never replaces the last good
 * one; a leftover .incoming is discarded on the next start. Retention keeps the newest N
 * snapshots; hard links make keeping several cheap.
 *
 * Blocking filesystem work: call from a helper or accept a short stall (copying links of a
 * few thousand files takes milliseconds).
 */
#ifndef CRADLE_BACKUPSTORE_H
#define CRADLE_BACKUPSTORE_H

#include <stddef.h>
#include <stdint.h>

struct backupstore_config {
	const char *dir;   /* borrowed; the store root (created 0700 if missing) */
	int retention;     /* snapshots kept per device, >= 1 */
	uint64_t min_free; /* refuse to start a backup with less free space than this */
};

/*
 * Creates <dir>/<udid>/.incoming (removing a leftover one), seeded from the last good snapshot.
 * Writes its path to ret_path. Returns 0, -ENOSPC when the free-space floor is not met,
 * -EINVAL for a UDID that is not a plain name, or another -errno.
 */
int backupstore_prepare(const struct backupstore_config *cfg, const char *udid, char *ret_path,
                        size_t size);

/* Moves .incoming into snapshots/, points current at it, prunes old snapshots. 0 or -errno. */
int backupstore_commit(const struct backupstore_config *cfg, const char *udid, int64_t now_unix);

/* Removes .incoming. Never fails loudly (logs). */
void backupstore_abort(const struct backupstore_config *cfg, const char *udid);

/* Removes every leftover .incoming under the store (agent start). Returns how many. */
int backupstore_recover(const struct backupstore_config *cfg);

/* Number of snapshots kept for udid (0 if none). */
int backupstore_count(const struct backupstore_config *cfg, const char *udid);

/* Free bytes on the store's filesystem, or -errno. */
int64_t backupstore_free_bytes(const struct backupstore_config *cfg);

#endif
