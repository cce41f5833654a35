/* SPDX-License-Identifier: MIT */
/*
 * ui: the web UI's files (HTML, CSS, JS, Chart.js), compiled into the binary at build time
 * (ui/assets.cmake generates the table from dashboard/ui/ and Debian's libjs-chart.js), so the
 * dashboard needs no CDN, no files on disk and no build step at run time. Pages hold no data:
 * their scripts fetch it from /api/v1 with the session cookie and go to /login on a 401.
 */
#ifndef CRADLE_DASH_UI_H
#define CRADLE_DASH_UI_H

#include <stddef.h>

struct ui_asset {
	const char *path; /* request path, e.g. "/", "/devices", "/assets/app.js" */
	const unsigned char *data;
	size_t len;
	const char *content_type; /* e.g. "text/html; charset=utf-8" */
};

/*
 * The asset served at path (a request path without query string), or NULL: 404. Pages are at
 * /login, /overview (also /), /devices, /kiosk and /devices/{udid} (the device page, which reads
 * the UDID from its own URL); their scripts, the stylesheet and Chart.js are under /assets/.
 */
const struct ui_asset *ui_asset_find(const char *path);

/* The generated table (build dir ui_assets.c, written by ui/assets.cmake); ui.c only. */
extern const struct ui_asset ui_assets[];
extern const size_t ui_n_assets;

#endif
