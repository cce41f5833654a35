/* SPDX-License-Identifier: MIT */
/*
 * log: one line per event on stderr (journald picks it up under systemd; when stderr is the
 * journal's stream, JOURNAL_STREAM, each line starts with its syslog priority "<3>".."<7>").
 *
 * The only global state in the project: the program name, the level and the last line (repeats
 * of it are collapsed into "last message repeated N times", as syslog does).
 * log_*_errno(r, ...) appends strerror(-r) and returns r, so a failure is logged and
 * returned in one statement: `return log_error_errno(r, "device '%s': probe failed", udid);`
 */
#ifndef CRADLE_LOG_H
#define CRADLE_LOG_H

enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_NOTICE,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG,
	_LOG_LEVEL_MAX,
};

/* ident is borrowed and must outlive all logging (pass a string literal or argv[0]). */
void log_init(const char *ident, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parses "error", "warn", "notice", "info", "debug"; returns -EINVAL otherwise. */
int log_level_from_string(const char *s, enum log_level *ret_level);
/* "error" .. "debug"; NULL when out of range. */
const char *log_level_to_string(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Logs fmt plus ": strerror(-r)" and returns r (r is a negative errno). */
int log_msg_errno(enum log_level level, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/*
 * Writes "last message repeated N times" now if identical lines are being collapsed (log.c);
 * call before exit so a final count is not lost.
 */
void log_flush(void);

#define log_error(...)  log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)   log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_notice(...) log_msg(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_info(...)   log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)  log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#define log_error_errno(r, ...) log_msg_errno(LOG_LEVEL_ERROR, r, __VA_ARGS__)
#define log_warn_errno(r, ...)  log_msg_errno(LOG_LEVEL_WARN, r, __VA_ARGS__)
#define log_debug_errno(r, ...) log_msg_errno(LOG_LEVEL_DEBUG, r, __VA_ARGS__)

#endif
