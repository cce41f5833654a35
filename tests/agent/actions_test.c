/* SPDX-License-Identifier: MIT */
/*
 * actions: the scheduling rules of local backups (host-wide cap, FIFO, one action per device,
 * unplug while waiting) with real helper processes under the real loop. The phone side is a
 * stand-in: a shell script in place of idevicebackup2 that prints progress and succeeds, since
 * what is tested here is the agent's bookkeeping; the real tool against cradle-sim is covered
 * by tests/agent/commands_test.py.
 *
 * The stall watchdog: a tool that prints one line and then hangs (ignoring SIGTERM, as
 * idevicebackup2 does after DLMessagePurgeDiskSpace) is killed and the command fails "stalled";
 * a slow tool that keeps printing lines is left alone.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "actions.h"
#include "loop.h"

#define MAX_LOG 64

struct log_entry {
	char udid[64];
	enum command_status status;
	char cause[48];
};

struct ctx {
	struct loop *loop;
	struct actions *a;
	struct log_entry log[MAX_LOG];
	int n;
	int finals;
	int running, max_running;
};

static char dir[256], helper[300], tool[300];

static void on_report(void *data, const struct command *cmd, enum command_status st, int progress,
                      const char *cause, const char *detail)
{
	struct ctx *c = data;

	(void)detail;
	if (st == COMMAND_STATUS_IN_PROGRESS && progress == 0) {
		c->running++;
		if (c->running > c->max_running)
			c->max_running = c->running;
	}
	if (c->n < MAX_LOG) {
		snprintf(c->log[c->n].udid, sizeof(c->log[0].udid), "%s", cmd->udid);
		c->log[c->n].status = st;
		snprintf(c->log[c->n].cause, sizeof(c->log[0].cause), "%s", cause ? cause : "");
		c->n++;
	}
	if (command_status_is_final(st))
		c->finals++;
}

struct probe_req {
	struct ctx *c;
	char udid[64];
};

static void probe_later(struct loop *loop, uint64_t id, void *data)
{
	struct probe_req *p = data;
	struct device_facts f = { .probe = FACTS_PROBE_OK };

	(void)loop;
	(void)id;
	snprintf(f.udid, sizeof(f.udid), "%s", p->udid);
	actions_probe_done(p->c->a, p->udid, &f);
	free(p);
}

static void on_probe(void *data, const char *udid)
{
	struct ctx *c = data;
	struct probe_req *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	p->c = c;
	snprintf(p->udid, sizeof(p->udid), "%s", udid);
	/* the backup that asked has left the running set by now */
	c->running--;
	loop_add_timer(c->loop, 10, probe_later, p);
}

static const struct device_facts *on_facts(void *data, const char *udid)
{
	(void)data;
	(void)udid;
	return NULL;
}

static void on_backup_error(void *data, const char *udid, int code)
{
	(void)data;
	(void)udid;
	(void)code;
}

static const struct actions_ops ops = { on_report, on_probe, on_facts, on_backup_error };

static void write_script(const char *path, const char *body)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(body, f);
	fclose(f);
	assert_int_equal(chmod(path, 0755), 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/cradle-actions-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(helper, sizeof(helper), "%s/helper.sh", dir);
	snprintf(tool, sizeof(tool), "%s/tool.sh", dir);
	/* cradle-agent-action --exec TOOL ARGS: run the tool in place */
	write_script(helper, "#!/bin/sh\n[ \"$1\" = --exec ] && shift && exec \"$@\"\nexit 2\n");
	/* idevicebackup2 -u U backup DIR: progress, then success */
	write_script(tool, "#!/bin/sh\nsleep 0.2\necho '[=====     ]  50% Finished'\n"
	                   "sleep 0.2\necho 'Backup Successful.'\n");
	return 0;
}

static int teardown(void **state)
{
	char cmd[512];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static struct command backup_cmd(const char *udid, int n)
{
	struct command cmd = { .known_name = true, .kind = COMMAND_BACKUP_LOCAL_START };

	snprintf(cmd.cmd_id, sizeof(cmd.cmd_id), "00000000-0000-4000-8000-%012d", n);
	snprintf(cmd.udid, sizeof(cmd.udid), "%s", udid);
	snprintf(cmd.name, sizeof(cmd.name), "backup.local.start");
	return cmd;
}

static void stop(struct loop *loop, uint64_t id, void *data)
{
	(void)id;
	(void)data;
	loop_stop(loop);
}

static void run_until(struct ctx *c, int finals)
{
	for (int i = 0; i < 600 && c->finals < finals; i++) {
		loop_add_timer(c->loop, 25, stop, NULL);
		loop_run(c->loop);
	}
}

static const char *final_cause(struct ctx *c, const char *udid, enum command_status *ret)
{
	for (int i = c->n - 1; i >= 0; i--) {
		if (strcmp(c->log[i].udid, udid) == 0 &&
		    command_status_is_final(c->log[i].status)) {
			*ret = c->log[i].status;
			return c->log[i].cause;
		}
	}
	fail_msg("no final state for %s", udid);
	return NULL;
}

static void test_cap_queue_busy_unplug(void **state)
{
	char store[300];
	struct actions_config cfg = {
		.action_helper = helper,
		.backup_tool = tool,
		.store = { .dir = store, .retention = 2, .min_free = 0 },
		.max_concurrent_backups = 1,
		.restart_timeout_s = 5,
		.action_timeout_s = 5,
		.backup_timeout_s = 10,
	};
	struct ctx c = { 0 };
	struct command cmd;
	enum command_status st;

	(void)state;
	snprintf(store, sizeof(store), "%s/store", dir);
	c.loop = loop_new();
	c.a = actions_new(c.loop, &cfg, &ops, &c);
	assert_non_null(c.a);

	cmd = backup_cmd("00008110-0000000000000A01", 1);
	actions_start(c.a, &cmd);
	cmd = backup_cmd("00008110-0000000000000A02", 2);
	actions_start(c.a, &cmd);
	cmd = backup_cmd("00008110-0000000000000A03", 3);
	actions_start(c.a, &cmd);
	/* a second action on a busy phone fails at once */
	cmd = backup_cmd("00008110-0000000000000A01", 4);
	actions_start(c.a, &cmd);
	assert_string_equal(final_cause(&c, "00008110-0000000000000A01", &st), "device_busy");
	assert_int_equal(st, COMMAND_STATUS_FAILED);
	/* the third one is still waiting for the slot: unplugging it fails it */
	actions_device_detached(c.a, "00008110-0000000000000A03");
	assert_string_equal(final_cause(&c, "00008110-0000000000000A03", &st),
	                    "device_disconnected");

	run_until(&c, 4);
	assert_int_equal(c.finals, 4);
	assert_int_equal(c.max_running, 1); /* the host-wide cap held */
	final_cause(&c, "00008110-0000000000000A01", &st);
	assert_int_equal(st, COMMAND_STATUS_SUCCEEDED);
	final_cause(&c, "00008110-0000000000000A02", &st);
	assert_int_equal(st, COMMAND_STATUS_SUCCEEDED);
	/* FIFO: A01 started (in_progress 0) before A02 */
	for (int i = 0, seen = 0; i < c.n; i++) {
		if (c.log[i].status != COMMAND_STATUS_IN_PROGRESS)
			continue;
		if (strcmp(c.log[i].udid, "00008110-0000000000000A02") == 0)
			assert_int_equal(seen, 1);
		if (strcmp(c.log[i].udid, "00008110-0000000000000A01") == 0)
			seen = 1;
	}
	assert_int_equal(actions_busy(c.a), 0);
	assert_int_equal(backupstore_count(&cfg.store, "00008110-0000000000000A01"), 1);
	actions_free(c.a);
	loop_free(c.loop);
}

static void test_stall(void **state)
{
	char store[300], stall_tool[300], chatty_tool[300], pidfile[300], script[512];
	struct actions_config cfg = {
		.action_helper = helper,
		.store = { .dir = store, .retention = 2, .min_free = 0 },
		.max_concurrent_backups = 2,
		.restart_timeout_s = 5,
		.action_timeout_s = 5,
		.backup_timeout_s = 60,
		.backup_stall_timeout_s = 1,
	};
	struct ctx c = { 0 }, c2 = { 0 }; /* c2: the chatty tool's own module and log */
	struct command cmd;
	enum command_status st;
	uint64_t t0;
	FILE *f;
	int pid = 0;

	(void)state;
	snprintf(store, sizeof(store), "%s/store", dir);
	snprintf(pidfile, sizeof(pidfile), "%s/stall.pid", dir);
	snprintf(stall_tool, sizeof(stall_tool), "%s/stall.sh", dir);
	snprintf(chatty_tool, sizeof(chatty_tool), "%s/chatty.sh", dir);
	/* one line, then silence; SIGTERM ignored (inherited across exec), only SIGKILL ends it */
	snprintf(script, sizeof(script),
	         "#!/bin/sh\necho $$ > '%s'\necho 'Backup directory is \"x\"'\n"
	         "trap '' TERM\nexec sleep 60\n",
	         pidfile);
	write_script(stall_tool, script);
	/* 2.4 s in all, longer than the stall timeout, but a line every 0.3 s */
	write_script(chatty_tool, "#!/bin/sh\nfor i in 1 2 3 4 5 6 7 8; do sleep 0.3; "
	                          "echo \"[===       ]  ${i}0% Finished\"; done\n"
	                          "echo 'Backup Successful.'\n");
	c.loop = loop_new();
	cfg.backup_tool = stall_tool;
	c.a = actions_new(c.loop, &cfg, &ops, &c);
	cfg.backup_tool = chatty_tool;
	c2.loop = c.loop;
	c2.a = actions_new(c.loop, &cfg, &ops, &c2);
	assert_non_null(c.a);
	assert_non_null(c2.a);

	t0 = loop_now_ms();
	cmd = backup_cmd("00008110-0000000000000B01", 11);
	actions_start(c.a, &cmd);
	cmd = backup_cmd("00008110-0000000000000B02", 12);
	actions_start(c2.a, &cmd);
	run_until(&c, 1);
	assert_string_equal(final_cause(&c, "00008110-0000000000000B01", &st), "stalled");
	assert_int_equal(st, COMMAND_STATUS_FAILED);
	/* 1 s of silence, then SIGTERM (ignored) and SIGKILL 2 s later */
	assert_true(loop_now_ms() - t0 >= 1000);
	assert_true(loop_now_ms() - t0 < 8000);
	f = fopen(pidfile, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &pid), 1);
	fclose(f);
	assert_true(pid > 0);
	assert_int_equal(kill(pid, 0), -1); /* killed and reaped */
	assert_int_equal(errno, ESRCH);
	assert_int_equal(backupstore_count(&cfg.store, "00008110-0000000000000B01"), 0);

	run_until(&c2, 1);
	assert_int_equal(c2.finals, 1);
	final_cause(&c2, "00008110-0000000000000B02", &st);
	assert_int_equal(st, COMMAND_STATUS_SUCCEEDED);
	assert_int_equal(backupstore_count(&cfg.store, "00008110-0000000000000B02"), 1);
	actions_free(c2.a);
	actions_free(c.a);
	loop_free(c.loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_cap_queue_busy_unplug, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stall, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
