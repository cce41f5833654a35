#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""End to end: `cradle-agent send` -> mosquitto -> the REAL command intake -> results -> send.

The bridge below STANDS IN FOR THE AGENT DAEMON'S WIRING until the lead does it: it takes the
deliveries on cradle/v1/agent/{agent}/cmd with their real MQTT properties (retain flag, message
expiry, correlation data), hands them to intake_tool (agent/cmd.c + agent/cmdtable.c with a state
directory), publishes what the intake answers on .../result, and "executes" accepted commands by
reporting in_progress and succeeded through the intake's table.

Checks: success, a repeat answered from the table without a second execution, the same after a
kill -9 of the intake, not_allowed, unknown_device, rate_limited restarts, a retained command
ignored, an oversize command rejected through its correlation data, an unsigned one refused as
bad_signature; all results schema-valid. Commands are signed with the run's key
(harness.signing_key()), which the intake trusts.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from harness import (Broker, Collector, fail, sign_args, signing_key,  # noqa: E402
                     validate_messages, wait_for)

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

AGENT = "station-09"
UDID = "00008110-001A2B3C4D5E801E"


class Bridge:
    def __init__(self, tool, state_dir, port):
        self.tool_bin = tool
        self.state_dir = state_dir
        self.lock = threading.Lock()
        self.executions = []  # cmd_ids the "executor" ran
        self.decisions = []   # (reason, cmd_id or None)
        self.tool = None
        self.start_tool()
        self.c = mqtt.Client(client_id="bridge-%d" % os.getpid(), protocol=mqtt.MQTTv5)
        self.c.on_message = self.on_message
        self.ready = threading.Event()
        self.c.on_subscribe = lambda *a, **k: self.ready.set()
        self.unsubscribed = threading.Event()
        self.c.on_unsubscribe = lambda *a, **k: self.unsubscribed.set()
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(
            "cradle/v1/agent/%s/cmd" % AGENT, qos=1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if not self.ready.wait(10):
            raise TimeoutError("bridge could not subscribe")

    def start_tool(self):
        self.tool = subprocess.Popen([self.tool_bin, "-k", signing_key().public, AGENT,
                                      self.state_dir, UDID],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(os.path.join(self.state_dir, "tool.err"), "ab"),
                                     text=True, bufsize=1)
        if self.tool.stdout.readline().strip() != "ready":
            raise RuntimeError("intake_tool did not start")

    def kill9_tool(self):
        with self.lock:
            self.tool.kill()
            self.tool.wait()
            self.start_tool()

    def ask(self, line):
        self.tool.stdin.write(line + "\n")
        self.tool.stdin.flush()
        out = self.tool.stdout.readline().rstrip("\n")
        _, reason, res = out.split(" ", 2)
        return reason, (None if res == "-" else res)

    def publish(self, res):
        self.c.publish("cradle/v1/agent/%s/result" % AGENT, res, qos=1)

    def on_message(self, c, u, m):
        expiry, corr, props = -1, None, []
        if m.properties is not None:
            expiry = getattr(m.properties, "MessageExpiryInterval", -1)
            corr = getattr(m.properties, "CorrelationData", None)
            props = getattr(m.properties, "UserProperty", [])
        line = "M %d %d %s %s" % (1 if m.retain else 0, expiry,
                                  corr.hex() if corr else "-",
                                  bytes(m.payload).hex() if m.payload else "-")
        if props:
            line += " " + "".join("%s\t%s\n" % kv for kv in props).encode().hex()
        with self.lock:
            reason, res = self.ask(line)
            cmd_id = json.loads(res)["cmd_id"] if res else None
            self.decisions.append((reason, cmd_id))
            if res:
                self.publish(res)
            if reason == "none":  # accepted: run it
                self.executions.append(cmd_id)
                for status, progress in (("in_progress", 50), ("succeeded", -1)):
                    r2, res2 = self.ask("U %s %s - %d" % (cmd_id, status, progress))
                    if res2:
                        self.publish(res2)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()
        self.tool.stdin.close()
        self.tool.wait(10)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--send", required=True)
    ap.add_argument("--send-prefix", default="")
    ap.add_argument("--tool", required=True)
    ap.add_argument("--validate", required=True)
    ap.add_argument("--schema", required=True)
    args = ap.parse_args()
    state = tempfile.mkdtemp(prefix="cradle-intake-")

    def send(extra, timeout=15):
        argv = [args.send] + ([args.send_prefix] if args.send_prefix else []) + [
            "--broker", broker.url(), "--agent", AGENT, "--timeout", "10"] + sign_args() + extra
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr

    def expect(cond, msg, out=None):
        if not cond:
            if out:
                sys.stderr.write("--- send ---\n%s\n%s\n" % (out[1], out[2]))
            fail(msg)

    try:
        with Broker() as broker:
            col = Collector(broker.port, "cradle/v1/agent/%s/result" % AGENT)
            bridge = Bridge(args.tool, state, broker.port)
            try:
                cmd_id = "c0ffee00-1234-4abc-8def-000000000001"
                r = send(["--udid", UDID, "--cmd-id", cmd_id, "backup.local.start",
                          "--param", "full=false"])
                expect(r[0] == 0, "first send: exit %d" % r[0], r)
                expect(r[1].split("\n")[0].endswith("accepted") and "succeeded" in r[1],
                       "first send output", r)
                expect(bridge.executions == [cmd_id], "executed once")

                r = send(["--udid", UDID, "--cmd-id", cmd_id, "backup.local.start"])
                expect(r[0] == 0 and "repeat" in r[1], "repeat answered from the table", r)
                expect(bridge.executions == [cmd_id], "a repeat never runs again")

                bridge.kill9_tool()
                r = send(["--udid", UDID, "--cmd-id", cmd_id, "backup.local.start"])
                expect(r[0] == 0 and "succeeded" in r[1] and "repeat" in r[1],
                       "repeat after kill -9", r)
                expect(bridge.executions == [cmd_id], "no second execution after kill -9")

                r = send(["--udid", UDID, "device.format"])
                expect(r[0] == 1 and "rejected not_allowed" in r[1], "not_allowed", r)
                r = send(["--udid", "FFFF0000FFFF0000", "device.refresh"])
                expect(r[0] == 1 and "rejected unknown_device" in r[1], "unknown_device", r)
                r = send(["--udid", UDID, "backup.local.start", "--param", "path=/etc"])
                expect(r[0] == 1 and "rejected bad_params" in r[1], "bad_params", r)

                codes = [send(["--udid", UDID, "device.restart"])[0] for _ in range(3)]
                expect(codes == [0, 1, 1], "restart rate limit: exit codes %r" % codes)
                expect(bridge.decisions[-1][0] == "rate_limited", "rate_limited decision")

                # a retained command (planted, or a publisher mistake) is never run: planted
                # while the agent is not subscribed, it arrives with the retain flag at
                # subscribe time (a live delivery would carry retain 0 and be a normal command)
                n_exec = len(bridge.executions)
                now = time.time()
                fmt = "%Y-%m-%dT%H:%M:%SZ"
                planted = {"schema": "cradle.command.v1",
                           "cmd_id": "c0ffee00-1234-4abc-8def-000000000099", "agent": AGENT,
                           "udid": UDID, "name": "device.refresh", "params": {},
                           "issued_at": time.strftime(fmt, time.gmtime(now)),
                           "expires_at": time.strftime(fmt, time.gmtime(now + 3600))}
                bridge.c.unsubscribe("cradle/v1/agent/%s/cmd" % AGENT)
                if not bridge.unsubscribed.wait(5):
                    fail("the bridge's unsubscribe was not acknowledged within 5 s")
                pub = mqtt.Client(client_id="planter", protocol=mqtt.MQTTv5)
                pub.connect("127.0.0.1", broker.port)
                pub.loop_start()
                pub.publish("cradle/v1/agent/%s/cmd" % AGENT, json.dumps(planted), qos=1,
                            retain=True).wait_for_publish(5)
                bridge.c.subscribe("cradle/v1/agent/%s/cmd" % AGENT, qos=1)
                wait_for(lambda: any(d[0] == "retained" for d in bridge.decisions), 5,
                         what="retained decision")
                expect(len(bridge.executions) == n_exec, "a retained command never runs")
                # clearing it delivers an empty, unsigned payload: refused before parsing,
                # unattributable, no result
                pub.publish("cradle/v1/agent/%s/cmd" % AGENT, b"", qos=1,
                            retain=True).wait_for_publish(5)
                wait_for(lambda: any(d[0] == "bad_signature" for d in bridge.decisions), 5,
                         what="empty payload decision")

                # a valid command without a signature: bad_signature, attributed through the
                # correlation data, never run
                n_exec = len(bridge.executions)
                unsigned_id = "c0ffee00-1234-4abc-8def-0000000000aa"
                props = Properties(PacketTypes.PUBLISH)
                props.CorrelationData = unsigned_id.encode()
                pub.publish("cradle/v1/agent/%s/cmd" % AGENT,
                            json.dumps(dict(planted, cmd_id=unsigned_id)), qos=1,
                            properties=props).wait_for_publish(5)
                wait_for(lambda: [m for m in col.json() if m[1]["cmd_id"] == unsigned_id], 5,
                         what="unsigned result")
                res = [m[1] for m in col.json() if m[1]["cmd_id"] == unsigned_id][0]
                expect(res["status"] == "rejected" and res["reason"] == "bad_signature",
                       "unsigned result %r" % res)
                expect(len(bridge.executions) == n_exec, "an unsigned command never runs")

                # oversize: rejected before parsing, attributed through the correlation data
                big_id = "c0ffee00-1234-4abc-8def-0000000000bb"
                props = Properties(PacketTypes.PUBLISH)
                props.CorrelationData = big_id.encode()
                props.MessageExpiryInterval = 60
                pub.publish("cradle/v1/agent/%s/cmd" % AGENT, b"{" + b" " * 9000 + b"}",
                            qos=1, properties=props).wait_for_publish(5)
                wait_for(lambda: [m for m in col.json() if m[1]["cmd_id"] == big_id], 5,
                         what="oversize result")
                res = [m[1] for m in col.json() if m[1]["cmd_id"] == big_id][0]
                expect(res["status"] == "rejected" and res["reason"] == "oversize",
                       "oversize result %r" % res)
                pub.loop_stop()
                pub.disconnect()

                expect(not [d for d in bridge.decisions if d[0] == "expired"],
                       "nothing expired: %r" % bridge.decisions)
                results = [m[1] for m in col.json()]
                expect(len(results) >= 10, "results seen: %d" % len(results))
                validate_messages(args.validate, args.schema, results)
                print("intake: %d results, %d executions, decisions %s" % (
                    len(results), len(bridge.executions),
                    sorted(set(d[0] for d in bridge.decisions))))
            finally:
                bridge.close()
                col.close()
    finally:
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
