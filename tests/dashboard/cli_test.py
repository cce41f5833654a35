#!/usr/bin/python3
"""cradle-dashboard's command line without a broker: --test-config and --dump-config (flags
override the file, secrets masked, the dump reads back), exit statuses (2 usage, 1 bad
configuration), the subcommands dispatched to auth (user add/list/role/delete, token add/list/revoke)."""
import os
import subprocess
import tempfile

from dash import DASH
from harness import fail


def run(args, stdin=None):
    return subprocess.run([DASH] + args, input=stdin, capture_output=True, text=True,
                          timeout=30)


def main():
    tmp = tempfile.mkdtemp(prefix="cradle-dash-cli-")
    conf = os.path.join(tmp, "d.conf")
    db = os.path.join(tmp, "sub", "cradle.db")
    with open(conf, "w") as f:
        f.write("db %s\ncommand_key %s/k\nmqtt_password hunter2\nstale_after_site north=2d\n"
                % (db, tmp))

    r = run(["-c", conf, "--test-config"])
    if r.returncode != 0 or "ok" not in r.stdout:
        fail("--test-config on a good file: %r" % (r,))
    r = run(["-c", conf, "--dump-config", "--broker", "tcp://10.1.2.3:1883",
             "--http", "0.0.0.0:9000", "--db", "/x/y.db"])
    dump = dict(l.split(" ", 1) for l in r.stdout.splitlines())
    if r.returncode != 0 or dump.get("broker_url") != "tcp://10.1.2.3:1883" or \
            dump.get("http_listen") != "0.0.0.0:9000" or dump.get("db") != "/x/y.db" or \
            dump.get("stale_after_site") != "north=2d":
        fail("--dump-config with flags: %r" % (r,))
    if "hunter2" in r.stdout:
        fail("--dump-config shows the MQTT password")
    # the dump of the defaults is itself a valid file
    r = run(["-c", conf, "--dump-config"])
    again = os.path.join(tmp, "again.conf")
    with open(again, "w") as f:
        f.write("\n".join(l for l in r.stdout.splitlines()
                          if not l.startswith("mqtt_password")) + "\n")
    r2 = run(["-c", again, "--test-config"])
    if r2.returncode != 0:
        fail("the dump does not read back: %r" % (r2,))

    # Without -c the dashboard reads the packaged default, /etc/cradle/cradle-dashboard.conf.
    # The packaging tests install it on this host (this test shares their dpkg lock), so it is
    # only checked when absent: a clear error naming the file, exit 1.
    default = "/etc/cradle/cradle-dashboard.conf"
    if not os.path.exists(default):
        r = run(["--test-config"])
        if r.returncode != 1 or default not in r.stderr:
            fail("no -c and no %s: want exit 1 naming it, got %r" % (default, r))

    for args, want, what in [
            (["-c", conf, "--bogus"], 2, "unknown flag"),
            (["-c", conf, "--broker"], 2, "flag without value"),
            (["-c", conf, "user", "add", "bob"], 2, "user add without --role"),
            (["-c", conf, "user", "role", "bob"], 2, "user role without --role"),
            (["-c", conf, "user", "delete", "bob", "--role", "admin"], 2,
             "user delete with --role"),
            (["-c", conf, "frobnicate"], 2, "unknown subcommand"),
            (["-c", conf, "--role", "admin"], 2, "--role without a subcommand"),
            (["-c", conf, "--http", "nonsense", "--test-config"], 1, "bad --http"),
            (["-c", os.path.join(tmp, "missing.conf"), "--test-config"], 1, "missing file")]:
        r = run(args)
        if r.returncode != want or not r.stderr:
            fail("%s: want exit %d with a message, got %r" % (what, want, r))
    bad = os.path.join(tmp, "bad.conf")
    with open(bad, "w") as f:
        f.write("history_days 0\n")
    r = run(["-c", bad, "--test-config"])
    if r.returncode != 1 or "bad.conf:1:" not in r.stderr:
        fail("a bad value is FILE:LINE and exit 1: %r" % (r,))

    # subcommands reach auth: a user, a token shown once, listed, revoked
    r = run(["-c", conf, "user", "add", "alice", "--role", "admin"], stdin="s3cret-pass\n")
    if r.returncode != 0:
        fail("user add: %r" % (r,))
    r = run(["-c", conf, "user", "list"])
    if r.returncode != 0 or "alice" not in r.stdout or "admin" not in r.stdout:
        fail("user list: %r" % (r,))
    r = run(["-c", conf, "user", "role", "alice", "--role", "viewer"])
    if r.returncode != 0:
        fail("user role: %r" % (r,))
    r = run(["-c", conf, "user", "list"])
    if r.returncode != 0 or "viewer" not in r.stdout or "admin" in r.stdout:
        fail("user list after user role: %r" % (r,))
    r = run(["-c", conf, "user", "role", "nobody", "--role", "viewer"])
    if r.returncode != 1 or "no user" not in r.stderr:
        fail("user role of an unknown user: %r" % (r,))
    r = run(["-c", conf, "user", "role", "alice", "--role", "root"])
    if r.returncode != 1 or "role" not in r.stderr:
        fail("user role with an unknown role: %r" % (r,))
    r = run(["-c", conf, "user", "delete", "alice"])
    if r.returncode != 0:
        fail("user delete: %r" % (r,))
    r = run(["-c", conf, "user", "list"])
    if r.returncode != 0 or "alice" in r.stdout:
        fail("the deleted user is still listed: %r" % (r,))
    r = run(["-c", conf, "user", "delete", "alice"])
    if r.returncode != 1 or "no user" not in r.stderr:
        fail("deleting twice: %r" % (r,))
    r = run(["-c", conf, "token", "add", "ci", "--role", "viewer"])
    if r.returncode != 0 or not r.stdout.strip():
        fail("token add: %r" % (r,))
    token = r.stdout.split()[-1]
    r = run(["-c", conf, "token", "list"])
    if r.returncode != 0 or "ci" not in r.stdout or token in r.stdout:
        fail("token list must name the token but never show it: %r" % (r,))
    r = run(["-c", conf, "token", "revoke", "ci"])
    if r.returncode != 0:
        fail("token revoke: %r" % (r,))
    r = run(["-c", conf, "token", "list"])
    if " ci " in " " + r.stdout.replace("\n", " ") + " ":
        fail("the revoked token is still listed: %r" % (r,))
    print("ok")


if __name__ == "__main__":
    main()
