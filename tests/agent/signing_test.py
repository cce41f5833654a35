#!/usr/bin/python3
"""Signed commands end to end: mosquitto -> cradle-agent -> cradle-sim, with real Ed25519 keys
made by openssl. Every refusal is checked on the wire (a rejected result with its reason,
attributed through the correlation data) and on the phone (the simulator's journal shows that
nothing ran): a forged payload, a payload re-signed with an untrusted key, an untrusted key's
signature under a trusted key id, truncated payloads, signatures and key ids, a missing
signature. A replayed signed command is answered with its last status and runs once. Rotation:
two trusted keys both work, a removed key is refused. With require_signed_commands false an
unsigned command runs and a signed one is still verified."""
import json
import os
import re
import signal
import time
import uuid

from common import AGENT, SIM, device, states, udid, validate_all, write_scenario
from harness import (Agent, Broker, Collector, SigningKey, Sim, fail, holds, signing_key,
                     wait_for)
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

AID = "station-sig-1"
ACTIONS = ("cloud_backup", "Restart", "backup_started")


def command(u, name, cmd_id):
    now = time.time()

    def ts(t):
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    return json.dumps({"schema": "cradle.command.v1", "cmd_id": cmd_id, "agent": AID,
                       "udid": u, "name": name, "params": {}, "issued_at": ts(now - 1),
                       "expires_at": ts(now + 300)}).encode()


class Publisher:
    """Publishes raw command messages with chosen user properties, as any broker client can."""

    def __init__(self, port):
        self.c = mqtt.Client(client_id="attacker-%d" % os.getpid(), protocol=mqtt.MQTTv5)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def send(self, payload, cmd_id, user=None):
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = cmd_id.encode()
        props.MessageExpiryInterval = 300
        if user:
            props.UserProperty = list(user)
        self.c.publish("cradle/v1/agent/%s/cmd" % AID, payload, qos=1,
                       properties=props).wait_for_publish(5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def results_for(col, cmd_id):
    return [m for t, m, r, ts in col.json("cradle/v1/agent/%s/result" % AID)
            if m.get("cmd_id") == cmd_id]


def final(col, cmd_id, what, timeout=15):
    return wait_for(lambda: [r for r in results_for(col, cmd_id)
                             if r["status"] in ("rejected", "succeeded", "failed")], timeout,
                    what=what)[-1]


def actions(sim, n):
    j = sim.ctl({"op": "journal", "udid": udid(n)}).get("journal", [])
    return [e.get("op") for e in j if e.get("op") in ACTIONS]


def expect_refused(col, sim, pub, reason, payload, user, what):
    """payload (a restart of phone 2) with user properties must be rejected with reason."""
    cmd_id = re.search(rb'"cmd_id":\s*"([0-9a-f-]{36})"', payload).group(1).decode()
    actions(sim, 2)  # empties the journal
    pub.send(payload, cmd_id, user)
    res = final(col, cmd_id, "refusal: %s" % what)
    if res["status"] != "rejected" or res.get("reason") != reason:
        fail("%s: expected rejected/%s, got %r" % (what, reason, res))
    ran = []
    holds(lambda: ran.extend(actions(sim, 2)) or not ran, 0.3,
          what="%s: a refused command does not run on the phone" % what)
    print("refused (%s): %s" % (reason, what))


def restart_with(agent, col, keys_line):
    """Restarts the agent with another command_keys/require line; waits until it is back."""
    with open(agent.conf) as f:
        text = f.read()
    text = re.sub(r"(?m)^(command_keys|require_signed_commands) .*\n", "", text)
    with open(agent.conf, "w") as f:
        f.write(text + keys_line)
    n = len([m for t, m, r, ts in col.json("cradle/v1/agent/%s/status" % AID)
             if m.get("online") is True])
    agent.restart()
    wait_for(lambda: len([m for t, m, r, ts in col.json("cradle/v1/agent/%s/status" % AID)
                          if m.get("online") is True]) > n, 15, what="agent back online")


def main():
    k1 = signing_key()  # the run's key: the harness makes the agent trust it
    k2 = SigningKey()   # a key the agent does not trust (yet)
    scenario = write_scenario([device(1, cloud=False), device(2), device(3, cloud=False)])
    with Broker() as broker, Sim(SIM, scenario) as sim:
        col = Collector(broker.port)
        pub = Publisher(broker.port)
        with Agent(AGENT, broker, sim, agent_id=AID,
                   extra_conf="cmd_rate_per_device 100/1h\nrestart_timeout 20s\n") as agent:
            for n in (1, 2, 3):
                wait_for(lambda: any(s["attached"] and s["probe"] == "ok"
                                     for s in states(col, AID, udid(n))), 15,
                         what="first state of phone %d" % n)

            # the genuine article: signed by the trusted key, it runs
            cid = str(uuid.uuid4())
            good = command(udid(1), "backup.icloud.enable", cid)
            actions(sim, 1)
            pub.send(good, cid, k1.user_properties(good))
            res = final(col, cid, "signed command")
            if res["status"] != "succeeded" or actions(sim, 1) != ["cloud_backup"]:
                fail("a signed command did not run: %r" % res)
            print("signed by a trusted key: succeeded, ran once")

            # replayed byte for byte with its valid signature: the last status, not a 2nd run
            n_before = len(results_for(col, cid))
            pub.send(good, cid, k1.user_properties(good))
            wait_for(lambda: len(results_for(col, cid)) > n_before, 10, what="replay answer")
            rep = results_for(col, cid)[-1]
            if rep["status"] != "succeeded" or rep.get("replay") is not True:
                fail("replay: %r" % rep)
            again = []
            holds(lambda: again.extend(actions(sim, 1)) or not again, 0.3,
                  what="a replayed signed command does not run again")
            print("replayed signed command: answered with its last status, not run again")

            # forged: signed as a refresh, the payload turned into a restart afterwards
            cid = str(uuid.uuid4())
            orig = command(udid(2), "device.refresh", cid)
            forged = orig.replace(b"device.refresh", b"device.restart")
            expect_refused(col, sim, pub, "bad_signature", forged, k1.user_properties(orig),
                           "payload changed after signing")
            # re-signed with a key the agent does not trust
            restart = command(udid(2), "device.restart", str(uuid.uuid4()))
            expect_refused(col, sim, pub, "unknown_key", restart, k2.user_properties(restart),
                           "re-signed with an untrusted key")
            # the untrusted key's signature, claiming the trusted key's id
            restart = command(udid(2), "device.restart", str(uuid.uuid4()))
            expect_refused(col, sim, pub, "bad_signature", restart,
                           k2.user_properties(restart, key_id=k1.key_id),
                           "trusted key id, other key's signature")
            # truncated payload (the signature is of the whole one)
            restart = command(udid(2), "device.restart", str(uuid.uuid4()))
            expect_refused(col, sim, pub, "bad_signature", restart[:-1],
                           k1.user_properties(restart), "truncated payload")
            # truncated signature, truncated key id
            restart = command(udid(2), "device.restart", str(uuid.uuid4()))
            sig = k1.sign(restart)
            expect_refused(col, sim, pub, "bad_signature", restart,
                           [("cradle-sig", sig[:-4]), ("cradle-key-id", k1.key_id)],
                           "truncated signature")
            restart = command(udid(2), "device.restart", str(uuid.uuid4()))
            expect_refused(col, sim, pub, "bad_signature", restart,
                           [("cradle-sig", k1.sign(restart)), ("cradle-key-id", k1.key_id[:8])],
                           "truncated key id")
            # no signature at all
            restart = command(udid(2), "device.restart", str(uuid.uuid4()))
            expect_refused(col, sim, pub, "bad_signature", restart, None, "unsigned")
            # the signature twice (which one would count?)
            restart = command(udid(2), "device.restart", str(uuid.uuid4()))
            expect_refused(col, sim, pub, "bad_signature", restart,
                           k1.user_properties(restart) + [("cradle-sig", k1.sign(restart))],
                           "signature property twice")
            # garbage under a valid signature gets as far as the parser, and no further
            cid = str(uuid.uuid4())
            junk = b"{\"cmd_id\":\"" + cid.encode() + b"\", oops"
            expect_refused(col, sim, pub, "malformed", junk, k1.user_properties(junk),
                           "signed junk")

            # rotation: both keys trusted, both work
            restart_with(agent, col, "command_keys %s, %s\n" % (k1.public, k2.public))
            for key, n in ((k1, 3), (k2, 3)):
                cid = str(uuid.uuid4())
                cmd = command(udid(n), "backup.icloud.enable", cid)
                actions(sim, n)
                pub.send(cmd, cid, key.user_properties(cmd))
                res = final(col, cid, "rotation, key %s" % key.key_id)
                if res["status"] != "succeeded" or actions(sim, n) != ["cloud_backup"]:
                    fail("rotation: key %s refused: %r" % (key.key_id, res))
            print("rotation: two trusted keys, both accepted")
            # the old key removed: refused
            restart_with(agent, col, "command_keys %s\n" % k2.public)
            restart = command(udid(2), "device.restart", str(uuid.uuid4()))
            expect_refused(col, sim, pub, "unknown_key", restart, k1.user_properties(restart),
                           "signed by a removed key")

            # require_signed_commands false: unsigned runs, signed is still verified
            restart_with(agent, col, "command_keys %s\nrequire_signed_commands false\n" %
                         k1.public)
            cid = str(uuid.uuid4())
            cmd = command(udid(3), "backup.icloud.enable", cid)
            actions(sim, 3)
            pub.send(cmd, cid, None)
            res = final(col, cid, "unsigned, not required")
            if res["status"] != "succeeded" or actions(sim, 3) != ["cloud_backup"]:
                fail("unsigned with require off: %r" % res)
            print("require_signed_commands false: an unsigned command runs")
            restart = command(udid(2), "device.restart", str(uuid.uuid4()))
            expect_refused(col, sim, pub, "unknown_key", restart, k2.user_properties(restart),
                           "require off, signed by an untrusted key")
            orig = command(udid(2), "device.refresh", str(uuid.uuid4()))
            expect_refused(col, sim, pub, "bad_signature",
                           orig.replace(b"device.refresh", b"device.restart"),
                           k1.user_properties(orig), "require off, forged")

            if not agent.proc.alive():
                fail("the agent died")
            log = agent.proc.stderr_text()
            if "rejected (bad_signature)" not in log or "rejected (unknown_key)" not in log:
                fail("the refusals are not logged")
            n = validate_all(col)
            print("%d messages validated" % n)
        pub.close()
        col.close()
    os.unlink(scenario)
    print("ok")


if __name__ == "__main__":
    signal.alarm(200)
    main()
