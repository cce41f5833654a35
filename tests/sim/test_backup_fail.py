#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Failing local backups against cradle-sim's mobilebackup2 with Debian's idevicebackup2 1.3.0.

 - MBErrorDomain 208 "Device locked" (iOS 16.1+ waits for the passcode) after delay_ms:
   "ErrorCode 208: Device locked", "Backup Failed (Error Code 208).", exit status 48
   (-208 & 0xff), LastiTunesBackupDate untouched, journal backup_finished ok=false 208;
 - purge_disk_space: the phone sends DLMessagePurgeDiskSpace first and waits for an answer that
   1.3.0 never gives (it ignores unknown DL messages), so the backup hangs: the tool is still
   running after 5 s (killed here), nothing was uploaded, and once the host is gone the journal
   says backup_finished ok=false error_code=-1. The simulator keeps serving.
usage: test_backup_fail.py CRADLE_SIM SOURCE_DIR
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, journal_has, wait_for  # noqa: E402

SIMBIN, SRC = sys.argv[1:3]
SCN = os.path.join(SRC, "tests", "sim", "data", "backup.json")
L = "00008030-001A2B3C4D5E0B02"  # backup error_code 208, delay_ms 300
P = "00008030-001A2B3C4D5E0B03"  # purge_disk_space

with Sim(SIMBIN, SCN) as sim:
    bk = os.path.join(sim.tmp, "bk")
    os.mkdir(bk)

    r = sim.run(["idevicebackup2", "-u", L, "backup", bk], timeout=30)
    out = (r.stdout + r.stderr).splitlines()
    check(r.returncode == 48, "208: exit %d, want 48:\n%s" % (r.returncode, "\n".join(out)))
    for line in ("ErrorCode 208: Device locked", "Backup Failed (Error Code 208)."):
        check(line in out, "208: no line %r:\n%s" % (line, "\n".join(out)))
    v = sim.run(["ideviceinfo", "-u", L, "-q", "com.apple.mobile.backup", "-k",
                 "LastiTunesBackupDate"]).stdout.strip()
    check(v == "", "LastiTunesBackupDate set after a failure: %r" % v)
    check(not os.path.exists(os.path.join(bk, L, "Status.plist")), "Status.plist after a failure")
    j = sim.journal(L)
    journal_has(j, "backup_started", full=True)
    journal_has(j, "backup_finished", ok=False, error_code=208, files=0)
    print("ok: 208 -> exit 48")

    # purge: the tool hangs; it must still be running after 5 s (then SIGKILL: it catches
    # SIGTERM and would wait another 30 s)
    p = subprocess.Popen(["idevicebackup2", "-u", P, "backup", bk], env=sim.env(),
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         stdin=subprocess.DEVNULL)
    try:
        out, _ = p.communicate(timeout=5)
        check(False, "purge: exit %d, want a hang:\n%s" % (p.returncode, out.decode()))
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
    check(not os.path.exists(os.path.join(bk, P, "Status.plist")), "purge: Status.plist uploaded")
    j = []

    def finished():
        j.extend(sim.journal(P))
        return any(e.get("op") == "backup_finished" for e in j)
    wait_for(finished, 5, what="backup_finished in the journal after the host died")
    journal_has(j, "backup_started", full=True)
    journal_has(j, "purge_disk_space")
    journal_has(j, "backup_finished", ok=False, error_code=-1, files=0)
    v = sim.run(["ideviceinfo", "-u", P, "-k", "ProductType"]).stdout.strip()
    check(v == "iPhone14,5", "simulator unusable after the hang: %r" % v)
    print("ok: PurgeDiskSpace hangs 1.3.0 (bounded)")
print("PASS")
