#!/usr/bin/python3
"""Every command gets the result proto/COMMANDS.md promises (issue 8 item 12), against the real
agent, mosquitto and cradle-sim:

- a command over 64 KiB (the MQTT adapter's cap on an incoming payload) was dropped in
  agent/mqtt.c before the command intake saw it, so no result came; now it is rejected as
  `oversize` under the cmd_id of its correlation data, like one of 9 KiB;
- a signed command whose correlation data differs from its cmd_id was refused as `schema` with
  no result; now the result is published under the payload's (signed) cmd_id, and for a cmd_id
  that already ran, its last status is repeated (never a new rejection for an executed
  command). Nothing runs in either case.
Every message the agent published validates against its schema."""
import uuid

from commands_test import command
from common import AGENT, SIM, device, states, udid, validate_all, write_scenario
from harness import Agent, Broker, Collector, Sim, fail, wait_for
from hostile_commands_test import executed, publish, publisher, results
from session_test import stopped

AID = "station-hostile-1"  # hostile_commands_test's publish() and results() use this agent id


def main():
    scenario = write_scenario([device(1, cloud=False)])
    with Broker() as broker, Sim(SIM, scenario) as sim:
        col = Collector(broker.port)
        pub = publisher(broker.port)
        with Agent(AGENT, broker, sim, agent_id=AID) as agent:
            wait_for(lambda: any(s["attached"] and s["probe"] == "ok"
                                 for s in states(col, AID, udid(1))), 15, what="phone 1 probed")
            for size in (9 * 1024, 100 * 1024):
                big = str(uuid.uuid4())
                publish(pub, b"{" + b" " * size + b"}", corr=big)
                res = wait_for(lambda: results(col, big), 5,
                               what="a result for a %d KiB command" % (size // 1024))
                if res[-1]["status"] != "rejected" or res[-1].get("reason") != "oversize":
                    fail("%d KiB command: %r" % (size // 1024, res[-1]))
                print("ok: %d KiB command rejected as oversize" % (size // 1024))

            # correlation data that is not the cmd_id: answered under the payload's cmd_id
            cid, other = str(uuid.uuid4()), str(uuid.uuid4())
            publish(pub, command(udid(1), "backup.icloud.enable", cid, agent=AID), corr=other)
            res = wait_for(lambda: results(col, cid), 5, what="a result for the mismatch")
            if res[-1]["status"] != "rejected" or res[-1].get("reason") != "schema":
                fail("mismatch: %r" % res[-1])
            if results(col, other):
                fail("a result under the correlation data's id: %r" % results(col, other))
            print("ok: correlation mismatch rejected as schema under the payload's cmd_id")

            # a cmd_id that ran: the same mismatch repeats its status, it is not "rejected"
            done = str(uuid.uuid4())
            publish(pub, command(udid(1), "device.refresh", done, agent=AID), corr=done)
            wait_for(lambda: [r for r in results(col, done) if r["status"] == "succeeded"], 15,
                     what="device.refresh succeeded")
            n = len(results(col, done))
            publish(pub, command(udid(1), "device.refresh", done, agent=AID), corr=other)
            res = wait_for(lambda: results(col, done)[n:], 5, what="the repeat's result")
            if res[-1]["status"] != "succeeded" or not res[-1].get("replay"):
                fail("a mismatch on an executed cmd_id: %r" % res[-1])
            print("ok: mismatch on an executed cmd_id repeats 'succeeded'")
            if executed(sim):
                fail("something ran: %r" % executed(sim))
            stopped(agent)
        pub.loop_stop()
        pub.disconnect()
        validate_all(col)
        col.close()
    print("PASS")


if __name__ == "__main__":
    main()
