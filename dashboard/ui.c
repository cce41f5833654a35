/* SPDX-License-Identifier: MIT */
/*
 * ui: looks request paths up in the asset table that ui/assets.cmake generates at build time.
 * Two paths are aliases rather than files: / is the overview, and /devices/{udid} is the one
 * device page for every phone (its script takes the UDID from the URL), so links stay readable
 * and bookmarkable without a route per phone.
 */
#include "ui.h"

#include <string.h>

static const struct ui_asset *ui_exact(const char *path)
{
	for (size_t i = 0; i < ui_n_assets; i++)
		if (strcmp(ui_assets[i].path, path) == 0)
			return &ui_assets[i];
	return NULL;
}

/* /devices/{udid}: exactly one non-empty segment after /devices/. */
static int ui_is_device_page(const char *path)
{
	static const char prefix[] = "/devices/";
	const char *udid;

	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0)
		return 0;
	udid = path + sizeof(prefix) - 1;
	return udid[0] != '\0' && strchr(udid, '/') == NULL;
}

const struct ui_asset *ui_asset_find(const char *path)
{
	if (!path)
		return NULL;
	if (strcmp(path, "/") == 0)
		return ui_exact("/overview");
	if (ui_is_device_page(path))
		return ui_exact("/device");
	if (strcmp(path, "/device") == 0)
		return NULL; /* the device page needs a UDID: only /devices/{udid} */
	return ui_exact(path);
}
