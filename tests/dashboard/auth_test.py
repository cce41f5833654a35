#!/usr/bin/python3
"""Users, roles, tokens, sessions, CSRF and the login rate limit, end to end through the
dashboard's web server (http_drive: the real http.c/auth.c over a real SQLite file) and the
auth command line (the auth_cli_* functions cradle-dashboard calls)."""
import hashlib
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dweb import WebServer, expect_error, login  # noqa: E402
from harness import check  # noqa: E402

DRIVE = os.environ["HTTP_DRIVE"]


def cli_setup(web):
    r = web.cli("user", "add", "alice", "admin", stdin="alice-pw\n")
    check(r.returncode == 0, "user add alice: %s" % r.stderr)
    r = web.cli("user", "add", "victor", "viewer", stdin="victor-pw\n")
    check(r.returncode == 0, "user add victor: %s" % r.stderr)
    r = web.cli("user", "add", "alice", "viewer", stdin="x\n")
    check(r.returncode != 0 and "exists" in r.stderr, "a second alice refused: %r" % r.stderr)
    r = web.cli("user", "add", "eve", "admin", stdin="\n")
    check(r.returncode != 0 and "password" in r.stderr, "empty password refused: %r" % r.stderr)
    r = web.cli("user", "add", "eve", "root", stdin="pw\n")
    check(r.returncode != 0 and "role" in r.stderr, "unknown role refused: %r" % r.stderr)
    r = web.cli("user", "add", "e v/e", "admin", stdin="pw\n")
    check(r.returncode != 0 and "name" in r.stderr, "bad user name refused: %r" % r.stderr)
    r = web.cli("user", "list")
    check(r.returncode == 0 and "alice" in r.stdout and "victor" in r.stdout
          and "eve" not in r.stdout, "user list: %r" % r.stdout)

    tokens = {}
    for name, role in (("ci", "viewer"), ("ops", "operator"), ("root", "admin")):
        r = web.cli("token", "add", name, role)
        tok = r.stdout.strip()
        check(r.returncode == 0 and tok.startswith("cradle_") and len(tok) == 50,
              "token add %s printed a token: %r %r" % (name, tok, r.stderr))
        tokens[name] = tok
    r = web.cli("token", "add", "ci", "viewer")
    check(r.returncode != 0 and "exists" in r.stderr, "a second token ci refused")
    r = web.cli("token", "list")
    check(r.returncode == 0 and all(n in r.stdout for n in tokens)
          and not any(t in r.stdout for t in tokens.values()),
          "token list names the tokens, never shows them: %r" % r.stdout)

    # the database holds hashes only: SHA-256 of tokens, crypt(3) of passwords
    db = sqlite3.connect(os.path.join(web.dir, "cradle.db"))
    hashes = dict(db.execute("SELECT name, hash FROM tokens"))
    for name, tok in tokens.items():
        check(hashes[name] == hashlib.sha256(tok.encode()).hexdigest(),
              "token %s stored as its SHA-256" % name)
    for name, h in db.execute("SELECT name, hash FROM users"):
        check(h.startswith("$y$") or h.startswith("$6$"), "user %s: crypt hash %r" % (name, h))
        # the password itself (a hash may contain "pw" by chance: ~1 % of yescrypt hashes do)
        check(name + "-pw" not in h, "no password in the hash")
    db.close()
    print("ok: command line adds and lists users and tokens, stores only hashes")
    return tokens


def main():
    with WebServer(DRIVE, login_rate="3/1m") as web:
        tokens = cli_setup(web)
        web.start()
        # the command line also works while the service runs (a second process on the file)
        r = web.cli("token", "add", "late", "viewer")
        check(r.returncode == 0, "token add while serving: %s" % r.stderr)

        # nothing anonymous
        for path in ("/api/v1/me", "/api/v1/stream", "/api/v1/users"):
            expect_error(web.request("GET", path), 401, "unauthorized", "anonymous " + path)
        st, hdrs, _ = web.request("GET", "/api/v1/me")
        check(hdrs.get("www-authenticate", "").startswith("Bearer"), "401 names Bearer")
        expect_error(web.request("GET", "/api/v1/me", token="cradle_" + "A" * 43), 401,
                     "unauthorized", "an unknown token")
        expect_error(web.request("GET", "/api/v1/me", headers={"Authorization": "Basic eDp5"}),
                     401, "unauthorized", "a non-Bearer Authorization header")
        print("ok: no credentials, a wrong token or another scheme get 401")

        # Bearer tokens, and roles
        st, _, me = web.request("GET", "/api/v1/me", token=tokens["ci"])
        check(st == 200 and me == {"user": "token:ci", "role": "viewer", "csrf": None,
                                   "expires_at": None}, "me by token: %r" % me)
        expect_error(web.request("GET", "/api/v1/users", token=tokens["ci"]), 403, "forbidden",
                     "viewer token on an admin route")
        expect_error(web.request("GET", "/api/v1/tokens", token=tokens["ops"]), 403,
                     "forbidden", "operator token on an admin route")
        st, _, body = web.request("GET", "/api/v1/tokens", token=tokens["root"])
        check(st == 200 and sorted(t["name"] for t in body["tokens"]) == ["ci", "late", "ops", "root"],
              "admin token lists tokens: %r" % body)
        check(all(t["last_used_at"] for t in body["tokens"] if t["name"] in ("ci", "root")),
              "used tokens have last_used_at: %r" % body)
        # a Bearer request needs no CSRF token, even when state-changing
        st, _, _ = web.request("POST", "/api/v1/logout", token=tokens["ci"])
        check(st == 204, "POST by token without CSRF header: %d" % st)
        print("ok: Bearer tokens authenticate; role too low gets 403")

        # token revoke
        r = web.cli("token", "revoke", "ci")
        check(r.returncode == 0, "token revoke ci: %s" % r.stderr)
        expect_error(web.request("GET", "/api/v1/me", token=tokens["ci"]), 401, "unauthorized",
                     "a revoked token")
        r = web.cli("token", "revoke", "ci")
        check(r.returncode != 0 and "no token" in r.stderr, "revoking twice: %r" % r.stderr)
        st, _, _ = web.request("GET", "/api/v1/me", token=tokens["ops"])
        check(st == 200, "the other tokens still work")
        print("ok: a revoked token is refused at once")

        # login: cookie flags, CSRF, logout
        expect_error(web.request("POST", "/api/v1/login", {"user": "alice", "password": "no"}),
                     401, "unauthorized", "wrong password")
        expect_error(web.request("POST", "/api/v1/login", {"user": "nobody", "password": "x"}),
                     401, "unauthorized", "unknown user")
        st, hdrs, body = web.request("POST", "/api/v1/login",
                                     {"user": "alice", "password": "alice-pw"})
        check(st == 200 and body["user"] == "alice" and body["role"] == "admin"
              and len(body["csrf"]) >= 32 and body["expires_at"].endswith("Z"),
              "login: %r" % body)
        sc = [p.strip() for p in hdrs["set-cookie"].split(";")]
        check("HttpOnly" in sc and "SameSite=Strict" in sc and "Path=/" in sc,
              "cookie is HttpOnly, SameSite=Strict, Path=/: %r" % sc)
        check("Secure" not in sc, "no Secure flag over plain HTTP")
        cookie, csrf = sc[0].split("=", 1)[1], body["csrf"]
        st, _, me = web.request("GET", "/api/v1/me", cookie=cookie)
        check(st == 200 and me["user"] == "alice" and me["csrf"] == csrf,
              "me by cookie: %r" % me)
        st, _, _ = web.request("GET", "/api/v1/users", cookie=cookie)
        check(st == 200, "admin session reads an admin route without CSRF (GET)")
        db = sqlite3.connect(os.path.join(web.dir, "cradle.db"))
        ids = [r[0] for r in db.execute("SELECT id_hash FROM sessions")]
        db.close()
        check(hashlib.sha256(cookie.encode()).hexdigest() in ids and cookie not in ids,
              "the session is stored as the cookie's hash: %r %r" % (cookie, ids))

        expect_error(web.request("POST", "/api/v1/logout", cookie=cookie), 403, "csrf",
                     "cookie POST without X-CSRF-Token")
        expect_error(web.request("POST", "/api/v1/logout", cookie=cookie, csrf=("A" if csrf[0] != "A" else "B") + csrf[1:]),
                     403, "csrf", "cookie POST with a wrong X-CSRF-Token")
        v_cookie, v_csrf = login(web, "victor", "victor-pw")
        expect_error(web.request("POST", "/api/v1/logout", cookie=cookie, csrf=v_csrf), 403,
                     "csrf", "another session's CSRF token")
        expect_error(web.request("GET", "/api/v1/users", cookie=v_cookie), 403, "forbidden",
                     "viewer session on an admin route")
        st, hdrs, _ = web.request("POST", "/api/v1/logout", cookie=cookie, csrf=csrf)
        check(st == 204, "logout: %d" % st)
        check("Max-Age=0" in hdrs.get("set-cookie", ""), "logout clears the cookie: %r" % hdrs)
        expect_error(web.request("GET", "/api/v1/me", cookie=cookie), 401, "unauthorized",
                     "the session after logout")
        st, _, _ = web.request("GET", "/api/v1/me", cookie=v_cookie)
        check(st == 200, "other sessions survive a logout")
        print("ok: login cookie flags, CSRF refused without/with a wrong header, logout")

        # rate limit: 3 failures per minute per client address (from 127.0.0.2)
        src = "127.0.0.2"
        for i in range(3):
            got = web.request("POST", "/api/v1/login", {"user": "alice", "password": "bad%d" % i},
                              source=src)
            expect_error(got, 401, "unauthorized", "failure %d" % (i + 1))
        got = web.request("POST", "/api/v1/login", {"user": "alice", "password": "alice-pw"},
                          source=src)
        expect_error(got, 429, "rate_limited", "the 4th attempt, even with the right password")
        retry = int(got[1].get("retry-after", "0"))
        check(1 <= retry <= 60, "Retry-After in seconds: %r" % got[1].get("retry-after"))
        # another address is not affected; successes do not count
        for _ in range(4):
            login(web, "alice", "alice-pw", source="127.0.0.3")
        print("ok: the 4th login from one address within a minute gets 429 + Retry-After %d"
              % retry)

        rc = web.stop()
        check(rc == 0, "SIGTERM: exit code %r" % rc)

    # sessions expire: session_ttl is the floor of the key (60 s) — too long to wait; the
    # expiry itself is checked by reading expires_at against the configured ttl
    with WebServer(DRIVE, session_ttl="1m") as web:
        r = web.cli("user", "add", "alice", "operator", stdin="pw\n")
        check(r.returncode == 0, "user add")
        web.start()
        cookie, _ = login(web, "alice", "pw")
        st, _, me = web.request("GET", "/api/v1/me", cookie=cookie)
        db = sqlite3.connect(os.path.join(web.dir, "cradle.db"))
        created, expires = db.execute("SELECT created_ms, expires_ms FROM sessions").fetchone()
        check(expires - created == 60000, "session_ttl 1m: %d ms" % (expires - created))
        # an expired session is refused (its expiry moved into the past)
        db.execute("UPDATE sessions SET expires_ms = ?", (created - 1,))
        db.commit()
        db.close()
        expect_error(web.request("GET", "/api/v1/me", cookie=cookie), 401, "unauthorized",
                     "an expired session")
        check(web.stop() == 0, "stop")
        print("ok: sessions end at session_ttl")


if __name__ == "__main__":
    main()
