/* SPDX-License-Identifier: MIT */
/*
 * The store's schema, as numbered migrations: store_open() applies, in one transaction each,
 * every migration above the file's PRAGMA user_version and sets user_version to its number.
 * A migration once released is never edited; a change is a new migration appended below.
 *
 * Times: *_ms columns are Unix milliseconds, other time columns Unix seconds. Booleans are 0/1.
 */
#include "store.h"

#include "macro.h"

static const char migration_1[] =
        /* One row per agent id ever heard of. presence: 'online' (birth), 'offline' (graceful
         * stop), 'lost' (the will: the broker saw it vanish). */
        "CREATE TABLE agents ("
        " agent TEXT PRIMARY KEY,"
        " site TEXT NOT NULL DEFAULT '',"
        " station TEXT NOT NULL DEFAULT '',"
        " presence TEXT NOT NULL DEFAULT 'offline',"
        " session INTEGER," /* the agent run the presence belongs to */
        " started_at INTEGER,"
        " version TEXT NOT NULL DEFAULT '',"
        " meta_json TEXT,"       /* the last cradle.agent_meta.v1 as received */
        " presence_ms INTEGER,"  /* when presence last changed */
        " last_seen_ms INTEGER," /* last message of any kind from it */
        " last_session INTEGER," /* seq tracking (gaps): the session and highest seq seen */
        " last_seq INTEGER,"
        " lost_messages INTEGER NOT NULL DEFAULT 0," /* seq numbers never received (gaps) */
        " duplicates INTEGER NOT NULL DEFAULT 0"
        ");"
        /* One row per phone, keyed by UDID wherever it docks; agent/site/station: where it was
         * seen last. The state columns are those of the newest state message applied (by
         * state_ts_ms); the dashboard's verdict is judge.h's, computed at query time. */
        "CREATE TABLE devices ("
        " udid TEXT PRIMARY KEY,"
        " serial TEXT NOT NULL DEFAULT '',"
        " name TEXT NOT NULL DEFAULT '',"
        " product_type TEXT NOT NULL DEFAULT '',"
        " ios_version TEXT NOT NULL DEFAULT '',"
        " ios_key INTEGER NOT NULL DEFAULT 0," /* major*1000000 + minor*1000 + patch, sortable */
        " agent TEXT NOT NULL,"
        " site TEXT NOT NULL DEFAULT '',"
        " station TEXT NOT NULL DEFAULT '',"
        " attached INTEGER NOT NULL DEFAULT 0,"
        " last_seen INTEGER NOT NULL," /* Unix s last seen docked */
        " has_facts INTEGER NOT NULL DEFAULT 0,"
        " last_icloud INTEGER," /* NULL: never (with has_facts) or unknown */
        " last_local INTEGER,"
        " icloud_enabled INTEGER,"                       /* NULL: unknown */
        " agent_status TEXT NOT NULL DEFAULT 'unknown'," /* what the agent said, for reference */
        " probe TEXT NOT NULL DEFAULT '',"
        " pairing TEXT NOT NULL DEFAULT '',"
        " cause_codes TEXT NOT NULL DEFAULT '',"   /* ',code1,code2,' for filtering */
        " causes_json TEXT NOT NULL DEFAULT '[]'," /* [{code,evidence,remediation,complexity}] */
        " state_json TEXT,"                        /* the last state message as received */
        " state_session INTEGER,"
        " state_seq INTEGER,"
        " state_ts_ms INTEGER NOT NULL DEFAULT 0"
        ");"
        "CREATE INDEX devices_last_icloud ON devices(last_icloud);"
        "CREATE INDEX devices_agent ON devices(agent);"
        "CREATE INDEX devices_site ON devices(site, station);"
        "CREATE INDEX devices_serial ON devices(serial);"
        /* Every state change and event, per phone (udid) or per agent (udid ''); the
         * (agent, session, seq) triple dedupes redeliveries. kind: 'state', 'event' (device
         * event), 'agent_event', 'presence', 'command' (a command sent, see commands). */
        "CREATE TABLE history ("
        " id INTEGER PRIMARY KEY,"
        " udid TEXT NOT NULL DEFAULT '',"
        " agent TEXT NOT NULL,"
        " session INTEGER,"
        " seq INTEGER,"
        " ts_ms INTEGER NOT NULL,"
        " kind TEXT NOT NULL,"
        " name TEXT NOT NULL DEFAULT '',"    /* event name, or the state's status */
        " summary TEXT NOT NULL DEFAULT ''," /* one line for the timeline */
        " json TEXT NOT NULL DEFAULT '{}'"
        ");"
        "CREATE UNIQUE INDEX history_dedupe ON history(agent, session, seq) WHERE seq IS NOT NULL;"
        "CREATE INDEX history_udid ON history(udid, ts_ms);"
        "CREATE INDEX history_ts ON history(ts_ms);"
        /* Commands sent from the dashboard and every result received for them, in order. */
        "CREATE TABLE commands ("
        " cmd_id TEXT PRIMARY KEY,"
        " udid TEXT NOT NULL,"
        " agent TEXT NOT NULL,"
        " name TEXT NOT NULL,"
        " params_json TEXT NOT NULL DEFAULT '{}',"
        " sent_by TEXT NOT NULL,"
        " sent_at_ms INTEGER NOT NULL,"
        " expires_at_ms INTEGER NOT NULL,"
        " status TEXT NOT NULL DEFAULT 'sent'," /* 'sent', then the latest result status */
        " updated_ms INTEGER NOT NULL"
        ");"
        "CREATE INDEX commands_udid ON commands(udid, sent_at_ms);"
        "CREATE TABLE command_results ("
        " id INTEGER PRIMARY KEY,"
        " cmd_id TEXT NOT NULL REFERENCES commands(cmd_id) ON DELETE CASCADE,"
        " agent TEXT NOT NULL,"
        " session INTEGER,"
        " seq INTEGER NOT NULL,"
        " ts_ms INTEGER NOT NULL,"
        " status TEXT NOT NULL,"
        " json TEXT NOT NULL"
        ");"
        "CREATE UNIQUE INDEX command_results_dedupe ON command_results(agent, session, seq);"
        "CREATE INDEX command_results_cmd ON command_results(cmd_id, id);"
        /* Users, API tokens and UI sessions (auth.h). Secrets are stored only as hashes. */
        "CREATE TABLE users ("
        " name TEXT PRIMARY KEY,"
        " role TEXT NOT NULL," /* 'viewer' | 'operator' | 'admin' */
        " hash TEXT NOT NULL," /* crypt(3) yescrypt (or sha512-crypt) */
        " created_ms INTEGER NOT NULL"
        ");"
        "CREATE TABLE tokens ("
        " name TEXT PRIMARY KEY,"
        " role TEXT NOT NULL,"
        " hash TEXT NOT NULL UNIQUE," /* hex SHA-256 of the token */
        " created_ms INTEGER NOT NULL,"
        " last_used_ms INTEGER"
        ");"
        "CREATE TABLE sessions ("
        " id_hash TEXT PRIMARY KEY," /* hex SHA-256 of the cookie value */
        " user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,"
        " csrf TEXT NOT NULL,"
        " created_ms INTEGER NOT NULL,"
        " expires_ms INTEGER NOT NULL"
        ");"
        /* Counters that must survive a restart (malformed messages, duplicates, gaps, ...). */
        "CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        /* The stale count over time, sampled by the service (overview chart). */
        "CREATE TABLE samples ("
        " ts INTEGER PRIMARY KEY,"
        " total INTEGER NOT NULL, ok INTEGER NOT NULL, stale INTEGER NOT NULL,"
        " unknown INTEGER NOT NULL, missing INTEGER NOT NULL"
        ");";

/*
 * The read side (query.c). devices_judge holds every input of cradle_status() and leads with
 * last_icloud: a status filter, a count or the overview reads this narrow index instead of the
 * wide rows (state_json, causes_json), and the default age sort walks it in order and stops
 * after one page; it replaces devices_last_icloud. agents_presence answers the "is its agent
 * online" half of docked from the index alone. devices_search is what the q search scans,
 * devices_causes what the cause filter and the top causes read; devices_agent gains attached,
 * so an agent's phones attached are counted from the index. The others serve the remaining
 * sorts.
 */
static const char migration_2[] =
        "DROP INDEX devices_last_icloud;"
        "DROP INDEX devices_agent;"
        "CREATE INDEX devices_agent ON devices(agent, attached);"
        "CREATE INDEX devices_judge ON devices(last_icloud, agent, site, station, attached,"
        " last_seen, has_facts);"
        "CREATE INDEX devices_name ON devices(name);"
        "CREATE INDEX devices_last_seen ON devices(last_seen);"
        "CREATE INDEX devices_ios ON devices(ios_key);"
        "CREATE INDEX devices_search ON devices(serial, name, udid);"
        "CREATE INDEX devices_causes ON devices(cause_codes);"
        "CREATE INDEX agents_presence ON agents(agent, presence);";

/*
 * Alerts (alerts.h): one row per alert episode of a rule on a subject (a phone's udid, an
 * agent, a site, or "site/station"); at most one firing row per (rule, subject). silence_id and
 * inhibited_by say why a firing alert sends no notification; notified that it sent its firing
 * one. Silences mute a rule ('*' = every rule) for a phone, an agent, a site or a station until
 * ends_at; deleting one ends it now and keeps the row. devices_alerts: see below.
 */
static const char migration_3[] =
        "CREATE TABLE alerts ("
        " id INTEGER PRIMARY KEY,"
        " rule TEXT NOT NULL,"
        " subject_kind TEXT NOT NULL," /* 'udid' | 'agent' | 'site' | 'station' */
        " subject TEXT NOT NULL,"
        " site TEXT NOT NULL DEFAULT '',"
        " station TEXT NOT NULL DEFAULT '',"
        " agent TEXT NOT NULL DEFAULT '',"
        " state TEXT NOT NULL," /* 'firing' | 'resolved' */
        " fired_at INTEGER NOT NULL,"
        " resolved_at INTEGER,"
        " silence_id INTEGER,"
        " inhibited_by INTEGER,"
        " notified INTEGER NOT NULL DEFAULT 0,"
        " summary TEXT NOT NULL DEFAULT '',"
        " detail_json TEXT NOT NULL DEFAULT '{}'"
        ");"
        "CREATE UNIQUE INDEX alerts_open ON alerts(rule, subject) WHERE state = 'firing';"
        "CREATE INDEX alerts_rule ON alerts(rule);"
        "CREATE INDEX alerts_site ON alerts(site);"
        "CREATE TABLE silences ("
        " id INTEGER PRIMARY KEY,"
        " rule TEXT NOT NULL,"  /* a rule name or '*' */
        " scope TEXT NOT NULL," /* 'udid' | 'agent' | 'site' | 'station' */
        " site TEXT NOT NULL DEFAULT '',"
        " station TEXT NOT NULL DEFAULT '',"
        " value TEXT NOT NULL DEFAULT ''," /* the udid or agent */
        " starts_at INTEGER NOT NULL,"
        " ends_at INTEGER NOT NULL,"
        " created_by TEXT NOT NULL,"
        " comment TEXT NOT NULL,"
        " deleted_by TEXT"
        ");"
        "CREATE INDEX silences_ends ON silences(ends_at);"
        /* every fact a pass of the rules reads, so it scans this narrow index and never the
         * wide rows (state_json, causes_json) */
        "CREATE INDEX devices_alerts ON devices(udid, agent, site, station, attached, last_seen,"
        " has_facts, last_icloud, cause_codes);";

/*
 * notify.h: the delivery queue. One row per (notification, receiver); a delivered row is
 * deleted, a dead letter keeps its row with dead_ms set (and last_error). notify_queue_live is
 * the bound's count and the per-receiver head (oldest undelivered first). notify_receivers holds
 * what a receiver's status shows and the digest clock (last_sent_ms), so both survive a restart.
 */
static const char migration_4[] =
        "CREATE TABLE notify_queue ("
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " receiver TEXT NOT NULL,"
        " alert_id TEXT NOT NULL,"
        " rule TEXT NOT NULL,"
        " state TEXT NOT NULL,"
        " alert_json TEXT NOT NULL," /* the alert object of the webhook body */
        " created_ms INTEGER NOT NULL,"
        " attempts INTEGER NOT NULL DEFAULT 0,"
        " next_ms INTEGER NOT NULL," /* not attempted before */
        " dead_ms INTEGER,"          /* set: a dead letter */
        " last_error TEXT"
        ");"
        "CREATE INDEX notify_queue_live ON notify_queue(dead_ms, receiver, id);"
        "CREATE TABLE notify_receivers ("
        " name TEXT PRIMARY KEY,"
        " last_sent_ms INTEGER," /* last message delivered */
        " last_error TEXT,"
        " last_error_ms INTEGER,"
        " messages INTEGER NOT NULL DEFAULT 0,"  /* messages delivered (a digest is one) */
        " delivered INTEGER NOT NULL DEFAULT 0," /* notifications delivered */
        " failures INTEGER NOT NULL DEFAULT 0,"  /* failed attempts */
        " dead INTEGER NOT NULL DEFAULT 0,"      /* notifications turned dead letters */
        " dropped INTEGER NOT NULL DEFAULT 0"    /* dropped by a full queue */
        ");";

/*
 * Bulk jobs (jobs.h). A job's target, command and rollout are kept as given; job_executions
 * has one row per phone (udid) of the job, with its current state, attempt and the cmd_id of
 * the attempt, stored before the command is sent so a restart sends the same cmd_id again
 * (the agent's replay table answers it) instead of a new one. job_transitions keeps every
 * state change of a job (udid '') and of each execution, with time and detail.
 */
static const char migration_5[] =
        "CREATE TABLE jobs ("
        " id INTEGER PRIMARY KEY,"
        " name TEXT NOT NULL,"
        " state TEXT NOT NULL," /* scheduled|in_progress|completed|aborted|canceled */
        " command TEXT NOT NULL,"
        " params_json TEXT NOT NULL DEFAULT '{}',"
        " target_json TEXT NOT NULL," /* {"filter": {...}} | {"udids": []} | {"serials": []} */
        " continuous INTEGER NOT NULL DEFAULT 0,"
        " per_minute INTEGER NOT NULL DEFAULT 0," /* 0 = unthrottled */
        " per_agent INTEGER NOT NULL DEFAULT 0,"  /* 0 = no limit */
        " window_start INTEGER," /* minute of the day (UTC + window_offset), NULL = always */
        " window_end INTEGER,"
        " window_offset INTEGER NOT NULL DEFAULT 0," /* minutes east of UTC */
        " abort_pct REAL NOT NULL DEFAULT 0,"        /* 0 = never abort */
        " abort_min INTEGER NOT NULL DEFAULT 0,"
        " timeout_s INTEGER NOT NULL,"
        " retry_causes TEXT NOT NULL DEFAULT ''," /* ',cause1,cause2,' */
        " retry_max INTEGER NOT NULL DEFAULT 0,"
        " deadline_ms INTEGER NOT NULL,"
        " created_by TEXT NOT NULL,"
        " created_ms INTEGER NOT NULL,"
        " started_ms INTEGER,"
        " finished_ms INTEGER,"
        " canceled_by TEXT,"
        " detail TEXT NOT NULL DEFAULT '',"
        " resolved_ms INTEGER," /* continuous: last time the filter was evaluated */
        " updated_ms INTEGER NOT NULL"
        ");"
        "CREATE INDEX jobs_state ON jobs(state);"
        "CREATE TABLE job_executions ("
        " id INTEGER PRIMARY KEY,"
        " job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
        " udid TEXT NOT NULL,"
        " state TEXT NOT NULL," /* queued|sent|accepted|in_progress|waiting_for_user|... */
        " attempt INTEGER NOT NULL DEFAULT 0," /* attempts started (0 while never sent) */
        " cmd_id TEXT,"                        /* of the current attempt */
        " agent TEXT NOT NULL DEFAULT '',"     /* the attempt went to */
        " cause TEXT NOT NULL DEFAULT '',"     /* failure cause or rejection reason */
        " detail TEXT NOT NULL DEFAULT '',"
        " queued_ms INTEGER NOT NULL,"
        " sent_ms INTEGER,"
        " finished_ms INTEGER,"
        " updated_ms INTEGER NOT NULL,"
        " UNIQUE(job_id, udid)"
        ");"
        "CREATE INDEX job_executions_state ON job_executions(job_id, state);"
        "CREATE INDEX job_executions_udid ON job_executions(udid);"
        "CREATE INDEX job_executions_cmd ON job_executions(cmd_id);"
        "CREATE INDEX job_executions_live ON job_executions(state);"
        "CREATE TABLE job_transitions ("
        " id INTEGER PRIMARY KEY,"
        " job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
        " udid TEXT NOT NULL DEFAULT ''," /* '' = the job's own state */
        " ts_ms INTEGER NOT NULL,"
        " state TEXT NOT NULL,"
        " cmd_id TEXT,"
        " agent TEXT NOT NULL DEFAULT '',"
        " detail TEXT NOT NULL DEFAULT ''"
        ");"
        "CREATE INDEX job_transitions_exec ON job_transitions(job_id, udid, id);"
        "CREATE INDEX job_transitions_sent ON job_transitions(job_id, state, ts_ms);";

/*
 * The q search (query.c): devices_fts indexes serial, name and udid of every phone as trigrams
 * (FTS5's trigram tokenizer, case-folded), so a search of 3 or more characters reads the few
 * phones whose fields hold all the query's trigrams in a row instead of every phone. It is an
 * external-content table over devices (the text lives only there) keyed by devices' rowid,
 * which nothing renumbers (the store never runs VACUUM, and SQLite's VACUUM keeps rowids).
 *
 * Indexing a phone costs more than storing it (FTS5 ~50 us a phone, the whole ingest ~100 us),
 * so a new phone is only listed in devices_fts_pending, and store_search_index() indexes the
 * pending ones in chunks when ingest leaves time (daemon.c); the search reads the pending rows
 * as the scan did. The triggers keep the index exact meanwhile: a phone leaves it as it was
 * indexed ('delete' with the old values), and a rename of an indexed phone is indexed at once
 * (rare: ingest's upsert sets the three fields on every state, mostly to the same values, and
 * then touches nothing). The phones an existing file holds start pending: the upgrade itself
 * takes no time, and the daemon indexes them in its first seconds.
 */
static const char migration_6[] =
        "CREATE VIRTUAL TABLE devices_fts USING fts5(serial, name, udid, content='devices',"
        " content_rowid='rowid', tokenize='trigram');"
        "CREATE TABLE devices_fts_pending (id INTEGER PRIMARY KEY);" /* devices.rowid */
        "CREATE TRIGGER devices_fts_insert AFTER INSERT ON devices BEGIN"
        " INSERT OR IGNORE INTO devices_fts_pending(id) VALUES (new.rowid);"
        " END;"
        "CREATE TRIGGER devices_fts_delete AFTER DELETE ON devices BEGIN"
        " INSERT INTO devices_fts(devices_fts, rowid, serial, name, udid)"
        " SELECT 'delete', old.rowid, old.serial, old.name, old.udid"
        " WHERE NOT EXISTS (SELECT 1 FROM devices_fts_pending WHERE id = old.rowid);"
        " DELETE FROM devices_fts_pending WHERE id = old.rowid;"
        " END;"
        "CREATE TRIGGER devices_fts_update AFTER UPDATE OF serial, name, udid ON devices"
        " WHEN (old.serial IS NOT new.serial OR old.name IS NOT new.name"
        " OR old.udid IS NOT new.udid)"
        " AND NOT EXISTS (SELECT 1 FROM devices_fts_pending WHERE id = old.rowid) BEGIN"
        " INSERT INTO devices_fts(devices_fts, rowid, serial, name, udid)"
        " VALUES ('delete', old.rowid, old.serial, old.name, old.udid);"
        " INSERT INTO devices_fts(rowid, serial, name, udid)"
        " VALUES (new.rowid, new.serial, new.name, new.udid);"
        " END;"
        "INSERT INTO devices_fts_pending(id) SELECT rowid FROM devices;";

const struct store_migration store_migrations[] = {
	{ 1, migration_1 }, { 2, migration_2 }, { 3, migration_3 },
	{ 4, migration_4 }, { 5, migration_5 }, { 6, migration_6 },
};
const size_t store_n_migrations = ARRAY_SIZE(store_migrations);
