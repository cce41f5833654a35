/* SPDX-License-Identifier: MIT */
/*
 * actions: one job per device, a small state machine each:
 *
 *   refresh:  PROBE -> done
 *   icloud:   HELPER (cloud-on) -> PROBE -> done (CloudBackupEnabled must read true)
 *   restart:  HELPER (restart) -> WAIT_REATTACH -> done (detach seen, then attach)
 *   local:    QUEUED -> BACKUP (idevicebackup2) -> PROBE (refresh last_local) -> done
 *
 * The helper processes print what they know on stdout; parsing is tolerant (a line we do not
 * understand is ignored) because idevicebackup2's wording is not an interface we own. The
 * outcome never rests on text alone: exit statuses, the device's own values after a re-probe
 * and the backup store's commit decide.
 */
#include "actions.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>

#include "child.h"
#include "diagnose.h"
#include "jsontext.h"
#include "log.h"
#include "loop.h"
#include "timefmt.h"

#define ACTIONS_LINE_MAX 1024

/*
 * A backup tool that fails for no reason it printed may have lost the phone: the tool sees its
 * connection close a moment before usbmuxd's Detached event reaches the agent. The failure is
 * held this long for the detach to arrive, so an unplug is reported as device_disconnected
 * and not as backup_failed.
 */
#define ACTIONS_DETACH_GRACE_MS 2000

enum job_phase {
	PHASE_HELPER,
	PHASE_PROBE,
	PHASE_WAIT_REATTACH,
	PHASE_QUEUED,
	PHASE_BACKUP,
	PHASE_BACKUP_SETTLE, /* the tool failed; waiting ACTIONS_DETACH_GRACE_MS for a detach */
};

struct job {
	struct actions *a;
	struct command cmd;
	enum job_phase phase;
	struct child *child;
	uint64_t timer;
	/* helper outcome */
	bool helper_said;
	bool helper_ok;
	int helper_code;
	char helper_error[128];
	/* restart */
	bool saw_detach, saw_reattach;
	/* local backup */
	bool detached_during;
	bool backup_said_ok;
	bool waiting_reported;
	int mb_error;
	int progress;
	uint64_t stall_timer;  /* watchdog: no output line for backup_stall_timeout */
	uint64_t last_line_ms; /* loop_now_ms() of the tool's last line */
	bool stalled;          /* the watchdog killed the tool */
	bool timed_out;        /* the backup deadline killed the tool */
	struct job *next;
};

struct actions {
	struct loop *loop;
	struct actions_config cfg;
	const struct actions_ops *ops;
	void *data;
	struct job *jobs;
	unsigned running_backups;
	int queued;
};

static struct job *job_find(struct actions *a, const char *udid)
{
	struct job *j;

	for (j = a->jobs; j; j = j->next)
		if (strcmp(j->cmd.udid, udid) == 0)
			return j;
	return NULL;
}

static void job_unlink(struct actions *a, struct job *j)
{
	struct job **pp;

	for (pp = &a->jobs; *pp; pp = &(*pp)->next) {
		if (*pp == j) {
			*pp = j->next;
			return;
		}
	}
}

static void report(struct job *j, enum command_status st, int progress, const char *cause,
                   const char *detail)
{
	j->a->ops->report(j->a->data, &j->cmd, st, progress, cause, detail);
}

static void start_next_backup(struct actions *a);

/* Final state: report, forget the job, let a waiting backup have the slot. */
static void job_finish(struct job *j, enum command_status st, const char *cause, const char *detail)
{
	struct actions *a = j->a;

	if (j->timer)
		loop_cancel_timer(a->loop, j->timer);
	report(j, st, -1, cause, detail);
	job_unlink(a, j);
	free(j);
	start_next_backup(a);
}

/* A failed probe says why the phone could not be read; that is the action's cause too. */
static const char *probe_cause(const struct device_facts *f)
{
	if (!f)
		return "device_disconnected";
	switch (f->probe) {
	case FACTS_PROBE_OK:
		return NULL;
	case FACTS_PROBE_NOT_TRUSTED:
		return "not_trusted";
	case FACTS_PROBE_LOCKED:
		return "passcode_required";
	case FACTS_PROBE_GONE:
		return "device_disconnected";
	case FACTS_PROBE_TIMEOUT:
		return "timeout";
	default:
		return "probe_failed";
	}
}

/* ---- helper processes (cloud-on, restart) ---- */

static void helper_on_line(struct child *c, const char *line, void *data)
{
	struct job *j = data;
	cJSON *o, *ok, *code, *err;

	(void)c;
	/* like every decoder: no string cut short at a \u0000 (jsontext.h) */
	if (jsontext_check_nul(line, strlen(line)) < 0)
		return;
	o = cJSON_Parse(line);
	if (!o)
		return;
	ok = cJSON_GetObjectItemCaseSensitive(o, "ok");
	code = cJSON_GetObjectItemCaseSensitive(o, "error_code");
	err = cJSON_GetObjectItemCaseSensitive(o, "error");
	if (cJSON_IsBool(ok)) {
		j->helper_said = true;
		j->helper_ok = cJSON_IsTrue(ok);
		j->helper_code = cJSON_IsNumber(code) ? code->valueint : 0;
		snprintf(j->helper_error, sizeof(j->helper_error), "%s",
		         cJSON_IsString(err) ? err->valuestring : "");
	}
	cJSON_Delete(o);
}

static void restart_on_timeout(struct loop *loop, uint64_t id, void *data)
{
	struct job *j = data;

	(void)loop;
	(void)id;
	j->timer = 0;
	job_finish(j, COMMAND_STATUS_FAILED, "restart_timeout",
	           j->saw_detach ? "the phone went away but did not come back in time"
	                         : "the phone never went away");
}

static void helper_on_exit(struct child *c, int status, bool timed_out, void *data)
{
	struct job *j = data;
	struct actions *a = j->a;
	const char *cause;
	char detail[192];

	(void)c;
	(void)status;
	j->child = NULL;
	if (timed_out || !j->helper_said || !j->helper_ok) {
		if (timed_out)
			cause = "timeout";
		else if (!j->helper_said)
			cause = "helper_failed";
		else if (strcmp(j->helper_error, "device_disconnected") == 0)
			cause = "device_disconnected";
		else if (strcmp(j->helper_error, "not_trusted") == 0)
			cause = "not_trusted";
		else
			cause = j->cmd.kind == COMMAND_DEVICE_RESTART ? "restart_failed"
			                                              : "icloud_enable_failed";
		snprintf(detail, sizeof(detail), "%s (code %d)",
		         j->helper_error[0] ? j->helper_error : "no answer from the helper",
		         j->helper_code);
		job_finish(j, COMMAND_STATUS_FAILED, cause, detail);
		return;
	}
	if (j->cmd.kind == COMMAND_BACKUP_ICLOUD_ENABLE) {
		j->phase = PHASE_PROBE;
		report(j, COMMAND_STATUS_IN_PROGRESS, 50, NULL,
		       "iCloud Backup switched on, checking");
		a->ops->probe(a->data, j->cmd.udid);
		return;
	}
	/* restart: the phone may already be back (a quick reboot) */
	if (j->saw_detach && j->saw_reattach) {
		job_finish(j, COMMAND_STATUS_SUCCEEDED, NULL, "the phone restarted and is back");
		return;
	}
	j->phase = PHASE_WAIT_REATTACH;
	report(j, COMMAND_STATUS_IN_PROGRESS, 50, NULL, "restarting, waiting for the phone");
	j->timer = loop_add_timer(a->loop, (uint64_t)a->cfg.restart_timeout_s * 1000,
	                          restart_on_timeout, j);
}

static const struct child_ops helper_ops = { helper_on_line, helper_on_exit };

static int spawn_helper(struct job *j, const char *verb)
{
	struct actions *a = j->a;
	const char *argv[] = { a->cfg.action_helper, "--udid", j->cmd.udid, verb, NULL };

	j->phase = PHASE_HELPER;
	return child_spawn(a->loop, argv, (uint64_t)a->cfg.action_timeout_s * 1000,
	                   ACTIONS_LINE_MAX, &helper_ops, j, &j->child);
}

/* ---- local backups ---- */

/*
 * The stall watchdog. Any line counts as life, not only a progress bar: the tool prints
 * something for every file batch, and once it waits for a reply that never comes (1.3.0 after
 * DLMessagePurgeDiskSpace) it prints nothing at all. One timer per backup, re-armed for the
 * remainder when lines came meanwhile, so a chatty tool costs no timer churn.
 */
static void backup_on_stall_timer(struct loop *loop, uint64_t id, void *data)
{
	struct job *j = data;
	uint64_t limit = (uint64_t)j->a->cfg.backup_stall_timeout_s * 1000;
	uint64_t quiet = loop_now_ms() - j->last_line_ms;

	(void)id;
	j->stall_timer = 0;
	if (!j->child)
		return;
	if (quiet < limit) {
		j->stall_timer = loop_add_timer(loop, limit - quiet, backup_on_stall_timer, j);
		return;
	}
	log_warn("device '%s': local backup silent for %llds, killing it as stalled", j->cmd.udid,
	         (long long)j->a->cfg.backup_stall_timeout_s);
	j->stalled = true;
	child_terminate(j->child);
}

static void backup_on_line(struct child *c, const char *line, void *data)
{
	struct job *j = data;
	const char *p;
	int code, pct;

	(void)c;
	j->last_line_ms = loop_now_ms();
	if (sscanf(line, "ErrorCode %d", &code) == 1) {
		j->mb_error = code;
		return;
	}
	if (strstr(line, "Backup Successful.")) {
		j->backup_said_ok = true;
		return;
	}
	/* progress bars look like "[=====     ]  45% Finished" */
	p = strstr(line, "% Finished");
	if (p) {
		while (p > line && p[-1] >= '0' && p[-1] <= '9')
			p--;
		pct = (int)strtol(p, NULL, 10);
		if (pct >= j->progress + 5 || (pct == 100 && j->progress < 100) ||
		    j->waiting_reported) {
			j->progress = pct > 100 ? 100 : pct;
			j->waiting_reported =
			        false; /* files flow: the person entered the passcode */
			report(j, COMMAND_STATUS_IN_PROGRESS, j->progress, NULL, NULL);
		}
	}
}

/* The failed backup's final result, from what is known now. */
static void backup_fail(struct job *j)
{
	struct actions *a = j->a;
	char detail[160];
	const char *cause;

	if (j->detached_during)
		cause = "device_disconnected";
	else if (j->stalled)
		cause = "stalled";
	else if (j->timed_out)
		cause = "timeout";
	else if (j->mb_error == 208)
		cause = "passcode_required";
	else if (j->mb_error == 105)
		cause = "host_disk_full";
	else
		cause = "backup_failed";
	if (j->mb_error && !j->detached_during)
		a->ops->backup_error(a->data, j->cmd.udid, j->mb_error);
	if (j->mb_error)
		snprintf(detail, sizeof(detail), "MBErrorDomain %d; the last good backup is kept",
		         j->mb_error);
	else if (j->stalled)
		snprintf(detail, sizeof(detail),
		         "no progress for %llds, the backup tool was killed; the last good backup "
		         "is kept",
		         (long long)a->cfg.backup_stall_timeout_s);
	else
		snprintf(detail, sizeof(detail),
		         "the backup did not complete; the last good backup is kept");
	job_finish(j, COMMAND_STATUS_FAILED, cause, detail);
}

static void backup_on_settled(struct loop *loop, uint64_t id, void *data)
{
	struct job *j = data;

	(void)loop;
	(void)id;
	j->timer = 0;
	backup_fail(j);
}

static void backup_on_exit(struct child *c, int status, bool timed_out, void *data)
{
	struct job *j = data;
	struct actions *a = j->a;
	bool ok = !timed_out && status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	          j->backup_said_ok;
	int r;

	(void)c;
	j->child = NULL;
	a->running_backups--;
	if (j->stall_timer)
		loop_cancel_timer(a->loop, j->stall_timer);
	j->stall_timer = 0;
	if (ok) {
		r = backupstore_commit(&a->cfg.store, j->cmd.udid, wall_now_ms() / 1000);
		if (r < 0) {
			log_warn_errno(r, "device '%s': cannot keep the new backup", j->cmd.udid);
			backupstore_abort(&a->cfg.store, j->cmd.udid);
			job_finish(j, COMMAND_STATUS_FAILED, "backup_store_error", strerror(-r));
			return;
		}
		a->ops->backup_error(a->data, j->cmd.udid, 0);
		j->phase = PHASE_PROBE;
		report(j, COMMAND_STATUS_IN_PROGRESS, 100, NULL,
		       "backup complete, re-reading the phone");
		a->ops->probe(a->data, j->cmd.udid);
		start_next_backup(a);
		return;
	}
	backupstore_abort(&a->cfg.store, j->cmd.udid);
	/* 1.3.0's exit status is -ErrorCode & 0xff: 48 is 208 when no line said it */
	if (!j->mb_error && status >= 0 && WIFEXITED(status) && WEXITSTATUS(status) == 48)
		j->mb_error = 208;
	j->timed_out = timed_out;
	if (!j->detached_during && !j->stalled && !timed_out && !j->mb_error) {
		j->phase = PHASE_BACKUP_SETTLE;
		j->timer = loop_add_timer(a->loop, ACTIONS_DETACH_GRACE_MS, backup_on_settled, j);
		if (j->timer) {
			start_next_backup(a); /* the slot is free now, not after the grace */
			return;
		}
	}
	backup_fail(j);
}

static const struct child_ops backup_ops = { backup_on_line, backup_on_exit };

/* iOS 16.1 and later ask for the passcode on the phone before a local backup. */
static bool asks_for_passcode(const struct device_facts *f)
{
	int cmp;

	return f && f->has_password_protected && f->password_protected &&
	       diagnose_version_compare(f->ios_version, "16.1", &cmp) == 0 && cmp >= 0;
}

static void backup_begin(struct job *j)
{
	struct actions *a = j->a;
	const struct device_facts *f = a->ops->facts(a->data, j->cmd.udid);
	const struct command_param *full = command_param_get(&j->cmd, "full");
	const char *argv[10];
	char dir[4096];
	int r, n = 0;

	if (f && f->pairing != FACTS_PAIRING_PAIRED) {
		/* idevicebackup2 would pair on its own and put a trust prompt on the phone */
		job_finish(j, COMMAND_STATUS_FAILED, "not_trusted",
		           "this host is not trusted by the phone");
		return;
	}
	r = backupstore_prepare(&a->cfg.store, j->cmd.udid, dir, sizeof(dir));
	if (r == -ENOSPC) {
		job_finish(j, COMMAND_STATUS_FAILED, "host_disk_full",
		           "the backup store is below its free-space floor");
		return;
	}
	if (r < 0) {
		job_finish(j, COMMAND_STATUS_FAILED, "backup_store_error", strerror(-r));
		return;
	}
	/* through the helper, so the tool dies with the agent (see action_main.c) */
	argv[n++] = a->cfg.action_helper;
	argv[n++] = "--exec";
	argv[n++] = a->cfg.backup_tool;
	argv[n++] = "-u";
	argv[n++] = j->cmd.udid;
	argv[n++] = "backup";
	if (full && full->type == COMMAND_PARAM_BOOL && full->b)
		argv[n++] = "--full";
	argv[n++] = dir;
	argv[n] = NULL;
	j->phase = PHASE_BACKUP;
	r = child_spawn(a->loop, argv, (uint64_t)a->cfg.backup_timeout_s * 1000, ACTIONS_LINE_MAX,
	                &backup_ops, j, &j->child);
	if (r < 0) {
		backupstore_abort(&a->cfg.store, j->cmd.udid);
		job_finish(j, COMMAND_STATUS_FAILED, "helper_failed", strerror(-r));
		return;
	}
	a->running_backups++;
	j->last_line_ms = loop_now_ms();
	if (a->cfg.backup_stall_timeout_s > 0)
		j->stall_timer =
		        loop_add_timer(a->loop, (uint64_t)a->cfg.backup_stall_timeout_s * 1000,
		                       backup_on_stall_timer, j);
	report(j, COMMAND_STATUS_IN_PROGRESS, 0, NULL, "local backup started");
	if (asks_for_passcode(f)) {
		j->waiting_reported = true;
		report(j, COMMAND_STATUS_WAITING_FOR_USER, -1, NULL,
		       "enter the passcode on the phone to allow the backup");
	}
}

static void start_next_backup(struct actions *a)
{
	struct job *j, *oldest = NULL;

	if (a->running_backups >= a->cfg.max_concurrent_backups || a->queued == 0)
		return;
	/* jobs are pushed at the head: the last queued one in the list is the oldest */
	for (j = a->jobs; j; j = j->next)
		if (j->phase == PHASE_QUEUED)
			oldest = j;
	if (!oldest)
		return;
	a->queued--;
	backup_begin(oldest);
}

/* ---- public ---- */

struct actions *actions_new(struct loop *loop, const struct actions_config *cfg,
                            const struct actions_ops *ops, void *data)
{
	struct actions *a = calloc(1, sizeof(*a));

	if (!a)
		return NULL;
	a->loop = loop;
	a->cfg = *cfg;
	if (a->cfg.max_concurrent_backups == 0)
		a->cfg.max_concurrent_backups = 1;
	a->ops = ops;
	a->data = data;
	return a;
}

struct actions *actions_free(struct actions *a)
{
	struct job *j, *next;

	if (!a)
		return NULL;
	for (j = a->jobs; j; j = next) {
		next = j->next;
		if (j->child)
			kill(child_pid(j->child), SIGTERM);
		if (j->timer)
			loop_cancel_timer(a->loop, j->timer);
		if (j->stall_timer)
			loop_cancel_timer(a->loop, j->stall_timer);
		free(j);
	}
	free(a);
	return NULL;
}

void actions_start(struct actions *a, const struct command *cmd)
{
	struct job *busy = job_find(a, cmd->udid), *j;
	char detail[128];
	int r = 0;

	if (busy || !cmd->known_name) {
		struct job tmp = { .a = a, .cmd = *cmd };
		snprintf(detail, sizeof(detail), "'%s' is still running on this phone",
		         busy ? busy->cmd.name : "?");
		report(&tmp, COMMAND_STATUS_FAILED, -1, busy ? "device_busy" : "not_supported",
		       busy ? detail : "unknown command");
		return;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		struct job tmp = { .a = a, .cmd = *cmd };
		report(&tmp, COMMAND_STATUS_FAILED, -1, "agent_error", "out of memory");
		return;
	}
	j->a = a;
	j->cmd = *cmd;
	j->progress = -5;
	j->next = a->jobs;
	a->jobs = j;
	switch (cmd->kind) {
	case COMMAND_DEVICE_REFRESH:
		j->phase = PHASE_PROBE;
		a->ops->probe(a->data, cmd->udid);
		break;
	case COMMAND_BACKUP_ICLOUD_ENABLE:
		r = spawn_helper(j, "cloud-on");
		break;
	case COMMAND_DEVICE_RESTART:
		r = spawn_helper(j, "restart");
		break;
	case COMMAND_BACKUP_LOCAL_START:
		if (a->queued >= ACTIONS_QUEUE_MAX) {
			job_finish(j, COMMAND_STATUS_FAILED, "host_busy",
			           "too many backups waiting");
			return;
		}
		j->phase = PHASE_QUEUED;
		a->queued++;
		start_next_backup(a);
		break;
	default:
		break;
	}
	if (r < 0)
		job_finish(j, COMMAND_STATUS_FAILED, "helper_failed", strerror(-r));
}

void actions_device_attached(struct actions *a, const char *udid)
{
	struct job *j = job_find(a, udid);

	if (!j || j->cmd.kind != COMMAND_DEVICE_RESTART || !j->saw_detach)
		return;
	j->saw_reattach = true;
	if (j->phase == PHASE_WAIT_REATTACH)
		job_finish(j, COMMAND_STATUS_SUCCEEDED, NULL, "the phone restarted and is back");
}

void actions_device_detached(struct actions *a, const char *udid)
{
	struct job *j = job_find(a, udid);

	if (!j)
		return;
	switch (j->phase) {
	case PHASE_QUEUED:
		a->queued--;
		job_finish(j, COMMAND_STATUS_FAILED, "device_disconnected",
		           "the phone was unplugged before its backup started");
		break;
	case PHASE_BACKUP:
		j->detached_during = true;
		if (j->child)
			child_terminate(j->child);
		break;
	case PHASE_BACKUP_SETTLE:
		j->detached_during = true;
		backup_fail(j); /* cancels the grace timer */
		break;
	case PHASE_HELPER:
	case PHASE_WAIT_REATTACH:
		if (j->cmd.kind == COMMAND_DEVICE_RESTART)
			j->saw_detach = true;
		break;
	case PHASE_PROBE:
		break; /* the probe comes back "gone" and says so */
	}
}

void actions_probe_done(struct actions *a, const char *udid, const struct device_facts *facts)
{
	struct job *j = job_find(a, udid);
	const char *cause;

	if (!j || j->phase != PHASE_PROBE)
		return;
	cause = probe_cause(facts);
	switch (j->cmd.kind) {
	case COMMAND_DEVICE_REFRESH:
		if (cause)
			job_finish(j, COMMAND_STATUS_FAILED, cause,
			           "the probe could not read the phone");
		else
			job_finish(j, COMMAND_STATUS_SUCCEEDED, NULL, NULL);
		break;
	case COMMAND_BACKUP_ICLOUD_ENABLE:
		if (cause)
			job_finish(j, COMMAND_STATUS_FAILED, cause, "cannot confirm the change");
		else if (facts->has_icloud_enabled && facts->icloud_enabled)
			job_finish(j, COMMAND_STATUS_SUCCEEDED, NULL, "CloudBackupEnabled=true");
		else
			job_finish(j, COMMAND_STATUS_FAILED, "icloud_not_enabled",
			           "the phone still reports CloudBackupEnabled=false");
		break;
	case COMMAND_BACKUP_LOCAL_START:
		/* the backup is committed; the probe only refreshed last_local */
		job_finish(j, COMMAND_STATUS_SUCCEEDED, NULL, "local backup complete");
		break;
	default:
		job_finish(j, COMMAND_STATUS_FAILED, "agent_error", "unexpected probe");
		break;
	}
}

int actions_busy(const struct actions *a)
{
	const struct job *j;
	int n = 0;

	for (j = a->jobs; j; j = j->next)
		n++;
	return n;
}
