"""cradle-dashboard for tests: a generated config on a private database, started against a
harness Broker, stopped with SIGTERM (its exit status checked). Other slices may add helpers at
the end of this file.

    from dash import Dashboard, DASH
    with Broker() as broker, Dashboard(DASH, broker) as dash:
        wait_for(lambda: dash.q1("SELECT count(*) FROM devices") == 3, 10)

The database is read with Python's sqlite3 in read-only mode (WAL lets it read while the
service writes). CRADLE_DASHBOARD (the binary) and CRADLE_SRC come from CMake; the agent's and
the simulator's binaries too, for the end-to-end tests.
"""
import http.client
import json
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import harness  # noqa: E402
from harness import Proc, check, fail, free_port, wait_for  # noqa: E402

DASH = os.environ.get("CRADLE_DASHBOARD", "")
AGENT = os.environ.get("CRADLE_AGENT", "")
SIM = os.environ.get("CRADLE_SIM", "")
SRC = os.environ.get("CRADLE_SRC", "")


class Dashboard:
    """cradle-dashboard with its own config, database and HTTP port; the database and the
    command key persist across restart()."""

    def __init__(self, dash_bin, broker, extra_conf="", http_port=None):
        self.bin = dash_bin
        self.broker = broker
        self.tmp = tempfile.mkdtemp(prefix="cradle-dash-")
        self.db = os.path.join(self.tmp, "cradle.db")
        self.http_port = http_port or free_port()
        self.conf = os.path.join(self.tmp, "dashboard.conf")
        with open(self.conf, "w") as f:
            f.write("broker_url %s\nmqtt_client_id dash-test-%d\ndb %s\n"
                    "command_key %s/command.key\nhttp_listen 127.0.0.1:%d\nlog_level debug\n%s"
                    % (broker.url(), os.getpid(), self.db, self.tmp, self.http_port,
                       extra_conf))
        self.proc = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.http_port

    def cli(self, args, stdin=None, timeout=20):
        """Runs a subcommand (`user add ...`) on this dashboard's config."""
        import subprocess
        return subprocess.run([self.bin, "-c", self.conf] + list(args), input=stdin,
                              capture_output=True, text=True, timeout=timeout)

    def start(self):
        self.proc = Proc("dashboard", self.tmp)
        # the output file is appended to across restarts: only this run's lines count
        try:
            self._err_skip = os.path.getsize(self.proc.err_path)
        except OSError:
            self._err_skip = 0
        self.proc.spawn([self.bin, "-c", self.conf])
        wait_for(lambda: "ingest: subscribed" in self.stderr() or not self.proc.alive(),
                 30, what="cradle-dashboard subscribed")
        if not self.proc.alive():
            fail("cradle-dashboard exited at start (%s): %s"
                 % (self.proc.p.returncode, self.proc.stderr_text()[-4000:]))
        return self

    def stop(self, check_exit=True):
        """SIGTERM; returns the exit status (not 0 fails the test, unless told otherwise)."""
        rc = None
        if self.proc:
            rc = self.proc.stop(timeout=20)
            if check_exit and rc != 0:
                fail("cradle-dashboard exited %s: %s" % (rc, self.proc.stderr_text()[-4000:]))
            self.proc = None
        return rc

    def restart(self):
        self.stop()
        return self.start()

    def stderr(self):
        """What this run wrote (stderr_text() of the Proc has every run's)."""
        return self.proc.stderr_text()[self._err_skip:] if self.proc else ""

    # ---- the database, read-only ----

    def _conn(self):
        c = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True, timeout=10)
        c.row_factory = sqlite3.Row
        return c

    def q(self, sql, args=()):
        c = self._conn()
        try:
            return [dict(r) for r in c.execute(sql, args).fetchall()]
        finally:
            c.close()

    def q1(self, sql, args=()):
        rows = self.q(sql, args)
        return list(rows[0].values())[0] if rows else None

    def counter(self, name):
        return self.q1("SELECT value FROM counters WHERE name = ?", (name,)) or 0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc and exc[0] is not None:
            sys.stderr.write("--- dashboard stderr ---\n" + self.proc.stderr_text()[-8000:])
        self.stop(check_exit=exc[0] is None)
        shutil.rmtree(self.tmp, ignore_errors=True)


# ---- dui: users, the command key and the HTTP listener, for tests that log in ----

def user_add(d, name, role, password):
    """`user add NAME --role ROLE` with the password on stdin; fails the test on an error."""
    r = d.cli(["user", "add", name, "--role", role], stdin=password + "\n")
    if r.returncode != 0:
        fail("cradle-dashboard user add %s: exit %s: %s" % (name, r.returncode, r.stderr))


def key_public(d):
    """The dashboard's command key in the form an agent's command_keys takes."""
    r = d.cli(["key", "public"])
    if r.returncode != 0 or not r.stdout.split():
        fail("cradle-dashboard key public: exit %s: %s" % (r.returncode, r.stderr))
    return r.stdout.split()[-1]


def wait_http(d, timeout=20):
    """Waits until the dashboard answers HTTP (GET /login, a page that needs no login)."""
    import urllib.error
    import urllib.request

    def up():
        try:
            with urllib.request.urlopen(d.url + "/login", timeout=2) as r:
                return r.status == 200
        except (OSError, urllib.error.URLError):
            return False
    wait_for(up, timeout, what="the dashboard's HTTP listener at " + d.url)


class Stream:
    """GET /api/v1/stream read on a thread: every (event, data) as it arrives."""

    def __init__(self, port, token, timeout=120):
        self.events = []
        self.lock = threading.Lock()
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", "/api/v1/stream", headers={"Authorization": "Bearer " + token,
                                                            "Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()
        check(self.resp.status == 200, "stream: %d" % self.resp.status)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        event, data = None, []
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif line == "":
                    if event and data:
                        with self.lock:
                            self.events.append((event, json.loads("\n".join(data))))
                    event, data = None, []
        except Exception:
            pass

    def find(self, event, pred):
        with self.lock:
            return [d for e, d in self.events if e == event and pred(d)]

    def close(self):
        try:
            self.conn.sock.shutdown(2)
        except Exception:
            pass
        self.conn.close()
