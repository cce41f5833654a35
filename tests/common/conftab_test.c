/* SPDX-License-Identifier: MIT */
/*
 * conftab: the engine with a table of its own (as a second program, e.g. the dashboard, would
 * declare one): every built-in type, a custom type, defaults through the parser, FILE:LINE
 * errors, required keys, the dump with its secret masked, and reading it back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "conftab.h"
#include "log.h"
#include "macro.h"

struct demo {
	char name[16];
	char token[32];
	int64_t timeout_s;
	uint64_t cache;
	unsigned workers;
	uint64_t big;
	bool verbose;
	struct conftab_list topics;
	enum log_level level;
	struct conftab_rate rate;
	int color; /* custom: red=1, green=2 */
};

enum { DEMO_COLOR = CONFTAB_CUSTOM };

static int color_parse(struct conftab_parser *p, const struct conftab_key *k, char *v, void *field)
{
	int *c = field;

	if (strcmp(v, "red") == 0)
		*c = 1;
	else if (strcmp(v, "green") == 0)
		*c = 2;
	else
		return conftab_error(p, "'%s': bad color '%s'", k->name, v);
	return 0;
}

static void color_dump(FILE *f, const struct conftab_key *k, const void *field)
{
	(void)k;
	fputs(*(const int *)field == 1 ? "red" : "green", f);
}

static const struct conftab_ops demo_types[] = { { color_parse, color_dump } };

#define OFF(f) offsetof(struct demo, f)
#define STR(f) OFF(f), sizeof(((struct demo *)0)->f)

static const struct conftab_key demo_keys[] = {
	{ "name", CONFTAB_STRING, STR(name), 0, 0, CONFTAB_REQUIRED, NULL },
	{ "token", CONFTAB_STRING, STR(token), 0, 0, CONFTAB_SECRET, "\"\"" },
	{ "timeout", CONFTAB_DURATION, OFF(timeout_s), 0, 1, 3600, 0, "1m30s" },
	{ "cache", CONFTAB_SIZE, OFF(cache), 0, 1024, 1ULL << 30, 0, "64K" },
	{ "workers", CONFTAB_UINT, OFF(workers), 0, 1, 64, 0, "4" },
	{ "big", CONFTAB_UINT, OFF(big), 8, 0, 0, 0, "5000000000" },
	{ "verbose", CONFTAB_BOOL, OFF(verbose), 0, 0, 0, 0, "off" },
	{ "topics", CONFTAB_LIST, OFF(topics), 0, 0, 0, 0, "a, b ,c" },
	{ "level", CONFTAB_LOG_LEVEL, OFF(level), 0, 0, 0, 0, "notice" },
	{ "rate", CONFTAB_RATE, OFF(rate), 0, 1, 100, 0, "6/1h" },
	{ "color", DEMO_COLOR, OFF(color), 0, 0, 0, 0, "red" },
};

static const struct conftab demo = { demo_keys, ARRAY_SIZE(demo_keys), demo_types,
	                             ARRAY_SIZE(demo_types) };

static int parse(const char *text, struct demo *d, char *err)
{
	struct conftab_parser p = { .name = "d.conf", .err = err, .errsz = CONFTAB_ERROR_MAX };

	memset(d, 0, sizeof(*d));
	conftab_defaults(&demo, d);
	return conftab_parse(&demo, &p, text, strlen(text), d);
}

static void test_defaults_and_values(void **state)
{
	char err[CONFTAB_ERROR_MAX];
	struct demo d;

	(void)state;
	assert_int_equal(parse("name x\n", &d, err), 0);
	assert_string_equal(err, "");
	assert_int_equal(d.timeout_s, 90);
	assert_int_equal(d.cache, 65536);
	assert_int_equal(d.workers, 4);
	assert_int_equal(d.big, 5000000000ULL);
	assert_false(d.verbose);
	assert_int_equal(d.topics.n, 3);
	assert_string_equal(d.topics.item[1], "b");
	assert_int_equal(d.level, LOG_LEVEL_NOTICE);
	assert_int_equal(d.rate.count, 6);
	assert_int_equal(d.rate.interval_s, 3600);
	assert_int_equal(d.color, 1);

	assert_int_equal(parse("name \" y \"\ntimeout 45\ncache 1M\nworkers 64\nverbose yes\n"
	                       "topics \"\"\nlevel debug\nrate 2/30s\ncolor green\ntoken t0k\n",
	                       &d, err),
	                 0);
	assert_string_equal(d.name, " y ");
	assert_int_equal(d.timeout_s, 45);
	assert_int_equal(d.cache, 1 << 20);
	assert_int_equal(d.workers, 64);
	assert_true(d.verbose);
	assert_int_equal(d.topics.n, 0);
	assert_int_equal(d.level, LOG_LEVEL_DEBUG);
	assert_int_equal(d.rate.count, 2);
	assert_int_equal(d.rate.interval_s, 30);
	assert_int_equal(d.color, 2);
	assert_string_equal(d.token, "t0k");
}

static void expect_error(const char *text, const char *want)
{
	char err[CONFTAB_ERROR_MAX];
	struct demo d;

	assert_int_equal(parse(text, &d, err), -EINVAL);
	if (strcmp(err, want) != 0)
		fail_msg("for %s\n got '%s'\nwant '%s'", text, err, want);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("", "d.conf: missing required key 'name'");
	expect_error("name x\nnope 1\n", "d.conf:2: unknown key 'nope'");
	expect_error("name x\nname y\n", "d.conf:2: 'name' set twice (first on line 1)");
	expect_error("name 0123456789abcdef\n", "d.conf:1: 'name': value longer than 15 bytes");
	expect_error("name x\n\ntimeout 2h\n",
	             "d.conf:3: 'timeout': value 7200 out of range [1, 3600]");
	expect_error("name x\ntimeout 1h30\n",
	             "d.conf:2: 'timeout': bad duration '1h30' (want e.g. 30, 30s, 5m, 1h30m, 2d)");
	expect_error("name x\ntimeout 99999999999999999999\n",
	             "d.conf:2: 'timeout': bad duration '99999999999999999999' (too large)");
	expect_error("name x\ncache 1Q\n",
	             "d.conf:2: 'cache': bad size '1Q' (want e.g. 512, 64K, 16M, 1G)");
	expect_error("name x\nworkers 0\n", "d.conf:2: 'workers': value 0 out of range [1, 64]");
	expect_error("name x\nbig 99999999999999999999\n",
	             "d.conf:2: 'big': bad number '99999999999999999999' (too large)");
	expect_error("name x\nworkers 4x\n", "d.conf:2: 'workers': bad number '4x' (want e.g. 16)");
	expect_error("name x\nverbose maybe\n", "d.conf:2: 'verbose': bad boolean 'maybe' (want "
	                                        "true or false)");
	expect_error("name x\ntopics a,,b\n", "d.conf:2: 'topics': empty list item");
	expect_error("name x\nlevel loud\n", "d.conf:2: 'level': bad level 'loud' (want error, "
	                                     "warn, notice, info, debug)");
	expect_error("name x\nrate 0/1h\n", "d.conf:2: 'rate': value 0 out of range [1, 100]");
	expect_error("name x\nrate 1/31d\n",
	             "d.conf:2: 'rate': bad interval '31d' in rate (1s..30d)");
	expect_error("name x\ncolor blue\n", "d.conf:2: 'color': bad color 'blue'");
	expect_error("name x\ncolor\n", "d.conf:2: 'color': missing value (use \"\" for an empty "
	                                "string)");
	expect_error("name \"x\n", "d.conf:1: 'name': unbalanced or embedded quote");
	expect_error("name x\x1by\n", "d.conf:1: 'name': value contains a control byte");
	expect_error("na\x01me x\n", "d.conf:1: key contains a control or non-ASCII byte");
	/* a line that is no `key value` is never quoted: it may hold a secret or another file */
	expect_error("name x\nname=hunter2\n",
	             "d.conf:2: 'name': write 'KEY VALUE', not 'KEY=VALUE' (value not shown)");
	expect_error("name x\nnope=hunter2\n", "d.conf:2: not a 'key value' line (content not "
	                                       "shown)");
	expect_error("root:$y$j9T$secrethash:19000:0:99999:7:::\n",
	             "d.conf:1: not a 'key value' line (content not shown)");
}

static void test_dump_masks_and_reads_back(void **state)
{
	char err[CONFTAB_ERROR_MAX], path[] = "/tmp/conftab-XXXXXX";
	struct conftab_parser p = { .name = "dump", .err = err, .errsz = sizeof(err) };
	struct demo d, again;
	char *dump = NULL, *text = NULL;
	size_t len = 0;
	FILE *f;
	int fd;

	(void)state;
	assert_int_equal(parse("name n\ntoken hunter2\ntimeout 2m\ncolor green\n", &d, err), 0);
	f = open_memstream(&dump, &len);
	assert_int_equal(conftab_dump(&demo, &d, f), 0);
	fclose(f);
	assert_null(strstr(dump, "hunter2"));
	assert_non_null(strstr(dump, "token ********\n"));
	assert_non_null(strstr(dump, "timeout 2m\n"));
	assert_non_null(strstr(dump, "topics a,b,c\n"));
	assert_non_null(strstr(dump, "color green\n"));
	assert_non_null(strstr(dump, "level notice\n"));

	/* an empty secret is shown as empty (nothing to hide), so the dump reads back as is */
	memset(d.token, 0, sizeof(d.token));
	free(dump);
	dump = NULL;
	f = open_memstream(&dump, &len);
	assert_int_equal(conftab_dump(&demo, &d, f), 0);
	fclose(f);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, dump, len), (ssize_t)len);
	close(fd);
	assert_int_equal(conftab_read_file(&p, path, &text, &len), 0);
	memset(&again, 0, sizeof(again));
	assert_int_equal(conftab_parse(&demo, &p, text, len, &again), 0);
	assert_memory_equal(&again, &d, sizeof(d));
	free(text);
	free(dump);
	unlink(path);

	p.name = "/nonexistent/d.conf";
	assert_int_equal(conftab_read_file(&p, p.name, &text, &len), -ENOENT);
	assert_string_equal(err, "/nonexistent/d.conf: cannot read: No such file or directory");
	p.name = "/tmp";
	assert_int_equal(conftab_read_file(&p, p.name, &text, &len), -EINVAL);
	assert_non_null(strstr(err, "/tmp: not a regular file"));

	/* a FIFO is refused at once, not read (which would wait for a writer forever) */
	assert_int_equal(mkfifo(path, 0600), 0);
	p.name = path;
	assert_int_equal(conftab_read_file(&p, p.name, &text, &len), -EINVAL);
	assert_non_null(strstr(err, "not a regular file"));
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_and_values),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_dump_masks_and_reads_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
