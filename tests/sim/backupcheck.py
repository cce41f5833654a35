# SPDX-License-Identifier: MIT
"""backupcheck: assertions on a backup folder that idevicebackup2 wrote (tests/sim/test_backup*.py).

  tree(dir, udid, count, size, full)   dir/udid holds Info.plist (the host's), Manifest.plist,
      Manifest.db, Status.plist with SnapshotState "finished" and IsFullBackup == full, and
      exactly count data files of size bytes, each at <sha1[:2]>/<sha1>
  sums(dir/udid) -> {name: sha256}     of each data file
  changed(before, after, n)            exactly n data files differ, none vanished
  recent(value, min_old=None)          value is an integer Apple time within 120 s of now
                                       (and > min_old)
Each fails the test (harness.fail) when it does not hold.
"""
import hashlib
import os
import plistlib
import re
import time

from harness import fail

MAC_EPOCH = 978307200


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


def tree(top, udid, count, size, full):
    root = os.path.join(top, udid)
    for n in ("Info.plist", "Manifest.plist", "Manifest.db", "Status.plist"):
        if not os.path.isfile(os.path.join(root, n)):
            fail("%s missing in %s" % (n, root))
    with open(os.path.join(root, "Status.plist"), "rb") as f:
        st = plistlib.load(f)
    if st.get("SnapshotState") != "finished":
        fail("Status.plist SnapshotState %r" % st.get("SnapshotState"))
    if st.get("IsFullBackup") is not full:
        fail("Status.plist IsFullBackup %r, want %s" % (st.get("IsFullBackup"), full))
    for k in ("BackupState", "Date", "UUID", "Version"):
        if k not in st:
            fail("Status.plist lacks %s: %r" % (k, st))
    with open(os.path.join(root, "Manifest.plist"), "rb") as f:
        mf = plistlib.load(f)
    if mf.get("Lockdown", {}).get("UniqueDeviceID") != udid or mf.get("IsEncrypted") is not False:
        fail("Manifest.plist %r" % mf)
    files = data_files(root)
    if len(files) != count:
        fail("%d data files, want %d" % (len(files), count))
    for n, p in files.items():
        if os.path.getsize(p) != size:
            fail("%s is %d bytes, want %d" % (p, os.path.getsize(p), size))
    print("ok: tree %s: %d data files of %d bytes, IsFullBackup %s" % (udid, len(files), size,
                                                                       full))


def sums(root):
    out = {}
    for n, p in sorted(data_files(root).items()):
        with open(p, "rb") as g:
            out[n] = hashlib.sha256(g.read()).hexdigest()
    return out


def changed(a, b, n):
    if set(a) != set(b):
        fail("data file names changed: %r" % (set(a) ^ set(b)))
    diff = [k for k in a if a[k] != b[k]]
    if len(diff) != n:
        fail("%d data files changed, want %d" % (len(diff), n))
    print("ok: %d of %d data files changed" % (len(diff), len(a)))


def recent(value, min_old=None):
    if not re.fullmatch(r"[0-9]+", value):
        fail("not an integer: %r" % value)
    v = int(value)
    now = time.time() - MAC_EPOCH
    if abs(now - v) > 120:
        fail("%d is not within 120 s of now (%d)" % (v, now))
    if min_old is not None and v <= int(min_old):
        fail("%d not newer than %s" % (v, min_old))
    print("ok: %d is now" % v)
    return v
