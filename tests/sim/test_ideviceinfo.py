#!/usr/bin/python3
"""Debian's ideviceinfo against cradle-sim, over TLS and --plaintext: whole domains and single
keys equal the scenario's values (every plist type), control `set` and the journal are seen
through a real lockdown session, and untrusted devices are refused."""
import base64
import datetime
import json
import os
import plistlib
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, normalize_udid  # noqa: E402

sim_bin, scenario = sys.argv[1], sys.argv[2]
doc = json.load(open(scenario))


def expected(v):
    if isinstance(v, dict):
        if set(v) == {"$date"}:
            return datetime.datetime.strptime(v["$date"], "%Y-%m-%dT%H:%M:%SZ")
        if set(v) == {"$data"}:
            return base64.b64decode(v["$data"])
        return {k: expected(x) for k, x in v.items()}
    if isinstance(v, list):
        return [expected(x) for x in v]
    return v


def same(want, got):
    if isinstance(want, bool) or isinstance(got, bool):
        return want is got
    if isinstance(want, int) and want < 0 and isinstance(got, int):
        return got in (want, want + (1 << 64))  # libplist 2.2 keeps negatives as uint bits
    if isinstance(want, dict):
        return isinstance(got, dict) and set(want) == set(got) and \
            all(same(want[k], got[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and \
            all(same(a, b) for a, b in zip(want, got))
    return want == got


def info(sim, udid, domain=None, key=None, xml=True, ok=True):
    argv = ["ideviceinfo", "-u", udid]
    if domain:
        argv += ["-q", domain]
    if key:
        argv += ["-k", key]
    if xml:
        argv += ["-x"]
    r = subprocess.run(argv, env=sim.env(), capture_output=True, timeout=30)
    if not ok:
        return r
    check(r.returncode == 0, "%s: exit %d %r" % (" ".join(argv), r.returncode, r.stderr))
    return plistlib.loads(r.stdout) if xml else r.stdout.decode()


def run(extra):
    mode = "plaintext" if extra else "TLS"
    with Sim(sim_bin, scenario, extra) as sim:
        n = 0
        for d in doc["devices"]:
            if d.get("pairing", "paired") != "paired" or d.get("attached") is False:
                continue
            u = normalize_udid(d["udid"])
            for domain, keys in d.get("values", {}).items():
                got = info(sim, u, domain or None)
                for k, v in keys.items():
                    check(k in got, "%s %s %r: key %s missing" % (mode, u, domain, k))
                    check(same(expected(v), got[k]), "%s %s %r %s: %r != %r" %
                          (mode, u, domain, k, got[k], expected(v)))
                    n += 1
            root = info(sim, u)
            check(root["UniqueDeviceID"] == u, "UniqueDeviceID defaults to the UDID")
            for k in ("ProductType", "ProductVersion", "BuildVersion", "DeviceName",
                      "SerialNumber"):
                check(isinstance(root.get(k), str) and root[k], "%s: default %s" % (u, k))
        check(n >= 20, "compared %d values" % n)

        u = "00008110-001A2B3C4D5E0001"
        # single keys, as text (what scripts use)
        check(info(sim, u, "com.apple.mobile.backup", "LastCloudBackupDate", xml=False)
              .strip() == "769034247", "single integer key")
        check(info(sim, u, None, "DeviceName", xml=False).strip() == "Alpha", "single root key")
        check(info(sim, u, "com.apple.mobile.battery", "ExternalConnected", xml=False)
              .strip() == "true", "single bool key")
        # control set is visible to the next session; null removes
        sim.ctl({"op": "set", "udid": u, "domain": "com.apple.mobile.backup",
                 "key": "LastCloudBackupDate", "value": 770000001})
        check(info(sim, u, "com.apple.mobile.backup")["LastCloudBackupDate"] == 770000001,
              "set visible")
        sim.ctl({"op": "set", "udid": u, "domain": "com.apple.mobile.backup",
                 "key": "LastCloudBackupDate", "value": None})
        check("LastCloudBackupDate" not in info(sim, u, "com.apple.mobile.backup"),
              "null removes the key (never backed up)")
        # the journal saw what we read
        sim.ctl({"op": "journal"})
        info(sim, u, "com.apple.mobile.backup", "WillEncrypt")
        j = sim.ctl({"op": "journal", "udid": u})["journal"]
        check(any(e.get("domain") == "com.apple.mobile.backup" and
                  e.get("key") == "WillEncrypt" for e in j), "journal has the read: %r" % j)
        check(sim.ctl({"op": "journal", "udid": u})["journal"] == [], "journal cleared")
        # untrusted devices do not give their values away
        for bad in ("00008110-001A2B3C4D5E0004", "00008110-001A2B3C4D5E0005"):
            r = info(sim, bad, "com.apple.mobile.backup", ok=False)
            check(r.returncode != 0, "%s %s: ideviceinfo must fail" % (mode, bad))
        print("ok %s: %d values" % (mode, n))


run([])
run(["--plaintext"])
print("ok")
