/* SPDX-License-Identifier: MIT */
/* Tests of the Prometheus text format writer (common/promtext.c): the exact bytes of families,
 * samples with escaped labels, values, and histograms (cumulative, +Inf = _count, _sum). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "promtext.h"

struct page {
	char *buf;
	size_t len;
	FILE *f;
};

static void page_open(struct page *p)
{
	p->buf = NULL;
	p->len = 0;
	p->f = open_memstream(&p->buf, &p->len);
	assert_non_null(p->f);
}

static void page_check(struct page *p, const char *want)
{
	assert_int_equal(fclose(p->f), 0);
	assert_string_equal(p->buf, want);
	free(p->buf);
}

static void test_family_and_samples(void **state)
{
	struct page p;

	(void)state;
	page_open(&p);
	promtext_family(p.f, "x_total", "counter", "a \\ back\nslash");
	promtext_sample_u64(p.f, "x_total", 18446744073709551615ULL, NULL);
	promtext_sample(p.f, "x_total", 3, "a", "q\"uote", "b", "back\\slash\nnl", NULL);
	promtext_sample(p.f, "g", 0.25, "site", "", NULL);
	promtext_sample(p.f, "g", -2, NULL);
	promtext_sample(p.f, "g", 0.1, NULL);
	promtext_sample(p.f, "g", 1e300, NULL);
	promtext_sample(p.f, "g", INFINITY, NULL);
	promtext_sample(p.f, "g", -INFINITY, NULL);
	promtext_sample(p.f, "g", NAN, NULL);
	page_check(&p, "# HELP x_total a \\\\ back\\nslash\n"
	               "# TYPE x_total counter\n"
	               "x_total 18446744073709551615\n"
	               "x_total{a=\"q\\\"uote\",b=\"back\\\\slash\\nnl\"} 3\n"
	               "g{site=\"\"} 0.25\n"
	               "g -2\n"
	               "g 0.1\n"
	               "g 1e+300\n"
	               "g +Inf\n"
	               "g -Inf\n"
	               "g NaN\n");
}

static void test_histogram(void **state)
{
	static const double bounds[] = { 0.005, 0.1, 1 };
	struct promtext_hist h;
	struct page p;

	(void)state;
	promtext_hist_init(&h, bounds, 3);
	promtext_hist_observe(&h, 0.005); /* le is inclusive */
	promtext_hist_observe(&h, 0.05);
	promtext_hist_observe(&h, 0.5);
	promtext_hist_observe(&h, 7);
	promtext_hist_observe(&h, -1); /* counts as 0 */
	page_open(&p);
	promtext_hist_write(p.f, "d_seconds", &h, "code", "200", NULL);
	page_check(&p, "d_seconds_bucket{code=\"200\",le=\"0.005\"} 2\n"
	               "d_seconds_bucket{code=\"200\",le=\"0.1\"} 3\n"
	               "d_seconds_bucket{code=\"200\",le=\"1\"} 4\n"
	               "d_seconds_bucket{code=\"200\",le=\"+Inf\"} 5\n"
	               "d_seconds_sum{code=\"200\"} 7.555\n"
	               "d_seconds_count{code=\"200\"} 5\n");
	page_open(&p);
	promtext_hist_init(&h, bounds, 3);
	promtext_hist_write(p.f, "e", &h, NULL);
	page_check(&p, "e_bucket{le=\"0.005\"} 0\ne_bucket{le=\"0.1\"} 0\ne_bucket{le=\"1\"} 0\n"
	               "e_bucket{le=\"+Inf\"} 0\ne_sum 0\ne_count 0\n");
}

static void test_process(void **state)
{
	struct page p;
	unsigned long long rss = 0, fds = 0;
	const char *at;

	(void)state;
	page_open(&p);
	promtext_process(p.f, "t_");
	assert_int_equal(fclose(p.f), 0);
	assert_non_null(strstr(p.buf, "# TYPE t_cpu_seconds_total counter\nt_cpu_seconds_total "));
	at = strstr(p.buf, "\nt_resident_memory_bytes ");
	assert_non_null(at);
	assert_int_equal(sscanf(at, "\nt_resident_memory_bytes %llu", &rss), 1);
	assert_true(rss > 100 * 1024);
	at = strstr(p.buf, "\nt_open_fds ");
	assert_non_null(at);
	assert_int_equal(sscanf(at, "\nt_open_fds %llu", &fds), 1);
	assert_true(fds >= 3 && fds < 1000); /* stdin, stdout, stderr at least */
	free(p.buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_family_and_samples),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_process),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
