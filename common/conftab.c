/* SPDX-License-Identifier: MIT */
/*
 * conftab: see conftab.h. A line is split into key and value here, the value is unquoted, and
 * the key's type decides the rest; numbers go through parse.h so a command line that takes
 * the same kind of value accepts exactly the same text.
 */
#include "conftab.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "parse.h"

#define CONFTAB_RATE_INTERVAL_MAX (30 * 86400ULL)

int conftab_error(struct conftab_parser *p, const char *fmt, ...)
{
	char msg[CONFTAB_ERROR_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->err && p->errsz > 0) {
		if (p->line > 0)
			snprintf(p->err, p->errsz, "%s:%u: %s", p->name, p->line, msg);
		else
			snprintf(p->err, p->errsz, "%s: %s", p->name, msg);
	}
	return -EINVAL;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

int conftab_split_list(struct conftab_parser *p, const struct conftab_key *k, char *s, int *ret_n,
                       char (*items)[CONFTAB_ITEM_MAX], int max)
{
	int n = 0;

	if (*s == '\0') {
		*ret_n = 0;
		return 0;
	}
	for (;;) {
		char *comma = strchr(s, ',');
		char *e;

		if (comma)
			*comma = '\0';
		while (is_blank(*s))
			s++;
		e = s + strlen(s);
		while (e > s && is_blank(e[-1]))
			*--e = '\0';
		if (*s == '\0')
			return conftab_error(p, "'%s': empty list item", k->name);
		if (n >= max)
			return conftab_error(p, "'%s': more than %d items", k->name, max);
		if (strlen(s) >= CONFTAB_ITEM_MAX)
			return conftab_error(p, "'%s': item '%.32s...' longer than %d bytes",
			                     k->name, s, CONFTAB_ITEM_MAX - 1);
		memcpy(items[n++], s, strlen(s) + 1);
		if (!comma)
			break;
		s = comma + 1;
	}
	*ret_n = n;
	return 0;
}

static int range_check(struct conftab_parser *p, const struct conftab_key *k, uint64_t v)
{
	if (k->min == 0 && k->max == 0)
		return 0;
	if (v < k->min || v > k->max)
		return conftab_error(
		        p, "'%s': value %" PRIu64 " out of range [%" PRIu64 ", %" PRIu64 "]",
		        k->name, v, k->min, k->max);
	return 0;
}

/* A number read by parse (parse.h) and range-checked; what and examples go into the message. */
static int set_number(struct conftab_parser *p, const struct conftab_key *k, const char *v,
                      int (*parse)(const char *s, uint64_t *ret), const char *what,
                      const char *examples, uint64_t *ret)
{
	int r;

	r = parse(v, ret);
	if (r == -ERANGE)
		return conftab_error(p, "'%s': bad %s '%.80s' (too large)", k->name, what, v);
	if (r < 0)
		return conftab_error(p, "'%s': bad %s '%.80s' (want e.g. %s)", k->name, what, v,
		                     examples);
	return range_check(p, k, *ret);
}

static int set_rate(struct conftab_parser *p, const struct conftab_key *k, char *v,
                    struct conftab_rate *rate)
{
	char *slash = strchr(v, '/');
	uint64_t count, interval;
	int r;

	if (!slash)
		return conftab_error(p, "'%s': bad rate '%.80s' (want COUNT/DURATION, e.g. 6/1h)",
		                     k->name, v);
	*slash = '\0';
	if (parse_uint(v, &count) < 0)
		return conftab_error(p, "'%s': bad count '%.80s' in rate", k->name, v);
	r = range_check(p, k, count);
	if (r < 0)
		return r;
	r = parse_duration(slash + 1, &interval);
	if (r < 0 || interval == 0 || interval > CONFTAB_RATE_INTERVAL_MAX)
		return conftab_error(p, "'%s': bad interval '%.80s' in rate (1s..30d)", k->name,
		                     slash + 1);
	rate->count = (unsigned)count;
	rate->interval_s = (int64_t)interval;
	return 0;
}

int conftab_set_string(struct conftab_parser *p, const struct conftab_key *k, const char *v,
                       char *field)
{
	size_t n = strlen(v);

	if (n >= k->size)
		return conftab_error(p, "'%s': value longer than %zu bytes", k->name, k->size - 1);
	memcpy(field, v, n + 1);
	return 0;
}

static const struct conftab_ops *custom_type(const struct conftab *t, const struct conftab_key *k)
{
	size_t i = (size_t)(k->type - CONFTAB_CUSTOM);

	if (k->type < CONFTAB_CUSTOM || i >= t->n_custom)
		return NULL;
	return &t->custom[i];
}

/* Stores the value text v (modifiable, already unquoted) for key k into cfg. */
static int conftab_set(const struct conftab *t, struct conftab_parser *p,
                       const struct conftab_key *k, char *v, void *cfg)
{
	const struct conftab_ops *ops;
	char *field = (char *)cfg + k->offset;
	uint64_t u;
	bool b;
	int r;

	switch (k->type) {
	case CONFTAB_STRING:
		return conftab_set_string(p, k, v, field);
	case CONFTAB_DURATION:
		r = set_number(p, k, v, parse_duration, "duration", "30, 30s, 5m, 1h30m, 2d", &u);
		if (r == 0)
			*(int64_t *)(void *)field = (int64_t)u;
		return r;
	case CONFTAB_SIZE:
		r = set_number(p, k, v, parse_size, "size", "512, 64K, 16M, 1G", &u);
		if (r == 0)
			*(uint64_t *)(void *)field = u;
		return r;
	case CONFTAB_UINT:
		r = set_number(p, k, v, parse_uint, "number", "16", &u);
		if (r < 0)
			return r;
		if (k->size == 8)
			*(uint64_t *)(void *)field = u;
		else if (u > UINT32_MAX)
			return conftab_error(p, "'%s': value %" PRIu64 " too large", k->name, u);
		else
			*(unsigned *)(void *)field = (unsigned)u;
		return 0;
	case CONFTAB_BOOL:
		if (parse_bool(v, &b) < 0)
			return conftab_error(p, "'%s': bad boolean '%.80s' (want true or false)",
			                     k->name, v);
		*(bool *)(void *)field = b;
		return 0;
	case CONFTAB_LIST: {
		struct conftab_list tmp = { 0 };

		r = conftab_split_list(p, k, v, &tmp.n, tmp.item, CONFTAB_LIST_MAX);
		if (r < 0)
			return r;
		*(struct conftab_list *)(void *)field = tmp;
		return 0;
	}
	case CONFTAB_LOG_LEVEL: {
		enum log_level lvl;

		if (log_level_from_string(v, &lvl) < 0)
			return conftab_error(
			        p,
			        "'%s': bad level '%.80s' (want error, warn, notice, info, debug)",
			        k->name, v);
		*(enum log_level *)(void *)field = lvl;
		return 0;
	}
	case CONFTAB_RATE:
		return set_rate(p, k, v, (struct conftab_rate *)(void *)field);
	default:
		ops = custom_type(t, k);
		if (ops && ops->parse)
			return ops->parse(p, k, v, field);
		break;
	}
	return conftab_error(p, "'%s': internal error: bad type", k->name);
}

static const struct conftab_key *conftab_find(const struct conftab *t, const char *name)
{
	for (size_t i = 0; i < t->n_keys; i++)
		if (strcmp(t->keys[i].name, name) == 0)
			return &t->keys[i];
	return NULL;
}

/* Removes one pair of double quotes around v (in place); -EINVAL on a lone quote. */
static int unquote(char **v)
{
	char *s = *v;
	size_t n = strlen(s);

	if (n == 0 || s[0] != '"')
		return strchr(s, '"') ? -EINVAL : 0;
	if (n < 2 || s[n - 1] != '"')
		return -EINVAL;
	s[n - 1] = '\0';
	s++;
	if (strchr(s, '"'))
		return -EINVAL;
	*v = s;
	return 0;
}

void conftab_defaults(const struct conftab *t, void *cfg)
{
	struct conftab_parser p = { .name = "(defaults)" };

	for (size_t i = 0; i < t->n_keys; i++) {
		char buf[512];
		char *v = buf;

		if (!t->keys[i].def)
			continue;
		/* the table is constant: a failure here is a programming error caught by tests */
		if ((size_t)snprintf(buf, sizeof(buf), "%s", t->keys[i].def) >= sizeof(buf) ||
		    unquote(&v) < 0 || conftab_set(t, &p, &t->keys[i], v, cfg) < 0)
			abort();
	}
}

/*
 * The line's first word is no key. It is quoted only when it looks like a key name ([a-z0-9_],
 * as every key is): anything else may be a secret (`mqtt_password=SECRET`) or the content of
 * a file that is no config at all (`-c /etc/shadow`), and an error message is logged.
 */
static int unknown_key(const struct conftab *t, struct conftab_parser *p, const char *key)
{
	size_t n = strspn(key, "abcdefghijklmnopqrstuvwxyz0123456789_");
	char name[64];

	if (key[n] == '\0' && n < sizeof(name))
		return conftab_error(p, "unknown key '%s'", key);
	if (key[n] == '=' && n < sizeof(name)) {
		memcpy(name, key, n);
		name[n] = '\0';
		if (conftab_find(t, name))
			return conftab_error(p,
			                     "'%s': write 'KEY VALUE', not 'KEY=VALUE' (value not "
			                     "shown)",
			                     name);
	}
	return conftab_error(p, "not a 'key value' line (content not shown)");
}

static int conftab_line(const struct conftab *t, struct conftab_parser *p, char *s, void *cfg,
                        unsigned *seen)
{
	const struct conftab_key *k;
	char *key, *v, *e;
	int r;

	while (is_blank(*s))
		s++;
	if (*s == '\0' || *s == '#')
		return 0;
	key = s;
	while (*s && !is_blank(*s))
		s++;
	if (*s)
		*s++ = '\0';
	while (is_blank(*s))
		s++;
	v = s;
	e = v + strlen(v);
	while (e > v && (is_blank(e[-1]) || e[-1] == '\r'))
		*--e = '\0';
	for (const char *c = key; *c; c++)
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f)
			return conftab_error(p, "key contains a control or non-ASCII byte");
	k = conftab_find(t, key);
	if (!k)
		return unknown_key(t, p, key);
	if (seen[k - t->keys])
		return conftab_error(p, "'%s' set twice (first on line %u)", k->name,
		                     seen[k - t->keys]);
	seen[k - t->keys] = p->line;
	if (*v == '\0')
		return conftab_error(p, "'%s': missing value (use \"\" for an empty string)",
		                     k->name);
	for (const char *c = v; *c; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t')
			return conftab_error(p, "'%s': value contains a control byte", k->name);
	r = unquote(&v);
	if (r < 0)
		return conftab_error(p, "'%s': unbalanced or embedded quote", k->name);
	return conftab_set(t, p, k, v, cfg);
}

int conftab_parse(const struct conftab *t, struct conftab_parser *p, const char *text, size_t len,
                  void *cfg)
{
	unsigned *seen = NULL;
	char *buf = NULL;
	size_t pos = 0;
	int r = 0;

	if (p->err && p->errsz > 0)
		p->err[0] = '\0';
	p->line = 0;
	if (len > CONFTAB_FILE_MAX) {
		r = conftab_error(p, "file larger than %d bytes", CONFTAB_FILE_MAX);
		goto out;
	}
	seen = calloc(t->n_keys ? t->n_keys : 1, sizeof(*seen));
	buf = malloc(len + 1);
	if (!seen || !buf) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(buf, text, len);
	buf[len] = '\0';
	while (pos < len) {
		char *line = buf + pos;
		char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;

		p->line++;
		line[n] = '\0';
		if (memchr(line, '\0', n)) {
			r = conftab_error(p, "NUL byte in line");
			goto out;
		}
		r = conftab_line(t, p, line, cfg, seen);
		if (r < 0)
			goto out;
		pos += n + 1;
	}
	p->line = 0;
	for (size_t i = 0; i < t->n_keys; i++)
		if ((t->keys[i].flags & CONFTAB_REQUIRED) && !seen[i]) {
			r = conftab_error(p, "missing required key '%s'", t->keys[i].name);
			goto out;
		}
out:
	free(seen);
	free(buf);
	return r;
}

int conftab_read_file(struct conftab_parser *p, const char *path, char **ret_text, size_t *ret_len)
{
	char *text = NULL;
	size_t len = 0;
	struct stat st;
	int fd = -1;
	int r;

	p->line = 0;
	/* O_NONBLOCK: a FIFO must not block the open; it is refused by the fstat below */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		conftab_error(p, "cannot read: %s", strerror(-r));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > CONFTAB_FILE_MAX) {
		r = conftab_error(p, "not a regular file of at most %d bytes", CONFTAB_FILE_MAX);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, text + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			conftab_error(p, "read failed: %s", strerror(-r));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	text[len] = '\0';
	*ret_text = text;
	*ret_len = len;
	text = NULL;
	r = 0;
out:
	free(text);
	if (fd >= 0)
		close(fd);
	return r;
}

/* Prints a string value so that reading the dump back gives the same value. */
void conftab_dump_string(FILE *f, const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || is_blank(s[0]) || is_blank(s[n - 1]))
		fprintf(f, "\"%s\"", s);
	else
		fputs(s, f);
}

/* The largest single unit that divides evenly: what a person would have written. */
static void dump_duration(FILE *f, int64_t s)
{
	if (s != 0 && s % 86400 == 0)
		fprintf(f, "%" PRId64 "d", s / 86400);
	else if (s != 0 && s % 3600 == 0)
		fprintf(f, "%" PRId64 "h", s / 3600);
	else if (s != 0 && s % 60 == 0)
		fprintf(f, "%" PRId64 "m", s / 60);
	else
		fprintf(f, "%" PRId64 "s", s);
}

void conftab_dump_items(FILE *f, int n, const char (*items)[CONFTAB_ITEM_MAX])
{
	if (n == 0)
		fputs("\"\"", f);
	for (int i = 0; i < n; i++)
		fprintf(f, "%s%s", i ? "," : "", items[i]);
}

static void dump_value(const struct conftab *t, FILE *f, const struct conftab_key *k,
                       const char *field)
{
	const struct conftab_ops *ops;

	switch (k->type) {
	case CONFTAB_STRING:
		if ((k->flags & CONFTAB_SECRET) && field[0])
			fputs("********", f);
		else
			conftab_dump_string(f, field);
		break;
	case CONFTAB_DURATION:
		dump_duration(f, *(const int64_t *)(const void *)field);
		break;
	case CONFTAB_SIZE:
		fprintf(f, "%" PRIu64, *(const uint64_t *)(const void *)field);
		break;
	case CONFTAB_UINT:
		if (k->size == 8)
			fprintf(f, "%" PRIu64, *(const uint64_t *)(const void *)field);
		else
			fprintf(f, "%u", *(const unsigned *)(const void *)field);
		break;
	case CONFTAB_BOOL:
		fputs(*(const bool *)(const void *)field ? "true" : "false", f);
		break;
	case CONFTAB_LIST: {
		const struct conftab_list *l = (const void *)field;

		conftab_dump_items(f, l->n, l->item);
		break;
	}
	case CONFTAB_LOG_LEVEL: {
		const char *name =
		        log_level_to_string(*(const enum log_level *)(const void *)field);

		fputs(name ? name : "info", f);
		break;
	}
	case CONFTAB_RATE: {
		const struct conftab_rate *rate = (const void *)field;

		fprintf(f, "%u/", rate->count);
		dump_duration(f, rate->interval_s);
		break;
	}
	default:
		ops = custom_type(t, k);
		if (k->flags & CONFTAB_SECRET)
			fputs("********", f);
		else if (ops && ops->dump)
			ops->dump(f, k, field);
		break;
	}
}

int conftab_dump(const struct conftab *t, const void *cfg, FILE *f)
{
	for (size_t i = 0; i < t->n_keys; i++) {
		const struct conftab_key *k = &t->keys[i];

		fprintf(f, "%s ", k->name);
		dump_value(t, f, k, (const char *)cfg + k->offset);
		fputc('\n', f);
	}
	return ferror(f) ? -EIO : 0;
}
