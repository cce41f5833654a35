/* SPDX-License-Identifier: MIT */
/*
 * probe: the probe scheduler (see probe.h). A FIFO of waiting UDIDs (fixed capacity) plus a
 * list of running jobs; a zero-delay timer starts helpers so that probe_request() never
 * calls back into the caller. Process handling (spawn, pipe in the loop, deadline, reaping
 * with a pidfd, line cap) is common/child.c's, shared with the action runner.
 */
#include "probe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "child.h"
#include "log.h"
#include "loop.h"
#include "topics.h"

#define PROBE_QUEUE_DEFAULT 1024

struct probe_job {
	struct probe_sched *s;
	struct probe_job *next;
	struct child *child;
	char udid[FACTS_UDID_MAX];
	char *out; /* first stdout line, NULL until it arrives */
	size_t out_len;
	bool overlong;
	uint64_t started_ms; /* monotonic: the probe's duration (metrics) */
};

struct probe_sched {
	struct loop *loop;
	struct probe_config cfg;
	probe_done_fn done;
	void *data;
	char (*queue)[FACTS_UDID_MAX]; /* ring of cfg.queue_max */
	unsigned q_head, q_len;
	struct probe_job *jobs;
	unsigned n_running;
	uint64_t kick_timer;
	bool stopped; /* probe_sched_stop(): no new helpers, no more done() */
	bool dying;   /* probe_sched_free(): release when the last helper is reaped */
};

static void probe_kick(struct probe_sched *s);

struct probe_sched *probe_sched_new(struct loop *loop, const struct probe_config *cfg,
                                    probe_done_fn done, void *data)
{
	struct probe_sched *s;

	if (!loop || !cfg || !cfg->helper || cfg->concurrency < 1 || cfg->timeout_ms == 0 ||
	    cfg->syslog_ms < 0 || !done)
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->loop = loop;
	s->cfg = *cfg;
	if (s->cfg.queue_max == 0)
		s->cfg.queue_max = PROBE_QUEUE_DEFAULT;
	s->done = done;
	s->data = data;
	s->queue = calloc(s->cfg.queue_max, sizeof(*s->queue));
	if (!s->queue) {
		free(s);
		return NULL;
	}
	return s;
}

static bool is_queued(const struct probe_sched *s, const char *udid, unsigned *ret_i)
{
	unsigned i;

	for (i = 0; i < s->q_len; i++)
		if (strcmp(s->queue[(s->q_head + i) % s->cfg.queue_max], udid) == 0) {
			if (ret_i)
				*ret_i = i;
			return true;
		}
	return false;
}

static bool is_running(const struct probe_sched *s, const char *udid)
{
	const struct probe_job *j;

	for (j = s->jobs; j; j = j->next)
		if (strcmp(j->udid, udid) == 0)
			return true;
	return false;
}

int probe_request(struct probe_sched *s, const char *udid)
{
	/* it becomes an argv element: topics' rule has no leading '-', no blank, no '/' */
	if (!topics_udid_valid(udid))
		return -EINVAL;
	if (s->stopped)
		return -ESHUTDOWN;
	if (is_queued(s, udid, NULL) || is_running(s, udid))
		return 0;
	if (s->q_len >= s->cfg.queue_max)
		return -ENOBUFS;
	snprintf(s->queue[(s->q_head + s->q_len) % s->cfg.queue_max], FACTS_UDID_MAX, "%s", udid);
	s->q_len++;
	probe_kick(s);
	return 0;
}

unsigned probe_running(const struct probe_sched *s)
{
	return s->n_running;
}

bool probe_idle(const struct probe_sched *s)
{
	return !s || (s->q_len == 0 && s->n_running == 0);
}

static void sched_release_if_done(struct probe_sched *s)
{
	if (!s->dying || s->n_running > 0)
		return;
	if (s->kick_timer)
		loop_cancel_timer(s->loop, s->kick_timer);
	free(s->queue);
	free(s);
}

static void job_line(struct child *c, const char *line, void *data)
{
	struct probe_job *j = data;
	size_t n = strlen(line);

	(void)c;
	if (j->out)
		return; /* the helper prints one line; more is ignored */
	if (n > FACTS_JSON_MAX) {
		j->overlong = true;
		return;
	}
	j->out = strdup(line);
	j->out_len = n;
}

static void job_result(struct probe_job *j, int status, bool timed_out, struct device_facts *f)
{
	char err[128];
	int r;

	if (timed_out) {
		facts_init(f, j->udid);
		f->probe = FACTS_PROBE_TIMEOUT;
		snprintf(
		        f->error_text, sizeof(f->error_text), "probe deadline of %llu ms passed",
		        (unsigned long long)(j->s->cfg.timeout_ms + (uint64_t)j->s->cfg.syslog_ms));
		goto stamp;
	}
	if (j->out) {
		r = facts_from_json(j->out, j->out_len, f, err, sizeof(err));
		if (r == 0 && strcmp(f->udid, j->udid) == 0)
			return;
		facts_init(f, j->udid);
		snprintf(f->error_text, sizeof(f->error_text), "bad helper output: %s",
		         r < 0 ? err : "udid mismatch");
		goto stamp;
	}
	facts_init(f, j->udid);
	if (j->overlong)
		snprintf(f->error_text, sizeof(f->error_text), "helper output over %d bytes",
		         FACTS_JSON_MAX);
	else if (status >= 0 && WIFSIGNALED(status))
		snprintf(f->error_text, sizeof(f->error_text), "helper killed by signal %d",
		         WTERMSIG(status));
	else if (status >= 0 && WIFEXITED(status))
		snprintf(f->error_text, sizeof(f->error_text), "helper exited %d without output",
		         WEXITSTATUS(status));
	else
		snprintf(f->error_text, sizeof(f->error_text), "helper status unknown");
stamp:
	f->probed_at_ms = wall_now_ms();
}

static void job_exit(struct child *c, int status, bool timed_out, void *data)
{
	struct probe_job *j = data, **pp;
	struct probe_sched *s = j->s;
	struct device_facts *f;

	(void)c;
	for (pp = &s->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	s->n_running--;
	if (!s->stopped) {
		/* device_facts is ~3 KiB: keep it off the loop's stack */
		f = malloc(sizeof(*f));
		if (f) {
			job_result(j, status, timed_out, f);
			f->probe_duration_ms = (int64_t)(loop_now_ms() - j->started_ms);
			if (f->probe == FACTS_PROBE_TIMEOUT)
				log_warn("device '%s': probe timed out, helper killed", j->udid);
			s->done(f, s->data);
			free(f);
		} else {
			log_error("device '%s': out of memory for probe result", j->udid);
		}
	}
	free(j->out);
	free(j);
	if (s->dying)
		sched_release_if_done(s);
	else
		probe_kick(s);
}

static const struct child_ops job_ops = {
	.line = job_line,
	.exit = job_exit,
};

static int job_start(struct probe_sched *s, const char *udid)
{
	struct probe_job *j = calloc(1, sizeof(*j));
	char self_timeout[24], syslog_ms[24];
	const char *argv[10];
	uint64_t deadline = s->cfg.timeout_ms + (uint64_t)s->cfg.syslog_ms;
	int n = 0, r;

	if (!j)
		return -ENOMEM;
	j->s = s;
	j->started_ms = loop_now_ms();
	snprintf(j->udid, sizeof(j->udid), "%s", udid);
	/* the helper's own alarm is a backstop for an agent that died: a bit after ours */
	snprintf(self_timeout, sizeof(self_timeout), "%llu",
	         (unsigned long long)(deadline / 1000 + 5));
	snprintf(syslog_ms, sizeof(syslog_ms), "%d", s->cfg.syslog_ms);
	argv[n++] = s->cfg.helper;
	argv[n++] = "--udid";
	argv[n++] = j->udid;
	argv[n++] = "--timeout";
	argv[n++] = self_timeout;
	if (s->cfg.syslog_ms > 0) {
		argv[n++] = "--syslog-ms";
		argv[n++] = syslog_ms;
	}
	argv[n] = NULL;
	r = child_spawn(s->loop, argv, deadline, FACTS_JSON_MAX + 1, &job_ops, j, &j->child);
	if (r < 0) {
		free(j);
		return r;
	}
	j->next = s->jobs;
	s->jobs = j;
	s->n_running++;
	return 0;
}

/* Starts helpers from the queue up to the concurrency limit. */
static void probe_start_queued(struct probe_sched *s)
{
	while (!s->stopped && s->q_len > 0 && s->n_running < s->cfg.concurrency) {
		char udid[FACTS_UDID_MAX];
		int r;

		memcpy(udid, s->queue[s->q_head], FACTS_UDID_MAX);
		s->q_head = (s->q_head + 1) % s->cfg.queue_max;
		s->q_len--;
		r = job_start(s, udid);
		if (r < 0) {
			struct device_facts *f = malloc(sizeof(*f));

			log_error_errno(r, "device '%s': cannot start %s", udid, s->cfg.helper);
			if (f) {
				facts_init(f, udid);
				f->probed_at_ms = wall_now_ms();
				snprintf(f->error_text, sizeof(f->error_text),
				         "cannot start probe helper: %s", strerror(-r));
				s->done(f, s->data);
				free(f);
			}
		}
	}
}

static void on_kick(struct loop *loop, uint64_t id, void *data)
{
	struct probe_sched *s = data;

	(void)loop;
	(void)id;
	s->kick_timer = 0;
	probe_start_queued(s);
}

static void probe_kick(struct probe_sched *s)
{
	if (s->kick_timer || s->stopped || s->q_len == 0 || s->n_running >= s->cfg.concurrency)
		return;
	s->kick_timer = loop_add_timer(s->loop, 0, on_kick, s);
	if (!s->kick_timer)
		log_error("probe: cannot add a timer, queue waits for the next result");
}

void probe_sched_stop(struct probe_sched *s)
{
	struct probe_job *j;

	if (!s || s->stopped)
		return;
	s->stopped = true;
	s->q_len = 0;
	for (j = s->jobs; j; j = j->next)
		child_terminate(j->child);
}

struct probe_sched *probe_sched_free(struct probe_sched *s)
{
	if (!s)
		return NULL;
	probe_sched_stop(s);
	s->dying = true;
	sched_release_if_done(s);
	return NULL;
}
