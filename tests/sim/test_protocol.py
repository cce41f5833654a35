# SPDX-License-Identifier: MIT
"""test_protocol: cradle-sim's mobilebackup2 from an independent host written here from the
protocol (docs/device-protocols.md, not libimobiledevice), on a raw socket in --plaintext mode: the
DeviceLink handshake, a whole backup with the raw upload stream parsed and checked byte by
byte, the answers to what idevicebackup2 never sends (no common version, an unsupported
request, too little free space -> 105), and abuse (garbage frames, a broken download stream, a
host that vanishes mid-upload). After each the simulator must still serve; Sim fails the
test if it does not exit cleanly (sanitizer reports included).

usage: test_protocol.py CRADLE_SIM SOURCE_DIR
"""
import hashlib
import os
import plistlib
import re
import socket
import struct
import subprocess
import sys

SRC = sys.argv[2]
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, recv_exact, wait_for  # noqa: E402

U = "00008030-001A2B3C4D5E0B01"  # scenario: file_count 12, file_size 70000
DATA = os.path.join(SRC, "tests", "sim", "data")
EMPTY = "___EmptyParameterString___"


def frame(obj, fmt=plistlib.FMT_BINARY):
    b = plistlib.dumps(obj, fmt=fmt)
    return struct.pack(">I", len(b)) + b


def read_frame(s):
    (n,) = struct.unpack(">I", recv_exact(s, 4))
    check(0 < n < 1 << 20, "frame length %d" % n)
    return plistlib.loads(recv_exact(s, n))


def u32(s):
    return struct.unpack(">I", recv_exact(s, 4))[0]


def connect(sim, devid, port):
    s = sim.mux_connect()
    _, reply = sim.mux({"MessageType": "Connect", "DeviceID": devid,
                        "PortNumber": socket.htons(port), "ProgName": "test_protocol"}, sock=s)
    check(reply.get("Number") == 0, "Connect to port %d: %r" % (port, reply))
    s.settimeout(10)
    return s


def lockdown_call(s, req):
    b = plistlib.dumps(req, fmt=plistlib.FMT_XML)
    s.sendall(struct.pack(">I", len(b)) + b)
    return read_frame(s)


def open_mb2(sim, devid, host_id):
    """StartSession (plaintext) + StartService mobilebackup2; returns the service socket."""
    ld = connect(sim, devid, 62078)
    r = lockdown_call(ld, {"Label": "t", "Request": "StartSession", "HostID": host_id,
                           "SystemBUID": "x"})
    check(r.get("EnableSessionSSL") is False, "plaintext StartSession %r" % r)
    r = lockdown_call(ld, {"Label": "t", "Request": "StartService",
                           "Service": "com.apple.mobilebackup2", "EscrowBag": b"bag"})
    check(isinstance(r.get("Port"), int) and not r.get("EnableServiceSSL"), "StartService %r" % r)
    ld.close()
    return connect(sim, devid, r["Port"])


def handshake(s):
    m = read_frame(s)
    check(m == ["DLMessageVersionExchange", 400, 0], "device speaks first: %r" % m)
    s.sendall(frame(["DLMessageVersionExchange", "DLVersionsOk", 400]))
    m = read_frame(s)
    check(m == ["DLMessageDeviceReady"], "DeviceReady: %r" % m)


def process(s, d):
    s.sendall(frame(["DLMessageProcessMessage", d]))


def hello(s, versions=(2.0, 2.1)):
    process(s, {"MessageName": "Hello", "SupportedProtocolVersions": list(versions)})
    m = read_frame(s)
    check(m[0] == "DLMessageProcessMessage" and m[1].get("MessageName") == "Response",
          "Hello answer %r" % m)
    return m[1]


def status(s, code=0, item3=None):
    s.sendall(frame(["DLMessageStatusResponse", code & 0xFFFFFFFFFFFFFFFF, EMPTY,
                     item3 if item3 is not None else {}]))


def answer_download(s, m):
    """Answers DLMessageDownloadFiles as a host without a previous backup (ENOENT)."""
    check(m[0] == "DLMessageDownloadFiles" and m[1] == [U + "/Status.plist"],
          "DownloadFiles %r" % m)
    err = b"No such file or directory"
    p = m[1][0].encode()
    s.sendall(struct.pack(">I", len(p)) + p + struct.pack(">I", len(err) + 1) + b"\x06" + err +
              struct.pack(">I", 0))
    status(s, -13, {m[1][0]: {"DLFileErrorCode": (-6) & 0xFFFFFFFFFFFFFFFF,
                              "DLFileErrorString": err.decode()}})


def read_upload(s):
    """Parses one raw upload stream; returns {path: bytes}."""
    files = {}
    while True:
        n = u32(s)
        if n == 0:
            return files
        check(n <= 4096, "device name length %d" % n)
        recv_exact(s, n)
        n = u32(s)
        check(0 < n <= 4096, "path length %d" % n)
        path = recv_exact(s, n).decode()
        data = b""
        while True:
            n = u32(s)
            check(n >= 1, "block length 0 inside %s" % path)
            code = recv_exact(s, 1)[0]
            body = recv_exact(s, n - 1)
            if code == 0x0C:
                data += body
                continue
            check(code == 0x00 and n == 1, "%s ends with code %#x %r" % (path, code, body))
            break
        check(path not in files, "%s uploaded twice" % path)
        files[path] = data


def still_serving(sim, what):
    r = subprocess.run(["ideviceinfo", "-u", U, "-k", "ProductType"], env=sim.env(),
                       capture_output=True, timeout=30)
    check(r.returncode == 0 and r.stdout.strip() == b"iPhone12,8",
          "after %s: ideviceinfo %d %r %r" % (what, r.returncode, r.stdout, r.stderr))


def closed_by_peer(s):
    try:
        s.settimeout(5)
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def journal(sim):
    return sim.ctl({"op": "journal", "udid": U})["journal"]


def full_backup(sim, devid, host_id):
    s = open_mb2(sim, devid, host_id)
    handshake(s)
    r = hello(s)
    check(r.get("ErrorCode") == 0 and r.get("ProtocolVersion") == 2.1, "Hello %r" % r)
    process(s, {"MessageName": "Backup", "TargetIdentifier": U, "SourceIdentifier": U})
    answer_download(s, read_frame(s))
    m = read_frame(s)
    check(m[0] == "DLMessageGetFreeDiskSpace", "expected GetFreeDiskSpace, got %r" % m)
    status(s, 0, 10**12)
    dirs, files, announced = set(), {}, 0
    while True:
        m = read_frame(s)
        if m[0] == "DLMessageCreateDirectory":
            check(re.fullmatch(re.escape(U) + "/[0-9a-f]{2}", m[1]), "directory %r" % m[1])
            dirs.add(m[1])
            status(s)
        elif m[0] == "DLMessageUploadFiles":
            check(isinstance(m[2], float) and 0 < m[2] <= 100, "progress %r" % m[2])
            got = read_upload(s)
            size = sum(len(v) for v in got.values())
            check(m[3] == size, "UploadFiles announced %r bytes, stream had %d" % (m[3], size))
            announced += m[3]
            files.update(got)
            status(s)
        elif m[0] == "DLMessageProcessMessage":
            check(m[1] == {"MessageName": "Response", "ErrorCode": 0}, "final %r" % m)
            break
        else:
            check(False, "unexpected %r" % m)
    data_re = re.escape(U) + "/[0-9a-f]{2}/[0-9a-f]{40}"
    data = {p: v for p, v in files.items() if re.fullmatch(data_re, p)}
    check(len(data) == 12 and all(len(v) == 70000 for v in data.values()),
          "%d data files, sizes %r" % (len(data), sorted({len(v) for v in data.values()})))
    check({p.rsplit("/", 1)[0] for p in data} <= dirs, "a data file outside a created directory")
    check(len({hashlib.sha256(v).digest() for v in data.values()}) == 12, "data files not distinct")
    meta = set(files) - set(data)
    check(meta == {U + "/Status.plist", U + "/Manifest.plist", U + "/Manifest.db"},
          "other files %r" % meta)
    st = plistlib.loads(files[U + "/Status.plist"])
    check(st.get("SnapshotState") == "finished" and st.get("IsFullBackup") is True,
          "Status.plist %r" % st)
    s.sendall(frame(["DLMessageDisconnect", EMPTY]))
    check(closed_by_peer(s), "Disconnect did not close")
    s.close()
    j = journal(sim)
    check(any(e["op"] == "backup_finished" and e.get("ok") is True and e.get("files") == 15
              for e in j), "journal %r" % j)
    print("ok: full backup by an independent host: %d bytes, %d directories" % (announced, len(dirs)))


def refusals(sim, devid, host_id):
    s = open_mb2(sim, devid, host_id)
    handshake(s)
    r = hello(s, (1.0,))
    check(r.get("ErrorCode") == 1, "no common version answered %r" % r)
    r = hello(s)
    check(r.get("ErrorCode") == 0, "Hello after a refused one %r" % r)
    process(s, {"MessageName": "Info", "TargetIdentifier": U, "SourceIdentifier": U})
    m = read_frame(s)
    check(m[1].get("ErrorCode") == 1000 and m[1].get("ErrorDescription"), "Info %r" % m)
    # too little free space on the host: MBErrorDomain 105, the connection stays usable
    process(s, {"MessageName": "Backup", "TargetIdentifier": U, "SourceIdentifier": U})
    answer_download(s, read_frame(s))
    check(read_frame(s)[0] == "DLMessageGetFreeDiskSpace", "GetFreeDiskSpace expected")
    status(s, 0, 1)
    m = read_frame(s)
    check(m[1].get("ErrorCode") == 105 and "disk space" in m[1].get("ErrorDescription", ""),
          "no space answered %r" % m)
    process(s, {"MessageName": "EnableCloudBackup", "TargetIdentifier": U,
                "SourceIdentifier": U, "CloudBackupState": True})
    m = read_frame(s)
    check(m[1].get("ErrorCode") == 0, "EnableCloudBackup after a failed backup %r" % m)
    s.sendall(frame(["DLMessageDisconnect", EMPTY]))
    check(closed_by_peer(s), "Disconnect did not close")
    j = journal(sim)
    check(any(e["op"] == "backup_finished" and e.get("error_code") == 105 for e in j),
          "journal lacks the 105 failure: %r" % j)
    print("ok: no common version, unsupported request, 105 insufficient space")


def abuse(sim, devid, host_id):
    # garbage instead of DLVersionsOk; a non-array frame; a broken raw download stream
    cases = {
        "not a plist": lambda s: s.sendall(b"\x00\x00\x00\x0anotaplist!"),
        "wrong reply to VersionExchange": lambda s: s.sendall(frame(["DLMessageDeviceReady"])),
        "dict instead of array": lambda s: (handshake(s), s.sendall(frame({"a": 1}))),
        "bad stream code": lambda s: broken_stream(s),
        "huge length": lambda s: s.sendall(b"\xff\xff\xff\xff"),
    }
    for name, fn in cases.items():
        s = open_mb2(sim, devid, host_id)
        if name in ("not a plist", "wrong reply to VersionExchange", "huge length"):
            read_frame(s)  # the device's VersionExchange
        fn(s)
        check(closed_by_peer(s), "%s: connection left open" % name)
        s.close()
        still_serving(sim, name)
    # a host that vanishes in the middle of the upload
    s = open_mb2(sim, devid, host_id)
    handshake(s)
    hello(s)
    journal(sim)
    process(s, {"MessageName": "Backup", "TargetIdentifier": U, "SourceIdentifier": U})
    answer_download(s, read_frame(s))
    read_frame(s)
    status(s, 0, 10**12)
    while read_frame(s)[0] == "DLMessageCreateDirectory":
        status(s)
    recv_exact(s, 1000)
    s.close()
    j = []
    try:
        wait_for(lambda: j.extend(journal(sim)) or any(e["op"] == "backup_finished" for e in j),
                 5, what="backup_finished after the host went away")
    except TimeoutError:
        pass  # the check below shows the journal
    check(any(e["op"] == "backup_finished" and e.get("ok") is False and e.get("error_code") == -1
              for e in j), "host gone mid-upload: journal %r" % j)
    still_serving(sim, "host gone mid-upload")
    print("ok: bad input closes the connection, the simulator keeps serving")


def broken_stream(s):
    handshake(s)
    hello(s)
    process(s, {"MessageName": "Backup", "TargetIdentifier": U, "SourceIdentifier": U})
    m = read_frame(s)
    check(m[0] == "DLMessageDownloadFiles", "DownloadFiles %r" % m)
    p = m[1][0].encode()
    s.sendall(struct.pack(">I", len(p)) + p + struct.pack(">I", 3) + b"\x42ab")


def main():
    with Sim(sys.argv[1], os.path.join(DATA, "backup.json"), ["--plaintext"]) as sim:
        devs = {d["udid"]: d for d in sim.ctl({"op": "list"})["devices"]}
        devid = devs[U]["device_id"]
        _, rec = sim.mux({"MessageType": "ReadPairRecord", "PairRecordID": U})
        host_id = plistlib.loads(rec["PairRecordData"])["HostID"]
        full_backup(sim, devid, host_id)
        refusals(sim, devid, host_id)
        abuse(sim, devid, host_id)
    print("PASS")


if __name__ == "__main__":
    main()
