/* SPDX-License-Identifier: MIT */
/*
 * conftab: a configuration file (`key value` lines, `#` comments) read through a table of keys.
 * One table per program (the agent's lives in agent/config.c) drives the parser, the defaults
 * and the dump, so a key cannot be documented in one place and forgotten in another.
 *
 * Values use parse.h's syntax (durations, sizes, booleans) plus: lists are comma separated
 * (blanks around items trimmed), rates are COUNT/DURATION (6/1h), log levels are names.
 * Strings run to the end of the line (trailing blanks trimmed); a value may be quoted "..." to
 * keep leading or trailing blanks or to give an empty string. Defaults are written in the
 * table as text and go through the same parser, so "72h" in a table means what it means in a
 * file. Parsing is strict: unknown or repeated keys, values out of range and trailing junk are
 * errors reported as "FILE:LINE: message", because a typo that silently falls back to a
 * default is worse than a program that refuses to start.
 *
 * Threading: no global state; a parser and the structure it fills belong to one thread.
 */
#ifndef CRADLE_CONFTAB_H
#define CRADLE_CONFTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFTAB_FILE_MAX  (1024 * 1024) /* a larger file is rejected */
#define CONFTAB_LIST_MAX  16            /* items of a CONFTAB_LIST */
#define CONFTAB_ITEM_MAX  64            /* bytes of a list item, NUL included */
#define CONFTAB_ERROR_MAX 512           /* enough for any message of the engine */

enum conftab_type {
	CONFTAB_STRING,    /* char[size] */
	CONFTAB_DURATION,  /* int64_t seconds; min/max in seconds */
	CONFTAB_SIZE,      /* uint64_t bytes */
	CONFTAB_UINT,      /* unsigned, or uint64_t when size is 8 */
	CONFTAB_BOOL,      /* bool */
	CONFTAB_LIST,      /* struct conftab_list */
	CONFTAB_LOG_LEVEL, /* enum log_level */
	CONFTAB_RATE,      /* struct conftab_rate; min/max bound the count */
	/* CONFTAB_CUSTOM + i: the program's own type, struct conftab's custom[i] */
	CONFTAB_CUSTOM,
};

enum conftab_flags {
	CONFTAB_SECRET = 1 << 0,   /* masked in dumps, never logged */
	CONFTAB_REQUIRED = 1 << 1, /* must be set by the file */
};

struct conftab_list {
	int n;
	char item[CONFTAB_LIST_MAX][CONFTAB_ITEM_MAX];
};

struct conftab_rate {
	unsigned count;
	int64_t interval_s; /* 1 s .. 30 d */
};

/* Where the parser is, for messages. Fill name, err and errsz; the engine keeps line. */
struct conftab_parser {
	const char *name; /* the file name, or "(defaults)" */
	unsigned line;    /* 0 outside a line (then messages are "NAME: message") */
	char *err;        /* may be NULL */
	size_t errsz;
};

struct conftab_key;

/* A custom type: parse the value text v (modifiable) into field; dump it back. */
struct conftab_ops {
	int (*parse)(struct conftab_parser *p, const struct conftab_key *k, char *v, void *field);
	void (*dump)(FILE *f, const struct conftab_key *k, const void *field);
};

/* A row of a table; a program's table is an array of these, written positionally. */
struct conftab_key {
	const char *name;
	int type;          /* enum conftab_type, or CONFTAB_CUSTOM + i */
	size_t offset;     /* of the field in the program's config structure */
	size_t size;       /* CONFTAB_STRING: buffer size; CONFTAB_UINT: 8 for a uint64_t */
	uint64_t min, max; /* numbers: inclusive range (durations in seconds); 0, 0 = none */
	unsigned flags;
	const char *def; /* NULL: no default in the table (required, or set by the program) */
};

struct conftab {
	const struct conftab_key *keys;
	size_t n_keys;
	const struct conftab_ops *custom; /* the program's types: CONFTAB_CUSTOM + index */
	size_t n_custom;
};

/* Writes "NAME:LINE: message" (or "NAME: message" when line is 0). Returns -EINVAL. */
int conftab_error(struct conftab_parser *p, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/*
 * Stores every default of the table into cfg (other fields are left as they are). A default
 * that does not parse is a programming error: abort(), so a unit test catches it.
 */
void conftab_defaults(const struct conftab *t, void *cfg);

/*
 * Parses text (len bytes, borrowed, need not be NUL-terminated) on top of cfg. Stops at the
 * first error: -EINVAL with the message in p->err. Checks the required keys at the end.
 * cfg may be partly updated on error. -ENOMEM when out of memory.
 */
int conftab_parse(const struct conftab *t, struct conftab_parser *p, const char *text, size_t len,
                  void *cfg);

/*
 * Reads the regular file path (at most CONFTAB_FILE_MAX bytes) into *ret_text (NUL-terminated,
 * free()) and *ret_len. 0 or -errno, with "PATH: ..." in p->err.
 */
int conftab_read_file(struct conftab_parser *p, const char *path, char **ret_text, size_t *ret_len);

/* Writes every key as a `key value` line in table order, secrets masked. 0 or -EIO. */
int conftab_dump(const struct conftab *t, const void *cfg, FILE *f);

/* For custom types: what CONFTAB_STRING does (length checked), and its dump (quoted if needed). */
int conftab_set_string(struct conftab_parser *p, const struct conftab_key *k, const char *v,
                       char *field);
void conftab_dump_string(FILE *f, const char *s);

/*
 * For custom list-like values: splits s (modified) at commas into at most max items
 * of CONFTAB_ITEM_MAX bytes, blanks trimmed; dumps n items back ("" for none).
 */
int conftab_split_list(struct conftab_parser *p, const struct conftab_key *k, char *s, int *ret_n,
                       char (*items)[CONFTAB_ITEM_MAX], int max);
void conftab_dump_items(FILE *f, int n, const char (*items)[CONFTAB_ITEM_MAX]);

#endif
