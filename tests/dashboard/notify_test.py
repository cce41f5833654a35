#!/usr/bin/python3
"""Delivery of alert notifications (dashboard/notify.c) against real receivers: an HTTP server
(python http.server in a thread) for the webhook, Slack and Teams bodies, and an SMTP server
(aiosmtpd) that requires STARTTLS with a self-signed certificate made here.

The queue and the worker run in test-dash-notify-driver (a real store; the alerts engine is not
involved) and, for the stop and restart case, in cradle-dashboard itself:

- webhook: every request carries X-Cradle-Signature that verifies with the secret over
  "<t>.<body>" (and not with another secret); bodies in order; a receiver only gets its rules;
  Slack and Teams bodies have the shape those services take;
- the receiver down for a while: nothing lost, delivered later, in order, each once;
- a full queue drops its oldest rows, counted (dropped), and delivers the others;
- a receiver that never comes back, and one that refuses (HTTP 400): dead letters, counted and
  listed by the status, the refusal after one attempt;
- digest mode: one message for 20 alerts, the next one only after the digest period;
- e-mail over SMTP with STARTTLS required; without the CA the certificate is refused;
- the whole chain (agent messages over a real broker, ingest, the alerts engine, the queue, the
  webhook): a stale phone fires one signed notification, a fresh backup resolves it;
- cradle-dashboard: SIGTERM during an attempt that hangs exits promptly, the rows stay queued,
  and after a restart they are delivered; GET /api/v1/notify/status shows the counts.
"""
import asyncio
import hashlib
import hmac
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Broker, check, fail, free_port, wait_for  # noqa: E402

DRIVER = os.environ.get("NOTIFY_DRIVER", "")
SECRET = "s3cret-for-the-test-0123456789"
ENV = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


class Receiver:
    """An HTTP receiver: records every POST (path, headers, body, time); answers `status`."""

    def __init__(self, port=None, status=200):
        self.port = port or free_port()
        self.status = status
        self.got = []
        self.lock = threading.Lock()
        self.srv = None

    def start(self):
        rcv = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                with rcv.lock:
                    rcv.got.append((self.path, dict(self.headers), body, time.time()))
                self.send_response(rcv.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        http.server.ThreadingHTTPServer.allow_reuse_address = True
        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self.srv:
            self.srv.shutdown()
            self.srv.server_close()
            self.srv = None

    def posts(self, path=None):
        with self.lock:
            return [g for g in self.got if path is None or g[0] == path]

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)


def verify(headers, body, secret=SECRET):
    """The receiver's side of X-Cradle-Signature, as dashboard/README.md documents it."""
    sig = headers.get("X-Cradle-Signature", "")
    parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
    if "t" not in parts or "v1" not in parts:
        return False
    mac = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    return (hmac.compare_digest(mac.hexdigest(), parts["v1"])
            and abs(time.time() - int(parts["t"])) < 300)


class Case:
    """A private directory, database and config for the driver."""

    def __init__(self, conf):
        self.tmp = tempfile.mkdtemp(prefix="cradle-notify-")
        self.db = os.path.join(self.tmp, "cradle.db")
        self.conf = os.path.join(self.tmp, "dashboard.conf")
        with open(self.conf, "w") as f:
            f.write("db %s\ncommand_key %s/command.key\nlog_level debug\n%s"
                    % (self.db, self.tmp, conf))

    def run(self, *actions, timeout=90):
        r = subprocess.run([DRIVER, self.conf] + list(actions), capture_output=True, text=True,
                           timeout=timeout, env=ENV)
        if r.returncode != 0:
            fail("notify_driver %s: exit %d: %s" % (" ".join(actions), r.returncode,
                                                     r.stderr[-4000:]))
        return r

    def spawn(self, *actions):
        return subprocess.Popen([DRIVER, self.conf] + list(actions), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=ENV)

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def status_of(out):
    return json.loads(out.strip().splitlines()[-1])


def ids(posts):
    return [a["id"] for p in posts for a in json.loads(p[2])["alerts"]]


def test_webhook_slack_teams():
    rcv = Receiver().start()
    case = Case("receiver1 hook webhook %s secret=%s rules=backup_stale\n"
                "receiver2 chat slack %s\nreceiver3 msteams teams %s\n"
                "receiver4 agents webhook %s secret=%s rules=agent_offline,site_network\n"
                % (rcv.url("/hook"), SECRET, rcv.url("/slack"), rcv.url("/teams"),
                   rcv.url("/agents"), SECRET))
    try:
        st = status_of(case.run("worker", "enqueue:3:backup_stale:firing",
                                "enqueue:1:backup_stale:resolved", "wait-empty:20000",
                                "status").stdout)
        hook = rcv.posts("/hook")
        check(ids(hook) == ["a1", "a2", "a3", "a4"], "webhook order: %r" % ids(hook))
        for path, hdr, body, _ in hook:
            check(verify(hdr, body), "signature does not verify: %r" % hdr)
            check(not verify(hdr, body, secret="another-secret-0123456789"),
                  "a wrong secret verifies")
            check(not verify(hdr, body + b" "), "a changed body verifies")
            check(hdr.get("Content-Type") == "application/json", "content type %r" % hdr)
            b = json.loads(body)
            check(b["type"] == "cradle.alerts.v1" and b["receiver"] == "hook"
                  and b["digest"] is False and len(b["alerts"]) == 1, "webhook body %r" % b)
            a = b["alerts"][0]
            for k in ("id", "rule", "state", "subject_kind", "subject", "udid", "site",
                      "station", "summary", "detail", "fired_at", "resolved_at"):
                check(k in a, "alert object lacks %s: %r" % (k, a))
            check(a["udid"] == a["subject"] and a["detail"]["k"] == int(a["id"][1:]),
                  "alert fields %r" % a)
        last = json.loads(hook[-1][2])["alerts"][0]
        check(last["state"] == "resolved" and last["resolved_at"], "resolved alert %r" % last)
        check(rcv.posts("/agents") == [], "a receiver got a rule it does not take")

        slack = rcv.posts("/slack")
        check(len(slack) == 4, "slack messages: %d" % len(slack))
        s0 = json.loads(slack[0][2])
        check(set(s0) == {"text"} and "FIRING backup_stale" in s0["text"]
              and "udid-1" in s0["text"], "slack body %r" % s0)
        check("X-Cradle-Signature" not in slack[0][1], "slack request signed")
        teams = rcv.posts("/teams")
        check(len(teams) == 4, "teams messages: %d" % len(teams))
        t0 = json.loads(teams[3][2])
        att = t0["attachments"][0]
        card = att["content"]
        check(t0["type"] == "message"
              and att["contentType"] == "application/vnd.microsoft.card.adaptive"
              and card["type"] == "AdaptiveCard" and card["version"]
              and all(x["type"] == "TextBlock" for x in card["body"])
              and "RESOLVED" in card["body"][0]["text"], "teams body %r" % t0)
        by = {r["name"]: r for r in st["receivers"]}
        check(by["hook"]["delivered"] == 4 and by["agents"]["delivered"] == 0
              and by["agents"]["rules"] == ["agent_offline", "site_network"]
              and st["queued"] == 0 and st["dead"] == 0, "status %r" % st)
    finally:
        rcv.stop()
        case.close()


def test_receiver_down_then_up():
    port = free_port()
    rcv = Receiver(port)
    case = Case("receiver1 hook webhook http://127.0.0.1:%d/hook secret=%s\n"
                "notify_backoff 1s\nnotify_backoff_max 2s\nnotify_attempts 50\n"
                "notify_timeout 2s\n" % (port, SECRET))
    try:
        p = case.spawn("worker", "enqueue:5:backup_stale:firing", "sleep:1500",
                       "enqueue:2:site_network:firing", "wait-empty:40000", "status")
        time.sleep(4)  # several attempts fail meanwhile
        check(p.poll() is None, "driver ended while the receiver was down")
        rcv.start()
        out, err = p.communicate(timeout=60)
        check(p.returncode == 0, "driver: %d %s" % (p.returncode, err[-3000:]))
        got = ids(rcv.posts())
        check(got == ["a%d" % i for i in range(1, 8)], "delivered after the outage: %r" % got)
        st = status_of(out)
        r = st["receivers"][0]
        check(r["delivered"] == 7 and r["failures"] >= 2 and r["dead"] == 0
              and r["last_error"], "status after the outage %r" % r)
        for _, hdr, body, _ in rcv.posts():
            check(verify(hdr, body), "signature after retries")
    finally:
        rcv.stop()
        case.close()


def test_dead_letters():
    down = free_port()
    refuse = Receiver(status=400).start()
    case = Case("receiver1 gone webhook http://127.0.0.1:%d/x secret=%s\n"
                "receiver2 refuse slack %s\n"
                "notify_backoff 1s\nnotify_backoff_max 1s\nnotify_attempts 3\n"
                % (down, SECRET, refuse.url("/r")))
    try:
        t0 = time.monotonic()
        st = status_of(case.run("worker", "enqueue:2:agent_offline:firing", "wait-empty:30000",
                                "status").stdout)
        by = {r["name"]: r for r in st["receivers"]}
        check(by["gone"]["dead"] == 2 and by["refuse"]["dead"] == 2 and st["dead"] == 4
              and st["queued"] == 0 and st["delivered"] == 0, "dead letters %r" % st)
        # the head row holds its receiver back: 3 attempts for a1, then 3 for a2
        check(by["gone"]["failures"] == 6 and by["refuse"]["failures"] == 2,
              "attempts %r" % by)
        check(time.monotonic() - t0 >= 2, "retries came without backoff")
        dl = st["dead_letters"]
        check(len(dl) == 4 and {d["receiver"] for d in dl} == {"gone", "refuse"}
              and all(d["error"] and d["dead_at"] for d in dl), "dead letters %r" % dl)
        check({d["attempts"] for d in dl if d["receiver"] == "refuse"} == {1},
              "HTTP 400 was retried: %r" % dl)
        check({d["attempts"] for d in dl if d["receiver"] == "gone"} == {3},
              "attempts of the unreachable receiver: %r" % dl)
        check(len(refuse.posts()) == 2, "refusing receiver asked %d times" % len(refuse.posts()))
    finally:
        refuse.stop()
        case.close()


def test_queue_full():
    """A full queue drops the oldest undelivered rows, counted; the rest is delivered later."""
    rcv = Receiver()
    case = Case("receiver1 hook webhook %s secret=%s\nnotify_queue_max 5\n"
                % (rcv.url("/q"), SECRET))
    try:
        # queued while no worker runs (the receiver is down as far as anyone knows)
        st = status_of(case.run("enqueue:3:backup_stale:firing", "enqueue:4:agent_offline:firing",
                                "enqueue:1:backup_stale:resolved", "status").stdout)
        r = st["receivers"][0]
        check(st["queued"] == 5 and st["dropped"] == 3 and r["dropped"] == 3 and r["queued"] == 5,
              "full queue %r" % st)
        rcv.start()
        case.run("worker", "wait-empty:20000")
        check(ids(rcv.posts()) == ["a4", "a5", "a6", "a7", "a8"],
              "after the drop: %r" % ids(rcv.posts()))
    finally:
        rcv.stop()
        case.close()


def test_digest():
    rcv = Receiver().start()
    case = Case("receiver1 hook webhook %s secret=%s digest=5s\n" % (rcv.url("/d"), SECRET))
    try:
        case.run("worker", "enqueue:20:backup_stale:firing", "sleep:2000",
                 "enqueue:5:backup_stale:resolved", "enqueue:3:device_missing:firing",
                 "wait-empty:20000", "status")
        posts = rcv.posts()
        check(len(posts) == 2, "digest messages: %d (want 2)" % len(posts))
        b1, b2 = json.loads(posts[0][2]), json.loads(posts[1][2])
        check(b1["digest"] is True and b1["fired"] == 20 and b1["resolved"] == 0
              and len(b1["alerts"]) == 20, "first digest %r" % {k: b1[k] for k in b1
                                                                 if k != "alerts"})
        check(b2["fired"] == 3 and b2["resolved"] == 5 and len(b2["alerts"]) == 8,
              "second digest fired %d resolved %d" % (b2["fired"], b2["resolved"]))
        check(ids(posts) == ["a%d" % i for i in range(1, 29)], "digest order %r" % ids(posts))
        gap = posts[1][3] - posts[0][3]
        check(gap >= 4.8, "second digest %.1f s after the first (digest=5s)" % gap)
        for _, hdr, body, _ in posts:
            check(verify(hdr, body), "digest signature")
    finally:
        rcv.stop()
        case.close()


def make_cert(d):
    key, crt = os.path.join(d, "key.pem"), os.path.join(d, "cert.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", key, "-out", crt],
                   check=True, capture_output=True)
    return key, crt


def test_email_starttls():
    import logging
    from aiosmtpd.controller import Controller

    # the untrusted client's failed handshake is expected: no traceback in the log
    logging.getLogger("mail.log").setLevel(logging.CRITICAL)
    d = tempfile.mkdtemp(prefix="cradle-smtp-")
    key, crt = make_cert(d)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(crt, key)
    got = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            got.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content,
                        session.ssl is not None))
            return "250 OK"

    port = free_port()
    ctl = Controller(Handler(), hostname="127.0.0.1", port=port, tls_context=ctx,
                     require_starttls=True)
    ctl.start()
    case = Case("receiver1 mail email smtp://127.0.0.1:%d from=cradle@example.org"
                " to=ops@example.org,oncall@example.org cacert=%s rules=backup_stale\n"
                "receiver2 untrusted email smtp://127.0.0.1:%d from=cradle@example.org"
                " to=ops@example.org\nnotify_attempts 1\n" % (port, crt, port))
    try:
        st = status_of(case.run("worker", "enqueue:1:backup_stale:firing", "wait-empty:30000",
                                "status").stdout)
        check(len(got) == 1, "mails: %d" % len(got))
        frm, rcpt, content, tls = got[0]
        text = content.decode() if isinstance(content, bytes) else content
        check(frm == "cradle@example.org" and rcpt == ["ops@example.org", "oncall@example.org"],
              "envelope %r %r" % (frm, rcpt))
        check(tls, "mail sent before STARTTLS")
        check("Subject: [FIRING] backup_stale: phone 1" in text and "udid-1" in text
              and "Date: " in text and "Message-ID: <" in text, "mail text %r" % text[:800])
        by = {r["name"]: r for r in st["receivers"]}
        check(by["mail"]["delivered"] == 1 and by["untrusted"]["dead"] == 1
              and "certificate" in (by["untrusted"]["last_error"] or "").lower()
              + json.dumps(st["dead_letters"]).lower(), "status %r" % st)
    finally:
        ctl.stop()
        case.close()
        shutil.rmtree(d, ignore_errors=True)


def validate_status(st):
    """st against openapi.json's NotifyStatus."""
    import jsonschema
    with open(os.path.join(os.environ.get("CRADLE_SRC", ""), "dashboard", "openapi.json")) as f:
        doc = json.load(f)
    schema = {"$ref": "#/components/schemas/NotifyStatus", "components": doc["components"]}
    jsonschema.Draft202012Validator(schema).validate(st)


def test_config_errors():
    """Bad receiver lines are refused with the key and the reason; --dump-config masks secrets."""
    from dash import DASH
    d = tempfile.mkdtemp(prefix="cradle-notify-conf-")
    conf = os.path.join(d, "c.conf")

    def run(text, flag="--test-config"):
        with open(conf, "w") as f:
            f.write("db %s/c.db\ncommand_key %s/k\n%s" % (d, d, text))
        return subprocess.run([DASH, "-c", conf, flag], capture_output=True, text=True,
                              timeout=20)
    try:
        bad = [
            ("receiver1 x pager http://h/\n", "unknown receiver type"),
            ("receiver1 x webhook http://h/\n", "needs secret="),
            ("receiver1 x webhook http://h/ secret=short\n", "16 bytes"),
            ("receiver1 x slack smtp://h/\n", "http(s)://"),
            ("receiver1 x email http://h/ from=a@b to=c@d\n", "smtp(s)://"),
            ("receiver1 x email smtp://h:587 from=a@b\n", "to="),
            ("receiver1 x slack http://h/ rules=backup_stale,bogus\n", "unknown rule 'bogus'"),
            ("receiver1 x slack http://h/ digest=2d\n", "bad digest"),
            ("receiver1 x slack http://h/ password=p\n", "unknown option 'password'"),
            ("receiver1 x/y slack http://h/\n", "bad receiver name"),
            ("receiver1 x slack\n", "NAME TYPE URL"),
            ("receiver1 x slack http://h/\nreceiver3 x teams http://h/\n", "both named 'x'"),
        ]
        for text, want in bad:
            r = run(text)
            check(r.returncode != 0 and want in r.stderr and "receiver" in r.stderr,
                  "config %r: exit %d, %r (want %r)" % (text, r.returncode, r.stderr, want))
        r = run("receiver2 ops webhook https://h/x secret=%s rules=backup_stale digest=15m\n"
                "receiver5 m email smtp://h:587 from=a@b to=c@d,e@f user=u password=hunter2\n"
                % SECRET, "--dump-config")
        check(r.returncode == 0, "dump: %s" % r.stderr)
        lines = {ln.split(" ", 1)[0]: ln for ln in r.stdout.splitlines()}
        check(lines["receiver2"] == "receiver2 ops webhook https://h/x secret=******** "
              "rules=backup_stale digest=900s" and SECRET not in r.stdout
              and "hunter2" not in r.stdout and lines["receiver1"] == 'receiver1 ""',
              "dump %r" % [lines.get(k) for k in ("receiver1", "receiver2", "receiver5")])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_daemon_stop_and_restart():
    """cradle-dashboard's worker: SIGTERM during a hanging attempt, then delivery after restart."""
    from dash import DASH, Dashboard

    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    hport = hang.getsockname()[1]
    accepted = []

    def acceptor():
        while True:
            try:
                c, _ = hang.accept()
            except OSError:
                return
            accepted.append(c)  # read nothing, answer nothing

    threading.Thread(target=acceptor, daemon=True).start()
    rcv = Receiver().start()
    with Broker() as broker:
        dash = Dashboard(DASH, broker, "notify_timeout 60s\nreceiver1 hook webhook "
                         "http://127.0.0.1:%d/h secret=%s\n" % (hport, SECRET))
        try:
            dash.start()
            drv = Case("db %s\n" % dash.db)  # overridden below: same db as the dashboard
            with open(drv.conf, "w") as f:
                f.write("db %s\ncommand_key %s/command.key\nreceiver1 hook webhook "
                        "http://127.0.0.1:%d/h secret=%s\n" % (dash.db, drv.tmp, hport, SECRET))
            drv.run("enqueue:3:backup_stale:firing")  # queued by another process
            wait_for(lambda: accepted, 10, what="the dashboard's attempt")
            t0 = time.monotonic()
            rc = dash.stop()
            took = time.monotonic() - t0
            check(rc == 0 and took < 5, "SIGTERM took %.1f s (rc %r)" % (took, rc))
            rows = dash.q("SELECT alert_id, attempts, dead_ms FROM notify_queue ORDER BY id")
            check([(r["alert_id"], r["attempts"], r["dead_ms"]) for r in rows]
                  == [("a1", 0, None), ("a2", 0, None), ("a3", 0, None)],
                  "queue after SIGTERM %r" % rows)
            # the receiver is back at another address: the same name takes the queued rows
            with open(dash.conf) as f:
                conf = f.read().replace("http://127.0.0.1:%d/h" % hport, rcv.url("/h"))
            with open(dash.conf, "w") as f:
                f.write(conf)
            dash.start()
            wait_for(lambda: len(rcv.posts()) == 3, 20, what="delivery after the restart")
            check(ids(rcv.posts()) == ["a1", "a2", "a3"], "order %r" % ids(rcv.posts()))
            tok = dash.cli(["token", "add", "t", "--role", "viewer"]).stdout.split()[-1]
            req = urllib.request.Request(dash.url + "/api/v1/notify/status",
                                         headers={"Authorization": "Bearer " + tok})
            st = wait_for(lambda: (lambda s: s if s["queued"] == 0 else None)(
                json.loads(urllib.request.urlopen(req, timeout=5).read())), 10,
                what="status queued 0")
            validate_status(st)
            check(st["delivered"] == 3 and st["receivers"][0]["name"] == "hook"
                  and st["receivers"][0]["type"] == "webhook", "API status %r" % st)
            dash.stop()
            drv.close()
        finally:
            if dash.proc:
                sys.stderr.write(dash.proc.stderr_text()[-6000:])
                dash.stop(check_exit=False)
            shutil.rmtree(dash.tmp, ignore_errors=True)
            rcv.stop()
            hang.close()
            for c in accepted:
                c.close()


def test_alerts_engine_to_webhook():
    """The real chain: agent messages over a real broker, ingest, the alerts engine, the queue,
    the webhook. A stale phone fires exactly one backup_stale notification with a valid
    signature; a fresh backup resolves it with a second one."""
    import datetime
    from dash import DASH, Dashboard

    def ts(t):
        return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (int(t * 1000) % 1000)

    seq = [0]

    def pub(broker, topic, msg):
        seq[0] += 1
        msg.update({"agent": "st-notify", "session": 7, "seq": seq[0], "ts": ts(time.time())})
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
                        "-t", topic, "-m", json.dumps(msg)], check=True, timeout=10)

    def state(broker, u, last_icloud):
        pub(broker, "cradle/v1/agent/st-notify/device/%s/state" % u, {
            "schema": "cradle.device_state.v1", "udid": u, "attached": True,
            "probed_at": ts(time.time())[:19] + "Z",
            "device": {"product_type": "iPhone12,1", "ios_version": "16.7.2", "build": "20H115",
                       "serial": "NOTIFYSERIAL1"},
            "pairing": "paired",
            "backup": {"icloud_enabled": True, "last_icloud": ts(last_icloud)[:19] + "Z",
                       "last_local": None, "will_encrypt": False,
                       "requires_encryption": False, "age_s": int(time.time() - last_icloud)},
            "power": {"battery_pct": 50, "external_connected": True, "charging": True},
            "storage": {"total_bytes": 64000000000, "available_bytes": 1000000000},
            "diagnosis": {"status": "ok", "causes": []}, "probe": "ok", "error": None})

    rcv = Receiver().start()
    u = "00008030-000A1B2C3D4E5F01"
    with Broker() as broker:
        dash = Dashboard(DASH, broker, "alert_interval 1s\nalert_clear_for 0s\n"
                         "receiver1 hook webhook %s secret=%s\n" % (rcv.url("/a"), SECRET))
        try:
            dash.start()
            pub(broker, "cradle/v1/agent/st-notify/status", {"schema": "cradle.agent_status.v1",
                                                       "online": True})
            state(broker, u, time.time() - 4 * 86400)
            wait_for(lambda: rcv.posts(), 20, what="the backup_stale notification")
            time.sleep(3)  # several passes: still one notification
            posts = rcv.posts()
            check(len(posts) == 1, "notifications for one stale phone: %d" % len(posts))
            check(verify(posts[0][1], posts[0][2]), "signature of the alert's notification")
            a = json.loads(posts[0][2])["alerts"][0]
            check(a["rule"] == "backup_stale" and a["state"] == "firing" and a["udid"] == u
                  and a["fired_at"], "firing notification %r" % a)
            state(broker, u, time.time() - 60)  # backed up now
            wait_for(lambda: len(rcv.posts()) == 2, 20, what="the resolved notification")
            b = json.loads(rcv.posts()[1][2])["alerts"][0]
            check(b["state"] == "resolved" and b["id"] == a["id"] and b["resolved_at"]
                  and verify(rcv.posts()[1][1], rcv.posts()[1][2]), "resolved %r" % b)
            dash.stop()
        finally:
            if dash.proc:
                sys.stderr.write(dash.proc.stderr_text()[-6000:])
                dash.stop(check_exit=False)
            shutil.rmtree(dash.tmp, ignore_errors=True)
            rcv.stop()


def main():
    check(DRIVER, "NOTIFY_DRIVER not set")
    only = sys.argv[1:]
    for name, fn in list(globals().items()):
        if name.startswith("test_") and (not only or name in only):
            t0 = time.monotonic()
            fn()
            print("%s: ok (%.1f s)" % (name, time.monotonic() - t0), flush=True)
    print("ok")


if __name__ == "__main__":
    asyncio.set_event_loop(asyncio.new_event_loop())
    main()
