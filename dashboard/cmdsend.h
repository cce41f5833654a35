/* SPDX-License-Identifier: MIT */
/*
 * cmdsend: sends single-phone commands from the API to the agents, through the command client
 * (client/client.h) on the service's loop, signed with the dashboard's own Ed25519 key
 * (cfg->command_key, created on first use). Results are not followed here: ingest records every
 * result of a command the store knows (commands table), also those that arrive after a restart.
 *
 * Threading: cmdsend_new/free on the loop thread; cmdsend_submit from any thread (HTTP workers)
 * hands the command to the loop thread.
 */
#ifndef CRADLE_DASH_CMDSEND_H
#define CRADLE_DASH_CMDSEND_H

#include <stdio.h>

struct command;
struct dash_config;
struct loop;
struct cmdsend;

/* Loads or creates the signing key and starts the client. 0 or -errno (logged). */
int cmdsend_new(struct loop *loop, const struct dash_config *cfg, struct cmdsend **ret);
/* Loop thread. NULL-safe; returns NULL. */
struct cmdsend *cmdsend_free(struct cmdsend *c);

/*
 * Any thread: queues cmd (copied; fully set, as for client_send()) for publishing with message
 * expiry ttl_s. The caller has stored the command first. 0, -ENOTCONN (no broker connection
 * now), -ENOBUFS (too many waiting) or -ENOMEM.
 */
int cmdsend_submit(struct cmdsend *c, const struct command *cmd, int ttl_s);

/* `cradle-dashboard key public`: prints the public key as agents' command_keys takes it,
 * creating the key pair when missing. 0 or -errno (message on stderr). */
int cmdsend_key_public(const struct dash_config *cfg, FILE *out);

#endif
