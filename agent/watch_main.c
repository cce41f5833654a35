/* SPDX-License-Identifier: MIT */
/*
 * cradle-agent-watch: the evidence capture of every docked phone (docs/decisions.md,
 * "Evidence capture in one helper process").
 *
 *   cradle-agent-watch [--rescan-ms N]
 *
 * Runs as long as the agent does (the agent restarts it when it ends). Reads usbmuxd's device
 * list every --rescan-ms (default 5000: one listing of 500 phones is ~300 KB of XML for libplist
 * to parse, ~40 ms of CPU; a new phone waits at most that long for its stream) and keeps one thread
 * per listed phone, each holding the phone's syslog_relay stream and a notification_proxy observing
 * the backup domain (idev_watch()). A dropped stream is opened again with a backoff (1 s doubling
 * to 30 s) while the phone is listed. Lines are filtered as they arrive: only backup processes'
 * lines leave this process; everything else is dropped unread.
 *
 * Stdout, one JSON object per line (agent/watch.c parses it):
 *   {"udid":U,"ev":"up","np":true|false}   the stream is up (np: domain_changed observed)
 *   {"udid":U,"ev":"down"}                 the stream ended or could not be opened
 *   {"udid":U,"ev":"line","t":MS,"text":S} a backup line, received at Unix ms MS
 *   {"udid":U,"ev":"changed"}              com.apple.mobile.backup.domain_changed
 * A separate process so device-supplied bytes are parsed outside the daemon and a stuck
 * libimobiledevice call can be ended by killing it; one process for all phones (not one each)
 * because a process costs megabytes and a thread tens of kilobytes.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "facts.h"
#include "idev.h"
#include "log.h"
#include "loop.h"
#include "version.h"

#define WATCH_STACK       (256 * 1024)
#define WATCH_BACKOFF_MAX 30000

struct phone {
	char udid[FACTS_UDID_MAX];
	pthread_t thread;
	atomic_int stop; /* set by the main thread, read by the phone's (volatile would race) */
	bool listed;     /* seen in the last listing */
	bool up;         /* "up" was printed and "down" not yet */
	struct phone *next;
};

static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static struct phone *phones;

/* Prints one event line; lines of all threads are written whole. */
static void emit(const char *udid, const char *ev, int np, int64_t t_ms, const char *text)
{
	cJSON *o = cJSON_CreateObject();
	char *s;

	if (!o)
		return;
	cJSON_AddStringToObject(o, "udid", udid);
	cJSON_AddStringToObject(o, "ev", ev);
	if (np >= 0)
		cJSON_AddBoolToObject(o, "np", np);
	if (text) {
		cJSON_AddNumberToObject(o, "t", (double)t_ms);
		cJSON_AddStringToObject(o, "text", text);
	}
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!s)
		return;
	pthread_mutex_lock(&out_lock);
	fputs(s, stdout);
	fputc('\n', stdout);
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
	free(s);
}

static void on_up(bool np, void *data)
{
	struct phone *p = data;

	p->up = true;
	emit(p->udid, "up", np, 0, NULL);
}

static void on_line(const char *line, void *data)
{
	struct phone *p = data;
	char clean[FACTS_LINE_MAX];
	size_t i;

	/* JSON needs valid UTF-8: bytes outside ASCII become '?' (evidence is for reading) */
	for (i = 0; line[i] && i < sizeof(clean) - 1; i++)
		clean[i] = (unsigned char)line[i] >= 0x80 ? '?' : line[i];
	clean[i] = '\0';
	emit(p->udid, "line", -1, wall_now_ms(), clean);
}

static void on_changed(void *data)
{
	struct phone *p = data;

	emit(p->udid, "changed", -1, 0, NULL);
}

static const struct idev_watch_ops watch_ops = {
	.up = on_up,
	.line = on_line,
	.changed = on_changed,
};

/* Sleeps ms in steps of 100 ms, ending early at stop. */
static void nap(struct phone *p, int ms)
{
	struct timespec ts = { 0, 100 * 1000 * 1000 };

	for (; ms > 0 && !p->stop; ms -= 100)
		nanosleep(&ts, NULL);
}

static void *phone_thread(void *arg)
{
	struct phone *p = arg;
	int backoff = 1000;

	while (!p->stop) {
		int r = idev_watch(p->udid, &watch_ops, p, &p->stop);

		if (p->up || r != 0) {
			p->up = false;
			emit(p->udid, "down", -1, 0, NULL);
		}
		if (p->stop)
			break;
		if (r == -ECONNRESET)
			backoff = 1000; /* it was up: try again soon */
		nap(p, backoff);
		backoff = backoff * 2 > WATCH_BACKOFF_MAX ? WATCH_BACKOFF_MAX : backoff * 2;
	}
	return NULL;
}

static struct phone *phone_find(const char *udid)
{
	struct phone *p;

	for (p = phones; p; p = p->next)
		if (strcmp(p->udid, udid) == 0)
			return p;
	return NULL;
}

static void phone_start(const char *udid)
{
	struct phone *p = calloc(1, sizeof(*p));
	int r;

	if (!p) {
		log_error("device '%s': out of memory, not watched", udid);
		return;
	}
	snprintf(p->udid, sizeof(p->udid), "%s", udid);
	p->listed = true;
	/* the default attributes: the stack default_stack() proved */
	r = pthread_create(&p->thread, NULL, phone_thread, p);
	if (r != 0) {
		log_error("device '%s': cannot start a thread (%s), not watched", udid,
		          strerror(r));
		free(p);
		return;
	}
	p->next = phones;
	phones = p;
}

/* Starts threads for new phones, stops and joins those no longer listed. */
static void rescan(void)
{
	struct idev_list l = { 0 };
	struct phone *p, **pp;
	size_t i;

	if (idev_list(&l) < 0)
		l.n = 0; /* usbmuxd gone: every stream has ended or will, stop them */
	for (p = phones; p; p = p->next)
		p->listed = false;
	for (i = 0; i < l.n; i++) {
		p = phone_find(l.udid[i]);
		if (p)
			p->listed = true;
		else
			phone_start(l.udid[i]);
	}
	idev_list_free(&l);
	for (p = phones; p; p = p->next)
		if (!p->listed)
			p->stop = 1;
	for (pp = &phones; *pp;) {
		p = *pp;
		if (p->listed) {
			pp = &p->next;
			continue;
		}
		pthread_join(p->thread, NULL);
		*pp = p->next;
		free(p);
	}
}

static void *stack_trial(void *arg)
{
	return arg;
}

/*
 * Makes the default stack of threads created without attributes (ours and libimobiledevice's
 * notifier, one each per phone) the smallest size from want up that a thread can be created
 * with. glibc carves a thread's static TLS out of its stack and refuses (EINVAL) a stack the
 * TLS does not fit: a plain build's TLS is a few KiB, but ThreadSanitizer's is ~800 KiB (and a
 * preloaded library can add its own), where a fixed 256 KiB default made every notifier thread
 * fail to start, so np_set_notify_callback() failed for every phone and domain_changed was
 * silently lost. A trial thread proves the size; failing that, the default stays as it was.
 */
static void default_stack(size_t want)
{
	pthread_attr_t orig, a;
	pthread_t t;
	size_t size, orig_size = 0;
	int r;

	if (pthread_getattr_default_np(&orig) != 0)
		return;
	(void)pthread_attr_getstacksize(&orig, &orig_size);
	for (size = want; size < orig_size; size *= 2) {
		if (pthread_attr_init(&a) != 0)
			break;
		r = pthread_attr_setstacksize(&a, size);
		if (r == 0)
			r = pthread_setattr_default_np(&a);
		pthread_attr_destroy(&a);
		if (r != 0)
			break;
		r = pthread_create(&t, NULL, stack_trial, NULL);
		if (r == 0)
			pthread_join(t, NULL);
		/* only EINVAL is the size's fault (EAGAIN is a limit a bigger stack cannot help) */
		if (r != EINVAL) {
			if (size != want)
				log_info("thread stacks: %zu KiB (%zu KiB is too small for this "
				         "process's thread-local storage)",
				         size / 1024, want / 1024);
			goto out;
		}
	}
	(void)pthread_setattr_default_np(&orig);
out:
	pthread_attr_destroy(&orig);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rescan-ms", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct timespec ts;
	struct rlimit rl;
	sigset_t mask;
	long rescan_ms = 5000;
	char *end;
	int c;

	log_init("cradle-agent-watch", LOG_LEVEL_WARN);
	while ((c = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			errno = 0;
			rescan_ms = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || rescan_ms < 100 ||
			    rescan_ms > 600000) {
				log_error("--rescan-ms: expected 100..600000");
				return 2;
			}
			break;
		case 'h':
			printf("usage: cradle-agent-watch [--rescan-ms N]\n"
			       "       cradle-agent-watch --version | -h | --help\n");
			return 0;
		case 'V':
			puts("cradle-agent-watch " CRADLE_VERSION);
			return 0;
		default:
			fprintf(stderr, "usage: cradle-agent-watch [--rescan-ms N]\n");
			return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: cradle-agent-watch [--rescan-ms N]\n");
		return 2;
	}
	/*
	 * Every thread (ours and libimobiledevice's notifier, started with the default attributes)
	 * gets a small stack. Capping glibc's malloc arenas (M_ARENA_MAX 2) was tried and doubled
	 * the RSS at 500 phones (bench/agent/README.md): the default stays.
	 */
	default_stack(WATCH_STACK);
	/* two sockets per phone (relay, notifications): 500 phones pass the usual soft 1024 */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	/*
	 * The agent's loop blocks SIGTERM and SIGINT (signalfd) and posix_spawn passes the mask
	 * on: unblock them, or the agent's SIGTERM and the parent-death signal would do nothing.
	 * libusbmuxd writes to sockets that may close under it; end with the agent.
	 */
	sigemptyset(&mask);
	sigprocmask(SIG_SETMASK, &mask, NULL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGPIPE, SIG_IGN);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		return 0;
	ts.tv_sec = rescan_ms / 1000;
	ts.tv_nsec = rescan_ms % 1000 * 1000000L;
	for (;;) {
		rescan();
		nanosleep(&ts, NULL);
	}
}
