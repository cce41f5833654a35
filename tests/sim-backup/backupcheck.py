# SPDX-License-Identifier: MIT
"""backupcheck: assertions for tests/sim-backup (Debian's /usr/bin/python3, stdlib only).

  backupcheck.py tree DIR UDID FILE_COUNT FILE_SIZE FULL
      DIR/UDID holds Info.plist (the host's), Manifest.plist, Manifest.db, Status.plist with
      SnapshotState "finished" and IsFullBackup == FULL, and exactly FILE_COUNT data files of
      FILE_SIZE bytes, each at <sha1[:2]>/<sha1>
  backupcheck.py sums DIR/UDID OUTFILE                 writes "name sha256" of each data file
  backupcheck.py changed SUMS_BEFORE SUMS_AFTER N      exactly N data files differ, none vanished
  backupcheck.py recent VALUE [MIN_OLD]                VALUE is an integer Apple time within
                                                       120 s of now (and > MIN_OLD)
Exit status 0 when it holds, 1 with a message otherwise. Journal checks use
tests/sim-device/plistcheck.py (journal / nojournal).
"""
import hashlib
import os
import plistlib
import re
import sys
import time

MAC_EPOCH = 978307200


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def data_files(root):
    out = {}
    for d in sorted(os.listdir(root)):
        p = os.path.join(root, d)
        if not os.path.isdir(p):
            continue
        if not re.fullmatch(r"[0-9a-f]{2}", d):
            fail("unexpected directory %s" % p)
        for n in os.listdir(p):
            if not re.fullmatch(r"[0-9a-f]{40}", n) or n[:2] != d:
                fail("data file %s/%s not at <sha1[:2]>/<sha1>" % (d, n))
            out[n] = os.path.join(p, n)
    return out


def cmd_tree(top, udid, count, size, full):
    root = os.path.join(top, udid)
    for n in ("Info.plist", "Manifest.plist", "Manifest.db", "Status.plist"):
        if not os.path.isfile(os.path.join(root, n)):
            fail("%s missing in %s" % (n, root))
    with open(os.path.join(root, "Status.plist"), "rb") as f:
        st = plistlib.load(f)
    if st.get("SnapshotState") != "finished":
        fail("Status.plist SnapshotState %r" % st.get("SnapshotState"))
    if st.get("IsFullBackup") is not (full == "true"):
        fail("Status.plist IsFullBackup %r, want %s" % (st.get("IsFullBackup"), full))
    for k in ("BackupState", "Date", "UUID", "Version"):
        if k not in st:
            fail("Status.plist lacks %s: %r" % (k, st))
    with open(os.path.join(root, "Manifest.plist"), "rb") as f:
        mf = plistlib.load(f)
    if mf.get("Lockdown", {}).get("UniqueDeviceID") != udid or mf.get("IsEncrypted") is not False:
        fail("Manifest.plist %r" % mf)
    files = data_files(root)
    if len(files) != int(count):
        fail("%d data files, want %s" % (len(files), count))
    for n, p in files.items():
        if os.path.getsize(p) != int(size):
            fail("%s is %d bytes, want %s" % (p, os.path.getsize(p), size))
    print("ok: tree %s: %d data files of %s bytes, IsFullBackup %s" % (udid, len(files), size, full))


def cmd_sums(root, out):
    with open(out, "w") as f:
        for n, p in sorted(data_files(root).items()):
            with open(p, "rb") as g:
                f.write("%s %s\n" % (n, hashlib.sha256(g.read()).hexdigest()))


def load_sums(path):
    with open(path) as f:
        return dict(line.split() for line in f if line.strip())


def cmd_changed(before, after, n):
    a, b = load_sums(before), load_sums(after)
    if set(a) != set(b):
        fail("data file names changed: %r" % (set(a) ^ set(b)))
    diff = [k for k in a if a[k] != b[k]]
    if len(diff) != int(n):
        fail("%d data files changed, want %s" % (len(diff), n))
    print("ok: %d of %d data files changed" % (len(diff), len(a)))


def cmd_recent(value, min_old=None):
    if not re.fullmatch(r"[0-9]+", value):
        fail("not an integer: %r" % value)
    v = int(value)
    now = time.time() - MAC_EPOCH
    if abs(now - v) > 120:
        fail("%d is not within 120 s of now (%d)" % (v, now))
    if min_old is not None and v <= int(min_old):
        fail("%d not newer than %s" % (v, min_old))
    print("ok: %d is now" % v)


def main(argv):
    if len(argv) == 7 and argv[1] == "tree":
        cmd_tree(*argv[2:])
    elif len(argv) == 4 and argv[1] == "sums":
        cmd_sums(argv[2], argv[3])
    elif len(argv) == 5 and argv[1] == "changed":
        cmd_changed(*argv[2:])
    elif len(argv) in (3, 4) and argv[1] == "recent":
        cmd_recent(*argv[2:])
    else:
        fail("usage: see the docstring")


if __name__ == "__main__":
    main(sys.argv)
