/* SPDX-License-Identifier: MIT */
/* Tests of dashboard/auth.c on a real SQLite file: roles, users, tokens, sessions, the login
 * rate limit and the secret comparison. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "auth.h"
#include "config.h"
#include "store.h"

struct fixture {
	char dir[64];
	char path[128];
	struct dash_config cfg;
	struct store *s;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char err[256];

	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cradle-auth-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/db", f->dir);
	dash_config_defaults(&f->cfg);
	snprintf(f->cfg.db, sizeof(f->cfg.db), "%s", f->path);
	if (store_open(f->path, &f->cfg, &f->s, err, sizeof(err)) < 0)
		return -1;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char p[160];

	store_close(f->s);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static void test_roles(void **state)
{
	enum auth_role r = AUTH_NONE;

	(void)state;
	assert_string_equal(auth_role_name(AUTH_VIEWER), "viewer");
	assert_string_equal(auth_role_name(AUTH_OPERATOR), "operator");
	assert_string_equal(auth_role_name(AUTH_ADMIN), "admin");
	assert_null(auth_role_name(AUTH_NONE));
	assert_null(auth_role_name((enum auth_role)42));
	assert_int_equal(auth_role_from_name("operator", &r), 0);
	assert_int_equal(r, AUTH_OPERATOR);
	assert_int_equal(auth_role_from_name("root", &r), -EINVAL);
	assert_int_equal(auth_role_from_name("", &r), -EINVAL);
	assert_int_equal(auth_role_from_name(NULL, &r), -EINVAL);
	assert_true(AUTH_VIEWER < AUTH_OPERATOR && AUTH_OPERATOR < AUTH_ADMIN);
}

static void test_users(void **state)
{
	struct fixture *f = *state;
	enum auth_role r = AUTH_NONE;

	assert_int_equal(auth_user_add(f->s, "alice", AUTH_OPERATOR, "correct horse"), 0);
	assert_int_equal(auth_user_add(f->s, "alice", AUTH_ADMIN, "x"), -EEXIST);
	assert_int_equal(auth_user_add(f->s, "bob", AUTH_ADMIN, ""), -EINVAL);
	assert_int_equal(auth_user_add(f->s, "b b", AUTH_ADMIN, "x"), -EINVAL);
	assert_int_equal(auth_user_add(f->s, "", AUTH_ADMIN, "x"), -EINVAL);
	assert_int_equal(auth_user_add(f->s, "bob", AUTH_NONE, "x"), -EINVAL);
	assert_int_equal(auth_user_check(f->s, "alice", "correct horse", &r), 0);
	assert_int_equal(r, AUTH_OPERATOR);
	assert_int_equal(auth_user_check(f->s, "alice", "correct horsE", &r), -EACCES);
	assert_int_equal(auth_user_check(f->s, "alice", "", &r), -EACCES);
	assert_int_equal(auth_user_check(f->s, "nobody", "correct horse", &r), -EACCES);
	assert_int_equal(auth_user_check(f->s, "alice", NULL, &r), -EACCES);
}

static void test_tokens(void **state)
{
	struct fixture *f = *state;
	struct auth_principal who;
	char tok[AUTH_SECRET_MAX], tok2[AUTH_SECRET_MAX];

	assert_int_equal(auth_token_add(f->s, "ci", AUTH_VIEWER, tok, sizeof(tok)), 0);
	assert_int_equal(strncmp(tok, AUTH_TOKEN_PREFIX, strlen(AUTH_TOKEN_PREFIX)), 0);
	assert_int_equal(strlen(tok), strlen(AUTH_TOKEN_PREFIX) + 43);
	assert_int_equal(strspn(tok + 7, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	                                 "0123456789-_"),
	                 43);
	assert_int_equal(auth_token_add(f->s, "ci", AUTH_ADMIN, tok2, sizeof(tok2)), -EEXIST);
	assert_int_equal(auth_token_add(f->s, "ops", AUTH_OPERATOR, tok2, sizeof(tok2)), 0);
	assert_string_not_equal(tok, tok2);

	memset(&who, 0, sizeof(who));
	assert_int_equal(auth_token_check(f->s, tok, &who), 0);
	assert_int_equal(who.role, AUTH_VIEWER);
	assert_string_equal(who.name, "token:ci");
	assert_false(who.via_cookie);
	assert_int_equal(auth_token_check(f->s, tok2, &who), 0);
	assert_int_equal(who.role, AUTH_OPERATOR);
	/* one character off, no prefix, empty, too long */
	tok[10] = tok[10] == 'A' ? 'B' : 'A';
	assert_int_equal(auth_token_check(f->s, tok, &who), -EACCES);
	assert_int_equal(auth_token_check(f->s, tok + 7, &who), -EACCES);
	assert_int_equal(auth_token_check(f->s, "", &who), -EACCES);
	assert_int_equal(auth_token_check(f->s, NULL, &who), -EACCES);
	assert_int_equal(auth_token_revoke(f->s, "ops"), 0);
	assert_int_equal(auth_token_check(f->s, tok2, &who), -EACCES);
	assert_int_equal(auth_token_revoke(f->s, "ops"), -ENOENT);
}

static void test_sessions(void **state)
{
	struct fixture *f = *state;
	struct auth_principal who, got;
	char cookie[AUTH_SECRET_MAX];
	sqlite3_stmt *st;

	assert_int_equal(auth_user_add(f->s, "carol", AUTH_ADMIN, "pw"), 0);
	memset(&who, 0, sizeof(who));
	assert_int_equal(
	        auth_session_new(f->s, "carol", AUTH_ADMIN, 3600, cookie, sizeof(cookie), &who), 0);
	assert_int_equal(strlen(cookie), 43);
	assert_int_equal(strlen(who.csrf), 43);
	assert_true(who.via_cookie);
	memset(&got, 0, sizeof(got));
	assert_int_equal(auth_session_check(f->s, cookie, &got), 0);
	assert_string_equal(got.name, "carol");
	assert_int_equal(got.role, AUTH_ADMIN);
	assert_string_equal(got.csrf, who.csrf);
	assert_int_equal(got.expires_ms, who.expires_ms);
	assert_true(auth_secret_equal(got.csrf, who.csrf));
	assert_int_equal(auth_session_check(f->s, "nope", &got), -EACCES);
	assert_int_equal(auth_session_check(f->s, "", &got), -EACCES);

	/* expired: refused */
	assert_int_equal(sqlite3_exec(store_db(f->s), "UPDATE sessions SET expires_ms = 1", NULL,
	                              NULL, NULL),
	                 SQLITE_OK);
	assert_int_equal(auth_session_check(f->s, cookie, &got), -EACCES);
	/* a new session sweeps the expired ones */
	assert_int_equal(
	        auth_session_new(f->s, "carol", AUTH_ADMIN, 3600, cookie, sizeof(cookie), &who), 0);
	assert_int_equal(
	        sqlite3_prepare_v2(store_db(f->s), "SELECT COUNT(*) FROM sessions", -1, &st, NULL),
	        SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1);
	sqlite3_finalize(st);
	/* a role change of the user applies to its sessions at once */
	assert_int_equal(
	        sqlite3_exec(store_db(f->s), "UPDATE users SET role = 'viewer'", NULL, NULL, NULL),
	        SQLITE_OK);
	assert_int_equal(auth_session_check(f->s, cookie, &got), 0);
	assert_int_equal(got.role, AUTH_VIEWER);
	/* logout */
	assert_int_equal(auth_session_delete(f->s, cookie), 0);
	assert_int_equal(auth_session_check(f->s, cookie, &got), -EACCES);
	assert_int_equal(auth_session_delete(f->s, cookie), 0);
}

static int64_t gen(struct fixture *f)
{
	int64_t v = -1;

	assert_int_equal(store_counter_get(f->s, AUTH_GEN_COUNTER, &v), 0);
	return v;
}

/* who's credential against a fresh snapshot, whose gen must be the counter's */
static int recheck(struct fixture *f, const struct auth_principal *who, const char **why)
{
	struct auth_snapshot *snap = NULL;
	int r;

	assert_int_equal(auth_snapshot_load(f->s, &snap), 0);
	assert_int_equal(auth_snapshot_gen(snap), gen(f));
	r = auth_snapshot_check(snap, who, (int64_t)time(NULL) * 1000, why);
	auth_snapshot_free(snap);
	return r;
}

/* what ends a credential moves AUTH_GEN_COUNTER once; a snapshot says why it ended */
static void test_recheck(void **state)
{
	struct fixture *f = *state;
	struct auth_principal tw, sw, dw;
	char tok[AUTH_SECRET_MAX], cookie[AUTH_SECRET_MAX], cookie2[AUTH_SECRET_MAX];
	const char *why = "x";
	int64_t g0;

	assert_int_equal(auth_user_add(f->s, "dan", AUTH_OPERATOR, "pw"), 0);
	assert_int_equal(auth_user_add(f->s, "eve", AUTH_VIEWER, "pw"), 0);
	assert_int_equal(auth_token_add(f->s, "ci", AUTH_VIEWER, tok, sizeof(tok)), 0);
	memset(&tw, 0, sizeof(tw));
	assert_int_equal(auth_token_check(f->s, tok, &tw), 0);
	memset(&sw, 0, sizeof(sw));
	assert_int_equal(
	        auth_session_new(f->s, "dan", AUTH_OPERATOR, 3600, cookie, sizeof(cookie), &sw), 0);
	memset(&dw, 0, sizeof(dw));
	assert_int_equal(
	        auth_session_new(f->s, "eve", AUTH_VIEWER, 3600, cookie2, sizeof(cookie2), &dw), 0);
	assert_int_equal(strlen(tw.cred), 64);
	assert_string_not_equal(tw.cred, sw.cred);
	g0 = gen(f);
	/* making a token or a session counts (users do not); it ends nothing */
	assert_int_equal(g0, 3);
	assert_int_equal(recheck(f, &tw, &why), 0);
	assert_null(why);
	assert_int_equal(recheck(f, &sw, &why), 0);

	/* the same role again: no change, no bump; another role: bump, role_changed */
	assert_int_equal(auth_user_set_role(f->s, "dan", AUTH_OPERATOR), 0);
	assert_int_equal(gen(f), g0);
	assert_int_equal(auth_user_set_role(f->s, "nobody", AUTH_VIEWER), -ENOENT);
	assert_int_equal(auth_user_set_role(f->s, "dan", AUTH_NONE), -EINVAL);
	assert_int_equal(auth_user_set_role(f->s, "dan", AUTH_VIEWER), 0);
	assert_int_equal(gen(f), g0 + 1);
	assert_int_equal(recheck(f, &sw, &why), -EACCES);
	assert_string_equal(why, "role_changed");

	/* revoke: bump, revoked; a second revoke changes nothing */
	assert_int_equal(auth_token_revoke(f->s, "ci"), 0);
	assert_int_equal(gen(f), g0 + 2);
	assert_int_equal(recheck(f, &tw, &why), -EACCES);
	assert_string_equal(why, "revoked");
	assert_int_equal(auth_token_revoke(f->s, "ci"), -ENOENT);
	assert_int_equal(gen(f), g0 + 2);

	/* expired */
	assert_int_equal(sqlite3_exec(store_db(f->s),
	                              "UPDATE sessions SET expires_ms = 1 WHERE user = 'eve'", NULL,
	                              NULL, NULL),
	                 SQLITE_OK);
	assert_int_equal(recheck(f, &dw, &why), -EACCES);
	assert_string_equal(why, "expired");

	/* logout, and a user deleted (its sessions go with it) */
	assert_int_equal(auth_session_delete(f->s, cookie), 0);
	assert_int_equal(gen(f), g0 + 3);
	assert_int_equal(recheck(f, &sw, &why), -EACCES);
	assert_string_equal(why, "logged_out");
	assert_int_equal(auth_session_delete(f->s, cookie), 0);
	assert_int_equal(gen(f), g0 + 3);
	assert_int_equal(auth_user_delete(f->s, "eve"), 0);
	assert_int_equal(gen(f), g0 + 4);
	assert_int_equal(auth_session_check(f->s, cookie2, &dw), -EACCES);
	assert_int_equal(auth_user_delete(f->s, "eve"), -ENOENT);
}

static void test_secret_equal(void **state)
{
	(void)state;
	assert_true(auth_secret_equal("abc", "abc"));
	assert_false(auth_secret_equal("abc", "abd"));
	assert_false(auth_secret_equal("abc", "abcd"));
	assert_false(auth_secret_equal("", ""));
}

static void test_limiter(void **state)
{
	struct conftab_rate rate = { .count = 3, .interval_s = 60 };
	struct auth_limiter *l = NULL;
	unsigned retry = 0;

	(void)state;
	assert_int_equal(auth_limiter_new(&rate, &l), 0);
	for (int i = 0; i < 3; i++) {
		assert_true(auth_limiter_allowed(l, "10.0.0.1", &retry));
		auth_limiter_failed(l, "10.0.0.1");
	}
	assert_false(auth_limiter_allowed(l, "10.0.0.1", &retry));
	/* one attempt back every 60 s / 3 */
	assert_true(retry >= 1 && retry <= 20);
	/* asking does not cost: still refused, same wait */
	assert_false(auth_limiter_allowed(l, "10.0.0.1", &retry));
	assert_true(auth_limiter_allowed(l, "10.0.0.2", &retry));
	auth_limiter_free(l);

	rate.count = 0;
	assert_int_equal(auth_limiter_new(&rate, &l), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roles),
		cmocka_unit_test_setup_teardown(test_users, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recheck, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test(test_secret_equal),
		cmocka_unit_test(test_limiter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
