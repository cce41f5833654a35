/* SPDX-License-Identifier: MIT */
/* Placeholder until commands land: nothing is sent. */
#include "cmdsend.h"

#include <errno.h>

int cmdsend_new(struct loop *loop, const struct dash_config *cfg, struct cmdsend **ret)
{
	(void)loop;
	(void)cfg;
	*ret = NULL;
	return -ENOSYS;
}

struct cmdsend *cmdsend_free(struct cmdsend *c)
{
	(void)c;
	return NULL;
}

int cmdsend_submit(struct cmdsend *c, const struct command *cmd, int ttl_s)
{
	(void)c;
	(void)cmd;
	(void)ttl_s;
	return -ENOTCONN;
}

int cmdsend_key_public(const struct dash_config *cfg, FILE *out)
{
	(void)cfg;
	(void)out;
	return -ENOSYS;
}
