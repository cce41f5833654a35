/* SPDX-License-Identifier: MIT */
/*
 * notify_send: the bodies of each receiver type and one libcurl transfer (notify_send.h).
 * Webhooks are an HTTP POST of JSON; the generic webhook is signed (X-Cradle-Signature, over
 * "<t>.<body>" so a captured request cannot be replayed later with a new timestamp). E-mail goes
 * over SMTP; an smtp:// URL must upgrade with STARTTLS (CURLUSESSL_ALL), never falls back to
 * plain text.
 */
#include "notify_send.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "notify.h"
#include "timefmt.h"
#include "version.h"

/* A growing heap string. */
struct buf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		char *p;

		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (!p) {
			b->oom = true;
			return;
		}
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		buf_add(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static char *buf_take(struct buf *b)
{
	if (b->oom || !b->p) {
		free(b->p);
		return NULL;
	}
	return b->p;
}

int notify_sign(const char *secret, int64_t t, const char *body, size_t len, char *out,
                size_t outsz)
{
	static char sha256[] = "SHA256";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char prefix[32];
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	size_t n = 0;
	int r = -EIO;

	snprintf(prefix, sizeof(prefix), "%" PRId64 ".", t);
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	if (!ctx)
		goto out;
	params[0] = OSSL_PARAM_construct_utf8_string("digest", sha256, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_init(ctx, (const unsigned char *)secret, strlen(secret), params) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)prefix, strlen(prefix)) ||
	    !EVP_MAC_update(ctx, (const unsigned char *)body, len) ||
	    !EVP_MAC_final(ctx, md, &n, sizeof(md)))
		goto out;
	mdlen = (unsigned int)n;
	if (outsz < strlen(prefix) + 8 + 2 * mdlen) {
		r = -ENOSPC;
		goto out;
	}
	n = (size_t)snprintf(out, outsz, "t=%" PRId64 ",v1=", t);
	for (unsigned int i = 0; i < mdlen; i++)
		n += (size_t)snprintf(out + n, outsz - n, "%02x", md[i]);
	r = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return r;
}

static const char *str(const cJSON *o, const char *name)
{
	const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));

	return s ? s : "";
}

static void count_states(const cJSON *alerts, int *fired, int *resolved)
{
	const cJSON *a;

	*fired = *resolved = 0;
	cJSON_ArrayForEach(a, alerts) {
		if (strcmp(str(a, "state"), "resolved") == 0)
			(*resolved)++;
		else
			(*fired)++;
	}
}

/* One line per alert for humans: "FIRING backup_stale udid X (north/st1): summary". */
static void alert_line(struct buf *b, const cJSON *a)
{
	const char *site = str(a, "site"), *station = str(a, "station");

	buf_printf(b, "%s %s %s %s",
	           strcmp(str(a, "state"), "resolved") == 0 ? "RESOLVED" : "FIRING", str(a, "rule"),
	           str(a, "subject_kind"), str(a, "subject"));
	if (site[0] || station[0])
		buf_printf(b, " (%s%s%s)", site, station[0] ? "/" : "", station);
	buf_printf(b, ": %.400s", str(a, "summary"));
}

/* The title of a message: one alert's own line, or a digest's counts. */
static void title(struct buf *b, const cJSON *alerts, bool digest)
{
	int fired, resolved;

	count_states(alerts, &fired, &resolved);
	if (!digest && cJSON_GetArraySize(alerts) == 1) {
		const cJSON *a = cJSON_GetArrayItem(alerts, 0);

		buf_printf(b, "[%s] %s: %.300s",
		           strcmp(str(a, "state"), "resolved") == 0 ? "RESOLVED" : "FIRING",
		           str(a, "rule"), str(a, "summary"));
		return;
	}
	buf_printf(b, "cradle digest: %d fired, %d resolved", fired, resolved);
}

/* Calls fn for each human line (at most NOTIFY_TEXT_LINES_MAX, then an "and N more" line). */
static void each_line(const cJSON *alerts, void (*fn)(void *data, const char *line), void *data)
{
	int n = cJSON_GetArraySize(alerts), i = 0;
	const cJSON *a;

	cJSON_ArrayForEach(a, alerts) {
		struct buf b = { 0 };

		if (i++ == NOTIFY_TEXT_LINES_MAX) {
			char more[96];

			snprintf(more, sizeof(more),
			         "... and %d more (see the dashboard's alerts page)",
			         n - NOTIFY_TEXT_LINES_MAX);
			fn(data, more);
			break;
		}
		alert_line(&b, a);
		if (b.p && !b.oom)
			fn(data, b.p);
		free(b.p);
	}
}

char *notify_body_webhook(const struct dash_receiver *rcv, const struct cJSON *alerts, bool digest,
                          int64_t now)
{
	cJSON *o = cJSON_CreateObject();
	char ts[40];
	int fired, resolved;
	char *s = NULL;

	if (!o)
		return NULL;
	count_states(alerts, &fired, &resolved);
	if (timefmt_rfc3339(now, ts, sizeof(ts)) < 0)
		ts[0] = '\0';
	cJSON_AddStringToObject(o, "type", "cradle.alerts.v1");
	cJSON_AddStringToObject(o, "receiver", rcv->name);
	cJSON_AddStringToObject(o, "sent_at", ts);
	cJSON_AddBoolToObject(o, "digest", digest);
	cJSON_AddNumberToObject(o, "fired", fired);
	cJSON_AddNumberToObject(o, "resolved", resolved);
	cJSON_AddItemToObject(o, "alerts", cJSON_Duplicate(alerts, true));
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

/* Slack's mrkdwn needs &, < and > escaped (https://api.slack.com/reference/surfaces/formatting). */
static void slack_escape(struct buf *b, const char *s)
{
	for (; *s; s++) {
		if (*s == '&')
			buf_add(b, "&amp;", 5);
		else if (*s == '<')
			buf_add(b, "&lt;", 4);
		else if (*s == '>')
			buf_add(b, "&gt;", 4);
		else
			buf_add(b, s, 1);
	}
}

static void slack_line(void *data, const char *line)
{
	struct buf *b = data;

	buf_add(b, "\n• ", strlen("\n• "));
	slack_escape(b, line);
}

char *notify_body_slack(const struct cJSON *alerts, bool digest)
{
	struct buf t = { 0 }, b = { 0 };
	cJSON *o = cJSON_CreateObject();
	char *s = NULL, *tt;

	title(&t, alerts, digest);
	tt = buf_take(&t);
	buf_add(&b, "*", 1);
	slack_escape(&b, tt ? tt : "");
	buf_add(&b, "*", 1);
	each_line(alerts, slack_line, &b);
	if (o && b.p && !b.oom) {
		cJSON_AddStringToObject(o, "text", b.p);
		s = cJSON_PrintUnformatted(o);
	}
	free(tt);
	free(b.p);
	cJSON_Delete(o);
	return s;
}

static void teams_line(void *data, const char *line)
{
	cJSON *body = data, *tb = cJSON_CreateObject();

	cJSON_AddStringToObject(tb, "type", "TextBlock");
	cJSON_AddStringToObject(tb, "text", line);
	cJSON_AddBoolToObject(tb, "wrap", true);
	cJSON_AddItemToArray(body, tb);
}

/* A message with one Adaptive Card: what Teams' incoming webhooks (Workflows) accept. */
char *notify_body_teams(const struct cJSON *alerts, bool digest)
{
	cJSON *o = cJSON_CreateObject(), *atts, *att, *card, *body, *tb;
	struct buf t = { 0 };
	char *s = NULL, *tt;

	title(&t, alerts, digest);
	tt = buf_take(&t);
	if (!o || !tt)
		goto out;
	cJSON_AddStringToObject(o, "type", "message");
	atts = cJSON_AddArrayToObject(o, "attachments");
	att = cJSON_CreateObject();
	cJSON_AddItemToArray(atts, att);
	cJSON_AddStringToObject(att, "contentType", "application/vnd.microsoft.card.adaptive");
	cJSON_AddNullToObject(att, "contentUrl");
	card = cJSON_AddObjectToObject(att, "content");
	cJSON_AddStringToObject(card, "$schema",
	                        "http://adaptivecards.io/schemas/adaptive-card.json");
	cJSON_AddStringToObject(card, "type", "AdaptiveCard");
	cJSON_AddStringToObject(card, "version", "1.4");
	body = cJSON_AddArrayToObject(card, "body");
	tb = cJSON_CreateObject();
	cJSON_AddStringToObject(tb, "type", "TextBlock");
	cJSON_AddStringToObject(tb, "text", tt);
	cJSON_AddStringToObject(tb, "weight", "Bolder");
	cJSON_AddStringToObject(tb, "size", "Medium");
	cJSON_AddBoolToObject(tb, "wrap", true);
	cJSON_AddItemToArray(body, tb);
	each_line(alerts, teams_line, body);
	s = cJSON_PrintUnformatted(o);
out:
	free(tt);
	cJSON_Delete(o);
	return s;
}

/* A header value: control characters (CR, LF: header injection) become blanks. */
static void header_value(struct buf *b, const char *s)
{
	bool ascii = true;

	for (const char *p = s; *p; p++)
		if ((unsigned char)*p >= 0x80)
			ascii = false;
	if (ascii) {
		for (; *s; s++)
			buf_add(b, (unsigned char)*s < 0x20 ? " " : s, 1);
		return;
	}
	/* RFC 2047: =?UTF-8?B?...?= */
	{
		size_t n = strlen(s);
		unsigned char *enc = malloc(4 * ((n + 2) / 3) + 1);

		if (!enc) {
			b->oom = true;
			return;
		}
		EVP_EncodeBlock(enc, (const unsigned char *)s, (int)n);
		buf_printf(b, "=?UTF-8?B?%s?=", enc);
		free(enc);
	}
}

static void email_line(void *data, const char *line)
{
	struct buf *b = data;

	for (const char *p = line; *p; p++)
		buf_add(b, (*p == '\r' || *p == '\n') ? " " : p, 1);
	buf_add(b, "\r\n", 2);
}

char *notify_body_email(const struct dash_receiver *rcv, const struct cJSON *alerts, bool digest,
                        int64_t now)
{
	struct buf b = { 0 }, t = { 0 };
	char date[64], *tt;
	time_t tn = (time_t)now;
	struct tm tm;
	static const char *const wd[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const mo[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
		                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

	gmtime_r(&tn, &tm);
	/* RFC 5322 date, English names whatever the locale */
	snprintf(date, sizeof(date), "%s, %02d %s %04d %02d:%02d:%02d +0000", wd[tm.tm_wday],
	         tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	title(&t, alerts, digest);
	tt = buf_take(&t);
	buf_printf(&b, "Date: %s\r\nFrom: ", date);
	header_value(&b, rcv->from);
	buf_add(&b, "\r\nTo: ", 6);
	header_value(&b, rcv->to);
	buf_add(&b, "\r\nSubject: ", 11);
	header_value(&b, tt ? tt : "cradle alert");
	buf_printf(&b,
	           "\r\nMessage-ID: <cradle-%" PRId64 "-%08x@cradle-dashboard>\r\n"
	           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
	           "Content-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-generated\r\n\r\n",
	           now, arc4random());
	each_line(alerts, email_line, &b);
	buf_add(&b, "\r\n-- \r\ncradle-dashboard\r\n", strlen("\r\n-- \r\ncradle-dashboard\r\n"));
	free(tt);
	return buf_take(&b);
}

struct upload {
	const char *p;
	size_t left;
};

static size_t upload_read(char *ptr, size_t size, size_t nmemb, void *data)
{
	struct upload *u = data;
	size_t n = size * nmemb;

	if (n > u->left)
		n = u->left;
	memcpy(ptr, u->p, n);
	u->p += n;
	u->left -= n;
	return n;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *data)
{
	(void)ptr;
	(void)data;
	return size * nmemb;
}

/* Aborts the transfer when the worker is stopping. */
static int progress(void *data, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                    curl_off_t ulnow)
{
	atomic_bool *stop = data;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return atomic_load(stop) ? 1 : 0;
}

static void common_opts(CURL *c, int64_t timeout_s, atomic_bool *stop, char *errbuf)
{
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)timeout_s);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)(timeout_s < 10 ? timeout_s : 10));
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, stop);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "cradle-dashboard/" CRADLE_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
}

static enum notify_send_result curl_result(CURL *c, CURLcode cr, atomic_bool *stop,
                                           const char *errbuf, bool http, char *err, size_t errsz)
{
	long code = 0;

	if (cr == CURLE_ABORTED_BY_CALLBACK && atomic_load(stop)) {
		snprintf(err, errsz, "stopping");
		return NOTIFY_ABORTED;
	}
	if (cr != CURLE_OK) {
		snprintf(err, errsz, "%s", errbuf[0] ? errbuf : curl_easy_strerror(cr));
		if (cr == CURLE_URL_MALFORMAT || cr == CURLE_UNSUPPORTED_PROTOCOL)
			return NOTIFY_PERMANENT;
		return NOTIFY_RETRY;
	}
	if (!http)
		return NOTIFY_SENT;
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	if (code >= 200 && code < 300)
		return NOTIFY_SENT;
	snprintf(err, errsz, "HTTP %ld", code);
	if (code >= 400 && code < 500 && code != 408 && code != 429)
		return NOTIFY_PERMANENT;
	return NOTIFY_RETRY;
}

static enum notify_send_result send_http(CURL *c, const struct dash_receiver *rcv, const char *body,
                                         int64_t now, int64_t timeout_s, atomic_bool *stop,
                                         char *err, size_t errsz)
{
	char errbuf[CURL_ERROR_SIZE] = "", sig[160], hdr[200];
	struct curl_slist *h = NULL;
	enum notify_send_result res;
	CURLcode cr;

	h = curl_slist_append(h, "Content-Type: application/json");
	if (rcv->type == DASH_RECEIVER_WEBHOOK && rcv->secret[0]) {
		if (notify_sign(rcv->secret, now, body, strlen(body), sig, sizeof(sig)) < 0) {
			snprintf(err, errsz, "cannot sign the body");
			curl_slist_free_all(h);
			return NOTIFY_RETRY;
		}
		snprintf(hdr, sizeof(hdr), "X-Cradle-Signature: %s", sig);
		h = curl_slist_append(h, hdr);
	}
	common_opts(c, timeout_s, stop, errbuf);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_URL, rcv->url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	if (rcv->cacert[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, rcv->cacert);
	cr = curl_easy_perform(c);
	res = curl_result(c, cr, stop, errbuf, true, err, errsz);
	curl_slist_free_all(h);
	return res;
}

static enum notify_send_result send_email(CURL *c, const struct dash_receiver *rcv, const char *msg,
                                          int64_t timeout_s, atomic_bool *stop, char *err,
                                          size_t errsz)
{
	char errbuf[CURL_ERROR_SIZE] = "", from[300], to[sizeof(rcv->to)], *save = NULL, *item;
	struct curl_slist *rcpt = NULL;
	struct upload u = { msg, strlen(msg) };
	enum notify_send_result res;
	CURLcode cr;

	snprintf(from, sizeof(from), "<%s>", rcv->from);
	snprintf(to, sizeof(to), "%s", rcv->to);
	for (item = strtok_r(to, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		char addr[300];

		while (*item == ' ')
			item++;
		snprintf(addr, sizeof(addr), "<%s>", item);
		rcpt = curl_slist_append(rcpt, addr);
	}
	common_opts(c, timeout_s, stop, errbuf);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(c, CURLOPT_URL, rcv->url);
	/* smtp://: STARTTLS or nothing; smtps:// is TLS from the start */
	curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &u);
	if (rcv->user[0]) {
		curl_easy_setopt(c, CURLOPT_USERNAME, rcv->user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, rcv->password);
	}
	if (rcv->cacert[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, rcv->cacert);
	cr = curl_easy_perform(c);
	res = curl_result(c, cr, stop, errbuf, false, err, errsz);
	curl_slist_free_all(rcpt);
	return res;
}

enum notify_send_result notify_send(const struct dash_receiver *rcv, const struct cJSON *alerts,
                                    bool digest, int64_t timeout_s, atomic_bool *stop, char *err,
                                    size_t errsz)
{
	int64_t now = (int64_t)time(NULL);
	enum notify_send_result res = NOTIFY_RETRY;
	char *body = NULL;
	CURL *c = curl_easy_init();

	err[0] = '\0';
	switch (rcv->type) {
	case DASH_RECEIVER_WEBHOOK:
		body = notify_body_webhook(rcv, alerts, digest, now);
		break;
	case DASH_RECEIVER_SLACK:
		body = notify_body_slack(alerts, digest);
		break;
	case DASH_RECEIVER_TEAMS:
		body = notify_body_teams(alerts, digest);
		break;
	case DASH_RECEIVER_EMAIL:
		body = notify_body_email(rcv, alerts, digest, now);
		break;
	case DASH_RECEIVER_NONE:
		break;
	}
	if (!c || !body) {
		snprintf(err, errsz, "out of memory");
		goto out;
	}
	if (rcv->type == DASH_RECEIVER_EMAIL)
		res = send_email(c, rcv, body, timeout_s, stop, err, errsz);
	else
		res = send_http(c, rcv, body, now, timeout_s, stop, err, errsz);
out:
	free(body);
	if (c)
		curl_easy_cleanup(c);
	return res;
}
