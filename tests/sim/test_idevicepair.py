#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""idevicepair (Debian 1.3.0) against cradle-sim, one phone per pairing state.

The exact messages and exit statuses of each state, pairing an unpaired phone (real key and
certificate generation from our DevicePublicKey, SavePairRecord into the simulator), a session
afterwards, healing a stale pairing by pairing again, and the Pair results in the journal.
usage: test_idevicepair.py CRADLE_SIM SOURCE_DIR
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, journal_has  # noqa: E402

SIMBIN, SRC = sys.argv[1:3]
SCN = os.path.join(SRC, "tests", "sim", "data", "device.json")
P = "00008030-001A2B3C4D5E6F70"
U = "00008030-000000000000AA01"
PEND = "00008030-000000000000AA02"
DENY = "00008030-000000000000AA03"
STALE = "00008030-000000000000AA04"

with Sim(SIMBIN, SCN) as sim:
    def expect(want_rc, text, *argv):
        r = sim.run(list(argv))
        out = r.stdout + r.stderr
        check(r.returncode == want_rc and text in out,
              "'%s' exited %d (want %d), output:\n%s(wanted '%s')" %
              (" ".join(argv), r.returncode, want_rc, out, text))
        print("ok: %s -> %d" % (" ".join(argv), r.returncode))

    expect(0, "SUCCESS: Validated pairing with device " + P, "idevicepair", "-u", P, "validate")
    expect(1, "Please accept the trust dialog on the screen of device %s, then attempt to pair "
           "again." % PEND, "idevicepair", "-u", PEND, "pair")
    expect(1, "Please accept the trust dialog on the screen of device " + PEND,
           "idevicepair", "-u", PEND, "validate")
    expect(1, "Device %s said that the user denied the trust dialog." % DENY,
           "idevicepair", "-u", DENY, "pair")
    expect(1, "said that the user denied the trust dialog", "idevicepair", "-u", DENY, "validate")
    expect(1, "ERROR: Device %s is not paired with this host" % STALE,
           "idevicepair", "-u", STALE, "validate")

    # unpaired: pair succeeds, then validate and a TLS session work with the saved record
    expect(0, "SUCCESS: Paired with device " + U, "idevicepair", "-u", U, "pair")
    expect(0, "SUCCESS: Validated pairing with device " + U, "idevicepair", "-u", U, "validate")
    r = sim.run(["ideviceinfo", "-u", U, "-k", "ProductVersion"])
    check(r.stdout.strip() == "17.1", "after pairing ProductVersion %r" % r.stdout)

    # stale: pairing again heals it, as tapping Trust again does on a phone
    expect(0, "SUCCESS: Paired with device " + STALE, "idevicepair", "-u", STALE, "pair")
    expect(0, "SUCCESS: Validated pairing with device " + STALE,
           "idevicepair", "-u", STALE, "validate")

    j = sim.journal(U)
    journal_has(j, "GetValue", domain="", key="DevicePublicKey")
    journal_has(j, "Pair", result="Success")
    journal_has(j, "StartSession", result="Success", ssl=True)
    j = sim.journal(PEND)
    journal_has(j, "Pair", result="PairingDialogResponsePending")
    journal_has(j, "Pair", want=False, result="Success")
    journal_has(sim.journal(DENY), "Pair", result="UserDeniedPairing")
    st = sim.devices()[U].get("pairing")
    check(st == "paired", "unpaired device is %r after Pair" % st)
    print("ok: unpaired device now reported paired")
print("PASS")
