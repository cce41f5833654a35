#!/usr/bin/python3
"""Commands that must run nothing (issue 8 items 5 and 6), against the real agent, mosquitto and
cradle-sim, checked on the simulated phone's journal:

- a retained command planted before the agent connects, and one published with the retain flag
  while the agent is connected (live: the agent subscribes with Retain As Published, or the
  broker would clear the flag): no result, no execution, logged and counted in a
  security_rejected agent event with reason "retained" (proto/COMMANDS.md, check 1). The same
  command without the retain flag then runs: the flag alone was the reason;
- a \\u0000 escape in name ("backup.icloud.enable\\u0000.evil" ran cloud_backup), udid, agent,
  schema or cmd_id: rejected as malformed (attributed through the correlation data), nothing
  runs.
Every message the agent published validates against its schema."""
import json
import os
import signal
import uuid

from commands_test import command, journal, ops
from common import AGENT, SIM, device, states, udid, validate_all, write_scenario
from harness import Agent, Broker, Collector, Sim, fail, holds, signing_key, wait_for
from session_test import stopped
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

AID = "station-hostile-1"
CMD_TOPIC = "cradle/v1/agent/%s/cmd" % AID


def publisher(port):
    c = mqtt.Client(client_id="hostile-%d" % os.getpid(), protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def publish(c, payload, corr=None, retain=False):
    props = Properties(PacketTypes.PUBLISH)
    if corr:
        props.CorrelationData = corr.encode()
    if payload:
        # signed by the trusted key, so each refusal is for the reason under test
        props.UserProperty = signing_key().user_properties(payload)
    c.publish(CMD_TOPIC, payload, qos=1, retain=retain, properties=props).wait_for_publish(5)


def results(col, cmd_id):
    return [m for t, m, r, ts in col.json("cradle/v1/agent/%s/result" % AID)
            if m.get("cmd_id") == cmd_id]


def retained_refusals(col):
    """Refusals counted in security_rejected events with reason retained."""
    return sum(m["details"]["count"] for t, m, r, ts in col.json("cradle/v1/agent/%s/event" % AID)
               if m.get("event") == "security_rejected" and
               m["details"].get("reason") == "retained")


def executed(sim):
    return [o for o in ops(journal(sim, udid(1))) if o in ("cloud_backup", "Restart")]


def main():
    scenario = write_scenario([device(1, cloud=False)])
    with Broker() as broker, Sim(SIM, scenario) as sim:
        col = Collector(broker.port)
        pub = publisher(broker.port)
        # planted before the agent exists: it arrives at subscribe time, retained
        pre = str(uuid.uuid4())
        publish(pub, command(udid(1), "backup.icloud.enable", pre, agent=AID), corr=pre,
                retain=True)
        with Agent(AGENT, broker, sim, agent_id=AID,
                   extra_conf="security_event_interval 1s\n") as agent:
            wait_for(lambda: any(s["attached"] and s["probe"] == "ok"
                                 for s in states(col, AID, udid(1))), 15, what="phone 1 probed")
            wait_for(lambda: retained_refusals(col) >= 1, 5, what="planted command refused")
            # clearing it (empty retained payload) reaches the agent too, retained: no result
            publish(pub, b"", retain=True)
            journal(sim, udid(1))  # forget what the probes did

            # live: the agent is connected and knows the phone; only the flag stops it
            live = str(uuid.uuid4())
            payload = command(udid(1), "backup.icloud.enable", live, agent=AID)
            publish(pub, payload, corr=live, retain=True)
            wait_for(lambda: retained_refusals(col) >= 3, 5,
                     what="3 retained refusals (planted, clearing, live) counted")
            publish(pub, b"", retain=True)  # clear it again (a 4th refusal)
            ran = []
            holds(lambda: not results(col, pre) and not results(col, live) and
                  not (ran.extend(executed(sim)) or ran), 0.5,
                  what="a retained command gets no result and executes nothing")
            logged = agent.proc.stderr_text().count("rejected (retained)")
            if logged < 3:
                fail("retained commands logged %d times, expected 3 or more" % logged)
            print("retained commands (planted and live): refused, logged, nothing ran")

            # \u0000 in each member the agent acts on: malformed, attributed, nothing runs
            good = json.loads(payload)
            for member in ("name", "udid", "agent", "schema", "cmd_id"):
                cid = str(uuid.uuid4())
                m = dict(good, cmd_id=cid)
                m[member] = m[member] + "\u0000.evil"
                text = json.dumps(m)  # json escapes U+0000 as \u0000
                if "\\u0000" not in text:
                    fail("test bug: no escape in %s" % text)
                publish(pub, text, corr=cid)
                res = wait_for(lambda: results(col, cid), 5, what="result for NUL in " + member)
                if res[-1]["status"] != "rejected" or res[-1].get("reason") != "malformed":
                    fail("NUL in %s: expected rejected/malformed, got %r" % (member, res))
                print("\\u0000 in %s: rejected malformed" % member)
            ran = []
            holds(lambda: not (ran.extend(executed(sim)) or ran), 0.5,
                  what="a command with a NUL executes nothing")
            if states(col, AID, udid(1))[-1]["backup"]["icloud_enabled"] is not False:
                fail("iCloud backup was switched on")

            # control: the live command again, without the retain flag, runs once
            publish(pub, payload, corr=live)
            res = wait_for(lambda: [r for r in results(col, live)
                                    if r["status"] in ("succeeded", "failed")], 15,
                           what="the unretained command's final result")
            if res[-1]["status"] != "succeeded" or executed(sim) != ["cloud_backup"]:
                fail("the unretained command did not run once: %r %r" %
                     (res, journal(sim, udid(1))))
            print("the same command without the retain flag ran once")
            stopped(agent)
        pub.loop_stop()
        pub.disconnect()
        col.close()
        print("ok: %d messages valid" % validate_all(col))


if __name__ == "__main__":
    signal.alarm(110)
    main()
