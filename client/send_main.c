/* SPDX-License-Identifier: MIT */
/*
 * cradle-send: the same client as `cradle-agent send`, for hosts that send commands but run no
 * agent. Its options, output and exit status are those of send_main() (README.md).
 */
#include "log.h"
#include "send.h"

int main(int argc, char **argv)
{
	log_init("cradle-send", LOG_LEVEL_NOTICE);
	return send_main(argc, argv);
}
