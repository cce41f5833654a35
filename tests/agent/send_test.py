#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Integration test of `cradle-agent send` against a real mosquitto on a free loopback port.

The Responder below STANDS IN FOR THE AGENT until the lead wires the command intake
(agent/cmd.c) and execution into the daemon: it subscribes to cradle/v1/agent/{agent}/cmd,
records what arrived (payload, retain flag, MQTT 5 message expiry, correlation data) and answers
on .../result with a script chosen by the target udid. It answers a repeated cmd_id with the last
status and replay:true, as the agent does.

Checks: exit codes (0 succeeded, 1 failed/rejected, 2 timeout/usage/broker error), one printed
line per result of this command only (other commands' results and junk are ignored), the command
is QoS 1, not retained, with message expiry = ttl and correlation data = cmd_id, it is signed
(--sign-key: cradle-sig verifies over the exact payload bytes with the run's key, cradle-key-id
is its key id), --print-public-key prints that key, and the command and the --json output are
valid against proto/schema.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
import time

from harness import (Broker, fail, holds, sign_args, signing_key,  # noqa: E402
                     validate_messages, wait_for)

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

AGENT = "station-07"
OTHER_ID = "11111111-2222-4333-8444-555555555555"


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Responder:
    """Stands in for the agent: answers commands on the result topic by a script per udid."""

    SCRIPTS = {
        "UDID-OK": [("accepted", {}), ("in_progress", {"progress": 50}), ("succeeded", {})],
        "UDID-FAIL": [("accepted", {}), ("waiting_for_user", {"detail": "enter passcode"}),
                      ("failed", {"cause": "passcode_required"})],
        "UDID-REJECT": [("rejected", {"reason": "not_allowed", "detail": "not on allow-list"})],
        "UDID-SILENT": [],
    }

    def __init__(self, port):
        self.lock = threading.Lock()
        self.received = []  # (payload dict, retain, props dict)
        self.last = {}      # cmd_id -> last result dict
        self.seq = 0
        self.c = mqtt.Client(client_id="responder-%d" % os.getpid(), protocol=mqtt.MQTTv5)
        self.c.on_message = self.on_message
        self.ready = threading.Event()
        self.c.on_subscribe = lambda *a, **k: self.ready.set()
        self.c.on_connect = lambda c, u, f, rc, p=None: c.subscribe(
            "cradle/v1/agent/%s/cmd" % AGENT, qos=1)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if not self.ready.wait(10):
            raise TimeoutError("responder could not subscribe")

    def publish(self, res):
        with self.lock:
            self.seq += 1
            res = dict(res, schema="cradle.command_result.v1", agent=AGENT, seq=self.seq,
                       ts=now_rfc3339())
        self.c.publish("cradle/v1/agent/%s/result" % AGENT, json.dumps(res), qos=1)
        return res

    def on_message(self, c, u, m):
        props = {}
        if m.properties is not None:
            for name in ("MessageExpiryInterval", "CorrelationData", "ResponseTopic",
                         "ContentType", "PayloadFormatIndicator", "UserProperty"):
                if hasattr(m.properties, name):
                    props[name] = getattr(m.properties, name)
        props["raw"] = bytes(m.payload)
        try:
            cmd = json.loads(m.payload)
        except ValueError:
            return
        with self.lock:
            self.received.append((cmd, bool(m.retain), props))
        cmd_id, udid = cmd.get("cmd_id"), cmd.get("udid")
        # noise first: another command's result and a message that is not a result
        self.publish({"cmd_id": OTHER_ID, "status": "succeeded", "udid": udid})
        c.publish("cradle/v1/agent/%s/result" % AGENT, b"not json", qos=1)
        if cmd_id in self.last:
            self.publish(dict(self.last[cmd_id], replay=True))
            return
        for status, extra in self.SCRIPTS.get(udid, []):
            res = dict({"cmd_id": cmd_id, "status": status, "udid": udid,
                        "name": cmd.get("name")}, **extra)
            self.last[cmd_id] = {k: v for k, v in res.items()}
            self.publish(res)
            time.sleep(0.05)  # pacing, not a wait: results a moment apart, as an agent's are

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def run_send(args, extra, timeout=30):
    argv = [args.send] + ([args.send_prefix] if args.send_prefix else []) + extra
    t0 = time.monotonic()
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t0


def expect(cond, msg, out=None):
    if not cond:
        if out:
            sys.stderr.write("--- send output ---\n%s\n%s\n" % out)
        fail(msg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--send", required=True)
    ap.add_argument("--send-prefix", default="")
    ap.add_argument("--validate", required=True)
    ap.add_argument("--schema", required=True)
    args = ap.parse_args()

    with Broker() as broker:
        resp = Responder(broker.port)
        base = ["--broker", broker.url(), "--agent", AGENT] + sign_args()
        try:
            # 1. success path, with a param and a fixed cmd_id for the replay below
            cmd_id = "0b7d9e52-7c3a-4f61-a1e8-5d2c4b6a8f10"
            rc, out, err, dt = run_send(args, base + [
                "--udid", "UDID-OK", "--ttl", "120", "--param", "full=true",
                "--cmd-id", cmd_id.upper(), "backup.local.start"])
            expect(rc == 0, "success: exit %d" % rc, (out, err))
            lines = out.strip().split("\n")
            expect(len(lines) == 3, "success: 3 lines expected, got %r" % lines, (out, err))
            expect(" accepted" in lines[0] and " in_progress 50%" in lines[1] and
                   " succeeded" in lines[2], "success: lines %r" % lines)
            expect(cmd_id in err, "the cmd_id is reported on stderr")
            print("send: success path %.2fs" % dt)

            cmd, retain, props = resp.received[-1]
            expect(not retain, "the command must not be retained")
            expect(cmd["cmd_id"] == cmd_id, "cmd_id lowercase in the payload")
            expect(cmd["params"] == {"full": True}, "params: %r" % cmd["params"])
            expect(cmd["name"] == "backup.local.start" and cmd["udid"] == "UDID-OK", "target")
            expect(110 <= props.get("MessageExpiryInterval", 0) <= 120,
                   "message expiry = ttl: %r" % props)
            expect(props.get("CorrelationData") == cmd_id.encode(), "correlation data = cmd_id")
            expect(props.get("ResponseTopic") == "cradle/v1/agent/%s/result" % AGENT,
                   "response topic")
            user = dict(props.get("UserProperty", []))
            expect(len(props.get("UserProperty", [])) == 2, "two user properties: %r" % props)
            expect(user.get("cradle-key-id") == signing_key().key_id,
                   "key id %r, want %s" % (user, signing_key().key_id))
            expect(signing_key().verify(props["raw"], user.get("cradle-sig", "")),
                   "cradle-sig verifies over the payload bytes as received")
            expect(not signing_key().verify(props["raw"] + b" ", user.get("cradle-sig", "")),
                   "and over nothing else")
            ia = datetime.datetime.fromisoformat(cmd["issued_at"].replace("Z", "+00:00"))
            ea = datetime.datetime.fromisoformat(cmd["expires_at"].replace("Z", "+00:00"))
            expect(abs((ea - ia).total_seconds() - 120) < 1.5, "expires_at = issued_at + ttl")

            # 2. the same cmd_id again: the last status comes back as a repeat, exit 0; the
            #    ttl as a duration with a unit (parse.h)
            rc, out, err, _ = run_send(args, base + ["--udid", "UDID-OK", "--cmd-id", cmd_id,
                                                     "--ttl", "5m", "backup.local.start"])
            expect(rc == 0 and "succeeded" in out and "repeat" in out, "replay", (out, err))
            expect(out.count("\n") == 1, "replay: one line", (out, err))
            cmd, _, props = resp.received[-1]
            expect(290 <= props.get("MessageExpiryInterval", 0) <= 300,
                   "--ttl 5m: message expiry %r" % props)
            ia = datetime.datetime.fromisoformat(cmd["issued_at"].replace("Z", "+00:00"))
            ea = datetime.datetime.fromisoformat(cmd["expires_at"].replace("Z", "+00:00"))
            expect(abs((ea - ia).total_seconds() - 300) < 1.5, "--ttl 5m: expires_at")

            # 3. failure with cause -> 1; waiting_for_user does not end the wait
            rc, out, err, _ = run_send(args, base + ["--udid", "UDID-FAIL", "--json",
                                                     "backup.local.start"])
            expect(rc == 1, "failed: exit %d" % rc, (out, err))
            results = [json.loads(line) for line in out.strip().split("\n")]
            expect([r["status"] for r in results] == ["accepted", "waiting_for_user", "failed"],
                   "failed: statuses %r" % results)
            expect(results[-1]["cause"] == "passcode_required", "cause")
            expect(all(r["cmd_id"] != OTHER_ID for r in results), "other commands filtered")
            validate_messages(args.validate, args.schema,
                              results + [r[0] for r in resp.received])

            # 4. rejection -> 1
            rc, out, err, _ = run_send(args, base + ["--udid", "UDID-REJECT", "device.restart"])
            expect(rc == 1 and "rejected not_allowed" in out, "rejected", (out, err))

            # 5. no answer -> 2 after the timeout, not before
            rc, out, err, dt = run_send(args, base + ["--udid", "UDID-SILENT", "--timeout", "2",
                                                      "device.refresh"])
            expect(rc == 2 and out == "", "timeout: exit %d" % rc, (out, err))
            expect(1.9 <= dt < 10, "timeout after %.2fs" % dt)
            print("send: timeout path %.2fs" % dt)

            # 6. usage errors -> 2, nothing published
            n = len(resp.received)
            for bad in (["--udid", "UDID-OK"],                                 # no name
                        ["--udid", "UDID-OK", "--param", "novalue", "device.refresh"],
                        ["--udid", "UDID-OK", "--ttl", "0", "device.refresh"],
                        ["--udid", "UDID-OK", "--ttl", "25h", "device.refresh"],  # > 24 h
                        ["--udid", "UDID-OK", "--ttl", "1h30", "device.refresh"],
                        ["--udid", "UDID-OK", "--timeout", "1500ms", "device.refresh"],
                        ["--udid", "a/b", "device.refresh"],
                        ["--udid", "UDID-OK", "--cmd-id", "42", "device.refresh"],
                        ["--udid", "UDID-OK", "Not A Name"]):
                rc, out, err, _ = run_send(args, base + bad)
                expect(rc == 2, "usage %r: exit %d" % (bad, rc), (out, err))
            rc, out, err, _ = run_send(args, ["--agent", AGENT, "--udid", "U", "device.refresh"])
            expect(rc == 2, "usage without --broker", (out, err))
            rc, out, err, _ = run_send(args, base + ["--udid", "UDID-OK", "--sign-key",
                                                     "/nonexistent.pem", "device.refresh"])
            expect(rc == 2 and "/nonexistent.pem" in err, "unreadable --sign-key", (out, err))
            rc, out, err, _ = run_send(args, base + ["--udid", "UDID-OK", "--sign-key",
                                                     args.schema, "device.refresh"])
            expect(rc == 2 and "Ed25519" in err, "--sign-key not a key", (out, err))
            # TLS files with a plaintext URL: refused, not sent in clear (Paho would)
            rc, out, err, _ = run_send(args, base + ["--udid", "UDID-OK", "--cafile",
                                                     args.schema, "device.refresh"])
            expect(rc == 2 and "plaintext" in err, "--cafile with tcp://", (out, err))
            holds(lambda: len(resp.received) == n, 0.3, what="usage errors publish nothing")
            # 7. without --sign-key: sent unsigned (no user properties), with a notice
            rc, out, err, _ = run_send(args, ["--broker", broker.url(), "--agent", AGENT,
                                              "--udid", "UDID-OK", "device.refresh"])
            expect(rc == 0 and "not signed" in err, "unsigned send", (out, err))
            expect("UserProperty" not in resp.received[-1][2], "unsigned: no user properties")

            # 8. the public key for command_keys, the same as openssl's
            rc, out, err, _ = run_send(args, ["--print-public-key"] + sign_args())
            expect(rc == 0 and out == signing_key().public + "\n" and
                   signing_key().key_id in err, "--print-public-key", (out, err))
            rc, out, err, _ = run_send(args, ["--print-public-key"])
            expect(rc == 2, "--print-public-key without --sign-key", (out, err))
        finally:
            resp.close()

        # 9. broker gone -> 2, quickly
        port = broker.port
    rc, out, err, dt = run_send(args, ["--broker", "tcp://127.0.0.1:%d" % port, "--agent", AGENT,
                                       "--udid", "UDID-OK", "--timeout", "20", "device.refresh"])
    expect(rc == 2 and dt < 15, "no broker: exit %d after %.1fs" % (rc, dt), (out, err))
    print("send: all checks passed")


if __name__ == "__main__":
    main()
