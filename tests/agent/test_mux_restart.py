#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""usbmuxd restarts lose no hotplug and leak no socket (issue 8 item 10), with devmon (the
agent's code) against cradle-sim and Debian's libusbmuxd 2.0.2.

usage: test_mux_restart.py SIMBIN WATCHBIN SCENARIO

1. UNIX socket (production): the periodic resync is 1 h, so only the event connection (and
   the resync devmon makes when it is back) can report anything. Five times: usbmuxd stopped
   and started again at once, then a phone unplugged and plugged back: both events arrive
   every time. Before: the subscription stayed dead after a quick restart (libusbmuxd's inotify
   wait missed the new socket) and 4 of 5 cycles reported nothing.
2. TCP: 10 restarts lose no hotplug either.
In both parts the watcher holds as many sockets after the restarts as before (its one Listen
connection; /proc/PID/fd) and none in CLOSE_WAIT. Before (libusbmuxd 2.0.2's event thread,
which never closes the socket of an ended usbmuxd connection): 1 socket before, 15 to 18
after 10 TCP restarts.
CRADLE_MUX_RESTARTS=N runs N restarts in each part (by hand; see tests/reliability/README.md).
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, fail, wait_for  # noqa: E402

SIMBIN, WATCH, SCENARIO = sys.argv[1:4]
U = "00008110-000A00000000000%d"
ATTACHED = {U % i for i in range(1, 7)}
N = int(os.environ.get("CRADLE_MUX_RESTARTS") or 0)


class Watch:
    """devmon-watch: prints devmon's callbacks, one per line."""

    def __init__(self, sim, env, resync_ms):
        self.out = open(os.path.join(sim.tmp, "watch.out"), "w+")
        self.err = open(os.path.join(sim.tmp, "watch.err"), "w+")
        self.p = subprocess.Popen([WATCH, str(resync_ms)], env=env, stdout=self.out,
                                  stderr=self.err)

    def lines(self):
        self.out.flush()
        with open(self.out.name) as f:
            return [tuple(l.split()[:2]) for l in f.read().splitlines()
                    if len(l.split()) == 2]

    def events(self, kind):
        return [u for k, u in self.lines() if k == kind]

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            fail("devmon-watch did not exit on SIGTERM")
        if self.p.returncode != 0:
            fail("devmon-watch exited %d: %s" % (self.p.returncode, self.stderr()))

    def stderr(self):
        self.err.flush()
        with open(self.err.name) as f:
            return f.read()


class UnixSim(Sim):
    """cradle-sim serving usbmuxd on a UNIX socket too, and clients pointed at it, as a
    station's usbmuxd is (the harness's TCP listener stays unused)."""

    def __init__(self, sim_bin, scenario):
        super().__init__(sim_bin, scenario)
        self.sock = os.path.join(self.tmp, "usbmuxd")
        self.extra += ["--listen", "unix:" + self.sock]

    def env(self):
        e = super().env()
        e["USBMUXD_SOCKET_ADDRESS"] = "UNIX:" + self.sock
        return e


def sockets(pid):
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass
    return n


def settled(w, what):
    """Waits until every phone's last event is "attached" and no event came for 300 ms: the
    restart's own events (the resync when the connection ends may find usbmuxd gone and report
    every device detached, then attached again) are over, so a later event is a new one."""
    state = {"n": -1, "t": 0.0}

    def quiet():
        lines = w.lines()
        if len(lines) != state["n"]:
            state["n"], state["t"] = len(lines), time.monotonic()
            return False
        last = {}
        for kind, u in lines:
            last[u] = kind
        return (time.monotonic() - state["t"] >= 0.3 and
                all(last.get(u) == "attached" for u in ATTACHED))

    try:
        wait_for(quiet, 8, what=what)
    except TimeoutError:
        fail("%s: not settled; events %s\n%s" % (what, w.lines(), w.stderr()[-3000:]))


def close_wait(pid):
    """The process's TCP sockets in CLOSE_WAIT (usbmuxd hung up, the socket never closed)."""
    out = subprocess.run(["ss", "-tanpH", "state", "close-wait"], capture_output=True,
                         text=True).stdout
    return sum(1 for l in out.splitlines() if "pid=%d," % pid in l)


def quiet_sockets(w):
    """The watcher's sockets outside a resync (which holds one more for a moment)."""
    n = []
    for _ in range(6):
        time.sleep(0.05)
        n.append(sockets(w.p.pid))
    return min(n)


def no_leak(w, before, n, what):
    """The watcher's sockets are back to what it held before the restarts, none in CLOSE_WAIT
    (a resync in progress holds one more for a moment: waited out)."""
    try:
        wait_for(lambda: sockets(w.p.pid) <= before and close_wait(w.p.pid) == 0, 3,
                 what="%s: sockets back to %d" % (what, before))
    except TimeoutError:
        os.system("ss -xtanp | grep devmon-watch")
        fail("%s: %d sockets after %d restarts, %d before, %d in CLOSE_WAIT (leak)\n%s" %
             (what, sockets(w.p.pid), n, before, close_wait(w.p.pid), w.stderr()[-3000:]))
    print("%s: %d sockets before, %d after %d restarts, %d in CLOSE_WAIT" %
          (what, before, sockets(w.p.pid), n, close_wait(w.p.pid)))


def restart(sim):
    """Stop and start at once; returns the gap in ms."""
    t = time.monotonic()
    sim.proc.stop()
    sim.proc = None
    gap = (time.monotonic() - t) * 1000
    sim.start()
    return gap


def unix_part():
    sim = UnixSim(SIMBIN, SCENARIO)
    sim.start()
    w = Watch(sim, sim.env(), 3600000)
    try:
        wait_for(lambda: set(w.events("attached")) >= ATTACHED, 5, what="initial attach")
        before = quiet_sockets(w)
        for i in range(N or 5):
            gap = restart(sim)
            settled(w, "cycle %d: all attached again after the restart" % (i + 1))
            d0 = w.events("detached").count(U % 1)
            a0 = w.events("attached").count(U % 1)
            t0 = time.monotonic()
            if not sim.ctl({"op": "detach", "udid": U % 1})["ok"]:
                fail("detach failed")
            wait_for(lambda: w.events("detached").count(U % 1) > d0, 5,
                     what="cycle %d: the unplug reported" % (i + 1))
            t1 = time.monotonic()
            if not sim.ctl({"op": "attach", "udid": U % 1})["ok"]:
                fail("attach failed")
            wait_for(lambda: w.events("attached").count(U % 1) > a0, 5,
                     what="cycle %d: the replug reported" % (i + 1))
            print("cycle %d: restart gap %.0f ms, unplug seen after %.0f ms, replug after "
                  "%.0f ms" % (i + 1, gap, (t1 - t0) * 1000, (time.monotonic() - t1) * 1000))
        no_leak(w, before, N or 5, "unix")
        w.stop()
        w = None
    finally:
        if w:
            w.p.kill()
            w.p.wait()
        sim.stop()


def tcp_part():
    sim = Sim(SIMBIN, SCENARIO)
    sim.start()
    w = Watch(sim, sim.env(), 300)
    try:
        wait_for(lambda: set(w.events("attached")) >= ATTACHED, 5, what="initial attach")
        before = quiet_sockets(w)
        for i in range(N or 10):
            restart(sim)
            settled(w, "restart %d: all attached again" % (i + 1))
        no_leak(w, before, N or 10, "tcp")
        w.stop()
        w = None
    finally:
        if w:
            w.p.kill()
            w.p.wait()
        sim.stop()


unix_part()
tcp_part()
print("PASS")
