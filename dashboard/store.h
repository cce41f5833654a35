/* SPDX-License-Identifier: MIT */
/*
 * store: the dashboard's SQLite database (one file, WAL). A struct store is one connection and
 * belongs to one thread at a time: the service's loop thread owns the writer (ingest), each
 * HTTP worker takes a connection of its own from a pool (query.h, auth.h), and the CLI opens
 * one for `user add` and the like. WAL lets readers run while the writer commits; every
 * connection waits (busy timeout) rather than failing when another one holds the write lock.
 *
 * The schema is store_schema.c's numbered migrations; store_open() brings a file up to date
 * (refusing a file newer than this program knows).
 */
#ifndef CRADLE_DASH_STORE_H
#define CRADLE_DASH_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct sqlite3;
struct store;

struct store_migration {
	int version;
	const char *sql;
};
extern const struct store_migration store_migrations[];
extern const size_t store_n_migrations;

/*
 * Opens (creating it, and its directory's file, when missing) the database at path, sets WAL,
 * foreign keys and the busy timeout, applies pending migrations, and registers judge.h's SQL
 * function with cfg (borrowed; must outlive the store). 0, or -errno with a message in err.
 */
int store_open(const char *path, const struct dash_config *cfg, struct store **ret, char *err,
               size_t errsz);
/* NULL-safe; returns NULL. */
struct store *store_close(struct store *s);

/* The connection, for the modules that run their own statements (query.c, auth.c, ...). */
struct sqlite3 *store_db(struct store *s);

/* Transactions. begin is BEGIN IMMEDIATE (a writer); 0 or -EIO (logged). */
int store_begin(struct store *s);
int store_commit(struct store *s);
void store_rollback(struct store *s);

/* Adds n to the persistent counter name (counters table). 0 or -EIO. */
int store_counter_add(struct store *s, const char *name, int64_t n);
/* The counter's value (0 when never added to). 0 or -EIO. */
int store_counter_get(struct store *s, const char *name, int64_t *ret);

/* Retention: deletes history rows older than before_ms (Unix ms). 0 or -EIO. */
int store_retention(struct store *s, int64_t before_ms, int64_t *ret_deleted);

/* Writes the samples row for now (Unix s): phones by the judge's status. 0 or -EIO. */
int store_sample(struct store *s, int64_t now);

/*
 * Indexes up to max phones still pending for the search index (migration 6), oldest first, in
 * a transaction of its own (none may be open); *ret_left: how many stay pending. 0 or -EIO.
 */
int store_search_index(struct store *s, int64_t max, int64_t *ret_left);

#endif
