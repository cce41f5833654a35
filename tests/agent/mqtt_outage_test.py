#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Outbox + MQTT client against a real mosquitto (broker outage and agent kill, module level).

Scenario: the driver (outbox_drive, the agent's config/outbox/mqtt code) publishes numbered
events and retained states; the broker is stopped while the driver keeps producing, the driver
is killed with SIGKILL and restarted while the broker is still down, then the broker comes back.
Checks: every number reached a persistent subscriber (no gap; duplicates are counted, allowed),
the retained state per key is the newest one, the driver did not spin while the broker was
down (CPU < 10 % of a core), and after a SIGKILL of the driver the retained status turns
online:false only after the will delay.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Broker, Collector, Proc, fail, holds, wait_for  # noqa: E402

AGENT = "test-agent"
BASE = f"cradle/v1/agent/{AGENT}"
RATE = 50
STATE_EVERY = 5
KEYS = 4
WILL_DELAY = 2
OUTAGE_S = 6


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class Driver:
    """outbox_drive with stdout in a file, so the test can wait for what it printed."""

    def __init__(self, binary, conf, tmp, args):
        self.argv = [binary, conf] + [str(a) for a in args]
        self.tmp = tmp
        self.runs = 0
        self.proc = None

    def start(self):
        self.runs += 1
        self.proc = Proc("driver%d" % self.runs, self.tmp)
        self.proc.spawn(self.argv)
        return self

    @property
    def pid(self):
        return self.proc.p.pid

    def lines(self):
        with open(self.proc.out_path, errors="replace") as f:
            return f.read().splitlines()

    def stop(self):
        """SIGTERM: the driver drains its outbox; returns (produced, depth, failed)."""
        rc = self.proc.stop(timeout=30)
        if rc != 0:  # also what ASan/LSan report with
            fail(f"driver exited with {rc}: {self.proc.stderr_text()[-3000:]}")
        last = self.lines()[-1].split()
        print("driver: " + " ".join(last))
        return int(last[1]), int(last[3]), int(last[5])

    def kill9(self):
        self.proc.kill9()

    def log(self):
        return "".join("--- driver%d stderr (tail) ---\n%s" %
                       (i, Proc("driver%d" % i, self.tmp).stderr_text()[-3000:])
                       for i in range(1, self.runs + 1))


def numbers(col):
    """The event numbers the collector received: (distinct set, duplicates)."""
    seen, dups = set(), 0
    for _, payload, _, _ in col.all(f"{BASE}/device/+/event"):
        n = json.loads(payload)["n"]
        dups += n in seen
        seen.add(n)
    return seen, dups


def retained(port, topic_filter, timeout=3):
    """The broker's retained messages under topic_filter: {topic: payload text}."""
    out = subprocess.run(["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(port),
                          "-t", topic_filter, "--retained-only", "-W", str(timeout), "-v"],
                         capture_output=True, text=True, timeout=timeout + 5).stdout
    res = {}
    for line in out.splitlines():
        t, _, p = line.partition(" ")
        res[t] = p
    return res


def agent_conf(tmp, port):
    state = os.path.join(tmp, "state")
    os.mkdir(state)
    conf = os.path.join(tmp, "agent.conf")
    with open(conf, "w") as f:
        f.write(f"agent_id {AGENT}\nbroker_url tcp://127.0.0.1:{port}\nstate_dir {state}\n"
                f"keepalive 5s\nwill_delay {WILL_DELAY}s\nsession_expiry 1m\n")
    return conf


def session_lost(a, tmp):
    """Broker frozen with publishes in flight, then killed and restarted WITHOUT persistence:
    the driver reconnects to a broker that has no session (sessionPresent 0), Paho fails the
    in-flight publishes with -11, and the outbox must resend them."""
    with Broker(persistent=False, extra_conf="max_queued_messages 100000\n") as broker:
        col = Collector(broker.port, f"{BASE}/device/+/event", client_id="collector")
        drv = Driver(a.driver, agent_conf(tmp, broker.port), tmp, [200, 0, 1]).start()
        try:
            wait_for(lambda: len(numbers(col)[0]) >= 100, 20, what="100 events on the broker")
            broker.proc.signal(signal.SIGSTOP)  # PUBACKs stop: the in-flight window fills
            time.sleep(1)  # scenario: publishes pile up in flight while the broker is frozen
            broker.kill9()
            broker.start()
            # the collector reconnects and subscribes again on its own (clean session)
            n_back = len(numbers(col)[0])
            wait_for(lambda: len(numbers(col)[0]) >= n_back + 100, 20,
                     what="100 more events after the broker lost the session")
            produced, depth, failed = drv.stop()
            seen, dups = set(), 0
            missing = []

            def complete():
                nonlocal seen, dups, missing
                seen, dups = numbers(col)
                missing = sorted(set(range(1, produced + 1)) - seen)
                return not missing
            try:
                wait_for(complete, 15, what="every produced number at the collector")
            except TimeoutError:
                pass
        except BaseException:
            sys.stderr.write(drv.log())
            raise
        finally:
            col.close()
    print(f"session lost: produced {produced}, {failed} publishes failed and were resent, "
          f"outbox depth {depth}, {len(missing)} missing, {dups} duplicates")
    if depth != 0:
        fail("outbox not drained after the broker lost the session")
    if failed == 0:
        fail("no publish was in flight when the broker died")
    if missing:
        fail(f"missing numbers (first 20): {missing[:20]}")
    print("PASS")


def outage(a, tmp):
    with Broker(persistent=True, extra_conf="max_queued_messages 100000\n") as broker:
        port = broker.port
        col = Collector(port, f"{BASE}/#", client_id="collector", persistent=True)
        drv = Driver(a.driver, agent_conf(tmp, port), tmp, [RATE, STATE_EVERY, KEYS]).start()
        try:
            wait_for(lambda: len(numbers(col)[0]) >= RATE, 20,
                     what="a second's worth of events on the broker")

            # broker outage while the driver keeps producing
            broker.stop()
            t_down = time.monotonic()
            time.sleep(1)  # measurement: let the driver notice the broker is gone
            c0, w0 = cpu_ticks(drv.pid), time.monotonic()
            time.sleep(3)  # measurement window
            c1, w1 = cpu_ticks(drv.pid), time.monotonic()
            cpu = (c1 - c0) / os.sysconf("SC_CLK_TCK") / (w1 - w0)
            print(f"driver CPU while broker down: {cpu * 100:.1f}% of a core "
                  f"(producing {RATE} msg/s into the outbox)")

            # crash the driver mid-outage and restart it, broker still down
            drv.kill9()
            drv.start()
            time.sleep(max(0.5, OUTAGE_S - (time.monotonic() - t_down)))  # scenario: outage

            # broker back: new numbers flow again
            broker.start()
            t_up = time.monotonic()
            n_up = max(numbers(col)[0], default=0)
            wait_for(lambda: max(numbers(col)[0], default=0) >= n_up + RATE, 30,
                     what="new events after the broker came back")

            # stop producing; the driver drains its outbox and exits cleanly
            produced, depth, _ = drv.stop()
            if depth != 0:
                fail(f"outbox not drained: {depth} left")
            want = set(range(1, produced + 1))
            try:
                wait_for(lambda: want <= numbers(col)[0], 15,
                         what="every produced number at the collector")
            except TimeoutError:
                pass
            seen, dups = numbers(col)
            missing = sorted(want - seen)
            print(f"produced {produced}, received {len(seen)} distinct, {dups} duplicates, "
                  f"{len(missing)} missing; broker was down {t_up - t_down:.1f}s")
            if missing:
                fail(f"missing numbers (first 20): {missing[:20]}")

            # the retained state per key is the newest one produced
            states = retained(port, f"{BASE}/device/+/state")
            for k in range(KEYS):
                newest = max((n for n in range(STATE_EVERY, produced + 1, STATE_EVERY)
                              if (n // STATE_EVERY) % KEYS == k), default=None)
                got = states.get(f"{BASE}/device/dev{k}/state")
                if newest is not None and got != f'{{"n":{newest}}}':
                    fail(f"retained state dev{k} is {got}, want n={newest}")
            print(f"retained states: newest per key OK ({len(states)} keys)")
            status = retained(port, f"{BASE}/status").get(f"{BASE}/status", "")
            if '"online":false' not in status:
                fail(f"clean shutdown left status {status!r}")

            # will: SIGKILL the driver; status stays online within the will delay, then offline
            n_status = len(col.all(f"{BASE}/status"))
            drv.start()
            wait_for(lambda: any(b'"online":true' in m[1]
                                 for m in col.all(f"{BASE}/status")[n_status:]), 10,
                     what="the driver's birth")
            # incoming messages reach the loop thread with retained flag and message expiry;
            # one over the 64 KiB cap comes without its payload, marked oversize (so the agent
            # can answer it, issue 8 item 12)
            pub = ["mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(port), "-q",
                   "1", "-t", f"{BASE}/cmd"]
            subprocess.run(pub + ["-m", "hello", "-D", "publish", "message-expiry-interval",
                                  "60"], check=True, timeout=10)
            subprocess.run(pub + ["-m", "x" * 70000], check=True, timeout=10)
            subprocess.run(pub + ["-r", "-m", "kept"], check=True, timeout=10)
            # the retained one keeps its flag live: the subscription sets Retain As Published
            want_rx = [f"rx {BASE}/cmd len=5 retained=0 expiry=60",
                       f"rx {BASE}/cmd len=70000 retained=0 expiry=-1 oversize",
                       f"rx {BASE}/cmd len=4 retained=1 expiry=-1"]

            def rx():
                return [line for line in drv.lines() if line.startswith("rx ")]
            try:
                wait_for(lambda: len(rx()) >= 3, 10, what="the driver printing three rx lines")
            except TimeoutError:
                pass
            # and no fourth one (each message once)
            holds(lambda: len(rx()) <= 3, 0.5, what="no fourth rx line")
            if rx() != want_rx:
                fail(f"received {rx()}, want {want_rx}")
            print("incoming: expiry and size cap OK")
            n_status = len(col.all(f"{BASE}/status"))
            drv.kill9()
            t_kill = time.monotonic()

            def offline():
                return any(b'"online":false' in m[1]
                           for m in col.all(f"{BASE}/status")[n_status:])
            holds(lambda: not offline() or time.monotonic() - t_kill >= WILL_DELAY,
                  WILL_DELAY * 0.8, what="status stays online within the will delay")
            wait_for(offline, WILL_DELAY + 10, what="the will (online:false)")
            print(f"will: online:false {time.monotonic() - t_kill:.1f}s after kill -9 "
                  f"(will delay {WILL_DELAY}s)")
            if cpu >= 0.10:
                fail(f"driver CPU {cpu * 100:.1f}% while broker down")
        except BaseException:
            sys.stderr.write(drv.log())
            raise
        finally:
            col.close()
    print("PASS")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--scenario", default="outage", choices=["outage", "session-lost"])
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="mqtt-%s-" % a.scenario)
    try:
        (session_lost if a.scenario == "session-lost" else outage)(a, tmp)
    finally:
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    sys.exit(main())
