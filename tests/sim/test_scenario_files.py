#!/usr/bin/python3
"""Every checked-in scenario (sim/scenarios/*.json, tests/sim/data/*.json) is valid against
sim/scenario.schema.json (draft 2020-12) and is served by cradle-sim: idevice_id lists exactly
its attached devices. The schema also refuses what cradle-sim refuses (a few samples)."""
import glob
import json
import os
import sys

import jsonschema

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, normalize_udid  # noqa: E402

sim_bin, src = sys.argv[1], sys.argv[2]
schema = json.load(open(os.path.join(src, "sim", "scenario.schema.json")))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)

files = sorted(glob.glob(os.path.join(src, "sim", "scenarios", "*.json")) +
               glob.glob(os.path.join(src, "tests", "sim", "data", "*.json")))
check(any(f.endswith("demo.json") for f in files), "demo.json exists")
for f in files:
    doc = json.load(open(f))
    errors = sorted(v.iter_errors(doc), key=lambda e: list(e.path))
    check(not errors, "%s: %s" % (f, "; ".join("%s: %s" % (list(e.path), e.message)
                                               for e in errors[:3])))
    # Devices with a timeline may attach or detach at any moment: left out of the comparison.
    moving = {normalize_udid(d["udid"]) for d in doc["devices"] if d.get("timeline")}
    want = sorted(normalize_udid(d["udid"]) for d in doc["devices"]
                  if d.get("attached", True) and normalize_udid(d["udid"]) not in moving)
    with Sim(sim_bin, f) as sim:
        got = [u for u in sim.idevice_ids() if u not in moving]
        check(got == want, "%s: idevice_id lists %r, expected %r" % (f, got, want))
    print("ok %s (%d devices)" % (os.path.relpath(f, src), len(doc["devices"])))

demo = json.load(open(os.path.join(src, "sim", "scenarios", "demo.json")))
check(len(demo["devices"]) >= 20, "demo has about 24 phones")
states = {d.get("pairing", "paired") for d in demo["devices"]}
check(states == {"paired", "unpaired", "trust_pending", "denied", "invalid_host"},
      "demo covers every pairing state: %r" % states)

U = "00008110001A2B3C4D5E0001"
bad = [
    {"devices": [{"udid": U, "values": {"com.apple.mobile.backup":
                                        {"LastCloudBackupDate": "2025-01-01"}}}]},
    {"devices": [{"udid": "xyz"}]},
    {"devices": [{"udid": U, "pairing": "maybe"}]},
    {"devices": [{"udid": U, "colour": "red"}]},
    {"devices": [{"udid": U, "timeline": [{"at_ms": 1, "op": "explode"}]}]},
    {"devices": [{"udid": U, "values": {"com.apple.mobile.battery":
                                        {"ExternalConnected": "yes"}}}]},
]
for doc in bad:
    check(not v.is_valid(doc), "schema refuses %r" % doc)
print("ok")
