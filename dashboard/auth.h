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
#include <stdint.h>

enum auth_role {
	AUTH_NONE,     /* anonymous: nothing of the API */
	AUTH_VIEWER,   /* read */
	AUTH_OPERATOR, /* also send commands */
	AUTH_ADMIN,    /* also manage users and tokens */
};

#define AUTH_NAME_MAX 64

/* The caller of a request, as http.c establishes it before any handler runs. */
struct auth_principal {
	enum auth_role role;
	char name[AUTH_NAME_MAX]; /* user name, or "token:NAME" for an API token */
	bool via_cookie;          /* a UI session: state-changing requests need the CSRF token */
};

/* "viewer", "operator", "admin"; NULL for AUTH_NONE / out of range. */
const char *auth_role_name(enum auth_role r);
/* -EINVAL for an unknown name. */
int auth_role_from_name(const char *name, enum auth_role *ret);

#endif
