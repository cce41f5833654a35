#!/usr/bin/python3
"""cradle-loadgen (bench/dashboard) publishes what real agents publish: every message valid
against proto/schema, retained on the topic its schema belongs to; per agent one birth and one
meta with site and station, one session, seq 0, 1, 2, ... with no gap; N distinct phones spread
over M agents; a second run is a new session. Bad usage is exit status 2 with a message.

argv: LOADGEN SOURCE_DIR"""
import collections
import json
import os
import subprocess
import sys

import jsonschema

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Broker, check  # noqa: E402

loadgen, src = sys.argv[1], sys.argv[2]
PHONES, AGENTS = 250, 7  # not a multiple: the last round is partial
validators = {}
for name in ("agent_status", "agent_meta", "device_state"):
    with open(os.path.join(src, "proto", "schema", "%s.v1.json" % name)) as f:
        validators["cradle.%s.v1" % name] = jsonschema.Draft202012Validator(json.load(f))
KIND = {"status": "cradle.agent_status.v1", "meta": "cradle.agent_meta.v1",
        "state": "cradle.device_state.v1"}


def run_loadgen(broker, *extra):
    p = subprocess.run([loadgen, "--broker", broker.url(), "--phones", str(PHONES),
                        "--agents", str(AGENTS), "--sites", "3", *extra],
                       capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "loadgen exits 0: %d %s" % (p.returncode, p.stderr))
    check(p.stdout.startswith("loadgen: published %d messages (%d device states, %d agents)"
                              % (PHONES + 2 * AGENTS, PHONES, AGENTS)), "summary line: " + p.stdout)
    check(p.stdout.rstrip().endswith("msg/s"), "the rate is printed: " + p.stdout)


def retained(broker, count):
    """Every retained message under cradle/v1 as (retain flag, topic, payload)."""
    p = subprocess.run(["mosquitto_sub", "-p", str(broker.port), "-V", "mqttv5", "-q", "1",
                        "-t", "cradle/v1/#", "-C", str(count), "-W", "20", "-F", "%r %t %p"],
                       capture_output=True, text=True, timeout=40)
    check(p.returncode == 0, "mosquitto_sub got %d retained messages: %s" % (count, p.stderr))
    return [line.split(" ", 2) for line in p.stdout.splitlines()]


with Broker(persistent=False) as broker:
    run_loadgen(broker)
    msgs = retained(broker, PHONES + 2 * AGENTS)
    seqs = collections.defaultdict(list)
    sessions = collections.defaultdict(set)
    phones, metas = set(), {}
    for flag, topic, payload in msgs:
        m = json.loads(payload)
        check(flag == "1", "retained: %s" % topic)
        parts = topic.split("/")
        check(m["schema"] == KIND[parts[-1]], "%s carries %s" % (topic, m["schema"]))
        errors = list(validators[m["schema"]].iter_errors(m))
        check(not errors, "%s valid: %s" % (topic, errors[:1]))
        check(parts[3] == m["agent"], "topic agent = message agent: %s" % topic)
        seqs[m["agent"]].append(m["seq"])
        sessions[m["agent"]].add(m["session"])
        if parts[-1] == "state":
            check(parts[5] == m["udid"], "topic udid = message udid: %s" % topic)
            check(m["udid"] not in phones, "one state per phone: %s" % m["udid"])
            phones.add(m["udid"])
        elif parts[-1] == "meta":
            check(m["site"] and m["station"], "meta has site and station: %r" % m)
            metas[m["agent"]] = (m["site"], m["station"])
        else:
            check(m["online"] is True and m["seq"] == 0, "the birth is seq 0: %r" % m)
    check(len(phones) == PHONES, "%d distinct phones, got %d" % (PHONES, len(phones)))
    check(len(seqs) == AGENTS, "%d agents, got %d" % (AGENTS, len(seqs)))
    check(len({s for s, _ in metas.values()}) == 3, "3 sites: %r" % metas)
    for agent, s in seqs.items():
        check(sorted(s) == list(range(len(s))), "%s: seq 0..n-1 without gap: %r" % (agent, s))
        check(len(sessions[agent]) == 1, "%s: one session" % agent)
    first = {a: next(iter(s)) for a, s in sessions.items()}
    print("ok first run: %d messages, %d phones, %d agents, seqs without gaps"
          % (len(msgs), len(phones), len(seqs)))

    # a second run is a new session for every agent (as a restarted agent), seq from 0 again
    run_loadgen(broker, "--window", "3")
    again = retained(broker, PHONES + 2 * AGENTS)
    for _, topic, payload in again:
        m = json.loads(payload)
        check(m["session"] > first[m["agent"]], "new session after a restart: %s" % topic)
    print("ok second run: new sessions")

for bad in (["--phones", "0"], ["--agents", "x"], ["--prefix", "A/"], ["--window", "-1"], []):
    p = subprocess.run([loadgen, *(["--broker", "tcp://127.0.0.1:1"] if bad else []), *bad],
                       capture_output=True, text=True, timeout=10)
    check(p.returncode == 2 and p.stderr, "usage error for %r: %d %s" % (bad, p.returncode,
                                                                          p.stderr))
print("ok usage errors")
