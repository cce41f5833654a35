/* SPDX-License-Identifier: MIT */
/*
 * listener: accept4() for the simulator's level-triggered listening sockets (usbmuxd and
 * control) that cannot spin: when the process is out of file descriptors the pending
 * connection stays queued and epoll would report it again at once, so the listener is muted
 * for LISTENER_PAUSE_MS instead.
 */
#ifndef CRADLE_SIM_LISTENER_H
#define CRADLE_SIM_LISTENER_H

struct loop;

#define LISTENER_PAUSE_MS 100

/* A non-blocking, close-on-exec client fd; -EAGAIN when nothing is pending; another -errno
 * on failure (after EMFILE/ENFILE lfd is muted and re-armed for EPOLLIN by a timer). */
int listener_accept(struct loop *loop, int lfd);

#endif
