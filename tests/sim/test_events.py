#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Runs test-sim-events (libimobiledevice's event API, its own event thread) against a fresh
cradle-sim with basic.json (5 attached devices); the simulator must exit cleanly after.
usage: test_events.py CRADLE_SIM TEST_EVENTS SCENARIO
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check  # noqa: E402

SIMBIN, BIN, SCN = sys.argv[1:4]
with Sim(SIMBIN, SCN) as sim:
    r = sim.run([BIN, sim.control, "5", "00008110-001A2B3C4D5E0001"], timeout=40)
    sys.stdout.write(r.stdout)
    check(r.returncode == 0, "test-sim-events exit %d: %s" % (r.returncode, r.stderr))
print("PASS")
