#!/usr/bin/python3
"""The dashboard's web server end to end (http_drive: the real http.c, auth.c and hub.c over a
real SQLite file): body cap (413, also for chunked uploads), bad JSON (400), unknown paths (404)
and methods (405) as JSON errors, the UI's files without login, the SSE stream delivering what is
published into the hub, HTTPS with a self-signed certificate, and SIGTERM with a stream open."""
import http.client
import os
import socket
import sqlite3
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dweb import WebServer, expect_error, login  # noqa: E402
from harness import check  # noqa: E402

DRIVE = os.environ["HTTP_DRIVE"]


class Stream:
    """A raw SSE client: reads events ({"id", "event", "data"}) and comments."""

    def __init__(self, web, token):
        self.conn = web.conn(timeout=20)
        self.conn.request("GET", "/api/v1/stream", headers={"Authorization": "Bearer " + token,
                                                            "Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()
        self.comments = []

    def next_event(self, timeout=10):
        deadline = time.monotonic() + timeout
        ev = {}
        while time.monotonic() < deadline:
            line = self.resp.readline().decode()
            if line == "":
                return None  # the stream ended
            line = line.rstrip("\n")
            if line == "":
                if "data" in ev:
                    return ev
                ev = {}  # e.g. the stream's "retry:" preamble
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            k, _, v = line.partition(": ")
            ev[k] = v
        raise TimeoutError("no event within %ds" % timeout)

    def close(self):
        self.conn.close()


def limits_and_errors(web, token):
    # oversized body: refused from Content-Length before it is read
    big = "{" + " " * 8000 + "}"
    expect_error(web.request("POST", "/api/v1/login", big), 413, "too_large", "8K body")
    expect_error(web.request("POST", "/api/v1/logout", big, token=token), 413, "too_large",
                 "8K body on an authenticated route")
    # chunked, no Content-Length: counted while it streams in, dropped beyond the cap
    c = web.conn()
    c.request("POST", "/api/v1/logout", body=(b"x" * 1024 for _ in range(16)),
              headers={"Authorization": "Bearer " + token, "Transfer-Encoding": "chunked"},
              encode_chunked=True)
    r = c.getresponse()
    body = r.read()
    c.close()
    check(r.status == 413 and b"too_large" in body, "chunked 16K body: %d %r" % (r.status, body))
    # a body under the cap goes through
    st, _, _ = web.request("POST", "/api/v1/logout", "{}", token=token)
    check(st == 204, "small body accepted: %d" % st)
    print("ok: bodies over http_max_body get 413 (declared or chunked)")

    expect_error(web.request("POST", "/api/v1/login", "{\"user\": "), 400, "bad_json",
                 "truncated JSON")
    expect_error(web.request("POST", "/api/v1/login", "[1, 2]"), 400, "bad_json",
                 "JSON that is not an object")
    expect_error(web.request("POST", "/api/v1/login", {"user": 1, "password": "x"}), 400,
                 "bad_request", "user not a string")
    expect_error(web.request("POST", "/api/v1/login", ""), 400, "bad_request", "no body")
    expect_error(web.request("POST", "/api/v1/login", '{"user": "a", "password": "b"} x'), 400,
                 "bad_json", "trailing garbage")
    expect_error(web.request("POST", "/api/v1/login", b'{"user": "a", "password": "b"}\0{}'),
                 400, "bad_json", "a NUL byte in the body")
    print("ok: malformed JSON gets 400 bad_json")

    expect_error(web.request("GET", "/api/v1/nope", token=token), 404, "not_found",
                 "unknown API path")
    expect_error(web.request("GET", "/api/v1/nope"), 404, "not_found",
                 "unknown API path, anonymous")
    expect_error(web.request("GET", "/no/such/page"), 404, "not_found", "unknown page")
    expect_error(web.request("DELETE", "/api/v1/me", token=token), 405, "method_not_allowed",
                 "DELETE on /me")
    expect_error(web.request("GET", "/api/v1/login"), 405, "method_not_allowed", "GET login")
    expect_error(web.request("GET", "/" + "a" * 2000), 414, "uri_too_long", "a 2000-byte path")
    st, hdrs, body = web.request("GET", "/")
    check(st == 200 and hdrs["content-type"].startswith("text/html") and body,
          "the UI's / without login: %d %r" % (st, hdrs))
    check(hdrs.get("x-frame-options") == "DENY" and hdrs.get("x-content-type-options") ==
          "nosniff", "security headers on pages: %r" % hdrs)
    st, hdrs, _ = web.request("GET", "/api/v1/me", token=token)
    check(hdrs.get("cache-control") == "no-store", "API answers are not cached: %r" % hdrs)
    print("ok: unknown paths 404, wrong methods 405, long paths 414, all as JSON errors")

    # a connection that sends half its headers is closed by the server, not kept forever
    s = socket.create_connection(("127.0.0.1", web.port))
    s.sendall(b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\n")
    s.close()


def add_rows(web):
    """Rows for the notices to name: the stream sends the row as the API shows it."""
    now = int(time.time())
    db = sqlite3.connect(os.path.join(web.dir, "cradle.db"), timeout=10)
    db.execute("INSERT INTO agents(agent, site, station, presence) VALUES('st-1', 'hq', 'cart-1', "
               "'online')")
    for udid in ("00008030-000A1B2C3D4E5F60", "missed-while-away"):
        db.execute("INSERT INTO devices(udid, serial, name, agent, site, station, attached, "
                   "last_seen) VALUES(?, 'SER', 'Phone', 'st-1', 'hq', 'cart-1', 1, ?)",
                   (udid, now))
    db.execute("INSERT INTO commands(cmd_id, udid, agent, name, sent_by, sent_at_ms, "
               "expires_at_ms, updated_ms) VALUES('0f8fad5b-d9cb-469f-a165-70867728950e', '00008030-000A1B2C3D4E5F60', 'st-1', "
               "'device.refresh', 'alice', ?, ?, ?)", (now * 1000, now * 1000 + 600000,
                                                       now * 1000))
    db.commit()
    db.close()


def stream(web, token):
    add_rows(web)
    s = Stream(web, token)
    check(s.resp.status == 200 and
          s.resp.getheader("Content-Type", "").startswith("text/event-stream"),
          "stream: %d %r" % (s.resp.status, s.resp.getheaders()))
    # the greeting comment says the stream is set up (its start seq is taken)
    line = s.resp.readline().decode()
    check(line.startswith("retry:"), "stream starts with retry: %r" % line)
    web.publish("device", "00008030-000A1B2C3D4E5F60")
    ev = s.next_event()
    check(ev and ev["event"] == "device" and "00008030-000A1B2C3D4E5F60" in ev["data"],
          "device event: %r" % ev)
    first_id = int(ev["id"])
    web.publish("agent", "st-1")
    web.publish("command", "0f8fad5b-d9cb-469f-a165-70867728950e")
    web.publish("summary")
    got = [s.next_event() for _ in range(3)]
    check([e["event"] for e in got] == ["agent", "command", "summary"],
          "events in order: %r" % got)
    check("st-1" in got[0]["data"] and "0f8fad5b-d9cb-469f-a165-70867728950e" in got[1]["data"] and got[2]["data"] == "{}",
          "event data: %r" % got)
    check([int(e["id"]) for e in got] == [first_id + 1, first_id + 2, first_id + 3],
          "ids are the hub's seq: %r" % got)
    # a reconnecting browser continues after Last-Event-ID
    s.close()
    web.publish("device", "missed-while-away")
    c = web.conn(timeout=20)
    c.request("GET", "/api/v1/stream", headers={"Authorization": "Bearer " + token,
                                                "Last-Event-ID": str(first_id + 3)})
    r = c.getresponse()
    s2 = Stream.__new__(Stream)
    s2.conn, s2.resp, s2.comments = c, r, []
    ev = s2.next_event()
    check(ev["event"] == "device" and "missed-while-away" in ev["data"],
          "Last-Event-ID resumes: %r" % ev)
    print("ok: the SSE stream delivers device, agent, command and summary notices in order, "
          "and resumes after Last-Event-ID")
    return s2


def main():
    with WebServer(DRIVE, http_max_body="4K") as web:
        r = web.cli("token", "add", "ci", "viewer")
        check(r.returncode == 0, "token add: %s" % r.stderr)
        token = r.stdout.strip()
        web.start()
        limits_and_errors(web, token)
        s = stream(web, token)
        # SIGTERM ends the open stream and the process exits 0, promptly
        t0 = time.monotonic()
        rc = web.stop(timeout=10)
        check(rc == 0, "SIGTERM with a stream open: exit %r" % rc)
        check(time.monotonic() - t0 < 5, "stopped within 5 s")
        s.close()
        print("ok: SIGTERM with a stream open exits 0 in %.1fs" % (time.monotonic() - t0))

    with WebServer(DRIVE, tls=True) as web:
        r = web.cli("user", "add", "alice", "viewer", stdin="pw\n")
        check(r.returncode == 0, "user add: %s" % r.stderr)
        web.start()
        st, hdrs, body = web.request("POST", "/api/v1/login", {"user": "alice", "password": "pw"})
        check(st == 200 and "; Secure" in hdrs.get("set-cookie", ""),
              "HTTPS login sets a Secure cookie: %r" % hdrs.get("set-cookie"))
        cookie = hdrs["set-cookie"].split(";", 1)[0].split("=", 1)[1]
        st, _, me = web.request("GET", "/api/v1/me", cookie=cookie)
        check(st == 200 and me["user"] == "alice", "me over HTTPS: %r" % me)
        # plain HTTP on the HTTPS port gets no answer
        c = http.client.HTTPConnection("127.0.0.1", web.port, timeout=5)
        try:
            c.request("GET", "/api/v1/me")
            plain = c.getresponse().status
        except (http.client.HTTPException, OSError):
            plain = None
        c.close()
        check(plain is None, "plain HTTP refused on the TLS port: %r" % plain)
        # a client that does not trust the certificate refuses it
        ctx = ssl.create_default_context()
        c = http.client.HTTPSConnection("127.0.0.1", web.port, context=ctx, timeout=5)
        try:
            c.request("GET", "/")
            c.getresponse()
            untrusted = "accepted"
        except ssl.SSLError:
            untrusted = "refused"
        c.close()
        check(untrusted == "refused", "the self-signed certificate is what is served")
        check(web.stop() == 0, "stop")
        print("ok: HTTPS serves with the configured self-signed certificate, Secure cookie")

    # http_max_connections: with 3 streams open a 4th connection gets no answer; one closed,
    # the next is served
    with WebServer(DRIVE, http_max_connections="3") as web:
        token = web.cli("token", "add", "ci", "viewer").stdout.strip()
        web.start()
        streams = [Stream(web, token) for _ in range(3)]
        check(all(s.resp.status == 200 for s in streams), "3 streams open")
        c = web.conn(timeout=3)
        try:
            c.request("GET", "/api/v1/me", headers={"Authorization": "Bearer " + token})
            over = c.getresponse().status
        except (http.client.HTTPException, OSError):
            over = None
        c.close()
        check(over is None, "a 4th connection is refused: %r" % over)
        streams.pop().close()

        def served():
            try:
                return web.request("GET", "/api/v1/me", token=token)[0] == 200
            except (http.client.HTTPException, OSError):
                return False
        deadline = time.monotonic() + 10
        while not served():
            check(time.monotonic() < deadline, "served again after a stream closed")
            time.sleep(0.1)
        check(web.stop() == 0, "stop")
        for s in streams:
            s.close()
        print("ok: http_max_connections caps connections (streams included)")

    # a bad certificate is a clear start-up error
    with WebServer(DRIVE, tls=True) as web:
        with open(web.cert, "w") as f:
            f.write("not a certificate\n")
        r = web.cli("serve")
        check(r.returncode != 0 and "cannot serve" in r.stderr,
              "a bad tls_cert fails the start: %r" % r.stderr[-300:])
        print("ok: a bad certificate fails the start with a message")


if __name__ == "__main__":
    main()
