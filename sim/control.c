/* SPDX-License-Identifier: MIT */
/*
 * control: the test-facing side door of cradle-sim. A UNIX socket takes JSON lines; each line
 * is an object whose "op" names the request (list, attach, detach, set, pairing, journal,
 * syslog, clock) and
 * gets exactly one reply line, {"ok":true,...} or {"ok":false,"error":"..."}. JSON lines keep
 * shell tests simple (one python3 -c or socat) and need nothing beyond cJSON here.
 *
 * Malformed input gets an error reply, never a crash; a line longer than CONTROL_LINE_MAX is
 * answered with an error and skipped up to its newline. Output per client is capped.
 */
#include "control.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "listener.h"
#include "log.h"
#include "loop.h"
#include "outbuf.h"
#include "scenario.h"
#include "sim.h"
#include "timefmt.h"

struct control_client {
	struct control_client *next, *prev;
	struct control *ctl;
	int fd;
	bool skipping; /* discarding the rest of an over-long line */
	char *in;
	size_t in_len, in_cap;
	struct outbuf out;
};

struct control {
	struct sim *sim;
	int fd;
	char path[108];
	struct control_client *clients;
	int n_clients;
};

/* ---- requests ---- */

static char *reply_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *reply_error(const char *fmt, ...)
{
	char msg[600];
	cJSON *r = cJSON_CreateObject();
	char *s;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cJSON_AddFalseToObject(r, "ok");
	cJSON_AddStringToObject(r, "error", msg);
	s = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	return s;
}

static cJSON *device_json(struct sim_device *dev)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "udid", dev->udid);
	cJSON_AddBoolToObject(o, "attached", dev->attached);
	if (dev->attached)
		cJSON_AddNumberToObject(o, "device_id", dev->device_id);
	else
		cJSON_AddNullToObject(o, "device_id");
	cJSON_AddStringToObject(o, "pairing", scenario_pairing_to_string(dev->pairing));
	return o;
}

static int op_list(struct sim *sim, const cJSON *req, cJSON *reply)
{
	cJSON *arr = cJSON_AddArrayToObject(reply, "devices");
	int i;

	(void)req;
	for (i = 0; arr && i < sim->n_devices; i++)
		cJSON_AddItemToArray(arr, device_json(sim->devices[i]));
	return 0;
}

static struct sim_device *req_device(struct sim *sim, const cJSON *req, char *err, size_t errlen)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(req, "udid");
	struct sim_device *dev;

	if (!cJSON_IsString(u)) {
		snprintf(err, errlen, "udid: expected string");
		return NULL;
	}
	dev = sim_device_by_udid(sim, u->valuestring);
	if (!dev)
		snprintf(err, errlen, "unknown udid '%.100s'", u->valuestring);
	return dev;
}

static void journal_take(struct sim_device *dev, cJSON *into, const char *name)
{
	cJSON *j = dev->journal;

	dev->journal = cJSON_CreateArray();
	if (!j)
		j = cJSON_CreateArray();
	if (name)
		cJSON_AddItemToObject(into, name, j);
	else
		cJSON_AddItemToArray(into, j);
}

static int op_journal(struct sim *sim, const cJSON *req, cJSON *reply, char *err, size_t errlen)
{
	const cJSON *u = cJSON_GetObjectItemCaseSensitive(req, "udid");
	cJSON *all;
	int i;

	if (u) {
		struct sim_device *dev = req_device(sim, req, err, errlen);

		if (!dev)
			return -EINVAL;
		cJSON_AddStringToObject(reply, "udid", dev->udid);
		journal_take(dev, reply, "journal");
		return 0;
	}
	all = cJSON_AddObjectToObject(reply, "journal");
	for (i = 0; all && i < sim->n_devices; i++) {
		struct sim_device *dev = sim->devices[i];

		if (dev->journal && cJSON_GetArraySize(dev->journal) > 0)
			journal_take(dev, all, dev->udid);
	}
	return 0;
}

static int op_set(struct sim *sim, const cJSON *req, cJSON *reply, char *err, size_t errlen)
{
	struct sim_device *dev = req_device(sim, req, err, errlen);
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(req, "domain");
	const cJSON *k = cJSON_GetObjectItemCaseSensitive(req, "key");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, "value");
	const char *domain = "";
	plist_t pv = NULL;
	int64_t offset;
	int r, n;

	if (!dev)
		return -EINVAL;
	if (d && !cJSON_IsNull(d)) {
		if (!cJSON_IsString(d) || strlen(d->valuestring) > 200) {
			snprintf(err, errlen, "domain: expected string");
			return -EINVAL;
		}
		domain = d->valuestring;
	}
	if (!cJSON_IsString(k) || !k->valuestring[0] || strlen(k->valuestring) > 200) {
		snprintf(err, errlen, "key: expected non-empty string");
		return -EINVAL;
	}
	if (!v) {
		snprintf(err, errlen, "value: missing (null removes the key)");
		return -EINVAL;
	}
	if (!cJSON_IsNull(v)) {
		r = scenario_value_to_plist(v, domain, k->valuestring, "value", &pv, err, errlen);
		if (r < 0)
			return r;
		/* {"$now": s} means the simulated clock, not the wall clock */
		if (scenario_is_now(v, &offset)) {
			plist_free(pv);
			pv = plist_new_uint(
			        (uint64_t)(timefmt_unix_to_mac(sim_clock_ms(sim) / 1000) + offset));
		}
	}
	n = sim_device_set_value(sim, dev, domain, k->valuestring, pv);
	cJSON_AddStringToObject(reply, "udid", dev->udid);
	cJSON_AddNumberToObject(reply, "notified", n);
	return 0;
}

/* {"op":"syslog","udid":U,"line":L} or {...,"process":P,"message":M,"level":V}. */
static int op_syslog(struct sim *sim, const cJSON *req, cJSON *reply, char *err, size_t errlen)
{
	struct sim_device *dev = req_device(sim, req, err, errlen);
	const cJSON *line = cJSON_GetObjectItemCaseSensitive(req, "line");
	const cJSON *proc = cJSON_GetObjectItemCaseSensitive(req, "process");
	const cJSON *msg = cJSON_GetObjectItemCaseSensitive(req, "message");
	const cJSON *level = cJSON_GetObjectItemCaseSensitive(req, "level");
	char buf[SIM_SYSLOG_LINE_MAX + 1];
	const char *text;

	if (!dev)
		return -EINVAL;
	if (!!line == !!msg || (line && (proc || level))) {
		snprintf(err, errlen, "syslog: expected either line or process and message");
		return -EINVAL;
	}
	if (line) {
		if (!cJSON_IsString(line) || strlen(line->valuestring) > SIM_SYSLOG_LINE_MAX) {
			snprintf(err, errlen, "line: expected a string of at most %d bytes",
			         SIM_SYSLOG_LINE_MAX);
			return -EINVAL;
		}
		text = line->valuestring;
	} else {
		if (!cJSON_IsString(proc) || !proc->valuestring[0] ||
		    strlen(proc->valuestring) > 63 || !cJSON_IsString(msg) ||
		    (level && (!cJSON_IsString(level) || strlen(level->valuestring) > 15))) {
			snprintf(err, errlen,
			         "process, message, level: expected strings (process 1..63 bytes, "
			         "level at most 15)");
			return -EINVAL;
		}
		if (sim_syslog_format(sim, dev, proc->valuestring,
		                      level ? level->valuestring : "Notice", msg->valuestring, buf,
		                      sizeof(buf)) < 0) {
			snprintf(err, errlen, "syslog: cannot format the line");
			return -EINVAL;
		}
		text = buf;
	}
	cJSON_AddStringToObject(reply, "udid", dev->udid);
	cJSON_AddStringToObject(reply, "line", text);
	cJSON_AddNumberToObject(reply, "delivered", sim_device_syslog(sim, dev, text));
	return 0;
}

/* The simulated clock: {"time_scale", "now" (RFC 3339 ms), "now_mac" (Apple seconds)}. */
static int op_clock(struct sim *sim, cJSON *reply)
{
	int64_t ms = sim_clock_ms(sim);
	char ts[64];

	if (timefmt_rfc3339_ms(ms, ts, sizeof(ts)) < 0)
		return -EINVAL;
	cJSON_AddNumberToObject(reply, "time_scale", sim->time_scale > 0 ? sim->time_scale : 1);
	cJSON_AddStringToObject(reply, "now", ts);
	cJSON_AddNumberToObject(reply, "now_mac", (double)timefmt_unix_to_mac(ms / 1000));
	return 0;
}

static int op_attach(struct sim *sim, const cJSON *req, cJSON *reply, bool attach, char *err,
                     size_t errlen)
{
	struct sim_device *dev = req_device(sim, req, err, errlen);

	if (!dev)
		return -EINVAL;
	if (attach)
		sim_device_attach(sim, dev);
	else
		sim_device_detach(sim, dev);
	cJSON_AddItemToObject(reply, "device", device_json(dev));
	return 0;
}

static int op_pairing(struct sim *sim, const cJSON *req, cJSON *reply, char *err, size_t errlen)
{
	struct sim_device *dev = req_device(sim, req, err, errlen);
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(req, "state");
	enum sim_pairing p;

	if (!dev)
		return -EINVAL;
	if (!cJSON_IsString(s) || scenario_pairing_from_string(s->valuestring, &p) < 0) {
		snprintf(err, errlen,
		         "state: expected one of paired, unpaired, trust_pending, denied, "
		         "invalid_host");
		return -EINVAL;
	}
	sim_device_set_pairing(sim, dev, p);
	cJSON_AddItemToObject(reply, "device", device_json(dev));
	return 0;
}

char *control_handle_line(struct sim *sim, const char *line, size_t len)
{
	char err[512] = "";
	cJSON *req, *reply = NULL;
	const cJSON *op;
	char *s = NULL;
	int r;

	req = cJSON_ParseWithLength(line, len);
	if (!req)
		return reply_error("malformed JSON");
	op = cJSON_GetObjectItemCaseSensitive(req, "op");
	if (!cJSON_IsObject(req) || !cJSON_IsString(op)) {
		s = reply_error("expected an object with a string \"op\"");
		goto out;
	}
	reply = cJSON_CreateObject();
	cJSON_AddTrueToObject(reply, "ok");
	if (strcmp(op->valuestring, "list") == 0)
		r = op_list(sim, req, reply);
	else if (strcmp(op->valuestring, "attach") == 0)
		r = op_attach(sim, req, reply, true, err, sizeof(err));
	else if (strcmp(op->valuestring, "detach") == 0)
		r = op_attach(sim, req, reply, false, err, sizeof(err));
	else if (strcmp(op->valuestring, "set") == 0)
		r = op_set(sim, req, reply, err, sizeof(err));
	else if (strcmp(op->valuestring, "pairing") == 0)
		r = op_pairing(sim, req, reply, err, sizeof(err));
	else if (strcmp(op->valuestring, "journal") == 0)
		r = op_journal(sim, req, reply, err, sizeof(err));
	else if (strcmp(op->valuestring, "syslog") == 0)
		r = op_syslog(sim, req, reply, err, sizeof(err));
	else if (strcmp(op->valuestring, "clock") == 0)
		r = op_clock(sim, reply);
	else {
		snprintf(err, sizeof(err), "unknown op '%.100s'", op->valuestring);
		r = -EINVAL;
	}
	if (r < 0)
		s = reply_error("%s", err[0] ? err : "failed");
	else
		s = cJSON_PrintUnformatted(reply);
out:
	cJSON_Delete(reply);
	cJSON_Delete(req);
	return s;
}

/* ---- sockets ---- */

static void client_close(struct control_client *c)
{
	struct control *ctl = c->ctl;

	loop_del_fd(ctl->sim->loop, c->fd);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		ctl->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ctl->n_clients--;
	free(c->in);
	outbuf_free(&c->out);
	free(c);
}

static int client_queue(struct control_client *c, const char *s)
{
	int r = outbuf_append(&c->out, s, strlen(s), CONTROL_OUTPUT_MAX);

	return r < 0 ? r : outbuf_append(&c->out, "\n", 1, CONTROL_OUTPUT_MAX);
}

static int client_flush(struct control_client *c)
{
	int r = outbuf_flush(&c->out, c->fd);

	if (r < 0)
		return r;
	return loop_mod_fd(c->ctl->sim->loop, c->fd, r ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

static int client_lines(struct control_client *c)
{
	size_t start = 0;
	int r = 0;

	if (c->skipping) {
		char *nl = memchr(c->in, '\n', c->in_len);

		if (!nl) {
			c->in_len = 0;
			return 0;
		}
		start = (size_t)(nl - c->in) + 1;
		c->skipping = false;
	}
	for (;;) {
		char *nl = memchr(c->in + start, '\n', c->in_len - start);
		size_t len;

		if (!nl)
			break;
		len = (size_t)(nl - (c->in + start));
		if (len > 0 && !(len == 1 && c->in[start] == '\r')) {
			char *reply = control_handle_line(c->ctl->sim, c->in + start, len);

			r = reply ? client_queue(c, reply) : -ENOMEM;
			free(reply);
			if (r < 0)
				return r;
		}
		start += len + 1;
	}
	if (start > 0) {
		memmove(c->in, c->in + start, c->in_len - start);
		c->in_len -= start;
	}
	if (c->in_len >= CONTROL_LINE_MAX) {
		char *reply = reply_error("line longer than %u bytes", CONTROL_LINE_MAX);

		r = reply ? client_queue(c, reply) : -ENOMEM;
		free(reply);
		c->in_len = 0;
		c->skipping = true;
	}
	return r;
}

static void client_event(struct loop *loop, int fd, uint32_t events, void *data)
{
	struct control_client *c = data;
	bool eof = false;
	int r = 0;

	(void)loop;
	(void)fd;
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		for (;;) {
			ssize_t n;

			if (c->in_cap - c->in_len < 4096) {
				size_t cap = c->in_cap ? c->in_cap * 2 : 8192;
				char *p;

				if (cap > CONTROL_LINE_MAX + 8192)
					cap = CONTROL_LINE_MAX + 8192;
				if (cap <= c->in_len)
					break;
				p = realloc(c->in, cap);
				if (!p) {
					r = -ENOMEM;
					break;
				}
				c->in = p;
				c->in_cap = cap;
			}
			n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN)
					r = -errno;
				break;
			}
			if (n == 0) {
				eof = true;
				break;
			}
			c->in_len += (size_t)n;
			r = client_lines(c);
			if (r < 0)
				break;
		}
	}
	if (r == 0)
		r = client_flush(c);
	/* A client that half-closed after its last request still gets its replies. */
	if (r < 0 || (eof && !outbuf_pending(&c->out)))
		client_close(c);
}

static void listener_event(struct loop *loop, int lfd, uint32_t events, void *data)
{
	struct control *ctl = data;

	(void)events;
	for (;;) {
		struct control_client *c;
		int fd = listener_accept(loop, lfd);

		if (fd < 0)
			return;
		if (ctl->n_clients >= CONTROL_CLIENTS_MAX) {
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c || loop_add_fd(loop, fd, EPOLLIN, client_event, c) < 0) {
			free(c);
			close(fd);
			continue;
		}
		c->ctl = ctl;
		c->fd = fd;
		c->next = ctl->clients;
		if (ctl->clients)
			ctl->clients->prev = c;
		ctl->clients = c;
		ctl->n_clients++;
	}
}

int control_new(struct sim *sim, const char *spec, struct control **ret)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct control *ctl = NULL;
	const char *path = spec;
	int r;

	if (strncasecmp(spec, "unix:", 5) == 0)
		path = spec + 5;
	if (!*path || strlen(path) >= sizeof(sa.sun_path))
		return -EINVAL;
	ctl = calloc(1, sizeof(*ctl));
	if (!ctl)
		return -ENOMEM;
	ctl->sim = sim;
	memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked above */
	snprintf(ctl->path, sizeof(ctl->path), "%s", path);
	ctl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ctl->fd < 0) {
		r = -errno;
		goto out;
	}
	(void)unlink(path);
	if (bind(ctl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ctl->fd, 64) < 0) {
		r = -errno;
		goto out;
	}
	r = loop_add_fd(sim->loop, ctl->fd, EPOLLIN, listener_event, ctl);
	if (r < 0)
		goto out;
	*ret = ctl;
	ctl = NULL;
out:
	if (ctl) {
		if (ctl->fd >= 0)
			close(ctl->fd);
		free(ctl);
	}
	return r;
}

void control_free(struct control *ctl)
{
	if (!ctl)
		return;
	while (ctl->clients)
		client_close(ctl->clients);
	loop_del_fd(ctl->sim->loop, ctl->fd);
	close(ctl->fd);
	(void)unlink(ctl->path);
	free(ctl);
}

const char *control_path(const struct control *ctl)
{
	return ctl->path;
}
