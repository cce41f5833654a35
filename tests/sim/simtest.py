"""Helpers for cradle-sim tests (Debian's /usr/bin/python3, stdlib only).

    with SimProc(sim_bin, scenario) as sim:      # --listen 127.0.0.1:0, control in a temp dir
        sim.ctl({"op": "list"})                   # one control request -> reply dict
        hdr, reply = sim.mux({"MessageType": "ListDevices"}, tag=7)   # raw usbmuxd request
        subprocess.run(["idevice_id", "-l"], env=sim.env(), timeout=20)

Everything is bounded: start waits at most 20 s, every socket has a timeout, the process is
terminated (then killed) and the temp dir removed when the context ends.
"""
import json
import os
import plistlib
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def exc_failed(exc):
    return bool(exc) and exc[0] is not None and not issubclass(exc[0], SystemExit)


def normalize_udid(u):
    if len(u) == 24:
        return u[:8] + "-" + u[8:]
    return u


class SimProc:
    def __init__(self, sim_bin, scenario=None, extra=()):
        self.tmp = tempfile.mkdtemp(prefix="cradle-simtest-")
        self.control = os.path.join(self.tmp, "control")
        argv = [sim_bin, "--listen", "127.0.0.1:0", "--control", "unix:" + self.control]
        if scenario:
            argv += ["--scenario", scenario]
        argv += list(extra)
        self.argv = argv
        self.out = open(os.path.join(self.tmp, "out"), "wb")
        self.err_path = os.path.join(self.tmp, "err")
        self.err = open(self.err_path, "wb")
        self.proc = None
        self.addr = None
        self.port = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=self.err)
        deadline = time.monotonic() + 20
        line = b""
        os.set_blocking(self.proc.stdout.fileno(), False)
        while time.monotonic() < deadline:
            chunk = self.proc.stdout.read()
            if chunk:
                line += chunk
                if b"\n" in line:
                    break
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.t_ready = time.monotonic()
        first = line.split(b"\n")[0].decode()
        if not first.startswith("cradle-sim: ready "):
            self.__exit__()
            fail("cradle-sim not ready: %r, stderr: %s" % (first, self.stderr()))
        fields = dict(f.split("=", 1) for f in first.split()[2:])
        self.addr = fields["usbmuxd"].split(",")[0]
        self.port = int(self.addr.rsplit(":", 1)[1])
        check(fields["control"] == self.control, "ready line names the control socket")
        return self

    def stderr(self):
        try:
            with open(self.err_path, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        rc = self.proc.returncode if self.proc else 0
        text = self.stderr()
        self.out.close()
        self.err.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        # A clean SIGTERM exit is 0; anything else (a sanitizer report, a crash) fails the test.
        if rc != 0 and not exc_failed(exc):
            fail("cradle-sim exited %s: %s" % (rc, text[-4000:]))

    def env(self):
        e = os.environ.copy()
        e["USBMUXD_SOCKET_ADDRESS"] = self.addr
        return e

    def ctl_raw(self, line, timeout=10):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.control)
        f = s.makefile("rwb")
        f.write(line + b"\n")
        f.flush()
        reply = f.readline()
        s.close()
        return json.loads(reply)

    def ctl(self, req):
        return self.ctl_raw(json.dumps(req).encode())

    def mux_connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return s

    def mux(self, msg, tag=1, sock=None, raw=None):
        """Sends one plist request; returns (header tuple, reply dict)."""
        own = sock is None
        s = sock or self.mux_connect()
        try:
            send_request(s, msg, tag, raw)
            return read_message(s)
        finally:
            if own:
                s.close()

    def idevice_ids(self):
        r = subprocess.run(["idevice_id", "-l"], env=self.env(), capture_output=True,
                           timeout=30)
        check(r.returncode == 0, "idevice_id -l failed: %r" % r.stderr)
        return sorted(l for l in r.stdout.decode().split("\n") if l)


def send_request(s, msg, tag=1, raw=None, version=1, message=8):
    body = raw if raw is not None else plistlib.dumps(msg, fmt=plistlib.FMT_XML)
    s.sendall(struct.pack("<IIII", 16 + len(body), version, message, tag) + body)


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(buf), n))
        buf += chunk
    return buf


def read_message(s):
    hdr = struct.unpack("<IIII", recv_exact(s, 16))
    body = recv_exact(s, hdr[0] - 16)
    check(body.startswith(b"<?xml"), "mux replies are XML plists, got %r" % body[:20])
    return hdr, plistlib.loads(body)
