# SPDX-License-Identifier: MIT
"""make_seeds: writes seed inputs for fuzz_mobilebackup2 (the host's side of real conversations,
in the harness's input format) into tests/fuzz/corpus/fuzz_mobilebackup2/.
usage: /usr/bin/python3 make_seeds.py OUTDIR"""
import os
import plistlib
import struct
import sys

U = "00008030-001A2B3C4D5E0B01"
EMPTY = "___EmptyParameterString___"


def frame(obj, fmt=plistlib.FMT_BINARY):
    b = plistlib.dumps(obj, fmt=fmt)
    return struct.pack(">I", len(b)) + b


def hello():
    return (frame(["DLMessageVersionExchange", "DLVersionsOk", 400]) +
            frame(["DLMessageProcessMessage",
                   {"MessageName": "Hello", "SupportedProtocolVersions": [2.0, 2.1]}]))


def req(name, **extra):
    d = {"MessageName": name, "TargetIdentifier": U, "SourceIdentifier": U}
    d.update(extra)
    return frame(["DLMessageProcessMessage", d])


def status(code=0, item3=None):
    return frame(["DLMessageStatusResponse", code, EMPTY, item3 if item3 is not None else {}])


def stream(found):
    p = (U + "/Status.plist").encode()
    s = struct.pack(">I", len(p)) + p
    if found:
        data = plistlib.dumps({"SnapshotState": "finished"}, fmt=plistlib.FMT_BINARY)
        s += struct.pack(">I", len(data) + 1) + b"\x0c" + data + struct.pack(">I", 1) + b"\x00"
    else:
        err = b"No such file or directory"
        s += struct.pack(">I", len(err) + 1) + b"\x06" + err
    return s + struct.pack(">I", 0)


def encode(script, size, *messages):
    """Each message arrives as its own read (u16 BE chunk length, then the bytes)."""
    out = bytes([script, size])
    for m in messages:
        while m:
            out += struct.pack(">H", len(m[:65535])) + m[:65535]
            m = m[65535:]
    return out


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    multi = status(2**64 - 13, {U + "/Status.plist": {"DLFileErrorCode": 2**64 - 6}})
    seeds = {
        "backup-full": encode(0x02, 3, hello(), req("Backup"), stream(False), multi,
                              status(0, 10**12), *[status() for _ in range(100)],
                              frame(["DLMessageDisconnect", EMPTY])),
        "backup-two-batches": encode(0x07, 2, hello(), req("Backup"), stream(False), multi,
                                     status(0, 10**12), *[status() for _ in range(100)]),
        "backup-incremental": encode(0x24, 200, hello(), req("Backup"), stream(True), status(),
                                     status(0, 10**12), *[status() for _ in range(100)]),
        "backup-nospace": encode(0x07, 9, hello(), req("Backup", Options={"ForceFullBackup": True}),
                                 stream(False), multi, status(0, 1)),
        "backup-208": encode(0x0b, 1, hello(), req("Backup")),
        "backup-purge": encode(0x11, 1, hello(), req("Backup"), status(2**64 - 1), stream(False),
                               status(), status(0, 10**12), *[status() for _ in range(100)]),
        "cloud-on": encode(0, 0, hello(), req("EnableCloudBackup", CloudBackupState=True),
                           frame(["DLMessageDisconnect", EMPTY])),
        "cloud-error-xml": encode(0x40, 0, frame(["DLMessageVersionExchange", "DLVersionsOk", 400],
                                                 plistlib.FMT_XML),
                                  frame(["DLMessageProcessMessage",
                                         {"MessageName": "Hello",
                                          "SupportedProtocolVersions": [2.0, 2.1]}],
                                        plistlib.FMT_XML),
                                  req("EnableCloudBackup", CloudBackupState=False), req("Info")),
        "bad-frame": encode(0, 0, hello(), b"\x00\x00\x00\x05junk!"),
    }
    for name, data in seeds.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1])
