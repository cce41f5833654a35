/* SPDX-License-Identifier: MIT */
/* selfpath: see selfpath.h. */
#include "selfpath.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef CRADLE_LIBEXECDIR
# error "CRADLE_LIBEXECDIR must be defined (common/CMakeLists.txt)"
#endif

int selfpath_sibling(char *buf, size_t size, const char *name)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash = NULL;
	int w;

	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
	}
	if (slash) {
		*slash = '\0';
		w = snprintf(buf, size, "%s/%s", self, name);
		if (w < 0 || (size_t)w >= size)
			return -ENAMETOOLONG;
		if (access(buf, F_OK) == 0)
			return 0;
	}
	/* installed: the helpers are not next to /usr/sbin/cradle-agent */
	w = snprintf(buf, size, "%s/%s", CRADLE_LIBEXECDIR, name);
	return (w < 0 || (size_t)w >= size) ? -ENAMETOOLONG : 0;
}
