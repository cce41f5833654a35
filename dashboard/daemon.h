/* SPDX-License-Identifier: MIT */
/*
 * daemon: the running service. One loop thread owns the store's writer connection, ingest and
 * the command sender; libmicrohttpd's threads serve HTTP. Periodic jobs on the loop: history
 * retention (hourly) and a `samples` row (every 5 minutes). SIGTERM and SIGINT stop ingest,
 * commit what it received, stop HTTP and return 0.
 */
#ifndef CRADLE_DASH_DAEMON_H
#define CRADLE_DASH_DAEMON_H

struct dash_config;

#define DAEMON_RETENTION_MS (3600 * 1000)
#define DAEMON_SAMPLE_MS    (300 * 1000)

/* Runs until a stop signal. 0 on a clean stop, -errno when it could not start (logged). */
int daemon_run(const struct dash_config *cfg);

#endif
