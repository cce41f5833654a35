/* SPDX-License-Identifier: MIT */
/*
 * loop: the one event loop of a process (epoll + timers + signals + a cross-thread mailbox).
 *
 * Threading: every function except loop_post() and loop_mailbox_post() must be called from
 * the thread running loop_run(). Posting is the only door for library threads (Paho,
 * libusbmuxd): they copy their data, post it, and return; the callback then runs on the loop
 * thread. Everything posted goes through one FIFO, so messages arrive in the order posted.
 *
 * A producer that owns memory in its messages uses a mailbox (loop_mailbox_new()):
 *  - bounded: at most `max` messages wait; a message that does not fit (or could not be
 *    allocated) is dropped, counted, and reported once to the owner on the loop thread
 *    (ops.overflow) in its place in the order, so the owner can heal (resync, re-check);
 *  - safe shutdown: the owner stops its library threads (Paho destroy, event unsubscribe: both
 *    join), then loop_mailbox_free() frees every message still waiting with ops.drop, so no
 *    callback runs into a freed owner and no copy leaks, without a sentinel or a drain loop.
 * loop_post() is the same FIFO through the loop's own mailbox, for data that needs no freeing
 * (or whose poster drains the loop itself before loop_free()).
 */
#ifndef CRADLE_LOOP_H
#define CRADLE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
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

/*
 * Thread-safe: queue fn(data) to run on the loop thread. 0, -ENOBUFS when LOOP_POST_MAX posts
 * wait already (counted), or -ENOMEM; on error data stays the caller's. Posts still waiting at
 * loop_free() are discarded without running fn.
 */
#define LOOP_POST_MAX 4096
int loop_post(struct loop *loop, loop_post_fn fn, void *data);

struct loop_mailbox;

struct loop_mailbox_ops {
	/* Required. Runs on the loop thread and owns msg from then on. */
	void (*deliver)(struct loop *loop, void *msg, void *ctx);
	/* Frees a message never delivered: refused (on the posting thread) or still waiting at
	 * loop_mailbox_free(). NULL = free(). Must be thread-safe. */
	void (*drop)(void *msg, void *ctx);
	/* Optional, loop thread: n messages were refused since the last report. */
	void (*overflow)(struct loop *loop, uint64_t n, void *ctx);
};

struct loop_mailbox_stats {
	size_t queued;    /* waiting now */
	uint64_t posted;  /* accepted since creation */
	uint64_t dropped; /* refused since creation (full or out of memory) */
};

/* Loop thread. max >= 1 messages may wait; ops copied, ctx borrowed. NULL when out of memory. */
struct loop_mailbox *loop_mailbox_new(struct loop *loop, size_t max,
                                      const struct loop_mailbox_ops *ops, void *ctx);

/*
 * Any thread: queue msg for ops.deliver. Takes msg in every case: 0, or -ENOBUFS (full) /
 * -ENOMEM, after which msg was dropped and counted. msg NULL counts a message the producer could
 * not even build (-ENOMEM). Never call it once loop_mailbox_free() may have started.
 */
int loop_mailbox_post(struct loop_mailbox *mb, void *msg);

/* Loop thread: delivers, now and in order, what waits in mb (e.g. while loop_run() is not running).
 * A callback may free mb (ops.deliver or ops.overflow, as under loop_run()): the flush stops. */
void loop_mailbox_flush(struct loop_mailbox *mb);

/* Any thread. loop_post_get_stats() is the same for loop_post()'s own mailbox. */
void loop_mailbox_get_stats(struct loop_mailbox *mb, struct loop_mailbox_stats *ret);
void loop_post_get_stats(struct loop *loop, struct loop_mailbox_stats *ret);

/*
 * Loop thread, after the producers stopped: drops what still waits (ops.drop), frees mb.
 * NULL-safe; returns NULL. Free every mailbox before its loop (loop_free() drops the messages
 * of a mailbox left open and frees it, so a later loop_mailbox_free() on it is a bug).
 */
struct loop_mailbox *loop_mailbox_free(struct loop_mailbox *mb);

/* Runs until loop_stop(). Returns 0, or -errno if epoll itself fails. */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);

/* Monotonic and wall clocks in milliseconds. */
uint64_t loop_now_ms(void);
int64_t wall_now_ms(void);

#endif
