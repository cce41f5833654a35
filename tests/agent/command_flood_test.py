#!/usr/bin/python3
"""A command flood does not starve telemetry (issue 8 item 4), against the real agent, mosquitto
and cradle-sim.

A publisher sends about RATE well-formed commands per second for SECONDS seconds (unique
cmd_ids; most carry a forged signature, some are signed by the trusted key for the phone that is
plugged in during the flood). Half way through, a phone is plugged in through the simulator's
control socket. Checked: its `attached` event and its attached state reach the broker within
1 s; no device event is dropped (the agent logs none, its outbox counts none); the agent's log
stays bounded (repeats collapsed, refusal lines within their budget); the flood shows up as
aggregated security_rejected events (reason busy for the commands over the intake budget), not
as one result per command; the agent exits cleanly.
CRADLE_FLOOD_SECONDS / CRADLE_FLOOD_RATE run a longer or harder variant by hand."""
import base64
import json
import os
import signal
import threading
import time
import uuid

from commands_test import command
from common import AGENT, SIM, device, events, states, udid, validate_all, write_scenario
from harness import Agent, Broker, Collector, Sim, fail, signing_key, wait_for
from session_test import stopped
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

AID = "station-flood-1"
CMD_TOPIC = "cradle/v1/agent/%s/cmd" % AID
SECONDS = float(os.environ.get("CRADLE_FLOOD_SECONDS", "4"))
RATE = int(os.environ.get("CRADLE_FLOOD_RATE", "3000"))
FORGED = base64.b64encode(b"\x01" * 64).decode()  # well-formed, never verifies


def flood(port, signed, stop, counter):
    c = mqtt.Client(client_id="flood-%d" % os.getpid(), protocol=mqtt.MQTTv5)
    c.max_queued_messages_set(0)
    c.connect("127.0.0.1", port)
    c.loop_start()
    key_id = signing_key().key_id
    t0 = time.monotonic()
    n = 0
    while not stop.is_set() and time.monotonic() - t0 < SECONDS:
        # pace in 10 ms slices
        due = int((time.monotonic() - t0) * RATE)
        while n < due:
            props = Properties(PacketTypes.PUBLISH)
            if n % 10 == 0 and signed:
                payload, user = signed[(n // 10) % len(signed)]
            else:
                cid = str(uuid.uuid4())
                payload = command(udid(2), "device.refresh", cid, agent=AID)
                user = [("cradle-sig", FORGED), ("cradle-key-id", key_id)]
                # attributable: without the budgets each refusal would get a result
                props.CorrelationData = cid.encode()
            props.UserProperty = user
            c.publish(CMD_TOPIC, payload, qos=0, properties=props)
            n += 1
        time.sleep(0.01)
    counter.append(n)
    time.sleep(0.5)
    c.loop_stop()
    c.disconnect()


def main():
    scenario = write_scenario([device(1), device(2, attached=False)])
    # a small pool of validly signed commands for phone 2 (signing runs openssl: keep it small)
    signed = []
    for i in range(20):
        cid = str(uuid.uuid4())
        p = command(udid(2), "device.refresh", cid, agent=AID)
        signed.append((p, signing_key().user_properties(p.encode())))
    with Broker() as broker, Sim(SIM, scenario) as sim:
        # not cradle/v1/#: a collector of the flood itself would lag behind it
        col = Collector(broker.port, topic="cradle/v1/agent/%s/device/#" % AID,
                        client_id="flood-dev-%d" % os.getpid())
        colr = Collector(broker.port, topic="cradle/v1/agent/%s/result" % AID,
                         client_id="flood-res-%d" % os.getpid())
        cole = Collector(broker.port, topic="cradle/v1/agent/%s/event" % AID,
                         client_id="flood-ev-%d" % os.getpid())
        with Agent(AGENT, broker, sim, agent_id=AID,
                   extra_conf="security_event_interval 1s\n") as agent:
            wait_for(lambda: any(s["attached"] and s["probe"] == "ok"
                                 for s in states(col, AID, udid(1))), 20, what="phone 1 probed")
            log_before = len(agent.proc.stderr_text().splitlines())
            stop, counter = threading.Event(), []
            th = threading.Thread(target=flood, args=(broker.port, signed, stop, counter))
            th.start()
            time.sleep(SECONDS / 2)
            t_plug = time.monotonic()
            sim.ctl({"op": "attach", "udid": udid(2)})
            ev = wait_for(lambda: [ts for t, m, r, ts in col.json(
                "cradle/v1/agent/%s/device/%s/event" % (AID, udid(2)))
                if m.get("event") == "attached"], 10, what="attached event of phone 2")
            st = wait_for(lambda: [ts for t, m, r, ts in col.json(
                "cradle/v1/agent/%s/device/%s/state" % (AID, udid(2))) if m["attached"]], 10,
                what="attached state of phone 2")
            ev_s, st_s = ev[0] - t_plug, st[0] - t_plug
            th.join()
            sent = counter[0] if counter else 0
            print("flood: %d commands in %.0f s (%.0f/s); phone plugged in mid-flood: event "
                  "after %.2f s, state after %.2f s" % (sent, SECONDS, sent / SECONDS, ev_s, st_s))
            if ev_s > 1.0 or st_s > 1.0:
                fail("telemetry starved: event after %.2f s, state after %.2f s" % (ev_s, st_s))
            wait_for(lambda: any(s["attached"] and s["probe"] == "ok"
                                 for s in states(col, AID, udid(2))), 20, what="phone 2 probed")
            time.sleep(1.5)  # the last aggregated security events
            log = agent.proc.stderr_text()
            if "events dropped" in log or "event for" in log and "dropped" in log:
                fail("a device event was dropped under the flood")
            lines = len(log.splitlines()) - log_before
            # refusal lines: at most 20/s by default, plus the collapsed repeats and the probes
            if lines > 40 * (SECONDS + 3) + 100:
                fail("log not bounded: %d lines for %d commands" % (lines, sent))
            results = colr.json()
            if len(results) > 20 * (SECONDS + 3) + 40:
                fail("refusal results not bounded: %d for %d commands" % (len(results), sent))
            rej = {}
            for t, m, r, ts in cole.json():
                if m.get("event") == "security_rejected":
                    d = m["details"]
                    rej[d["reason"]] = rej.get(d["reason"], 0) + d["count"]
            if rej.get("busy", 0) < sent // 4:
                fail("commands over the intake budget not counted as busy: %r of %d" %
                     (rej, sent))
            for u in (udid(1), udid(2)):
                if any(e.get("event") == "detached" for e in events(col, AID, u)):
                    fail("a phone was reported detached")
            print("log: %d lines; %d results; security_rejected counts %s" %
                  (lines, len(results), json.dumps(rej, sort_keys=True)))
            stopped(agent)
        n = 0
        for c in (col, colr, cole):
            c.close()
            n += validate_all(c)
        print("ok: %d messages valid" % n)


if __name__ == "__main__":
    signal.alarm(110)
    main()
