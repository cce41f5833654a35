/* SPDX-License-Identifier: MIT */
/*
 * auth: who is asking and what they may do. Users (UI login, password hashed with crypt(3):
 * yescrypt, sha512-crypt where yescrypt is missing), API tokens (shown once, stored as SHA-256),
 * UI sessions (cookie, CSRF token, expiry) and the login rate limit. Roles are ordered: a
 * higher role may do everything a lower one may.
 */
#ifndef CRADLE_DASH_AUTH_H
#define CRADLE_DASH_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conftab.h"

enum auth_role {
	AUTH_NONE,     /* anonymous: nothing of the API */
	AUTH_VIEWER,   /* read */
	AUTH_OPERATOR, /* also send commands */
	AUTH_ADMIN,    /* also manage users and tokens */
};

#define AUTH_NAME_MAX     64
#define AUTH_CSRF_MAX     48 /* base64url of 32 random bytes, NUL included */
#define AUTH_SECRET_MAX   64 /* a session cookie or an API token, NUL included */
#define AUTH_TOKEN_PREFIX "cradle_"
#define AUTH_HASH_MAX     65 /* hex SHA-256 of a token or session cookie, NUL included */
/*
 * The store counter (counters table) every change of credentials adds 1 to, in the same
 * transaction: a token added or revoked, a session made (login) or deleted (logout), a user
 * deleted or given another role. It lives in the database, so the command line (another
 * process) bumps it too; the web server polls it to check its open streams (http.c).
 */
#define AUTH_GEN_COUNTER "auth_gen"

struct dash_config;
struct store;
struct auth_limiter;

/* The caller of a request, as http.c establishes it before any handler runs. */
struct auth_principal {
	enum auth_role role;
	char name[AUTH_NAME_MAX]; /* user name, or "token:NAME" for an API token */
	bool via_cookie;          /* a UI session: state-changing requests need the CSRF token */
	char csrf[AUTH_CSRF_MAX]; /* the session's CSRF token ("" for API tokens) */
	int64_t expires_ms;       /* the session's end (0 for API tokens) */
	char cred[AUTH_HASH_MAX]; /* the stored hash of the token or cookie (snapshots' key) */
};

/* "viewer", "operator", "admin"; NULL for AUTH_NONE / out of range. */
const char *auth_role_name(enum auth_role r);
/* -EINVAL for an unknown name. */
int auth_role_from_name(const char *name, enum auth_role *ret);

/*
 * Users. Names: 1..AUTH_NAME_MAX-1 bytes of [A-Za-z0-9._@-]. The password is hashed with
 * crypt(3): yescrypt ("$y$"), or sha512-crypt ("$6$") where libcrypt lacks it.
 * add: -EEXIST when the name is taken, -EINVAL for a bad name or an empty password.
 */
int auth_user_add(struct store *s, const char *name, enum auth_role role, const char *password);
/*
 * 0 and *ret_role when name/password match; -EACCES otherwise (an unknown user costs as much
 * time as a wrong password, so timing tells nothing about which names exist); -EIO.
 */
int auth_user_check(struct store *s, const char *name, const char *password,
                    enum auth_role *ret_role);

/*
 * del: -ENOENT when there is no such user; the user's sessions go with it. set_role: -ENOENT,
 * -EINVAL for a role out of range. Both add 1 to AUTH_GEN_COUNTER (in the same transaction).
 */
int auth_user_delete(struct store *s, const char *name);
int auth_user_set_role(struct store *s, const char *name, enum auth_role role);

/*
 * API tokens: AUTH_TOKEN_PREFIX + base64url of 32 random bytes, written to secret (at least
 * AUTH_SECRET_MAX bytes); only its SHA-256 is stored. -EEXIST when name is taken.
 */
int auth_token_add(struct store *s, const char *name, enum auth_role role, char *secret,
                   size_t size);
/* -ENOENT when no token has that name. add and revoke add 1 to AUTH_GEN_COUNTER. */
int auth_token_revoke(struct store *s, const char *name);
/* 0 and who ("token:NAME") for a valid token, -EACCES otherwise, -EIO. */
int auth_token_check(struct store *s, const char *token, struct auth_principal *who);

/*
 * UI sessions. new: a cookie value (written to cookie, at least AUTH_SECRET_MAX bytes; only its
 * SHA-256 is stored), a CSRF token and the expiry, filled into who; expired sessions are
 * deleted on the way. check: 0 and who for a live session, -EACCES otherwise.
 */
int auth_session_new(struct store *s, const char *user, enum auth_role role, int64_t ttl_s,
                     char *cookie, size_t size, struct auth_principal *who);
int auth_session_check(struct store *s, const char *cookie, struct auth_principal *who);
/* Deletes the session of cookie (none: 0; one: AUTH_GEN_COUNTER + 1, as new adds 1). */
int auth_session_delete(struct store *s, const char *cookie);

/*
 * A snapshot of every live credential (tokens; sessions with their user's role and their end)
 * and the AUTH_GEN_COUNTER it goes with, read in one transaction: what the web server checks
 * its open streams against after a change, one read for all of them (http.c).
 * load: 0, -ENOMEM, -EIO. check: 0 when who's credential (who->cred) is in it with who->role;
 * else -EACCES and *ret_reason: "revoked" (a token not in it), "logged_out" (a session not in
 * it: logged out, or its user deleted), "expired" (its end is at or before now, Unix ms),
 * "role_changed" (its role is no longer who->role). Immutable once loaded: any number of
 * threads may check against it at once.
 */
struct auth_snapshot;
int auth_snapshot_load(struct store *s, struct auth_snapshot **ret);
int64_t auth_snapshot_gen(const struct auth_snapshot *snap);
int auth_snapshot_check(const struct auth_snapshot *snap, const struct auth_principal *who,
                        int64_t now_ms, const char **ret_reason);
/* NULL-safe; returns NULL. */
struct auth_snapshot *auth_snapshot_free(struct auth_snapshot *snap);

/* Constant-time comparison of two NUL-terminated secrets (CSRF tokens). */
bool auth_secret_equal(const char *a, const char *b);

/*
 * Login rate limit: failed logins per client address (cfg login_rate: count per interval).
 * Thread-safe. allowed: whether one more attempt may run now (else *retry_s, >= 1, says
 * when); failed: counts one failure.
 */
int auth_limiter_new(const struct conftab_rate *rate, struct auth_limiter **ret);
struct auth_limiter *auth_limiter_free(struct auth_limiter *l);
bool auth_limiter_allowed(struct auth_limiter *l, const char *addr, unsigned *retry_s);
void auth_limiter_failed(struct auth_limiter *l, const char *addr);

/*
 * The command line (`cradle-dashboard -c FILE user ...`, `token ...`). Each opens cfg->db,
 * returns 0 or -errno, and says what went wrong on stderr.
 * user add: the password is the first line of in (refused when empty).
 * token add: prints the new token, once, to out.
 */
int auth_cli_user_add(const struct dash_config *cfg, const char *name, const char *role, FILE *in);
int auth_cli_user_list(const struct dash_config *cfg, FILE *out);
/* user role NAME --role ROLE, user delete NAME: open streams of the user end (http.c). */
int auth_cli_user_role(const struct dash_config *cfg, const char *name, const char *role);
int auth_cli_user_delete(const struct dash_config *cfg, const char *name);
int auth_cli_token_add(const struct dash_config *cfg, const char *name, const char *role,
                       FILE *out);
int auth_cli_token_list(const struct dash_config *cfg, FILE *out);
int auth_cli_token_revoke(const struct dash_config *cfg, const char *name);

#endif
