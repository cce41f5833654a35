#!/usr/bin/python3
"""scripts/demo runs as the README says: started on an existing build (--build-dir, no apt, no
build), it prints the dashboard's URL and an admin login; with that login the API shows the 24
phones of the two simulated stations at their two sites; Ctrl-C (SIGINT) stops everything with
status 0, leaves no process behind and removes the temporary directory.

argv: SOURCE_DIR BUILD_DIR [--secure]. With --secure (test integration-pki-demo_secure) the
same holds for the secure recipe: a PKI made by cradle-pki, mosquitto with packaging/mosquitto/,
every program connected over ssl:// with its certificate, and the broker refusing a client
without one."""
import http.cookiejar
import json
import os
import re
import select
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import check, fail, wait_for  # noqa: E402

src, build = sys.argv[1], sys.argv[2]
extra = sys.argv[3:]
err = open(os.path.join(build, "demo_test.stderr"), "w+")
demo = subprocess.Popen([os.path.join(src, "scripts", "demo"), "--build-dir", build] + extra,
                        stdout=subprocess.PIPE, stderr=err, start_new_session=True)


def group_alive():
    try:
        os.killpg(demo.pid, 0)
        return True
    except ProcessLookupError:
        return False


def stderr_tail():
    err.flush()
    err.seek(0)
    return "".join(err.readlines()[-30:])


try:
    # the banner: URL, login, logs directory
    out = b""
    end = time.monotonic() + 60
    while b"\n  login " not in out or not out.endswith(b"\n\n"):
        if time.monotonic() > end or demo.poll() is not None:
            fail("no banner from scripts/demo (exit %r):\n%s\n%s"
                 % (demo.poll(), out.decode(errors="replace"), stderr_tail()))
        r, _, _ = select.select([demo.stdout], [], [], 1)
        if r:
            out += os.read(demo.stdout.fileno(), 65536)
    text = out.decode()
    url = re.search(r"^  dashboard +(http://\S+)$", text, re.M)
    login = re.search(r"^  login +(\S+) / (\S+)$", text, re.M)
    logs = re.search(r"logs in (/\S+?)\)", text)
    check(url and login and logs, "banner has the URL, the login and the logs:\n" + text)
    base, user, password, tmp = url.group(1), login.group(1), login.group(2), logs.group(1)
    check(user == "admin", "the login is the admin user")
    check(os.path.isdir(tmp), "the demo's directory exists while it runs")

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    req = urllib.request.Request(base + "api/v1/login",
                                 data=json.dumps({"user": user, "password": password}).encode(),
                                 headers={"Content-Type": "application/json"})
    with opener.open(req, timeout=10) as r:
        me = json.load(r)
    check(me.get("role") == "admin", "logged in as admin: %r" % me)

    summary = {}

    def all_phones():
        global summary
        with opener.open(base + "api/v1/summary", timeout=10) as r:
            summary = json.load(r)
        return summary.get("total") == 24

    try:
        wait_for(all_phones, 90, interval=0.5, what="24 phones in /api/v1/summary")
    except Exception:
        fail("summary never showed 24 phones: %s\n%s" % (json.dumps(summary), stderr_tail()))
    sites = sorted(s["site"] for s in summary.get("by_site", []))
    check(sites == ["north", "south"], "two sites in the summary: %r" % sites)
    with opener.open(base + "api/v1/agents", timeout=10) as r:
        agents = json.load(r)
    agents = agents.get("agents", agents) if isinstance(agents, dict) else agents
    names = sorted(a["agent"] for a in agents)
    check(names == ["demo-north-1", "demo-south-1"], "both agents known: %r" % names)
    print("ok demo: %d phones, sites %r, agents %r" % (summary["total"], sites, names))
    if "--secure" in extra:
        for name in ("agent-north-1", "agent-south-1", "dashboard"):
            with open(os.path.join(tmp, name + ".log"), errors="replace") as f:
                log = f.read()
            check("connected to 'ssl://" in log or "connected to ssl://" in log,
                  "%s connected over TLS:\n%s" % (name, log[-2000:]))
        port = re.search(r"^  broker +mosquitto on 127.0.0.1:(\d+), mutual TLS", text, re.M)
        check(port, "the banner names the secure broker:\n" + text)
        sub = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", port.group(1),
                              "--cafile", os.path.join(tmp, "pki", "ca.pem"), "-t", "#",
                              "-C", "1", "-W", "5"], capture_output=True, text=True, timeout=20)
        check(sub.returncode != 0, "a client without a certificate was let in: %s" % sub.stdout)
        print("ok demo --secure: agents and dashboard on ssl://, no certificate no entry")

    # Ctrl-C
    demo.send_signal(signal.SIGINT)
    try:
        status = demo.wait(timeout=30)
    except subprocess.TimeoutExpired:
        fail("scripts/demo did not stop within 30 s of SIGINT")
    check(status == 0, "scripts/demo exits 0 on SIGINT (got %d):\n%s" % (status, stderr_tail()))
    wait_for(lambda: not group_alive(), 10, what="every process of the demo gone")
    check(not os.path.exists(tmp), "the demo's directory %s is removed" % tmp)
    check("demo: stopped" in stderr_tail(), "the demo says it stopped")
    print("ok demo stops cleanly")
finally:
    if group_alive():
        os.killpg(demo.pid, signal.SIGKILL)
    demo.wait()
