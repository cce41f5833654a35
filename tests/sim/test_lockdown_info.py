#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""ideviceinfo (Debian's libimobiledevice-utils 1.3.0) against cradle-sim's lockdownd.

Whole domains and single keys equal the scenario, a missing key prints nothing and exits 0, a
stale pairing gives "Invalid HostID (-21)" and 255, and the journal records the session (TLS
or not) and the keys read.
usage: test_lockdown_info.py CRADLE_SIM SOURCE_DIR [--plaintext]
"""
import os
import plistlib
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, journal_has  # noqa: E402
from plistcheck import domain_equal  # noqa: E402

SIMBIN, SRC = sys.argv[1:3]
PLAIN = sys.argv[3:4] == ["--plaintext"]
SCN = os.path.join(SRC, "tests", "sim", "data", "device.json")
P = "00008030-001A2B3C4D5E6F70"
STALE = "00008030-000000000000AA04"

with Sim(SIMBIN, SCN, ["--plaintext"] if PLAIN else []) as sim:
    def info(*args):
        argv = ["ideviceinfo", "-u", P] + list(args)
        r = sim.run(argv)
        check(r.returncode == 0, "%s: exit %d: %s" % (" ".join(argv), r.returncode, r.stderr))
        return r.stdout

    # whole domains, root included, as XML
    for dom in ("", "com.apple.mobile.backup", "com.apple.mobile.battery"):
        args = ["-q", dom, "-x"] if dom else ["-x"]
        domain_equal(SCN, P, dom, info(*args).encode())

    # single keys
    for args, want in ((["-k", "ProductVersion"], "16.6.1"),
                       (["-q", "com.apple.mobile.backup", "-k", "LastCloudBackupDate"],
                        "752000000"),
                       (["-q", "com.apple.mobile.backup", "-k", "CloudBackupEnabled"], "true"),
                       (["-k", "UniqueDeviceID"], P)):
        v = info(*args).strip()
        check(v == want, "%s: %r, want %r" % (" ".join(args), v, want))
    # DevicePublicKey is a real PKCS#1 PEM (the client parses it when pairing)
    pk = plistlib.loads(info("-k", "DevicePublicKey", "-x").encode())
    check(pk.startswith(b"-----BEGIN RSA PUBLIC KEY-----"), "DevicePublicKey is not a PKCS#1 PEM")

    # a missing key: nothing printed, exit status 0 (MissingValue, docs/device-protocols.md)
    v = info("-q", "com.apple.mobile.backup", "-k", "NoSuchKey")
    check(v.strip() == "", "missing key printed %r" % v)

    # stale pairing: InvalidHostID
    r = sim.run(["ideviceinfo", "-u", STALE])
    check(r.returncode == 255, "invalid_host exit %d: %s" % (r.returncode, r.stdout + r.stderr))
    check("Invalid HostID (-21)" in r.stdout + r.stderr,
          "invalid_host message: %s" % (r.stdout + r.stderr))

    j = sim.journal(P)
    journal_has(j, "StartSession", ssl=not PLAIN, result="Success", label="ideviceinfo")
    journal_has(j, "GetValue", domain="com.apple.mobile.backup", key="LastCloudBackupDate")
    journal_has(j, "GetValue", domain="com.apple.mobile.battery", key="")
    j = sim.journal(STALE)
    journal_has(j, "StartSession", result="InvalidHostID")
    journal_has(j, "StartSession", want=False, result="Success")
print("PASS")
