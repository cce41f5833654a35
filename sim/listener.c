/* SPDX-License-Identifier: MIT */
/*
 * listener: see listener.h. The re-arm timer carries the fd in its data pointer, so there is
 * nothing to free; a listener closed meanwhile makes loop_mod_fd() fail harmlessly (fds are
 * closed only at exit, after the loop stopped).
 */
#include "listener.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "log.h"
#include "loop.h"

static void listener_rearm(struct loop *loop, uint64_t timer_id, void *data)
{
	(void)timer_id;
	(void)loop_mod_fd(loop, (int)(intptr_t)data, EPOLLIN);
}

int listener_accept(struct loop *loop, int lfd)
{
	int fd;

	do
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd >= 0)
		return fd;
	if (errno == EAGAIN || errno == ECONNABORTED)
		return -EAGAIN;
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
		int r = -errno;

		log_warn("accept: %s; pausing this listener for %d ms", strerror(-r),
		         LISTENER_PAUSE_MS);
		if (loop_mod_fd(loop, lfd, 0) == 0 &&
		    !loop_add_timer(loop, LISTENER_PAUSE_MS, listener_rearm, (void *)(intptr_t)lfd))
			(void)loop_mod_fd(loop, lfd, EPOLLIN);
		return r;
	}
	return -errno;
}
