#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The client library (client/client.c) as the dashboard will use it, against a real mosquitto:
one client on its own loop sends five commands to two agents at once, before its connection is
up. A responder standing in for the agents checks each command (signed with the run's key, the
signature verifying over the bytes as received, Correlation Data = cmd_id) and answers on that
agent's result topic, with noise: another command's result, a result carrying our cmd_id but
another agent, a message that is no result, and every final result twice.

Checks: every command reaches its agent's topic signed, every command's results are passed on
once and in order (the responder answers the moment a command arrives, so a command published
before its result subscription was active would lose results), the duplicate final is not passed
on, nothing foreign is passed on, and the client is freed from inside its last callback (exit 0,
no leak under ASan)."""
import argparse
import json
import os
import subprocess
import threading
import time

from harness import Broker, fail, signing_key

import paho.mqtt.client as mqtt

AGENTS = ("station-a1", "station-b2")
OTHER_ID = "11111111-2222-4333-8444-555555555555"


class Responder:
    def __init__(self, port):
        self.lock = threading.Lock()
        self.commands = []  # (agent, cmd dict, properties)
        self.seq = 0
        self.c = mqtt.Client(client_id="responder-%d" % os.getpid(), protocol=mqtt.MQTTv5)
        self.c.on_message = self.on_message
        self.ready = threading.Event()
        self.c.on_subscribe = lambda *a, **k: self.ready.set()
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe("cradle/v1/agent/+/cmd",
                                                                    qos=1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if not self.ready.wait(10):
            raise TimeoutError("responder could not subscribe")

    def result(self, agent, res, topic_agent=None):
        with self.lock:
            self.seq += 1
            seq = self.seq
        res = dict(res, schema="cradle.command_result.v1", agent=agent, seq=seq,
                   ts="2026-01-15T02:00:00.000Z")
        self.c.publish("cradle/v1/agent/%s/result" % (topic_agent or agent), json.dumps(res),
                       qos=1)

    def on_message(self, c, u, m):
        agent = m.topic.split("/")[3]
        props = m.properties
        user = dict(getattr(props, "UserProperty", []))
        cmd = json.loads(m.payload)
        with self.lock:
            self.commands.append((agent, cmd, user, getattr(props, "CorrelationData", b"")))
        if not signing_key().verify(bytes(m.payload), user.get("cradle-sig", "")):
            return  # a bad signature gets no answer: the test then times out and fails
        cid = cmd["cmd_id"]
        other = AGENTS[1] if agent == AGENTS[0] else AGENTS[0]
        self.result(agent, {"cmd_id": OTHER_ID, "status": "succeeded"})
        self.result(other, {"cmd_id": cid, "status": "failed", "cause": "not_ours"},
                    topic_agent=agent)
        c.publish("cradle/v1/agent/%s/result" % agent, b"not json", qos=1)
        if cmd["udid"] == "UDID-REJECT":
            script = [{"status": "rejected", "reason": "bad_params"}]
        else:
            script = [{"status": "accepted"}, {"status": "succeeded"}]
        for res in script:
            self.result(agent, dict(res, cmd_id=cid))
            time.sleep(0.02)  # pacing, not a wait: results a moment apart, as an agent's are
        self.result(agent, dict(script[-1], cmd_id=cid))  # QoS 1 duplicate of the final

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drive", required=True)
    args = ap.parse_args()
    with Broker() as broker:
        resp = Responder(broker.port)
        try:
            specs = ["%s:UDID-OK:device.refresh" % AGENTS[0],
                     "%s:UDID-OK:backup.icloud.enable" % AGENTS[1],
                     "%s:UDID-REJECT:device.restart" % AGENTS[0],
                     "%s:UDID-OK:device.restart" % AGENTS[1],
                     "%s:UDID-OK:backup.local.start" % AGENTS[0]]
            p = subprocess.run([args.drive, broker.url(), signing_key().path] + specs,
                               capture_output=True, text=True, timeout=40)
            if p.returncode != 0:
                fail("client_drive: exit %d\n%s\n%s" % (p.returncode, p.stdout, p.stderr))
            sent = {}
            got = {}
            for line in p.stdout.splitlines():
                w = line.split()
                if w[0] == "sent":
                    sent[w[1]] = w[2]
                elif w[0] == "result":
                    if w[1] not in sent or sent[w[1]] != w[2]:
                        fail("a foreign result was passed on: %r" % line)
                    got.setdefault(w[1], []).append(" ".join(w[3:]))
            if len(sent) != len(specs):
                fail("sent %d commands, want %d" % (len(sent), len(specs)))
            with resp.lock:
                cmds = list(resp.commands)
            if len(cmds) != len(specs):
                fail("the broker saw %d commands: %r" % (len(cmds), cmds))
            for agent, cmd, user, corr in cmds:
                cid = cmd["cmd_id"]
                if sent.get(cid) != agent or cmd["agent"] != agent:
                    fail("command on the wrong topic: %r" % ((agent, cmd),))
                if user.get("cradle-key-id") != signing_key().key_id or \
                        corr != cid.encode():
                    fail("command properties: %r %r" % (user, corr))
                want = ["rejected bad_params"] if cmd["udid"] == "UDID-REJECT" else \
                    ["accepted", "succeeded"]
                if got.get(cid) != want:
                    fail("results of %s: %r, want %r" % (cid, got.get(cid), want))
            print("client library: %d commands to %d agents, results correlated" %
                  (len(specs), len(AGENTS)))
        finally:
            resp.close()


if __name__ == "__main__":
    main()
