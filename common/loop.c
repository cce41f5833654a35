/* SPDX-License-Identifier: MIT */
/*
 * loop: epoll for fds, a signalfd for signals, an eventfd for the mailbox, and an unsorted
 * timer array scanned for the nearest deadline. A process has tens to a few hundred timers,
 * so a linear scan per iteration costs less than keeping a heap in order.
 *
 * Removing an fd from inside callbacks is safe: registrations are looked up again by fd for
 * every ready event, and a removed registration is only marked dead and freed after the
 * batch of events has been dispatched.
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
	loop_post_fn fn;
	void *data;
	struct loop_post_item *next;
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

struct loop *loop_new(void)
{
	struct loop *loop;
	struct epoll_event ev = { .events = EPOLLIN };

	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return NULL;
	loop->sigfd = -1;
	loop->next_timer_id = 1;
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
	struct loop_post_item *p, *pnext;

	if (!loop)
		return NULL;
	for (f = loop->fds; f; f = fnext) {
		fnext = f->next;
		free(f);
	}
	for (p = loop->post_head; p; p = pnext) {
		pnext = p->next;
		free(p);
	}
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

	if (loop->n_sigs == (int)(sizeof(loop->sigs) / sizeof(loop->sigs[0])))
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

int loop_post(struct loop *loop, loop_post_fn fn, void *data)
{
	struct loop_post_item *p = calloc(1, sizeof(*p));
	uint64_t one = 1;
	ssize_t w;

	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->data = data;
	pthread_mutex_lock(&loop->post_lock);
	if (loop->post_tail)
		loop->post_tail->next = p;
	else
		loop->post_head = p;
	loop->post_tail = p;
	pthread_mutex_unlock(&loop->post_lock);
	w = write(loop->eventfd, &one, sizeof(one));
	(void)w; /* EAGAIN means the counter is already non-zero: the loop will wake */
	return 0;
}

static void loop_drain_posts(struct loop *loop)
{
	struct loop_post_item *p, *next;
	uint64_t n;
	ssize_t r;

	r = read(loop->eventfd, &n, sizeof(n));
	(void)r;
	pthread_mutex_lock(&loop->post_lock);
	p = loop->post_head;
	loop->post_head = loop->post_tail = NULL;
	pthread_mutex_unlock(&loop->post_lock);
	for (; p; p = next) {
		next = p->next;
		p->fn(loop, p->data);
		free(p);
	}
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
