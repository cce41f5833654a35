/* SPDX-License-Identifier: MIT */
/*
 * loop: the one event loop of a process (epoll + timers + signals + a cross-thread mailbox).
 *
 * Threading: every function except loop_post() must be called from the thread running
 * loop_run(). loop_post() is the only door for library threads (Paho, libusbmuxd): they copy
 * their data, post it, and return; the callback then runs on the loop thread.
 */
#ifndef CRADLE_LOOP_H
#define CRADLE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

/* events: EPOLLIN / EPOLLOUT bits as given by epoll. */
typedef void (*loop_fd_fn)(struct loop *loop, int fd, uint32_t events, void *data);
typedef void (*loop_timer_fn)(struct loop *loop, uint64_t timer_id, void *data);
typedef void (*loop_signal_fn)(struct loop *loop, int signo, void *data);
typedef void (*loop_post_fn)(struct loop *loop, void *data);

struct loop *loop_new(void);
/* Does not close registered fds (their owners do); NULL-safe; returns NULL. */
struct loop *loop_free(struct loop *loop);

/* Watches fd (borrowed) for events; one registration per fd. 0 or -errno. */
int loop_add_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn, void *data);
int loop_mod_fd(struct loop *loop, int fd, uint32_t events);
/* Safe to call from inside that fd's own callback. */
void loop_del_fd(struct loop *loop, int fd);

/* One-shot timer after delay_ms; returns an id > 0, or 0 on allocation failure. */
uint64_t loop_add_timer(struct loop *loop, uint64_t delay_ms, loop_timer_fn fn, void *data);
/* Cancelling an id that already fired or was cancelled is a no-op. */
void loop_cancel_timer(struct loop *loop, uint64_t timer_id);

/* Blocks signo for the process and delivers it through the loop (signalfd). */
int loop_add_signal(struct loop *loop, int signo, loop_signal_fn fn, void *data);

/* Thread-safe: queue fn(data) to run on the loop thread. 0 or -ENOMEM. */
int loop_post(struct loop *loop, loop_post_fn fn, void *data);

/* Runs until loop_stop(). Returns 0, or -errno if epoll itself fails. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

/* Monotonic and wall clocks in milliseconds. */
uint64_t loop_now_ms(void);
int64_t wall_now_ms(void);

#endif
