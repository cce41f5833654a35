#!/usr/bin/python3
"""cradle-agent daemon against a real mosquitto and cradle-sim (TLS on):
birth and meta; one retained state per attached phone; attach and detach reflected on MQTT
within 2 s; a phone unplugged while it is being probed; the simulator (usbmuxd) restarting;
SIGTERM publishes online:false and exits 0; every message validates against its schema."""
import os
import signal
import time

from common import AGENT, SIM, device, events, harness, states, udid, validate_all, \
    write_scenario
from harness import Agent, Broker, Collector, Sim, fail, holds, wait_for

AID = "station-test-1"


def state_of(col, u, pred, timeout, what):
    return wait_for(lambda: next((s for s in reversed(states(col, AID, u)) if pred(s)), None),
                    timeout, what=what)


def main():
    scenario = write_scenario([
        device(1),
        device(2, backup_ago=None),
        device(3, pairing="trust_pending"),
        device(4, attached=False),
        device(5, pairing="invalid_host"),
    ])
    with Broker() as broker, Sim(SIM, scenario) as sim:
        col = Collector(broker.port)
        with Agent(AGENT, broker, sim, agent_id=AID, extra_conf="probe_interval 1m\n") as agent:
            st = wait_for(lambda: col.last("cradle/v1/agent/%s/status" % AID), 10, what="birth")
            if st.get("online") is not True:
                fail("birth is not online: %r" % st)
            wait_for(lambda: col.last("cradle/v1/agent/%s/meta" % AID), 5, what="meta")

            s1 = state_of(col, udid(1), lambda s: s["attached"], 10, "state of phone 1")
            if s1["diagnosis"]["status"] != "ok" or s1["pairing"] != "paired":
                fail("phone 1 should be ok and paired: %r" % s1)
            if s1["device"]["product_type"] != "iPhone14,5" or s1["backup"]["icloud_enabled"] is not True:
                fail("phone 1 values do not match the scenario: %r" % s1)
            if "name" in s1["device"]:
                fail("the device name is published although publish_device_name is off")
            s2 = state_of(col, udid(2), lambda s: s["attached"], 10, "state of phone 2")
            codes = [c["code"] for c in s2["diagnosis"]["causes"]]
            if s2["diagnosis"]["status"] != "stale" or "never_backed_up" not in codes \
                    or s2["backup"]["last_icloud"] is not None:
                fail("phone 2 should be stale, never backed up: %r" % s2)
            # no pair record: the agent reports it and does not start pairing itself (that
            # would put a Trust dialog on a phone nobody is looking at)
            s3 = state_of(col, udid(3), lambda s: s["attached"], 10, "state of phone 3")
            if s3["pairing"] != "unpaired" or s3["diagnosis"]["status"] != "unknown" or \
                    "not_trusted" not in [c["code"] for c in s3["diagnosis"]["causes"]]:
                fail("phone 3 should be reported as not trusted: %r" % s3)
            s5 = state_of(col, udid(5), lambda s: s["attached"], 10, "state of phone 5")
            if s5["pairing"] != "invalid":
                fail("phone 5 has a stale pair record: %r" % s5)
            ev = wait_for(lambda: [e for e in events(col, AID, udid(5))
                                   if e["event"] == "pairing_invalid"], 5,
                          what="pairing_invalid event")[0]
            # typed event details: the handshake's error (InvalidHostID)
            if ev["details"] != {"lockdown_error": -21}:
                fail("pairing_invalid details: %r" % ev)
            ev = wait_for(lambda: [e for e in events(col, AID, udid(2))
                                   if e["event"] == "backup_stale"], 5,
                          what="backup_stale event")[0]
            if "never_backed_up" not in ev["details"].get("causes", []):
                fail("backup_stale details without the causes: %r" % ev)
            # the agent must never pair on its own: no Pair request reached the phone
            j = sim.ctl({"op": "journal", "udid": udid(3)})
            if any(e.get("op") == "Pair" for e in j.get("journal", [])):
                fail("the agent sent Pair to an untrusted phone: %r" % j)
            if states(col, AID, udid(4)):
                fail("a detached phone has a state")

            # attach: event and a probed state within 2 s
            t0 = time.monotonic()
            sim.ctl({"op": "attach", "udid": udid(4)})
            state_of(col, udid(4), lambda s: s["attached"] and s["probe"] == "ok", 2,
                     "state of phone 4 within 2 s of attach")
            if not any(e["event"] == "attached" for e in events(col, AID, udid(4))):
                fail("no attached event for phone 4")
            print("attach -> state on MQTT: %.2f s" % (time.monotonic() - t0))

            # detach: attached:false within 2 s, last facts kept
            t0 = time.monotonic()
            sim.ctl({"op": "detach", "udid": udid(1)})
            s = state_of(col, udid(1), lambda s: not s["attached"], 2,
                         "attached:false for phone 1 within 2 s of detach")
            if s["device"]["product_type"] != "iPhone14,5":
                fail("the unplug state lost the last known facts: %r" % s)
            print("detach -> state on MQTT: %.2f s" % (time.monotonic() - t0))

            # unplugged while being probed: attach and detach at once, many times (this once
            # caught a probe request cancelled on detach that left the device never probed again)
            for _ in range(10):
                sim.ctl({"op": "attach", "udid": udid(1)})
                sim.ctl({"op": "detach", "udid": udid(1)})
            sim.ctl({"op": "attach", "udid": udid(1)})
            n_before = len(states(col, AID, udid(1)))
            wait_for(lambda: any(s["attached"] and s["probe"] == "ok"
                                 for s in states(col, AID, udid(1))[n_before - 1:]),
                     10, what="phone 1 probed after the attach/detach storm")
            if not agent.proc.alive():
                fail("agent died during the attach/detach storm")

            # usbmuxd (the simulator) goes away and comes back on the same address
            sim.stop()
            state_of(col, udid(2), lambda s: not s["attached"], 15,
                     "phones detached while usbmuxd is gone")
            holds(agent.proc.alive, 2, what="agent alive while usbmuxd is gone")
            n2 = len(states(col, AID, udid(2)))
            sim.start()
            wait_for(lambda: any(s["attached"] for s in states(col, AID, udid(2))[n2:]), 20,
                     what="phone 2 attached again after the simulator restart")

            # children: no zombie helpers left behind
            def zombies():
                kids = os.popen("ps -o stat= --ppid %d" % agent.proc.p.pid).read().split()
                return [k for k in kids if k.startswith("Z")]
            wait_for(lambda: not zombies(), 5, what="no zombie helper processes")

            rc = agent.stop()
            if rc != 0:
                fail("agent exited %r on SIGTERM" % rc)
            st = wait_for(lambda: (col.last("cradle/v1/agent/%s/status" % AID) or {}).get(
                "online") is False and col.last("cradle/v1/agent/%s/status" % AID), 5,
                what="online:false after SIGTERM")
        n = validate_all(col)
        print("%d messages validated against their schemas" % n)
        col.close()
    os.unlink(scenario)
    print("ok")


if __name__ == "__main__":
    signal.alarm(170)
    main()
