#!/usr/bin/python3
"""cradle-dashboard end to end: a real mosquitto, cradle-sim with six phones, a real
cradle-agent (site berlin, station cart-1) and the dashboard; the database is read back with
sqlite3 (read-only).

- the phones the simulator holds attached are the rows of `devices`, with the simulator's
  serials, versions and backup dates, at the agent's site and station; the agent is online;
  the daemon indexes them for the search (devices_fts) within seconds;
- a phone unplugged in the simulator turns detached in the database, plugged back attached; iCloud
  Backup switched off on the phone shows as icloud_enabled 0;
- the staleness clock: the service's samples row counts an old last_icloud as stale, a phone
  never trusted as unknown, a phone last seen docked 8 days ago (a hand-made state) as missing;
- malformed payloads (mosquitto_pub) are counted and ingest goes on;
- duplicate deliveries and seq gaps (hand-made events of a second agent) are counted;
- SIGTERM exits 0, and after a restart every row stored before is still there."""
import datetime
import json
import subprocess
import time

from dash import AGENT, DASH, SIM, Dashboard
from harness import Agent, Broker, Sim, fail, wait_for

import os
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "agent"))
os.environ.setdefault("CRADLE_AGENT", AGENT)
from common import device, udid, write_scenario  # noqa: E402

AID = "st-dash-e2e"
FAKE = "fake-agent-1"
DAY = 86400


def rfc3339_ms(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (int(t * 1000) % 1000)


def pub(broker, topic, payload, retain=False):
    argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1", "-t", topic]
    if retain:
        argv.append("-r")
    argv += ["-m", payload] if payload else ["-n"]
    subprocess.run(argv, check=True, timeout=10)


def fake_status(session, seq):
    return json.dumps({"schema": "cradle.agent_status.v1", "agent": FAKE, "session": session,
                       "seq": seq, "ts": rfc3339_ms(time.time()), "online": True})


def fake_event(session, seq, event="attached", u=None):
    u = u or udid(7)
    return json.dumps({"schema": "cradle.device_event.v1", "agent": FAKE, "session": session,
                       "seq": seq, "ts": rfc3339_ms(time.time()), "event": event, "udid": u,
                       "event_id": "%d-%d" % (session, seq), "details": {}})


def fake_state(session, seq, u, ts, attached):
    return json.dumps({
        "schema": "cradle.device_state.v1", "agent": FAKE, "session": session, "seq": seq,
        "ts": rfc3339_ms(ts), "udid": u, "attached": attached,
        "probed_at": rfc3339_ms(ts)[:19] + "Z",
        "device": {"product_type": "iPhone12,1", "ios_version": "16.7.2", "build": "20H115",
                   "serial": "FAKESERIAL01"},
        "pairing": "paired",
        "backup": {"icloud_enabled": True, "last_icloud": rfc3339_ms(ts - DAY)[:19] + "Z",
                   "last_local": None, "will_encrypt": False, "requires_encryption": False,
                   "age_s": DAY},
        "power": {"battery_pct": 50, "external_connected": True, "charging": True},
        "storage": {"total_bytes": 64000000000, "available_bytes": 1000000000},
        "diagnosis": {"status": "ok", "causes": []}, "probe": "ok", "error": None})


def sim_attached(sim):
    return sorted(d["udid"] for d in sim.ctl_ok({"op": "list"})["devices"] if d["attached"])


def main():
    scenario = write_scenario([
        device(1),
        device(2, backup_ago=None),                 # never backed up: stale
        device(3, pairing="trust_pending"),         # no facts: unknown
        device(4, backup_ago=5 * DAY),              # the retained ok of long ago: stale now
        device(5, attached=False),                  # never docked: no row
        device(6, version="16.7.2"),
    ])
    with Broker() as broker, Sim(SIM, scenario) as sim, \
            Agent(AGENT, broker, sim, agent_id=AID,
                  extra_conf="site berlin\nstation cart-1\n") as agent, \
            Dashboard(DASH, broker) as dash:
        attached = sim_attached(sim)
        if len(attached) != 5:
            fail("the scenario should have 5 attached phones: %r" % attached)

        # -- rows equal what the simulator holds
        def rows():
            return {r["udid"]: r for r in dash.q("SELECT * FROM devices")}
        wait_for(lambda: sorted(rows()) == attached and
                 all(r["state_json"] for r in rows().values()), 30,
                 what="one row per attached phone")
        r = rows()
        for n in (1, 2, 3, 4, 6):
            row = r[udid(n)]
            if row["agent"] != AID or row["site"] != "berlin" or row["station"] != "cart-1" \
                    or row["attached"] != 1:
                fail("phone %d: agent/site/station/attached wrong: %r" % (n, row))
        wait_for(lambda: rows()[udid(1)]["serial"] == "F2LTEST00001" and
                 rows()[udid(6)]["ios_version"] == "16.7.2", 20, what="facts of phones 1, 6")
        # the daemon indexes new phones for the q= search soon after they arrive (migration
        # 6: devices_fts_pending empties), with the serial the facts brought
        wait_for(lambda: dash.q1("SELECT count(*) FROM devices_fts_pending") == 0 and
                 dash.q1("SELECT d.udid FROM devices_fts f JOIN devices d ON d.rowid = f.rowid"
                         " WHERE devices_fts MATCH '\"2ltest00001\"'") == udid(1), 10,
                 what="the phones indexed for the search")
        r = rows()
        if r[udid(6)]["ios_key"] != 16007002:
            fail("ios_key of 16.7.2: %r" % r[udid(6)]["ios_key"])
        now = time.time()
        if abs(r[udid(1)]["last_icloud"] - (now - 3600)) > 120:
            fail("phone 1 last_icloud should be an hour ago: %r" % r[udid(1)]["last_icloud"])
        if abs(r[udid(4)]["last_icloud"] - (now - 5 * DAY)) > 120:
            fail("phone 4 last_icloud should be 5 days ago: %r" % r[udid(4)]["last_icloud"])
        if r[udid(2)]["last_icloud"] is not None or r[udid(2)]["has_facts"] != 1:
            fail("phone 2 never backed up, with facts: %r" % r[udid(2)])
        if r[udid(3)]["has_facts"] != 0:
            fail("phone 3 was never probed successfully: %r" % r[udid(3)])
        ag = dash.q("SELECT * FROM agents WHERE agent = ?", (AID,))
        if not ag or ag[0]["presence"] != "online" or ag[0]["site"] != "berlin":
            fail("agent row: %r" % ag)

        # -- a phone changing in the simulator changes in the database
        sim.ctl_ok({"op": "detach", "udid": udid(6)})
        wait_for(lambda: rows()[udid(6)]["attached"] == 0, 15, what="phone 6 detached")
        sim.ctl_ok({"op": "set", "udid": udid(6), "domain": "com.apple.mobile.backup",
                    "key": "CloudBackupEnabled", "value": False})
        sim.ctl_ok({"op": "attach", "udid": udid(6)})
        wait_for(lambda: rows()[udid(6)]["attached"] == 1 and
                 rows()[udid(6)]["icloud_enabled"] == 0, 20,
                 what="phone 6 attached again with iCloud Backup off")
        hist = dash.q1("SELECT count(*) FROM history WHERE udid = ? AND kind = 'state'",
                       (udid(6),))
        if hist < 3:
            fail("phone 6 should have at least 3 state changes in its history: %d" % hist)

        # -- malformed payloads are counted; ingest goes on
        base = dash.counter("malformed")
        pub(broker, "cradle/v1/agent/%s/device/%s/state" % (AID, udid(9)), "{not json")
        pub(broker, "cradle/v1/agent/%s/event" % AID, '{"schema":"cradle.agent_event.v1"}')
        pub(broker, "cradle/v1/agent/%s/device/%s/event" % (AID, udid(9)), "")
        wait_for(lambda: dash.counter("malformed") == base + 3, 10, what="3 malformed counted")

        # -- duplicates and gaps, from a hand-made second agent (session 5)
        u = udid(7)
        pub(broker, "cradle/v1/agent/%s/status" % FAKE, fake_status(5, 0))
        ev_topic = "cradle/v1/agent/%s/device/%s/event" % (FAKE, u)
        pub(broker, ev_topic, fake_event(5, 1))
        pub(broker, ev_topic, fake_event(5, 1))           # duplicate delivery
        pub(broker, ev_topic, fake_event(5, 4, "detached"))  # 2 and 3 missing
        wait_for(lambda: dash.q1("SELECT lost_messages FROM agents WHERE agent = ?",
                                 (FAKE,)) == 2, 10, what="2 lost messages of " + FAKE)
        fa = dash.q("SELECT * FROM agents WHERE agent = ?", (FAKE,))[0]
        if fa["duplicates"] != 1 or fa["presence"] != "online":
            fail("fake agent: %r" % fa)
        if dash.q1("SELECT count(*) FROM history WHERE agent = ? AND kind = 'event'",
                   (FAKE,)) != 2:
            fail("the duplicate event was stored twice")
        # 3 arrives late: one less missing
        pub(broker, ev_topic, fake_event(5, 3, "backup_started"))
        wait_for(lambda: dash.q1("SELECT lost_messages FROM agents WHERE agent = ?",
                                 (FAKE,)) == 1, 10, what="the late message taken back")

        # -- missing: a phone last seen docked 8 days ago, detached since
        old = time.time() - 8 * DAY
        pub(broker, "cradle/v1/agent/%s/device/%s/state" % (FAKE, u),
            fake_state(5, 5, u, old, False), retain=True)
        wait_for(lambda: u in rows(), 10, what="the hand-made phone")
        if abs(rows()[u]["last_seen"] - old) > 2:
            fail("last_seen of the hand-made phone: %r" % rows()[u]["last_seen"])

        # -- the staleness clock, as the running service judges it (samples, every 5 min and
        #    10 s after start): phones 1, 6 ok; 2, 4 stale; 3 unknown; the hand-made missing
        t_restart = int(time.time())
        dash.restart()
        sample = wait_for(lambda: dash.q("SELECT * FROM samples WHERE ts >= ? ORDER BY ts DESC"
                                         " LIMIT 1", (t_restart,)), 40,
                          what="a samples row of the restarted service")[0]
        want = {"total": 6, "ok": 2, "stale": 2, "unknown": 1, "missing": 1}
        got = {k: sample[k] for k in want}
        if got != want:
            fail("samples: want %r, got %r" % (want, got))

        # -- SIGTERM exits 0; a restart loses nothing stored
        before = {t: dash.q("SELECT * FROM %s ORDER BY 1" % t)
                  for t in ("devices", "history", "counters", "command_results")}
        before_agents = dash.q("SELECT agent, site, station, lost_messages, duplicates"
                               " FROM agents ORDER BY agent")
        agent.stop()
        rc = dash.stop()
        if rc != 0:
            fail("SIGTERM: exit status %r" % rc)
        dash.start()
        wait_for(lambda: dash.q1("SELECT presence FROM agents WHERE agent = ?", (AID,)) ==
                 "offline", 10, what="the agent's retained goodbye")
        after = {t: dash.q("SELECT * FROM %s ORDER BY 1" % t) for t in before}
        for t in ("devices", "history", "command_results"):
            ids = {json.dumps(x, sort_keys=True) for x in after[t]}
            lost = [x for x in before[t] if json.dumps(x, sort_keys=True) not in ids]
            if t == "devices":  # rows may only have moved on (newer state), never vanish
                lost = [x for x in before[t]
                        if x["udid"] not in {y["udid"] for y in after[t]}]
            if lost:
                fail("%s rows lost across the restart: %r" % (t, lost[:3]))
        c_after = {c["name"]: c["value"] for c in after["counters"]}
        for c in before["counters"]:
            if c_after.get(c["name"], 0) < c["value"] and c["name"] != "lost":
                fail("counter %s went back: %r -> %r" % (c["name"], c["value"],
                                                         c_after.get(c["name"])))
        if dash.q("SELECT agent, site, station, lost_messages, duplicates FROM agents"
                  " ORDER BY agent") != before_agents:
            fail("agents' rows changed across the restart")
    print("ok")


if __name__ == "__main__":
    main()
