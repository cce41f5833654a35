#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""devmon against cradle-sim in TCP mode (its own usbmuxd Listen connection).

usage: test_devmon.py SIMBIN WATCHBIN SCENARIO

- the attached devices are reported once each at start;
- detach / attach on the control socket are seen within 2 s, exactly once each;
- the resync is long (30 s) in the first part, so those come from usbmuxd events;
- the simulator is stopped (everything reported detached, usbmuxd absence is no crash) and
  restarted on the same port (everything reported attached again) within a few seconds;
- the watcher exits 0 on SIGTERM.
"""
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, fail, holds, wait_for  # noqa: E402

SIMBIN, WATCH, SCENARIO = sys.argv[1:4]
U = "00008110-000A00000000000%d"
ATTACHED = {U % i for i in range(1, 7)}


class Watch:
    def __init__(self, env, resync_ms):
        self.out = open(os.path.join(sim.tmp, "watch.out"), "w+")
        self.p = subprocess.Popen([WATCH, str(resync_ms)], env=env, stdout=self.out,
                                  stderr=subprocess.PIPE)

    def lines(self):
        self.out.flush()
        with open(self.out.name) as f:
            return [l.split() for l in f.read().splitlines() if l.strip()]

    def events(self, kind):
        return [u for k, *rest in self.lines() for u in rest if k == kind]

    def stop(self):
        self.p.terminate()
        try:
            _, err = self.p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            fail("devmon-watch did not exit on SIGTERM")
        if self.p.returncode != 0:
            fail("devmon-watch exited %d: %s\nits events: %s" % (self.p.returncode, err.decode(),
                                                                  self.lines()))


def expect(cond, msg):
    if not cond:
        fail(msg)


sim = Sim(SIMBIN, SCENARIO)
sim.start()
w = None
try:
    # part 1: events only (resync every 30 s, after the initial one)
    w = Watch(sim.env(), 30000)
    wait_for(lambda: set(w.events("attached")) >= ATTACHED, 5, what="initial attach")
    holds(lambda: sorted(w.events("attached")) == sorted(ATTACHED), 0.3,
          what="initial attach exactly once each: %s" % w.events("attached"))

    t0 = time.monotonic()
    expect(sim.ctl({"op": "detach", "udid": U % 1})["ok"], "detach failed")
    wait_for(lambda: U % 1 in w.events("detached"), 2, what="detach event within 2 s")
    t1 = time.monotonic()
    expect(sim.ctl({"op": "attach", "udid": U % 1})["ok"], "attach failed")
    wait_for(lambda: w.events("attached").count(U % 1) == 2, 2, what="attach within 2 s")
    t2 = time.monotonic()
    print("detach seen after %.0f ms, attach after %.0f ms" % ((t1 - t0) * 1000,
                                                              (t2 - t1) * 1000))
    holds(lambda: w.events("detached") == [U % 1], 0.3,
          what="no duplicate detach: %s" % w.events("detached"))
    w.stop()
    w = None

    # part 2: simulator restart on the same port, resync every 500 ms
    w = Watch(sim.env(), 500)
    wait_for(lambda: set(w.events("attached")) >= ATTACHED, 5, what="attach (part 2)")
    sim.stop()
    wait_for(lambda: set(w.events("detached")) >= ATTACHED, 5, what="all detached after stop")
    expect(w.p.poll() is None, "devmon-watch died without usbmuxd")
    holds(lambda: w.p.poll() is None, 1.0, what="devmon-watch idles without usbmuxd")
    sim.start()
    wait_for(lambda: all(w.events("attached").count(u) == 2 for u in ATTACHED), 5,
             what="all re-attached after restart")
    # and events work again after the restart
    expect(sim.ctl({"op": "detach", "udid": U % 2})["ok"], "detach failed")
    wait_for(lambda: U % 2 in w.events("detached")[len(ATTACHED):], 2,
             what="detach after restart within 2 s")
    w.stop()
    w = None
finally:
    if w:
        w.p.kill()
        w.p.wait()
    sim.stop()
    shutil.rmtree(sim.tmp, ignore_errors=True)
print("PASS")
