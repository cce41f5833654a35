/* SPDX-License-Identifier: MIT */
/*
 * daemon: cradle-agent's long-running mode. Wires discovery, the device registry (registry.h),
 * the publisher (publish.h), the outbox, MQTT, the command channel and the actions together on
 * one event loop, and handles signals and shutdown. Loop thread only.
 *
 * Startup order (each step depends on the previous): config -> state dir -> statefile (new
 * session) -> signals (blocked before any library starts threads) -> outbox -> publisher ->
 * agent events (agentev.h) ->
 * device registry -> command table (unfinished commands of the last run become failed
 * agent_restarted) -> actions -> MQTT -> device discovery. Shutdown on SIGTERM/SIGINT: stop
 * discovery and actions, report pending refusal counts, publish online:false, flush,
 * disconnect, exit 0. On every (re)connect: birth, meta, the command subscription, then every
 * known phone's state again, paced (registry_republish()).
 */
#ifndef CRADLE_DAEMON_H
#define CRADLE_DAEMON_H

#include "config.h"

struct daemon_paths {
	const char *probe_helper;  /* cradle-agent-probe */
	const char *action_helper; /* cradle-agent-action */
	const char *watch_helper;  /* cradle-agent-watch (evidence capture) */
	const char *backup_tool;   /* idevicebackup2 */
};

/* Runs until SIGTERM/SIGINT. Returns the process exit status. cfg and paths borrowed. */
int daemon_run(const struct agent_config *cfg, const struct daemon_paths *paths);

#endif
