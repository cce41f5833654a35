#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Runs test-sim-session (the C API session life cycle) against cradle-sim, TLS and plaintext,
and checks the journal saw two sessions per run and the refused service.
usage: test_session.py CRADLE_SIM TEST_SESSION_BIN SOURCE_DIR
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, journal_has  # noqa: E402

SIMBIN, BIN, SRC = sys.argv[1:4]
SCN = os.path.join(SRC, "tests", "sim", "data", "device.json")
P = "00008030-001A2B3C4D5E6F70"

for mode, extra, want_ssl in (("tls", [], "1"), ("plaintext", ["--plaintext"], "0")):
    with Sim(SIMBIN, SCN, extra) as sim:
        r = sim.run([BIN, P, want_ssl], timeout=30)
        sys.stdout.write(r.stdout)
        check(r.returncode == 0, "%s: test-sim-session exit %d: %s" % (mode, r.returncode,
                                                                     r.stderr))
        j = sim.journal(P)
        n = len([e for e in j if e.get("op") == "StartSession"])
        check(n == 2, "%s: %d StartSession entries, want 2" % (mode, n))
        journal_has(j, "StartService", service="com.apple.no.such.service",
                    result="InvalidService")
print("PASS")
