#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""`idevicebackup2 backup DIR` (Debian's 1.3.0) against cradle-sim's mobilebackup2.

The first backup is full (exit 0, "Backup Successful.", file_count data files of file_size
bytes at <sha1[:2]>/<sha1>, Status.plist finished and IsFullBackup true), the second is
incremental (a quarter of the files rewritten with new contents, IsFullBackup false), `--full`
uploads everything again; LastiTunesBackupDate moves to now; the journal records the runs.
usage: test_backup.py CRADLE_SIM SOURCE_DIR [--plaintext]
"""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import backupcheck  # noqa: E402
from harness import Sim, check, journal_has, wait_for  # noqa: E402

SIMBIN, SRC = sys.argv[1:3]
PLAIN = sys.argv[3:4] == ["--plaintext"]
SCN = os.path.join(SRC, "tests", "sim", "data", "backup.json")
# scenario: file_count 12, file_size 70000, LastiTunesBackupDate 700000000
U = "00008030-001A2B3C4D5E0B01"

with Sim(SIMBIN, SCN, ["--plaintext"] if PLAIN else []) as sim:
    bk = os.path.join(sim.tmp, "bk")
    os.mkdir(bk)

    def last():
        return sim.run(["ideviceinfo", "-u", U, "-q", "com.apple.mobile.backup", "-k",
                        "LastiTunesBackupDate"]).stdout.strip()

    def backup(*lines, full=False):
        argv = ["idevicebackup2", "-u", U, "backup"] + (["--full"] if full else []) + [bk]
        r = sim.run(argv, timeout=40)
        out = r.stdout + r.stderr
        check(r.returncode == 0, "%s: exit %d:\n%s" % (" ".join(argv), r.returncode, out))
        for line in lines:
            check(line in out.splitlines(), "%s: no line %r:\n%s" % (" ".join(argv), line, out))

    check(last() == "700000000", "LastiTunesBackupDate before: %r" % last())

    backup("Backup Successful.", "Full backup mode.", "Received 15 files from device.")
    backupcheck.tree(bk, U, 12, 70000, True)
    sums1 = backupcheck.sums(os.path.join(bk, U))
    v1 = backupcheck.recent(last(), 700000000)
    j = sim.journal(U)
    journal_has(j, "backup_started", full=True)
    journal_has(j, "backup_finished", ok=True, error_code=0, files=15)
    journal_has(j, "StartService", service="com.apple.mobilebackup2", result="Success")
    print("ok: full backup")

    # incremental: 12 / 4 = 3 data files change, plus the 3 metadata files. The date has
    # one-second resolution: start the second backup in the next second, so it must move.
    wait_for(lambda: time.time() - 978307200 >= v1 + 1, 2,
             what="the second after the first backup")
    backup("Backup Successful.", "Received 6 files from device.")
    backupcheck.tree(bk, U, 12, 70000, False)
    backupcheck.changed(sums1, backupcheck.sums(os.path.join(bk, U)), 3)
    backupcheck.recent(last(), v1)
    j = sim.journal(U)
    journal_has(j, "backup_started", full=False)
    journal_has(j, "backup_finished", ok=True, error_code=0, files=6)
    journal_has(j, "backup_started", want=False, full=True)
    print("ok: incremental backup")

    # `backup --full` sends ForceFullBackup: everything is uploaded again
    backup("Received 15 files from device.", full=True)
    backupcheck.tree(bk, U, 12, 70000, True)
print("PASS")
