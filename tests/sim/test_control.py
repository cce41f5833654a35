#!/usr/bin/python3
"""cradle-sim's control socket (list, attach, detach, set, pairing, journal, errors) and
scenario timelines, observed through the control socket and the usbmuxd side."""
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check  # noqa: E402

sim_bin, scenario, timeline = sys.argv[1], sys.argv[2], sys.argv[3]
BASE = {"ClientVersionString": "libusbmuxd 2.0.2", "kLibUSBMuxVersion": 3, "ProgName": "t"}
U1 = "00008110-001A2B3C4D5E0001"


def has_record(sim, udid):
    _, r = sim.mux(dict(BASE, MessageType="ReadPairRecord", PairRecordID=udid))
    return "PairRecordData" in r


with Sim(sim_bin, scenario) as sim:
    r = sim.ctl({"op": "list"})
    check(r["ok"] and len(r["devices"]) == 6, "list: %r" % r)
    by = {d["udid"]: d for d in r["devices"]}
    check(by["00008110-001A2B3C4D5E0006"] == {"udid": "00008110-001A2B3C4D5E0006",
                                               "attached": False, "device_id": None,
                                               "pairing": "paired"}, "detached entry")
    check(by["00008110-001A2B3C4D5E0004"]["pairing"] == "trust_pending", "pairing listed")
    check(by[U1]["attached"] and by[U1]["device_id"] > 0, "attached entry")

    # attach/detach are visible to idevice_id, idempotent, and accept undashed UDIDs.
    check(U1 in sim.idevice_ids(), "U1 listed")
    check(sim.ctl({"op": "detach", "udid": "00008110001A2B3C4D5E0001"})["ok"], "detach")
    check(sim.ctl({"op": "detach", "udid": U1})["ok"], "detach again is fine")
    check(U1 not in sim.idevice_ids(), "U1 gone after detach")
    r = sim.ctl({"op": "attach", "udid": U1})
    check(r["ok"] and r["device"]["attached"], "attach")
    check(U1 in sim.idevice_ids(), "U1 back after attach")
    check(sim.ctl({"op": "attach", "udid": "00008110-001A2B3C4D5E0006"})["ok"], "attach 6")
    check("00008110-001A2B3C4D5E0006" in sim.idevice_ids(), "device 6 attached on demand")

    # set: typed values, type checks on known keys, null removes.
    ok = sim.ctl({"op": "set", "udid": U1, "domain": "com.apple.mobile.backup",
                  "key": "LastCloudBackupDate", "value": 770000000})
    # notified: no notification_proxy observer is connected here
    check(ok == {"ok": True, "udid": U1, "notified": 0}, "set: %r" % ok)
    r = sim.ctl({"op": "set", "udid": U1, "domain": "com.apple.mobile.backup",
                 "key": "LastCloudBackupDate", "value": "yesterday"})
    check(not r["ok"] and "expected integer" in r["error"], "typed key refused: %r" % r)
    r = sim.ctl({"op": "set", "udid": U1, "domain": "com.apple.mobile.battery",
                 "key": "ExternalConnected", "value": 1})
    check(not r["ok"] and "expected boolean" in r["error"], "bool key refused: %r" % r)
    for v in (None, {"$date": "2025-01-01T00:00:00Z"}, {"$data": "AAEC"}, [1, {"a": 2.5}]):
        r = sim.ctl({"op": "set", "udid": U1, "domain": "x.y", "key": "K", "value": v})
        check(r["ok"], "set %r: %r" % (v, r))
    r = sim.ctl({"op": "set", "udid": U1, "domain": "x", "key": "K",
                 "value": {"$date": "not a date"}})
    check(not r["ok"] and "$date" in r["error"], "bad $date: %r" % r)
    r = sim.ctl({"op": "set", "udid": U1, "key": "K"})
    check(not r["ok"] and "value" in r["error"], "missing value: %r" % r)

    # pairing moves the pair record usbmuxd hands out.
    check(has_record(sim, U1), "paired device has a record")
    r = sim.ctl({"op": "pairing", "udid": U1, "state": "unpaired"})
    check(r["ok"] and r["device"]["pairing"] == "unpaired", "pairing unpaired: %r" % r)
    check(not has_record(sim, U1), "unpaired: record gone")
    check(sim.ctl({"op": "pairing", "udid": U1, "state": "invalid_host"})["ok"], "invalid_host")
    check(has_record(sim, U1), "invalid_host: a (stale) record again")
    r = sim.ctl({"op": "pairing", "udid": U1, "state": "maybe"})
    check(not r["ok"] and "state" in r["error"], "bad state: %r" % r)

    # journal: empty object without activity; per-device form; cleared after reading.
    r = sim.ctl({"op": "journal"})
    check(r["ok"] and isinstance(r["journal"], dict), "journal: %r" % r)
    r = sim.ctl({"op": "journal", "udid": U1})
    check(r["ok"] and r["udid"] == U1 and isinstance(r["journal"], list), "journal U1: %r" % r)
    check(sim.ctl({"op": "journal", "udid": U1})["journal"] == [], "journal cleared")

    # errors: never a crash, always one reply line.
    for line, want in ((b"not json", "malformed"), (b"[1,2]", "op"), (b'{"op":5}', "op"),
                       (b'{"op":"fly"}', "unknown op"),
                       (b'{"op":"detach","udid":"nope"}', "unknown udid"),
                       (b'{"op":"detach"}', "udid"), (b'{"op":"list"', "malformed")):
        r = sim.ctl_raw(line)
        check(r["ok"] is False and want in r["error"], "%r -> %r" % (line, r))
    # several requests on one connection, one reply each, in order; then an over-long line.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sim.control)
    f = s.makefile("rwb")
    f.write(b'{"op":"list"}\n\n{"op":"bad"}\n{"op":"journal"}\n')
    f.write(b"x" * (1 << 20 + 1) + b"\n" + b'{"op":"list"}\n')
    f.flush()
    replies = [json.loads(f.readline()) for _ in range(5)]
    check([x["ok"] for x in replies] == [True, False, True, False, True],
          "pipelined replies: %r" % [x.get("error") for x in replies])
    check("longer than" in replies[3]["error"], "over-long line reported")
    s.close()
    check(sim.ctl({"op": "list"})["ok"], "still serving")

with Sim(sim_bin, timeline) as sim:
    A1, A2 = "00008110-001A2B3C4D5E00A1", "00008110-001A2B3C4D5E00A2"

    def state():
        return {d["udid"]: d for d in sim.ctl({"op": "list"})["devices"]}

    t0 = sim.t_ready
    st = state()
    # Events are due 1.8-3 s after start-up; only a very slow machine misses this window.
    if time.monotonic() - t0 < 1.5:
        check(st[A1]["attached"] and not st[A2]["attached"], "initial timeline state")
    first_id = st[A1]["device_id"]
    seen = set()
    while time.monotonic() - t0 < 20:
        st = state()
        if st[A2]["attached"]:
            seen.add("a2")
        if not st[A1]["attached"]:
            seen.add("detached")
            check(st[A1]["pairing"] == "denied", "pairing event applied before detach")
        if "detached" in seen and st[A1]["attached"]:
            check(st[A1]["device_id"] != first_id or first_id is None, "re-attach: new id")
            seen.add("reattached")
            break
        time.sleep(0.05)
    check(seen == {"a2", "detached", "reattached"}, "timeline events fired: %r" % seen)
    # `set` events, read back through a real lockdown session (they fired at 1 s).
    import plistlib
    import subprocess
    A3 = "00008110-001A2B3C4D5E00A3"
    while time.monotonic() - t0 < 1.2:
        time.sleep(0.05)
    r = subprocess.run(["ideviceinfo", "-u", A3, "-q", "com.apple.mobile.backup", "-x"],
                       env=sim.env(), capture_output=True, timeout=30)
    check(r.returncode == 0, "ideviceinfo A3: %r" % r.stderr)
    got = plistlib.loads(r.stdout)
    check(got.get("LastCloudBackupDate") == 700000999 and "CloudBackupEnabled" not in got,
          "timeline set/remove applied: %r" % got)
    r = subprocess.run(["ideviceinfo", "-u", A3, "-q", "com.example.new", "-x"],
                       env=sim.env(), capture_output=True, timeout=30)
    check(r.returncode == 0 and str(plistlib.loads(r.stdout)["Added"]) == "2025-01-02 03:04:05",
          "timeline set creates a domain with a date: %r" % r.stdout[-200:])
print("ok")
