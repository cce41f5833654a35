/* SPDX-License-Identifier: MIT */
/*
 * send: the `cradle-agent send` subcommand (also installed as `cradle-send`), a command-line
 * client that sends one command to an agent through the broker and follows its results until a
 * final state (for admins without the dashboard, and for tests), over the client library
 * (client.h). Documented in README.md ("Sending a command from the shell").
 */
#ifndef CRADLE_SEND_H
#define CRADLE_SEND_H

/*
 * argv[0] is the subcommand name ("send"); argv is borrowed. Prints one line per result on
 * stdout, diagnostics on stderr. Returns the process exit status: 0 succeeded, 1 failed or
 * rejected, 2 timeout, usage or broker error. Call from the main thread only (it runs its own
 * event loop and uses getopt).
 */
int send_main(int argc, char **argv);

#endif
