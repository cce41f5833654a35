#!/usr/bin/python3
"""Pairing and re-enumeration through Debian's tools, seen from the usbmuxd side: the pair
records the simulator-as-usbmuxd keeps, the Paired event, control `pairing`, and
`idevicediagnostics restart` detaching and re-attaching under a new DeviceID."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, read_message, send_request  # noqa: E402

sim_bin, scenario = sys.argv[1], sys.argv[2]
BASE = {"ClientVersionString": "libusbmuxd 2.0.2", "kLibUSBMuxVersion": 3, "ProgName": "t"}
U1 = "00008110-001A2B3C4D5E0001"
UNPAIRED = "0123456789abcdef0123456789abcdef01234567"
PENDING = "00008110-001A2B3C4D5E0004"
STALE = "00008110-001A2B3C4D5E0005"


def tool(sim, *argv):
    return subprocess.run(list(argv), env=sim.env(), capture_output=True, timeout=30)


def has_record(sim, udid):
    _, r = sim.mux(dict(BASE, MessageType="ReadPairRecord", PairRecordID=udid))
    return "PairRecordData" in r


def state(sim, udid):
    return {d["udid"]: d for d in sim.ctl({"op": "list"})["devices"]}[udid]


with Sim(sim_bin, scenario) as sim:
    ls = sim.mux_connect()
    send_request(ls, dict(BASE, MessageType="Listen"))
    read_message(ls)
    for _ in range(5):
        read_message(ls)  # initial Attached events

    # unpaired: no record; `idevicepair pair` pairs, saves a record, listeners get Paired.
    check(not has_record(sim, UNPAIRED), "unpaired: no record")
    r = tool(sim, "idevicepair", "-u", UNPAIRED, "pair")
    check(r.returncode == 0 and b"SUCCESS" in r.stdout, "idevicepair pair: %r" % r.stdout)
    check(has_record(sim, UNPAIRED), "record saved by the client")
    _, ev = read_message(ls)
    check(ev["MessageType"] == "Paired" and ev["DeviceID"] == state(sim, UNPAIRED)["device_id"],
          "Paired event: %r" % ev)
    r = tool(sim, "ideviceinfo", "-u", UNPAIRED, "-k", "UniqueDeviceID")
    check(r.returncode == 0 and r.stdout.decode().strip() == UNPAIRED, "values after pairing")

    # trust_pending: the tool asks for the dialog; after control pairing=unpaired it pairs.
    r = tool(sim, "idevicepair", "-u", PENDING, "pair")
    check(r.returncode != 0 and b"trust dialog" in r.stdout + r.stderr, "pending: %r" % r.stdout)
    check(not has_record(sim, PENDING), "pending: still no record")
    check(sim.ctl({"op": "pairing", "udid": PENDING, "state": "unpaired"})["ok"], "ctl pairing")
    r = tool(sim, "idevicepair", "-u", PENDING, "pair")
    check(r.returncode == 0, "pair after the user tapped Trust: %r" % r.stdout)
    _, ev = read_message(ls)
    check(ev == {"MessageType": "Paired", "DeviceID": state(sim, PENDING)["device_id"]},
          "second Paired event: %r" % ev)

    # invalid_host: a record exists but the device refuses it (-21), until re-paired.
    check(has_record(sim, STALE), "stale record present")
    r = tool(sim, "ideviceinfo", "-u", STALE, "-k", "DeviceName")
    check(r.returncode != 0 and b"-21" in r.stdout + r.stderr, "InvalidHostID: %r" % r.stderr)

    # restart: Detached now, Attached again under a new DeviceID after restart_delay_ms.
    old = state(sim, U1)["device_id"]
    r = tool(sim, "idevicediagnostics", "-u", U1, "restart")
    check(r.returncode == 0, "idevicediagnostics restart: %r" % r.stderr)
    _, ev = read_message(ls)
    check(ev == {"MessageType": "Detached", "DeviceID": old}, "Detached on restart: %r" % ev)
    t0 = time.monotonic()
    _, ev = read_message(ls)
    check(ev["MessageType"] == "Attached" and ev["DeviceID"] != old and
          ev["Properties"]["SerialNumber"] == U1, "re-attached as a new id: %r" % ev)
    check(time.monotonic() - t0 < 5, "re-attach within the restart delay")
    j = sim.ctl({"op": "journal", "udid": U1})["journal"]
    check(any(e["op"] == "Restart" for e in j), "journal has Restart: %r" % [e["op"] for e in j])
    ls.close()
print("ok")
