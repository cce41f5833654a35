/* SPDX-License-Identifier: MIT */
/* cradle-dashboard: placeholder until the service lands. */
#include <stdio.h>

int main(void)
{
	fputs("cradle-dashboard: not built yet\n", stderr);
	return 1;
}
