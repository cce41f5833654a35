/* SPDX-License-Identifier: MIT */
/*
 * log: formats into a stack buffer and writes the whole line with one write(2), so lines from
 * library threads never interleave mid-line.
 *
 * Repeats are collapsed as syslog does: a line identical to the previous one (same level, same
 * text after formatting) within LOG_REPEAT_WINDOW_MS of the first of them is only counted, and
 * "last message repeated N times" is written before the next different line, at the next
 * identical line after the window, or by log_flush() (also at exit). A flood of one message
 * thus costs a counter, not a disk.
 *
 * Under systemd, stderr is a stream to journald (the manager sets JOURNAL_STREAM to its
 * "device:inode"): every line then starts with its syslog priority, "<3>" for error to "<7>"
 * for debug (sd-daemon(3)), so `journalctl -p warning` and the colours work. Anywhere else
 * (a terminal, a file, a test's pipe, a helper whose stderr the parent reads) no prefix.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX         2048
#define LOG_REPEAT_WINDOW_MS 30000

/* the last line written and how often it came again since; under repeat_lock */
static pthread_mutex_t repeat_lock = PTHREAD_MUTEX_INITIALIZER;
static char repeat_line[LOG_LINE_MAX];
static size_t repeat_len;
static unsigned long repeat_count;
static enum log_level repeat_level;
static uint64_t repeat_since_ms;

static const char *log_ident = "cradle";
static enum log_level log_level = LOG_LEVEL_INFO;
static bool log_journal; /* stderr is journald's stream: "<N>" prefixes */

static const char *const level_names[_LOG_LEVEL_MAX] = {
	[LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARN] = "warn",   [LOG_LEVEL_NOTICE] = "notice",
	[LOG_LEVEL_INFO] = "info",   [LOG_LEVEL_DEBUG] = "debug",
};

/* the syslog priorities (LOG_ERR .. LOG_DEBUG of syslog.h) as journald reads them */
static const char *const prio_prefix[_LOG_LEVEL_MAX] = {
	[LOG_LEVEL_ERROR] = "<3>", [LOG_LEVEL_WARN] = "<4>",  [LOG_LEVEL_NOTICE] = "<5>",
	[LOG_LEVEL_INFO] = "<6>",  [LOG_LEVEL_DEBUG] = "<7>",
};
_Static_assert(LOG_ERR == 3 && LOG_WARNING == 4 && LOG_NOTICE == 5 && LOG_INFO == 6 &&
                       LOG_DEBUG == 7,
               "syslog priorities");

/*
 * Whether stderr is the journal stream the manager connected: JOURNAL_STREAM's device and
 * inode are stderr's (a child that kept the variable but not the stream must not prefix).
 */
static bool stderr_is_journal(void)
{
	const char *env = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int n = 0;

	if (!env || sscanf(env, "%llu:%llu%n", &dev, &ino, &n) != 2 || env[n] != '\0')
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void log_init(const char *ident, enum log_level level)
{
	static bool registered;
	const char *slash;

	if (!registered) /* a count still pending at exit is written then */
		registered = atexit(log_flush) == 0;

	if (ident) {
		slash = strrchr(ident, '/');
		log_ident = slash ? slash + 1 : ident;
	}
	log_level = level;
	log_journal = stderr_is_journal();
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return log_level;
}

const char *log_level_to_string(enum log_level level)
{
	return (unsigned)level < _LOG_LEVEL_MAX ? level_names[level] : NULL;
}

int log_level_from_string(const char *s, enum log_level *ret_level)
{
	int i;

	for (i = 0; i < _LOG_LEVEL_MAX; i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*ret_level = (enum log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void write_all(const char *buf, size_t n)
{
	ssize_t w = write(STDERR_FILENO, buf, n);

	(void)w;
}

/* Writes the pending repeat count, if any. Under repeat_lock. */
static void flush_repeats_locked(void)
{
	char note[128];
	int n;

	if (repeat_count == 0)
		return;
	n = snprintf(note, sizeof(note), "%s%s: last message repeated %lu times\n",
	             log_journal ? prio_prefix[repeat_level] : "", log_ident, repeat_count);
	if (n > 0 && (size_t)n < sizeof(note))
		write_all(note, (size_t)n);
	repeat_count = 0;
}

void log_flush(void)
{
	pthread_mutex_lock(&repeat_lock);
	flush_repeats_locked();
	pthread_mutex_unlock(&repeat_lock);
}

/* Writes line unless it repeats the last one within the window. */
static void emit(enum log_level level, const char *line, size_t n)
{
	uint64_t now = mono_ms();

	pthread_mutex_lock(&repeat_lock);
	if (n == repeat_len && memcmp(line, repeat_line, n) == 0 &&
	    now - repeat_since_ms < LOG_REPEAT_WINDOW_MS) {
		repeat_count++;
		pthread_mutex_unlock(&repeat_lock);
		return;
	}
	flush_repeats_locked();
	write_all(line, n);
	memcpy(repeat_line, line, n);
	repeat_len = n;
	repeat_level = level;
	repeat_since_ms = now;
	pthread_mutex_unlock(&repeat_lock);
}

__attribute__((format(printf, 3, 0))) static void log_write(enum log_level level, int r,
                                                            const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	int n, m;

	n = snprintf(line, sizeof(line), "%s%s: %s: ", log_journal ? prio_prefix[level] : "",
	             log_ident, level_names[level]);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n >= sizeof(line) - 64)
		n = (int)sizeof(line) - 64; /* truncated: keep room for the errno text */
	if (r < 0)
		n += snprintf(line + n, sizeof(line) - (size_t)n, ": %s", strerror(-r));
	if ((size_t)n >= sizeof(line) - 1)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	emit(level, line, (size_t)n);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	log_write(level, 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

int log_msg_errno(enum log_level level, int r, const char *fmt, ...)
{
	va_list ap;
	int saved = errno;

	if (level > log_level)
		return r;
	va_start(ap, fmt);
	log_write(level, r, fmt, ap);
	va_end(ap);
	errno = saved;
	return r;
}
