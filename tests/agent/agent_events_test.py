#!/usr/bin/python3
"""Agent-level events end to end (cradle/v1/agent/{agent}/event), real broker and simulator:

- security_rejected: a burst of commands for another agent and of oversize ones becomes one
  immediate event (count 1) and one aggregated event per reason, with the exact total count;
- usbmuxd_lost / usbmuxd_back: cradle-sim stopped and started again;
- disk_low / disk_ok: state_dir on a small tmpfs, filled below disk_low_free and emptied
  (needs root for the mount; without root only disk_low is checked, with a floor above any real
  free space, and the skip is printed);
- outbox_pressure / outbox_ok: a 16-record outbox while the broker is down and a phone is
  plugged in and out, then the broker back.
Every message the agents published is validated against the schemas, topics included."""
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

from common import (AGENT, SCHEMAS, SIM, VALIDATE, device, states, udid, validate_all,
                    write_scenario)
from harness import Agent, Broker, Collector, Sim, fail, signing_key, wait_for
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

AID = "station-ev-1"
AID2 = "station-ev-2"
INTERVAL = 3  # security_event_interval, seconds
MIB = 1024 * 1024


def agent_events(col, aid, event=None):
    return [m for t, m, r, ts in col.json("cradle/v1/agent/%s/event" % aid)
            if event is None or m.get("event") == event]


def command(cmd_id, agent):
    now = time.time()

    def ts(t):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return json.dumps({"schema": "cradle.command.v1", "cmd_id": cmd_id, "agent": agent,
                       "udid": udid(1), "name": "device.refresh", "params": {},
                       "issued_at": ts(now - 1), "expires_at": ts(now + 300)})


def signed(payload):
    """payload with the MQTT 5 user properties that sign it with this run's key."""
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = signing_key().user_properties(payload)
    return payload, props


def burst(port, payloads):
    """Publishes every payload (or (payload, properties)) on the agent's cmd topic as fast as
    QoS 1 allows."""
    c = mqtt.Client(client_id="burst-%d" % os.getpid(), protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(100)
    c.connect("127.0.0.1", port)
    c.loop_start()
    infos = [c.publish("cradle/v1/agent/%s/cmd" % AID, p[0], qos=1, properties=p[1])
             if isinstance(p, tuple) else c.publish("cradle/v1/agent/%s/cmd" % AID, p, qos=1)
             for p in payloads]
    for i in infos:
        i.wait_for_publish(10)
    c.loop_stop()
    c.disconnect()


def check_security(col, reason, n):
    """n refusals of reason: first event count 1 at once, the rest aggregated, total n."""
    def done():
        evs = [e for e in agent_events(col, AID, "security_rejected")
               if e["details"]["reason"] == reason]
        return evs if sum(e["details"]["count"] for e in evs) >= n else None
    evs = wait_for(done, 3 * INTERVAL + 10, what="%d %s refusals reported" % (n, reason))
    counts = [e["details"]["count"] for e in evs]
    if sum(counts) != n or counts[0] != 1 or not 2 <= len(evs) <= 3:
        fail("%s: counts %r, want 1 then the rest of %d in at most 2 events" %
             (reason, counts, n))
    d = evs[-1]["details"]
    if d["interval_s"] != INTERVAL or d["first_at"] > d["last_at"] or not d["detail"]:
        fail("%s: details %r" % (reason, d))
    print("security_rejected %s: %d refusals -> %d events %r" % (reason, n, len(evs), counts))


def phase_security_usbmuxd_disk(broker, sim, col, state_dir, root):
    floor = "6M" if root else "1024T"
    conf = ("resync_interval 1s\nsecurity_event_interval %ds\ndisk_low_free %s\n"
            "disk_check_interval 1s\n" % (INTERVAL, floor))
    with Agent(AGENT, broker, sim, agent_id=AID, extra_conf=conf, state_dir=state_dir) as agent:
        wait_for(lambda: any(s["attached"] for s in states(col, AID, udid(1))), 20,
                 what="phone 1 seen by %s" % AID)

        # security_rejected: 60 for another agent (results published), 40 oversize (none)
        # signed by a trusted key, so the refusal is wrong_agent and not bad_signature
        wrong = [signed(command(str(uuid.uuid4()), "someone-else")) for _ in range(60)]
        big = [b"{" + b" " * 9000 + b"}" for _ in range(40)]
        t0 = time.monotonic()
        burst(broker.port, wrong + big)
        print("burst of 100 bad commands sent in %.2fs" % (time.monotonic() - t0))
        check_security(col, "wrong_agent", 60)
        check_security(col, "oversize", 40)
        if not agent.proc.alive():
            fail("the agent died under the burst")

        # usbmuxd_lost / usbmuxd_back
        sim.stop()
        lost = wait_for(lambda: agent_events(col, AID, "usbmuxd_lost"), 15,
                        what="usbmuxd_lost")
        if lost[0]["details"]["devices"] != 1:
            fail("usbmuxd_lost: %r, want devices 1" % lost[0])
        sim.start()
        back = wait_for(lambda: agent_events(col, AID, "usbmuxd_back"), 15,
                        what="usbmuxd_back")
        if back[0]["details"]["devices"] != 1 or back[0]["details"]["down_s"] < 0 or \
                back[0]["seq"] <= lost[0]["seq"]:
            fail("usbmuxd_back: %r after %r" % (back[0], lost[0]))
        print("usbmuxd_lost devices=1, usbmuxd_back after %ds" % back[0]["details"]["down_s"])

        # disk_low / disk_ok
        if not root:
            low = wait_for(lambda: agent_events(col, AID, "disk_low"), 10, what="disk_low")
            print("SKIP: disk_ok needs root (tmpfs); disk_low checked with a floor of 1024T")
            return low
        if agent_events(col, AID, "disk_low"):
            fail("disk_low on an empty 16 MiB tmpfs with a 6 MiB floor")
        filler = os.path.join(state_dir, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (12 * MIB))
        low = wait_for(lambda: agent_events(col, AID, "disk_low"), 10, what="disk_low")
        d = low[0]["details"]
        if d["path"] != state_dir or d["floor_bytes"] != 6 * MIB or \
                not d["free_bytes"] < d["floor_bytes"] or d["total_bytes"] != 16 * MIB:
            fail("disk_low details %r" % d)
        os.unlink(filler)
        ok = wait_for(lambda: agent_events(col, AID, "disk_ok"), 10, what="disk_ok")
        if not ok[0]["details"]["free_bytes"] >= 6 * MIB * 1.1 or \
                len(agent_events(col, AID, "disk_low")) != 1:
            fail("disk_ok %r / disk_low %r" % (ok, agent_events(col, AID, "disk_low")))
        print("disk_low at %d KiB free, disk_ok at %d KiB free" %
              (d["free_bytes"] // 1024, ok[0]["details"]["free_bytes"] // 1024))


def phase_outbox(broker, sim, col):
    conf = "resync_interval 1s\noutbox_max_records 16\n"
    with Agent(AGENT, broker, sim, agent_id=AID2, extra_conf=conf) as agent:
        wait_for(lambda: any(s["attached"] and s["probe"] == "ok"
                             for s in states(col, AID2, udid(1))), 20,
                 what="phone 1 seen by %s" % AID2)
        broker.stop()
        # every plug cycle is 2 events and 2 states: far more than 16 records
        for i in range(1, 13):
            sim.ctl({"op": "detach", "udid": udid(1)})
            wait_for(lambda: agent.proc.stderr_text().count("': detached") >= i, 10,
                     what="detach %d seen by the agent" % i)
            sim.ctl({"op": "attach", "udid": udid(1)})
            wait_for(lambda: agent.proc.stderr_text().count("': attached") >= i + 1, 10,
                     what="attach %d seen by the agent" % i)
        broker.start()
        ok = wait_for(lambda: agent_events(col, AID2, "outbox_ok"), 30, what="outbox_ok")
        pressure = agent_events(col, AID2, "outbox_pressure")
        if not pressure:
            fail("outbox_ok without outbox_pressure (it must survive the pressure)")
        p, o = pressure[0]["details"], ok[-1]["details"]
        if p["dropped"] + p["superseded"] < 1 or p["max_records"] != 16 or \
                o["dropped"] < p["dropped"] or o["records"] > 8 or \
                ok[-1]["seq"] <= pressure[0]["seq"]:
            fail("outbox events: pressure %r, ok %r" % (p, o))
        print("outbox_pressure (dropped %d, superseded %d), then outbox_ok (dropped %d, "
              "superseded %d in all)" % (p["dropped"], p["superseded"], o["dropped"],
                                          o["superseded"]))


def main():
    root = os.geteuid() == 0
    scenario = write_scenario([device(1)])
    mnt = tempfile.mkdtemp(prefix="cradle-ev-state-")
    mounted = False
    try:
        if root:
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", mnt],
                           check=True)
            mounted = True
        else:
            print("SKIP (partly): not root, state_dir is not a tmpfs")
        with Broker() as broker, Sim(SIM, scenario) as sim:
            col = Collector(broker.port, client_id="ev-collector", persistent=True)
            phase_security_usbmuxd_disk(broker, sim, col, mnt, root)
            phase_outbox(broker, sim, col)
            n = len([1 for t, p, r, ts in col.all("cradle/v1/agent/+/event") if p])
            validate_all(col)
            # the topics too: agent events only on .../event, each of its own agent
            lines = ["%s %s" % (t, p.decode()) for t, p, r, ts in col.all("cradle/v1/#")
                     if p and not t.endswith("/cmd")]
            with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
                f.write("\n".join(lines) + "\n")
            r = subprocess.run(["/usr/bin/python3", VALIDATE, "--with-topic", SCHEMAS, f.name],
                               capture_output=True, text=True, timeout=60)
            os.unlink(f.name)
            if r.returncode != 0:
                fail("topic validation:\n" + r.stdout + r.stderr)
            print("%d agent events, %d messages validated with their topics" %
                  (n, len(lines)))
            col.close()
    finally:
        if mounted:
            subprocess.run(["umount", "-l", mnt])
        shutil.rmtree(mnt, ignore_errors=True)
        os.unlink(scenario)
    print("ok")


if __name__ == "__main__":
    signal.alarm(230)
    main()
