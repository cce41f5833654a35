/* SPDX-License-Identifier: MIT */
/* ui: the embedded asset table — page routes, aliases, Chart.js, and that every file a page or
 * script refers to is in the table (a missing one would be a 404 in the browser only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ui.h"

static const char *PAGES[] = {
	"/login", "/overview", "/devices", "/devices/x", "/kiosk", "/alerts"
};

static void test_pages(void **state)
{
	const struct ui_asset *a;

	(void)state;
	for (size_t i = 0; i < sizeof(PAGES) / sizeof(PAGES[0]); i++) {
		a = ui_asset_find(PAGES[i]);
		assert_non_null(a);
		assert_string_equal(a->content_type, "text/html; charset=utf-8");
		assert_non_null(strstr((const char *)a->data, "<!doctype html>"));
	}
	assert_ptr_equal(ui_asset_find("/"), ui_asset_find("/overview"));
	a = ui_asset_find("/devices/00008110-001A2B3C4D5E801E");
	assert_ptr_equal(a, ui_asset_find("/devices/x"));
	assert_non_null(strstr((const char *)a->data, "/assets/device.js"));
	assert_ptr_not_equal(ui_asset_find("/devices"), a);
}

static void test_unknown(void **state)
{
	(void)state;
	assert_null(ui_asset_find(NULL));
	assert_null(ui_asset_find(""));
	assert_null(ui_asset_find("/nope"));
	assert_null(ui_asset_find("/assets/nope.js"));
	assert_null(ui_asset_find("/devices/"));
	assert_null(ui_asset_find("/devices/a/b"));
	assert_null(ui_asset_find("/device")); /* only with a UDID */
	assert_null(ui_asset_find("/overview/"));
	assert_null(ui_asset_find("/api/v1/devices"));
}

static void test_chartjs(void **state)
{
	const struct ui_asset *a = ui_asset_find("/assets/chart.min.js");

	(void)state;
	assert_non_null(a);
	assert_true(a->len > 100000);
	assert_string_equal(a->content_type, "text/javascript; charset=utf-8");
	assert_non_null(strstr((const char *)a->data, "Chart.js v"));
}

static void test_table(void **state)
{
	(void)state;
	assert_true(ui_n_assets >= 12);
	for (size_t i = 0; i < ui_n_assets; i++) {
		const struct ui_asset *a = &ui_assets[i];

		assert_int_equal(a->path[0], '/');
		assert_non_null(a->content_type);
		assert_true(a->len > 0);
		/* the generator appends a NUL after the data, so text can be searched as a string
		 */
		assert_int_equal(a->data[a->len], 0);
		assert_int_equal(strlen((const char *)a->data), a->len);
		if (strcmp(a->path, "/device") != 0)
			assert_ptr_equal(ui_asset_find(a->path), a);
	}
}

/* Every "/assets/x" in our files and every "./x.js" module import names a file in the table;
 * none loads anything from another host (the dashboard works offline). */
static void test_references(void **state)
{
	(void)state;
	for (size_t i = 0; i < ui_n_assets; i++) {
		const struct ui_asset *a = &ui_assets[i];
		const char *text = (const char *)a->data;
		const char *p;
		char ref[128];

		if (strcmp(a->path, "/assets/chart.min.js") == 0)
			continue;
		/* (an SVG's xmlns is a name, not a download) */
		if (strcmp(a->content_type, "image/svg+xml") != 0)
			assert_null(strstr(text, "http://"));
		assert_null(strstr(text, "https://"));
		for (p = strstr(text, "/assets/"); p; p = strstr(p + 1, "/assets/")) {
			size_t n = strcspn(p, "\"' )?#");

			assert_true(n < sizeof(ref));
			memcpy(ref, p, n);
			ref[n] = '\0';
			if (strcmp(ref, "/assets/") == 0)
				continue; /* a comment naming the folder */
			if (!ui_asset_find(ref))
				fail_msg("%s refers to %s, which is not embedded", a->path, ref);
		}
		for (p = strstr(text, "from './"); p; p = strstr(p + 1, "from './")) {
			size_t n = strcspn(p + 8, "'");

			assert_true(n + 9 < sizeof(ref));
			snprintf(ref, sizeof(ref), "/assets/%.*s", (int)n, p + 8);
			if (!ui_asset_find(ref))
				fail_msg("%s imports %s, which is not embedded", a->path, ref);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pages),      cmocka_unit_test(test_unknown),
		cmocka_unit_test(test_chartjs),    cmocka_unit_test(test_table),
		cmocka_unit_test(test_references),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
