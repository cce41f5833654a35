"""The JSON API end to end: mosquitto, two cradle-sim + cradle-agent stations at two sites, and
cradle-dashboard, called with API tokens over real HTTP.

Checks that every endpoint's real response fits its schema in dashboard/openapi.json (the
document the service itself serves); that filters, sorts, paging and CSV give exactly the rows
the simulators hold; that bad input gets the right 4xx (bad filter naming the parameter, bad
JSON, unknown phone, unknown command, oversized body, no token, viewer sending); that a command
sent through the API, signed with the dashboard's key (`key public` in the agents'
command_keys), reaches the simulated phone and its results show in GET /commands/{id}; that a
phone not docked gets 409; and that with the broker down a command is refused with 503 and
recorded as send_failed, and works again once the broker is back. Login, logout, me, the
stream, users and tokens are checked against what openapi.json declares for their path, and
every route in the server's tables (http.c, api.c) must be in openapi.json.
"""
import csv
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import jsonschema

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from dash import Stream  # noqa: E402
from harness import Agent, Broker, Proc, Sim, check, fail, free_port, wait_for  # noqa: E402

DASHBOARD = os.environ["CRADLE_DASHBOARD"]
SIM = os.environ["CRADLE_SIM"]
AGENT = os.environ["CRADLE_AGENT"]
OPENAPI = os.environ["CRADLE_OPENAPI"]
HOUR = 3600
DAY = 86400


def udid(site, n):
    return "00008110-00%02dA0A1C2D3%04X" % (site, n)


def phone(site, n, name, backup_ago=HOUR, cloud=True, version="17.5.1"):
    backup = {"CloudBackupEnabled": cloud, "WillEncrypt": False, "RequiresEncryption": 0,
              "Version": "2.0"}
    if backup_ago is not None:
        backup["LastCloudBackupDate"] = {"$ago": backup_ago}
    return {
        "udid": udid(site, n),
        "pairing": "paired",
        "attached": True,
        "values": {
            "": {"ProductType": "iPhone14,5", "ProductVersion": version, "BuildVersion": "21F90",
                 "DeviceName": name, "SerialNumber": "F2LAP%d%05d" % (site, n),
                 "PasswordProtected": True},
            "com.apple.mobile.backup": backup,
            "com.apple.mobile.battery": {"BatteryCurrentCapacity": 80, "BatteryIsCharging": False,
                                         "ExternalConnected": True, "FullyCharged": False},
            "com.apple.disk_usage": {"TotalDiskCapacity": 128000000000,
                                     "TotalDataCapacity": 110000000000,
                                     "AmountDataAvailable": 40000000000},
        },
    }


# (phone, status the dashboard must judge with stale_after 72h)
NORTH = [
    (phone(1, 1, "Alpha north"), "ok"),
    (phone(1, 2, "Bravo north", backup_ago=10 * HOUR), "ok"),
    (phone(1, 3, "Charlie north", backup_ago=5 * DAY, version="16.7.8"), "stale"),
    (phone(1, 4, "Delta north", backup_ago=10 * DAY, cloud=False), "stale"),
    (phone(1, 5, "Echo north", backup_ago=None), "stale"),
]
SOUTH = [
    (phone(2, 1, "Foxtrot south", backup_ago=2 * HOUR), "ok"),
    (phone(2, 2, "Golf south", backup_ago=4 * DAY, version="15.8.3"), "stale"),
    (phone(2, 3, "Hotel south", backup_ago=20 * HOUR), "ok"),
]
ALL = NORTH + SOUTH
BY_UDID = {p["udid"]: (p, st) for p, st in ALL}


def scenario(tmp, name, devices):
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump({"devices": [p for p, _ in devices]}, f)
    return path


class Dashboard:
    """cradle-dashboard on a free loopback port with a fresh database and its own key."""

    def __init__(self, broker):
        self.tmp = tempfile.mkdtemp(prefix="cradle-dash-api-")
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.conf = os.path.join(self.tmp, "dashboard.conf")
        self.key = os.path.join(self.tmp, "keys", "command.key")
        with open(self.conf, "w") as f:
            f.write("broker_url %s\nhttp_listen 127.0.0.1:%d\ndb %s\ncommand_key %s\n"
                    "mqtt_client_id dash-api-%d\nhttp_max_body 4K\n" %
                    (broker.url(), self.port, os.path.join(self.tmp, "cradle.db"), self.key,
                     os.getpid()))
        self.proc = None

    def cli(self, args, stdin=None):
        r = subprocess.run([DASHBOARD, "-c", self.conf] + args, input=stdin, text=True,
                           capture_output=True, timeout=30)
        check(r.returncode == 0, "cradle-dashboard %s: %s %s" % (" ".join(args), r.returncode,
                                                                 r.stderr))
        return r.stdout

    def token_add(self, name, role):
        return self.cli(["token", "add", name, "--role", role]).strip().split()[-1]

    def _ready(self):
        try:
            urllib.request.urlopen(self.url + "/api/v1/summary", timeout=2)
        except urllib.error.HTTPError:
            return True  # 401: serving
        except (OSError, urllib.error.URLError):
            return False
        return True

    def start(self):
        self.proc = Proc("dashboard", self.tmp)
        self.proc.spawn([DASHBOARD, "-c", self.conf])
        wait_for(lambda: self._ready() or not self.proc.alive(), 20, what="the dashboard's HTTP")
        check(self.proc.alive(), "cradle-dashboard exited: %s" % self.proc.stderr_text()[-3000:])

    def stop(self):
        """SIGTERM: in-flight writes finish and it exits 0 (sanitizer reports fail it)."""
        if self.proc:
            rc = self.proc.stop(timeout=20)
            check(rc == 0, "cradle-dashboard exited %s: %s" % (rc,
                                                              self.proc.stderr_text()[-4000:]))
            self.proc = None


def call(dash, method, path, token=None, body=None, headers=None, raw=None):
    """(status, headers, body bytes) of one request."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(dash.url + path, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


class Api:
    """Calls that validate every JSON answer against openapi.json's schema for it."""

    def __init__(self, dash, spec):
        self.dash = dash
        self.spec = spec
        self.checked = set()

    def schema(self, name):
        return {"$schema": "https://json-schema.org/draft/2020-12/schema",
                "components": self.spec["components"], "$ref": "#/components/schemas/" + name}

    def validate(self, doc, name, what):
        v = jsonschema.Draft202012Validator(self.schema(name),
                                            format_checker=jsonschema.FormatChecker())
        errors = sorted(v.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            fail("%s does not fit schema %s: %s at %s\n%s" % (
                what, name, errors[0].message, list(errors[0].absolute_path),
                json.dumps(doc, indent=1)[:3000]))
        self.checked.add(name)

    def get(self, path, token, schema, status=200):
        st, hdr, body = call(self.dash, "GET", path, token)
        check(st == status, "GET %s: %d, want %d: %s" % (path, st, status, body[:500]))
        doc = json.loads(body)
        self.validate(doc, schema if st < 400 else "Error", "GET " + path)
        return doc

    def error(self, method, path, token, status, code=None, body=None, raw=None, headers=None):
        st, hdr, data = call(self.dash, method, path, token, body=body, raw=raw,
                             headers=headers)
        check(st == status, "%s %s: %d, want %d: %s" % (method, path, st, status, data[:500]))
        doc = json.loads(data)
        self.validate(doc, "Error", "%s %s (%d)" % (method, path, st))
        if code:
            check(doc["error"]["code"] == code, "%s %s: code %s, want %s" % (
                method, path, doc["error"]["code"], code))
        return doc["error"]["message"]


    def by_spec(self, method, pattern, status, headers, body):
        """Validates a response against what openapi.json declares for pattern, method and
        status (its status and content type must be declared); returns the JSON, if any."""
        op = self.spec["paths"].get(pattern, {}).get(method.lower())
        check(op is not None, "openapi.json has no %s %s" % (method, pattern))
        resp = op["responses"].get(str(status))
        check(resp is not None, "openapi.json: %s %s declares no %d" % (method, pattern, status))
        if status == 204:
            return None
        ctype = (headers.get("Content-Type") or "").split(";")[0]
        check(ctype in resp.get("content", {}), "%s %s %d: Content-Type %r not declared" % (
            method, pattern, status, ctype))
        if ctype != "application/json":
            return None
        doc = json.loads(body)
        schema = resp["content"][ctype]["schema"]
        check("$ref" in schema, "%s %s %d: schema by reference" % (method, pattern, status))
        self.validate(doc, schema["$ref"].rsplit("/", 1)[1], "%s %s (%d)" % (method, pattern,
                                                                            status))
        return doc


def server_routes():
    """(method, pattern) of every route the server has: the tables in http.c and api.c."""
    src = os.path.dirname(OPENAPI)
    routes = set()
    for f in ("http.c", "api.c"):
        with open(os.path.join(src, f)) as fh:
            routes |= set(re.findall(r'\{ "(GET|POST|PUT|PATCH|DELETE)", "(/api/v1/[^"]*)"',
                                     fh.read()))
    return routes


def test_auth_routes(api, dash, viewer):
    """Login, logout, me, stream, users and tokens: every answer as openapi.json declares it,
    and every route of the server is in openapi.json."""
    missing = sorted("%s %s" % r for r in server_routes()
                     if r[0].lower() not in api.spec["paths"].get(r[1], {}))
    check(len(server_routes()) >= 25 and not missing,
          "routes missing from openapi.json: %s" % missing)
    admin = dash.token_add("api-admin", "admin")
    dash.cli(["user", "add", "ann", "--role", "operator"], stdin="ann-pw\n")

    def do(method, pattern, status, token=None, body=None, headers=None, path=None):
        st, h, data = call(api.dash, method, path or pattern, token, body=body, headers=headers)
        check(st == status, "%s %s: %d, want %d: %s" % (method, pattern, st, status, data[:300]))
        return h, api.by_spec(method, pattern, st, h, data)

    # login: bad body, wrong password, then a session
    do("POST", "/api/v1/login", 400, body={"user": "ann"})
    do("POST", "/api/v1/login", 401, body={"user": "ann", "password": "nope"})
    h, me = do("POST", "/api/v1/login", 200, body={"user": "ann", "password": "ann-pw"})
    check(me["user"] == "ann" and me["role"] == "operator" and me["csrf"], "login: %s" % me)
    cookie = {"Cookie": h["Set-Cookie"].split(";", 1)[0]}
    _, me = do("GET", "/api/v1/me", 200, headers=cookie)
    check(me["user"] == "ann" and me["expires_at"], "me by cookie: %s" % me)
    _, me = do("GET", "/api/v1/me", 200, token=viewer)
    check(me == {"user": "token:api-view", "role": "viewer", "csrf": None, "expires_at": None},
          "me by token: %s" % me)
    do("GET", "/api/v1/me", 401)
    # users and tokens: admin only
    _, users = do("GET", "/api/v1/users", 200, token=admin)
    check([u["name"] for u in users["users"]] == ["ann"] and users["users"][0]["created_at"],
          "users: %s" % users)
    _, toks = do("GET", "/api/v1/tokens", 200, token=admin)
    check({"api-admin", "api-op", "api-view"} <= {t["name"] for t in toks["tokens"]} and
          all(t["last_used_at"] for t in toks["tokens"] if t["name"] == "api-view"),
          "tokens: %s" % toks)
    do("GET", "/api/v1/users", 403, token=viewer)
    do("GET", "/api/v1/tokens", 403, headers=cookie)
    do("GET", "/api/v1/tokens", 401)
    # the stream: declared as text/event-stream, refused without credentials
    do("GET", "/api/v1/stream", 401)
    stream = Stream(dash.port, viewer, timeout=30)
    api.by_spec("GET", "/api/v1/stream", stream.resp.status,
                {"Content-Type": stream.resp.getheader("Content-Type")}, b"")
    stream.close()
    # logout: a cookie without the CSRF token is refused, with it 204
    do("POST", "/api/v1/logout", 403, headers=cookie)
    do("POST", "/api/v1/logout", 204, headers=dict(cookie, **{"X-CSRF-Token": me_csrf(api, cookie)}))
    do("GET", "/api/v1/me", 401, headers=cookie)


def me_csrf(api, cookie):
    st, _, data = call(api.dash, "GET", "/api/v1/me", headers=cookie)
    check(st == 200, "me: %d" % st)
    return json.loads(data)["csrf"]


def udids(doc):
    return [d["udid"] for d in doc["devices"]]


def test_read(api, viewer):
    # counts and rows equal what the simulators hold, statuses as the judge must say
    doc = api.get("/api/v1/devices?limit=1000", viewer, "DeviceList")
    check(doc["total"] == len(ALL), "total %d, want %d" % (doc["total"], len(ALL)))
    for d in doc["devices"]:
        p, status = BY_UDID[d["udid"]]
        check(d["status"] == status, "%s: status %s, want %s" % (d["udid"], d["status"], status))
        check(d["name"] == p["values"][""]["DeviceName"], "%s: name %s" % (d["udid"], d["name"]))
        check(d["serial"] == p["values"][""]["SerialNumber"], "%s: serial" % d["udid"])
        check(d["attached"] is True, "%s: not attached" % d["udid"])
        want_site = "site-north" if d["udid"].startswith("00008110-0001") else "site-south"
        check(d["site"] == want_site, "%s: site %s" % (d["udid"], d["site"]))
        if p["values"]["com.apple.mobile.backup"].get("LastCloudBackupDate") is None:
            check(d["last_icloud"] is None and d["age_s"] is None, "%s: never backed up" % d)
        else:
            ago = p["values"]["com.apple.mobile.backup"]["LastCloudBackupDate"]["$ago"]
            check(abs(d["age_s"] - ago) < 600, "%s: age_s %s, want ~%d" % (d["udid"],
                                                                           d["age_s"], ago))

    # filters
    def total(q):
        return api.get("/api/v1/devices?" + q, viewer, "DeviceList")["total"]

    stale = [u for u, (_, st) in BY_UDID.items() if st == "stale"]
    check(total("status=stale") == len(stale), "status=stale")
    check(total("status=ok,stale") == len(ALL), "status=ok,stale")
    check(total("status=missing") == 0, "status=missing")
    check(total("site=site-south") == len(SOUTH), "site filter")
    check(total("site=site-north&station=cart-n") == len(NORTH), "station filter")
    check(total("agent=st-api-south") == len(SOUTH), "agent filter")
    check(total("ios_below=17") == 2, "ios_below=17")
    check(total("ios_below=16") == 1, "ios_below=16")
    doc = api.get("/api/v1/devices?q=f2lap200003", viewer, "DeviceList")
    check(udids(doc) == [udid(2, 3)], "q by serial: %s" % udids(doc))
    doc = api.get("/api/v1/devices?q=CHARLIE", viewer, "DeviceList")
    check(udids(doc) == [udid(1, 3)], "q by name: %s" % udids(doc))
    doc = api.get("/api/v1/devices?q=" + udid(1, 5)[:20].lower(), viewer, "DeviceList")
    check(len(doc["devices"]) >= 1, "q by UDID prefix")
    doc = api.get("/api/v1/devices?status=stale&site=site-north", viewer, "DeviceList")
    check(sorted(udids(doc)) == sorted(u for u in stale if u.startswith("00008110-0001")),
          "status and site combined: %s" % udids(doc))
    cause_doc = api.get("/api/v1/devices?status=stale&limit=1000", viewer, "DeviceList")
    codes = sorted({c for d in cause_doc["devices"] for c in d["causes"]})
    for code in codes:
        want = [d["udid"] for d in cause_doc["devices"] if code in d["causes"]]
        got = udids(api.get("/api/v1/devices?status=stale&cause=" + code, viewer,
                            "DeviceList"))
        check(sorted(got) == sorted(want), "cause=%s: %s, want %s" % (code, got, want))

    # sorts: by name, by age (oldest backup first, never first), stable pages
    doc = api.get("/api/v1/devices?sort=name", viewer, "DeviceList")
    names = [d["name"] for d in doc["devices"]]
    check(names == sorted(names), "sort=name: %s" % names)
    doc = api.get("/api/v1/devices?sort=-name", viewer, "DeviceList")
    check([d["name"] for d in doc["devices"]] == sorted(names, reverse=True), "sort=-name")
    doc = api.get("/api/v1/devices", viewer, "DeviceList")
    check(doc["devices"][0]["udid"] == udid(1, 5), "default sort: never backed up first")
    ages = [d["age_s"] for d in doc["devices"][1:]]
    check(ages == sorted(ages, reverse=True), "default sort -age: %s" % ages)
    doc = api.get("/api/v1/devices?sort=age", viewer, "DeviceList")
    check(doc["devices"][-1]["udid"] == udid(1, 5), "sort=age: never backed up last")
    full = udids(api.get("/api/v1/devices?sort=serial", viewer, "DeviceList"))
    pages = []
    for off in range(0, len(ALL), 3):
        page = api.get("/api/v1/devices?sort=serial&limit=3&offset=%d" % off, viewer,
                       "DeviceList")
        check(page["total"] == len(ALL), "paged total")
        pages += udids(page)
    check(pages == full, "pages %s != the whole list %s" % (pages, full))
    check(udids(api.get("/api/v1/devices?offset=100", viewer, "DeviceList")) == [],
          "past the end")

    # CSV: the whole filter, not a page; by format= and by Accept
    for path, hdr in (("/api/v1/devices?status=stale&limit=1&format=csv", {}),
                      ("/api/v1/devices?status=stale&limit=1", {"Accept": "text/csv"})):
        st, h, body = call(api.dash, "GET", path, viewer, headers=hdr)
        check(st == 200 and h["Content-Type"].startswith("text/csv"), "CSV: %d %s" % (
            st, h["Content-Type"]))
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        check(sorted(r["udid"] for r in rows) == sorted(stale), "CSV rows %s" % rows)
        check(all(r["status"] == "stale" for r in rows), "CSV status column")

    # one phone, its history, agents, summary, the document itself
    d = api.get("/api/v1/devices/" + udid(1, 4), viewer, "DeviceDetail")
    check(d["status"] == "stale" and d["icloud_enabled"] is False, "detail: %s" % d)
    check(d["commands_allowed"] == [], "a viewer may send nothing: %s" % d["commands_allowed"])
    check(all(c["code"] in d["causes"] for c in d["cause_details"]), "cause_details")
    h = api.get("/api/v1/devices/%s/history?limit=5" % udid(1, 4), viewer, "History")
    check(h["total"] >= 1 and len(h["history"]) >= 1, "history: %s" % h)
    a = api.get("/api/v1/agents", viewer, "AgentList")
    by = {x["agent"]: x for x in a["agents"]}
    check(by["st-api-north"]["online"] and by["st-api-north"]["phones_attached"] == len(NORTH),
          "agents: %s" % a)
    check(by["st-api-south"]["site"] == "site-south", "agent site")
    api.get("/api/v1/agents/st-api-south", viewer, "Agent")
    s = api.get("/api/v1/summary", viewer, "Summary")
    check(s["total"] == len(ALL), "summary total")
    check(s["by_status"]["stale"] == len(stale), "summary by_status %s" % s["by_status"])
    check(sum(b["count"] for b in s["age_histogram"]) == len(ALL), "histogram")
    check({x["site"]: x["total"] for x in s["by_site"]} == {"site-north": len(NORTH),
                                                            "site-south": len(SOUTH)},
          "by_site %s" % s["by_site"])
    check(s["agents"]["online"] == 2, "agents online")
    st, h, body = call(api.dash, "GET", "/api/v1/openapi.json", viewer)
    check(st == 200 and json.loads(body) == api.spec, "served openapi.json is the source's")


def test_bad_input(api, viewer, operator):
    msg = api.error("GET", "/api/v1/devices?status=fine", viewer, 400, "bad_parameter")
    check(msg.startswith("status"), "message names the parameter: %s" % msg)
    for q, name in (("sort=colour", "sort"), ("limit=0", "limit"), ("limit=1001", "limit"),
                    ("offset=-1", "offset"), ("ios_below=x", "ios_below"),
                    ("cause=Bad!", "cause"), ("format=xml", "format")):
        msg = api.error("GET", "/api/v1/devices?" + q, viewer, 400, "bad_parameter")
        check(msg.startswith(name), "%s: message %s" % (q, msg))
    api.error("GET", "/api/v1/devices/nope", viewer, 404, "not_found")
    api.error("GET", "/api/v1/devices/nope/history", viewer, 404, "not_found")
    api.error("GET", "/api/v1/agents/nope", viewer, 404, "not_found")
    api.error("GET", "/api/v1/commands/00000000-0000-4000-8000-000000000000", viewer, 404,
              "not_found")
    api.error("GET", "/api/v1/commands/not-a-uuid", viewer, 404, "not_found")
    cmds = "/api/v1/devices/%s/commands" % udid(1, 1)
    api.error("POST", cmds, operator, 400, "bad_json", raw=b"{not json")
    api.error("POST", cmds, operator, 400, "bad_json", raw=b"[1, 2]")
    api.error("POST", cmds, operator, 400, "bad_json", raw=b'{"name": "device.refresh\\u0000"}')
    api.error("POST", cmds, operator, 400, "bad_command", body={"name": "device.explode"})
    api.error("POST", cmds, operator, 400, "bad_command", body={"params": {}})
    api.error("POST", cmds, operator, 400, "bad_params",
              body={"name": "backup.local.start", "params": {"full": "yes"}})
    api.error("POST", cmds, operator, 400, "bad_params",
              body={"name": "device.refresh", "params": {"x": 1}})
    api.error("POST", cmds, operator, 400, "bad_params",
              body={"name": "device.refresh", "params": [1]})
    api.error("POST", "/api/v1/devices/nope/commands", operator, 404, "not_found",
              body={"name": "device.refresh"})
    st, _, _ = call(api.dash, "POST", cmds, operator,
                    raw=json.dumps({"name": "device.refresh", "pad": "x" * 8192}).encode())
    check(st == 413, "oversized body: %d" % st)
    # who may
    st, _, _ = call(api.dash, "GET", "/api/v1/devices", None)
    check(st == 401, "no token: %d" % st)
    st, _, _ = call(api.dash, "GET", "/api/v1/devices", "wrong-token")
    check(st == 401, "wrong token: %d" % st)
    api.error("POST", cmds, viewer, 403, None, body={"name": "device.refresh"})


def wait_command(api, viewer, cmd_id, final=("succeeded", "failed", "rejected"), timeout=60):
    doc = {}

    def done():
        nonlocal doc
        doc = api.get("/api/v1/commands/" + cmd_id, viewer, "Command")
        return doc["status"] in final

    try:
        wait_for(done, timeout, interval=0.3, what="command %s to finish" % cmd_id)
    except Exception:
        fail("command %s did not finish: %s" % (cmd_id, json.dumps(doc)))
    return doc


def test_commands(api, viewer, operator, north, broker, dash):
    target = udid(1, 2)
    d = api.get("/api/v1/devices/" + target, operator, "DeviceDetail")
    check(sorted(d["commands_allowed"]) == sorted(["device.refresh", "backup.icloud.enable",
                                                   "backup.local.start", "device.restart"]),
          "operator's commands_allowed: %s" % d["commands_allowed"])
    north.ctl({"op": "journal"})  # clear
    stream = Stream(dash.port, viewer, timeout=60)
    st, _, body = call(dash, "POST", "/api/v1/devices/%s/commands" % target, operator,
                       body={"name": "device.restart"})
    check(st == 202, "POST command: %d %s" % (st, body))
    doc = json.loads(body)
    api.validate(doc, "CommandAccepted", "POST command")
    cmd = wait_command(api, viewer, doc["cmd_id"])
    check(cmd["status"] == "succeeded", "command status: %s" % json.dumps(cmd))
    statuses = [r["status"] for r in cmd["results"]]
    check(statuses[0] == "accepted" and statuses[-1] == "succeeded", "results %s" % statuses)
    check(cmd["sent_by"] == "token:api-op" and cmd["udid"] == target and
          cmd["agent"] == "st-api-north" and cmd["name"] == "device.restart", "command %s" % cmd)
    # it reached the simulated phone: the restart is in its journal
    journal = json.dumps(north.ctl({"op": "journal", "udid": target}))
    check("restart" in journal.lower() or "diagnostics" in journal.lower(),
          "the phone's journal shows no restart: %s" % journal[:2000])
    h = api.get("/api/v1/devices/%s/history?limit=1000" % target, viewer, "History")
    sent = [e for e in h["history"] if e["kind"] == "command" and "sent_by" in e["detail"]]
    check(sent and sent[0]["detail"]["cmd_id"] == doc["cmd_id"] and
          sent[0]["detail"]["sent_by"] == "token:api-op" and
          sent[0]["summary"] == "device.restart sent by token:api-op",
          "history command row: %s" % sent)
    lst = api.get("/api/v1/devices/%s/commands" % target, viewer, "CommandList")
    check(lst["commands"][0]["cmd_id"] == doc["cmd_id"], "device commands list")
    # the result arrived live on the stream, as the command object of GET /commands/{id}
    wait_for(lambda: stream.find("command", lambda d: d["cmd_id"] == doc["cmd_id"] and
                                 d["status"] == "succeeded"), 20, interval=0.2,
             what="the command's final status on the SSE stream")
    for d in stream.find("command", lambda d: d["cmd_id"] == doc["cmd_id"]):
        api.validate(d, "Command", "SSE command event")
    for d in stream.find("device", lambda d: True):
        api.validate(d, "Device", "SSE device event")
    stream.close()

    # a phone that is not docked: 409
    gone = udid(1, 1)
    north.ctl_ok({"op": "detach", "udid": gone})
    wait_for(lambda: not api.get("/api/v1/devices/" + gone, viewer, "DeviceDetail")["attached"],
             30, what="the detached phone to show in the API")
    msg = api.error("POST", "/api/v1/devices/%s/commands" % gone, operator, 409, "not_attached",
                    body={"name": "device.refresh"})
    check("not docked" in msg, "409 message: %s" % msg)

    # broker gone (killed: no wills, so the store still has the agents online): 503 and
    # send_failed; back: commands flow again
    broker.kill9()
    time.sleep(1.5)
    st, _, body = call(dash, "POST", "/api/v1/devices/%s/commands" % target, operator,
                       body={"name": "device.refresh"})
    check(st == 503, "broker down: %d %s" % (st, body))
    err = json.loads(body)
    api.validate(err, "Error", "503")
    failed = api.get("/api/v1/devices/%s/commands" % target, viewer, "CommandList")["commands"]
    check(failed[0]["status"] == "send_failed", "recorded as send_failed: %s" % failed[0])
    broker.start()

    def resend():
        st, _, body = call(dash, "POST", "/api/v1/devices/%s/commands" % target, operator,
                           body={"name": "device.refresh"})
        return json.loads(body)["cmd_id"] if st == 202 else None

    cmd_id = None

    def accepted():
        nonlocal cmd_id
        cmd_id = resend()
        return cmd_id is not None

    wait_for(accepted, 60, interval=1, what="the command sender to reconnect")
    cmd = wait_command(api, viewer, cmd_id)
    check(cmd["status"] == "succeeded", "after reconnect: %s" % json.dumps(cmd))


def main():
    spec = json.load(open(OPENAPI))
    tmp = tempfile.mkdtemp(prefix="cradle-api-test-")
    broker = Broker().start()
    dash = Dashboard(broker)
    pub = dash.cli(["key", "public"]).strip()
    check(len(pub) == 44 and os.stat(dash.key).st_mode & 0o777 == 0o600,
          "key public: %r, key mode %o" % (pub, os.stat(dash.key).st_mode))
    check(dash.cli(["key", "public"]).strip() == pub, "key public is stable")
    viewer = dash.token_add("api-view", "viewer")
    operator = dash.token_add("api-op", "operator")
    with Sim(SIM, scenario(tmp, "north", NORTH)) as north, \
            Sim(SIM, scenario(tmp, "south", SOUTH)) as south:
        agents = [Agent(AGENT, broker, north, "st-api-north",
                        "command_keys %s\nsite site-north\nstation cart-n\npublish_device_name true\n" % pub),
                  Agent(AGENT, broker, south, "st-api-south",
                        "command_keys %s\nsite site-south\nstation cart-s\npublish_device_name true\n" % pub)]
        for a in agents:
            a.start()
        dash.start()
        try:
            api = Api(dash, spec)
            wait_for(lambda: api.get("/api/v1/devices", viewer, "DeviceList")["total"] ==
                     len(ALL) and all(d["causes"] is not None for d in api.get(
                         "/api/v1/devices?limit=1000", viewer, "DeviceList")["devices"]),
                     60, interval=0.3, what="every phone in the API")
            # the first states may still be arriving: wait until the judged counts settle
            wait_for(lambda: api.get("/api/v1/summary", viewer, "Summary")["by_status"]["stale"]
                     == sum(1 for _, st in ALL if st == "stale"), 60, interval=0.5,
                     what="the phones' statuses")
            test_read(api, viewer)
            test_bad_input(api, viewer, operator)
            test_commands(api, viewer, operator, north, broker, dash)
            test_auth_routes(api, dash, viewer)
            for name in ("DeviceList", "DeviceDetail", "History", "AgentList", "Agent",
                         "Summary", "Command", "CommandList", "CommandAccepted", "Error",
                         "Me", "UserList", "TokenList"):
                check(name in api.checked, "no response was checked against %s" % name)
        except BaseException:
            if dash.proc:
                sys.stderr.write("--- dashboard stderr ---\n%s\n" %
                                 dash.proc.stderr_text()[-6000:])
            for a in agents:
                if a.proc:
                    sys.stderr.write("--- %s stderr ---\n%s\n" % (
                        a.agent_id, a.proc.stderr_text()[-3000:]))
            raise
        finally:
            dash.stop()
            for a in agents:
                a.stop()
    broker.stop()
    print("api_test: ok")


if __name__ == "__main__":
    main()
