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

#include <dirent.h>
#include <math.h> /* isnan, isinf: macros, no libm */
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

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

/* name = prefix + suffix, for the process's families */
static void pname(char *out, size_t size, const char *prefix, const char *suffix)
{
	snprintf(out, size, "%s%s", prefix, suffix);
}

void promtext_process(FILE *f, const char *prefix)
{
	struct rusage ru;
	char name[128];
	FILE *statm;
	DIR *d;
	unsigned long long pages = 0, rss = 0, fds = 0;
	long page = sysconf(_SC_PAGESIZE);

	if (getrusage(RUSAGE_SELF, &ru) == 0) {
		pname(name, sizeof(name), prefix, "cpu_seconds_total");
		promtext_family(f, name, "counter",
		                "CPU time used by the process (user and system).");
		promtext_sample(f, name,
		                (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		                        (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
		                NULL);
	}
	statm = fopen("/proc/self/statm", "re");
	if (statm && fscanf(statm, "%llu %llu", &pages, &rss) == 2 && page > 0) {
		pname(name, sizeof(name), prefix, "resident_memory_bytes");
		promtext_family(f, name, "gauge", "Resident memory of the process.");
		promtext_sample_u64(f, name, rss * (unsigned long long)page, NULL);
	}
	if (statm)
		fclose(statm);
	d = opendir("/proc/self/fd");
	if (d) {
		for (struct dirent *e; (e = readdir(d)) != NULL;)
			fds += e->d_name[0] != '.';
		closedir(d);
		pname(name, sizeof(name), prefix, "open_fds");
		promtext_family(f, name, "gauge", "Open file descriptors of the process.");
		promtext_sample_u64(f, name, fds - 1, NULL); /* less the one reading the list */
	}
}
