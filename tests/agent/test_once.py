#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""cradle-agent --once against cradle-sim (TLS on, real libimobiledevice).

usage: test_once.py SIMBIN AGENTBIN SCENARIO

- every attached device is printed once, sorted, and its values equal the scenario's
  (dates as RFC 3339 of the scenario's Apple-epoch seconds, null when missing);
- unpaired / trust_pending / denied devices are NOT paired by the probe: no Pair, no
  StartSession in the simulator's journal, and their pairing state is unchanged;
- a detached device asked for with --udid is "gone" and the run still exits 0 quickly;
- a device detached while a run is under way ends as "gone" and the run does not hang;
- flags override the config file whatever their order, and --once need not come first.
"""
import datetime
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, fail, wait_for  # noqa: E402

SIMBIN, AGENT, SCENARIO = sys.argv[1:4]
U = "00008110-000A00000000000%d"


def once(sim, *args, timeout=40):
    t0 = time.monotonic()
    p = subprocess.run([AGENT, "--once", "--agent", "probe-test", "--timeout", "20s"] + list(args),
                       env=sim.env(), capture_output=True, timeout=timeout)
    dt = time.monotonic() - t0
    if p.returncode != 0:
        fail("--once exited %d: %s" % (p.returncode, p.stderr.decode(errors="replace")))
    lines = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
    return lines, dt


def rfc3339(apple_s):
    """Apple absolute time (seconds since 2001-01-01 UTC) as RFC 3339, computed independently."""
    t = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc) + \
        datetime.timedelta(seconds=apple_s)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def expect(cond, msg):
    if not cond:
        fail(msg)


with Sim(SIMBIN, SCENARIO) as sim:
    out, dt = once(sim)
    byid = {d["udid"]: d for d in out}
    udids = [d["udid"] for d in out]
    expect(udids == sorted(udids), "output not sorted by udid: %s" % udids)
    expect(sorted(byid) == [U % i for i in range(1, 7)], "wrong device set: %s" % udids)
    for d in out:
        expect(d["schema"] == "cradle.device_state.v1" and d["agent"] == "probe-test",
               "bad header: %s" % d)

    d = byid[U % 1]
    expect(d["probe"] == "ok" and d["pairing"] == "paired", "dev1 probe: %s" % d)
    expect(d["device"]["product_type"] == "iPhone15,2", "dev1 product: %s" % d["device"])
    expect(d["device"]["ios_version"] == "17.4.1" and d["device"]["build"] == "21E236",
           "dev1 versions: %s" % d["device"])
    expect(d["device"]["serial"] == "PRB0000001", "dev1 serial: %s" % d["device"])
    expect("name" not in d["device"], "device name published without --publish-device-name")
    b = d["backup"]
    expect(b["last_icloud"] == rfc3339(769034247) == "2025-05-15T20:37:27Z",
           "dev1 last_icloud: %s" % b)
    expect(b["last_local"] == rfc3339(700000000), "dev1 last_local: %s" % b)
    expect(b["icloud_enabled"] is True and b["will_encrypt"] is True and
           b["requires_encryption"] is True, "dev1 backup flags: %s" % b)
    expect(d["power"] == {"battery_pct": 80, "external_connected": True, "charging": False},
           "dev1 power: %s" % d["power"])
    expect(d["storage"] == {"total_bytes": 256000000000, "available_bytes": 12345678901},
           "dev1 storage: %s" % d["storage"])

    d = byid[U % 2]
    expect(d["probe"] == "ok", "dev2 probe: %s" % d)
    expect(d["backup"]["last_icloud"] is None and d["backup"]["icloud_enabled"] is False,
           "dev2 backup: %s" % d["backup"])
    expect(d["device"]["ios_version"] == "15.8.2", "dev2 version: %s" % d["device"])
    expect(d["power"]["battery_pct"] == 15 and d["power"]["external_connected"] is False,
           "dev2 power: %s" % d["power"])
    expect(d.get("storage") in (None, {}) or d["storage"].get("total_bytes") is None,
           "dev2 storage should be unknown: %s" % d.get("storage"))

    for i in (3, 4, 5):
        d = byid[U % i]
        expect(d["probe"] == "not_trusted" and d["pairing"] == "unpaired",
               "dev%d should be unpaired/not_trusted: %s %s" % (i, d["pairing"], d["probe"]))
    d = byid[U % 6]
    expect(d["probe"] == "not_trusted" and d["pairing"] == "invalid", "dev6: %s" % d)

    journal = sim.ctl({"op": "journal"})["journal"]
    for i in (3, 4, 5):
        ops = [e["op"] for e in journal.get(U % i, [])]
        expect(not any(o in ("Pair", "ValidatePair", "StartSession") for o in ops),
               "probe touched pairing of dev%d: %s" % (i, ops))
    states = {x["udid"]: x["pairing"] for x in sim.ctl({"op": "list"})["devices"]}
    for i, st in ((3, "unpaired"), (4, "trust_pending"), (5, "denied")):
        expect(states.get(U % i) == st, "dev%d pairing changed to %s" % (i, states.get(U % i)))
    print("once: %d devices in %.2f s" % (len(out), dt))

    # syslog evidence: only with --syslog, only backup lines, and the diagnosis uses them
    causes = [c["code"] for c in byid[U % 1]["diagnosis"]["causes"]]
    expect("icloud_storage_full" not in causes, "storage cause without --syslog: %s" % causes)
    out, dt = once(sim, "--udid", U % 1, "--syslog", "1s")
    expect(len(out) == 1 and out[0]["probe"] == "ok", "--syslog run: %s" % out)
    causes = [c for c in out[0]["diagnosis"]["causes"] if c["code"] == "icloud_storage_full"]
    expect(causes and "Not enough iCloud storage" in json.dumps(causes),
           "no storage-full cause from syslog: %s" % out[0]["diagnosis"])
    expect("wifid" not in json.dumps(out[0]), "irrelevant syslog line kept")

    # flags override the config file wherever -c stands, and --once may come last
    conf = os.path.join(sim.tmp, "once.conf")
    with open(conf, "w") as f:
        f.write("agent_id from-conf\npublish_device_name true\n")
    for args in (["--agent", "flag-agent", "-c", conf, "--udid", U % 1, "--once"],
                 ["-c", conf, "--agent", "flag-agent", "--once", "--udid", U % 1]):
        p = subprocess.run([AGENT] + args, env=sim.env(), capture_output=True, timeout=40)
        expect(p.returncode == 0, "%s exited %d: %s" % (args, p.returncode, p.stderr.decode()))
        out = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
        expect(len(out) == 1 and out[0]["agent"] == "flag-agent" and "name" in out[0]["device"],
               "%s: flag or file setting lost: %s" % (args, out))
    p = subprocess.run([AGENT, "-c", conf, "--once", "--udid", U % 1], env=sim.env(),
                       capture_output=True, timeout=40)
    out = [json.loads(l) for l in p.stdout.decode().splitlines() if l.strip()]
    expect(p.returncode == 0 and len(out) == 1 and out[0]["agent"] == "from-conf",
           "-c FILE --once: agent_id of the file not used: %s" % out)
    print("flag order: ok")

    # a detached device asked for explicitly
    out, dt = once(sim, "--udid", U % 7)
    expect(len(out) == 1 and out[0]["probe"] == "gone" and out[0]["attached"] is False,
           "detached --udid: %s" % out)
    expect(dt < 10, "detached --udid took %.1f s" % dt)

# detach during a run: 40 devices one at a time (~0.2 s each with TLS); the last one in
# sort order is detached shortly after the run started, so it is listed but gone when probed
with Sim(SIMBIN, None, extra=["--generate", "40", "--seed", "7"]) as sim:
    devs = sorted(x["udid"] for x in sim.ctl({"op": "list"})["devices"] if x["attached"])
    victim = devs[-1]
    env = sim.env()
    t0 = time.monotonic()
    p = subprocess.Popen([AGENT, "--once", "--concurrency", "1", "--timeout", "20s"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # detach the victim once the run is under way (it has opened a session on a first phone)
    wait_for(lambda: any(sim.journal(u) for u in devs[:3]), 15,
             what="the --once run to start probing")
    r = sim.ctl({"op": "detach", "udid": victim})
    expect(r.get("ok"), "detach failed: %s" % r)
    try:
        so, se = p.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        p.kill()
        fail("--once hung after a detach")
    expect(p.returncode == 0, "--once exited %d: %s" % (p.returncode, se.decode()))
    out = [json.loads(l) for l in so.decode().splitlines() if l.strip()]
    byid = {d["udid"]: d for d in out}
    expect(victim in byid, "detached device missing from output")
    expect(byid[victim]["probe"] == "gone", "detached device: %s" % byid[victim]["probe"])
    others = [d for d in out if d["udid"] != victim and d["probe"] == "gone"]
    expect(not others, "other devices gone: %s" % [d["udid"] for d in others])
    print("detach mid-run: %d devices in %.2f s, %s gone" % (len(out), time.monotonic() - t0,
                                                            victim))
print("PASS")
