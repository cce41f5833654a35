# SPDX-License-Identifier: MIT
"""test_robust: cradle-sim's lockdownd on a raw socket (usbmuxd Connect, then lockdown frames),
for what the idevice* tools never send: requests outside a session, unknown requests, frames
that are not plists, an oversized length, a binary plist that aborts libplist 2.2.0 if parsed
naively, a TLS session by Python's ssl module, refused ports and a connection flood. After each
abuse the simulator must still serve; Sim fails the test if it does not exit cleanly
(sanitizer reports included).

usage: test_robust.py CRADLE_SIM SOURCE_DIR
"""
import os
import plistlib
import socket
import ssl
import struct
import subprocess
import sys

SRC = sys.argv[2]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, recv_exact  # noqa: E402

P = "00008030-001A2B3C4D5E6F70"
DATA = os.path.join(SRC, "tests", "sim", "data")


def frame(d, fmt=plistlib.FMT_XML):
    b = plistlib.dumps(d, fmt=fmt)
    return struct.pack(">I", len(b)) + b


def read_frame(s):
    (n,) = struct.unpack(">I", recv_exact(s, 4))
    check(n < 1 << 20, "reply length %d" % n)
    body = recv_exact(s, n)
    check(body.startswith(b"<?xml"), "lockdown replies are XML, got %r" % body[:16])
    return plistlib.loads(body)


def call(s, req):
    s.sendall(frame(req))
    reply = read_frame(s)
    check(reply.get("Request") == req.get("Request"),
          "reply does not echo Request: %r -> %r" % (req, reply))
    return reply


def connect(sim, devid, port=62078):
    s = sim.mux_connect()
    hdr, reply = sim.mux({"MessageType": "Connect", "DeviceID": devid,
                          "PortNumber": socket.htons(port), "ProgName": "test_robust"}, sock=s)
    if reply.get("Number") != 0:
        s.close()
        return None, reply.get("Number")
    s.settimeout(10)
    return s, 0


def closed_by_peer(s):
    try:
        s.settimeout(5)
        while True:
            if not s.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def still_serving(sim, what):
    r = subprocess.run(["ideviceinfo", "-u", P, "-k", "ProductVersion"], env=sim.env(),
                       capture_output=True, timeout=30)
    check(r.returncode == 0 and r.stdout.strip() == b"16.6.1",
          "after %s: ideviceinfo %d %r %r" % (what, r.returncode, r.stdout, r.stderr))


def main():
    with Sim(sys.argv[1], os.path.join(DATA, "device.json")) as sim:
        devs = {d["udid"]: d for d in sim.ctl({"op": "list"})["devices"]}
        devid = devs[P]["device_id"]
        _, rec = sim.mux({"MessageType": "ReadPairRecord", "PairRecordID": P})
        host_id = plistlib.loads(rec["PairRecordData"])["HostID"]

        # outside a session
        s, _ = connect(sim, devid)
        r = call(s, {"Label": "t", "Request": "QueryType"})
        check(r.get("Type") == "com.apple.mobile.lockdown", "QueryType %r" % r)
        r = call(s, {"Label": "t", "Request": "GetValue", "Key": "ProductVersion"})
        check(r.get("Value") == "16.6.1", "public GetValue %r" % r)
        r = call(s, {"Label": "t", "Request": "GetValue", "Key": "SerialNumber"})
        check(r.get("Error") == "GetProhibited", "private key outside a session %r" % r)
        r = call(s, {"Label": "t", "Request": "GetValue", "Domain": "com.apple.mobile.backup"})
        check(r.get("Error") == "GetProhibited", "domain outside a session %r" % r)
        r = call(s, {"Label": "t", "Request": "GetValue"})
        check("SerialNumber" not in r.get("Value", {}) and r["Value"].get("ProductType"),
              "root outside a session %r" % r)
        r = call(s, {"Label": "t", "Request": "StartService",
                     "Service": "com.apple.syslog_relay"})
        check(r.get("Error") == "SessionInactive", "StartService outside a session %r" % r)
        r = call(s, {"Label": "t", "Request": "Frobnicate"})
        check(r.get("Error"), "unknown request answered without Error: %r" % r)
        r = call(s, {"Label": "t", "Request": "StartSession", "HostID": "NOT-A-HOST"})
        check(r.get("Error") == "InvalidHostID", "unknown HostID %r" % r)
        r = call(s, {"Label": "t", "Request": "Goodbye"})
        check(closed_by_peer(s), "Goodbye did not close")
        s.close()

        # a TLS session with another TLS stack (Python ssl), SetValue/GetValue/RemoveValue
        s, _ = connect(sim, devid)
        r = call(s, {"Label": "t", "Request": "StartSession", "HostID": host_id,
                     "SystemBUID": "x"})
        check(r.get("EnableSessionSSL") is True and r.get("SessionID"), "StartSession %r" % r)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        t = ctx.wrap_socket(s)
        r = call(t, {"Label": "t", "Request": "GetValue", "Key": "SerialNumber"})
        check(r.get("Value") == "F4GZ1234ABCD", "in session %r (%s)" % (r, t.version()))
        r = call(t, {"Label": "t", "Request": "SetValue", "Domain": "test.domain", "Key": "K",
                     "Value": [1, "two", {"x": True}]})
        check("Error" not in r, "SetValue %r" % r)
        r = call(t, {"Label": "t", "Request": "GetValue", "Domain": "test.domain", "Key": "K"})
        check(r.get("Value") == [1, "two", {"x": True}], "GetValue after SetValue %r" % r)
        r = call(t, {"Label": "t", "Request": "RemoveValue", "Domain": "test.domain",
                     "Key": "K"})
        r = call(t, {"Label": "t", "Request": "GetValue", "Domain": "test.domain", "Key": "K"})
        check(r.get("Error") == "MissingValue", "GetValue after RemoveValue %r" % r)
        r = call(t, {"Label": "t", "Request": "StartService", "Service": "com.apple.nope"})
        check(r.get("Error") == "InvalidService", "unknown service %r" % r)
        r = call(t, {"Label": "t", "Request": "StartService",
                     "Service": "com.apple.iosdiagnostics.relay"})
        port = r.get("Port")
        check(isinstance(port, int) and port > 0 and r.get("EnableServiceSSL") is True,
              "fallback diagnostics name %r" % r)
        r = call(t, {"Label": "t", "Request": "StartService",
                     "Service": "com.apple.mobile.notification_proxy"})
        np_port = r.get("Port")
        check(np_port and r.get("EnableServiceSSL") is False, "notification_proxy %r" % r)
        t.close()
        # notification_proxy: Observe/Post get no reply, Shutdown gets ProxyDeath
        n, rc = connect(sim, devid, np_port)
        check(n is not None, "notification_proxy port refused (%s)" % rc)
        n.sendall(frame({"Command": "ObserveNotification",
                         "Name": "com.apple.mobile.backup.domain_changed"}))
        n.sendall(frame({"Command": "PostNotification",
                         "Name": "com.apple.itunes-mobdev.syncWillStart"}))
        n.sendall(frame({"Command": "Shutdown"}))
        r = read_frame(n)
        check(r == {"Command": "ProxyDeath"}, "np Shutdown answered %r" % r)
        check(closed_by_peer(n), "np stays open after ProxyDeath")
        n.close()
        # the reserved port takes one connection, then it is gone
        d, rc = connect(sim, devid, port)
        check(d is not None, "reserved port %d refused (%s)" % (port, rc))
        d.close()
        _, rc = connect(sim, devid, port)
        check(rc == 3, "port %d connectable twice (Result %s)" % (port, rc))
        _, rc = connect(sim, devid, 1234)
        check(rc == 3, "unreserved port gave Result %s" % rc)

        # frames that are not plists, an oversized length, a libplist-aborting binary plist
        seed = open(os.path.join(SRC, "tests", "fuzz", "corpus", "fuzz_lockdown",
                                 "crash-key-with-nul"), "rb").read()[1:]
        for name, junk in (("garbage", b"\x00\x00\x00\x0anotaplist!"),
                           ("huge length", b"\xff\xff\xff\xff"),
                           ("zero length", b"\x00\x00\x00\x00"),
                           ("bplist key with NUL", seed)):
            s, _ = connect(sim, devid)
            s.sendall(junk)
            if name != "bplist key with NUL":
                check(closed_by_peer(s), "%s: connection left open" % name)
            s.close()
            still_serving(sim, name)

        # a flood of lockdown connections: the per-device cap holds, nothing breaks
        socks = []
        for _ in range(80):
            s, rc = connect(sim, devid)
            if s:
                socks.append(s)
        served = 0
        for s in socks:
            try:
                s.sendall(frame({"Label": "t", "Request": "QueryType"}))
                read_frame(s)
                served += 1
            except (EOFError, OSError):
                pass
        check(served == 64 and len(socks) == 64, "%d of %d connections served (cap 64)" % (served, len(socks)))
        for s in socks:
            s.close()
        still_serving(sim, "flood")
        j = sim.ctl({"op": "journal", "udid": P})["journal"]
        check(any(e["op"] == "SetValue" and e.get("domain") == "test.domain" for e in j),
              "journal lacks SetValue")
        check(any(e["op"] == "PostNotification" and
                  e.get("name") == "com.apple.itunes-mobdev.syncWillStart" for e in j),
              "journal lacks PostNotification")
    print("PASS")


if __name__ == "__main__":
    main()
