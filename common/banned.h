/* SPDX-License-Identifier: MIT */
/*
 * banned: C library functions this project does not use, poisoned at compile time.
 *
 * cmake/Warnings.cmake force-includes this header (-include) into every source file of every
 * target that links project_warnings, so a use is a compile error that names the function:
 * "'sorry_sprintf_is_a_banned_function' undeclared". The system headers that declare the
 * functions are included first, so their own declarations are seen before the macros exist.
 *
 * Why each is banned, and what to use instead:
 *  - strcpy, strcat, strncpy, strncat, sprintf, vsprintf: no bound, or a bound that silently
 *    truncates without a terminating NUL (strncpy) or is easy to get wrong (strncat counts the
 *    space left, not the buffer size). Use snprintf / vsnprintf and check for truncation, or
 *    memcpy with a length you have checked.
 *  - gets: no bound at all (removed from C11). Use fgets or getline.
 *  - strtok: hidden static state, not thread-safe (Paho and libusbmuxd call us from their own
 *    threads). Use strtok_r or strsep.
 *  - asctime, ctime, gmtime, localtime and their _r variants for asctime/ctime: static result
 *    buffers (not thread-safe) or an unbounded output buffer. Use gmtime_r / localtime_r and
 *    strftime, or common/timefmt.h.
 *  - tmpnam, tempnam, mktemp: the name can be taken before it is opened. Use mkstemp, mkdtemp.
 *
 * Uses that are still to be fixed are listed, file by file, in cmake/Banned.cmake: it defines
 * CRADLE_BANNED_ALLOW_STRCPY for those files only. The list only shrinks.
 */
#ifndef CRADLE_BANNED_H
#define CRADLE_BANNED_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BANNED(func) sorry_##func##_is_a_banned_function

#ifndef CRADLE_BANNED_ALLOW_STRCPY
# undef strcpy
# define strcpy(x, y) BANNED(strcpy)
#endif
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef strncat
#define strncat(x, y, n) BANNED(strncat)

#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)

#undef gets
#define gets(x) BANNED(gets)
#undef strtok
#define strtok(x, y) BANNED(strtok)

#undef asctime
#define asctime(t) BANNED(asctime)
#undef ctime
#define ctime(t) BANNED(ctime)
#undef gmtime
#define gmtime(t) BANNED(gmtime)
#undef localtime
#define localtime(t) BANNED(localtime)
#undef asctime_r
#define asctime_r(t, buf) BANNED(asctime_r)
#undef ctime_r
#define ctime_r(t, buf) BANNED(ctime_r)

#undef tmpnam
#define tmpnam(x) BANNED(tmpnam)
#undef tempnam
#define tempnam(x, y) BANNED(tempnam)
#undef mktemp
#define mktemp(x) BANNED(mktemp)

#endif
