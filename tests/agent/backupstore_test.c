/* SPDX-License-Identifier: MIT */
/*
 * backupstore on a real temporary directory: snapshots, the current link, hard-linked data
 * files vs copied metadata, retention, interrupted backups, the free-space floor.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backupstore.h"

#define UDID "00008101-001A2B3C4D5E0001"

static char root[256];

static void write_file(const char *dir, const char *rel, const char *text)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static ino_t inode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

/* What idevicebackup2 does with a backup folder: metadata rewritten, data files replaced. */
static void fake_backup(const char *incoming, const char *data)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/" UDID, incoming);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/" UDID "/3d", incoming);
	mkdir(path, 0700);
	write_file(incoming, UDID "/Status.plist", data);
	if (data[0] == 'A')
		write_file(incoming, UDID "/3d/3d0d7e", "unchanged file");
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/cradle-bs-test-XXXXXX");
	assert_non_null(mkdtemp(root));
	return 0;
}

static int teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	assert_int_equal(WEXITSTATUS(system(cmd)), 0);
	return 0;
}

static void test_snapshots_and_retention(void **state)
{
	struct backupstore_config cfg = { .dir = root, .retention = 2, .min_free = 0 };
	char incoming[512], path[1024], cur_data[1024];
	struct stat st;
	ino_t data_ino;

	(void)state;
	assert_int_equal(backupstore_prepare(&cfg, UDID, incoming, sizeof(incoming)), 0);
	snprintf(path, sizeof(path), "%s/" UDID, root);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	fake_backup(incoming, "A");
	assert_int_equal(backupstore_commit(&cfg, UDID, 1000000000), 0);
	assert_int_equal(backupstore_count(&cfg, UDID), 1);
	snprintf(cur_data, sizeof(cur_data), "%s/" UDID "/current/" UDID "/3d/3d0d7e", root);
	data_ino = inode_of(cur_data);

	/* second backup: seeded from the first; data linked, metadata copied */
	assert_int_equal(backupstore_prepare(&cfg, UDID, incoming, sizeof(incoming)), 0);
	snprintf(path, sizeof(path), "%s/" UDID "/3d/3d0d7e", incoming);
	assert_int_equal(inode_of(path), data_ino);
	snprintf(path, sizeof(path), "%s/" UDID "/Status.plist", incoming);
	snprintf(cur_data, sizeof(cur_data), "%s/" UDID "/current/" UDID "/Status.plist", root);
	assert_int_not_equal(inode_of(path), inode_of(cur_data));
	fake_backup(incoming, "B");
	assert_int_equal(backupstore_commit(&cfg, UDID, 1000000100), 0);
	assert_int_equal(backupstore_count(&cfg, UDID), 2);

	/* the older snapshot kept its own metadata */
	snprintf(path, sizeof(path), "%s/" UDID "/snapshots/20010909T014640Z/" UDID "/Status.plist",
	         root);
	assert_int_equal(access(path, F_OK), 0);

	/* third: retention 2 prunes the oldest */
	assert_int_equal(backupstore_prepare(&cfg, UDID, incoming, sizeof(incoming)), 0);
	fake_backup(incoming, "C");
	assert_int_equal(backupstore_commit(&cfg, UDID, 1000000200), 0);
	assert_int_equal(backupstore_count(&cfg, UDID), 2);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_interrupted_backup_keeps_last_good(void **state)
{
	struct backupstore_config cfg = { .dir = root, .retention = 3, .min_free = 0 };
	char incoming[512], path[1024];
	FILE *f;
	char buf[16] = { 0 };

	(void)state;
	assert_int_equal(backupstore_prepare(&cfg, UDID, incoming, sizeof(incoming)), 0);
	fake_backup(incoming, "A");
	assert_int_equal(backupstore_commit(&cfg, UDID, 1000000000), 0);

	assert_int_equal(backupstore_prepare(&cfg, UDID, incoming, sizeof(incoming)), 0);
	write_file(incoming, UDID "/Status.plist", "PARTIAL");
	/* the agent dies here; on restart the leftover is discarded */
	assert_int_equal(backupstore_recover(&cfg), 1);
	assert_int_equal(access(incoming, F_OK), -1);
	snprintf(path, sizeof(path), "%s/" UDID "/current/" UDID "/Status.plist", root);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "A");

	/* an explicit abort also leaves current alone */
	assert_int_equal(backupstore_prepare(&cfg, UDID, incoming, sizeof(incoming)), 0);
	backupstore_abort(&cfg, UDID);
	assert_int_equal(access(incoming, F_OK), -1);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(backupstore_count(&cfg, UDID), 1);
}

static void test_refusals(void **state)
{
	struct backupstore_config cfg = { .dir = root, .retention = 1, .min_free = UINT64_MAX };
	char incoming[512];

	(void)state;
	assert_int_equal(backupstore_prepare(&cfg, UDID, incoming, sizeof(incoming)), -ENOSPC);
	cfg.min_free = 0;
	assert_int_equal(backupstore_prepare(&cfg, "../etc", incoming, sizeof(incoming)), -EINVAL);
	assert_int_equal(backupstore_prepare(&cfg, "", incoming, sizeof(incoming)), -EINVAL);
	/* topics_udid_valid() is the rule: no path step, no leading dash */
	assert_int_equal(backupstore_prepare(&cfg, "..", incoming, sizeof(incoming)), -EINVAL);
	assert_int_equal(backupstore_prepare(&cfg, "-rf", incoming, sizeof(incoming)), -EINVAL);
	assert_int_equal(backupstore_commit(&cfg, "a/b", 0), -EINVAL);
	assert_true(backupstore_free_bytes(&cfg) > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_snapshots_and_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(test_interrupted_backup_keeps_last_good, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
