/* SPDX-License-Identifier: MIT */
/*
 * http: the dashboard's web server (libmicrohttpd, its own threads; HTTPS when tls_cert and
 * tls_key are set). It parses the request, caps the body (http_max_body: 413), authenticates
 * (Bearer token or session cookie, CSRF on state-changing cookie requests), and dispatches to
 * the routes of the API (api.c) and the UI assets (ui.h). Every error is JSON:
 * {"error": {"code": "...", "message": "..."}}.
 *
 * Threading: handlers run on libmicrohttpd's worker threads, several at once. Each call gets a
 * store connection of its own (req->store), so handlers only touch their request, their
 * response, the store connection, and thread-safe services (hub.h, cmdsend.h).
 */
#ifndef CRADLE_DASH_HTTP_H
#define CRADLE_DASH_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"

struct cJSON;
struct dash_config;
struct hub;
struct cmdsend;
struct store;
struct http;
struct http_request;

#define HTTP_PATH_ARGS_MAX 4

/* Everything a handler may use; the services are shared and thread-safe. */
struct http_services {
	const struct dash_config *cfg;
	const char *db_path;     /* handlers' store connections are opened on it */
	struct hub *hub;         /* live updates (SSE) */
	struct cmdsend *cmdsend; /* commands to agents; NULL: commands refused with 503 */
};

struct http_request {
	const char *method;                   /* "GET", "POST", "DELETE", ... */
	const char *path;                     /* without the query string */
	const char *args[HTTP_PATH_ARGS_MAX]; /* {name} parts of the route pattern, in order */
	const char *body;                     /* NUL-terminated, NULL when none */
	size_t body_len;
	struct auth_principal who; /* established before the handler runs */
	struct store *store;       /* this call's connection */
	const struct http_services *svc;
	void *conn; /* libmicrohttpd connection (http.c only) */
};

struct http_response {
	int status;
	const char *content_type; /* static string; NULL = application/json */
	char *body;               /* heap, freed by http.c */
	size_t len;
	const char *content_disposition; /* static or NULL (CSV downloads) */
	char *set_cookie;                /* heap or NULL, freed by http.c (login, logout) */
	unsigned retry_after_s;          /* > 0: a Retry-After header (429) */
};

typedef void (*http_handler)(struct http_request *req, struct http_response *res);

/* A route: pattern segments written {name} match one path segment (e.g.
 * "/api/v1/devices/{udid}/history"). min_role AUTH_NONE = public (login, static assets). */
struct http_route {
	const char *method;
	const char *pattern;
	enum auth_role min_role;
	http_handler fn;
};

/* The API's routes (api.c) and their number. */
extern const struct http_route api_routes[];
extern const size_t api_n_routes;

/* Query-string parameter name of req, NULL when absent. */
const char *http_query(const struct http_request *req, const char *name);
/* A request header, NULL when absent. */
const char *http_header(const struct http_request *req, const char *name);

/*
 * The request body as a JSON object. NULL (and res set to 400 bad_request / bad_json) when
 * there is none, it does not parse, or it is not an object. Free the result with cJSON_Delete.
 */
struct cJSON *http_body_json(const struct http_request *req, struct http_response *res);

/* Sets res to the JSON of root (consumed: freed here). */
void http_json(struct http_response *res, int status, struct cJSON *root);
/* Sets res to {"error": {"code": code, "message": ...}}. */
void http_error(struct http_response *res, int status, const char *code, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

/* listen (ADDR:PORT, [IPv6]:PORT or NAME:PORT) as a socket address (ss: a struct
 * sockaddr_storage). 0, -EINVAL (not that form) or -EADDRNOTAVAIL (unknown name). */
struct sockaddr_storage;
int http_listen_addr(const char *listen, struct sockaddr_storage *ss);

/* Starts serving on cfg->http_listen. 0, or -errno (logged). svc borrowed: must outlive it. */
int http_start(const struct http_services *svc, struct http **ret);
/* Stops accepting, ends streams, waits for running handlers. NULL-safe; returns NULL. */
struct http *http_stop(struct http *h);

#endif
