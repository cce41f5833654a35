#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A night on the cart (sim/scenarios/night.json, made by scripts/night-scenario).

- the checked-in file is the generator's output with its defaults, valid against the schema;
- the ground truth (`expect`) agrees with the timeline: every failing phone's evidence is a
  backupd line of its timeline that matches its cause's default patterns (docs/diagnosis.md)
  and no other cause's; phones that never try have no backupd line; about 48 phones in every
  outcome;
- played at time_scale 1200 (8 simulated hours in 24 s) through real clients: the latest
  failure line reaches an idevicesyslog stream opened at start-up, the latest backup posts
  domain_changed to an np observer, and at the end every phone is where `expect` says
  (LastCloudBackupDate at the simulated time of its backup, unplugged phones gone, power lost,
  iCloud Backup switched off).
usage: test_night.py CRADLE_SIM TEST_NP SOURCE_DIR
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import jsonschema

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, fail, normalize_udid, wait_for  # noqa: E402

SIMBIN, NPBIN, SRC = sys.argv[1:4]
NIGHT = os.path.join(SRC, "sim", "scenarios", "night.json")
GEN = os.path.join(SRC, "scripts", "night-scenario")
SCALE = 1200
MAC_EPOCH = 978307200
NAME = "com.apple.mobile.backup.domain_changed"

doc = json.load(open(NIGHT))
gen = json.loads(subprocess.run([GEN], check=True, capture_output=True, text=True).stdout)
check(doc == gen, "sim/scenarios/night.json differs from scripts/night-scenario's output: "
      "regenerate it (scripts/night-scenario > sim/scenarios/night.json)")
schema = json.load(open(os.path.join(SRC, "sim", "scenario.schema.json")))
errors = list(jsonschema.Draft202012Validator(schema).iter_errors(doc))
check(not errors, "night.json: %s" % [e.message for e in errors[:3]])
print("ok: night.json is the generator's output and valid")

# the agent's default patterns, from the table in docs/diagnosis.md
PATTERNS = {}
CAUSE_OF = {"pattern_storage_full": "icloud_storage_full", "pattern_network":
            "network_unavailable", "pattern_apple_id": "apple_id_problem"}
for line in open(os.path.join(SRC, "docs", "diagnosis.md")):
    m = re.match(r"\| `(pattern_\w+)` \| (.*) \|$", line.strip())
    if m and m.group(1) in CAUSE_OF:
        PATTERNS[CAUSE_OF[m.group(1)]] = re.findall(r"`([^`]+)`", m.group(2))
check(len(PATTERNS) == 3 and all(PATTERNS.values()), "patterns in diagnosis.md: %r" % PATTERNS)


def causes_of(text):
    return {c for c, pats in PATTERNS.items() if any(p.lower() in text.lower() for p in pats)}


devs = doc["devices"]
check(40 <= len(devs) <= 56, "about 48 phones: %d" % len(devs))
outcomes = {}
for d in devs:
    e = d["expect"]
    outcomes[e["outcome"]] = outcomes.get(e["outcome"], 0) + 1
    backupd = [ev for ev in d["timeline"] if ev["op"] == "syslog" and
               ev.get("process") == "backupd"]
    if e["outcome"] in ("no_attempt", "backup_off", "power_lost") or \
            (e["outcome"] == "unplugged" and not e["scored"]):
        check(not backupd, "%s (%s) has backupd lines" % (d["udid"], e["outcome"]))
    if e["cause"] in PATTERNS or e["cause"] == "backup_attempt_failed":
        lines = [ev["message"] for ev in backupd if ev["message"] == e["evidence"]]
        check(lines, "%s: evidence %r not among its backupd lines" % (d["udid"], e["evidence"]))
        want = {e["cause"]} if e["cause"] in PATTERNS else set()
        check(causes_of(e["evidence"]) == want, "%s: %r matches %r, want %r" %
              (d["udid"], e["evidence"], causes_of(e["evidence"]), want))
    if e["outcome"] == "backed_up":
        sets = [ev for ev in d["timeline"] if ev["op"] == "set" and
                ev["key"] == "LastCloudBackupDate"]
        check(len(sets) == 1 and sets[0]["at_ms"] == e["backup_at_ms"] and
              sets[0]["value"] == {"$now": 0}, "%s: backup set %r" % (d["udid"], sets))
        check(not e["stale_at_end"] and e["cause"] is None, "%s: fresh" % d["udid"])
    if e["scored"] and e["stale_at_end"]:
        check(e["cause"], "%s: a scored stale phone needs a cause" % d["udid"])
check(set(outcomes) == {"backed_up", "failed", "no_attempt", "backup_off", "power_lost",
                        "unplugged"}, "every outcome: %r" % outcomes)
check({d["expect"]["cause"] for d in devs} >= {
    "icloud_storage_full", "network_unavailable", "apple_id_problem", "no_backup_attempt",
    "backup_attempt_failed"}, "every failure cause")
print("ok: ground truth agrees with the timeline: %r" % outcomes)

# play the night fast
fast = dict(doc, time_scale=SCALE)
end_ms = max(ev["at_ms"] for d in devs for ev in d["timeline"])
fails = [d for d in devs if d["expect"]["outcome"] == "failed" and
         d["expect"]["cause"] in PATTERNS and d["attached"]]
F = max(fails, key=lambda d: d["expect"]["attempt_at_ms"])
B = max((d for d in devs if d["expect"]["outcome"] == "backed_up" and d["attached"]),
        key=lambda d: d["expect"]["backup_at_ms"])
check(F["expect"]["attempt_at_ms"] / SCALE > 3000 and B["expect"]["backup_at_ms"] / SCALE > 3000,
      "the chosen phones' events come late enough for the clients to be ready")
fu, bu = normalize_udid(F["udid"]), normalize_udid(B["udid"])

fd, path = tempfile.mkstemp(prefix="cradle-night-", suffix=".json")
with os.fdopen(fd, "w") as f:
    json.dump(fast, f)
try:
    with Sim(SIMBIN, path) as sim:
        start_mac = sim.ctl_ok({"op": "clock"})["now_mac"] - \
            (time.monotonic() - sim.t_ready) * SCALE
        slog, nplog = os.path.join(sim.tmp, "syslog"), os.path.join(sim.tmp, "np")
        with open(slog, "wb") as o1, open(nplog, "wb") as o2:
            ps = subprocess.Popen(["idevicesyslog", "-u", fu], env=sim.env(), stdout=o1,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            pn = subprocess.Popen([NPBIN, bu, NAME, "60"], env=sim.env(), stdout=o2,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def text(p):
            with open(p, errors="replace") as f:
                return f.read()
        try:
            wait_for(lambda: "observing" in text(nplog), 15, what="np observer ready")
            ready = time.monotonic() - sim.t_ready
            check(ready < F["expect"]["attempt_at_ms"] / SCALE / 1000 and
                  ready < B["expect"]["backup_at_ms"] / SCALE / 1000,
                  "clients ready only %.1f s after start (machine too loaded)" % ready)
            left = end_ms / SCALE / 1000 - (time.monotonic() - sim.t_ready)
            try:
                wait_for(lambda: F["expect"]["evidence"] in text(slog), left + 10,
                         what="the failure line of %s" % fu)
                wait_for(lambda: ("notified " + NAME) in text(nplog), 10,
                         what="domain_changed from %s" % bu)
            except TimeoutError as e:
                fail("%s; syslog:\n%s\nnp:\n%s" % (e, text(slog)[-3000:], text(nplog)))
            wait_for(lambda: time.monotonic() - sim.t_ready > end_ms / SCALE / 1000 + 1,
                     left + 5, what="the end of the night")
        finally:
            for p in (ps, pn):
                p.terminate()
                p.wait(10)
        print("ok: live failure line on %s, domain_changed from %s" % (fu, bu))

        listed = sim.devices()

        def value(u, domain, key):
            r = sim.run(["ideviceinfo", "-u", u, "-q", domain, "-k", key])
            return r.stdout.strip()
        for d in devs:
            u, e = normalize_udid(d["udid"]), d["expect"]
            gone = e["outcome"] == "unplugged"
            check(listed[u]["attached"] != gone, "%s (%s) attached %r" %
                  (u, e["outcome"], listed[u]["attached"]))
            if e["outcome"] == "backed_up":
                got = value(u, "com.apple.mobile.backup", "LastCloudBackupDate")
                want = start_mac + e["backup_at_ms"] / 1000
                check(got.isdigit() and abs(int(got) - want) < 1800,
                      "%s: LastCloudBackupDate %r, want the simulated %d" % (u, got, want))
            if e["outcome"] == "power_lost":
                check(value(u, "com.apple.mobile.battery", "ExternalConnected") == "false",
                      "%s still on power" % u)
            if "switched_off_at_ms" in e:
                check(value(u, "com.apple.mobile.backup", "CloudBackupEnabled") == "false",
                      "%s: iCloud Backup still on" % u)
        print("ok: every phone ends the night as `expect` says")
        with open("/proc/%d/stat" % sim.proc.p.pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        print("figure: cradle-sim CPU for the night at %dx: %.2f s" %
              (SCALE, (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")))
finally:
    os.unlink(path)
print("PASS")
