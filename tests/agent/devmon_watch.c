/* SPDX-License-Identifier: MIT */
/*
 * devmon_watch: prints devmon's callbacks as "attached UDID" / "detached UDID" / "paired UDID"
 * lines (flushed) until SIGTERM, then frees everything. Driven by test_devmon.py.
 *
 * usage: devmon-watch RESYNC_MS
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "devmon.h"
#include "log.h"
#include "loop.h"

static void on_dev(enum devmon_event ev, const char *udid, void *data)
{
	(void)data;
	printf("%s %s\n",
	       ev == DEVMON_ATTACHED   ? "attached"
	       : ev == DEVMON_DETACHED ? "detached"
	                               : "paired",
	       udid);
	fflush(stdout);
}

static void on_term(struct loop *loop, int signo, void *data)
{
	(void)signo;
	(void)data;
	loop_stop(loop);
}

int main(int argc, char **argv)
{
	struct loop *loop;
	struct devmon *dm;
	int r;

	if (argc != 2)
		return 2;
	log_init("devmon-watch", LOG_LEVEL_INFO);
	loop = loop_new();
	if (!loop)
		return 1;
	/* signals first: they must be blocked before libusbmuxd starts its thread */
	loop_add_signal(loop, SIGTERM, on_term, NULL);
	loop_add_signal(loop, SIGINT, on_term, NULL);
	dm = devmon_new(loop, strtoull(argv[1], NULL, 10), on_dev, NULL);
	if (!dm || devmon_start(dm) < 0) {
		fprintf(stderr, "devmon-watch: cannot start devmon\n");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	r = loop_run(loop);
	if (r < 0)
		fprintf(stderr, "devmon-watch: loop_run: %d\n", r);
	devmon_free(dm);
	loop_free(loop);
	fprintf(stderr, "devmon-watch: clean exit\n");
	return 0;
}
