#!/usr/bin/python3
"""usbmuxd protocol of cradle-sim, byte for byte (docs/device-protocols.md, usbmuxd):
ListDevices, Listen events, Connect results, BUID, pair records, malformed requests."""
import os
import plistlib
import socket
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, read_message, send_request  # noqa: E402

sim_bin, scenario = sys.argv[1], sys.argv[2]
BASE = {"ClientVersionString": "libusbmuxd 2.0.2", "kLibUSBMuxVersion": 3, "ProgName": "t"}


def req(t, **kw):
    d = dict(BASE, MessageType=t)
    d.update(kw)
    return d


with Sim(sim_bin, scenario) as sim:
    # ListDevices: tag echoed, attached devices only, dashed 25-char UDIDs, ids > 0 twice.
    hdr, r = sim.mux(req("ListDevices"), tag=7)
    check(hdr[1:] == (1, 8, 7), "reply header version/type/tag: %r" % (hdr,))
    devs = r["DeviceList"]
    serials = sorted(d["Properties"]["SerialNumber"] for d in devs)
    check(serials == sorted(["00008110-001A2B3C4D5E0001", "00008030-0011223344556677",
                             "0123456789abcdef0123456789abcdef01234567",
                             "00008110-001A2B3C4D5E0004", "00008110-001A2B3C4D5E0005"]),
          "ListDevices serials: %r" % serials)
    ids = {}
    for d in devs:
        p = d["Properties"]
        check(d["MessageType"] == "Attached", "entry MessageType")
        check(d["DeviceID"] > 0 and p["DeviceID"] == d["DeviceID"], "DeviceID > 0 twice")
        check(p["ConnectionType"] == "USB" and p["ConnectionSpeed"] == 480000000,
              "connection props")
        check(isinstance(p["LocationID"], int) and p["ProductID"] == 0x12a8, "usb props")
        ids[p["SerialNumber"]] = d["DeviceID"]
    check(len(set(ids.values())) == len(ids), "DeviceIDs unique")

    # ReadBUID: one UUID per instance.
    _, r = sim.mux(req("ReadBUID"), tag=3)
    buid = r["BUID"]
    check(len(buid) == 36 and buid.count("-") == 4, "BUID is a UUID: %r" % buid)
    check(sim.mux(req("ReadBUID"))[1]["BUID"] == buid, "BUID stable")

    # Pair records: paired/invalid_host have one, the others answer Result 2.
    _, r = sim.mux(req("ReadPairRecord", PairRecordID="00008110-001A2B3C4D5E0001"))
    rec = plistlib.loads(r["PairRecordData"])
    for k in ("HostID", "SystemBUID", "HostCertificate", "RootCertificate", "DeviceCertificate"):
        check(k in rec, "pair record has %s" % k)
    check(rec["SystemBUID"] == buid, "record SystemBUID = BUID")
    _, r = sim.mux(req("ReadPairRecord", PairRecordID="00008110-001A2B3C4D5E0005"))
    check("PairRecordData" in r, "invalid_host device keeps a (stale) record")
    for u in ("0123456789abcdef0123456789abcdef01234567", "00008110-001A2B3C4D5E0004"):
        _, r = sim.mux(req("ReadPairRecord", PairRecordID=u))
        check(r == {"MessageType": "Result", "Number": 2}, "no record for %s: %r" % (u, r))

    # Listen: Result 0, then one Attached per present device (tag 0).
    ls = sim.mux_connect()
    send_request(ls, req("Listen"), tag=9)
    hdr, r = read_message(ls)
    check(hdr[3] == 9 and r == {"MessageType": "Result", "Number": 0}, "Listen result")
    seen = set()
    for _ in range(len(devs)):
        hdr, ev = read_message(ls)
        check(hdr[3] == 0 and ev["MessageType"] == "Attached", "initial Attached, tag 0")
        seen.add(ev["Properties"]["SerialNumber"])
    check(seen == set(ids), "initial events cover every attached device")

    # SavePairRecord: stored, Paired event to listeners, then readable; Delete removes it.
    u = "0123456789abcdef0123456789abcdef01234567"
    data = plistlib.dumps({"HostID": "H1", "SystemBUID": buid}, fmt=plistlib.FMT_BINARY)
    _, r = sim.mux(req("SavePairRecord", PairRecordID=u, PairRecordData=data,
                       DeviceID=ids[u]))
    check(r == {"MessageType": "Result", "Number": 0}, "SavePairRecord ok: %r" % r)
    _, ev = read_message(ls)
    check(ev == {"MessageType": "Paired", "DeviceID": ids[u]}, "Paired event: %r" % ev)
    _, r = sim.mux(req("ReadPairRecord", PairRecordID=u))
    check(plistlib.loads(r["PairRecordData"])["HostID"] == "H1", "saved record read back")
    _, r = sim.mux(req("SavePairRecord", PairRecordID=u, PairRecordData=b"not a plist"))
    check(r["Number"] == 22, "garbage record refused with EINVAL")
    _, r = sim.mux(req("DeletePairRecord", PairRecordID=u))
    check(r["Number"] == 0, "DeletePairRecord ok")
    _, r = sim.mux(req("ReadPairRecord", PairRecordID=u))
    check(r["Number"] == 2, "deleted record gone")

    # ListListeners shows our listener.
    _, r = sim.mux(req("ListListeners"))
    check(len(r["ListenerList"]) == 1, "one listener: %r" % r)

    # Connect: unknown device -> 2, closed port -> 3, lockdown (htons'ed) -> 0 + byte pipe.
    _, r = sim.mux(req("Connect", DeviceID=999999, PortNumber=socket.htons(62078)))
    check(r["Number"] == 2, "unknown DeviceID: BADDEV")
    dev_id = ids["00008110-001A2B3C4D5E0001"]
    _, r = sim.mux(req("Connect", DeviceID=dev_id, PortNumber=socket.htons(1234)))
    check(r["Number"] == 3, "closed port: CONNREFUSED")
    _, r = sim.mux(req("Connect", DeviceID=dev_id, PortNumber=62078))
    check(r["Number"] == 3, "port not swapped (62078 as is = 32498): CONNREFUSED")
    _, r = sim.mux(req("Connect", DeviceID=dev_id, PortNumber=socket.htons(62078)), tag=5)
    check(r == {"MessageType": "Result", "Number": 0}, "lockdown Connect: %r" % r)

    # Malformed requests: Result 1, tag echoed, the server survives.
    _, r = sim.mux(None, tag=11, raw=b"<?xml version='1.0'?><plist><dict><key>")
    check(r["Number"] == 1, "broken plist: BADCOMMAND")
    _, r = sim.mux(req("Frobnicate"), tag=12)
    check(r["Number"] == 1, "unknown MessageType: BADCOMMAND")
    _, r = sim.mux({"NoMessageType": 1}, tag=13)
    check(r["Number"] == 1, "no MessageType: BADCOMMAND")
    _, r = sim.mux(req("Connect", DeviceID="x", PortNumber=1), tag=14)
    check(r["Number"] == 1, "DeviceID of the wrong type: BADCOMMAND")
    # A raw NUL inside an XML string made libplist 2.2's plist_get_string_val abort the
    # whole simulator (found by fuzz_usbmux): now a BADCOMMAND, or ignored in ProgName.
    x = b'<?xml version="1.0"?><plist version="1.0"><dict><key>MessageType</key>' \
        b'<string>%s</string><key>ProgName</key><string>%s</string></dict></plist>'
    _, r = sim.mux(None, tag=18, raw=x % (b"ReadBUID\x00x", b"t"))
    check(r == {"MessageType": "Result", "Number": 1}, "NUL in MessageType: %r" % r)
    _, r = sim.mux(None, tag=19, raw=x % (b"ReadBUID", b"a\x00b"))
    check(r.get("BUID") == buid, "NUL in ProgName is ignored: %r" % r)
    s = sim.mux_connect()
    send_request(s, req("ListDevices"), tag=15, version=0, message=3)
    hdr, r = read_message(s)
    check(hdr[3] == 15 and r["Number"] == 1, "binary protocol request: BADCOMMAND, never 6")
    s.close()
    s = sim.mux_connect()
    s.sendall(struct.pack("<IIII", 8, 1, 8, 16))
    hdr, r = read_message(s)
    check(r["Number"] == 1, "length < 16: BADCOMMAND")
    check(s.recv(1) == b"", "and the connection is closed")
    s.close()
    s = sim.mux_connect()
    s.sendall(struct.pack("<IIII", 1 << 30, 1, 8, 17))
    hdr, r = read_message(s)
    check(r["Number"] == 1, "oversized request: BADCOMMAND")
    s.close()
    # Two requests on one socket, sent in one write, are both answered in order.
    s = sim.mux_connect()
    body = plistlib.dumps(req("ReadBUID"), fmt=plistlib.FMT_XML)
    one = struct.pack("<IIII", 16 + len(body), 1, 8, 21) + body
    s.sendall(one + one.replace(struct.pack("<I", 21), struct.pack("<I", 22), 1))
    h1, _ = read_message(s)
    h2, _ = read_message(s)
    check((h1[3], h2[3]) == (21, 22), "pipelined requests answered in order")
    s.close()
    _, r = sim.mux(req("ListDevices"))
    check(len(r["DeviceList"]) == len(devs), "still serving after garbage")

    # Detach via control: Detached event with the old id; attach: new id.
    r = sim.ctl({"op": "detach", "udid": "00008110001A2B3C4D5E0001"})
    check(r["ok"], "detach ok")
    _, ev = read_message(ls)
    check(ev == {"MessageType": "Detached", "DeviceID": dev_id}, "Detached event: %r" % ev)
    r = sim.ctl({"op": "attach", "udid": "00008110-001A2B3C4D5E0001"})
    _, ev = read_message(ls)
    check(ev["MessageType"] == "Attached" and ev["DeviceID"] > max(ids.values()),
          "re-attach under a new DeviceID: %r" % ev)
    check(r["device"]["device_id"] == ev["DeviceID"], "control reports the new id")
    _, r = sim.mux(req("Connect", DeviceID=dev_id, PortNumber=socket.htons(62078)))
    check(r["Number"] == 2, "old DeviceID is gone")
    ls.close()
print("ok")
