/* SPDX-License-Identifier: MIT */
/*
 * promtext: see promtext.h. The grammar (Prometheus "Exposition formats", text format 0.0.4):
 *
 *   # HELP <name> <text with \\ and \n escaped>
 *   # TYPE <name> counter|gauge|histogram|summary|untyped
 *   <name>[{<label>="<value with \\, \" and \n escaped>",...}] <value>
 *
 * Writes go to a stdio stream; the caller checks ferror() once at the end.
 */
#include "promtext.h"

#include <math.h> /* isnan, isinf: macros, no libm */
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void put_escaped(FILE *f, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			fputs("\\\\", f);
		else if (*s == '\n')
			fputs("\\n", f);
		else if (quote && *s == '"')
			fputs("\\\"", f);
		else
			fputc(*s, f);
	}
}

void promtext_family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s ", name);
	put_escaped(f, help, false);
	fprintf(f, "\n# TYPE %s %s\n", name, type);
}

/* name{labels[,extra_name="extra_value"]} without the value */
static void put_head(FILE *f, const char *name, const char *suffix, va_list ap,
                     const char *extra_name, const char *extra_value)
{
	const char *ln, *lv;
	bool first = true;

	fprintf(f, "%s%s", name, suffix);
	while ((ln = va_arg(ap, const char *)) != NULL) {
		lv = va_arg(ap, const char *);
		fprintf(f, "%s%s=\"", first ? "{" : ",", ln);
		put_escaped(f, lv ? lv : "", true);
		fputc('"', f);
		first = false;
	}
	if (extra_name) {
		fprintf(f, "%s%s=\"%s\"", first ? "{" : ",", extra_name, extra_value);
		first = false;
	}
	if (!first)
		fputc('}', f);
}

/* the shortest %g spelling that reads back as v (0.005, not 0.0050000000000000001) */
static void fmt_double(char *out, size_t size, double v)
{
	for (int p = 1; p <= 17; p++) {
		snprintf(out, size, "%.*g", p, v);
		if (strtod(out, NULL) == v)
			return;
	}
}

static void put_value(FILE *f, double v)
{
	char num[32];

	if (isnan(v))
		fputs(" NaN\n", f);
	else if (isinf(v))
		fputs(v > 0 ? " +Inf\n" : " -Inf\n", f);
	else if (v > -9.0e15 && v < 9.0e15 && v == (double)(long long)v)
		fprintf(f, " %.0f\n", v);
	else {
		fmt_double(num, sizeof(num), v);
		fprintf(f, " %s\n", num);
	}
}

void promtext_sample(FILE *f, const char *name, double value, ...)
{
	va_list ap;

	va_start(ap, value);
	put_head(f, name, "", ap, NULL, NULL);
	va_end(ap);
	put_value(f, value);
}

void promtext_sample_u64(FILE *f, const char *name, uint64_t value, ...)
{
	va_list ap;

	va_start(ap, value);
	put_head(f, name, "", ap, NULL, NULL);
	va_end(ap);
	fprintf(f, " %llu\n", (unsigned long long)value);
}

void promtext_hist_init(struct promtext_hist *h, const double *bounds, size_t n)
{
	h->bounds = bounds;
	h->n = n < PROMTEXT_BUCKETS_MAX ? n : PROMTEXT_BUCKETS_MAX;
	for (size_t i = 0; i <= PROMTEXT_BUCKETS_MAX; i++)
		atomic_init(&h->count[i], 0);
	atomic_init(&h->sum_micro, 0);
}

void promtext_hist_observe(struct promtext_hist *h, double v)
{
	size_t i = 0;

	if (!(v > 0)) /* negative, or NaN */
		v = 0;
	while (i < h->n && v > h->bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->count[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_micro, (uint_fast64_t)(v * 1e6 + 0.5),
	                          memory_order_relaxed);
}

void promtext_hist_write(FILE *f, const char *name, const struct promtext_hist *h, ...)
{
	uint64_t cum = 0;
	char le[32];
	va_list ap;

	for (size_t i = 0; i <= h->n; i++) {
		cum += atomic_load_explicit(&h->count[i], memory_order_relaxed);
		if (i < h->n)
			fmt_double(le, sizeof(le), h->bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		va_start(ap, h);
		put_head(f, name, "_bucket", ap, "le", le);
		va_end(ap);
		fprintf(f, " %llu\n", (unsigned long long)cum);
	}
	va_start(ap, h);
	put_head(f, name, "_sum", ap, NULL, NULL);
	va_end(ap);
	put_value(f, (double)atomic_load_explicit(&h->sum_micro, memory_order_relaxed) / 1e6);
	va_start(ap, h);
	put_head(f, name, "_count", ap, NULL, NULL);
	va_end(ap);
	fprintf(f, " %llu\n", (unsigned long long)cum);
}
