/* SPDX-License-Identifier: MIT */
/*
 * child: run a helper process under the loop with a deadline, reading its stdout line by line.
 *
 * Used for work that can block for minutes and must stay killable: device actions, local
 * backups (a thread stuck in a libimobiledevice call cannot be killed; a process can). The
 * process is started with posix_spawn and an argv array (no shell), stdin /dev/null, stderr
 * inherited (it reaches the journal with the daemon's). Exit is watched with a pidfd, so no
 * SIGCHLD handler is shared with other modules and only our own pid is ever reaped.
 *
 * Lines end at \n or \r (progress output redraws with \r); empty lines are skipped.
 * Deadline: SIGTERM, then SIGKILL CHILD_KILL_GRACE_MS later. Lines longer than line_max are
 * cut (the rest of that line is dropped), so a misbehaving helper cannot grow our memory.
 * exit() runs exactly once, after the last line() and after the process was reaped; the
 * child is freed right after it returns.
 */
#ifndef CRADLE_CHILD_H
#define CRADLE_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;
struct child;

#define CHILD_KILL_GRACE_MS 2000

struct child_ops {
	/* One complete stdout line without its newline (NUL-terminated, borrowed). May be NULL. */
	void (*line)(struct child *c, const char *line, void *data);
	/* status: as from waitpid (use WIFEXITED…), or -1 if it could not be collected.
	 * timed_out: the deadline passed and we killed it. */
	void (*exit)(struct child *c, int status, bool timed_out, void *data);
};

/*
 * argv is copied by posix_spawn (borrowed). timeout_ms 0 = no deadline. Returns 0 and *ret
 * (optional; valid until exit() returns), or -errno when the process could not be started
 * (then exit() never runs).
 */
int child_spawn(struct loop *loop, const char *const argv[], uint64_t timeout_ms, size_t line_max,
                const struct child_ops *ops, void *data, struct child **ret);

/* Sends SIGTERM now (SIGKILL after the grace); exit() still runs, with timed_out false. */
void child_terminate(struct child *c);

pid_t child_pid(const struct child *c);

#endif
