#!/usr/bin/python3
"""Bulk jobs end to end: mosquitto, cradle-sim, real cradle-agents and cradle-dashboard, over
the HTTP API with an operator token.

    jobs_test.py rollout   a job against every icloud_backup_disabled phone of a site turns them
                           all ok, keeps its rate (gaps between sends) and its per-agent
                           concurrency (overlapping executions), both from the stored
                           transitions; a phone of the target not docked at the start is
                           executed when it docks at the other station; the dry run counts;
                           a job whose action fails in the simulator aborts at its threshold
                           and sends no more; cancel; bad input.
    jobs_test.py restart   the dashboard SIGKILLed mid-job finishes the job after a restart, and
                           the simulator's journal shows every phone's action exactly once.
"""
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dash import AGENT, DASH, SIM, Dashboard, Stream, key_public  # noqa: E402
from harness import Agent, Broker, Sim, check, fail, wait_for  # noqa: E402

HOUR = 3600
CAUSE = "icloud_backup_disabled"


def udid(group, n):
    return "00008110-00%02dB0B1C2D3%04X" % (group, n)


def phone(group, n, cloud=False, attached=True, toggle_error=0):
    p = {
        "udid": udid(group, n),
        "pairing": "paired",
        "attached": attached,
        "values": {
            "": {"ProductType": "iPhone14,5", "ProductVersion": "17.5.1", "BuildVersion": "21F90",
                 "DeviceName": "Job phone %d-%d" % (group, n),
                 "SerialNumber": "F2JOB%d%05d" % (group, n), "PasswordProtected": True},
            "com.apple.mobile.backup": {"CloudBackupEnabled": cloud, "WillEncrypt": False,
                                        "RequiresEncryption": 0, "Version": "2.0",
                                        "LastCloudBackupDate": {"$ago": HOUR}},
            "com.apple.mobile.battery": {"BatteryCurrentCapacity": 80, "BatteryIsCharging": False,
                                         "ExternalConnected": True, "FullyCharged": False},
            "com.apple.disk_usage": {"TotalDiskCapacity": 128000000000,
                                     "TotalDataCapacity": 110000000000,
                                     "AmountDataAvailable": 40000000000},
        },
    }
    if toggle_error:
        p["cloud_toggle"] = {"error_code": toggle_error, "error_text": "simulated refusal"}
    return p


def scenario(tmp, name, devices):
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump({"devices": devices}, f)
    return path


OPENAPI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "dashboard",
                       "openapi.json")


def schema_of(method, path, status):
    """The openapi.json schema name of a jobs answer."""
    if status >= 400:
        return "Error"
    if path.endswith("/executions") or "/executions?" in path:
        return "ExecutionList"
    if method == "GET" and path.split("?")[0] == "/api/v1/jobs":
        return "JobList"
    if path.startswith("/api/v1/devices"):
        return "DeviceDetail"
    return "JobDryRun" if status == 200 and method == "POST" and path == "/api/v1/jobs" \
        else "Job"


class Api:
    """Every answer is checked against its schema in openapi.json."""

    def __init__(self, dash, token):
        import jsonschema
        self.dash = dash
        self.token = token
        self.spec = json.load(open(OPENAPI))
        self.jsonschema = jsonschema
        self.checked = set()

    def validate(self, doc, name, what):
        v = self.jsonschema.Draft202012Validator(
            {"$schema": "https://json-schema.org/draft/2020-12/schema",
             "components": self.spec["components"], "$ref": "#/components/schemas/" + name},
            format_checker=self.jsonschema.FormatChecker())
        errors = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            fail("%s does not fit schema %s: %s at %s\n%s" % (
                what, name, errors[0].message, list(errors[0].absolute_path),
                json.dumps(doc, indent=1)[:3000]))
        self.checked.add(name)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.dash.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + self.token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=20) as r:
                st, doc = r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            st, doc = e.code, json.loads(e.read() or b"null")
        if st != 404 or not path.startswith("/api/v1/devices/"):
            self.validate(doc, schema_of(method, path, st), "%s %s" % (method, path))
        return st, doc

    def ok(self, method, path, body=None, status=200):
        st, doc = self.call(method, path, body)
        if st != status:
            fail("%s %s: %d %s (want %d)" % (method, path, st, doc, status))
        return doc

    def device(self, u):
        return self.ok("GET", "/api/v1/devices/" + u)

    def job(self, jid):
        return self.ok("GET", "/api/v1/jobs/%d" % jid)

    def executions(self, jid, state=None):
        q = "?limit=1000" + ("&state=" + state if state else "")
        return self.ok("GET", "/api/v1/jobs/%d/executions%s" % (jid, q))["executions"]

    def wait_state(self, jid, states, timeout):
        wait_for(lambda: self.job(jid)["state"] in states, timeout, interval=0.3,
                 what="job %d in %s (now %s)" % (jid, states, self.job(jid)["state"]))
        return self.job(jid)


def ts(s):
    """RFC 3339 (ms) to seconds."""
    import datetime
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def sent_times(execs):
    return sorted(ts(t["at"]) for e in execs for t in e["transitions"] if t["state"] == "sent")


def max_overlap(intervals):
    """The largest number of [start, end) intervals open at once."""
    ev = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    cur = best = 0
    for _, d in ev:
        cur += d
        best = max(best, cur)
    return best


def cloud_actions(sim, u):
    return [e for e in sim.journal(u) if e.get("op") == "cloud_backup"]


def start_agent(broker, sim, name, site, station, pub):
    return Agent(AGENT, broker, sim, name, "command_keys %s\nsite %s\nstation %s\n"
                 "publish_device_name true\n" % (pub, site, station)).start()


def wait_phones(api, udids, pred, what, timeout=60):
    try:
        wait_for(lambda: all(pred(api.device(u)) for u in udids), timeout, interval=0.3,
                 what=what)
    except TimeoutError:
        for u in udids:
            if not pred(api.device(u)):
                sys.stderr.write("not yet: %s\n" % json.dumps(api.device(u)))
        raise


# ---- rollout: rate, concurrency, every phone ok, a phone docked later, abort, cancel ----

def test_bad_input(api):
    for body, code in [({}, "bad_job"),
                       ({"name": "x", "command": {"name": "rm -rf"}, "target": {"udids": ["a"]}},
                        "bad_command"),
                       ({"name": "x", "command": {"name": "device.refresh"}, "target": {}},
                        "bad_target"),
                       ({"name": "x", "command": {"name": "device.refresh"},
                         "target": {"filter": {"colour": "red"}}}, "bad_target"),
                       ({"name": "x", "command": {"name": "device.refresh"},
                         "target": {"udids": ["a"], "serials": ["b"]}}, "bad_target"),
                       ({"name": "x", "command": {"name": "device.refresh"},
                         "target": {"udids": ["a"]}, "rollout": {"per_minute": -1}}, "bad_job"),
                       ({"name": "x", "command": {"name": "device.refresh"},
                         "target": {"udids": ["a"]}, "abort": {"failure_pct": 150}}, "bad_job"),
                       ({"name": "x", "command": {"name": "device.refresh"},
                         "target": {"udids": ["a"]}, "deadline": "2001-01-01T00:00:00Z"},
                        "bad_job"),
                       ({"name": "x", "command": {"name": "device.refresh"},
                         "target": {"udids": ["a"]}, "window": {"start": "25:00",
                                                               "end": "06:00"}}, "bad_job")]:
        st, doc = api.call("POST", "/api/v1/jobs", body)
        check(st == 400 and doc["error"]["code"] == code,
              "bad job %s: %d %s (want 400 %s)" % (body, st, doc, code))
    viewer = Api(api.dash, api.viewer)
    for method, path in (("GET", "/api/v1/jobs"), ("POST", "/api/v1/jobs")):
        st, doc = viewer.call(method, path, {} if method == "POST" else None)
        check(st == 403 and doc["error"]["code"] == "forbidden",
              "a viewer %s %s: %d %s" % (method, path, st, doc))
    st, doc = api.call("GET", "/api/v1/jobs/999999")
    check(st == 404, "unknown job: %d" % st)
    st, doc = api.call("GET", "/api/v1/jobs/1/executions?state=bogus")
    check(st == 400, "bad state filter: %d" % st)


def rollout(tmp, broker, dash, api, pub):
    a_ok = [phone(1, n) for n in range(1, 6)] + [phone(1, 9, cloud=True)]
    late = phone(3, 1)  # docked at station a first, then (after the job starts) at station b
    b_ok = [phone(2, n) for n in range(1, 4)]
    fails = [phone(4, n, toggle_error=1) for n in range(1, 7)]
    late_b = dict(late, attached=False)
    with Sim(SIM, scenario(tmp, "a", a_ok + [late])) as sim_a, \
            Sim(SIM, scenario(tmp, "b", b_ok + [late_b])) as sim_b, \
            Sim(SIM, scenario(tmp, "c", fails)) as sim_c:
        agents = [start_agent(broker, sim_a, "st-job-a", "north", "a", pub),
                  start_agent(broker, sim_b, "st-job-b", "north", "b", pub),
                  start_agent(broker, sim_c, "st-job-c", "south", "c", pub)]
        try:
            target = [p["udid"] for p in a_ok[:5] + b_ok + [late]]
            everyone = target + [a_ok[5]["udid"]] + [p["udid"] for p in fails]
            wait_for(lambda: all(api.call("GET", "/api/v1/devices/" + u)[0] == 200
                                 for u in everyone), 60, interval=0.5, what="every phone known")
            wait_phones(api, target, lambda d: CAUSE in d["causes"], "the causes", timeout=20)
            test_bad_input(api)
            # the late phone leaves station a before the job starts
            sim_a.ctl_ok({"op": "detach", "udid": late["udid"]})
            wait_phones(api, [late["udid"]], lambda d: not d["attached"], "late phone detached")

            body = {"name": "enable iCloud Backup, north",
                    "command": {"name": "backup.icloud.enable", "params": {}},
                    "target": {"filter": {"cause": CAUSE, "site": "north"}},
                    "rollout": {"per_minute": 60, "per_agent": 2},
                    "abort": {"failure_pct": 50, "min_executions": 4}, "timeout_s": 60}
            dry = api.ok("POST", "/api/v1/jobs", dict(body, dry_run=True))
            check(dry["dry_run"] and dry["total"] == len(target) and
                  dry["docked"] == len(target) - 1 and
                  {a["agent"]: a["phones"] for a in dry["agents"]} ==
                  {"st-job-a": 6, "st-job-b": 3}, "dry run: %s" % dry)
            check(api.ok("GET", "/api/v1/jobs")["total"] == 0, "a dry run stores nothing")

            stream = Stream(dash.http_port, api.token)
            t0 = time.time()
            job = api.ok("POST", "/api/v1/jobs", body, status=201)
            jid = job["id"]
            check(job["state"] == "scheduled" and job["created_by"] == "token:job-op" and
                  job["rollout"] == {"per_minute": 60, "per_agent": 2}, "created: %s" % job)
            # every docked phone is done before the late one docks elsewhere
            wait_for(lambda: api.job(jid)["counts"]["succeeded"] == len(target) - 1, 60,
                     interval=0.5, what="the docked phones' executions")
            j = api.job(jid)
            check(j["state"] == "in_progress" and j["counts"]["queued"] == 1,
                  "waiting for the late phone: %s" % j)
            sim_b.ctl_ok({"op": "attach", "udid": late["udid"]})
            j = api.wait_state(jid, ("completed", "aborted"), 40)
            took = time.time() - t0
            check(j["state"] == "completed" and j["counts"]["succeeded"] == len(target) and
                  j["total"] == len(target), "completed: %s" % j)
            execs = api.executions(jid)
            check({e["udid"] for e in execs} == set(target), "executions are the target")
            # the stream told of the job's progress with the job object
            wait_for(lambda: stream.find("job", lambda d: d.get("id") == jid and
                                         d["state"] == "completed"), 10, interval=0.2,
                     what="SSE job event of the completed job")
            check(stream.find("job", lambda d: d.get("id") == jid and
                              0 < d["counts"]["succeeded"] < len(target)),
                  "SSE job events while it ran")
            for d in stream.find("job", lambda d: d.get("id") == jid)[:3]:
                api.validate(d, "Job", "SSE job event")
            stream.close()
            lt = [e for e in execs if e["udid"] == late["udid"]][0]
            check(lt["agent"] == "st-job-b" and
                  [t["state"] for t in lt["transitions"]][:2] == ["queued", "sent"],
                  "the late phone went to station b: %s" % lt)
            for e in execs:
                states = [t["state"] for t in e["transitions"]]
                check(states[0] == "queued" and states[-1] == "succeeded" and "sent" in states,
                      "transitions of %s: %s" % (e["udid"], states))
            # rate: 60 per minute, spread evenly: sends at least ~1 s apart
            times = sent_times(execs)
            gaps = [b - a for a, b in zip(times, times[1:])]
            check(min(gaps) >= 0.95, "rate 60/min: gaps between sends %s" % gaps)
            # per agent: never more than 2 in flight (sent .. final) at one agent
            overlap = {}
            for agent in ("st-job-a", "st-job-b"):
                iv = []
                for e in execs:
                    if e["agent"] != agent:
                        continue
                    s = [ts(t["at"]) for t in e["transitions"] if t["state"] == "sent"][0]
                    iv.append((s, ts(e["finished_at"])))
                overlap[agent] = max_overlap(iv)
                check(overlap[agent] <= 2, "per_agent 2 at %s: %d at once" % (agent,
                                                                               overlap[agent]))
            # every phone of the target is now ok, its cause gone; each did the action once
            wait_phones(api, target, lambda d: d["status"] == "ok" and CAUSE not in d["causes"]
                        and d["icloud_enabled"], "every phone ok", timeout=30)
            for u in target:
                sim = sim_b if u == late["udid"] or u in [p["udid"] for p in b_ok] else sim_a
                acts = cloud_actions(sim, u)
                check(len(acts) == 1 and acts[0].get("enable") is True,
                      "%s: cloud_backup in the journal %s" % (u, acts))
            lst = api.ok("GET", "/api/v1/jobs")
            check(lst["total"] == 1 and lst["jobs"][0]["id"] == jid and
                  "rate_per_minute" in lst["jobs"][0] and lst["jobs"][0]["eta_s"] == 0,
                  "list: %s" % lst)
            mine = api.ok("GET", "/api/v1/jobs?udid=" + late["udid"])
            check(mine["total"] == 1 and mine["jobs"][0]["execution_state"] == "succeeded",
                  "jobs of a phone: %s" % mine)
            print("rollout: %d phones in %.1f s, max in flight per agent %s" %
                  (len(target), took, overlap))

            # abort: the action fails on every phone of station c; at 50 % after 3 it stops
            fj = api.ok("POST", "/api/v1/jobs",
                        {"name": "enable, south", "command": {"name": "backup.icloud.enable"},
                         "target": {"serials": ["F2JOB4%05d" % n for n in range(1, 7)]},
                         "rollout": {"per_agent": 1},
                         "abort": {"failure_pct": 50, "min_executions": 3}}, status=201)
            j = api.wait_state(fj["id"], ("aborted", "completed"), 60)
            c = j["counts"]
            check(j["state"] == "aborted" and c["failed"] == 3 and c["canceled"] == 3 and
                  c["succeeded"] == 0 and "aborted" in j["detail"], "aborted: %s" % j)
            failed = api.executions(fj["id"], "failed")
            check(all(e["cause"] == "icloud_enable_failed" for e in failed),
                  "failure causes: %s" % [e["cause"] for e in failed])
            n_actions = sum(len(cloud_actions(sim_c, p["udid"])) for p in fails)
            check(n_actions == 3, "the aborted job touched %d phones (want 3)" % n_actions)
            # per_agent 1, unthrottled: one at a time at station c, never two at once
            fe = api.executions(fj["id"])
            iv = [([ts(t["at"]) for t in e["transitions"] if t["state"] == "sent"][0],
                   ts(e["finished_at"])) for e in fe if e["state"] == "failed"]
            check(max_overlap(iv) == 1, "per_agent 1: %d at once" % max_overlap(iv))

            # retries: the failure cause is retried once, with a new cmd_id, then final
            rj = api.ok("POST", "/api/v1/jobs",
                        {"name": "retry, south", "command": {"name": "backup.icloud.enable"},
                         "target": {"udids": [p["udid"] for p in fails[:2]]},
                         "retry": {"causes": ["icloud_enable_failed"], "max": 1}}, status=201)
            j = api.wait_state(rj["id"], ("completed", "aborted"), 40)
            check(j["state"] == "completed" and j["counts"]["failed"] == 2, "retried: %s" % j)
            for e in api.executions(rj["id"]):
                # (accepted / in_progress show only when a pass sees them before the end)
                states = [t["state"] for t in e["transitions"]
                          if t["state"] in ("queued", "sent", "failed")]
                ids = {t["cmd_id"] for t in e["transitions"] if t["state"] == "sent"}
                check(e["attempt"] == 2 and states == ["queued", "sent", "failed", "queued",
                                                       "sent", "failed"] and len(ids) == 2,
                      "retry of %s: attempt %d, %s" % (e["udid"], e["attempt"], states))
                check(len(cloud_actions(sim_c, e["udid"])) == 2, "two attempts ran")

            # window: outside it nothing starts; deadline: a phone never docked is canceled
            now_min = int(time.time() // 60) % 1440
            wj = api.ok("POST", "/api/v1/jobs",
                        {"name": "closed window", "command": {"name": "device.refresh"},
                         "target": {"udids": [a_ok[5]["udid"]]},
                         "window": {"start": "%02d:%02d" % divmod((now_min + 120) % 1440, 60),
                                    "end": "%02d:%02d" % divmod((now_min + 180) % 1440, 60)}},
                        status=201)
            dj = api.ok("POST", "/api/v1/jobs",
                        {"name": "deadline", "command": {"name": "device.refresh"},
                         "target": {"udids": ["00008110-00EEB0B1C2D30002"]},
                         "deadline": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                   time.gmtime(time.time() + 4))}, status=201)
            j = api.wait_state(dj["id"], ("completed",), 20)
            check(j["counts"]["canceled"] == 1 and "deadline" in
                  api.executions(dj["id"])[0]["detail"], "deadline: %s" % j)
            j = api.job(wj["id"])
            check(j["state"] == "in_progress" and j["counts"]["queued"] == 1,
                  "outside the window nothing starts: %s" % j)
            check(api.ok("POST", "/api/v1/jobs/%d/cancel" % wj["id"])["state"] == "canceled",
                  "cancel the window job")

            # cancel: a job for a phone that never docks stays queued until canceled
            cj = api.ok("POST", "/api/v1/jobs",
                        {"name": "never docked", "command": {"name": "device.refresh"},
                         "target": {"udids": ["00008110-00EEB0B1C2D30001"]}}, status=201)
            wait_for(lambda: api.job(cj["id"])["state"] == "in_progress", 10, interval=0.2)
            cd = api.ok("POST", "/api/v1/jobs/%d/cancel" % cj["id"])
            check(cd["state"] == "canceled" and cd["canceled_by"] == "token:job-op" and
                  cd["counts"]["canceled"] == 1, "canceled: %s" % cd)
            st, doc = api.call("POST", "/api/v1/jobs/%d/cancel" % cj["id"])
            check(st == 409, "cancel twice: %d" % st)
            for name in ("Job", "JobList", "JobDryRun", "ExecutionList", "Error"):
                check(name in api.checked, "no answer was checked against %s" % name)
        finally:
            for a in agents:
                a.stop()


# ---- restart: SIGKILL mid-job, nothing sent twice ----

def restart(tmp, broker, dash, api, pub):
    phones = [phone(5, n) for n in range(1, 7)]
    with Sim(SIM, scenario(tmp, "k", phones)) as sim:
        agent = start_agent(broker, sim, "st-job-k", "east", "k", pub)
        try:
            target = [p["udid"] for p in phones]
            wait_for(lambda: all(api.call("GET", "/api/v1/devices/" + u)[0] == 200
                                 for u in target), 60, interval=0.5, what="every phone known")
            wait_phones(api, target, lambda d: CAUSE in d["causes"], "the causes", timeout=20)
            job = api.ok("POST", "/api/v1/jobs",
                         {"name": "enable, east", "command": {"name": "backup.icloud.enable"},
                          "target": {"filter": {"cause": CAUSE, "site": "east"}},
                          "rollout": {"per_minute": 40, "per_agent": 2}}, status=201)
            jid = job["id"]
            # kill it once some executions are out and some are still queued
            wait_for(lambda: dash.q1("SELECT COUNT(*) FROM job_executions WHERE job_id = ? AND"
                                     " state != 'queued'", (jid,)) >= 2, 40, interval=0.05,
                     what="two executions sent")
            dash.proc.kill9()
            dash.proc = None
            before = dash.q("SELECT udid, state, cmd_id FROM job_executions WHERE job_id = ?",
                            (jid,))
            check(any(r["state"] == "queued" for r in before), "killed mid-job: %s" % before)
            time.sleep(1)
            dash.start()
            j = api.wait_state(jid, ("completed", "aborted"), 60)
            check(j["state"] == "completed" and j["counts"]["succeeded"] == len(target),
                  "after the restart: %s" % j)
            # the cmd_id stored before the kill is the one that finished: nothing re-issued
            after = {r["udid"]: r for r in dash.q(
                "SELECT udid, cmd_id, attempt FROM job_executions WHERE job_id = ?", (jid,))}
            for r in before:
                if r["cmd_id"]:
                    check(after[r["udid"]]["cmd_id"] == r["cmd_id"],
                          "%s: cmd_id changed over the restart" % r["udid"])
            check(all(r["attempt"] == 1 for r in after.values()), "one attempt each")
            n_sent = dash.q1("SELECT COUNT(*) FROM commands WHERE sent_by LIKE 'job %d %%'" % jid)
            check(n_sent == len(target), "%d commands stored for %d phones" % (n_sent,
                                                                               len(target)))
            for u in target:
                acts = cloud_actions(sim, u)
                check(len(acts) == 1, "%s: the action ran %d times: %s" % (u, len(acts), acts))
            print("restart: states at the kill %s; each phone's action ran once" %
                  sorted(r["state"] for r in before))
        finally:
            agent.stop()


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "rollout"
    tmp = tempfile.mkdtemp(prefix="cradle-jobs-test-")
    with Broker() as broker:
        dash = Dashboard(DASH, broker)
        pub = key_public(dash)
        r = dash.cli(["token", "add", "job-op", "--role", "operator"])
        check(r.returncode == 0, "token add: %s" % r.stderr)
        api = Api(dash, r.stdout.strip().split()[-1])
        r = dash.cli(["token", "add", "job-view", "--role", "viewer"])
        check(r.returncode == 0, "token add: %s" % r.stderr)
        api.viewer = r.stdout.strip().split()[-1]
        with dash:
            {"rollout": rollout, "restart": restart}[mode](tmp, broker, dash, api, pub)
    print("jobs_test %s: ok" % mode)


if __name__ == "__main__":
    main()
