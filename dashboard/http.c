/* SPDX-License-Identifier: MIT */
/*
 * http: libmicrohttpd with a thread per connection (an SSE stream blocks in its content reader
 * on hub_wait(), which a shared polling thread could not afford). A request goes through:
 *
 *   1. headers only (first call): route lookup (404/405), the body cap on Content-Length (413),
 *      authentication (Bearer token or session cookie: 401), role (403), CSRF on state-changing
 *      cookie requests (403) — refused before a byte of the body is read;
 *   2. body chunks: copied while they fit under http_max_body, counted and dropped beyond it
 *      (a chunked upload over the cap ends in 413, never in a larger buffer);
 *   3. the handler, with a store connection from the pool, and its response with the common
 *      headers (no caching of API data, no sniffing, no framing).
 *
 * Non-API GETs are the UI's embedded files, served without authentication (they hold no data).
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <sqlite3.h>

#include "alerts.h"
#include "auth.h"
#include "config.h"
#include "hub.h"
#include "log.h"
#include "macro.h"
#include "metrics.h"
#include "store.h"
#include "timefmt.h"
#include "ui.h"

/*
 * The stream renders rows with the read side (query.h, dapi). Declared weak so the server links
 * and streams (rows reduced to their key) in a tree without query.c; once query.c is linked in,
 * these are its functions.
 */
extern cJSON *query_device_json(struct store *s, const char *udid, int64_t now)
        __attribute__((weak));
extern cJSON *query_agent_json(struct store *s, const char *agent, int64_t now)
        __attribute__((weak));
extern cJSON *query_command_json(struct store *s, const char *cmd_id) __attribute__((weak));
/* jobs (jobs.h): the job object of the "job" event */
extern cJSON *jobs_job_json(struct store *s, int64_t id, int64_t now_ms) __attribute__((weak));

#define POOL_MAX          8     /* idle store connections kept */
#define PATH_MAX_LEN      1024  /* longer request paths: 414 */
#define REQUEST_TIMEOUT_S 30    /* idle connection (slow headers or body) */
#define STREAM_KEEPALIVE  15000 /* ms between ": keepalive" comments on a quiet stream */
#define STREAM_SLICE      500   /* ms a stream waits before looking at the stop flag */
#define STREAM_BATCH      64    /* notices rendered per wakeup */
#define SESSION_COOKIE    "cradle_session"
/* ms between reads of AUTH_GEN_COUNTER while streams are open: with STREAM_SLICE, how late a
 * stream notices a credential ended by another process (the command line) */
#define AUTH_POLL_MS 2000

struct http {
	struct MHD_Daemon *d;
	const struct http_services *svc;
	bool tls;
	char *cert_pem, *key_pem;
	struct auth_limiter *limiter;
	pthread_mutex_t pool_lock;
	struct store *pool[POOL_MAX];
	size_t n_pool;
	atomic_bool stopping;
	/* the credential snapshot the streams check against (auth.h), swapped when
	 * AUTH_GEN_COUNTER moved; its gen, to skip the lock while nothing changed */
	pthread_mutex_t snap_lock;
	struct snap_ref *snap;
	_Atomic int64_t snap_gen;
	_Atomic int64_t auth_polled_ms; /* last read of the counter (monotonic; 0: at once) */
};

/* A snapshot shared by the streams, freed by whoever drops the last reference. */
struct snap_ref {
	struct auth_snapshot *snap;
	int refs; /* under snap_lock */
};

/* One request, from its headers to its completion. */
struct conn {
	struct http *h;
	const struct http_route *route;
	struct http_request req;
	char path[PATH_MAX_LEN];
	char argbuf[PATH_MAX_LEN]; /* the {name} segments, NUL-separated */
	char client[INET6_ADDRSTRLEN];
	char *body;
	size_t len;
	bool too_big;
	bool started; /* first call done */
};

static void stream_route(struct http_request *req, struct http_response *res);
static void login_route(struct http_request *req, struct http_response *res);
static void logout_route(struct http_request *req, struct http_response *res);
static void me_route(struct http_request *req, struct http_response *res);
static void users_route(struct http_request *req, struct http_response *res);
static void tokens_route(struct http_request *req, struct http_response *res);

/* The routes of this module: authentication and the stream. */
static const struct http_route own_routes[] = {
	{ "POST", "/api/v1/login", AUTH_NONE, login_route },
	{ "POST", "/api/v1/logout", AUTH_VIEWER, logout_route },
	{ "GET", "/api/v1/me", AUTH_VIEWER, me_route },
	{ "GET", "/api/v1/stream", AUTH_VIEWER, stream_route },
	{ "GET", "/api/v1/users", AUTH_ADMIN, users_route },
	{ "GET", "/api/v1/tokens", AUTH_ADMIN, tokens_route },
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * When the request this thread is handling arrived (monotonic us): one thread per connection,
 * and a connection's requests come one after the other, so a thread-local is the request's.
 */
static _Thread_local int64_t request_t0_us;

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Every response goes out here: counted by code, timed from the request's arrival. */
static enum MHD_Result queue(struct MHD_Connection *connection, unsigned status,
                             struct MHD_Response *r)
{
	metrics_http(status, (double)(mono_us() - request_t0_us) / 1e6);
	return MHD_queue_response(connection, status, r);
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- responses -------------------------------------------------------------------------- */

void http_json(struct http_response *res, int status, cJSON *root)
{
	char *s = root ? cJSON_PrintUnformatted(root) : NULL;

	cJSON_Delete(root);
	free(res->body);
	res->content_type = NULL;
	if (!s) {
		static const char oom[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of "
		                          "memory\"}}";

		res->status = 500;
		res->body = strdup(oom);
		res->len = res->body ? strlen(res->body) : 0;
		return;
	}
	res->status = status;
	res->body = s;
	res->len = strlen(s);
}

void http_error(struct http_response *res, int status, const char *code, const char *fmt, ...)
{
	char msg[512];
	cJSON *root = cJSON_CreateObject(), *err = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (root) {
		err = cJSON_AddObjectToObject(root, "error");
		if (err) {
			cJSON_AddStringToObject(err, "code", code);
			cJSON_AddStringToObject(err, "message", msg);
		}
	}
	http_json(res, status, root);
}

const char *http_query(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_header(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

cJSON *http_body_json(const struct http_request *req, struct http_response *res)
{
	cJSON *root;

	if (!req->body || req->body_len == 0) {
		http_error(res, 400, "bad_request", "a JSON body is required");
		return NULL;
	}
	/* a NUL inside would end the text early: what is parsed would not be what was sent; the
	 * body is NUL-terminated by http.c (+ 1), and nothing may follow the value */
	root = memchr(req->body, '\0', req->body_len)
	               ? NULL
	               : cJSON_ParseWithLengthOpts(req->body, req->body_len + 1, NULL, true);
	if (!root) {
		http_error(res, 400, "bad_json", "the body is not valid JSON");
		return NULL;
	}
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		http_error(res, 400, "bad_json", "the body must be a JSON object");
		return NULL;
	}
	return root;
}

static void add_common_headers(struct MHD_Response *r, bool api)
{
	MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	MHD_add_response_header(r, "X-Frame-Options", "DENY");
	MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
	if (api)
		MHD_add_response_header(r, "Cache-Control", "no-store");
}

/* Queues res (its body handed to libmicrohttpd) on connection. */
static enum MHD_Result send_response(struct MHD_Connection *connection, struct http_response *res,
                                     bool api)
{
	struct MHD_Response *r;
	enum MHD_Result ret;
	char num[16];

	if (res->body)
		r = MHD_create_response_from_buffer(res->len, res->body, MHD_RESPMEM_MUST_FREE);
	else
		r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(res->body);
		res->body = NULL;
		free(res->set_cookie);
		res->set_cookie = NULL;
		return MHD_NO;
	}
	res->body = NULL; /* libmicrohttpd frees it */
	add_common_headers(r, api);
	if (res->status != 204)
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
		                        res->content_type ? res->content_type : "application/json");
	if (res->content_disposition)
		MHD_add_response_header(r, "Content-Disposition", res->content_disposition);
	if (res->set_cookie) {
		MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, res->set_cookie);
		free(res->set_cookie);
		res->set_cookie = NULL;
	}
	if (res->retry_after_s) {
		snprintf(num, sizeof(num), "%u", res->retry_after_s);
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, num);
	}
	if (res->status == 401)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		                        "Bearer realm=\"cradle\"");
	ret = queue(connection, (unsigned)res->status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result send_error(struct MHD_Connection *connection, int status, const char *code,
                                  const char *msg)
{
	struct http_response res = { 0 };

	http_error(&res, status, code, "%s", msg);
	return send_response(connection, &res, true);
}

/* --- store pool ------------------------------------------------------------------------- */

static struct store *pool_get(struct http *h)
{
	struct store *s = NULL;
	char err[256] = "";
	int r;

	pthread_mutex_lock(&h->pool_lock);
	if (h->n_pool > 0)
		s = h->pool[--h->n_pool];
	pthread_mutex_unlock(&h->pool_lock);
	if (s)
		return s;
	r = store_open(h->svc->db_path, h->svc->cfg, &s, err, sizeof(err));
	if (r < 0) {
		log_error("http: store %s: %s", h->svc->db_path, err[0] ? err : strerror(-r));
		return NULL;
	}
	return s;
}

static void pool_put(struct http *h, struct store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&h->pool_lock);
	if (h->n_pool < POOL_MAX) {
		h->pool[h->n_pool++] = s;
		s = NULL;
	}
	pthread_mutex_unlock(&h->pool_lock);
	store_close(s);
}

/* --- routing ---------------------------------------------------------------------------- */

/*
 * Whether path matches pattern; {name} segments are copied into argbuf (NUL-separated) and
 * pointed to by args.
 */
static bool route_match(const char *pattern, const char *path, const char **args, char *argbuf,
                        size_t bufsz)
{
	size_t o = 0, n_args = 0;

	for (;;) {
		if (*pattern == '{') {
			const char *end = strchr(pattern, '}');
			size_t seg = strcspn(path, "/");

			if (!end || seg == 0 || n_args >= HTTP_PATH_ARGS_MAX || o + seg + 1 > bufsz)
				return false;
			memcpy(argbuf + o, path, seg);
			argbuf[o + seg] = '\0';
			args[n_args++] = argbuf + o;
			o += seg + 1;
			pattern = end + 1;
			path += seg;
			continue;
		}
		if (*pattern != *path)
			return false;
		if (!*pattern)
			return true;
		pattern++;
		path++;
	}
}

/*
 * The route for method and path: 0 and *ret; -ENOENT (no such path: 404) or -EPERM (the path
 * exists, not for this method: 405).
 */
static int route_find(struct conn *c, const char *method, const struct http_route **ret)
{
	const struct http_route *tables[2] = { own_routes, api_routes };
	const size_t sizes[2] = { ARRAY_SIZE(own_routes), api_n_routes };
	bool path_seen = false;

	if (strcmp(method, "HEAD") == 0)
		method = "GET";
	for (size_t t = 0; t < 2; t++)
		for (size_t i = 0; i < sizes[t]; i++) {
			const struct http_route *rt = &tables[t][i];

			memset(c->req.args, 0, sizeof(c->req.args));
			if (!rt->pattern || !route_match(rt->pattern, c->path, c->req.args,
			                                 c->argbuf, sizeof(c->argbuf)))
				continue;
			path_seen = true;
			if (strcmp(rt->method, method) == 0) {
				*ret = rt;
				return 0;
			}
		}
	memset(c->req.args, 0, sizeof(c->req.args));
	return path_seen ? -EPERM : -ENOENT;
}

static bool state_changing(const char *method)
{
	return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0 &&
	       strcmp(method, "OPTIONS") != 0;
}

/*
 * Who is asking: a Bearer token when there is an Authorization header (a bad one is a 401 even
 * with a cookie), else the session cookie. 0, -EACCES (credentials given and refused), -EIO.
 */
static int authenticate(struct conn *c, struct MHD_Connection *connection, struct store *s)
{
	const char *authz = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
	                                                MHD_HTTP_HEADER_AUTHORIZATION);
	const char *cookie;
	int r;

	memset(&c->req.who, 0, sizeof(c->req.who));
	c->req.who.role = AUTH_NONE;
	if (authz) {
		if (strncasecmp(authz, "Bearer ", 7) != 0)
			return -EACCES;
		authz += 7;
		while (*authz == ' ')
			authz++;
		r = auth_token_check(s, authz, &c->req.who);
		if (r < 0)
			c->req.who.role = AUTH_NONE;
		return r;
	}
	cookie = MHD_lookup_connection_value(connection, MHD_COOKIE_KIND, SESSION_COOKIE);
	if (!cookie)
		return 0;
	r = auth_session_check(s, cookie, &c->req.who);
	if (r < 0)
		c->req.who.role = AUTH_NONE;
	/* an expired or unknown session is as good as none: 401 below where it matters */
	return r == -EIO ? r : 0;
}

/* Headers only: decides everything that needs no body. 0 to go on, or an error response. */
static int admit(struct conn *c, struct MHD_Connection *connection, const char *method,
                 struct http_response *res)
{
	const struct http_route *rt = NULL;
	struct store *s = NULL;
	int r;

	r = route_find(c, method, &rt);
	if (r == -ENOENT) {
		http_error(res, 404, "not_found", "no such path: %s", c->path);
		return -1;
	}
	if (r == -EPERM) {
		http_error(res, 405, "method_not_allowed", "%s is not allowed on %s", method,
		           c->path);
		return -1;
	}
	c->route = rt;
	s = pool_get(c->h);
	if (!s) {
		http_error(res, 503, "unavailable", "the database cannot be opened");
		return -1;
	}
	r = authenticate(c, connection, s);
	pool_put(c->h, s);
	if (r == -EIO) {
		http_error(res, 503, "unavailable", "the database failed");
		return -1;
	}
	if (r == -EACCES) {
		http_error(res, 401, "unauthorized", "the API token is not valid");
		return -1;
	}
	if (rt->min_role == AUTH_NONE)
		return 0;
	if (c->req.who.role == AUTH_NONE) {
		http_error(res, 401, "unauthorized", "log in, or send Authorization: Bearer TOKEN");
		return -1;
	}
	if (c->req.who.role < rt->min_role) {
		http_error(res, 403, "forbidden", "this needs the role %s (you are %s)",
		           auth_role_name(rt->min_role), auth_role_name(c->req.who.role));
		return -1;
	}
	if (c->req.who.via_cookie && state_changing(method)) {
		const char *csrf =
		        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "X-CSRF-Token");

		if (!csrf || !auth_secret_equal(csrf, c->req.who.csrf)) {
			http_error(res, 403, "csrf",
			           "missing or wrong X-CSRF-Token header (see GET /api/v1/me)");
			return -1;
		}
	}
	return 0;
}

/* --- the UI's files --------------------------------------------------------------------- */

static enum MHD_Result serve_asset(struct MHD_Connection *connection, const char *method,
                                   const char *path)
{
	const struct ui_asset *a;
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return send_error(connection, 405, "method_not_allowed",
		                  "only GET is allowed outside /api/");
	a = ui_asset_find(path);
	if (!a)
		return send_error(connection, 404, "not_found", "no such page");
	/* libmicrohttpd 0.9.75 takes void * but never writes a PERSISTENT buffer */
	union {
		const void *c;
		void *m;
	} data = { .c = a->data };

	r = MHD_create_response_from_buffer(a->len, data.m, MHD_RESPMEM_PERSISTENT);
	if (!r)
		return MHD_NO;
	add_common_headers(r, false);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, a->content_type);
	MHD_add_response_header(r, "Cache-Control", "no-cache");
	ret = queue(connection, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* --- SSE -------------------------------------------------------------------------------- */

struct stream {
	struct http *h;
	uint64_t seq;
	char *buf; /* pending output */
	size_t len, off, cap;
	int64_t last_ms;           /* monotonic time of the last bytes handed out */
	int64_t expires_ms;        /* a session's stream ends with the session (0: a token's) */
	int fd;                    /* the client's socket, to notice it hung up */
	struct auth_principal who; /* whose stream: checked against each new snapshot */
	int64_t auth_gen;          /* the snapshot generation last looked at */
	int64_t gen_min;           /* AUTH_GEN_COUNTER once who was found valid */
	bool ending;               /* the "end" event is out: close once it is sent */
};

static struct snap_ref *snap_get(struct http *h)
{
	struct snap_ref *r;

	pthread_mutex_lock(&h->snap_lock);
	r = h->snap;
	if (r)
		r->refs++;
	pthread_mutex_unlock(&h->snap_lock);
	return r;
}

static void snap_put(struct http *h, struct snap_ref *r)
{
	bool last;

	if (!r)
		return;
	pthread_mutex_lock(&h->snap_lock);
	last = --r->refs == 0;
	pthread_mutex_unlock(&h->snap_lock);
	if (last) {
		auth_snapshot_free(r->snap);
		free(r);
	}
}

/*
 * Reads AUTH_GEN_COUNTER at most every AUTH_POLL_MS, by whichever stream comes first (one
 * read for all streams, however many), and when it moved loads a new credential snapshot:
 * a change costs one read of the tokens and sessions, not one per stream.
 */
static void auth_poll(struct http *h)
{
	int64_t now = mono_ms(), last = atomic_load(&h->auth_polled_ms), gen;
	struct snap_ref *r = NULL, *old = NULL;
	struct store *s;

	if (now - last < AUTH_POLL_MS ||
	    !atomic_compare_exchange_strong(&h->auth_polled_ms, &last, now))
		return;
	s = pool_get(h);
	if (!s || store_counter_get(s, AUTH_GEN_COUNTER, &gen) < 0 ||
	    gen == atomic_load(&h->snap_gen))
		goto out;
	r = calloc(1, sizeof(*r));
	if (!r)
		goto out;
	r->refs = 1;
	if (auth_snapshot_load(s, &r->snap) < 0)
		goto out;
	pthread_mutex_lock(&h->snap_lock);
	/* the counter only grows: never replace a newer snapshot by an older one */
	if (!h->snap || auth_snapshot_gen(r->snap) > auth_snapshot_gen(h->snap->snap)) {
		old = h->snap;
		h->snap = r;
		atomic_store(&h->snap_gen, auth_snapshot_gen(r->snap));
		r = NULL;
	}
	pthread_mutex_unlock(&h->snap_lock);
out:
	pool_put(h, s);
	snap_put(h, old);
	if (r) {
		auth_snapshot_free(r->snap);
		free(r);
	}
}

/*
 * Whether the stream's credential still stands: the session's end, and, once a new snapshot
 * is there, the credential looked up in it. NULL, or why it ended (the "end" event's reason).
 * Only a snapshot of generation gen_min or later can tell: making a credential counts too, so
 * such a snapshot holds the stream's credential unless it ended (an older one may lack a token
 * or session made just now); any change after gen_min makes a newer one.
 */
static const char *stream_auth_ended(struct stream *st)
{
	const char *why = NULL;
	struct snap_ref *r;
	int64_t gen;

	if (st->expires_ms && now_ms() >= st->expires_ms)
		return "expired";
	auth_poll(st->h);
	gen = atomic_load(&st->h->snap_gen);
	if (gen == st->auth_gen || gen < st->gen_min)
		return NULL;
	r = snap_get(st->h);
	if (!r)
		return NULL;
	gen = auth_snapshot_gen(r->snap);
	if (gen >= st->gen_min && gen != st->auth_gen) {
		if (auth_snapshot_check(r->snap, &st->who, now_ms(), &why) == 0)
			why = NULL;
		else
			log_info("http: stream of '%s' ended: %s", st->who.name, why);
		st->auth_gen = gen;
	}
	snap_put(st->h, r);
	return why;
}

/*
 * Whether the client hung up. A quiet stream writes nothing for up to STREAM_KEEPALIVE, so
 * without this a closed browser tab would hold its connection (and its place under
 * http_max_connections) until the next keepalive failed.
 */
static bool stream_hung_up(const struct stream *st)
{
	struct pollfd p = { .fd = st->fd, .events = POLLRDHUP };

	if (st->fd < 0)
		return false;
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static int stream_append(struct stream *st, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int stream_append(struct stream *st, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = st->cap - st->len;

		va_start(ap, fmt);
		n = vsnprintf(st->buf + st->len, room, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if ((size_t)n < room) {
			st->len += (size_t)n;
			return 0;
		}
		size_t cap = st->cap * 2 > st->len + (size_t)n + 1 ? st->cap * 2
		                                                   : st->len + (size_t)n + 1;
		char *nb = realloc(st->buf, cap);

		if (!nb)
			return -ENOMEM;
		st->buf = nb;
		st->cap = cap;
	}
}

/* clang-format off */
static const char *const kind_event[] = {
	[HUB_DEVICE] = "device",   /* from ingest */
	[HUB_AGENT] = "agent",     /* from ingest */
	[HUB_COMMAND] = "command", /* from ingest */
	[HUB_SUMMARY] = "summary", /* one per batch */
	[HUB_ALERT] = "alert",     /* from the rules engine (alerts.c) */
	[HUB_JOB] = "job",         /* from the jobs engine (jobs.c) */
};
/* clang-format on */

/* The row a notice names, as the API shows it; NULL when it is gone (nothing to send). */
static cJSON *notice_json(struct store *s, const struct hub_notice *n, int64_t now_s)
{
	cJSON *o = NULL;

	switch (n->kind) {
	case HUB_DEVICE:
		if (query_device_json && s)
			return query_device_json(s, n->key, now_s);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "udid", n->key);
		return o;
	case HUB_AGENT:
		if (query_agent_json && s)
			return query_agent_json(s, n->key, now_s);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "agent", n->key);
		return o;
	case HUB_COMMAND:
		if (query_command_json && s)
			return query_command_json(s, n->key);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "cmd_id", n->key);
		return o;
	case HUB_SUMMARY:
		return cJSON_CreateObject();
	case HUB_ALERT:
		return s ? alerts_json(s, strtoll(n->key, NULL, 10), now_s) : NULL;
	case HUB_JOB:
		if (jobs_job_json && s)
			return jobs_job_json(s, strtoll(n->key, NULL, 10), now_s * 1000);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", n->key);
		return o;
	}
	return NULL;
}

/* Renders a batch of notices; a key named twice in the batch is sent once, at its last seq. */
static int stream_render(struct stream *st, const struct hub_notice *ns, int n)
{
	struct store *s = pool_get(st->h);
	int64_t now_s = now_ms() / 1000;
	int r = 0;

	for (int i = 0; i < n && r == 0; i++) {
		bool later = false;
		cJSON *o;
		char *js;

		for (int j = i + 1; j < n && !later; j++)
			later = ns[j].kind == ns[i].kind && strcmp(ns[j].key, ns[i].key) == 0;
		if (later || (unsigned)ns[i].kind >= ARRAY_SIZE(kind_event))
			continue;
		o = notice_json(s, &ns[i], now_s);
		if (!o)
			continue;
		js = cJSON_PrintUnformatted(o);
		cJSON_Delete(o);
		if (!js) {
			r = -ENOMEM;
			break;
		}
		r = stream_append(st, "id: %" PRIu64 "\nevent: %s\ndata: %s\n\n", ns[i].seq,
		                  kind_event[ns[i].kind], js);
		free(js);
	}
	pool_put(st->h, s);
	return r;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *st = cls;
	struct hub_notice ns[STREAM_BATCH];
	const char *why;
	size_t n;

	(void)pos;
	while (st->off == st->len) {
		int64_t quiet;
		int r;

		st->off = st->len = 0;
		if (atomic_load(&st->h->stopping) || st->ending)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (stream_hung_up(st))
			return MHD_CONTENT_READER_END_WITH_ERROR;
		why = stream_auth_ended(st);
		if (why) {
			/* the client is told why, and not to come back with this credential */
			if (stream_append(st, "event: end\ndata: {\"reason\":\"%s\"}\n\n", why) < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			st->ending = true;
			break;
		}
		quiet = mono_ms() - st->last_ms;
		if (quiet >= STREAM_KEEPALIVE) {
			if (stream_append(st, ": keepalive\n\n") < 0)
				return MHD_CONTENT_READER_END_WITH_ERROR;
			break;
		}
		r = hub_wait(st->h->svc->hub, &st->seq, ns, ARRAY_SIZE(ns),
		             (int)(STREAM_KEEPALIVE - quiet < STREAM_SLICE
		                           ? STREAM_KEEPALIVE - quiet
		                           : STREAM_SLICE));
		if (r == -ESHUTDOWN)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (r == -ERANGE)
			r = stream_append(st, "id: %" PRIu64 "\nevent: resync\ndata: {}\n\n",
			                  st->seq - 1);
		else if (r > 0)
			r = stream_render(st, ns, r);
		if (r < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	n = st->len - st->off < max ? st->len - st->off : max;
	memcpy(buf, st->buf + st->off, n);
	st->off += n;
	st->last_ms = mono_ms();
	return (ssize_t)n;
}

static void stream_free(void *cls)
{
	struct stream *st = cls;

	free(st->buf);
	free(st);
}

static void stream_route(struct http_request *req, struct http_response *res)
{
	/* never called: http.c answers this route with a stream of its own (stream_start) */
	http_error(res, 500, "internal", "stream route called as a handler (%s)", req->path);
}

static enum MHD_Result stream_start(struct conn *c, struct MHD_Connection *connection)
{
	const char *last =
	        MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Last-Event-ID");
	const union MHD_ConnectionInfo *ci;
	struct MHD_Response *r;
	struct stream *st;
	struct store *s;
	enum MHD_Result ret;
	int r_gen;

	if (!c->h->svc->hub)
		return send_error(connection, 503, "unavailable", "live updates are not running");
	st = calloc(1, sizeof(*st));
	if (!st)
		return MHD_NO;
	st->h = c->h;
	st->expires_ms = c->req.who.via_cookie ? c->req.who.expires_ms : 0;
	st->who = c->req.who;
	st->auth_gen = INT64_MIN;
	/* admit() found the credential valid before this read: a snapshot of this generation or
	 * later holds it, or its end */
	s = pool_get(c->h);
	r_gen = s ? store_counter_get(s, AUTH_GEN_COUNTER, &st->gen_min) : -EIO;
	pool_put(c->h, s);
	if (r_gen < 0) {
		stream_free(st);
		return send_error(connection, 503, "unavailable", "the database failed");
	}
	ci = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
	st->fd = ci ? ci->connect_fd : -1;
	st->seq = hub_next_seq(c->h->svc->hub);
	/* a reconnecting browser continues after the last event it saw (or is told to resync) */
	if (last && *last) {
		char *end = NULL;
		unsigned long long v = strtoull(last, &end, 10);

		if (end && *end == '\0' && v < st->seq)
			st->seq = v + 1;
	}
	st->cap = 4096;
	st->buf = malloc(st->cap);
	st->last_ms = mono_ms();
	if (!st->buf || stream_append(st, "retry: 3000\n: stream of %s\n\n", c->req.who.name) < 0) {
		stream_free(st);
		return MHD_NO;
	}
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st,
	                                      stream_free);
	if (!r) {
		stream_free(st);
		return MHD_NO;
	}
	add_common_headers(r, true);
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(r, "X-Accel-Buffering", "no");
	ret = queue(connection, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

/* --- auth endpoints --------------------------------------------------------------------- */

static void add_time(cJSON *o, const char *name, int64_t ms)
{
	char t[TIMEFMT_RFC3339_MAX];

	if (ms > 0 && timefmt_rfc3339(ms / 1000, t, sizeof(t)) == 0)
		cJSON_AddStringToObject(o, name, t);
	else
		cJSON_AddNullToObject(o, name);
}

static cJSON *me_json(const struct auth_principal *who)
{
	cJSON *o = cJSON_CreateObject();

	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "user", who->name);
	cJSON_AddStringToObject(o, "role", auth_role_name(who->role));
	if (who->via_cookie)
		cJSON_AddStringToObject(o, "csrf", who->csrf);
	else
		cJSON_AddNullToObject(o, "csrf");
	add_time(o, "expires_at", who->expires_ms);
	return o;
}

static void login_route(struct http_request *req, struct http_response *res)
{
	struct conn *c = (struct conn *)((char *)req - offsetof(struct conn, req));
	struct http *h = c->h;
	const struct dash_config *cfg = h->svc->cfg;
	struct auth_principal who = { 0 };
	char cookie[AUTH_SECRET_MAX], *sc = NULL;
	const cJSON *user, *pass;
	enum auth_role role = AUTH_NONE;
	unsigned retry = 0;
	cJSON *body = NULL;
	int r;

	if (!auth_limiter_allowed(h->limiter, c->client, &retry)) {
		http_error(res, 429, "rate_limited", "too many failed logins; retry in %u s",
		           retry);
		res->retry_after_s = retry;
		goto out;
	}
	body = http_body_json(req, res);
	if (!body)
		goto out;
	user = cJSON_GetObjectItemCaseSensitive(body, "user");
	pass = cJSON_GetObjectItemCaseSensitive(body, "password");
	if (!cJSON_IsString(user) || !cJSON_IsString(pass)) {
		http_error(res, 400, "bad_request", "expected {\"user\": ..., \"password\": ...}");
		goto out;
	}
	r = auth_user_check(req->store, user->valuestring, pass->valuestring, &role);
	if (r == -EACCES) {
		auth_limiter_failed(h->limiter, c->client);
		log_notice("http: failed login for '%.64s' from %s", user->valuestring, c->client);
		http_error(res, 401, "unauthorized", "wrong user name or password");
		goto out;
	}
	if (r == 0)
		r = auth_session_new(req->store, user->valuestring, role, cfg->session_ttl_s,
		                     cookie, sizeof(cookie), &who);
	if (r < 0) {
		http_error(res, 503, "unavailable", "the database failed");
		goto out;
	}
	if (asprintf(&sc, "%s=%s; HttpOnly; SameSite=Strict; Path=/; Max-Age=%lld%s",
	             SESSION_COOKIE, cookie, (long long)cfg->session_ttl_s,
	             h->tls ? "; Secure" : "") < 0) {
		sc = NULL;
		http_error(res, 500, "internal", "out of memory");
		goto out;
	}
	log_info("http: '%s' logged in from %s", who.name, c->client);
	res->set_cookie = sc;
	http_json(res, 200, me_json(&who));
out:
	memset(cookie, 0, sizeof(cookie));
	cJSON_Delete(body);
}

static void logout_route(struct http_request *req, struct http_response *res)
{
	struct conn *c = (struct conn *)((char *)req - offsetof(struct conn, req));
	const char *cookie =
	        MHD_lookup_connection_value(req->conn, MHD_COOKIE_KIND, SESSION_COOKIE);
	char *sc = NULL;

	if (req->who.via_cookie && auth_session_delete(req->store, cookie) < 0) {
		http_error(res, 503, "unavailable", "the database failed");
		return;
	}
	/* the session's open streams end at their next look (STREAM_SLICE), not the next poll */
	atomic_store(&c->h->auth_polled_ms, 0);
	if (asprintf(&sc, "%s=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0%s", SESSION_COOKIE,
	             c->h->tls ? "; Secure" : "") < 0)
		sc = NULL;
	res->set_cookie = sc;
	res->status = 204;
	res->body = NULL;
	res->len = 0;
}

static void me_route(struct http_request *req, struct http_response *res)
{
	http_json(res, 200, me_json(&req->who));
}

/* The users or tokens table as a JSON list (admin: who may get in). */
static void list_route(struct http_request *req, struct http_response *res, bool tokens)
{
	sqlite3_stmt *st = NULL;
	cJSON *root = cJSON_CreateObject(), *arr;
	const char *sql = tokens ? "SELECT name, role, created_ms, last_used_ms FROM tokens "
	                           "ORDER BY name"
	                         : "SELECT name, role, created_ms FROM users ORDER BY name";

	arr = cJSON_AddArrayToObject(root, tokens ? "tokens" : "users");
	if (!arr || sqlite3_prepare_v2(store_db(req->store), sql, -1, &st, NULL) != SQLITE_OK) {
		cJSON_Delete(root);
		http_error(res, 503, "unavailable", "the database failed");
		return;
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "name", (const char *)sqlite3_column_text(st, 0));
		cJSON_AddStringToObject(o, "role", (const char *)sqlite3_column_text(st, 1));
		add_time(o, "created_at", sqlite3_column_int64(st, 2));
		if (tokens)
			add_time(o, "last_used_at", sqlite3_column_int64(st, 3));
		cJSON_AddItemToArray(arr, o);
	}
	sqlite3_finalize(st);
	http_json(res, 200, root);
}

static void users_route(struct http_request *req, struct http_response *res)
{
	list_route(req, res, false);
}

static void tokens_route(struct http_request *req, struct http_response *res)
{
	list_route(req, res, true);
}

/* --- requests --------------------------------------------------------------------------- */

static void client_address(struct MHD_Connection *connection, char *out, size_t size)
{
	const union MHD_ConnectionInfo *ci =
	        MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;

	snprintf(out, size, "?");
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
		          (socklen_t)size);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		          out, (socklen_t)size);
}

static enum MHD_Result run_handler(struct conn *c, struct MHD_Connection *connection)
{
	struct http_response res = { 0 };

	if (c->too_big)
		return send_error(connection, 413, "too_large",
		                  "the request body is larger than http_max_body");
	if (c->route->fn == stream_route)
		return stream_start(c, connection);
	c->req.store = pool_get(c->h);
	if (!c->req.store)
		return send_error(connection, 503, "unavailable", "the database cannot be opened");
	if (c->body) {
		c->body[c->len] = '\0';
		c->req.body = c->body;
		c->req.body_len = c->len;
	}
	res.status = 500;
	c->route->fn(&c->req, &res);
	pool_put(c->h, c->req.store);
	c->req.store = NULL;
	if (!res.body && res.status != 204)
		http_error(&res, 500, "internal", "the handler gave no answer");
	return send_response(connection, &res, true);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *connection, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
	struct http *h = cls;
	struct conn *c = *con_cls;
	struct http_response res = { 0 };
	const char *cl;

	(void)version;
	if (!c) {
		request_t0_us = mono_us();
		c = calloc(1, sizeof(*c));
		if (!c)
			return MHD_NO;
		*con_cls = c;
		c->h = h;
		c->req.conn = connection;
		c->req.svc = h->svc;
		c->req.method = method;
		c->req.path = c->path;
		client_address(connection, c->client, sizeof(c->client));
		if (strlen(url) >= sizeof(c->path))
			return send_error(connection, 414, "uri_too_long", "the path is too long");
		memcpy(c->path, url, strlen(url) + 1);
		if (strncmp(c->path, "/api/", 5) != 0 && strcmp(c->path, "/api") != 0)
			return serve_asset(connection, method, c->path);
		/* refused on the declared size, before any of it is read */
		cl = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
		                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl && strtoull(cl, NULL, 10) > h->svc->cfg->http_max_body)
			return send_error(connection, 413, "too_large",
			                  "the request body is larger than http_max_body");
		if (admit(c, connection, method, &res) < 0)
			return send_response(connection, &res, true);
		c->started = true;
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		/* beyond the cap the rest is read and dropped: 413 when it is over */
		if (!c->too_big && c->len + n <= h->svc->cfg->http_max_body) {
			if (!c->body) {
				c->body = malloc(h->svc->cfg->http_max_body + 1);
				if (!c->body)
					return MHD_NO;
			}
			memcpy(c->body + c->len, upload_data, n);
			c->len += n;
		} else {
			c->too_big = true;
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (!c->started)
		return MHD_NO;
	return run_handler(c, connection);
}

static void on_completed(void *cls, struct MHD_Connection *connection, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	struct conn *c = *con_cls;

	(void)cls;
	(void)connection;
	(void)toe;
	if (!c)
		return;
	free(c->body);
	free(c);
	*con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	log_warn("http: %s", line);
}

/* --- start and stop --------------------------------------------------------------------- */

static int read_pem(const char *path, char **ret)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	if (!f)
		return -errno;
	for (;;) {
		if (n + 4096 + 1 > cap) {
			char *nb;

			cap = cap ? cap * 2 : 8192;
			if (cap > (1u << 20)) {
				r = -EFBIG;
				goto out;
			}
			nb = realloc(buf, cap);
			if (!nb) {
				r = -ENOMEM;
				goto out;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, 4096, f);

		n += got;
		if (got < 4096)
			break;
	}
	if (ferror(f)) {
		r = -EIO;
		goto out;
	}
	buf[n] = '\0';
	*ret = buf;
	buf = NULL;
out:
	free(buf);
	fclose(f);
	return r;
}

int http_listen_addr(const char *listen, struct sockaddr_storage *ss)
{
	struct addrinfo hints = { 0 }, *ai = NULL;
	char host[128];
	const char *colon = strrchr(listen, ':');
	size_t hl;
	int r;

	if (!colon || colon == listen)
		return -EINVAL;
	hl = (size_t)(colon - listen);
	if (listen[0] == '[') {
		if (hl < 2 || listen[hl - 1] != ']')
			return -EINVAL;
		listen++;
		hl -= 2;
	}
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, listen, hl);
	host[hl] = '\0';
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	r = getaddrinfo(host, colon + 1, &hints, &ai);
	if (r != 0 || !ai)
		return -EADDRNOTAVAIL;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
}

int http_start(const struct http_services *svc, struct http **ret)
{
	const struct dash_config *cfg = svc->cfg;
	struct sockaddr_storage ss = { 0 };
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	                 MHD_USE_ERROR_LOG | MHD_USE_POLL;
	struct http *h;
	int r;

	h = calloc(1, sizeof(*h));
	if (!h)
		return log_error_errno(-ENOMEM, "http");
	h->svc = svc;
	pthread_mutex_init(&h->pool_lock, NULL);
	pthread_mutex_init(&h->snap_lock, NULL);
	atomic_store(&h->snap_gen, INT64_MIN);
	r = http_listen_addr(cfg->http_listen, &ss);
	if (r < 0) {
		log_error("http: cannot listen on '%s': not ADDR:PORT, or the address is unknown",
		          cfg->http_listen);
		goto fail;
	}
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	r = auth_limiter_new(&cfg->login_rate, &h->limiter);
	if (r < 0) {
		log_error_errno(r, "http: login rate limit");
		goto fail;
	}
	if (cfg->tls_cert[0] && cfg->tls_key[0]) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			r = -ENOTSUP;
			log_error("http: tls_cert is set but libmicrohttpd was built without TLS");
			goto fail;
		}
		r = read_pem(cfg->tls_cert, &h->cert_pem);
		if (r < 0) {
			log_error_errno(r, "http: tls_cert %s", cfg->tls_cert);
			goto fail;
		}
		r = read_pem(cfg->tls_key, &h->key_pem);
		if (r < 0) {
			log_error_errno(r, "http: tls_key %s", cfg->tls_key);
			goto fail;
		}
		flags |= MHD_USE_TLS;
		h->tls = true;
	}
	{
		/* the logger first, so libmicrohttpd's own messages about later options reach it */
		struct MHD_OptionItem opts[] = {
			{ MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, h },
			{ MHD_OPTION_SOCK_ADDR, 0, &ss },
			{ MHD_OPTION_CONNECTION_LIMIT, (intptr_t)cfg->http_max_connections, NULL },
			{ MHD_OPTION_CONNECTION_TIMEOUT, REQUEST_TIMEOUT_S, NULL },
			{ MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, NULL },
			{ h->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->cert_pem },
			{ h->tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, h->key_pem },
			{ MHD_OPTION_END, 0, NULL },
		};

		h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_ARRAY, opts,
		                        MHD_OPTION_END);
	}
	if (!h->d) {
		r = -EADDRINUSE;
		log_error("http: cannot serve on %s (address in use, not local, or a bad TLS "
		          "certificate or key)",
		          cfg->http_listen);
		goto fail;
	}
	log_info("http: serving %s://%s", h->tls ? "https" : "http", cfg->http_listen);
	*ret = h;
	return 0;
fail:
	http_stop(h);
	*ret = NULL;
	return r;
}

struct http *http_stop(struct http *h)
{
	if (!h)
		return NULL;
	/* streams see the flag within STREAM_SLICE; MHD_stop_daemon joins every thread */
	atomic_store(&h->stopping, true);
	if (h->d)
		MHD_stop_daemon(h->d);
	for (size_t i = 0; i < h->n_pool; i++)
		store_close(h->pool[i]);
	auth_limiter_free(h->limiter);
	if (h->key_pem) {
		memset(h->key_pem, 0, strlen(h->key_pem));
		free(h->key_pem);
	}
	free(h->cert_pem);
	pthread_mutex_destroy(&h->pool_lock);
	snap_put(h, h->snap);
	pthread_mutex_destroy(&h->snap_lock);
	free(h);
	return NULL;
}
