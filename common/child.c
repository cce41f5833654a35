/* SPDX-License-Identifier: MIT */
/*
 * child: see child.h. Two event sources per child (the stdout pipe and the pidfd); the child
 * is finished when both have reported, in whichever order they come.
 */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "macro.h"

extern char **environ;

struct child {
	struct loop *loop;
	pid_t pid;
	int out_fd; /* -1 after EOF */
	int pidfd;  /* -1 after the exit was collected */
	int status;
	bool timed_out;
	bool cutting; /* dropping the rest of an overlong line */
	uint64_t deadline_timer, kill_timer;
	const struct child_ops *ops;
	void *data;
	char *buf;
	size_t len, cap;
};

static int pidfd_open_compat(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static void child_finish_if_done(struct child *c)
{
	if (c->out_fd >= 0 || c->pidfd >= 0)
		return;
	if (c->deadline_timer)
		loop_cancel_timer(c->loop, c->deadline_timer);
	if (c->kill_timer)
		loop_cancel_timer(c->loop, c->kill_timer);
	if (c->len > 0 && c->ops->line && !c->cutting) {
		c->buf[c->len] = '\0'; /* a last line without newline still counts */
		c->ops->line(c, c->buf, c->data);
	}
	c->ops->exit(c, c->status, c->timed_out, c->data);
	free(c->buf);
	free(c);
}

static void child_on_kill_timer(struct loop *loop, uint64_t id, void *data)
{
	struct child *c = data;

	(void)loop;
	(void)id;
	c->kill_timer = 0;
	if (c->pidfd >= 0)
		kill(c->pid, SIGKILL);
}

void child_terminate(struct child *c)
{
	if (c->pidfd < 0)
		return;
	kill(c->pid, SIGTERM);
	if (!c->kill_timer)
		c->kill_timer =
		        loop_add_timer(c->loop, CHILD_KILL_GRACE_MS, child_on_kill_timer, c);
}

static void child_on_deadline(struct loop *loop, uint64_t id, void *data)
{
	struct child *c = data;

	(void)loop;
	(void)id;
	c->deadline_timer = 0;
	c->timed_out = true;
	log_notice("helper pid %d passed its deadline, terminating it", (int)c->pid);
	child_terminate(c);
}

static void child_on_exit(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct child *c = data;
	int status = 0;
	pid_t r;

	(void)events;
	r = waitpid(c->pid, &status, WNOHANG);
	if (r == 0)
		return; /* spurious wakeup */
	c->status = r == c->pid ? status : -1;
	loop_del_fd(loop, fd);
	close(fd);
	c->pidfd = -1;
	child_finish_if_done(c);
}

/* A line ends at \n or \r: terminal progress bars redraw with \r and never send \n. */
static char *line_end(char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] == '\n' || p[i] == '\r')
			return p + i;
	return NULL;
}

static void child_emit_lines(struct child *c)
{
	char *nl;
	size_t start = 0;

	while ((nl = line_end(c->buf + start, c->len - start))) {
		*nl = '\0';
		if (!c->cutting && c->ops->line && nl > c->buf + start)
			c->ops->line(c, c->buf + start, c->data);
		c->cutting = false;
		start = (size_t)(nl - c->buf) + 1;
	}
	memmove(c->buf, c->buf + start, c->len - start);
	c->len -= start;
	if (c->len == c->cap - 1) {
		/* overlong line: deliver the capped part once, drop the rest up to its newline */
		if (!c->cutting && c->ops->line) {
			c->buf[c->len] = '\0';
			c->ops->line(c, c->buf, c->data);
		}
		c->cutting = true;
		c->len = 0;
	}
}

static void child_on_output(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct child *c = data;
	ssize_t n;

	(void)events;
	for (;;) {
		n = read(fd, c->buf + c->len, c->cap - 1 - c->len);
		if (n > 0) {
			c->len += (size_t)n;
			child_emit_lines(c);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		break; /* EOF or error: the output side is done */
	}
	loop_del_fd(loop, fd);
	close(fd);
	c->out_fd = -1;
	child_finish_if_done(c);
}

/*
 * A helper starts with an empty signal mask: the parent blocks the signals its loop reads through
 * signalfd (SIGTERM, SIGINT, ...), the mask survives exec, and a helper with SIGTERM blocked could
 * only be ended by SIGKILL (and outlived a killed agent when it did not watch its stdout). Those
 * signals get their default action back too. SIGPIPE keeps the parent's disposition (ignored):
 * helpers talk to phones through sockets the phone may close at any time (a restarting phone),
 * and a write there must fail with EPIPE, not kill the helper before it reports.
 */
static int spawn_attr_init(posix_spawnattr_t *attr)
{
	static const int reset[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2 };
	sigset_t none, def;
	int r;

	r = -posix_spawnattr_init(attr);
	if (r < 0)
		return r;
	sigemptyset(&none);
	sigemptyset(&def);
	for (size_t i = 0; i < ARRAY_SIZE(reset); i++)
		sigaddset(&def, reset[i]);
	r = -posix_spawnattr_setsigmask(attr, &none);
	if (r == 0)
		r = -posix_spawnattr_setsigdefault(attr, &def);
	if (r == 0)
		r = -posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	if (r < 0)
		posix_spawnattr_destroy(attr);
	return r;
}

int child_spawn(struct loop *loop, const char *const argv[], uint64_t timeout_ms, size_t line_max,
                const struct child_ops *ops, void *data, struct child **ret)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	char *const *spawn_argv;
	struct child *c = NULL;
	int pipefd[2] = { -1, -1 }, r;
	bool fa_init = false, attr_init = false;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->ops = ops;
	c->data = data;
	c->out_fd = c->pidfd = -1;
	c->cap = (line_max ? line_max : 4096) + 1;
	c->buf = malloc(c->cap);
	if (!c->buf) {
		r = -ENOMEM;
		goto fail;
	}
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	r = -posix_spawn_file_actions_init(&fa);
	if (r < 0)
		goto fail;
	fa_init = true;
	posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
	r = spawn_attr_init(&attr);
	if (r < 0)
		goto fail;
	attr_init = true;
	/* posix_spawn's argv is not const for historical reasons only; it does not write it */
	memcpy(&spawn_argv, &argv, sizeof(spawn_argv));
	r = -posix_spawn(&c->pid, argv[0], &fa, &attr, spawn_argv, environ);
	if (r < 0)
		goto fail;
	close(pipefd[1]);
	pipefd[1] = -1;
	c->out_fd = pipefd[0];
	pipefd[0] = -1;
	fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
	c->pidfd = pidfd_open_compat(c->pid);
	if (c->pidfd < 0) {
		r = -errno;
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		goto fail;
	}
	if ((r = loop_add_fd(loop, c->out_fd, EPOLLIN, child_on_output, c)) < 0 ||
	    (r = loop_add_fd(loop, c->pidfd, EPOLLIN, child_on_exit, c)) < 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		loop_del_fd(loop, c->out_fd);
		goto fail;
	}
	if (timeout_ms)
		c->deadline_timer = loop_add_timer(loop, timeout_ms, child_on_deadline, c);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (ret)
		*ret = c;
	return 0;
fail:
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_init)
		posix_spawnattr_destroy(&attr);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (c->out_fd >= 0)
		close(c->out_fd);
	if (c->pidfd >= 0)
		close(c->pidfd);
	free(c->buf);
	free(c);
	return r;
}

pid_t child_pid(const struct child *c)
{
	return c->pid;
}
