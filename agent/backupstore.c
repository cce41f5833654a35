/* SPDX-License-Identifier: MIT */
/*
 * backupstore: see backupstore.h for the layout and why it is safe against interrupted
 * backups. Directory walks use nftw(FTW_PHYS) so a symlink planted in a backup is never
 * followed out of the store.
 */
#include "backupstore.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "durable.h"
#include "log.h"
#include "timefmt.h"
#include "topics.h"

#define BS_PATH_MAX 4096

/* a/b into buf; -ENAMETOOLONG instead of a silently cut path */
static int join(char *buf, size_t size, const char *a, const char *b)
{
	int n = snprintf(buf, size, "%s/%s", a, b);

	return (n < 0 || (size_t)n >= size) ? -ENAMETOOLONG : 0;
}

static int mkdir_0700(const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path) < 0 ? -1 : 0;
	return unlink(path) < 0 ? -1 : 0;
}

static int rm_rf(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS) < 0)
		return -errno;
	return 0;
}

static int copy_file(const char *from, const char *to, mode_t mode)
{
	char buf[65536];
	int in = -1, out = -1, r = 0;
	ssize_t n;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		r = -errno;
		goto out;
	}
	out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 0600);
	if (out < 0) {
		r = -errno;
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n) {
			r = -EIO;
			goto out;
		}
	}
	if (n < 0)
		r = -errno;
out:
	if (in >= 0)
		close(in);
	if (out >= 0)
		close(out);
	return r;
}

/* nftw has no user pointer: the seeding walk keeps its two roots here (one walk at a time). */
static char seed_from[BS_PATH_MAX], seed_to[BS_PATH_MAX];
static size_t seed_from_len;

/* Is this file directly in the device folder (<snapshot>/<UDID>/<file>)? Those are rewritten
 * in place by idevicebackup2 and must be copied, not linked. */
static bool is_top_metadata(const char *rel)
{
	const char *slash = strchr(rel, '/');

	return slash && !strchr(slash + 1, '/');
}

static int seed_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	char dst[BS_PATH_MAX];
	const char *rel = path + seed_from_len;

	(void)ftw;
	if (*rel == '/')
		rel++;
	if (snprintf(dst, sizeof(dst), "%s/%s", seed_to, rel) >= (int)sizeof(dst))
		return -1;
	if (*rel == '\0')
		return 0;
	if (flag == FTW_D)
		return mkdir(dst, 0700) < 0 && errno != EEXIST ? -1 : 0;
	if (flag != FTW_F || !S_ISREG(st->st_mode))
		return 0; /* symlinks and specials are never part of a backup: skip them */
	if (is_top_metadata(rel))
		return copy_file(path, dst, st->st_mode) < 0 ? -1 : 0;
	if (link(path, dst) < 0)
		return copy_file(path, dst, st->st_mode) < 0 ? -1 : 0; /* e.g. EXDEV, EMLINK */
	return 0;
}

int64_t backupstore_free_bytes(const struct backupstore_config *cfg)
{
	uint64_t free_b;
	int r = durable_free_bytes(cfg->dir, &free_b, NULL);

	return r < 0 ? r : (int64_t)free_b;
}

int backupstore_prepare(const struct backupstore_config *cfg, const char *udid, char *ret_path,
                        size_t size)
{
	char devdir[BS_PATH_MAX], incoming[BS_PATH_MAX], current[BS_PATH_MAX];
	struct stat st;
	int64_t free_bytes;
	int r;

	if (!topics_udid_valid(udid))
		return -EINVAL;
	r = mkdir_0700(cfg->dir);
	if (r < 0)
		return r;
	free_bytes = backupstore_free_bytes(cfg);
	if (free_bytes < 0)
		return (int)free_bytes;
	if ((uint64_t)free_bytes < cfg->min_free)
		return -ENOSPC;
	if (join(devdir, sizeof(devdir), cfg->dir, udid) < 0)
		return -ENAMETOOLONG;
	if (join(incoming, sizeof(incoming), devdir, ".incoming") < 0)
		return -ENAMETOOLONG;
	if (join(current, sizeof(current), devdir, "current") < 0)
		return -ENAMETOOLONG;
	r = mkdir_0700(devdir);
	if (r < 0)
		return r;
	/* the device folder holds phone data: never looser than 0700, whatever created it */
	if (chmod(devdir, 0700) < 0)
		return -errno;
	r = rm_rf(incoming);
	if (r < 0)
		return r;
	r = mkdir_0700(incoming);
	if (r < 0)
		return r;
	if (stat(current, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (!realpath(current, seed_from))
			return -errno;
		seed_from_len = strlen(seed_from);
		snprintf(seed_to, sizeof(seed_to), "%s", incoming);
		if (nftw(seed_from, seed_entry, 32, FTW_PHYS) < 0) {
			r = -errno ? -errno : -EIO;
			rm_rf(incoming);
			return r;
		}
	}
	if (snprintf(ret_path, size, "%s", incoming) >= (int)size)
		return -ENAMETOOLONG;
	return 0;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted (oldest first) snapshot names; caller frees each and the array. */
static int list_snapshots(const char *snapdir, char ***ret, int *ret_n)
{
	DIR *d = opendir(snapdir);
	struct dirent *de;
	char **names = NULL, **grown;
	int n = 0, cap = 0;

	*ret = NULL;
	*ret_n = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			grown = realloc(names, (size_t)cap * sizeof(*names));
			if (!grown)
				break;
			names = grown;
		}
		names[n] = strdup(de->d_name);
		if (names[n])
			n++;
	}
	closedir(d);
	if (n > 1)
		qsort(names, (size_t)n, sizeof(*names), name_cmp);
	*ret = names;
	*ret_n = n;
	return 0;
}

int backupstore_commit(const struct backupstore_config *cfg, const char *udid, int64_t now_unix)
{
	char devdir[BS_PATH_MAX], incoming[BS_PATH_MAX], snapdir[BS_PATH_MAX], snap[BS_PATH_MAX];
	char link_tmp[BS_PATH_MAX], current[BS_PATH_MAX], target[BS_PATH_MAX], stamp[32];
	char **names = NULL;
	int i, n = 0, r, attempt;
	size_t len;

	if (!topics_udid_valid(udid))
		return -EINVAL;
	if (join(devdir, sizeof(devdir), cfg->dir, udid) < 0)
		return -ENAMETOOLONG;
	if (join(incoming, sizeof(incoming), devdir, ".incoming") < 0)
		return -ENAMETOOLONG;
	if (join(snapdir, sizeof(snapdir), devdir, "snapshots") < 0)
		return -ENAMETOOLONG;
	if (join(current, sizeof(current), devdir, "current") < 0)
		return -ENAMETOOLONG;
	if (join(link_tmp, sizeof(link_tmp), devdir, ".current.tmp") < 0)
		return -ENAMETOOLONG;
	r = mkdir_0700(snapdir);
	if (r < 0)
		return r;
	/* 20261125T224500Z: sorts by time, no ':' (awkward in paths) */
	timefmt_rfc3339(now_unix, stamp, sizeof(stamp));
	for (i = 0, len = 0; stamp[i]; i++)
		if (stamp[i] != '-' && stamp[i] != ':')
			stamp[len++] = stamp[i];
	stamp[len] = '\0';
	for (attempt = 0; attempt < 100; attempt++) {
		char name[48];

		if (attempt == 0)
			snprintf(name, sizeof(name), "%s", stamp);
		else
			snprintf(name, sizeof(name), "%s-%d", stamp, attempt);
		if (join(snap, sizeof(snap), snapdir, name) < 0)
			return -ENAMETOOLONG;
		if (rename(incoming, snap) == 0)
			break;
		if (errno != EEXIST && errno != ENOTEMPTY)
			return -errno;
	}
	if (attempt == 100)
		return -EEXIST;
	/* swap the symlink atomically: a crash leaves either the old or the new current */
	snprintf(target, sizeof(target), "snapshots/%s", strrchr(snap, '/') + 1);
	unlink(link_tmp);
	if (symlink(target, link_tmp) < 0 || rename(link_tmp, current) < 0)
		return -errno;
	/* the new current must survive a power cut before older snapshots are pruned */
	r = durable_fsync_parent(current);
	if (r < 0)
		return r;
	r = list_snapshots(snapdir, &names, &n);
	if (r < 0)
		return r;
	for (i = 0; i < n; i++) {
		if (i < n - (cfg->retention > 0 ? cfg->retention : 1)) {
			char old[BS_PATH_MAX];
			if (join(old, sizeof(old), snapdir, names[i]) < 0 || rm_rf(old) < 0)
				log_warn("backup store: cannot prune '%s', ignoring", old);
		}
		free(names[i]);
	}
	free(names);
	return 0;
}

void backupstore_abort(const struct backupstore_config *cfg, const char *udid)
{
	char devdir[BS_PATH_MAX], incoming[BS_PATH_MAX];
	int r;

	if (!topics_udid_valid(udid) || join(devdir, sizeof(devdir), cfg->dir, udid) < 0 ||
	    join(incoming, sizeof(incoming), devdir, ".incoming") < 0)
		return;
	r = rm_rf(incoming);
	if (r < 0)
		log_warn_errno(r, "backup store: cannot remove '%s'", incoming);
}

int backupstore_recover(const struct backupstore_config *cfg)
{
	DIR *d = opendir(cfg->dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char incoming[BS_PATH_MAX];
		struct stat st;

		if (de->d_name[0] == '.' || !topics_udid_valid(de->d_name))
			continue;
		snprintf(incoming, sizeof(incoming), "%s/%s/.incoming", cfg->dir, de->d_name);
		if (lstat(incoming, &st) == 0) {
			log_notice("backup store: discarding the interrupted backup of '%s'",
			           de->d_name);
			rm_rf(incoming);
			n++;
		}
	}
	closedir(d);
	return n;
}

int backupstore_count(const struct backupstore_config *cfg, const char *udid)
{
	char snapdir[BS_PATH_MAX];
	char **names = NULL;
	int i, n = 0;

	snprintf(snapdir, sizeof(snapdir), "%s/%s/snapshots", cfg->dir, udid);
	if (list_snapshots(snapdir, &names, &n) < 0)
		return 0;
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return n;
}
