/* SPDX-License-Identifier: MIT */
/*
 * loop: epoll for fds, a signalfd for signals, an eventfd for the mailbox, and an unsorted
 * timer array scanned for the nearest deadline. A process has tens to a few hundred timers,
 * so a linear scan per iteration costs less than keeping a heap in order.
 *
 * Removing an fd from inside callbacks is safe: registrations are looked up again by fd for
 * every ready event, and a removed registration is only marked dead and freed after the
 * batch of events has been dispatched.
 *
 * Posting: one FIFO of items under post_lock, each naming its mailbox (loop_post() uses the
 * loop's own). The eventfd is written when the FIFO goes from empty to non-empty; a drain
 * delivers at most the items present when it starts, one at a time (so a callback may free a
 * mailbox: its later items are still in the FIFO and are dropped there), and writes the
 * eventfd again when items are left, so a busy producer cannot starve the fds. A mailbox's
 * overflow report is an item embedded in the mailbox, queued at the first refusal: it needs no
 * allocation and arrives after everything accepted before the refusal.
 */
#include "loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"

#define LOOP_MAX_EVENTS 64

struct loop_fd {
	int fd;
	bool dead;
	loop_fd_fn fn;
	void *data;
	struct loop_fd *next;
};

struct loop_timer {
	uint64_t id;
	uint64_t due_ms;
	loop_timer_fn fn;
	void *data;
};

struct loop_post_item {
	struct loop_post_item *next;
	struct loop_mailbox *mb;
	loop_post_fn fn; /* loop_post() items */
	void *data;
};

struct loop_mailbox {
	struct loop *loop;
	struct loop_mailbox_ops ops; /* deliver NULL: the loop's own, for loop_post() */
	void *ctx;
	size_t max;
	struct loop_mailbox *next; /* the loop's list, loop thread only */
	bool *freed;               /* loop thread: set by loop_mailbox_free() during a flush */
	/* under the loop's post_lock */
	size_t queued;
	uint64_t posted, dropped, unreported;
	bool marker_queued;
	struct loop_post_item marker; /* the overflow report */
};

struct loop_sig {
	int signo;
	loop_signal_fn fn;
	void *data;
};

struct loop {
	int epfd;
	int eventfd;
	int sigfd;
	sigset_t sigmask;
	struct loop_sig sigs[16];
	int n_sigs;
	struct loop_fd *fds;
	struct loop_timer *timers;
	size_t n_timers, cap_timers;
	uint64_t next_timer_id;
	pthread_mutex_t post_lock;
	struct loop_post_item *post_head, *post_tail;
	size_t post_count;
	struct loop_mailbox own; /* loop_post() */
	struct loop_mailbox *mailboxes;
	bool stop;
};

uint64_t loop_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int64_t wall_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void loop_mailbox_purge(struct loop_mailbox *mb);

struct loop *loop_new(void)
{
	struct loop *loop;
	struct epoll_event ev = { .events = EPOLLIN };

	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return NULL;
	loop->sigfd = -1;
	loop->next_timer_id = 1;
	loop->own.loop = loop;
	loop->own.max = LOOP_POST_MAX;
	/* set once: the loop thread reads a taken marker's mb without the lock */
	loop->own.marker.mb = &loop->own;
	sigemptyset(&loop->sigmask);
	pthread_mutex_init(&loop->post_lock, NULL);
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->epfd < 0 || loop->eventfd < 0)
		goto fail;
	ev.data.fd = loop->eventfd;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->eventfd, &ev) < 0)
		goto fail;
	return loop;
fail:
	return loop_free(loop);
}

struct loop *loop_free(struct loop *loop)
{
	struct loop_fd *f, *fnext;

	if (!loop)
		return NULL;
	for (f = loop->fds; f; f = fnext) {
		fnext = f->next;
		free(f);
	}
	while (loop->mailboxes)
		loop_mailbox_free(loop->mailboxes);
	loop_mailbox_purge(&loop->own);
	free(loop->timers);
	if (loop->sigfd >= 0)
		close(loop->sigfd);
	if (loop->eventfd >= 0)
		close(loop->eventfd);
	if (loop->epfd >= 0)
		close(loop->epfd);
	pthread_mutex_destroy(&loop->post_lock);
	free(loop);
	return NULL;
}

static struct loop_fd *loop_find_fd(struct loop *loop, int fd)
{
	struct loop_fd *f;

	for (f = loop->fds; f; f = f->next)
		if (f->fd == fd && !f->dead)
			return f;
	return NULL;
}

int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn, void *data)
{
	struct epoll_event ev = { .events = events };
	struct loop_fd *f;

	if (loop_find_fd(loop, fd))
		return -EEXIST;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	ev.data.fd = fd;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int r = -errno;
		free(f);
		return r;
	}
	f->fd = fd;
	f->fn = fn;
	f->data = data;
	f->next = loop->fds;
	loop->fds = f;
	return 0;
}

int loop_mod_fd(struct loop *loop, int fd, uint32_t events)
{
	struct epoll_event ev = { .events = events };

	ev.data.fd = fd;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

void loop_del_fd(struct loop *loop, int fd)
{
	struct loop_fd *f = loop_find_fd(loop, fd);

	if (!f)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL);
	f->dead = true; /* freed by loop_reap_fds() after the current dispatch batch */
}

static void loop_reap_fds(struct loop *loop)
{
	struct loop_fd **pp = &loop->fds, *f;

	while ((f = *pp)) {
		if (f->dead) {
			*pp = f->next;
			free(f);
		} else {
			pp = &f->next;
		}
	}
}

uint64_t loop_add_timer(struct loop *loop, uint64_t delay_ms, loop_timer_fn fn, void *data)
{
	struct loop_timer *t;

	if (loop->n_timers == loop->cap_timers) {
		size_t cap = loop->cap_timers ? loop->cap_timers * 2 : 16;
		t = realloc(loop->timers, cap * sizeof(*t));
		if (!t)
			return 0;
		loop->timers = t;
		loop->cap_timers = cap;
	}
	t = &loop->timers[loop->n_timers++];
	t->id = loop->next_timer_id++;
	t->due_ms = loop_now_ms() + delay_ms;
	t->fn = fn;
	t->data = data;
	return t->id;
}

void loop_cancel_timer(struct loop *loop, uint64_t timer_id)
{
	size_t i;

	for (i = 0; i < loop->n_timers; i++) {
		if (loop->timers[i].id == timer_id) {
			loop->timers[i] = loop->timers[--loop->n_timers];
			return;
		}
	}
}

int loop_add_signal(struct loop *loop, int signo, loop_signal_fn fn, void *data)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int fd;

	if (loop->n_sigs == (int)ARRAY_SIZE(loop->sigs))
		return -ENOSPC;
	sigaddset(&loop->sigmask, signo);
	if (sigprocmask(SIG_BLOCK, &loop->sigmask, NULL) < 0)
		return -errno;
	fd = signalfd(loop->sigfd, &loop->sigmask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (loop->sigfd < 0) {
		loop->sigfd = fd;
		ev.data.fd = fd;
		if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return -errno;
	}
	loop->sigs[loop->n_sigs++] = (struct loop_sig){ signo, fn, data };
	return 0;
}

/* Under post_lock: appends it; true when the FIFO was empty (the poster must wake the loop). */
static bool fifo_push(struct loop *loop, struct loop_post_item *it)
{
	bool was_empty = loop->post_count == 0;

	it->next = NULL;
	if (loop->post_tail)
		loop->post_tail->next = it;
	else
		loop->post_head = it;
	loop->post_tail = it;
	loop->post_count++;
	return was_empty;
}

/* Under post_lock: unlinks the first item of mb (any mailbox when mb is NULL), or NULL. */
static struct loop_post_item *fifo_take(struct loop *loop, const struct loop_mailbox *mb)
{
	struct loop_post_item **pp = &loop->post_head, *it, *prev = NULL;

	while ((it = *pp) && mb && it->mb != mb) {
		prev = it;
		pp = &it->next;
	}
	if (!it)
		return NULL;
	*pp = it->next;
	if (loop->post_tail == it)
		loop->post_tail = prev;
	loop->post_count--;
	if (it == &it->mb->marker)
		it->mb->marker_queued = false;
	else
		it->mb->queued--;
	return it;
}

static void loop_wake(struct loop *loop)
{
	uint64_t one = 1;
	ssize_t w;

	w = write(loop->eventfd, &one, sizeof(one));
	(void)w; /* EAGAIN means the counter is already non-zero: the loop will wake */
}

/* Frees an item taken from the FIFO without delivering it. */
static void item_drop(struct loop_post_item *it)
{
	struct loop_mailbox *mb = it->mb;

	if (it == &mb->marker)
		return;
	if (mb->ops.drop)
		mb->ops.drop(it->data, mb->ctx);
	else if (mb->ops.deliver)
		free(it->data);
	/* loop_post() data belongs to whoever posted it */
	free(it);
}

/* Delivers an item taken from the FIFO, and frees it. */
static void item_deliver(struct loop *loop, struct loop_post_item *it, uint64_t unreported)
{
	struct loop_mailbox *mb = it->mb;

	if (it == &mb->marker) {
		if (mb->ops.overflow && unreported)
			mb->ops.overflow(loop, unreported, mb->ctx);
		return;
	}
	if (mb->ops.deliver)
		mb->ops.deliver(loop, it->data, mb->ctx);
	else
		it->fn(loop, it->data);
	free(it);
}

/* Takes the first item of mb (or of any mailbox) with its overflow count; NULL when none. */
static struct loop_post_item *take_next(struct loop *loop, struct loop_mailbox *mb,
                                        uint64_t *ret_unreported)
{
	struct loop_post_item *it;

	pthread_mutex_lock(&loop->post_lock);
	it = fifo_take(loop, mb);
	*ret_unreported = 0;
	if (it && it == &it->mb->marker) {
		*ret_unreported = it->mb->unreported;
		it->mb->unreported = 0;
	}
	pthread_mutex_unlock(&loop->post_lock);
	return it;
}

/* Counts a refusal (under post_lock); queues the overflow report if the owner wants one. */
static bool count_drop(struct loop_mailbox *mb)
{
	mb->dropped++;
	mb->unreported++;
	if (!mb->ops.overflow || mb->marker_queued)
		return false;
	mb->marker_queued = true;
	return fifo_push(mb->loop, &mb->marker);
}

/* Appends (it, data) to mb, or counts the refusal. 0, -ENOBUFS or -ENOMEM. */
static int mailbox_push(struct loop_mailbox *mb, struct loop_post_item *it, void *data,
                        bool *ret_wake)
{
	struct loop *loop = mb->loop;
	int r = 0;

	pthread_mutex_lock(&loop->post_lock);
	if (!it || mb->queued >= mb->max) {
		r = it ? -ENOBUFS : -ENOMEM;
		*ret_wake = count_drop(mb);
	} else {
		it->mb = mb;
		it->data = data;
		mb->queued++;
		mb->posted++;
		*ret_wake = fifo_push(loop, it);
	}
	pthread_mutex_unlock(&loop->post_lock);
	return r;
}

int loop_post(struct loop *loop, loop_post_fn fn, void *data)
{
	struct loop_post_item *it = calloc(1, sizeof(*it));
	bool wake;
	int r;

	if (it)
		it->fn = fn;
	r = mailbox_push(&loop->own, it, data, &wake);
	if (r < 0)
		free(it);
	if (wake)
		loop_wake(loop);
	return r;
}

struct loop_mailbox *loop_mailbox_new(struct loop *loop, size_t max,
                                      const struct loop_mailbox_ops *ops, void *ctx)
{
	struct loop_mailbox *mb;

	if (!loop || !ops || !ops->deliver || max == 0)
		return NULL;
	mb = calloc(1, sizeof(*mb));
	if (!mb)
		return NULL;
	mb->loop = loop;
	mb->ops = *ops;
	mb->ctx = ctx;
	mb->max = max;
	mb->marker.mb = mb; /* set once, as for the loop's own mailbox */
	mb->next = loop->mailboxes;
	loop->mailboxes = mb;
	return mb;
}

int loop_mailbox_post(struct loop_mailbox *mb, void *msg)
{
	struct loop_post_item *it = msg ? calloc(1, sizeof(*it)) : NULL;
	bool wake;
	int r;

	r = mailbox_push(mb, it, msg, &wake);
	if (r < 0) {
		free(it);
		if (msg) {
			if (mb->ops.drop)
				mb->ops.drop(msg, mb->ctx);
			else
				free(msg);
		}
	}
	if (wake)
		loop_wake(mb->loop);
	return r;
}

void loop_mailbox_flush(struct loop_mailbox *mb)
{
	struct loop *loop = mb->loop;
	struct loop_post_item *it;
	bool freed = false, *outer = mb->freed;
	uint64_t unreported;
	size_t n;

	/* what waits now, not what producers add meanwhile */
	pthread_mutex_lock(&loop->post_lock);
	n = mb->queued + (mb->marker_queued ? 1 : 0);
	pthread_mutex_unlock(&loop->post_lock);
	/* a callback may free mb: then stop (and tell a flush further up the stack) */
	mb->freed = &freed;
	while (n-- > 0 && (it = take_next(loop, mb, &unreported))) {
		item_deliver(loop, it, unreported);
		if (freed) {
			if (outer)
				*outer = true;
			return;
		}
	}
	mb->freed = outer;
}

void loop_mailbox_get_stats(struct loop_mailbox *mb, struct loop_mailbox_stats *ret)
{
	pthread_mutex_lock(&mb->loop->post_lock);
	*ret = (struct loop_mailbox_stats){ mb->queued, mb->posted, mb->dropped };
	pthread_mutex_unlock(&mb->loop->post_lock);
}

void loop_post_get_stats(struct loop *loop, struct loop_mailbox_stats *ret)
{
	loop_mailbox_get_stats(&loop->own, ret);
}

static void loop_mailbox_purge(struct loop_mailbox *mb)
{
	struct loop_post_item *it;
	uint64_t unreported;

	while ((it = take_next(mb->loop, mb, &unreported)))
		item_drop(it);
}

struct loop_mailbox *loop_mailbox_free(struct loop_mailbox *mb)
{
	struct loop_mailbox **pp;

	if (!mb)
		return NULL;
	if (mb->freed)
		*mb->freed = true;
	loop_mailbox_purge(mb);
	for (pp = &mb->loop->mailboxes; *pp; pp = &(*pp)->next) {
		if (*pp == mb) {
			*pp = mb->next;
			break;
		}
	}
	free(mb);
	return NULL;
}

static void loop_drain_posts(struct loop *loop)
{
	struct loop_post_item *it;
	uint64_t n, unreported;
	size_t todo;
	bool left;
	ssize_t r;

	r = read(loop->eventfd, &n, sizeof(n));
	(void)r;
	pthread_mutex_lock(&loop->post_lock);
	todo = loop->post_count;
	pthread_mutex_unlock(&loop->post_lock);
	while (todo-- > 0 && !loop->stop && (it = take_next(loop, NULL, &unreported)))
		item_deliver(loop, it, unreported);
	pthread_mutex_lock(&loop->post_lock);
	left = loop->post_count > 0;
	pthread_mutex_unlock(&loop->post_lock);
	if (left)
		loop_wake(loop);
}

static void loop_drain_signals(struct loop *loop)
{
	struct signalfd_siginfo si;
	int i;

	while (read(loop->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		for (i = 0; i < loop->n_sigs; i++)
			if (loop->sigs[i].signo == (int)si.ssi_signo)
				loop->sigs[i].fn(loop, (int)si.ssi_signo, loop->sigs[i].data);
	}
}

/* Fires every due timer; a callback may add or cancel timers. Returns ms to the next one. */
static int loop_run_timers(struct loop *loop)
{
	uint64_t now = loop_now_ms(), next = UINT64_MAX;
	bool fired;
	size_t i;

	do {
		fired = false;
		for (i = 0; i < loop->n_timers; i++) {
			if (loop->timers[i].due_ms <= now) {
				struct loop_timer t = loop->timers[i];
				loop->timers[i] = loop->timers[--loop->n_timers];
				t.fn(loop, t.id, t.data);
				fired = true;
				break; /* the array may have changed */
			}
		}
	} while (fired && !loop->stop);

	for (i = 0; i < loop->n_timers; i++)
		if (loop->timers[i].due_ms < next)
			next = loop->timers[i].due_ms;
	if (next == UINT64_MAX)
		return -1;
	now = loop_now_ms();
	return next <= now ? 0 : (int)((next - now) > 60000 ? 60000 : next - now);
}

int loop_run(struct loop *loop)
{
	struct epoll_event evs[LOOP_MAX_EVENTS];
	int n, i, timeout;

	loop->stop = false;
	while (!loop->stop) {
		timeout = loop_run_timers(loop);
		if (loop->stop)
			break;
		n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (i = 0; i < n && !loop->stop; i++) {
			int fd = evs[i].data.fd;
			struct loop_fd *f;

			if (fd == loop->eventfd) {
				loop_drain_posts(loop);
				continue;
			}
			if (fd == loop->sigfd) {
				loop_drain_signals(loop);
				continue;
			}
			f = loop_find_fd(loop, fd);
			if (f)
				f->fn(loop, fd, evs[i].events, f->data);
		}
		loop_reap_fds(loop);
	}
	return 0;
}

void loop_stop(struct loop *loop)
{
	loop->stop = true;
}
