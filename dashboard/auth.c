/* SPDX-License-Identifier: MIT */
/*
 * auth: users, API tokens, UI sessions and the login rate limit, on the store's users, tokens
 * and sessions tables. Secrets never reach the database: passwords as crypt(3) hashes, tokens
 * and session cookies as hex SHA-256 (they are 256 random bits, so a fast hash is enough — a
 * guess is as hard as the secret). Comparisons of secrets run in constant time.
 */
#include "auth.h"

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sqlite3.h>

#include "config.h"
#include "log.h"
#include "macro.h"
#include "ratelimit.h"
#include "store.h"
#include "timefmt.h"

#define RANDOM_BYTES 32
#define HEX_SHA256   AUTH_HASH_MAX /* 2 * 32 + 1 */
#define HASH_MAX     CRYPT_OUTPUT_SIZE
/* Keys of the login rate limit: client addresses; older quiet ones are forgotten first. */
#define LIMITER_KEYS 4096

static const char *const role_names[] = {
	[AUTH_VIEWER] = "viewer",
	[AUTH_OPERATOR] = "operator",
	[AUTH_ADMIN] = "admin",
};

const char *auth_role_name(enum auth_role r)
{
	if (r <= AUTH_NONE || (size_t)r >= ARRAY_SIZE(role_names))
		return NULL;
	return role_names[r];
}

int auth_role_from_name(const char *name, enum auth_role *ret)
{
	for (size_t i = AUTH_VIEWER; name && i < ARRAY_SIZE(role_names); i++)
		if (strcmp(name, role_names[i]) == 0) {
			*ret = (enum auth_role)i;
			return 0;
		}
	return -EINVAL;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n >= AUTH_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '@' || c == '-'))
			return false;
	}
	return true;
}

bool auth_secret_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	/* the lengths of our secrets are public (fixed); only the content must not leak */
	if (la != lb || la == 0)
		return false;
	return CRYPTO_memcmp(a, b, la) == 0;
}

/* base64url without padding of n bytes into out (4 * ceil(n / 3) + 1 bytes suffice). */
static void base64url(const unsigned char *in, size_t n, char *out)
{
	static const char tab[] =
	        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t left = n - i;

		if (left > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		if (left > 1)
			out[o++] = tab[(v >> 6) & 63];
		if (left > 2)
			out[o++] = tab[v & 63];
	}
	out[o] = '\0';
}

/* A fresh secret: prefix + base64url of RANDOM_BYTES random bytes. 0 or -errno. */
static int random_secret(const char *prefix, char *out, size_t size)
{
	unsigned char b[RANDOM_BYTES];
	char enc[4 * RANDOM_BYTES / 3 + 4];
	int r = 0;

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		r = -errno;
		goto out;
	}
	base64url(b, sizeof(b), enc);
	if ((size_t)snprintf(out, size, "%s%s", prefix, enc) >= size)
		r = -ENOBUFS;
out:
	OPENSSL_cleanse(b, sizeof(b));
	return r;
}

/* hex SHA-256 of s. 0 or -EIO. */
static int sha256_hex(const char *s, char out[HEX_SHA256])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (!EVP_Digest(s, strlen(s), md, &len, EVP_sha256(), NULL) || len != 32)
		return -EIO;
	for (unsigned int i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

static int sql_fail(struct store *s, const char *what)
{
	log_error("auth: %s: %s", what, sqlite3_errmsg(store_db(s)));
	return -EIO;
}

/* Runs one statement with text parameters (NULL-terminated list) and no rows. 0, -EEXIST on a
 * constraint, -EIO. *ret_changes: rows changed. */
static int exec_text(struct store *s, const char *sql, int *ret_changes, ...)
{
	sqlite3 *db = store_db(s);
	sqlite3_stmt *st = NULL;
	va_list ap;
	const char *v;
	int i = 1, r = 0, rc;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		r = sql_fail(s, "prepare");
		goto out;
	}
	va_start(ap, ret_changes);
	while ((v = va_arg(ap, const char *)))
		sqlite3_bind_text(st, i++, v, -1, SQLITE_STATIC);
	va_end(ap);
	rc = sqlite3_step(st);
	if ((rc & 0xff) == SQLITE_CONSTRAINT) {
		r = -EEXIST;
		goto out;
	}
	if (rc != SQLITE_DONE) {
		r = sql_fail(s, "step");
		goto out;
	}
	if (ret_changes)
		*ret_changes = sqlite3_changes(db);
out:
	sqlite3_finalize(st);
	return r;
}

/*
 * Ends a transaction that changed credentials (store_begin'd): with r == 0 and changed, adds
 * 1 to AUTH_GEN_COUNTER and commits — whoever sees the new count also sees the change; else
 * rolls back (r < 0) or commits nothing. Returns r, or the commit's error.
 */
static int cred_commit(struct store *s, int r, bool changed)
{
	if (r == 0 && changed)
		r = store_counter_add(s, AUTH_GEN_COUNTER, 1);
	if (r == 0)
		r = store_commit(s);
	if (r < 0)
		store_rollback(s);
	return r;
}

/*
 * Runs a statement that can end credentials (text parameters a, b; b may be NULL), counted
 * in AUTH_GEN_COUNTER when it changed a row. 0 (*ret_changes set), -EIO.
 */
static int exec_ending(struct store *s, const char *sql, const char *a, const char *b,
                       int *ret_changes)
{
	int r;

	*ret_changes = 0;
	r = store_begin(s);
	if (r < 0)
		return r;
	r = exec_text(s, sql, ret_changes, a, b, (const char *)NULL);
	return cred_commit(s, r, *ret_changes > 0);
}

/* --- passwords -------------------------------------------------------------------------- */

static int password_hash(const char *password, char *out, size_t size)
{
	struct crypt_data *cd = NULL;
	char *salt = NULL;
	const char *h;
	int r = 0;

	/* yescrypt at libcrypt's default cost; sha512-crypt where this libcrypt lacks it */
	salt = crypt_gensalt_ra("$y$", 0, NULL, 0);
	if (!salt)
		salt = crypt_gensalt_ra("$6$", 0, NULL, 0);
	cd = calloc(1, sizeof(*cd));
	if (!salt || !cd) {
		r = -ENOMEM;
		goto out;
	}
	h = crypt_r(password, salt, cd);
	if (!h || h[0] == '*') {
		r = -EIO;
		goto out;
	}
	if ((size_t)snprintf(out, size, "%s", h) >= size)
		r = -ENOBUFS;
out:
	if (cd)
		OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	free(salt);
	return r;
}

static bool password_matches(const char *password, const char *hash)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *h;
	bool ok = false;

	if (!cd)
		return false;
	h = crypt_r(password, hash, cd);
	ok = h && h[0] != '*' && auth_secret_equal(h, hash);
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	return ok;
}

int auth_user_add(struct store *s, const char *name, enum auth_role role, const char *password)
{
	char hash[HASH_MAX], ms[24];
	int r;

	if (!name_valid(name) || !auth_role_name(role) || !password || !*password)
		return -EINVAL;
	r = password_hash(password, hash, sizeof(hash));
	if (r < 0)
		goto out;
	snprintf(ms, sizeof(ms), "%lld", (long long)now_ms());
	r = exec_text(s, "INSERT INTO users(name, role, hash, created_ms) VALUES(?, ?, ?, ?)", NULL,
	              name, auth_role_name(role), hash, ms, (const char *)NULL);
out:
	OPENSSL_cleanse(hash, sizeof(hash));
	return r;
}

int auth_user_delete(struct store *s, const char *name)
{
	int changes, r;

	r = exec_ending(s, "DELETE FROM users WHERE name = ?", name ? name : "", NULL, &changes);
	return r == 0 && changes == 0 ? -ENOENT : r;
}

int auth_user_set_role(struct store *s, const char *name, enum auth_role role)
{
	int changes, r;

	if (!auth_role_name(role))
		return -EINVAL;
	/* the same role again changes nothing: open streams need no recheck */
	r = exec_ending(s, "UPDATE users SET role = ?1 WHERE name = ?2 AND role <> ?1",
	                auth_role_name(role), name ? name : "", &changes);
	if (r == 0 && changes == 0) {
		sqlite3_stmt *st = NULL;

		if (sqlite3_prepare_v2(store_db(s), "SELECT 1 FROM users WHERE name = ?", -1, &st,
		                       NULL) != SQLITE_OK)
			return sql_fail(s, "prepare");
		sqlite3_bind_text(st, 1, name ? name : "", -1, SQLITE_STATIC);
		r = sqlite3_step(st) == SQLITE_ROW ? 0 : -ENOENT;
		sqlite3_finalize(st);
	}
	return r;
}

/* The hash an unknown user's password is checked against: same algorithm, same cost. */
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;
static char dummy_hash[HASH_MAX];

static void dummy_init(void)
{
	if (password_hash("cradle-no-such-user", dummy_hash, sizeof(dummy_hash)) < 0)
		dummy_hash[0] = '\0';
}

int auth_user_check(struct store *s, const char *name, const char *password,
                    enum auth_role *ret_role)
{
	sqlite3_stmt *st = NULL;
	char hash[HASH_MAX] = "", role[16] = "";
	int r = -EACCES, rc;

	if (sqlite3_prepare_v2(store_db(s), "SELECT hash, role FROM users WHERE name = ?", -1, &st,
	                       NULL) != SQLITE_OK)
		return sql_fail(s, "prepare");
	sqlite3_bind_text(st, 1, name ? name : "", -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(hash, sizeof(hash), "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(role, sizeof(role), "%s", (const char *)sqlite3_column_text(st, 1));
	} else if (rc != SQLITE_DONE) {
		r = sql_fail(s, "step");
		goto out;
	}
	if (!hash[0]) {
		/* unknown user: spend the time a wrong password would */
		pthread_once(&dummy_once, dummy_init);
		if (dummy_hash[0])
			(void)password_matches(password ? password : "", dummy_hash);
		goto out;
	}
	if (password && password_matches(password, hash) &&
	    auth_role_from_name(role, ret_role) == 0)
		r = 0;
out:
	sqlite3_finalize(st);
	OPENSSL_cleanse(hash, sizeof(hash));
	return r;
}

/* --- API tokens ------------------------------------------------------------------------- */

int auth_token_add(struct store *s, const char *name, enum auth_role role, char *secret,
                   size_t size)
{
	char hash[HEX_SHA256], ms[24];
	int r;

	if (!name_valid(name) || !auth_role_name(role))
		return -EINVAL;
	r = random_secret(AUTH_TOKEN_PREFIX, secret, size);
	if (r < 0)
		goto out;
	r = sha256_hex(secret, hash);
	if (r < 0)
		goto out;
	snprintf(ms, sizeof(ms), "%lld", (long long)now_ms());
	/* counted too: a stream checks itself only against snapshots that hold its credential */
	r = store_begin(s);
	if (r < 0)
		goto out;
	r = exec_text(s, "INSERT INTO tokens(name, role, hash, created_ms) VALUES(?, ?, ?, ?)",
	              NULL, name, auth_role_name(role), hash, ms, (const char *)NULL);
	r = cred_commit(s, r, true);
out:
	if (r < 0)
		OPENSSL_cleanse(secret, size);
	return r;
}

int auth_token_revoke(struct store *s, const char *name)
{
	int changes = 0, r;

	r = exec_ending(s, "DELETE FROM tokens WHERE name = ?", name ? name : "", NULL, &changes);
	if (r == 0 && changes == 0)
		r = -ENOENT;
	return r;
}

int auth_token_check(struct store *s, const char *token, struct auth_principal *who)
{
	sqlite3_stmt *st = NULL;
	char hash[HEX_SHA256];
	int64_t now = now_ms();
	int r = -EACCES, rc;

	if (!token || strlen(token) >= AUTH_SECRET_MAX ||
	    strncmp(token, AUTH_TOKEN_PREFIX, strlen(AUTH_TOKEN_PREFIX)) != 0)
		return -EACCES;
	if (sha256_hex(token, hash) < 0)
		return -EIO;
	if (sqlite3_prepare_v2(store_db(s),
	                       "SELECT name, role, hash, last_used_ms FROM tokens WHERE hash = ?",
	                       -1, &st, NULL) != SQLITE_OK)
		return sql_fail(s, "prepare");
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		goto out;
	if (rc != SQLITE_ROW) {
		r = sql_fail(s, "step");
		goto out;
	}
	if (!auth_secret_equal((const char *)sqlite3_column_text(st, 2), hash) ||
	    auth_role_from_name((const char *)sqlite3_column_text(st, 1), &who->role) < 0)
		goto out;
	snprintf(who->name, sizeof(who->name), "token:%s",
	         (const char *)sqlite3_column_text(st, 0));
	who->via_cookie = false;
	who->csrf[0] = '\0';
	who->expires_ms = 0;
	snprintf(who->cred, sizeof(who->cred), "%s", hash);
	r = 0;
	/* last use, at minute resolution: not a write per request */
	if (sqlite3_column_type(st, 3) == SQLITE_NULL ||
	    sqlite3_column_int64(st, 3) < now - 60000) {
		char ms[24];

		snprintf(ms, sizeof(ms), "%lld", (long long)now);
		sqlite3_finalize(st);
		st = NULL;
		(void)exec_text(s, "UPDATE tokens SET last_used_ms = ? WHERE hash = ?", NULL, ms,
		                hash, (const char *)NULL);
	}
out:
	sqlite3_finalize(st);
	return r;
}

/* --- sessions --------------------------------------------------------------------------- */

int auth_session_new(struct store *s, const char *user, enum auth_role role, int64_t ttl_s,
                     char *cookie, size_t size, struct auth_principal *who)
{
	sqlite3_stmt *st = NULL;
	char hash[HEX_SHA256];
	int64_t now = now_ms();
	bool began = false;
	int r;

	r = random_secret("", cookie, size);
	if (r < 0)
		goto out;
	r = random_secret("", who->csrf, sizeof(who->csrf));
	if (r < 0)
		goto out;
	r = sha256_hex(cookie, hash);
	if (r < 0)
		goto out;
	who->role = role;
	snprintf(who->name, sizeof(who->name), "%s", user);
	who->via_cookie = true;
	who->expires_ms = now + ttl_s * 1000;
	snprintf(who->cred, sizeof(who->cred), "%s", hash);
	/* counted, as a new token is */
	r = store_begin(s);
	if (r < 0)
		goto out;
	began = true;
	if (sqlite3_prepare_v2(store_db(s),
	                       "INSERT INTO sessions(id_hash, user, csrf, created_ms, expires_ms) "
	                       "VALUES(?, ?, ?, ?, ?)",
	                       -1, &st, NULL) != SQLITE_OK) {
		r = sql_fail(s, "prepare");
		goto out;
	}
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, user, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, who->csrf, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_int64(st, 5, who->expires_ms);
	if (sqlite3_step(st) != SQLITE_DONE) {
		r = sql_fail(s, "insert session");
		goto out;
	}
	sqlite3_finalize(st);
	st = NULL;
	/* sessions that ended are of no use to anyone */
	if (sqlite3_prepare_v2(store_db(s), "DELETE FROM sessions WHERE expires_ms < ?", -1, &st,
	                       NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, now);
		(void)sqlite3_step(st);
	}
out:
	sqlite3_finalize(st);
	if (began)
		r = cred_commit(s, r, true);
	if (r < 0)
		OPENSSL_cleanse(cookie, size);
	return r;
}

int auth_session_check(struct store *s, const char *cookie, struct auth_principal *who)
{
	sqlite3_stmt *st = NULL;
	char hash[HEX_SHA256];
	int r = -EACCES, rc;

	if (!cookie || !*cookie || strlen(cookie) >= AUTH_SECRET_MAX)
		return -EACCES;
	if (sha256_hex(cookie, hash) < 0)
		return -EIO;
	if (sqlite3_prepare_v2(store_db(s),
	                       "SELECT s.id_hash, s.user, u.role, s.csrf, s.expires_ms "
	                       "FROM sessions s JOIN users u ON u.name = s.user "
	                       "WHERE s.id_hash = ? AND s.expires_ms > ?",
	                       -1, &st, NULL) != SQLITE_OK)
		return sql_fail(s, "prepare");
	sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_ms());
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		goto out;
	if (rc != SQLITE_ROW) {
		r = sql_fail(s, "step");
		goto out;
	}
	if (!auth_secret_equal((const char *)sqlite3_column_text(st, 0), hash) ||
	    auth_role_from_name((const char *)sqlite3_column_text(st, 2), &who->role) < 0)
		goto out;
	snprintf(who->name, sizeof(who->name), "%s", (const char *)sqlite3_column_text(st, 1));
	snprintf(who->csrf, sizeof(who->csrf), "%s", (const char *)sqlite3_column_text(st, 3));
	who->expires_ms = sqlite3_column_int64(st, 4);
	who->via_cookie = true;
	snprintf(who->cred, sizeof(who->cred), "%s", hash);
	r = 0;
out:
	sqlite3_finalize(st);
	return r;
}

int auth_session_delete(struct store *s, const char *cookie)
{
	char hash[HEX_SHA256];
	int changes;

	if (!cookie || !*cookie)
		return 0;
	if (sha256_hex(cookie, hash) < 0)
		return -EIO;
	return exec_ending(s, "DELETE FROM sessions WHERE id_hash = ?", hash, NULL, &changes);
}

/* --- credential snapshots ----------------------------------------------------------- */

struct snap_entry {
	char cred[HEX_SHA256];
	bool session;
	enum auth_role role;
	int64_t expires_ms; /* sessions; 0 for tokens */
};

struct auth_snapshot {
	int64_t gen;
	size_t n;
	struct snap_entry *v; /* sorted by cred */
};

static int snap_cmp(const void *a, const void *b)
{
	return strcmp(((const struct snap_entry *)a)->cred, ((const struct snap_entry *)b)->cred);
}

/* Appends the rows of sql (cred, role, expires_ms) to snap. 0, -ENOMEM, -EIO. */
static int snap_rows(struct store *s, struct auth_snapshot *snap, size_t *cap, const char *sql,
                     bool session)
{
	sqlite3_stmt *st = NULL;
	int r = 0, rc;

	if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK)
		return sql_fail(s, "prepare");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct snap_entry *e;

		if (snap->n == *cap) {
			size_t nc = *cap ? *cap * 2 : 64;
			struct snap_entry *nv = realloc(snap->v, nc * sizeof(*nv));

			if (!nv) {
				r = -ENOMEM;
				goto out;
			}
			snap->v = nv;
			*cap = nc;
		}
		e = &snap->v[snap->n];
		snprintf(e->cred, sizeof(e->cred), "%s", (const char *)sqlite3_column_text(st, 0));
		e->session = session;
		e->expires_ms = sqlite3_column_int64(st, 2);
		/* a row with a role we do not know counts as gone */
		if (auth_role_from_name((const char *)sqlite3_column_text(st, 1), &e->role) == 0)
			snap->n++;
	}
	if (rc != SQLITE_DONE)
		r = sql_fail(s, "step");
out:
	sqlite3_finalize(st);
	return r;
}

int auth_snapshot_load(struct store *s, struct auth_snapshot **ret)
{
	struct auth_snapshot *snap = calloc(1, sizeof(*snap));
	size_t cap = 0;
	int r;

	if (!snap)
		return -ENOMEM;
	/* one read transaction: the counter and the rows it counts agree */
	if (sqlite3_exec(store_db(s), "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		r = sql_fail(s, "begin");
		goto out;
	}
	r = store_counter_get(s, AUTH_GEN_COUNTER, &snap->gen);
	if (r == 0)
		r = snap_rows(s, snap, &cap, "SELECT hash, role, 0 FROM tokens", false);
	if (r == 0)
		r = snap_rows(s, snap, &cap,
		              "SELECT s.id_hash, u.role, s.expires_ms FROM sessions s "
		              "JOIN users u ON u.name = s.user",
		              true);
	sqlite3_exec(store_db(s), "COMMIT", NULL, NULL, NULL);
	if (r < 0)
		goto out;
	if (snap->n)
		qsort(snap->v, snap->n, sizeof(*snap->v), snap_cmp);
	*ret = snap;
	snap = NULL;
out:
	auth_snapshot_free(snap);
	return r;
}

int64_t auth_snapshot_gen(const struct auth_snapshot *snap)
{
	return snap->gen;
}

int auth_snapshot_check(const struct auth_snapshot *snap, const struct auth_principal *who,
                        int64_t now, const char **ret_reason)
{
	struct snap_entry key;
	const struct snap_entry *e;

	snprintf(key.cred, sizeof(key.cred), "%s", who->cred);
	e = snap->n ? bsearch(&key, snap->v, snap->n, sizeof(*snap->v), snap_cmp) : NULL;
	*ret_reason = who->via_cookie ? "logged_out" : "revoked";
	if (!e || e->session != who->via_cookie)
		return -EACCES;
	if (e->session && e->expires_ms <= now) {
		*ret_reason = "expired";
		return -EACCES;
	}
	if (e->role != who->role) {
		*ret_reason = "role_changed";
		return -EACCES;
	}
	*ret_reason = NULL;
	return 0;
}

struct auth_snapshot *auth_snapshot_free(struct auth_snapshot *snap)
{
	if (!snap)
		return NULL;
	free(snap->v);
	free(snap);
	return NULL;
}

/* --- login rate limit ------------------------------------------------------------------- */

struct auth_limiter {
	pthread_mutex_t lock;
	struct ratelimit *rl; /* one owner thread: the mutex makes us that owner */
};

int auth_limiter_new(const struct conftab_rate *rate, struct auth_limiter **ret)
{
	struct auth_limiter *l;
	uint64_t interval_ms;
	int r;

	if (!rate->count || rate->interval_s <= 0)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	/* count failures per interval: a burst of count, one back every interval / count */
	interval_ms = (uint64_t)rate->interval_s * 1000 / rate->count;
	r = ratelimit_new(LIMITER_KEYS, rate->count, interval_ms ? interval_ms : 1, &l->rl);
	if (r < 0) {
		free(l);
		return r;
	}
	pthread_mutex_init(&l->lock, NULL);
	*ret = l;
	return 0;
}

struct auth_limiter *auth_limiter_free(struct auth_limiter *l)
{
	if (!l)
		return NULL;
	ratelimit_free(l->rl);
	pthread_mutex_destroy(&l->lock);
	free(l);
	return NULL;
}

bool auth_limiter_allowed(struct auth_limiter *l, const char *addr, unsigned *retry_s)
{
	uint64_t now = (uint64_t)mono_ms(), retry_ms = 0;
	bool ok;

	pthread_mutex_lock(&l->lock);
	ok = ratelimit_check(l->rl, addr, now);
	/* over the rate: a refused take costs nothing and says when a token is back */
	if (!ok && ratelimit_take(l->rl, addr, now, &retry_ms) == 0)
		ok = true;
	pthread_mutex_unlock(&l->lock);
	if (retry_s)
		*retry_s = retry_ms > 1000 ? (unsigned)((retry_ms + 999) / 1000) : 1;
	return ok;
}

void auth_limiter_failed(struct auth_limiter *l, const char *addr)
{
	pthread_mutex_lock(&l->lock);
	(void)ratelimit_take(l->rl, addr, (uint64_t)mono_ms(), NULL);
	pthread_mutex_unlock(&l->lock);
}

/* --- command line ----------------------------------------------------------------------- */

static int cli_open(const struct dash_config *cfg, struct store **ret)
{
	char err[256] = "";
	int r = store_open(cfg->db, cfg, ret, err, sizeof(err));

	if (r < 0)
		fprintf(stderr, "cradle-dashboard: %s: %s\n", cfg->db, err[0] ? err : strerror(-r));
	return r;
}

static int cli_role(const char *role, enum auth_role *ret)
{
	if (auth_role_from_name(role, ret) < 0) {
		fprintf(stderr, "cradle-dashboard: unknown role '%s' (viewer, operator, admin)\n",
		        role ? role : "");
		return -EINVAL;
	}
	return 0;
}

/* One line of in; on a terminal with a prompt and without echo. */
static ssize_t read_password(FILE *in, char **line, size_t *cap)
{
	struct termios old, quiet;
	bool tty = isatty(fileno(in)) && tcgetattr(fileno(in), &old) == 0;
	ssize_t n;

	if (tty) {
		fputs("Password: ", stderr);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		tcsetattr(fileno(in), TCSAFLUSH, &quiet);
	}
	n = getline(line, cap, in);
	if (tty) {
		tcsetattr(fileno(in), TCSAFLUSH, &old);
		fputc('\n', stderr);
	}
	return n;
}

int auth_cli_user_add(const struct dash_config *cfg, const char *name, const char *role, FILE *in)
{
	struct store *s = NULL;
	enum auth_role rl;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int r;

	r = cli_role(role, &rl);
	if (r < 0)
		goto out;
	if (!name_valid(name)) {
		fprintf(stderr,
		        "cradle-dashboard: bad user name '%s' (1-63 of A-Z a-z 0-9 . _ @ -)\n",
		        name ? name : "");
		r = -EINVAL;
		goto out;
	}
	n = read_password(in, &line, &cap);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n <= 0) {
		fprintf(stderr, "cradle-dashboard: no password on standard input (one line, not "
		                "empty)\n");
		r = -EINVAL;
		goto out;
	}
	r = cli_open(cfg, &s);
	if (r < 0)
		goto out;
	r = auth_user_add(s, name, rl, line);
	if (r == -EEXIST)
		fprintf(stderr, "cradle-dashboard: user '%s' exists already\n", name);
	else if (r < 0)
		fprintf(stderr, "cradle-dashboard: adding user '%s' failed: %s\n", name,
		        strerror(-r));
out:
	if (line) {
		OPENSSL_cleanse(line, cap);
		free(line);
	}
	store_close(s);
	return r;
}

/* RFC 3339 of Unix ms, "-" for none (< 0). */
static void fmt_ms(int64_t ms, char *buf, size_t size)
{
	if (ms < 0 || timefmt_rfc3339(ms / 1000, buf, size) < 0)
		snprintf(buf, size, "-");
}

static int cli_list(const struct dash_config *cfg, const char *sql, bool tokens, FILE *out)
{
	struct store *s = NULL;
	sqlite3_stmt *st = NULL;
	int r, rc;

	r = cli_open(cfg, &s);
	if (r < 0)
		goto out;
	if (sqlite3_prepare_v2(store_db(s), sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "cradle-dashboard: %s\n", sqlite3_errmsg(store_db(s)));
		r = -EIO;
		goto out;
	}
	fprintf(out, tokens ? "%-24s %-9s %-20s %s\n" : "%-24s %-9s %s\n", "NAME", "ROLE",
	        "CREATED", "LAST USED");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		char created[TIMEFMT_RFC3339_MAX], used[TIMEFMT_RFC3339_MAX];

		fmt_ms(sqlite3_column_int64(st, 2), created, sizeof(created));
		if (tokens) {
			fmt_ms(sqlite3_column_type(st, 3) == SQLITE_NULL
			               ? -1
			               : sqlite3_column_int64(st, 3),
			       used, sizeof(used));
			fprintf(out, "%-24s %-9s %-20s %s\n", sqlite3_column_text(st, 0),
			        sqlite3_column_text(st, 1), created, used);
		} else {
			fprintf(out, "%-24s %-9s %s\n", sqlite3_column_text(st, 0),
			        sqlite3_column_text(st, 1), created);
		}
	}
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "cradle-dashboard: %s\n", sqlite3_errmsg(store_db(s)));
		r = -EIO;
	}
	if (fflush(out) != 0 && r == 0)
		r = -EIO;
out:
	sqlite3_finalize(st);
	store_close(s);
	return r;
}

int auth_cli_user_list(const struct dash_config *cfg, FILE *out)
{
	return cli_list(cfg, "SELECT name, role, created_ms FROM users ORDER BY name", false, out);
}

int auth_cli_token_list(const struct dash_config *cfg, FILE *out)
{
	return cli_list(cfg,
	                "SELECT name, role, created_ms, last_used_ms FROM tokens ORDER BY name",
	                true, out);
}

int auth_cli_user_role(const struct dash_config *cfg, const char *name, const char *role)
{
	struct store *s = NULL;
	enum auth_role rl;
	int r;

	r = cli_role(role, &rl);
	if (r < 0)
		goto out;
	r = cli_open(cfg, &s);
	if (r < 0)
		goto out;
	r = auth_user_set_role(s, name, rl);
	if (r == -ENOENT)
		fprintf(stderr, "cradle-dashboard: no user named '%s'\n", name ? name : "");
	else if (r < 0)
		fprintf(stderr, "cradle-dashboard: changing the role of '%s' failed: %s\n", name,
		        strerror(-r));
out:
	store_close(s);
	return r;
}

int auth_cli_user_delete(const struct dash_config *cfg, const char *name)
{
	struct store *s = NULL;
	int r;

	r = cli_open(cfg, &s);
	if (r < 0)
		goto out;
	r = auth_user_delete(s, name);
	if (r == -ENOENT)
		fprintf(stderr, "cradle-dashboard: no user named '%s'\n", name ? name : "");
	else if (r < 0)
		fprintf(stderr, "cradle-dashboard: deleting user '%s' failed: %s\n", name,
		        strerror(-r));
out:
	store_close(s);
	return r;
}

int auth_cli_token_add(const struct dash_config *cfg, const char *name, const char *role, FILE *out)
{
	struct store *s = NULL;
	enum auth_role rl;
	char secret[AUTH_SECRET_MAX] = "";
	int r;

	r = cli_role(role, &rl);
	if (r < 0)
		goto out;
	if (!name_valid(name)) {
		fprintf(stderr,
		        "cradle-dashboard: bad token name '%s' (1-63 of A-Z a-z 0-9 . _ @ -)\n",
		        name ? name : "");
		r = -EINVAL;
		goto out;
	}
	r = cli_open(cfg, &s);
	if (r < 0)
		goto out;
	r = auth_token_add(s, name, rl, secret, sizeof(secret));
	if (r == -EEXIST) {
		fprintf(stderr,
		        "cradle-dashboard: a token named '%s' exists already (revoke it first)\n",
		        name);
		goto out;
	}
	if (r < 0) {
		fprintf(stderr, "cradle-dashboard: adding token '%s' failed: %s\n", name,
		        strerror(-r));
		goto out;
	}
	/* the only time the token is ever shown */
	fprintf(out, "%s\n", secret);
	if (fflush(out) != 0)
		r = -EIO;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	store_close(s);
	return r;
}

int auth_cli_token_revoke(const struct dash_config *cfg, const char *name)
{
	struct store *s = NULL;
	int r;

	r = cli_open(cfg, &s);
	if (r < 0)
		goto out;
	r = auth_token_revoke(s, name);
	if (r == -ENOENT)
		fprintf(stderr, "cradle-dashboard: no token named '%s'\n", name ? name : "");
	else if (r < 0)
		fprintf(stderr, "cradle-dashboard: revoking token '%s' failed: %s\n", name,
		        strerror(-r));
out:
	store_close(s);
	return r;
}
