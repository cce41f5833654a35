/* SPDX-License-Identifier: MIT */
/*
 * daemon: cradle-agent's long-running mode. Wires discovery, probes, diagnosis, the outbox,
 * MQTT and the command channel together on one event loop; owns the device table.
 *
 * Startup order (each step depends on the previous): config -> state dir -> statefile (new
 * session) -> outbox -> command table (unfinished commands of the last run become failed
 * agent_restarted) -> signals (blocked before any library starts threads) -> MQTT -> device
 * discovery. Shutdown on SIGTERM/SIGINT: stop discovery and actions, publish online:false,
 * flush, disconnect, exit 0.
 */
#ifndef CRADLE_DAEMON_H
#define CRADLE_DAEMON_H

#include "config.h"

struct daemon_paths {
	const char *probe_helper;  /* cradle-agent-probe */
	const char *action_helper; /* cradle-agent-action */
	const char *backup_tool;   /* idevicebackup2 */
};

/* Runs until SIGTERM/SIGINT. Returns the process exit status. cfg and paths borrowed. */
int daemon_run(const struct agent_config *cfg, const struct daemon_paths *paths);

/* The daemon's command line (-c FILE, --test-config, --dump-config, --agent-id, --broker,
 * --state-dir); argv[0] is the program. Returns the exit status. */
int daemon_main(int argc, char **argv);

#endif
