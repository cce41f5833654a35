/* SPDX-License-Identifier: MIT */
/*
 * selfpath: where a program finds its helper programs (cradle-agent's probe, action and watch
 * helpers). In the build tree they sit next to its own executable; installed, the daemon is in
 * /usr/sbin and the helpers in /usr/libexec/cradle (CRADLE_LIBEXECDIR, compiled in from the
 * install prefix). The path comes from /proc/self/exe rather than $PATH, which a service's
 * environment may not have.
 */
#ifndef CRADLE_SELFPATH_H
#define CRADLE_SELFPATH_H

#include <stddef.h>

/* Writes "<dir of our executable>/name" into buf when that file exists, else
 * "CRADLE_LIBEXECDIR/name" (also when our own path cannot be read). 0 or -ENAMETOOLONG. */
int selfpath_sibling(char *buf, size_t size, const char *name);

#endif
