/* SPDX-License-Identifier: MIT */
/* Placeholder until the embedded UI lands: one page saying so. */
#include "ui.h"

#include <string.h>

static const unsigned char placeholder[] =
        "<!doctype html><title>cradle</title><p>The cradle dashboard UI is not built yet.</p>";

static const struct ui_asset assets[] = {
	{ "/", placeholder, sizeof(placeholder) - 1, "text/html; charset=utf-8" },
};

const struct ui_asset *ui_asset_find(const char *path)
{
	for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++)
		if (strcmp(assets[i].path, path) == 0)
			return &assets[i];
	return NULL;
}
