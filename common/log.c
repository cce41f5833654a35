/* SPDX-License-Identifier: MIT */
/*
 * log: formats into a stack buffer and writes the whole line with one write(2), so lines from
 * library threads never interleave mid-line.
 */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char *log_ident = "cradle";
static enum log_level log_level = LOG_LEVEL_INFO;

static const char *const level_names[_LOG_LEVEL_MAX] = {
	[LOG_LEVEL_ERROR] = "error", [LOG_LEVEL_WARN] = "warn",   [LOG_LEVEL_NOTICE] = "notice",
	[LOG_LEVEL_INFO] = "info",   [LOG_LEVEL_DEBUG] = "debug",
};

void log_init(const char *ident, enum log_level level)
{
	const char *slash;

	if (ident) {
		slash = strrchr(ident, '/');
		log_ident = slash ? slash + 1 : ident;
	}
	log_level = level;
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

__attribute__((format(printf, 3, 0))) static void log_write(enum log_level level, int r,
                                                            const char *fmt, va_list ap)
{
	char line[2048];
	int n, m;
	ssize_t w;

	n = snprintf(line, sizeof(line), "%s: %s: ", log_ident, level_names[level]);
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
	w = write(STDERR_FILENO, line, (size_t)n);
	(void)w;
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
