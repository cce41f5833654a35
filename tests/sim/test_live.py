#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Issue 12's simulator side against real clients (tests/sim/data/live.json, time_scale 60).

- the compressed clock: the control `clock` runs 60 simulated s per real s, timeline events
  fire at at_ms / 60, formatted syslog lines and {"$now": s} carry the simulated time;
- syslog_relay as a live stream: idevicesyslog, already streaming, receives lines from the
  control `syslog` op and from timeline `syslog` events as they are emitted; an idle stream
  costs (next to) no CPU;
- notification_proxy: an observer (test-sim-np, libimobiledevice's np client) gets
  com.apple.mobile.backup.domain_changed after a control `set` and a timeline `set` in the
  backup domain and after EnableCloudBackup (idevicebackup2 cloud off), not for other domains;
  refuse_services makes StartService fail.
usage: test_live.py CRADLE_SIM TEST_NP SOURCE_DIR
"""
import calendar
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, fail, journal_has, wait_for  # noqa: E402

SIMBIN, NPBIN, SRC = sys.argv[1:4]
SCN = os.path.join(SRC, "tests", "sim", "data", "live.json")
P1 = "00008030-0000000000001201"
P2 = "00008030-0000000000001202"
NAME = "com.apple.mobile.backup.domain_changed"
SCALE = 60
MAC_EPOCH = 978307200  # 2001-01-01 UTC in Unix seconds


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stamp_mac(stamp, year):
    """'Nov 25 02:12:45' (UTC, as the simulator writes it) -> Apple seconds."""
    t = time.strptime("%d %s" % (year, " ".join(stamp.split())), "%Y %b %d %H:%M:%S")
    return calendar.timegm(t) - MAC_EPOCH


def reader(sim, argv, path):
    out = open(path, "wb")
    p = subprocess.Popen(argv, env=sim.env(), stdout=out, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    out.close()
    return p


def text(path):
    with open(path, errors="replace") as f:
        return f.read()


def wait_text(path, what, timeout=20):
    try:
        wait_for(lambda: what in text(path), timeout, what=repr(what))
    except TimeoutError as e:
        fail("%s; got:\n%s" % (e, text(path)))


with Sim(SIMBIN, SCN) as sim:
    t_ready = sim.t_ready
    c0 = sim.ctl_ok({"op": "clock"})
    check(c0["time_scale"] == SCALE, "clock %r" % c0)
    r0 = time.monotonic()
    time.sleep(1.0)
    c1 = sim.ctl_ok({"op": "clock"})
    r1 = time.monotonic()
    rate = (c1["now_mac"] - c0["now_mac"]) / (r1 - r0)
    check(SCALE * 0.7 < rate < SCALE * 1.3, "simulated s per real s %.1f, want ~%d" %
          (rate, SCALE))
    # the simulated clock started at wall time when the simulator got ready
    start_mac = c0["now_mac"] - (r0 - t_ready) * SCALE
    check(abs(start_mac - (time.time() - (time.monotonic() - t_ready) - MAC_EPOCH)) < 10,
          "the simulated clock starts at the wall clock: %r" % c0)
    print("ok: clock: %.1f simulated s per real s" % rate)

    slog = os.path.join(sim.tmp, "syslog")
    nplog = os.path.join(sim.tmp, "np")
    ps = reader(sim, ["idevicesyslog", "-u", P1], slog)
    pn = reader(sim, [NPBIN, P1, NAME, "60"], nplog)
    try:
        wait_text(slog, "history line")
        wait_text(nplog, "observing")
        check(time.monotonic() - t_ready < 13, "clients took too long to be ready before the "
              "timeline's first event (the machine is too loaded for this test)")
        sim.journal(P1)

        # idle streams cost nothing: no timer, no polling
        pid = sim.proc.p.pid
        if pid:
            cpu0 = cpu_seconds(pid)
            time.sleep(1.5)
            cpu = cpu_seconds(pid) - cpu0
            check(cpu < 0.3, "idle simulator with open streams used %.2f s CPU in 1.5 s" % cpu)
            print("ok: idle: %.2f s CPU in 1.5 s" % cpu)

        # live line from the control socket, verbatim and formatted
        # (>= 1: idevicesyslog 1.3.0 may open a second stream when its device event races
        # its own start)
        r = sim.ctl_ok({"op": "syslog", "udid": P1,
                        "line": "Nov 25 03:00:00 Live-01 backupd[77] <Error>: control verbatim"})
        check(r["delivered"] >= 1, "syslog delivered %r" % r)
        r = sim.ctl_ok({"op": "syslog", "udid": P1, "process": "backupd", "level": "Error",
                        "message": "Backup failed: The network connection was lost"})
        check(r["delivered"] >= 1, "syslog delivered %r" % r)
        m = re.match(r"(\w{3} [ \d]\d \d\d:\d\d:\d\d) Live-01 backupd\[\d+\] <Error>: "
                     r"Backup failed: The network connection was lost$", r["line"])
        check(m, "formatted line %r" % r["line"])
        now = sim.ctl_ok({"op": "clock"})["now_mac"]
        year = time.gmtime(now + MAC_EPOCH).tm_year
        check(abs(stamp_mac(m.group(1), year) - now) < 120,
              "formatted line's time %s is not the simulated time (%d)" % (m.group(1), now))
        wait_text(slog, "control verbatim")
        wait_text(slog, "The network connection was lost")
        # idevicesyslog cut the host name off: the line is a phone's, word for word
        check(re.search(r"^\w{3} [ \d]\d \d\d:\d\d:\d\d backupd\[\d+\] <Error>: Backup failed: "
                        r"The network connection was lost$", text(slog), re.M),
              "idevicesyslog's rendering of the formatted line:\n" + text(slog))
        print("ok: control syslog reaches the open stream")

        # domain_changed after a control set in the backup domain, not after other domains
        r = sim.ctl_ok({"op": "set", "udid": P1, "domain": "com.apple.mobile.battery",
                        "key": "BatteryCurrentCapacity", "value": 91})
        check(r["notified"] == 0, "battery set notified %r" % r)
        r = sim.ctl_ok({"op": "set", "udid": P1, "domain": "com.apple.mobile.backup",
                        "key": "LastCloudBackupDate", "value": {"$now": -60}})
        check(r["notified"] == 1, "backup set notified %r" % r)
        now = sim.ctl_ok({"op": "clock"})["now_mac"]
        wait_text(nplog, "notified " + NAME)
        check(text(nplog).count("notified ") == 1, "one notification:\n" + text(nplog))
        got = sim.run(["ideviceinfo", "-u", P1, "-q", "com.apple.mobile.backup", "-k",
                       "LastCloudBackupDate"]).stdout.strip()
        check(got.isdigit() and abs(int(got) - (now - 60)) < 120,
              "LastCloudBackupDate %r, want the simulated time %d - 60" % (got, now))
        check(journal_has(sim.journal(P1), "RelayNotification", name=NAME), "journal")
        print("ok: control set -> domain_changed, LastCloudBackupDate = simulated now - 60")

        # the timeline: syslog at 15 real s, set at 20 s, a verbatim line at 21 s
        wait_text(slog, "not enough iCloud storage (timeline)", 30)
        fired = time.monotonic() - t_ready
        check(fired > 900 / SCALE - 1, "timeline syslog fired early, at %.1f s" % fired)
        m = re.search(r"(\w{3} [ \d]\d \d\d:\d\d:\d\d) .*not enough iCloud storage "
                      r"\(timeline\)", text(slog))
        check(m, "timestamp of the timeline line:\n" + text(slog))
        check(abs(stamp_mac(m.group(1), year) - (start_mac + 900)) < 120,
              "the timeline line is stamped %s, want start + 900 simulated s" % m.group(1))
        wait_for(lambda: text(nplog).count("notified " + NAME) == 2, 20,
                 what="domain_changed after the timeline set")
        got = sim.run(["ideviceinfo", "-u", P1, "-q", "com.apple.mobile.backup", "-k",
                       "LastCloudBackupDate"]).stdout.strip()
        check(got.isdigit() and abs(int(got) - (start_mac + 1200)) < 120,
              "LastCloudBackupDate %r, want start + 1200 simulated s (%d)" %
              (got, start_mac + 1200))
        wait_text(slog, "verbatim timeline line")
        print("ok: timeline syslog and set at simulated times, domain_changed posted")

        # a change made through mobilebackup2 (idevicebackup2 cloud off) is a backup-domain
        # change too
        r = sim.run(["idevicebackup2", "-u", P1, "cloud", "off"], timeout=30)
        check(r.returncode == 0, "idevicebackup2 cloud off: %d %s" % (r.returncode, r.stdout))
        wait_for(lambda: text(nplog).count("notified " + NAME) == 3, 20,
                 what="domain_changed after EnableCloudBackup")
        print("ok: EnableCloudBackup -> domain_changed")
    finally:
        for p in (ps, pn):
            p.terminate()
            p.wait(10)

    # refused notification_proxy
    r = sim.run([NPBIN, P2, NAME, "1"])
    check(r.returncode == 3 and "refused" in r.stdout, "np on P2: %d %r %r" %
          (r.returncode, r.stdout, r.stderr))
    check(journal_has(sim.journal(P2), "StartService",
                      service="com.apple.mobile.notification_proxy",
                      result="ServiceProhibited"), "journal of P2")
    print("ok: refuse_services")

    # a detached phone emits to nobody
    sim.ctl_ok({"op": "detach", "udid": P1})
    r = sim.ctl_ok({"op": "syslog", "udid": P1, "line": "nobody hears this"})
    check(r["delivered"] == 0, "detached syslog %r" % r)
    r = sim.ctl({"op": "syslog", "udid": P1, "line": "x", "message": "y"})
    check(r["ok"] is False, "line and message together: %r" % r)
print("PASS")
