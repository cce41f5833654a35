/* SPDX-License-Identifier: MIT */
/* Placeholder until the web server lands. */
#include "http.h"

#include <errno.h>

int http_start(const struct http_services *svc, struct http **ret)
{
	(void)svc;
	*ret = NULL;
	return -ENOSYS;
}

struct http *http_stop(struct http *h)
{
	(void)h;
	return NULL;
}
