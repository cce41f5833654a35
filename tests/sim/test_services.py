#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Services behind StartService against Debian's tools.

idevicesyslog streams the scenario's lines; idevicediagnostics answers ioreg and mobilegestalt
from the diagnostics.* domains; restart detaches the phone, which comes back under a new
DeviceID; shutdown detaches it for good; the journal records it all.
usage: test_services.py CRADLE_SIM SOURCE_DIR [--plaintext]
"""
import os
import plistlib
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, fail, holds, journal_has, wait_for  # noqa: E402

SIMBIN, SRC = sys.argv[1:3]
PLAIN = sys.argv[3:4] == ["--plaintext"]
SCN = os.path.join(SRC, "tests", "sim", "data", "device.json")
P = "00008030-001A2B3C4D5E6F70"
SYSLOG = ["backupd[123] <Notice>: Starting backup",
          "backupd[123] <Error>: Backup failed: not enough iCloud storage",
          "SpringBoard[45] <Notice>: third line"]

with Sim(SIMBIN, SCN, ["--plaintext"] if PLAIN else []) as sim:
    # syslog: idevicesyslog streams forever; stop it once the scenario's lines are there
    path = os.path.join(sim.tmp, "syslog")
    with open(path, "wb") as out:
        p = subprocess.Popen(["idevicesyslog", "-u", P], env=sim.env(), stdout=out,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            def text():
                with open(path, errors="replace") as f:
                    return f.read()
            try:
                wait_for(lambda: text().count("Nov 25 10:00:0") >= 3, 15,
                         what="3 syslog lines from idevicesyslog")
            except TimeoutError as e:
                fail("%s; got:\n%s" % (e, text()))
        finally:
            p.terminate()
            p.wait(10)
    got = text()
    for line in SYSLOG:
        check(line in got, "syslog lacks %r:\n%s" % (line, got))
    check(got.count("Nov 25 10:00:0") == 3, "not exactly 3 syslog lines:\n" + got)
    print("ok: syslog")

    def diag(*args):
        r = sim.run(["idevicediagnostics", "-u", P] + list(args))
        check(r.returncode == 0, "idevicediagnostics %s: exit %d: %s" %
              (" ".join(args), r.returncode, r.stdout + r.stderr))
        return r.stdout

    io = plistlib.loads(diag("ioreg", "IOPMPowerSource").encode()).get("IORegistry", {})
    check(io.get("CurrentCapacity") == 80 and io.get("IsCharging") is False, "ioreg %r" % io)
    print("ok: ioreg")
    mg = plistlib.loads(diag("mobilegestalt", "SerialNumber", "ProductType").encode())
    mg = mg.get("MobileGestalt", {})
    check(mg.get("SerialNumber") == "F4GZ1234ABCD" and mg.get("ProductType") == "iPhone12,8",
          "mobilegestalt %r" % mg)
    print("ok: mobilegestalt")

    # restart: detach, then back under a new DeviceID (restart_delay_ms 300 in the scenario)
    def dev():
        d = sim.devices()[P]
        return d["attached"], d["device_id"]
    before = dev()
    check(before[0], "not attached before restart: %r" % (before,))
    check("Restarting device." in diag("restart"), "restart output")
    now = wait_for(lambda: dev()[0] and dev() != before and dev(), 10,
                   what="%s back under a new DeviceID after restart" % P)
    print("ok: restart: %r -> %r" % (before, now))
    r = sim.run(["ideviceinfo", "-u", P, "-k", "ProductType"])
    check(r.stdout.strip() == "iPhone12,8", "after restart ProductType %r" % r.stdout)

    # shutdown: detached, and for good (longer than the restart delay)
    diag("shutdown")
    wait_for(lambda: not dev()[0], 10, what="%s detached after shutdown" % P)
    holds(lambda: not dev()[0], 1.0, what="%s stays detached after shutdown" % P)
    print("ok: shutdown")

    j = sim.journal(P)
    journal_has(j, "Restart", wait_for_disconnect=True)
    journal_has(j, "Shutdown")
    journal_has(j, "StartService", service="com.apple.syslog_relay", result="Success")
    journal_has(j, "StartService", service="com.apple.mobile.diagnostics_relay",
                result="Success")
print("PASS")
