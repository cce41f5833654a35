/* SPDX-License-Identifier: MIT */
/*
 * ingest: MQTT in, SQLite out (ingest.h). Three parts:
 *
 *  - Paho threads (on_* callbacks): copy the message into one allocation and post it to the
 *    loop's mailbox. When INGEST_QUEUE_MAX messages (or INGEST_QUEUE_BYTES) already wait, the
 *    message callback returns 0 so Paho keeps the message and delivers it again later: the
 *    broker's data is never dropped for being fast, the loop just works through a backlog.
 *  - The consumer rules (loop thread): per agent an in-memory record (epoch, seq window, site
 *    and station from its meta), per phone the (agent, session, seq, ts) of the state applied;
 *    both loaded from the store at start, so a restart keeps deduplicating and ordering.
 *  - The batch: every message joins an open transaction; it is committed after
 *    INGEST_BATCH_MAX messages or INGEST_BATCH_MS, and then the changed rows are announced on
 *    the hub. One prepared statement per kind of write.
 */
#include "ingest.h"

#include <MQTTAsync.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "command.h"
#include "config.h"
#include "hub.h"
#include "log.h"
#include "loop.h"
#include "macro.h"
#include "metrics.h"
#include "parse.h"
#include "proto.h"
#include "ratelimit.h"
#include "store.h"
#include "strmap.h"
#include "timefmt.h"
#include "topics.h"

#define INGEST_QUEUE_MAX      50000               /* messages waiting for the loop thread */
#define INGEST_QUEUE_BYTES    (128 * 1024 * 1024) /* their payload bytes */
#define INGEST_WINDOW         4096                /* seq numbers below the highest kept per agent */
#define INGEST_SESSION_EXPIRY (7 * 24 * 3600)     /* persistent session with a share group */
#define INGEST_RETRY_MAX_S    30
/* last_seen and the seq position of an agent are written at most this often (a batch touches
 * up to 1000 agents: a row each per batch would double the writes); lost and duplicate counts
 * go with the next commit */
#define INGEST_AGENTS_MS 2000

/* ---- in-memory indexes ---- */

enum presence {
	PRESENCE_OFFLINE,
	PRESENCE_ONLINE,
	PRESENCE_LOST,
};

static const char *const presence_names[] = { "offline", "online", "lost" };

struct agent_mem {
	char site[PROTO_STR_MAX];
	char station[PROTO_STR_MAX];
	enum presence presence;
	int64_t epoch;                      /* session of the latest birth; -1 unknown */
	int64_t status_session, status_seq; /* of the status applied; -1 unknown */
	int64_t meta_session, meta_seq;
	/* seq tracking of one session: bits for seq in (hi - INGEST_WINDOW, hi] */
	int64_t trk_session; /* -1: none yet */
	int64_t hi;
	uint8_t recv[INGEST_WINDOW / 8]; /* received */
	uint8_t gap[INGEST_WINDOW / 8];  /* counted as lost */
	int64_t lost, dups;
	int64_t last_seen_ms;
	bool dirty;        /* tracking columns to write */
	bool counts_dirty; /* lost or duplicates changed: written with the next commit */
	bool known;        /* row exists in the store */
};

struct dev_mem {
	char agent[PROTO_AGENT_MAX];
	int64_t session, seq, ts_ms;
	bool attached;
	/* effective backup facts, to tell a state change from a repeat */
	bool has_li;
	int64_t last_icloud;
	uint64_t sig;
};

/* ---- what Paho's threads post ---- */

enum ev_kind {
	EV_CONNECTED,
	EV_CONNECT_FAILED,
	EV_LOST,
	EV_SUBSCRIBED,
	EV_SUBSCRIBE_FAILED,
	EV_MESSAGE,
};

struct ev {
	enum ev_kind kind;
	int code;
	bool retained;
	int64_t rx_ms;
	char text[128];
	char *topic;   /* EV_MESSAGE: points into data[] */
	char *payload; /* idem, NUL-terminated */
	size_t len;
	char data[];
};

enum stmt_id {
	ST_AGENT_INSERT,
	ST_AGENT_PRESENCE,
	ST_AGENT_META,
	ST_AGENT_TRACK,
	ST_DEV_UPSERT,
	ST_DEV_DELETE,
	ST_DEV_SITE,
	ST_DEV_OF_AGENT,
	ST_HISTORY,
	ST_CMD_FIND,
	ST_RESULT_INSERT,
	ST_CMD_STATUS,
	_ST_MAX,
};

static const char *const stmt_sql[_ST_MAX] = {
	[ST_AGENT_INSERT] = "INSERT OR IGNORE INTO agents(agent) VALUES (?1)",
	[ST_AGENT_PRESENCE] =
	        "UPDATE agents SET presence = ?2, session = ?3, started_at = coalesce(?4, started_at),"
	        " version = CASE WHEN ?5 != '' THEN ?5 ELSE version END, presence_ms = ?6"
	        " WHERE agent = ?1",
	[ST_AGENT_META] = "UPDATE agents SET site = ?2, station = ?3,"
	                  " version = CASE WHEN ?4 != '' THEN ?4 ELSE version END, meta_json = ?5"
	                  " WHERE agent = ?1",
	[ST_AGENT_TRACK] = "UPDATE agents SET last_seen_ms = max(coalesce(last_seen_ms, 0), ?2),"
	                   " last_session = ?3, last_seq = ?4, lost_messages = ?5, duplicates = ?6"
	                   " WHERE agent = ?1",
	[ST_DEV_UPSERT] =
	        "INSERT INTO devices(udid, serial, name, product_type, ios_version, ios_key, agent,"
	        " site, station, attached, last_seen, has_facts, last_icloud, last_local,"
	        " icloud_enabled, agent_status, probe, pairing, cause_codes, causes_json, state_json,"
	        " state_session, state_seq, state_ts_ms)"
	        " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
	        " ?18, ?19, ?20, ?21, ?22, ?23, ?24)"
	        " ON CONFLICT(udid) DO UPDATE SET"
	        " serial = CASE WHEN excluded.serial != '' THEN excluded.serial ELSE serial END,"
	        " name = CASE WHEN excluded.name != '' THEN excluded.name ELSE name END,"
	        " product_type = CASE WHEN excluded.product_type != '' THEN excluded.product_type"
	        "  ELSE product_type END,"
	        " ios_version = CASE WHEN excluded.ios_version != '' THEN excluded.ios_version"
	        "  ELSE ios_version END,"
	        " ios_key = CASE WHEN excluded.ios_version != '' THEN excluded.ios_key ELSE ios_key END,"
	        " agent = excluded.agent, site = excluded.site, station = excluded.station,"
	        " attached = excluded.attached,"
	        " last_seen = CASE WHEN ?25 THEN last_seen ELSE excluded.last_seen END,"
	        " has_facts = max(has_facts, excluded.has_facts),"
	        " last_icloud = CASE WHEN ?26 THEN excluded.last_icloud"
	        "  ELSE coalesce(excluded.last_icloud, last_icloud) END,"
	        " last_local = CASE WHEN ?26 THEN excluded.last_local"
	        "  ELSE coalesce(excluded.last_local, last_local) END,"
	        " icloud_enabled = coalesce(excluded.icloud_enabled, icloud_enabled),"
	        " agent_status = excluded.agent_status, probe = excluded.probe,"
	        " pairing = excluded.pairing, cause_codes = excluded.cause_codes,"
	        " causes_json = excluded.causes_json, state_json = excluded.state_json,"
	        " state_session = excluded.state_session, state_seq = excluded.state_seq,"
	        " state_ts_ms = excluded.state_ts_ms",
	[ST_DEV_DELETE] = "DELETE FROM devices WHERE udid = ?1 AND agent = ?2",
	[ST_DEV_SITE] = "UPDATE devices SET site = ?2, station = ?3 WHERE agent = ?1",
	[ST_DEV_OF_AGENT] = "SELECT udid FROM devices WHERE agent = ?1",
	[ST_HISTORY] = "INSERT OR IGNORE INTO history(udid, agent, session, seq, ts_ms, kind, name,"
	               " summary, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[ST_CMD_FIND] = "SELECT udid FROM commands WHERE cmd_id = ?1",
	[ST_RESULT_INSERT] = "INSERT OR IGNORE INTO command_results(cmd_id, agent, session, seq,"
	                     " ts_ms, status, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	/* the latest status by the agent's order, whatever order the results arrived in */
	[ST_CMD_STATUS] = "UPDATE commands SET status = ?2, updated_ms = ?5 WHERE cmd_id = ?1"
	                  " AND NOT EXISTS (SELECT 1 FROM command_results r WHERE r.cmd_id = ?1"
	                  " AND (coalesce(r.session, 0) > ?3 OR (coalesce(r.session, 0) = ?3"
	                  " AND r.seq > ?4)))",
};

struct ingest {
	struct loop *loop;
	struct store *store;
	sqlite3 *db;
	struct hub *hub;
	const struct dash_config *cfg;
	sqlite3_stmt *st[_ST_MAX];
	ingest_batch_fn batch_hook; /* jobs: after each commit that changed phones or commands */
	void *batch_hook_data;

	struct strmap *agents; /* agent id -> struct agent_mem */
	struct strmap *devs;   /* udid -> struct dev_mem */

	/* the open batch */
	bool in_tx;
	unsigned batch_n;
	int64_t batch_rx_ms; /* arrival of the batch's first message (metrics: ingest lag) */
	uint64_t batch_timer;
	struct strmap *dirty_dev, *dirty_agent, *dirty_cmd;
	int64_t d_messages, d_malformed, d_dups, d_lost; /* counters table deltas */
	uint64_t agents_written_ms; /* monotonic: the last write of every agent's tracking */
	uint64_t agents_timer;
	bool agents_force;

	/* MQTT */
	MQTTAsync paho;
	struct loop_mailbox *mbox;
	atomic_size_t q_count, q_bytes;
	atomic_uint_fast64_t deferred;
	bool connected, stopped;
	uint64_t retry_timer;
	int retry_s;
	char client_id[160];
	MQTTProperties connect_props;
	MQTTAsync_SSLOptions ssl;
	pthread_mutex_t tls_lock; /* Paho threads: tls_error */
	char tls_error[128];      /* OpenSSL's reason for the last TLS failure, "" when none */

	struct ratelimit *log_rl;
	uint64_t log_suppressed;
	struct ingest_stats stats;
	struct proto_device_state scratch; /* big: kept out of the stack */
};

/* ---- small helpers ---- */

static int64_t ms_to_s(int64_t ms)
{
	return ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
}

static sqlite3_stmt *stmt(struct ingest *in, enum stmt_id id)
{
	sqlite3_stmt *s = in->st[id];

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

static int step_done(struct ingest *in, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		log_error("ingest: %s: %s", what, sqlite3_errmsg(in->db));
		sqlite3_reset(s);
		return -EIO;
	}
	sqlite3_reset(s);
	return 0;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v)
{
	/* static: every statement is stepped and reset before the strings go */
	sqlite3_bind_text(s, i, v ? v : "", -1, SQLITE_STATIC);
}

static void mark(struct strmap *set, const char *key)
{
	if (!strmap_get(set, key))
		(void)strmap_put(set, key, (void *)1, NULL); /* out of memory: a missed notice */
}

static uint64_t fnv(uint64_t h, const char *s)
{
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	h ^= 0xff; /* field separator */
	return h * 1099511628211ULL;
}

/* What makes a state a change worth a history row: not seq, ts, age or battery. */
static uint64_t state_sig(const char *agent, bool attached, const char *status, const char *probe,
                          const char *pairing, int icloud, bool has_li, int64_t li,
                          const char *codes)
{
	char num[48];
	uint64_t h = 1469598103934665603ULL;

	h = fnv(h, agent);
	h = fnv(h, attached ? "1" : "0");
	h = fnv(h, status);
	h = fnv(h, probe);
	h = fnv(h, pairing);
	snprintf(num, sizeof(num), "%d/%d/%" PRId64, icloud, has_li, has_li ? li : 0);
	h = fnv(h, num);
	return fnv(h, codes);
}

/* "17.4.1" -> 17004001, sortable; 0 when not a version. */
static int64_t ios_key(const char *v)
{
	unsigned a = 0, b = 0, c = 0;

	if (sscanf(v, "%u.%u.%u", &a, &b, &c) < 1)
		return 0;
	return (int64_t)a * 1000000 + (int64_t)(b % 1000) * 1000 + (int64_t)(c % 1000);
}

/* ---- malformed messages: counted, logged at a bounded rate ---- */

static void malformed(struct ingest *in, const char *topic, const char *why)
{
	uint64_t now = loop_now_ms();

	in->stats.malformed++;
	in->d_malformed++;
	if (ratelimit_take(in->log_rl, "malformed", now, NULL) < 0) {
		in->log_suppressed++;
		return;
	}
	if (in->log_suppressed)
		log_warn("ingest: dropped a malformed message on '%.160s': %s (and %" PRIu64
		         " more not logged)",
		         topic, why, in->log_suppressed);
	else
		log_warn("ingest: dropped a malformed message on '%.160s': %s", topic, why);
	in->log_suppressed = 0;
}

/* ---- agents ---- */

static struct agent_mem *agent_new_mem(void)
{
	struct agent_mem *a = calloc(1, sizeof(*a));

	if (a) {
		a->epoch = -1;
		a->status_session = a->status_seq = -1;
		a->meta_session = a->meta_seq = -1;
		a->trk_session = -1;
		a->hi = -1;
	}
	return a;
}

static struct agent_mem *agent_get(struct ingest *in, const char *agent)
{
	struct agent_mem *a = strmap_get(in->agents, agent);
	sqlite3_stmt *s;

	if (a && a->known)
		return a;
	if (!a) {
		a = agent_new_mem();
		if (!a || strmap_put(in->agents, agent, a, NULL) < 0) {
			free(a);
			log_error("ingest: out of memory for agent '%s'", agent);
			return NULL;
		}
	}
	/* (again, after a batch that created the row was rolled back) */
	s = stmt(in, ST_AGENT_INSERT);
	bind_text(s, 1, agent);
	if (step_done(in, s, "new agent") == 0)
		a->known = true;
	return a;
}

#define BIT_GET(v, i) ((v)[(i) / 8] & (1u << ((i) % 8)))
#define BIT_SET(v, i) ((v)[(i) / 8] |= (uint8_t)(1u << ((i) % 8)))
#define BIT_CLR(v, i) ((v)[(i) / 8] &= (uint8_t) ~(1u << ((i) % 8)))

static void track_reset(struct agent_mem *a, int64_t session, int64_t seq)
{
	a->trk_session = session;
	a->hi = seq;
	memset(a->recv, 0, sizeof(a->recv));
	memset(a->gap, 0, sizeof(a->gap));
	BIT_SET(a->recv, (size_t)(seq % INGEST_WINDOW));
}

/*
 * The seq rules of proto/README.md for one message of (session, seq). Returns true for a
 * duplicate delivery (already received; not counted for retained replays, which the broker
 * sends again on every subscribe by design). Gaps: a live message beyond the highest seq seen
 * counts the numbers in between as lost; one of them arriving later (another topic, the outbox)
 * takes its count back. A retained replay moves the highest seq on without counting: it says
 * nothing about what came between. Messages of an older session are not tracked (the store's
 * unique keys still dedupe them).
 */
static bool track(struct ingest *in, struct agent_mem *a, int64_t session, int64_t seq,
                  bool retained, bool birth)
{
	size_t bit = (size_t)(seq % INGEST_WINDOW);

	a->dirty = true;
	if (a->trk_session < 0 || (birth && session != a->trk_session) ||
	    session > a->trk_session) {
		track_reset(a, session, seq);
		return false;
	}
	if (session != a->trk_session)
		return false;
	if (seq > a->hi) {
		int64_t gap = seq - a->hi - 1;
		int64_t from = a->hi + 1;

		if (seq - from >= INGEST_WINDOW)
			from = seq - INGEST_WINDOW + 1;
		for (int64_t s = from; s <= seq; s++) {
			BIT_CLR(a->recv, (size_t)(s % INGEST_WINDOW));
			BIT_CLR(a->gap, (size_t)(s % INGEST_WINDOW));
			if (!retained && s < seq)
				BIT_SET(a->gap, (size_t)(s % INGEST_WINDOW));
		}
		if (!retained && gap > 0) {
			a->counts_dirty = true;
			a->lost += gap;
			in->d_lost += gap;
			in->stats.lost += gap;
		}
		a->hi = seq;
		BIT_SET(a->recv, bit);
		return false;
	}
	if (a->hi - seq >= INGEST_WINDOW)
		return false; /* too old to tell */
	if (BIT_GET(a->recv, bit)) {
		if (retained)
			return false;
		a->dups++;
		a->counts_dirty = true;
		in->d_dups++;
		in->stats.duplicates++;
		return true;
	}
	BIT_SET(a->recv, bit);
	if (BIT_GET(a->gap, bit)) {
		BIT_CLR(a->gap, bit);
		a->counts_dirty = true;
		a->lost--;
		in->d_lost--;
		in->stats.lost--;
	}
	return false;
}

static void agent_seen(struct ingest *in, const char *agent, struct agent_mem *a, int64_t ts_ms)
{
	if (ts_ms > a->last_seen_ms)
		a->last_seen_ms = ts_ms;
	a->dirty = true;
	mark(in->dirty_agent, agent);
}

static int history(struct ingest *in, const char *udid, const char *agent, const int64_t *session,
                   const int64_t *seq, int64_t ts_ms, const char *kind, const char *name,
                   const char *summary, const char *json, bool *ret_inserted)
{
	sqlite3_stmt *s = stmt(in, ST_HISTORY);
	int r;

	bind_text(s, 1, udid);
	bind_text(s, 2, agent);
	if (session)
		sqlite3_bind_int64(s, 3, *session);
	if (seq)
		sqlite3_bind_int64(s, 4, *seq);
	sqlite3_bind_int64(s, 5, ts_ms);
	bind_text(s, 6, kind);
	bind_text(s, 7, name);
	bind_text(s, 8, summary);
	bind_text(s, 9, json && json[0] ? json : "{}");
	r = step_done(in, s, "history");
	if (ret_inserted)
		*ret_inserted = r == 0 && sqlite3_changes(in->db) > 0;
	return r;
}

/* ---- status: birth, graceful offline, will ---- */

static int set_presence(struct ingest *in, const char *agent, struct agent_mem *a, enum presence p,
                        int64_t session, const struct proto_agent_status *m, int64_t at_ms,
                        const char *json)
{
	sqlite3_stmt *s = stmt(in, ST_AGENT_PRESENCE);
	bool changed = a->presence != p || a->epoch != session;
	char summary[128];
	int r;

	bind_text(s, 1, agent);
	bind_text(s, 2, presence_names[p]);
	sqlite3_bind_int64(s, 3, session);
	if (m->has_started_at)
		sqlite3_bind_int64(s, 4, m->started_at);
	bind_text(s, 5, m->agent_version);
	sqlite3_bind_int64(s, 6, at_ms);
	r = step_done(in, s, "agent presence");
	if (r < 0)
		return r;
	a->presence = p;
	mark(in->dirty_agent, agent);
	mark(in->dirty_agent, ""); /* summary: agents online/offline */
	if (!changed)
		return 0;
	/* its phones are docked or not with it: their rows read differently now */
	s = stmt(in, ST_DEV_OF_AGENT);
	bind_text(s, 1, agent);
	while (sqlite3_step(s) == SQLITE_ROW)
		mark(in->dirty_dev, (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	snprintf(summary, sizeof(summary), "agent %s%s", presence_names[p],
	         m->is_will ? " (the broker saw it vanish)" : "");
	return history(in, "", agent, &session, m->is_will ? NULL : &m->h.seq, at_ms, "presence",
	               presence_names[p], summary, json, NULL);
}

/* The common intake of a message with a header from a known agent: its memory, the seq window
 * (a duplicate or an old message is skipped) and its last-seen time. 1 = apply the message and
 * *ret_a is the agent, 0 = skip it, -ENOMEM. */
static int agent_admit(struct ingest *in, const char *agent, const struct proto_header *h,
                       bool retained, struct agent_mem **ret_a)
{
	struct agent_mem *a = agent_get(in, agent);

	if (!a)
		return -ENOMEM;
	if (track(in, a, h->session, h->seq, retained, false))
		return 0;
	agent_seen(in, agent, a, h->ts_ms);
	*ret_a = a;
	return 1;
}

static int on_status(struct ingest *in, const char *topic, const char *agent, const char *json,
                     size_t len, bool retained, int64_t now_ms)
{
	struct proto_agent_status m;
	struct agent_mem *a;
	char err[PROTO_ERR_MAX];

	if (proto_agent_status_decode(json, len, &m, err, sizeof(err)) < 0) {
		malformed(in, topic, err);
		return 0;
	}
	if (strcmp(m.h.agent, agent) != 0) {
		malformed(in, topic, "agent differs from the topic");
		return 0;
	}
	a = agent_get(in, agent);
	if (!a)
		return -ENOMEM;
	if (m.is_will) {
		/* Sparkplug's bdSeq rule: only the will of the run we hold counts; with none held
		 * (a fresh dashboard finding the retained will) it is all we know */
		agent_seen(in, agent, a, 0);
		if (a->epoch >= 0 && a->epoch != m.h.session)
			return 0;
		if (a->presence == PRESENCE_LOST && a->epoch == m.h.session)
			return 0;
		a->epoch = m.h.session;
		return set_presence(in, agent, a, PRESENCE_LOST, m.h.session, &m, now_ms, json);
	}
	if (track(in, a, m.h.session, m.h.seq, retained, m.online))
		return 0;
	agent_seen(in, agent, a, m.h.ts_ms);
	if (m.h.session == a->status_session && m.h.seq <= a->status_seq)
		return 0; /* older than what we applied */
	if (!m.online && a->epoch >= 0 && m.h.session != a->epoch && a->status_session >= 0 &&
	    m.h.session < a->status_session)
		return 0; /* a goodbye of an earlier run */
	a->status_session = m.h.session;
	a->status_seq = m.h.seq;
	if (m.online)
		a->epoch = m.h.session;
	return set_presence(in, agent, a, m.online ? PRESENCE_ONLINE : PRESENCE_OFFLINE,
	                    m.h.session, &m, m.h.ts_ms, json);
}

/* ---- meta: site and station ---- */

static int on_meta(struct ingest *in, const char *topic, const char *agent, const char *json,
                   size_t len, bool retained)
{
	struct proto_agent_meta m;
	struct agent_mem *a;
	char err[PROTO_ERR_MAX];
	sqlite3_stmt *s;
	bool moved;
	int r;

	if (proto_agent_meta_decode(json, len, &m, err, sizeof(err)) < 0) {
		malformed(in, topic, err);
		return 0;
	}
	if (strcmp(m.h.agent, agent) != 0) {
		malformed(in, topic, "agent differs from the topic");
		return 0;
	}
	r = agent_admit(in, agent, &m.h, retained, &a);
	if (r <= 0)
		return r;
	if (m.h.session == a->meta_session ? m.h.seq <= a->meta_seq
	                                   : (a->meta_session >= 0 && m.h.session != a->epoch &&
	                                      m.h.session < a->meta_session))
		return 0;
	a->meta_session = m.h.session;
	a->meta_seq = m.h.seq;
	s = stmt(in, ST_AGENT_META);
	bind_text(s, 1, agent);
	bind_text(s, 2, m.site);
	bind_text(s, 3, m.station);
	bind_text(s, 4, m.version_agent);
	bind_text(s, 5, json);
	r = step_done(in, s, "agent meta");
	if (r < 0)
		return r;
	moved = strcmp(a->site, m.site) != 0 || strcmp(a->station, m.station) != 0;
	snprintf(a->site, sizeof(a->site), "%s", m.site);
	snprintf(a->station, sizeof(a->station), "%s", m.station);
	mark(in->dirty_agent, agent);
	if (!moved)
		return 0;
	/* the agent's phones are where the agent is */
	s = stmt(in, ST_DEV_SITE);
	bind_text(s, 1, agent);
	bind_text(s, 2, m.site);
	bind_text(s, 3, m.station);
	r = step_done(in, s, "devices of a moved agent");
	if (r < 0)
		return r;
	s = stmt(in, ST_DEV_OF_AGENT);
	bind_text(s, 1, agent);
	while (sqlite3_step(s) == SQLITE_ROW)
		mark(in->dirty_dev, (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);
	return 0;
}

/* ---- device state ---- */

static char *causes_json(const struct proto_device_state *m, char *codes, size_t codes_size)
{
	cJSON *arr = cJSON_CreateArray();
	size_t off = 0;
	char *out;

	codes[0] = '\0';
	if (m->n_causes == 0) {
		cJSON_Delete(arr);
		return strdup("[]");
	}
	for (int i = 0; arr && i < m->n_causes; i++) {
		const struct proto_cause *c = &m->causes[i];
		cJSON *o = cJSON_CreateObject();

		if (!o || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			break;
		}
		cJSON_AddStringToObject(o, "code", c->code);
		cJSON_AddStringToObject(o, "evidence", c->evidence);
		cJSON_AddStringToObject(o, "remediation", c->remediation);
		cJSON_AddStringToObject(o, "complexity", c->complexity);
		off += (size_t)snprintf(codes + off, codes_size - off, "%s%s,", off ? "" : ",",
		                        c->code);
		if (off >= codes_size)
			off = codes_size - 1;
	}
	out = arr ? cJSON_PrintUnformatted(arr) : NULL;
	cJSON_Delete(arr);
	return out;
}

/* The history's detail of a state: what changed, not the whole message (that is in devices).
 * Cause codes match ^[a-z][a-z0-9_]*$ (the decoder checks): nothing to escape. */
static void state_detail(const struct proto_device_state *m, char *buf, size_t size)
{
	char li[TIMEFMT_RFC3339_MAX] = "", list[PROTO_MAX_CAUSES * (PROTO_CODE_MAX + 3) + 1] = "";
	size_t off = 0;

	if (m->has_last_icloud && timefmt_rfc3339(m->last_icloud, li, sizeof(li)) < 0)
		li[0] = '\0';
	for (int i = 0; i < m->n_causes && off < sizeof(list); i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s\"%s\"", i ? "," : "",
		                        proto_code_valid(m->causes[i].code) ? m->causes[i].code
		                                                            : "unknown");
	snprintf(buf, size,
	         "{\"status\":\"%s\",\"attached\":%s,\"probe\":\"%s\",\"pairing\":\"%s\","
	         "\"last_icloud\":%s%s%s,\"icloud_enabled\":%s,\"causes\":[%s]}",
	         proto_status_name(m->status), m->attached ? "true" : "false",
	         proto_probe_name(m->probe), proto_pairing_name(m->pairing), li[0] ? "\"" : "",
	         li[0] ? li : "null", li[0] ? "\"" : "",
	         m->has_icloud_enabled ? (m->icloud_enabled ? "true" : "false") : "null", list);
}

static int on_state(struct ingest *in, const char *topic, const char *agent, const char *udid,
                    const char *json, size_t len, bool retained)
{
	struct proto_device_state *m = &in->scratch;
	const char *status, *probe, *pairing;
	struct dev_mem *d, nd;
	struct agent_mem *a;
	char err[PROTO_ERR_MAX], codes[PROTO_MAX_CAUSES * PROTO_CODE_MAX + 2], summary[512];
	char detail[1024];
	char *cj = NULL;
	bool apply, probe_ok, keep_seen, has_li, inserted;
	int64_t li, ts_s;
	sqlite3_stmt *s;
	int icloud, r;

	if (proto_device_state_decode(json, len, m, err, sizeof(err)) < 0) {
		malformed(in, topic, err);
		return 0;
	}
	if (strcmp(m->h.agent, agent) != 0 || strcmp(m->udid, udid) != 0) {
		malformed(in, topic, "agent or udid differs from the topic");
		return 0;
	}
	r = agent_admit(in, agent, &m->h, retained, &a);
	if (r <= 0)
		return r;

	/* One row per phone wherever it docks. The same agent orders by (session, seq), or by ts
	 * across its runs; another agent takes the phone over only when it says the phone is
	 * attached there, later: a station that republishes its old "detached" after a reconnect
	 * must not pull a phone away from the station it sits in now. */
	d = strmap_get(in->devs, udid);
	if (!d)
		apply = true;
	else if (strcmp(d->agent, agent) == 0)
		apply = m->h.session == d->session ? m->h.seq > d->seq : m->h.ts_ms > d->ts_ms;
	else
		apply = m->attached && m->h.ts_ms > d->ts_ms;
	if (!apply)
		return 0;

	probe_ok = m->probe == PROTO_PROBE_OK;
	status = proto_status_name(m->status);
	probe = proto_probe_name(m->probe);
	pairing = proto_pairing_name(m->pairing);
	ts_s = ms_to_s(m->h.ts_ms);
	/* last seen docked: now when attached; at the unplug when this agent saw it leave;
	 * otherwise unchanged (a repeated "detached" is not a sighting) */
	keep_seen = d && !m->attached && !(d->attached && strcmp(d->agent, agent) == 0);
	/* the effective backup facts: a failed probe knows nothing, the last known stay */
	if (probe_ok || m->has_last_icloud) {
		has_li = m->has_last_icloud;
		li = m->last_icloud;
	} else {
		has_li = d && d->has_li;
		li = d ? d->last_icloud : 0;
	}
	icloud = m->has_icloud_enabled ? m->icloud_enabled : -1;
	cj = causes_json(m, codes, sizeof(codes));
	if (!cj)
		return -ENOMEM;

	s = stmt(in, ST_DEV_UPSERT);
	bind_text(s, 1, udid);
	bind_text(s, 2, m->serial);
	bind_text(s, 3, m->has_name ? m->name : "");
	bind_text(s, 4, m->product_type);
	bind_text(s, 5, m->ios_version);
	sqlite3_bind_int64(s, 6, ios_key(m->ios_version));
	bind_text(s, 7, agent);
	bind_text(s, 8, a->site);
	bind_text(s, 9, a->station);
	sqlite3_bind_int(s, 10, m->attached);
	sqlite3_bind_int64(s, 11, ts_s);
	sqlite3_bind_int(s, 12, probe_ok);
	if (m->has_last_icloud)
		sqlite3_bind_int64(s, 13, m->last_icloud);
	if (m->has_last_local)
		sqlite3_bind_int64(s, 14, m->last_local);
	if (m->has_icloud_enabled)
		sqlite3_bind_int(s, 15, m->icloud_enabled);
	bind_text(s, 16, status);
	bind_text(s, 17, probe);
	bind_text(s, 18, pairing);
	bind_text(s, 19, codes);
	sqlite3_bind_text(s, 20, cj, -1, free);
	sqlite3_bind_text(s, 21, json, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 22, m->h.session);
	sqlite3_bind_int64(s, 23, m->h.seq);
	sqlite3_bind_int64(s, 24, m->h.ts_ms);
	sqlite3_bind_int(s, 25, keep_seen);
	sqlite3_bind_int(s, 26, probe_ok);
	r = step_done(in, s, "device state");
	if (r < 0)
		return r;

	memset(&nd, 0, sizeof(nd));
	snprintf(nd.agent, sizeof(nd.agent), "%s", agent);
	nd.session = m->h.session;
	nd.seq = m->h.seq;
	nd.ts_ms = m->h.ts_ms;
	nd.attached = m->attached;
	nd.has_li = has_li;
	nd.last_icloud = li;
	nd.sig = state_sig(agent, m->attached, status, probe, pairing, icloud, has_li, li, codes);
	mark(in->dirty_dev, udid);
	if (d && d->sig == nd.sig) {
		*d = nd;
		return 0;
	}
	if (!d) {
		d = malloc(sizeof(*d));
		if (!d || strmap_put(in->devs, udid, d, NULL) < 0) {
			free(d);
			return -ENOMEM;
		}
	}
	*d = nd;
	snprintf(summary, sizeof(summary), "%s%s at %s%s%s%s%s", status,
	         m->attached ? "" : ", detached", agent, probe_ok ? "" : ", probe ",
	         probe_ok ? "" : probe, codes[0] ? ", causes " : "", codes[0] ? codes + 1 : "");
	if (codes[0] && summary[strlen(summary) - 1] == ',')
		summary[strlen(summary) - 1] = '\0';
	state_detail(m, detail, sizeof(detail));
	return history(in, udid, agent, &m->h.session, &m->h.seq, m->h.ts_ms, "state", status,
	               summary, detail, &inserted);
}

/* An empty retained payload: an administrator retired the phone from that agent. */
static int on_state_deleted(struct ingest *in, const char *agent, const char *udid, int64_t now_ms)
{
	struct dev_mem *d = strmap_get(in->devs, udid);
	sqlite3_stmt *s;
	char summary[128];
	int r;

	if (!d || strcmp(d->agent, agent) != 0)
		return 0;
	s = stmt(in, ST_DEV_DELETE);
	bind_text(s, 1, udid);
	bind_text(s, 2, agent);
	r = step_done(in, s, "device delete");
	if (r < 0)
		return r;
	free(strmap_remove(in->devs, udid));
	mark(in->dirty_dev, udid);
	snprintf(summary, sizeof(summary), "retired from %s (retained state cleared)", agent);
	return history(in, udid, agent, NULL, NULL, now_ms, "state", "deleted", summary, NULL,
	               NULL);
}

/* ---- events ---- */

static int on_device_event(struct ingest *in, const char *topic, const char *agent,
                           const char *udid, const char *json, size_t len, bool retained)
{
	struct proto_device_event m;
	const struct proto_event_details *dt = &m.details;
	struct agent_mem *a;
	char err[PROTO_ERR_MAX], summary[PROTO_TEXT_MAX + 64];
	const char *name;
	bool inserted;
	int r;

	if (proto_device_event_decode(json, len, &m, err, sizeof(err)) < 0) {
		malformed(in, topic, err);
		return 0;
	}
	if (strcmp(m.h.agent, agent) != 0 || strcmp(m.udid, udid) != 0) {
		malformed(in, topic, "agent or udid differs from the topic");
		return 0;
	}
	r = agent_admit(in, agent, &m.h, retained, &a);
	if (r <= 0)
		return r;
	name = proto_event_name(m.event);
	if (dt->cause[0])
		snprintf(summary, sizeof(summary), "%s: %s", name, dt->cause);
	else if (dt->error[0])
		snprintf(summary, sizeof(summary), "%s: %s", name, dt->error);
	else if (dt->kind[0])
		snprintf(summary, sizeof(summary), "%s (%s)", name, dt->kind);
	else
		snprintf(summary, sizeof(summary), "%s", name);
	r = history(in, udid, agent, &m.h.session, &m.h.seq, m.h.ts_ms, "event", name, summary,
	            json, &inserted);
	if (r == 0 && !inserted && !retained) {
		/* stored before (a redelivery after a restart of ours) */
		a->dups++;
		a->counts_dirty = true;
		in->d_dups++;
		in->stats.duplicates++;
	}
	if (r == 0 && strmap_get(in->devs, udid))
		mark(in->dirty_dev, udid);
	return r;
}

static int on_agent_event(struct ingest *in, const char *topic, const char *agent, const char *json,
                          size_t len, bool retained)
{
	struct proto_agent_event m;
	struct agent_mem *a;
	char err[PROTO_ERR_MAX], summary[PROTO_TEXT_MAX + 64];
	const char *name;
	bool inserted;
	int r;

	if (proto_agent_event_decode(json, len, &m, err, sizeof(err)) < 0) {
		malformed(in, topic, err);
		return 0;
	}
	if (strcmp(m.h.agent, agent) != 0) {
		malformed(in, topic, "agent differs from the topic");
		return 0;
	}
	r = agent_admit(in, agent, &m.h, retained, &a);
	if (r <= 0)
		return r;
	name = proto_agent_event_name(m.event);
	if (m.event == PROTO_AGENT_EVENT_SECURITY_REJECTED)
		snprintf(summary, sizeof(summary), "%s: %" PRId64 " x %s", name, m.security.count,
		         m.security.reason);
	else
		snprintf(summary, sizeof(summary), "%s", name);
	r = history(in, "", agent, &m.h.session, &m.h.seq, m.h.ts_ms, "agent_event", name, summary,
	            json, &inserted);
	if (r == 0 && !inserted && !retained) {
		a->dups++;
		a->counts_dirty = true;
		in->d_dups++;
		in->stats.duplicates++;
	}
	return r;
}

/* ---- command results: stored for the commands the dashboard sent ---- */

static int on_result(struct ingest *in, const char *topic, const char *agent, const char *json,
                     size_t len, bool retained)
{
	struct command_result m;
	struct agent_mem *a;
	char err[COMMAND_ERR_MAX], udid[PROTO_UDID_MAX], summary[160];
	const char *status;
	int64_t session;
	sqlite3_stmt *s;
	bool inserted;
	int r;

	if (command_result_decode(json, len, &m, err, sizeof(err)) < 0) {
		malformed(in, topic, err);
		return 0;
	}
	if (strcmp(m.agent, agent) != 0) {
		malformed(in, topic, "agent differs from the topic");
		return 0;
	}
	a = agent_get(in, agent);
	if (!a)
		return -ENOMEM;
	session = m.has_session ? m.session : 0;
	if (m.has_session && track(in, a, m.session, m.seq, retained, false))
		return 0;
	agent_seen(in, agent, a, m.ts_ms);

	s = stmt(in, ST_CMD_FIND);
	bind_text(s, 1, m.cmd_id);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return 0; /* not ours (cradle-agent send, another dashboard) */
	}
	snprintf(udid, sizeof(udid), "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_reset(s);

	status = command_status_str(m.status);
	s = stmt(in, ST_RESULT_INSERT);
	bind_text(s, 1, m.cmd_id);
	bind_text(s, 2, agent);
	if (m.has_session)
		sqlite3_bind_int64(s, 3, m.session);
	sqlite3_bind_int64(s, 4, m.seq);
	sqlite3_bind_int64(s, 5, m.ts_ms);
	bind_text(s, 6, status);
	sqlite3_bind_text(s, 7, json, (int)len, SQLITE_STATIC);
	r = step_done(in, s, "command result");
	if (r < 0)
		return r;
	if (sqlite3_changes(in->db) == 0) {
		if (!retained) {
			a->dups++;
			a->counts_dirty = true;
			in->d_dups++;
			in->stats.duplicates++;
		}
		return 0;
	}
	s = stmt(in, ST_CMD_STATUS);
	bind_text(s, 1, m.cmd_id);
	bind_text(s, 2, status);
	sqlite3_bind_int64(s, 3, session);
	sqlite3_bind_int64(s, 4, m.seq);
	sqlite3_bind_int64(s, 5, m.ts_ms);
	r = step_done(in, s, "command status");
	if (r < 0)
		return r;
	mark(in->dirty_cmd, m.cmd_id);
	snprintf(summary, sizeof(summary), "%s: %s%s%s", m.name[0] ? m.name : "command", status,
	         m.cause[0] ? ", " : "", m.cause);
	return history(in, udid, agent, m.has_session ? &m.session : NULL, &m.seq, m.ts_ms,
	               "command", status, summary, json, &inserted);
}

/* ---- the batch ---- */

static void batch_timer_fired(struct loop *loop, uint64_t id, void *data)
{
	struct ingest *in = data;

	(void)loop;
	(void)id;
	in->batch_timer = 0;
	(void)ingest_flush(in);
}

static int batch_open(struct ingest *in)
{
	if (in->in_tx)
		return 0;
	if (store_begin(in->store) < 0)
		return -EIO;
	in->in_tx = true;
	in->batch_n = 0;
	if (in->loop)
		in->batch_timer = loop_add_timer(in->loop, INGEST_BATCH_MS, batch_timer_fired, in);
	return 0;
}

struct track_write {
	struct ingest *in;
	bool all;
	unsigned deferred;
	int r;
};

static void write_agent(const char *agent, void *value, void *ctx)
{
	struct track_write *tw = ctx;
	struct agent_mem *a = value;
	sqlite3_stmt *s;

	if (!a->dirty)
		return;
	if (!tw->all && !a->counts_dirty) {
		tw->deferred++;
		return;
	}
	a->dirty = false;
	a->counts_dirty = false;
	s = stmt(tw->in, ST_AGENT_TRACK);
	bind_text(s, 1, agent);
	sqlite3_bind_int64(s, 2, a->last_seen_ms);
	if (a->trk_session >= 0) {
		sqlite3_bind_int64(s, 3, a->trk_session);
		sqlite3_bind_int64(s, 4, a->hi);
	}
	sqlite3_bind_int64(s, 5, a->lost);
	sqlite3_bind_int64(s, 6, a->dups);
	if (step_done(tw->in, s, "agent tracking") < 0)
		tw->r = -EIO;
}

struct announce {
	struct hub *hub;
	enum hub_kind kind;
};

static void announce_one(const char *key, void *value, void *ctx)
{
	struct announce *an = ctx;

	(void)value;
	if (an->kind == HUB_AGENT && key[0] == '\0')
		return; /* the "agents changed" marker: covered by the summary */
	hub_publish(an->hub, an->kind, key);
}

static void forget_row(const char *key, void *value, void *ctx)
{
	struct agent_mem *a = value;

	(void)key;
	(void)ctx;
	a->known = false;
	a->dirty = true;
}

static void agents_timer_fired(struct loop *loop, uint64_t id, void *data)
{
	struct ingest *in = data;

	(void)loop;
	(void)id;
	in->agents_timer = 0;
	if (batch_open(in) == 0) {
		in->agents_force = true;
		(void)ingest_flush(in);
	}
}

void ingest_set_batch_hook(struct ingest *in, ingest_batch_fn fn, void *data)
{
	in->batch_hook = fn;
	in->batch_hook_data = data;
}

int ingest_flush(struct ingest *in)
{
	struct track_write tw = { in, false, 0, 0 };
	uint64_t now = loop_now_ms();
	int r = 0;

	if (in->batch_timer) {
		loop_cancel_timer(in->loop, in->batch_timer);
		in->batch_timer = 0;
	}
	if (!in->in_tx)
		return 0;
	tw.all = in->agents_force || now - in->agents_written_ms >= INGEST_AGENTS_MS;
	in->agents_force = false;
	strmap_foreach(in->agents, write_agent, &tw);
	if (tw.all)
		in->agents_written_ms = now;
	else if (tw.deferred && in->loop && !in->agents_timer)
		in->agents_timer =
		        loop_add_timer(in->loop, INGEST_AGENTS_MS, agents_timer_fired, in);
	if (in->d_messages)
		r |= store_counter_add(in->store, "messages", in->d_messages);
	if (in->d_malformed)
		r |= store_counter_add(in->store, "malformed", in->d_malformed);
	if (in->d_dups)
		r |= store_counter_add(in->store, "duplicates", in->d_dups);
	if (in->d_lost)
		r |= store_counter_add(in->store, "lost", in->d_lost);
	if (tw.r < 0 || r != 0 || store_commit(in->store) < 0) {
		store_rollback(in->store);
		/* rows this batch created are gone: create them again when next needed */
		strmap_foreach(in->agents, forget_row, NULL);
		log_error("ingest: a batch of %u messages could not be stored", in->batch_n);
		r = -EIO;
	} else {
		in->stats.batches++;
		r = 0;
	}
	in->in_tx = false;
	in->d_messages = in->d_malformed = in->d_dups = in->d_lost = 0;
	{
		struct ingest_stats st;

		ingest_get_stats(in, &st);
		metrics_ingest(&st, (double)(wall_now_ms() - in->batch_rx_ms) / 1000.0);
	}
	if (r == 0 && in->hub) {
		struct announce an = { in->hub, HUB_DEVICE };

		strmap_foreach(in->dirty_dev, announce_one, &an);
		an.kind = HUB_AGENT;
		strmap_foreach(in->dirty_agent, announce_one, &an);
		an.kind = HUB_COMMAND;
		strmap_foreach(in->dirty_cmd, announce_one, &an);
		if (strmap_size(in->dirty_dev) || strmap_size(in->dirty_agent) ||
		    strmap_size(in->dirty_cmd))
			hub_publish(in->hub, HUB_SUMMARY, "");
	}
	if (r == 0 && in->batch_hook &&
	    (strmap_size(in->dirty_dev) || strmap_size(in->dirty_agent) ||
	     strmap_size(in->dirty_cmd)))
		in->batch_hook(in->batch_hook_data,
		               strmap_size(in->dirty_dev) + strmap_size(in->dirty_agent),
		               strmap_size(in->dirty_cmd));
	strmap_clear(in->dirty_dev, NULL);
	strmap_clear(in->dirty_agent, NULL);
	strmap_clear(in->dirty_cmd, NULL);
	return r;
}

int ingest_message(struct ingest *in, const char *topic, const char *payload, size_t len,
                   bool retained, int64_t now_ms)
{
	char agent[TOPICS_AGENT_MAX], udid[TOPICS_UDID_MAX];
	enum topics_kind kind;
	int r;

	r = batch_open(in);
	if (r < 0)
		return r;
	in->stats.messages++;
	in->d_messages++;
	if (in->batch_n++ == 0)
		in->batch_rx_ms = now_ms;
	if (topics_parse(topic, &kind, agent, udid) < 0) {
		malformed(in, topic, "not a cradle/v1 agent topic");
		goto out;
	}
	if (len == 0) {
		/* an empty retained payload clears a retained topic (proto/README.md rule 7) */
		if (kind == TOPICS_DEVICE_STATE)
			r = on_state_deleted(in, agent, udid, now_ms);
		else if (kind != TOPICS_STATUS && kind != TOPICS_META)
			malformed(in, topic, "empty payload");
		goto out;
	}
	switch (kind) {
	case TOPICS_STATUS:
		r = on_status(in, topic, agent, payload, len, retained, now_ms);
		break;
	case TOPICS_META:
		r = on_meta(in, topic, agent, payload, len, retained);
		break;
	case TOPICS_DEVICE_STATE:
		r = on_state(in, topic, agent, udid, payload, len, retained);
		break;
	case TOPICS_DEVICE_EVENT:
		r = on_device_event(in, topic, agent, udid, payload, len, retained);
		break;
	case TOPICS_AGENT_EVENT:
		r = on_agent_event(in, topic, agent, payload, len, retained);
		break;
	case TOPICS_RESULT:
		r = on_result(in, topic, agent, payload, len, retained);
		break;
	default:
		break; /* commands: not ours to read */
	}
out:
	if (in->batch_n >= INGEST_BATCH_MAX) {
		int f = ingest_flush(in);

		if (r == 0)
			r = f;
	}
	return r;
}

/* ---- loading the indexes ---- */

static int load(struct ingest *in)
{
	sqlite3_stmt *s = NULL;
	int r = -EIO, rc;

	if (sqlite3_prepare_v2(in->db,
	                       "SELECT agent, site, station, presence, session, last_session,"
	                       " last_seq, lost_messages, duplicates, coalesce(last_seen_ms, 0)"
	                       " FROM agents",
	                       -1, &s, NULL) != SQLITE_OK)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct agent_mem *a = agent_new_mem();
		const char *p = (const char *)sqlite3_column_text(s, 3);

		if (!a ||
		    strmap_put(in->agents, (const char *)sqlite3_column_text(s, 0), a, NULL) < 0) {
			free(a);
			r = -ENOMEM;
			goto out;
		}
		a->known = true;
		snprintf(a->site, sizeof(a->site), "%s", (const char *)sqlite3_column_text(s, 1));
		snprintf(a->station, sizeof(a->station), "%s",
		         (const char *)sqlite3_column_text(s, 2));
		a->presence = strcmp(p, "online") == 0 ? PRESENCE_ONLINE
		              : strcmp(p, "lost") == 0 ? PRESENCE_LOST
		                                       : PRESENCE_OFFLINE;
		if (sqlite3_column_type(s, 4) != SQLITE_NULL)
			a->epoch = sqlite3_column_int64(s, 4);
		if (sqlite3_column_type(s, 5) != SQLITE_NULL) {
			/* what came before the restart counts as received: redeliveries are
			 * duplicates, and gaps from then are not counted again */
			a->trk_session = sqlite3_column_int64(s, 5);
			a->hi = sqlite3_column_int64(s, 6);
			memset(a->recv, 0xff, sizeof(a->recv));
		}
		a->lost = sqlite3_column_int64(s, 7);
		a->dups = sqlite3_column_int64(s, 8);
		a->last_seen_ms = sqlite3_column_int64(s, 9);
		in->stats.lost += a->lost;
	}
	if (rc != SQLITE_DONE)
		goto out;
	sqlite3_finalize(s);
	s = NULL;
	if (sqlite3_prepare_v2(
	            in->db,
	            "SELECT udid, agent, coalesce(state_session, 0),"
	            " coalesce(state_seq, 0), state_ts_ms, attached, agent_status, probe,"
	            " pairing, coalesce(icloud_enabled, -1), last_icloud, cause_codes"
	            " FROM devices",
	            -1, &s, NULL) != SQLITE_OK)
		goto out;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct dev_mem *d = calloc(1, sizeof(*d));

		if (!d ||
		    strmap_put(in->devs, (const char *)sqlite3_column_text(s, 0), d, NULL) < 0) {
			free(d);
			r = -ENOMEM;
			goto out;
		}
		snprintf(d->agent, sizeof(d->agent), "%s", (const char *)sqlite3_column_text(s, 1));
		d->session = sqlite3_column_int64(s, 2);
		d->seq = sqlite3_column_int64(s, 3);
		d->ts_ms = sqlite3_column_int64(s, 4);
		d->attached = sqlite3_column_int(s, 5) != 0;
		d->has_li = sqlite3_column_type(s, 10) != SQLITE_NULL;
		d->last_icloud = sqlite3_column_int64(s, 10);
		d->sig = state_sig(d->agent, d->attached, (const char *)sqlite3_column_text(s, 6),
		                   (const char *)sqlite3_column_text(s, 7),
		                   (const char *)sqlite3_column_text(s, 8),
		                   sqlite3_column_int(s, 9), d->has_li, d->last_icloud,
		                   (const char *)sqlite3_column_text(s, 11));
	}
	if (rc != SQLITE_DONE)
		goto out;
	r = 0;
out:
	if (r == -EIO)
		log_error("ingest: cannot load the store: %s", sqlite3_errmsg(in->db));
	sqlite3_finalize(s);
	return r;
}

/* ---- Paho threads: copy and post, nothing else ---- */

static void post_simple(struct ingest *in, enum ev_kind kind, int code, const char *text)
{
	struct ev *ev = calloc(1, sizeof(*ev));

	if (ev) {
		ev->kind = kind;
		ev->code = code;
		if (text)
			snprintf(ev->text, sizeof(ev->text), "%s", text);
	}
	(void)loop_mailbox_post(in->mbox, ev);
}

static void on_connected(void *context, char *cause)
{
	(void)cause;
	post_simple(context, EV_CONNECTED, 0, NULL);
}

/*
 * Paho thread: OpenSSL's error queue, one line per call, as
 * "<thread>:error:<code>:<library>:<function>:<reason>:<file>:<line>:"; the reason of the last
 * line is kept ("certificate verify failed" says what to fix, Paho's own message does not).
 */
static int on_tls_error(const char *str, size_t len, void *u)
{
	struct ingest *in = u;
	const char *p = str, *end = str + len, *colon;
	int field = 0;

	while (field < 5 && (colon = memchr(p, ':', (size_t)(end - p)))) {
		p = colon + 1;
		field++;
	}
	if (field == 5 && (colon = memchr(p, ':', (size_t)(end - p))))
		end = colon;
	else
		p = str; /* not that format: the whole line */
	while (end > p && (end[-1] == '\n' || end[-1] == '\r'))
		end--;
	pthread_mutex_lock(&in->tls_lock);
	snprintf(in->tls_error, sizeof(in->tls_error), "TLS: %.*s", (int)(end - p), p);
	pthread_mutex_unlock(&in->tls_lock);
	return 0;
}

static void on_connect_failure(void *context, MQTTAsync_failureData5 *response)
{
	struct ingest *in = context;
	char tls[sizeof(in->tls_error)];

	pthread_mutex_lock(&in->tls_lock);
	memcpy(tls, in->tls_error, sizeof(tls));
	in->tls_error[0] = '\0';
	pthread_mutex_unlock(&in->tls_lock);
	post_simple(in, EV_CONNECT_FAILED, response ? response->code : -1,
	            tls[0]                          ? tls
	            : response && response->message ? response->message
	                                            : NULL);
}

static void on_lost(void *context, char *cause)
{
	post_simple(context, EV_LOST, 0, cause);
}

static void on_subscribe(void *context, MQTTAsync_successData5 *response)
{
	int worst = 0;

	/* subscribeMany: one reason code per filter */
	if (response) {
		worst = (int)response->reasonCode;
		for (int i = 0; i < response->alt.sub.reasonCodeCount; i++)
			if ((int)response->alt.sub.reasonCodes[i] > worst)
				worst = (int)response->alt.sub.reasonCodes[i];
	}
	post_simple(context, worst >= 0x80 ? EV_SUBSCRIBE_FAILED : EV_SUBSCRIBED, worst, NULL);
}

static void on_subscribe_failure(void *context, MQTTAsync_failureData5 *response)
{
	post_simple(context, EV_SUBSCRIBE_FAILED, response ? (int)response->reasonCode : -1,
	            response && response->message ? response->message : NULL);
}

static int on_message(void *context, char *topic, int topic_len, MQTTAsync_message *msg)
{
	struct ingest *in = context;
	size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	size_t plen = msg->payloadlen > 0 ? (size_t)msg->payloadlen : 0;
	struct ev *ev;

	/* the loop is far behind: let Paho hold the message and offer it again later */
	if (atomic_load(&in->q_count) >= INGEST_QUEUE_MAX ||
	    atomic_load(&in->q_bytes) >= INGEST_QUEUE_BYTES) {
		atomic_fetch_add(&in->deferred, 1);
		return 0;
	}
	ev = malloc(sizeof(*ev) + tlen + 1 + plen + 1);
	if (ev) {
		memset(ev, 0, sizeof(*ev));
		ev->kind = EV_MESSAGE;
		ev->retained = msg->retained != 0;
		ev->rx_ms = wall_now_ms();
		ev->topic = ev->data;
		memcpy(ev->topic, topic, tlen);
		ev->topic[tlen] = '\0';
		ev->payload = ev->data + tlen + 1;
		if (plen)
			memcpy(ev->payload, msg->payload, plen);
		ev->payload[plen] = '\0';
		ev->len = plen;
		atomic_fetch_add(&in->q_count, 1);
		atomic_fetch_add(&in->q_bytes, plen);
	}
	(void)loop_mailbox_post(in->mbox, ev); /* takes ev in every case */
	MQTTAsync_freeMessage(&msg);
	MQTTAsync_free(topic);
	return 1;
}

/* ---- loop thread: MQTT ---- */

static int subscribe(struct ingest *in)
{
	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	static const enum topics_kind retained[] = { TOPICS_STATUS, TOPICS_META,
		                                     TOPICS_DEVICE_STATE };
	static const enum topics_kind shared[] = { TOPICS_DEVICE_EVENT, TOPICS_AGENT_EVENT,
		                                   TOPICS_RESULT };
	char filters[6][TOPICS_MAX + 80];
	char *list[6];
	int qos[6], n = 0, rc;

	for (size_t i = 0; i < ARRAY_SIZE(retained); i++, n++) {
		if (topics_filter(filters[n], TOPICS_MAX, retained[i], NULL) < 0)
			return -EINVAL;
	}
	for (size_t i = 0; i < ARRAY_SIZE(shared); i++, n++) {
		char f[TOPICS_MAX];

		if (topics_filter(f, sizeof(f), shared[i], NULL) < 0)
			return -EINVAL;
		if (in->cfg->mqtt_share_group[0])
			snprintf(filters[n], sizeof(filters[n]), "$share/%s/%s",
			         in->cfg->mqtt_share_group, f);
		else
			snprintf(filters[n], sizeof(filters[n]), "%s", f);
	}
	for (int i = 0; i < n; i++) {
		list[i] = filters[i];
		qos[i] = 1;
	}
	ro.onSuccess5 = on_subscribe;
	ro.onFailure5 = on_subscribe_failure;
	ro.context = in;
	rc = MQTTAsync_subscribeMany(in->paho, n, list, qos, &ro);
	if (rc != MQTTASYNC_SUCCESS) {
		log_error("ingest: subscribe failed: %s", MQTTAsync_strerror(rc));
		return -EIO;
	}
	return 0;
}

static int connect_now(struct ingest *in);

static void retry_fired(struct loop *loop, uint64_t id, void *data)
{
	struct ingest *in = data;

	(void)loop;
	(void)id;
	in->retry_timer = 0;
	if (!in->stopped)
		(void)connect_now(in);
}

static void schedule_retry(struct ingest *in)
{
	if (in->stopped || in->retry_timer || !in->loop)
		return;
	in->retry_timer = loop_add_timer(in->loop, (uint64_t)in->retry_s * 1000, retry_fired, in);
	in->retry_s = in->retry_s * 2 > INGEST_RETRY_MAX_S ? INGEST_RETRY_MAX_S : in->retry_s * 2;
}

static void deliver(struct loop *loop, void *msg, void *ctx)
{
	struct ingest *in = ctx;
	struct ev *ev = msg;

	(void)loop;
	switch (ev->kind) {
	case EV_MESSAGE:
		atomic_fetch_sub(&in->q_count, 1);
		atomic_fetch_sub(&in->q_bytes, ev->len);
		(void)ingest_message(in, ev->topic, ev->payload, ev->len, ev->retained, ev->rx_ms);
		break;
	case EV_CONNECTED:
		in->connected = true;
		in->retry_s = 1;
		metrics_ingest_connected(true);
		log_info("ingest: connected to %s", in->cfg->broker_url);
		(void)subscribe(in);
		break;
	case EV_CONNECT_FAILED:
		if (!in->stopped) {
			log_warn("ingest: cannot connect to %s (%d)%s%s; retrying in %ds",
			         in->cfg->broker_url, ev->code, ev->text[0] ? ": " : "", ev->text,
			         in->retry_s);
			schedule_retry(in);
		}
		break;
	case EV_LOST:
		in->connected = false;
		metrics_ingest_connected(false);
		/* Paho reconnects by itself (automaticReconnect) */
		if (!in->stopped)
			log_warn("ingest: connection to %s lost%s%s; reconnecting",
			         in->cfg->broker_url, ev->text[0] ? ": " : "", ev->text);
		break;
	case EV_SUBSCRIBED:
		log_info("ingest: subscribed%s",
		         in->cfg->mqtt_share_group[0] ? " (events and results shared)" : "");
		break;
	case EV_SUBSCRIBE_FAILED:
		log_error("ingest: the broker refused the subscriptions (reason 0x%02x)%s%s",
		          (unsigned)ev->code, ev->text[0] ? ": " : "", ev->text);
		break;
	}
	free(ev);
}

static void drop_ev(void *msg, void *ctx)
{
	struct ingest *in = ctx;
	struct ev *ev = msg;

	if (ev && ev->kind == EV_MESSAGE) {
		atomic_fetch_sub(&in->q_count, 1);
		atomic_fetch_sub(&in->q_bytes, ev->len);
	}
	free(ev);
}

static void overflow(struct loop *loop, uint64_t n, void *ctx)
{
	(void)loop;
	(void)ctx;
	/* only when an event copy could not be allocated: messages wait in Paho instead */
	log_error("ingest: %" PRIu64 " MQTT events lost (out of memory)", n);
}

static const struct loop_mailbox_ops mail_ops = { deliver, drop_ev, overflow };

static int connect_now(struct ingest *in)
{
	MQTTAsync_connectOptions c = MQTTAsync_connectOptions_initializer5;
	MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
	const struct dash_config *cfg = in->cfg;
	int rc;

	c.keepAliveInterval = 30;
	c.MQTTVersion = MQTTVERSION_5;
	c.automaticReconnect = 1;
	c.minRetryInterval = 1;
	c.maxRetryInterval = INGEST_RETRY_MAX_S;
	c.connectTimeout = 10;
	/* with a share group the broker keeps our session (events and results queued while we
	 * restart); without, every connect starts clean and the retained state is read again */
	c.cleanstart = cfg->mqtt_share_group[0] ? 0 : 1;
	if (cfg->mqtt_share_group[0])
		c.connectProperties = &in->connect_props;
	c.username = cfg->mqtt_username[0] ? cfg->mqtt_username : NULL;
	c.password = cfg->mqtt_password[0] ? cfg->mqtt_password : NULL;
	c.onFailure5 = on_connect_failure;
	c.context = in;
	/* the scheme decides (dash_config_check() refuses certificates with a plaintext one) */
	if (parse_broker_url_tls(cfg->broker_url) > 0) {
		ssl.trustStore = cfg->mqtt_cafile[0] ? cfg->mqtt_cafile : NULL;
		ssl.keyStore = cfg->mqtt_certfile[0] ? cfg->mqtt_certfile : NULL;
		ssl.privateKey = cfg->mqtt_keyfile[0] ? cfg->mqtt_keyfile : NULL;
		ssl.enableServerCertAuth = 1;
		ssl.verify = 1;
		ssl.ssl_error_cb = on_tls_error;
		ssl.ssl_error_context = in;
		in->ssl = ssl;
		c.ssl = &in->ssl;
	}
	rc = MQTTAsync_connect(in->paho, &c);
	if (rc != MQTTASYNC_SUCCESS) {
		log_warn("ingest: cannot start connecting to %s: %s", cfg->broker_url,
		         MQTTAsync_strerror(rc));
		schedule_retry(in);
		return -EIO;
	}
	return 0;
}

int ingest_start(struct ingest *in)
{
	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
	MQTTProperty p = { .identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL };
	char host[64] = "localhost";
	int rc;

	if (!in->loop)
		return -EINVAL;
	if (in->cfg->mqtt_client_id[0]) {
		snprintf(in->client_id, sizeof(in->client_id), "%s", in->cfg->mqtt_client_id);
	} else {
		(void)gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		snprintf(in->client_id, sizeof(in->client_id), "cradle-dashboard-%s", host);
	}
	p.value.integer4 = INGEST_SESSION_EXPIRY;
	if (MQTTProperties_add(&in->connect_props, &p) != 0)
		return -ENOMEM;
	co.MQTTVersion = MQTTVERSION_5;
	rc = MQTTAsync_createWithOptions(&in->paho, in->cfg->broker_url, in->client_id,
	                                 MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		in->paho = NULL;
		return log_error_errno(-EINVAL, "ingest: cannot create an MQTT client for '%s': %s",
		                       in->cfg->broker_url, MQTTAsync_strerror(rc));
	}
	rc = MQTTAsync_setCallbacks(in->paho, in, on_lost, on_message, NULL);
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_setConnected(in->paho, in, on_connected);
	if (rc != MQTTASYNC_SUCCESS)
		return log_error_errno(-EIO, "ingest: cannot set MQTT callbacks: %s",
		                       MQTTAsync_strerror(rc));
	in->retry_s = 1;
	(void)connect_now(in); /* failures retry on the loop */
	return 0;
}

static void check_dirty(const char *key, void *value, void *ctx)
{
	const struct agent_mem *a = value;

	(void)key;
	if (a->dirty)
		*(bool *)ctx = true;
}

static bool any_agent_dirty(struct ingest *in)
{
	bool dirty = false;

	strmap_foreach(in->agents, check_dirty, &dirty);
	return dirty;
}

void ingest_stop(struct ingest *in)
{
	if (!in || in->stopped)
		return;
	in->stopped = true;
	if (in->retry_timer) {
		loop_cancel_timer(in->loop, in->retry_timer);
		in->retry_timer = 0;
	}
	if (in->paho) {
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;

		if (MQTTAsync_isConnected(in->paho)) {
			d.timeout = 1000;
			(void)MQTTAsync_disconnect(in->paho, &d);
			for (int i = 0; i < 100 && MQTTAsync_isConnected(in->paho); i++)
				usleep(10000);
		}
		/* joins Paho's threads: nothing is posted after this */
		MQTTAsync_destroy(&in->paho);
		in->paho = NULL;
	}
	/* what was acknowledged to the broker is stored before we go */
	if (in->mbox)
		loop_mailbox_flush(in->mbox);
	if (in->agents_timer) {
		loop_cancel_timer(in->loop, in->agents_timer);
		in->agents_timer = 0;
	}
	in->agents_force = true;
	if (!in->in_tx && any_agent_dirty(in))
		(void)batch_open(in);
	(void)ingest_flush(in);
	in->agents_force = false;
	in->connected = false;
}

static void free_value(void *v)
{
	free(v);
}

struct ingest *ingest_free(struct ingest *in)
{
	if (!in)
		return NULL;
	ingest_stop(in);
	loop_mailbox_free(in->mbox);
	for (int i = 0; i < _ST_MAX; i++)
		sqlite3_finalize(in->st[i]);
	strmap_free(in->agents, free_value);
	strmap_free(in->devs, free_value);
	strmap_free(in->dirty_dev, NULL);
	strmap_free(in->dirty_agent, NULL);
	strmap_free(in->dirty_cmd, NULL);
	ratelimit_free(in->log_rl);
	MQTTProperties_free(&in->connect_props);
	pthread_mutex_destroy(&in->tls_lock);
	free(in);
	return NULL;
}

int ingest_new(struct loop *loop, struct store *store, struct hub *hub,
               const struct dash_config *cfg, struct ingest **ret)
{
	struct ingest *in;
	int r;

	*ret = NULL;
	in = calloc(1, sizeof(*in));
	if (!in)
		return -ENOMEM;
	pthread_mutex_init(&in->tls_lock, NULL);
	in->loop = loop;
	in->store = store;
	in->db = store_db(store);
	in->hub = hub;
	in->cfg = cfg;
	in->agents = strmap_new();
	in->devs = strmap_new();
	in->dirty_dev = strmap_new();
	in->dirty_agent = strmap_new();
	in->dirty_cmd = strmap_new();
	if (!in->agents || !in->devs || !in->dirty_dev || !in->dirty_agent || !in->dirty_cmd) {
		r = -ENOMEM;
		goto out;
	}
	/* 5 lines, then one a minute: a flood of garbage must not flood the journal */
	r = ratelimit_new(4, 5, 12000, &in->log_rl);
	if (r < 0)
		goto out;
	for (int i = 0; i < _ST_MAX; i++)
		if (sqlite3_prepare_v3(in->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                       &in->st[i], NULL) != SQLITE_OK) {
			r = log_error_errno(-EIO, "ingest: cannot prepare statement %d: %s", i,
			                    sqlite3_errmsg(in->db));
			goto out;
		}
	/* the writer's page cache: the devices table and its indexes of 100 000 phones fit */
	(void)sqlite3_exec(in->db, "PRAGMA cache_size=-65536", NULL, NULL, NULL);
	r = load(in);
	if (r < 0)
		goto out;
	if (loop) {
		in->mbox = loop_mailbox_new(loop, INGEST_QUEUE_MAX + 256, &mail_ops, in);
		if (!in->mbox) {
			r = -ENOMEM;
			goto out;
		}
	}
	log_info("ingest: %zu agents and %zu phones known", strmap_size(in->agents),
	         strmap_size(in->devs));
	*ret = in;
	in = NULL;
	r = 0;
out:
	if (in) {
		in->stopped = true;
		ingest_free(in);
	}
	return r;
}

void ingest_get_stats(const struct ingest *in, struct ingest_stats *ret)
{
	*ret = in->stats;
	ret->deferred = atomic_load(&((struct ingest *)(uintptr_t)in)->deferred);
	ret->connected = in->connected;
}
