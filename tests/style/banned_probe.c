/* SPDX-License-Identifier: MIT */
/*
 * Must NOT compile: one use of each function common/banned.h poisons, one per function so the
 * compiler reports every one (it names an undeclared identifier once per function).
 * style_banned.sh builds it through the project's own flags and checks each name is reported.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void probe_strcpy(char *d);
void probe_strcat(char *d);
void probe_strncpy(char *d);
void probe_strncat(char *d);
void probe_sprintf(char *d);
void probe_vsprintf(char *d, va_list ap);
void probe_strtok(char *d);
void probe_gmtime(const time_t *t);
void probe_localtime(const time_t *t);
void probe_ctime(const time_t *t);
void probe_asctime(const struct tm *tm);
void probe_mktemp(char *d);

void probe_strcpy(char *d)
{
	strcpy(d, "x");
}

void probe_strcat(char *d)
{
	strcat(d, "x");
}

void probe_strncpy(char *d)
{
	strncpy(d, "x", 2);
}

void probe_strncat(char *d)
{
	strncat(d, "x", 2);
}

void probe_sprintf(char *d)
{
	sprintf(d, "%d", 1);
}

void probe_vsprintf(char *d, va_list ap)
{
	vsprintf(d, "%d", ap);
}

void probe_strtok(char *d)
{
	(void)strtok(d, ",");
}

void probe_gmtime(const time_t *t)
{
	(void)gmtime(t);
}

void probe_localtime(const time_t *t)
{
	(void)localtime(t);
}

void probe_ctime(const time_t *t)
{
	(void)ctime(t);
}

void probe_asctime(const struct tm *tm)
{
	(void)asctime(tm);
}

void probe_mktemp(char *d)
{
	(void)mktemp(d);
}
