/* SPDX-License-Identifier: MIT */
/* macro: the few preprocessor helpers every module may use. */
#ifndef CRADLE_MACRO_H
#define CRADLE_MACRO_H

#include <stddef.h>

/* Number of elements of an array (not of a pointer: the compiler cannot check that here). */
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
