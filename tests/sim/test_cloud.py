#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`idevicebackup2 cloud on|off` (Debian's 1.3.0) against cradle-sim's EnableCloudBackup.

Success prints the tool's message, exits 0 and flips com.apple.mobile.backup
CloudBackupEnabled as ideviceinfo then reads it; a scripted error (211 "No Apple ID signed in")
prints "ErrorCode 211: ...", exits with -211 & 0xff = 45 and changes nothing. The journal
records each request with the state asked for and the code answered.
usage: test_cloud.py CRADLE_SIM SOURCE_DIR [--plaintext]
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, journal_has  # noqa: E402

SIMBIN, SRC = sys.argv[1:3]
PLAIN = sys.argv[3:4] == ["--plaintext"]
SCN = os.path.join(SRC, "tests", "sim", "data", "backup.json")
U = "00008030-001A2B3C4D5E0B01"  # CloudBackupEnabled false, cloud succeeds
E = "00008030-001A2B3C4D5E0B02"  # CloudBackupEnabled true, cloud answers 211

with Sim(SIMBIN, SCN, ["--plaintext"] if PLAIN else []) as sim:
    def enabled(udid):
        return sim.run(["ideviceinfo", "-u", udid, "-q", "com.apple.mobile.backup", "-k",
                        "CloudBackupEnabled"]).stdout.strip()

    def cloud(udid, state, want_rc, *lines):
        r = sim.run(["idevicebackup2", "-u", udid, "cloud", state])
        out = r.stdout + r.stderr
        check(r.returncode == want_rc, "cloud %s: exit %d, want %d:\n%s" %
              (state, r.returncode, want_rc, out))
        for line in lines:
            check(line in out.splitlines(), "cloud %s: no line %r:\n%s" % (state, line, out))

    check(enabled(U) == "false", "before: %r" % enabled(U))
    cloud(U, "on", 0, "Cloud backup has been enabled successfully.")
    check(enabled(U) == "true", "after on: %r" % enabled(U))
    j = sim.journal(U)
    journal_has(j, "cloud_backup", enable=True, error_code=0)
    journal_has(j, "StartService", service="com.apple.mobilebackup2", result="Success")
    print("ok: cloud on")

    cloud(U, "off", 0, "Cloud backup has been disabled successfully.")
    check(enabled(U) == "false", "after off: %r" % enabled(U))
    journal_has(sim.journal(U), "cloud_backup", enable=False, error_code=0)
    print("ok: cloud off")

    # scripted error: the value must not change
    check(enabled(E) == "true", "error device before: %r" % enabled(E))
    cloud(E, "off", 45, "ErrorCode 211: No Apple ID signed in", "Could not disable cloud backup.")
    check(enabled(E) == "true", "error device after: %r" % enabled(E))
    journal_has(sim.journal(E), "cloud_backup", enable=False, error_code=211)
print("PASS")
