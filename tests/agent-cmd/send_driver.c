/* SPDX-License-Identifier: MIT */
/*
 * Test driver for the send client: runs send_main() as `cradle-agent send` would, so the
 * integration test does not depend on agent/main.c's dispatcher existing yet.
 */
#include "log.h"
#include "send.h"

int main(int argc, char **argv)
{
	log_init("cradle-agent", LOG_LEVEL_NOTICE);
	return send_main(argc, argv);
}
