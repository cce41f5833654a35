/* SPDX-License-Identifier: MIT */
/*
 * diagnosis_doc_test: docs/diagnosis.md is the one place that defines the diagnosis vocabulary,
 * so it must say exactly what diagnose() emits: a table row for every cause code whose
 * remediation and complexity cells equal diagnose_cause_remediation() and
 * diagnose_cause_complexity(), a status row for every status, and the default syslog patterns
 * of diagnose_config_defaults(), in order.
 *
 * usage: test-docs-diagnosis PATH/docs/diagnosis.md
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "diagnose.h"

#define DOC_LINE_MAX 2048
#define DOC_CELLS    8

static const char *doc_path;
static char *doc;

static char *read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0;

	if (!f)
		return NULL;
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/*
 * Copies the first line that starts with prefix in the section that starts with the line
 * heading into line; false when there is none.
 */
static bool find_line(const char *heading, const char *prefix, char *line, size_t size)
{
	size_t n = strlen(prefix);
	const char *p = strstr(doc, heading);

	while (p && *p) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);

		if (p != doc && strncmp(p, "## ", 3) == 0 && strncmp(p, heading, strlen(heading)))
			return false; /* the next section */
		if (len >= n && strncmp(p, prefix, n) == 0) {
			snprintf(line, size, "%.*s", (int)len, p);
			return true;
		}
		p = end ? end + 1 : NULL;
	}
	return false;
}

/* Splits a Markdown table row into trimmed cells (in place). Returns the number of cells. */
static int split_row(char *line, char *cells[], int max)
{
	int n = 0;
	char *p = line, *bar;

	if (*p == '|')
		p++;
	while (n < max && (bar = strchr(p, '|'))) {
		char *s = p, *e = bar;

		while (*s == ' ')
			s++;
		while (e > s && e[-1] == ' ')
			e--;
		*e = '\0';
		cells[n++] = s;
		p = bar + 1;
	}
	return n;
}

static void test_every_cause_has_its_row(void **state)
{
	(void)state;
	for (int c = 0; c < _CAUSE_MAX; c++) {
		char prefix[64], line[DOC_LINE_MAX], *cells[DOC_CELLS];
		int n;

		snprintf(prefix, sizeof(prefix), "| `%s` |", diagnose_cause_code(c));
		if (!find_line("## Cause codes", prefix, line, sizeof(line)))
			fail_msg("%s: no table row for cause '%s'", doc_path,
			         diagnose_cause_code(c));
		n = split_row(line, cells, DOC_CELLS);
		/* | code | meaning | reported when | remediation | complexity | */
		assert_int_equal(n, 5);
		if (strcmp(cells[3], diagnose_cause_remediation(c)) != 0)
			fail_msg("%s: remediation of '%s' is \"%s\", diagnose() says \"%s\"",
			         doc_path, diagnose_cause_code(c), cells[3],
			         diagnose_cause_remediation(c));
		if (strcmp(cells[4], diagnose_cause_complexity(c)) != 0)
			fail_msg("%s: complexity of '%s' is \"%s\", diagnose() says \"%s\"",
			         doc_path, diagnose_cause_code(c), cells[4],
			         diagnose_cause_complexity(c));
	}
}

static void test_every_status_has_its_row(void **state)
{
	(void)state;
	for (int s = 0; s < _DIAGNOSE_STATUS_MAX; s++) {
		char prefix[64], line[DOC_LINE_MAX];

		snprintf(prefix, sizeof(prefix), "| `%s` |", diagnose_status_name(s));
		if (!find_line("## Status", prefix, line, sizeof(line)))
			fail_msg("%s: no table row for status '%s'", doc_path,
			         diagnose_status_name(s));
	}
}

static void check_patterns(const char *key, const struct diagnose_patterns *p)
{
	char prefix[64], line[DOC_LINE_MAX], want[DOC_LINE_MAX], *cells[DOC_CELLS];
	size_t off = 0;

	snprintf(prefix, sizeof(prefix), "| `%s` |", key);
	if (!find_line("## Syslog evidence", prefix, line, sizeof(line)))
		fail_msg("%s: no default-pattern row for '%s'", doc_path, key);
	assert_int_equal(split_row(line, cells, DOC_CELLS), 2);
	want[0] = '\0';
	for (int i = 0; i < p->n; i++)
		off += (size_t)snprintf(want + off, sizeof(want) - off, "%s`%s`", i ? ", " : "",
		                        p->text[i]);
	if (strcmp(cells[1], want) != 0)
		fail_msg("%s: defaults of '%s' are \"%s\", diagnose_config_defaults() has \"%s\"",
		         doc_path, key, cells[1], want);
}

static void test_default_patterns(void **state)
{
	struct diagnose_config cfg;

	(void)state;
	diagnose_config_defaults(&cfg);
	check_patterns("pattern_storage_full", &cfg.storage_full);
	check_patterns("pattern_network", &cfg.network);
	check_patterns("pattern_apple_id", &cfg.apple_id);
	check_patterns("pattern_attempt_start", &cfg.attempt_start);
	check_patterns("pattern_attempt_ok", &cfg.attempt_ok);
	check_patterns("pattern_attempt_failed", &cfg.attempt_failed);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_cause_has_its_row),
		cmocka_unit_test(test_every_status_has_its_row),
		cmocka_unit_test(test_default_patterns),
	};
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: %s docs/diagnosis.md\n", argv[0]);
		return 2;
	}
	doc_path = argv[1];
	doc = read_all(doc_path);
	if (!doc) {
		fprintf(stderr, "%s: cannot read it\n", doc_path);
		return 1;
	}
	r = cmocka_run_group_tests(tests, NULL, NULL);
	free(doc);
	return r;
}
