#!/usr/bin/python3
"""Remediation over USB, end to end: `cradle-agent send` -> mosquitto -> cradle-agent ->
cradle-sim. Each action's effect is checked on the simulated phone (its journal and values)
and in the agent's published state; bad commands are refused with a reason and execute
nothing; a repeated cmd_id never runs twice, not even across a kill -9 of the agent."""
import json
import os
import signal
import subprocess
import time
import uuid

from common import AGENT, SIM, device, states, udid, validate_all, write_scenario
from harness import (Agent, Broker, Collector, Sim, fail, holds, sign_args, signing_key,
                     wait_for)
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

AID = "station-cmd-1"
DAY = 86400


def send(broker, u, name, *extra, timeout=60):
    argv = [AGENT, "send", "--broker", broker.url(), "--agent", AID, "--udid", u, name,
            "--json", "--timeout", str(timeout)] + sign_args() + list(extra)
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30)
    results = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return r.returncode, results, r.stderr


def journal(sim, u):
    return sim.ctl({"op": "journal", "udid": u}).get("journal", [])


def ops(entries):
    return [e.get("op") for e in entries]


def raw_publish(port, payload, corr=None, expiry=None, user=None):
    """Publishes a command payload as an attacker or a broken sender would (user: the MQTT 5
    user properties, e.g. a signature)."""
    c = mqtt.Client(client_id="raw-%d" % os.getpid(), protocol=mqtt.MQTTv5)
    c.connect("127.0.0.1", port)
    c.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    if corr:
        props.CorrelationData = corr.encode()
    if expiry:
        props.MessageExpiryInterval = expiry
    if user:
        props.UserProperty = list(user)
    info = c.publish("cradle/v1/agent/%s/cmd" % AID, payload, qos=1, properties=props)
    info.wait_for_publish(5)
    c.loop_stop()
    c.disconnect()


def results_for(col, cmd_id):
    return [m for t, m, r, ts in col.json("cradle/v1/agent/%s/result" % AID)
            if m.get("cmd_id") == cmd_id]


def command(u, name, cmd_id, agent=AID, expires_in=300, params=None):
    now = time.time()

    def ts(t):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return json.dumps({"schema": "cradle.command.v1", "cmd_id": cmd_id, "agent": agent,
                       "udid": u, "name": name, "params": params or {},
                       "issued_at": ts(now - 1 if expires_in > 0 else now + expires_in - 600),
                       "expires_at": ts(now + expires_in)})


def expect_rejected(col, sim, broker, cmd_id, reason, payload, corr=None, signed=True):
    """payload is signed with the run's key unless signed is False: these refusals come from
    the checks after the signature."""
    journal(sim, udid(1))  # start from an empty journal
    if isinstance(payload, str):
        payload = payload.encode()
    raw_publish(broker.port, payload, corr=corr,
                user=signing_key().user_properties(payload) if signed else None)
    res = wait_for(lambda: results_for(col, cmd_id), 5, what="rejection of %s" % reason)
    if res[-1]["status"] != "rejected" or res[-1].get("reason") != reason:
        fail("expected rejected/%s, got %r" % (reason, res[-1]))
    j = []
    holds(lambda: j.extend(journal(sim, udid(1))) or
          not any(o in ("cloud_backup", "Restart", "backup_started") for o in ops(j)), 0.3,
          what="a rejected command (%s) executes nothing" % reason)
    print("rejected as expected: %s" % reason)


def main():
    scenario = write_scenario([
        device(1, cloud=False, backup_ago=5 * DAY),
        device(2, restart_delay_ms=800),
        device(3, backup={"file_count": 12, "file_size": 20000, "delay_ms": 20}),
        device(4, backup={"file_count": 4, "file_size": 1000, "error_code": 208,
                          "error_text": "Device locked", "delay_ms": 1500}),
        device(5, backup={"file_count": 200, "file_size": 100000, "delay_ms": 700}),
        device(6, cloud=False, cloud_toggle={"error_code": 211,
                                             "error_text": "No Apple ID signed in"}),
    ])
    with Broker() as broker, Sim(SIM, scenario) as sim:
        col = Collector(broker.port)
        with Agent(AGENT, broker, sim, agent_id=AID,
                   extra_conf="max_concurrent_backups 2\nrestart_timeout 20s\n") as agent:
            # the default backup_dir is <state_dir>/backups
            backup_dir = os.path.join(agent.state_dir, "backups")
            for n in range(1, 7):
                wait_for(lambda: any(s["attached"] and s["probe"] == "ok"
                                     for s in states(col, AID, udid(n))), 15,
                         what="first state of phone %d" % n)
            for n in range(1, 7):
                journal(sim, udid(n))  # clear what the probes did

            # backup.icloud.enable: the phone's value flips and the state says so
            cid = str(uuid.uuid4())
            rc, res, err = send(broker, udid(1), "backup.icloud.enable", "--cmd-id", cid)
            if rc != 0 or res[-1]["status"] != "succeeded":
                fail("icloud.enable: rc %d %r %s" % (rc, res, err))
            j = journal(sim, udid(1))
            cb = [e for e in j if e.get("op") == "cloud_backup"]
            if len(cb) != 1 or cb[0].get("enable") is not True:
                fail("icloud.enable: journal %r" % j)
            wait_for(lambda: states(col, AID, udid(1))[-1]["backup"]["icloud_enabled"] is True,
                     5, what="icloud_enabled true in the state")
            print("backup.icloud.enable: succeeded, CloudBackupEnabled=true on the phone")

            # the same cmd_id again: the last status, never a second execution
            rc, res, err = send(broker, udid(1), "backup.icloud.enable", "--cmd-id", cid)
            if rc != 0 or not res or res[-1]["status"] != "succeeded" or \
                    not res[-1].get("replay"):
                fail("replay: rc %d %r" % (rc, res))
            if any(e.get("op") == "cloud_backup" for e in journal(sim, udid(1))):
                fail("a repeated cmd_id executed again")
            print("repeated cmd_id: answered from the table, not executed")

            # a refusal from the phone is a failure with a cause, the value unchanged
            rc, res, err = send(broker, udid(6), "backup.icloud.enable")
            if rc != 1 or res[-1]["status"] != "failed" or \
                    res[-1].get("cause") != "icloud_enable_failed":
                fail("refused cloud toggle: rc %d %r" % (rc, res))

            # device.restart: detach, re-attach, succeeded
            rc, res, err = send(broker, udid(2), "device.restart")
            if rc != 0 or res[-1]["status"] != "succeeded":
                fail("restart: rc %d %r %s" % (rc, res, err))
            if "Restart" not in ops(journal(sim, udid(2))):
                fail("restart: no Restart in the journal")
            print("device.restart: succeeded after the phone came back")

            # backup.local.start: full, then incremental, into the store
            rc, res, err = send(broker, udid(3), "backup.local.start")
            if rc != 0 or res[-1]["status"] != "succeeded":
                fail("local backup: rc %d %r %s" % (rc, res, err))
            if not any(r["status"] == "in_progress" for r in res):
                fail("local backup: no progress reported: %r" % res)
            devdir = os.path.join(backup_dir, udid(3))
            if os.stat(devdir).st_mode & 0o777 != 0o700:
                fail("the device's backup folder is not 0700")
            snap = os.path.realpath(os.path.join(devdir, "current"))
            if not os.path.exists(os.path.join(snap, udid(3), "Status.plist")):
                fail("no Status.plist in the backup %s" % snap)
            wait_for(lambda: states(col, AID, udid(3))[-1]["backup"]["last_local"], 5,
                     what="last_local in the state")
            rc, res, err = send(broker, udid(3), "backup.local.start")
            if rc != 0:
                fail("second local backup: rc %d %r" % (rc, res))
            started = [e for e in journal(sim, udid(3)) if e.get("op") == "backup_started"]
            if [e.get("full") for e in started] != [True, False]:
                fail("expected a full then an incremental backup: %r" % started)
            if len(os.listdir(os.path.join(devdir, "snapshots"))) != 2:
                fail("expected two snapshots")
            print("backup.local.start: full then incremental, 2 snapshots kept")

            # passcode: waiting_for_user, then failed passcode_required; diagnosis follows
            rc, res, err = send(broker, udid(4), "backup.local.start")
            sts = [r["status"] for r in res]
            if rc != 1 or "waiting_for_user" not in sts or res[-1].get("cause") != \
                    "passcode_required":
                fail("208: rc %d %r" % (rc, res))
            wait_for(lambda: "passcode_required" in [
                c["code"] for c in states(col, AID, udid(4))[-1]["diagnosis"]["causes"]], 5,
                what="passcode_required in the diagnosis")
            if os.path.exists(os.path.join(backup_dir, udid(4), "current")):
                fail("a failed backup became current")
            print("backup.local.start 208: waiting_for_user then failed passcode_required")

            # unplugged mid-backup: failed device_disconnected, last good backup kept
            rc, res, err = send(broker, udid(5), "backup.local.start", timeout=90)
            if rc != 0:
                fail("slow backup: rc %d %r" % (rc, res))
            good = os.path.realpath(os.path.join(backup_dir, udid(5), "current"))
            cid = str(uuid.uuid4())
            # a full backup: 20 MB in 5 paced batches, about 3 s on the simulator
            journal(sim, udid(5))
            p = subprocess.Popen([AGENT, "send", "--broker", broker.url(), "--agent", AID,
                                  "--udid", udid(5), "backup.local.start", "--json",
                                  "--param", "full=true", "--cmd-id", cid, "--timeout", "60"]
                                 + sign_args(),
                                 stdout=subprocess.PIPE, text=True)
            wait_for(lambda: "backup_started" in ops(journal(sim, udid(5))), 20,
                     what="second backup running on the phone")
            sim.ctl({"op": "detach", "udid": udid(5)})
            out, _ = p.communicate(timeout=60)
            last = [json.loads(x) for x in out.splitlines() if x.startswith("{")][-1]
            if p.returncode != 1 or last.get("cause") != "device_disconnected":
                fail("unplug mid-backup: rc %d %r" % (p.returncode, last))
            if os.path.realpath(os.path.join(backup_dir, udid(5), "current")) != good or \
                    os.path.exists(os.path.join(backup_dir, udid(5), ".incoming")):
                fail("the interrupted backup touched the last good one")
            print("unplug mid-backup: failed device_disconnected, last good backup kept")

            # agent killed mid-backup: after restart the command is failed, never re-run
            sim.ctl({"op": "attach", "udid": udid(5)})
            wait_for(lambda: states(col, AID, udid(5))[-1]["attached"], 10, what="re-attach")
            journal(sim, udid(5))
            cid = str(uuid.uuid4())
            p = subprocess.Popen([AGENT, "send", "--broker", broker.url(), "--agent", AID,
                                  "--udid", udid(5), "backup.local.start", "--json",
                                  "--param", "full=true", "--cmd-id", cid, "--timeout", "60"]
                                 + sign_args(),
                                 stdout=subprocess.DEVNULL)
            seen = []
            wait_for(lambda: seen.extend(journal(sim, udid(5))) or
                     "backup_started" in ops(seen), 20, what="backup running on the phone")
            agent.kill9()
            p.kill()
            agent.start()
            wait_for(lambda: states(col, AID, udid(5))[-1]["attached"], 15, what="agent back")
            rc, res, err = send(broker, udid(5), "backup.local.start", "--cmd-id", cid)
            if rc != 1 or res[-1].get("cause") != "agent_restarted":
                fail("after kill -9: rc %d %r" % (rc, res))
            holds(lambda: seen.extend(journal(sim, udid(5))) or
                  ops(seen).count("backup_started") == 1, 1,
                  what="the killed backup started exactly once")
            if os.path.exists(os.path.join(backup_dir, udid(5), ".incoming")):
                fail("the interrupted backup was not discarded at restart")
            print("kill -9 mid-backup: failed agent_restarted, not re-run")

            # refusals, cheapest check first; none of them executes anything
            cid = str(uuid.uuid4())
            expect_rejected(col, sim, broker, cid, "unknown_device",
                            command("00008110-00000000DEADBEEF", "device.restart", cid))
            cid = str(uuid.uuid4())
            expect_rejected(col, sim, broker, cid, "not_allowed",
                            command(udid(1), "device.erase", cid))
            cid = str(uuid.uuid4())
            # past its expiry by more than the 300 s clock-skew tolerance
            expect_rejected(col, sim, broker, cid, "expired",
                            command(udid(1), "device.restart", cid, expires_in=-900))
            cid = str(uuid.uuid4())
            expect_rejected(col, sim, broker, cid, "wrong_agent",
                            command(udid(1), "device.restart", cid, agent="someone-else"))
            cid = str(uuid.uuid4())
            expect_rejected(col, sim, broker, cid, "malformed", b"{\"cmd_id\": \"" +
                            cid.encode() + b"\", oops", corr=cid)
            cid = str(uuid.uuid4())
            expect_rejected(col, sim, broker, cid, "oversize", b"{" + b" " * 9000 + b"}",
                            corr=cid, signed=False)
            if not agent.proc.alive():
                fail("the agent died on bad commands")
            n = validate_all(col)
            print("%d messages validated" % n)
        col.close()
    os.unlink(scenario)
    print("ok")


if __name__ == "__main__":
    signal.alarm(230)
    main()
