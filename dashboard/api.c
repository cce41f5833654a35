/* SPDX-License-Identifier: MIT */
/* Placeholder until the API lands: no routes. */
#include "http.h"

const struct http_route api_routes[] = {
	{ NULL, NULL, AUTH_ADMIN, NULL },
};
const size_t api_n_routes = 0;
