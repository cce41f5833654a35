# SPDX-License-Identifier: MIT
"""plistcheck: compare what ideviceinfo -x printed with the scenario the simulator serves.

    import plistcheck
    plistcheck.domain_equal(scenario_path, udid, domain, xml_bytes)

Every key of values[domain] of the device in the scenario must be in the XML dict with an equal
value of the same type; fails the test otherwise. Journal checks are harness.Sim.expect_journal.
"""
import json
import plistlib

from harness import fail, normalize_udid


def domain_equal(scenario, udid, domain, data):
    with open(scenario) as f:
        sc = json.load(f)
    dev = [d for d in sc["devices"] if normalize_udid(d["udid"]) == udid]
    if not dev:
        fail("udid %s not in scenario" % udid)
    want = dev[0].get("values", {}).get(domain, {})
    if not data.strip():
        fail("empty output for domain %r" % domain)
    got = plistlib.loads(data)
    if not isinstance(got, dict):
        fail("domain %r: not a dict" % domain)
    if not want:
        fail("scenario has no values for domain %r (test bug)" % domain)
    for k, v in want.items():
        if k not in got:
            fail("domain %r: key %s missing" % (domain, k))
        if got[k] != v or type(got[k]) is not type(v):
            fail("domain %r: key %s = %r, want %r" % (domain, k, got[k], v))
    print("ok: domain %r: %d keys equal" % (domain, len(want)))
