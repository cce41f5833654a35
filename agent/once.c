/* SPDX-License-Identifier: MIT */
/*
 * once: see once.h. List, queue every UDID on the probe scheduler, run the loop until it is
 * idle, then sort the results and print them through state_encode() (the daemon's encoder),
 * so --once shows exactly the retained messages the daemon would publish.
 */
#include "once.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "facts.h"
#include "idev.h"
#include "log.h"
#include "loop.h"
#include "probe.h"
#include "state.h"

struct once_run {
	struct loop *loop;
	struct probe_sched *sched;
	struct device_facts *results;
	size_t n, cap;
};

static void on_done(const struct device_facts *f, void *data)
{
	struct once_run *run = data;

	if (run->n < run->cap)
		run->results[run->n++] = *f;
	if (probe_idle(run->sched))
		loop_stop(run->loop);
}

/* Shutdown on an error path: stop the loop once the killed helpers are reaped. */
static void on_drain(struct loop *loop, uint64_t id, void *data)
{
	struct once_run *run = data;

	(void)id;
	if (probe_idle(run->sched))
		loop_stop(loop);
	else if (!loop_add_timer(loop, 50, on_drain, run))
		loop_stop(loop);
}

static int cmp_facts(const void *a, const void *b)
{
	return strcmp(((const struct device_facts *)a)->udid,
	              ((const struct device_facts *)b)->udid);
}

static int print_results(const struct once_opts *o, struct once_run *run, FILE *out)
{
	struct state_ctx ctx = {
		.agent = o->agent,
		.session = 0,
		.publish_device_name = o->publish_device_name,
		.diag = o->diag,
	};
	size_t i;

	qsort(run->results, run->n, sizeof(*run->results), cmp_facts);
	for (i = 0; i < run->n; i++) {
		const struct device_facts *f = &run->results[i];
		char *json;

		ctx.seq = (int64_t)i + 1;
		ctx.now_ms = wall_now_ms();
		json = state_encode(f, f->probe != FACTS_PROBE_GONE, &ctx, NULL);
		if (!json)
			return -ENOMEM;
		fprintf(out, "%s\n", json);
		free(json);
	}
	return fflush(out) == 0 ? 0 : -errno;
}

int once_run(const struct once_opts *o, FILE *out)
{
	struct probe_config pc = {
		.helper = o->helper,
		.concurrency = o->concurrency,
		.timeout_ms = o->timeout_ms,
		.syslog_ms = o->syslog_ms,
	};
	struct once_run run = { 0 };
	struct idev_list l = { 0 };
	size_t i;
	int r;

	if (o->udid) {
		/* probe it even if not listed: the answer is then "gone" */
		l.udid = calloc(1, sizeof(*l.udid));
		if (!l.udid)
			return -ENOMEM;
		if (strlen(o->udid) >= FACTS_UDID_MAX) {
			free(l.udid);
			return log_error_errno(-EINVAL, "--udid: too long");
		}
		strcpy(l.udid[0], o->udid);
		l.n = 1;
	} else {
		r = idev_list(&l);
		if (r == -ENOTCONN) {
			log_notice("usbmuxd is not running: no devices");
			return 0;
		}
		if (r < 0)
			return log_error_errno(r, "cannot list devices");
	}
	if (l.n == 0) {
		idev_list_free(&l);
		return 0;
	}
	r = -ENOMEM;
	run.loop = loop_new();
	run.results = calloc(l.n, sizeof(*run.results));
	run.cap = l.n;
	pc.queue_max = (unsigned)l.n;
	if (!run.loop || !run.results)
		goto out;
	run.sched = probe_sched_new(run.loop, &pc, on_done, &run);
	if (!run.sched)
		goto out;
	for (i = 0; i < l.n; i++) {
		r = probe_request(run.sched, l.udid[i]);
		if (r < 0) {
			log_error_errno(r, "device '%s': cannot queue a probe", l.udid[i]);
			goto out;
		}
	}
	r = loop_run(run.loop);
	if (r < 0)
		goto out;
	r = print_results(o, &run, out);
out:
	if (run.sched) {
		probe_sched_stop(run.sched);
		if (!probe_idle(run.sched) && loop_add_timer(run.loop, 0, on_drain, &run))
			loop_run(run.loop);
		probe_sched_free(run.sched);
	}
	loop_free(run.loop);
	free(run.results);
	idev_list_free(&l);
	return r;
}
