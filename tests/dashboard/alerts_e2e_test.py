#!/usr/bin/python3
"""Alerts end to end: mosquitto, two cradle-sim + cradle-agent stations (north/cart-1 and
west/cart-2, syslog evidence on) and cradle-dashboard with short alert durations, over the API.

- a silence (POST /api/v1/silences, before the phones arrive) for phone N3: its stale alert is
  recorded as `silenced` and notifies nothing, until the silence is deleted;
- the stale phone N1 raises exactly one backup_stale alert, notified once, however many passes
  run; the fresh phone N2 raises nothing;
- west: six stale phones, five of them failing with network_unavailable (the simulator's
  backupd syslog lines make the agent diagnose it): one site_network alert for the site, and the
  six phones' backup_stale alerts visible but inhibited (not notified);
- no flapping: N1 seen fresh once and stale again within alert_clear_for keeps its one alert,
  firing; fixed for good (a fresh backup) it resolves, still one alert;
- the west agent stopped: one agent_offline alert, notified;
- every answer fits its schema in openapi.json; bad silences get 400, a viewer 403.
Notifications are checked through the alerts rows' `notified` (what was handed to
notify_enqueue())."""
import datetime
import json
import os
import sys
import time
import urllib.error
import urllib.request

import jsonschema

from dash import AGENT, DASH, SIM, SRC, Dashboard, wait_http
from harness import Agent, Broker, Sim, check, fail, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "agent"))
os.environ.setdefault("CRADLE_AGENT", AGENT)
from common import device, write_scenario  # noqa: E402

DAY = 86400
LINE = "Nov 25 10:00:00 iPhone backupd[123] <Error>: %s"
NETLINE = LINE % ("Upload failed: Error Domain=NSURLErrorDomain Code=-1009 "
                  "\"The Internet connection appears to be offline.\"")
CLEAR_FOR = 10


def u(site, n):
    return "00008110-00%02dA1E2F3A4%04X" % (site, n)


def phone(site, n, backup_ago, syslog=None):
    d = device(n, backup_ago=backup_ago)
    d["udid"] = u(site, n)
    d["values"][""]["SerialNumber"] = "F2LAL%d%05d" % (site, n)
    if syslog:
        d["syslog"] = syslog
    return d


N1, N2, N3 = u(1, 1), u(1, 2), u(1, 3)
WEST = [u(2, n) for n in range(1, 7)]


def rfc3339(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


class Api:
    def __init__(self, dash):
        self.dash = dash
        with open(os.path.join(SRC, "dashboard", "openapi.json")) as f:
            self.spec = json.load(f)

    def call(self, method, path, token, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.dash.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                raw = r.read()
                return r.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            raw = e.read()
            return e.code, json.loads(raw) if raw else None

    def valid(self, doc, name, what):
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "components": self.spec["components"], "$ref": "#/components/schemas/" + name}
        v = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        errors = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            fail("%s does not fit %s: %s at %s\n%s" % (what, name, errors[0].message,
                                                       list(errors[0].absolute_path),
                                                       json.dumps(doc, indent=1)[:3000]))

    def get(self, path, token, schema):
        st, doc = self.call("GET", path, token)
        check(st == 200, "GET %s: %d %r" % (path, st, doc))
        self.valid(doc, schema, "GET " + path)
        return doc

    def expect(self, method, path, token, status, body=None):
        st, doc = self.call(method, path, token, body)
        check(st == status, "%s %s %r: %d, want %d: %r" % (method, path, body, st, status, doc))
        if status >= 400:
            self.valid(doc, "Error", "%s %s" % (method, path))
        return doc


def alerts(dash, where="1", args=()):
    return dash.q("SELECT * FROM alerts WHERE %s ORDER BY id" % where, args)


def dump(dash):
    sys.stderr.write("--- alerts ---\n%s\n--- devices ---\n%s\n--- agents ---\n%s\n" % (
        json.dumps(alerts(dash), indent=1),
        json.dumps(dash.q("SELECT udid, agent, site, station, attached, last_seen, has_facts,"
                          " last_icloud, cause_codes FROM devices"), indent=1),
        json.dumps(dash.q("SELECT agent, site, station, presence, presence_ms FROM agents"),
                   indent=1)))


def main():
    north = write_scenario([phone(1, 1, 5 * DAY), phone(1, 2, 3600), phone(1, 3, 5 * DAY)])
    west = write_scenario([phone(2, n, 5 * DAY, [NETLINE] if n <= 5 else None)
                           for n in range(1, 7)])
    conf = ("alert_interval 1s\nalert_clear_for %ds\nalert_agent_offline 2s\n"
            "alert_site_network_min 3\nalert_site_network_pct 50\n" % CLEAR_FOR)
    agent_conf = "syslog_watch true\nsyslog_window 1s\nprobe_interval 10m\n"
    with Broker() as broker, Sim(SIM, north) as sim1, Sim(SIM, west) as sim2, \
            Dashboard(DASH, broker, extra_conf=conf) as dash:
        op = dash.cli(["token", "add", "alerts-op", "--role", "operator"]).stdout.split()[-1]
        viewer = dash.cli(["token", "add", "alerts-view", "--role", "viewer"]).stdout.split()[-1]
        wait_http(dash)
        api = Api(dash)

        # -- silences: bad ones refused, a viewer refused, N3's stored before it is seen
        until = rfc3339(time.time() + 3600)
        for bad in ({"rule": "backup_stale", "udid": N3, "ends_at": until},
                    {"rule": "backup_stale", "udid": N3, "site": "north", "ends_at": until,
                     "comment": "x"},
                    {"rule": "nope", "udid": N3, "ends_at": until, "comment": "x"},
                    {"rule": "backup_stale", "station": "cart-1", "ends_at": until,
                     "comment": "x"},
                    {"rule": "backup_stale", "udid": N3, "ends_at": rfc3339(time.time() - 60),
                     "comment": "x"},
                    {"rule": "backup_stale", "udid": N3, "ends_at": "tomorrow", "comment": "x"}):
            api.expect("POST", "/api/v1/silences", op, 400, bad)
        sil_body = {"rule": "backup_stale", "udid": N3, "ends_at": until,
                    "comment": "phone in repair"}
        api.expect("POST", "/api/v1/silences", viewer, 403, sil_body)
        sil = api.expect("POST", "/api/v1/silences", op, 201, sil_body)
        api.valid(sil, "Silence", "POST /api/v1/silences")
        check(sil["created_by"] == "token:alerts-op" and sil["udid"] == N3 and sil["active"],
              "silence as stored: %r" % sil)
        lst = api.get("/api/v1/silences?active=true", viewer, "SilenceList")
        check(lst["total"] == 1 and lst["silences"][0]["id"] == sil["id"], "silences: %r" % lst)

        with Agent(AGENT, broker, sim1, agent_id="st-alerts-n",
                   extra_conf="site north\nstation cart-1\n" + agent_conf), \
                Agent(AGENT, broker, sim2, agent_id="st-alerts-w",
                      extra_conf="site west\nstation cart-2\n" + agent_conf) as agent_w:
            # -- what fires
            def settled():
                a = alerts(dash)
                return (len([x for x in a if x["rule"] == "backup_stale"]) == 8 and
                        len([x for x in a if x["rule"] == "site_network"]) == 1)
            try:
                wait_for(settled, 60, what="8 backup_stale alerts and one site_network")
            except TimeoutError:
                dump(dash)
                raise
            time.sleep(3)  # three more passes: nothing new
            a = alerts(dash)
            by = {(x["rule"], x["subject"]): x for x in a}
            check(len(a) == 9 and len(by) == 9, "alerts: %r" % a)
            n1 = by[("backup_stale", N1)]
            check(n1["state"] == "firing" and n1["notified"] == 1 and not n1["inhibited_by"],
                  "N1: %r" % n1)
            check(("backup_stale", N2) not in by, "the fresh phone N2 raised an alert")
            n3 = by[("backup_stale", N3)]
            check(n3["silence_id"] == sil["id"] and n3["notified"] == 0, "N3: %r" % n3)
            sn = by[("site_network", "west")]
            check(sn["subject_kind"] == "site" and sn["notified"] == 1 and
                  "Wi-Fi" in sn["summary"], "site_network: %r" % sn)
            det = json.loads(sn["detail_json"])
            check(det["stale"] == 6 and det["network_unavailable"] == 5, "detail: %r" % det)
            for w in WEST:
                x = by[("backup_stale", w)]
                check(x["inhibited_by"] == sn["id"] and x["notified"] == 0,
                      "west phone %s not inhibited: %r" % (w, x))

            # -- the API's view of it
            doc = api.get("/api/v1/alerts?rule=site_network", viewer, "AlertList")
            check(doc["total"] == 1 and doc["alerts"][0]["site"] == "west" and
                  doc["alerts"][0]["state"] == "firing", "site_network: %r" % doc)
            doc = api.get("/api/v1/alerts?state=silenced", viewer, "AlertList")
            check([x["udid"] for x in doc["alerts"]] == [N3], "silenced: %r" % doc)
            doc = api.get("/api/v1/alerts?site=west&rule=backup_stale&limit=2", viewer,
                          "AlertList")
            check(doc["total"] == 6 and len(doc["alerts"]) == 2 and
                  all(x["inhibited"] for x in doc["alerts"]), "west: %r" % doc)
            doc = api.get("/api/v1/alerts?state=firing&site=north", viewer, "AlertList")
            check([x["udid"] for x in doc["alerts"]] == [N1], "north firing: %r" % doc)
            api.get("/api/v1/alerts/rules", viewer, "AlertRules")
            api.expect("GET", "/api/v1/alerts?rule=nope", viewer, 400)
            api.expect("GET", "/api/v1/alerts?state=open", viewer, 400)

            # -- one late message: N1 seen fresh once, then stale again, within clear_for
            def last_icloud(x):
                return dash.q1("SELECT last_icloud FROM devices WHERE udid = ?", (x,)) or 0

            def reprobe(ago):
                sim1.ctl_ok({"op": "set", "udid": N1, "domain": "com.apple.mobile.backup",
                             "key": "LastCloudBackupDate", "value": {"$ago": ago}})
                sim1.ctl_ok({"op": "detach", "udid": N1})
                sim1.ctl_ok({"op": "attach", "udid": N1})
            t0 = time.time()
            reprobe(60)
            wait_for(lambda: last_icloud(N1) > time.time() - 600, 20, what="N1 fresh")
            reprobe(5 * DAY)
            wait_for(lambda: last_icloud(N1) < time.time() - DAY, 20, what="N1 stale again")
            if time.time() - t0 < CLEAR_FOR:
                time.sleep(2)
                a = alerts(dash, "subject = ?", (N1,))
                check(len(a) == 1 and a[0]["state"] == "firing" and a[0]["resolved_at"] is None,
                      "N1 flapped: %r" % a)
            else:
                sys.stderr.write("flap window missed (%.1f s): machine slow\n"
                                 % (time.time() - t0))

            # -- fixed for good: resolved, still one alert
            reprobe(60)
            wait_for(lambda: alerts(dash, "subject = ? AND state = 'resolved'", (N1,)),
                     CLEAR_FOR + 30, what="N1's alert resolved")
            a = alerts(dash, "subject = ?", (N1,))
            check(len(a) == 1 and a[0]["resolved_at"] >= a[0]["fired_at"], "N1: %r" % a)
            doc = api.get("/api/v1/alerts?state=resolved", viewer, "AlertList")
            check([x["udid"] for x in doc["alerts"]] == [N1], "resolved: %r" % doc)

            # -- the silence deleted: N3 notifies then
            api.expect("DELETE", "/api/v1/silences/%d" % sil["id"], viewer, 403)
            api.expect("DELETE", "/api/v1/silences/%d" % sil["id"], op, 204)
            api.expect("DELETE", "/api/v1/silences/999999", op, 404)
            wait_for(lambda: alerts(dash, "subject = ? AND notified = 1 AND silence_id IS NULL",
                                    (N3,)), 10, what="N3 notified after its silence ended")
            lst = api.get("/api/v1/silences", viewer, "SilenceList")
            check(lst["silences"][0]["deleted_by"] == "token:alerts-op" and
                  not lst["silences"][0]["active"], "deleted silence: %r" % lst)

            # -- the west agent stopped: agent_offline, once
            agent_w.stop()
            wait_for(lambda: alerts(dash, "rule = 'agent_offline' AND notified = 1"), 20,
                     what="agent_offline for st-alerts-w")
            time.sleep(2)
            a = alerts(dash, "rule = 'agent_offline'")
            check(len(a) == 1 and a[0]["subject"] == "st-alerts-w", "agent_offline: %r" % a)
        print("alerts e2e: ok")


if __name__ == "__main__":
    main()
