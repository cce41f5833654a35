#!/usr/bin/python3
"""Replay protection under attack and every command's final result across a crash (issue 8
items 1 and 7), against the real agent, mosquitto and cradle-sim, checked on the simulated
phone's journal:

- a flood of rate-limited commands for another phone (far more than the command table holds:
  cmd_table_size 16) used to be written to the table and evict an executed cmd_id, which then
  ran a second time. Now the executed id is still known: its repeat is answered as a replay;
- between two runs the table gets a flipped byte, is cut, emptied or deleted: the repeat of a
  command that ran before is refused with replay_unknown, and it never runs again;
- kill -9 during a slow local backup: after the restart the subscriber sees failed /
  agent_restarted without asking again, exactly once across two more restarts.
Every message the agent published validates against its schema."""
import os
import signal
import time
import uuid

from commands_test import command, journal, ops
from common import AGENT, SIM, device, states, udid, validate_all, write_scenario
from harness import Agent, Broker, Collector, Sim, fail, signing_key, wait_for
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

AID = "station-replay-1"
CMD_TOPIC = "cradle/v1/agent/%s/cmd" % AID
FLOOD = 200  # rate-limited commands for phone 2: over 12 times the table


def publisher(port):
    c = mqtt.Client(client_id="replay-%d" % os.getpid(), protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def publish(c, payload, corr):
    props = Properties(PacketTypes.PUBLISH)
    props.CorrelationData = corr.encode()
    props.UserProperty = signing_key().user_properties(payload.encode())
    return c.publish(CMD_TOPIC, payload, qos=1, properties=props)


def results(col, cmd_id):
    return [m for t, m, r, ts in col.json("cradle/v1/agent/%s/result" % AID)
            if m.get("cmd_id") == cmd_id]


def enables(sim):
    return ops(journal_all(sim)).count("cloud_backup")


_journal = []


def journal_all(sim):
    """The phone's journal since the start (the control socket hands out what is new)."""
    _journal.extend(journal(sim, udid(1)))
    return _journal


def probed(col, u):
    return lambda: any(s["attached"] and s["probe"] == "ok" for s in states(col, AID, u))


def run_once(col, sim, pub, cmd_id, payload):
    """Sends payload and waits for its final result; returns it."""
    publish(pub, payload, cmd_id).wait_for_publish(5)
    return wait_for(lambda: [r for r in results(col, cmd_id)
                             if r["status"] in ("succeeded", "failed", "rejected")], 20,
                    what="final result of %s" % cmd_id)[-1]


def flood_keeps_executed(col, sim, pub):
    x = str(uuid.uuid4())
    px = command(udid(1), "backup.icloud.enable", x, agent=AID, expires_in=3600)
    if run_once(col, sim, pub, x, px)["status"] != "succeeded" or enables(sim) != 1:
        fail("the first command did not run once: %r" % results(col, x))
    flood = []
    for i in range(FLOOD):
        cid = str(uuid.uuid4())
        flood.append(cid)
        publish(pub, command(udid(2), "device.refresh", cid, agent=AID), cid)
    # Refusal results are budgeted (20/s by default): most of the flood is only counted, and
    # which of its commands get a result depends on how fast the agent takes them in. So wait
    # for the first second's budget, not for answers to the last ones. The repeat below comes
    # from the same publisher on the same topic: the broker delivers it after the whole flood.
    def limited():
        return sum(1 for c in flood for r in results(col, c) if r.get("reason") == "rate_limited")

    wait_for(lambda: limited() >= 20, 30, what="the flood's first rate_limited results")
    publish(pub, px, x).wait_for_publish(5)
    res = wait_for(lambda: [r for r in results(col, x) if r.get("replay")], 30,
                   what="the repeat answered as a replay")
    time.sleep(0.5)
    if limited() < 20:
        fail("only %d rate_limited results: did the flood arrive?" % limited())
    if res[-1]["status"] != "succeeded" or enables(sim) != 1:
        fail("executed command forgotten after %d rate-limited commands: %r, ran %d times" %
             (FLOOD, res, enables(sim)))
    print("flood of %d rate-limited commands (table of 16): executed id still a replay, ran once"
          % FLOOD)


def agent_log(agent):
    try:
        with open(os.path.join(agent.tmp, "agent.err"), "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def flip(path):
    with open(path, "r+b") as f:
        f.seek(16 + 40)  # inside the first record
        b = f.read(1)
        f.seek(16 + 40)
        f.write(bytes([b[0] ^ 0x01]))


def damage_between_runs(broker, sim, col, pub, agent):
    table = os.path.join(agent.state_dir, "cmdtable")
    attacks = [("flipped byte", flip),
               ("truncated", lambda p: os.truncate(p, 16 + 96)),  # at a record boundary
               ("zero length", lambda p: os.truncate(p, 0)),
               ("deleted", os.unlink)]
    for what, attack in attacks:
        # command() dates issued_at a second back, in whole seconds: wait until that is after
        # the last watermark (cmd_clock_skew 0s here)
        time.sleep(2.1)
        cid = str(uuid.uuid4())
        payload = command(udid(1), "backup.icloud.enable", cid, agent=AID, expires_in=3600)
        before = enables(sim)
        if run_once(col, sim, pub, cid, payload)["status"] != "succeeded":
            fail("%s: the command did not run: %r" % (what, results(col, cid)))
        if enables(sim) != before + 1:
            fail("%s: ran %d times" % (what, enables(sim) - before))
        if agent.stop() != 0:
            fail("agent exit status not 0")
        attack(table)
        n = len(results(col, cid))
        skip = len(agent_log(agent))
        agent.start()
        wait_for(lambda: "refusing every command issued before" in agent_log(agent)[skip:], 10,
                 what="%s: the agent failing closed" % what)
        wait_for(probed(col, udid(1)), 20, what="phone 1 again")
        publish(pub, payload, cid).wait_for_publish(5)
        res = wait_for(lambda: results(col, cid)[n:], 10, what="%s: answer" % what)
        time.sleep(0.5)
        if enables(sim) != before + 1:
            fail("%s: the command ran again (%d times)" % (what, enables(sim) - before))
        # refused as replay_unknown, or answered from what the table still holds
        if not (res[-1]["status"] == "rejected" and res[-1].get("reason") == "replay_unknown" or
                res[-1].get("replay")):
            fail("%s: expected rejected/replay_unknown or a replay, got %r" % (what, res[-1]))
        print("%s table: the repeat answered %s, not run again" %
              (what, res[-1].get("reason") or res[-1]["status"]))
    time.sleep(2.1)
    cid = str(uuid.uuid4())
    payload = command(udid(1), "backup.icloud.enable", cid, agent=AID)
    if run_once(col, sim, pub, cid, payload)["status"] != "succeeded":
        fail("a new command after the damage did not run: %r" % results(col, cid))
    print("a command issued after the damage runs")


def interrupted_result(broker, sim, col, pub, agent):
    cid = str(uuid.uuid4())
    publish(pub, command(udid(1), "backup.local.start", cid, agent=AID), cid).wait_for_publish(5)
    wait_for(lambda: [r for r in results(col, cid) if r["status"] == "in_progress"], 20,
             what="backup in progress")
    agent.kill9()
    for run in range(3):
        agent.start()
        if run == 0:
            res = wait_for(lambda: [r for r in results(col, cid) if r["status"] == "failed"], 10,
                           what="the interrupted command's final result")
            if res[-1].get("cause") != "agent_restarted":
                fail("interrupted: expected failed/agent_restarted, got %r" % res[-1])
        wait_for(probed(col, udid(1)), 20, what="phone 1 after restart %d" % run)
        time.sleep(0.5)
        if agent.stop() != 0:
            fail("agent exit status not 0")
    failed = [r for r in results(col, cid) if r["status"] == "failed"]
    if len(failed) != 1:
        fail("expected one failed result across 3 restarts, got %r" % failed)
    print("kill -9 mid-backup: failed/agent_restarted published once at the restart")


def main():
    backup = {"file_count": 40, "file_size": 1000, "delay_ms": 250}  # about 10 s
    scenario = write_scenario([device(1, cloud=False, backup=backup), device(2)])
    with Broker() as broker, Sim(SIM, scenario) as sim:
        col = Collector(broker.port)
        pub = publisher(broker.port)
        conf = ("cmd_table_size 16\ncmd_rate_per_device 6/1h\ncmd_clock_skew 0s\n"
                "cmd_intake_rate 0\nresync_interval 1s\n")
        with Agent(AGENT, broker, sim, agent_id=AID, extra_conf=conf) as agent:
            wait_for(probed(col, udid(1)), 20, what="phone 1 probed")
            wait_for(probed(col, udid(2)), 20, what="phone 2 probed")
            journal_all(sim)
            _journal.clear()
            flood_keeps_executed(col, sim, pub)
            damage_between_runs(broker, sim, col, pub, agent)
            interrupted_result(broker, sim, col, pub, agent)
        pub.loop_stop()
        pub.disconnect()
        col.close()
        print("ok: %d messages valid" % validate_all(col))


if __name__ == "__main__":
    signal.alarm(170)
    main()
