"""The dashboard's web server for tests: http_drive (http_start + a hub fed from stdin, and the
auth command line) in a temporary directory, and small HTTP helpers.

    with WebServer(drive, login_rate="3/1m") as web:
        web.cli("user", "add", "alice", "admin", stdin="pw\\n")
        web.start()
        st, hdrs, body = web.request("GET", "/api/v1/me", token=tok)
"""
import http.client
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import free_port, fail, check  # noqa: E402


class WebServer:
    def __init__(self, drive, tls=False, **keys):
        self.drive = drive
        self.dir = tempfile.mkdtemp(prefix="dweb-")
        self.port = free_port()
        self.tls = tls
        self.conf = os.path.join(self.dir, "dashboard.conf")
        lines = {
            "http_listen": "127.0.0.1:%d" % self.port,
            "db": os.path.join(self.dir, "cradle.db"),
            "command_key": os.path.join(self.dir, "command.key"),
        }
        if tls:
            self.cert = os.path.join(self.dir, "cert.pem")
            key = os.path.join(self.dir, "key.pem")
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                            "-subj", "/CN=localhost", "-addext",
                            "subjectAltName=IP:127.0.0.1,DNS:localhost",
                            "-keyout", key, "-out", self.cert],
                           check=True, capture_output=True, timeout=30)
            lines["tls_cert"] = self.cert
            lines["tls_key"] = key
        lines.update(keys)
        with open(self.conf, "w") as f:
            for k, v in lines.items():
                f.write("%s %s\n" % (k, v))
        self.proc = None

    def cli(self, *args, stdin=""):
        return subprocess.run([self.drive, self.conf] + list(args), input=stdin,
                              capture_output=True, text=True, timeout=60)

    def start(self):
        self.proc = subprocess.Popen([self.drive, self.conf, "serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            fail("http_drive did not start (rc %s)" % self.proc.poll())
        return self

    def publish(self, kind, key=""):
        self.proc.stdin.write("%s %s\n" % (kind, key))
        self.proc.stdin.flush()

    def stop(self, timeout=10):
        """SIGTERM; returns the exit code (fails the test when it hangs)."""
        if not self.proc:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail("http_drive did not stop within %ds of SIGTERM" % timeout)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc = None
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def conn(self, source="127.0.0.1", timeout=30):
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.cert)
            return http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx,
                                               timeout=timeout, source_address=(source, 0))
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout,
                                          source_address=(source, 0))

    def request(self, method, path, body=None, token=None, cookie=None, csrf=None,
                headers=None, source="127.0.0.1"):
        """(status, headers (lower-case names), body decoded as JSON when it is JSON)."""
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        if cookie:
            h["Cookie"] = "cradle_session=" + cookie
        if csrf:
            h["X-CSRF-Token"] = csrf
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        c = self.conn(source)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            hdrs = {k.lower(): v for k, v in r.getheaders()}
        finally:
            c.close()
        if hdrs.get("content-type", "").startswith("application/json") and data:
            data = json.loads(data)
        return r.status, hdrs, data


def expect_error(got, status, code, what):
    st, hdrs, body = got
    check(st == status, "%s: status %d (want %d): %r" % (what, st, status, body))
    check(hdrs.get("content-type", "").startswith("application/json"),
          "%s: error is JSON (%r)" % (what, hdrs.get("content-type")))
    check(isinstance(body, dict) and body.get("error", {}).get("code") == code,
          "%s: error code %r: %r" % (what, code, body))
    check(isinstance(body["error"].get("message"), str) and body["error"]["message"],
          "%s: error has a message" % what)


def login(web, user, password, source="127.0.0.1"):
    """(cookie value, csrf) of a fresh session; fails the test when the login is refused."""
    st, hdrs, body = web.request("POST", "/api/v1/login", {"user": user, "password": password},
                                 source=source)
    check(st == 200, "login %s: %d %r" % (user, st, body))
    sc = hdrs.get("set-cookie", "")
    check(sc.startswith("cradle_session="), "login sets cradle_session: %r" % sc)
    return sc.split(";", 1)[0].split("=", 1)[1], body["csrf"]


def wait_until(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    fail("timed out waiting for " + what)
