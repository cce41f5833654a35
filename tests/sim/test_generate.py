#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""--generate 500: all 500 phones are listed by Debian's idevice_id (through the cached
ListDevices reply), UDIDs are unique and well-formed, the control list agrees, a detach shows in
the next listing, the same seed gives the same set and generated devices stack on top of a
scenario.
usage: test_generate.py CRADLE_SIM SCENARIO
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check  # noqa: E402

SIMBIN, SCN = sys.argv[1:3]

with Sim(SIMBIN, None, ["--generate", "500", "--seed", "7"]) as sim:
    a = sim.idevice_ids()
    check(len(a) == 500, "%d devices listed" % len(a))
    check(len(set(a)) == 500, "duplicate UDIDs")
    bad = [u for u in a if not re.fullmatch(r"[0-9A-F]{8}-[0-9A-F]{16}", u)]
    check(not bad, "malformed UDID: %s" % bad[:1])
    d = list(sim.devices().values())
    ids = [x["device_id"] for x in d]
    check(len(d) == 500 and all(x["attached"] for x in d), "500 attached")
    check(len(set(ids)) == 500 and min(ids) > 0, "unique ids > 0")
    states = {x["pairing"] for x in d}
    check({"paired", "unpaired", "trust_pending", "denied", "invalid_host"} <= states,
          "pairing states %r" % states)
    check(sorted(x["udid"] for x in d) == a, "control list == idevice_id")
    # a detach is reflected in the next listing (cache invalidated)
    sim.ctl_ok({"op": "detach", "udid": a[0]})
    a2 = sim.idevice_ids()
    check(len(a2) == 499 and a[0] not in a2, "detach not listed")
    print("ok: --generate 500")

with Sim(SIMBIN, None, ["--generate", "500", "--seed", "7"]) as sim:
    check(sim.idevice_ids() == a, "same seed, different devices")
    print("ok: same seed, same devices")

with Sim(SIMBIN, SCN, ["--generate", "20", "--seed", "8"]) as sim:
    c = sim.idevice_ids()
    check(len(c) == 25, "scenario + generate: %d" % len(c))
    check("00008110-001A2B3C4D5E0001" in c, "scenario device missing")
    check(not set(c) & set(a), "seed 8 repeats seed 7 UDIDs")
    print("ok: scenario + generate")
print("PASS")
