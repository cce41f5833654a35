/* SPDX-License-Identifier: MIT */
/*
 * selfpath: where a program finds its helper programs (cradle-agent's probe and action
 * helpers). They are installed next to its own executable (the build tree and /usr/bin alike),
 * so the path comes from /proc/self/exe rather than $PATH, which a service's environment may
 * not have.
 */
#ifndef CRADLE_SELFPATH_H
#define CRADLE_SELFPATH_H

#include <stddef.h>

/* Writes "<dir of our executable>/name" (or just name when that cannot be read) into buf.
 * 0 or -ENAMETOOLONG. */
int selfpath_sibling(char *buf, size_t size, const char *name);

#endif
