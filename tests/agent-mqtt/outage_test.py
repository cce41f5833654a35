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
import getpass
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import free_port  # noqa: E402

AGENT = "test-agent"
RATE = 50
STATE_EVERY = 5
KEYS = 4
WILL_DELAY = 2
OUTAGE_S = 6

procs = []



def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"FAIL: broker port {port} not up after {timeout}s")


def start(args, **kw):
    p = subprocess.Popen(args, **kw)
    procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, timeout=30):
    if p.poll() is None:
        p.send_signal(sig)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise SystemExit(f"FAIL: {p.args[0]} did not stop within {timeout}s")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def make_env(prefix, persistent):
    """A temp dir with a broker config on a free port and the driver's agent config."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    port = free_port()
    state = os.path.join(tmp, "state")
    os.mkdir(state)
    mconf = os.path.join(tmp, "mosquitto.conf")
    with open(mconf, "w") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"
                f"log_dest file {tmp}/mosquitto.log\n"
                # as root mosquitto would switch to user 'mosquitto', who cannot write here
                f"user {getpass.getuser()}\n")
        f.write(f"persistence true\npersistence_location {tmp}/\n" if persistent
                else "persistence false\n")
    aconf = os.path.join(tmp, "agent.conf")
    with open(aconf, "w") as f:
        f.write(f"agent_id {AGENT}\nbroker_url tcp://127.0.0.1:{port}\nstate_dir {state}\n"
                f"keepalive 5s\nwill_delay {WILL_DELAY}s\nsession_expiry 1m\n")
    return tmp, port, mconf, aconf


def cleanup(tmp):
    if sys.exc_info()[0] is not None:  # failing: show what the processes said
        for name in ("driver.log", "mosquitto.log"):
            path = os.path.join(tmp, name)
            if os.path.exists(path):
                with open(path, errors="replace") as f:
                    print(f"--- {name} (tail) ---\n" + "".join(f.readlines()[-30:]))
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    if os.environ.get("KEEP_TMP"):
        print(f"kept {tmp}")
    else:
        subprocess.run(["rm", "-rf", tmp])


def read_numbers(paths):
    """Union of the numbers in the collector files, and the duplicates within each file (two
    collectors may both see the same message: that is not a transport duplicate)."""
    seen, dups = set(), 0
    for path in paths:
        mine = set()
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                n = int(line.split(":")[1].rstrip("}"))
                if n in mine:
                    dups += 1
                mine.add(n)
        seen |= mine
    return seen, dups


def session_lost(a):
    """Broker frozen with publishes in flight, then killed and restarted WITHOUT persistence:
    the driver reconnects to a broker that has no session (sessionPresent 0), Paho fails the
    in-flight publishes with -11, and the outbox must resend them."""
    tmp, port, mconf, aconf = make_env("mqtt-session-lost-", persistent=False)
    base = f"cradle/v1/agent/{AGENT}"
    sub_cmd = ["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
               "-t", f"{base}/device/+/event"]
    outs = [os.path.join(tmp, "before.txt"), os.path.join(tmp, "after.txt")]
    try:
        broker = start(["mosquitto", "-c", mconf])
        wait_port(port)
        start(sub_cmd, stdout=open(outs[0], "wb"))
        time.sleep(0.5)
        drv = start([a.driver, aconf, "200", "0", "1"], stdout=subprocess.PIPE,
                    stderr=open(os.path.join(tmp, "driver.log"), "wb"))
        time.sleep(2)
        broker.send_signal(signal.SIGSTOP)  # PUBACKs stop: the in-flight window fills
        time.sleep(1)
        stop(broker, signal.SIGKILL)
        broker = start(["mosquitto", "-c", mconf])
        wait_port(port)
        start(sub_cmd, stdout=open(outs[1], "wb"))
        time.sleep(3)
        stop(drv, signal.SIGTERM)
        if drv.returncode != 0:
            raise SystemExit(f"FAIL: driver exited with {drv.returncode}")
        last = drv.stdout.read().decode().strip().splitlines()[-1].split()
        produced, depth, failed = int(last[1]), int(last[3]), int(last[5])
        time.sleep(1)
        seen, dups = read_numbers(outs)
        missing = sorted(set(range(1, produced + 1)) - seen)
        print(f"session lost: produced {produced}, {failed} publishes failed and were resent, "
              f"outbox depth {depth}, {len(missing)} missing, {dups} duplicates")
        if depth != 0:
            raise SystemExit("FAIL: outbox not drained after the broker lost the session")
        if failed == 0:
            raise SystemExit("FAIL: no publish was in flight when the broker died")
        if missing:
            raise SystemExit(f"FAIL: missing numbers (first 20): {missing[:20]}")
        print("PASS")
    finally:
        cleanup(tmp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--driver", required=True)
    ap.add_argument("--scenario", default="outage", choices=["outage", "session-lost"])
    a = ap.parse_args()
    if a.scenario == "session-lost":
        return session_lost(a)

    tmp, port, mconf, aconf = make_env("mqtt-outage-", persistent=True)
    broker_cmd = ["mosquitto", "-c", mconf]
    base = f"cradle/v1/agent/{AGENT}"
    sub_cmd = ["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(port), "-c",
               "-x", "600", "-i", "collector", "-q", "1", "-t", f"{base}/device/+/event"]
    drv_cmd = [a.driver, aconf, str(RATE), str(STATE_EVERY), str(KEYS)]
    collected = os.path.join(tmp, "collected.txt")
    drv_log = open(os.path.join(tmp, "driver.log"), "ab")

    def run_driver():
        return start(drv_cmd, stdout=subprocess.PIPE, stderr=drv_log)

    def retained(topic_filter, timeout=3):
        out = subprocess.run(["mosquitto_sub", "-V", "mqttv5", "-h", "127.0.0.1", "-p",
                              str(port), "-t", topic_filter, "--retained-only", "-W",
                              str(timeout), "-v"], capture_output=True, text=True,
                             timeout=timeout + 5).stdout
        res = {}
        for line in out.splitlines():
            t, _, p = line.partition(" ")
            res[t] = p
        return res

    try:
        broker = start(broker_cmd)
        wait_port(port)
        sub = start(sub_cmd, stdout=open(collected, "ab"))
        time.sleep(0.5)
        drv = run_driver()
        time.sleep(2)

        # broker outage while the driver keeps producing
        stop(broker)
        t_down = time.monotonic()
        time.sleep(1)
        c0, w0 = cpu_ticks(drv.pid), time.monotonic()
        time.sleep(3)
        c1, w1 = cpu_ticks(drv.pid), time.monotonic()
        hz = os.sysconf("SC_CLK_TCK")
        cpu = (c1 - c0) / hz / (w1 - w0)
        print(f"driver CPU while broker down: {cpu * 100:.1f}% of a core "
              f"(producing {RATE} msg/s into the outbox)")

        # crash the driver mid-outage and restart it, broker still down
        stop(drv, signal.SIGKILL)
        drv = run_driver()
        time.sleep(max(0.5, OUTAGE_S - (time.monotonic() - t_down)))

        # broker back
        broker = start(broker_cmd)
        wait_port(port)
        t_up = time.monotonic()
        if sub.poll() is not None:  # mosquitto_sub gave up while the broker was away
            sub = start(sub_cmd, stdout=open(collected, "ab"))
        time.sleep(2)

        # stop producing; the driver drains its outbox and exits cleanly
        stop(drv, signal.SIGTERM)
        if drv.returncode != 0:  # also what ASan/LSan report with
            raise SystemExit(f"FAIL: driver exited with {drv.returncode}, see driver.log")
        last = drv.stdout.read().decode().strip().splitlines()[-1]
        produced, depth = int(last.split()[1]), int(last.split()[3])
        print(f"driver: {last}")
        if depth != 0:
            raise SystemExit(f"FAIL: outbox not drained: {depth} left")

        # wait (bounded) for the collector to see every number
        want = set(range(1, produced + 1))
        seen, dups = set(), 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            seen, dups = set(), 0
            with open(collected) as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    n = int(line.split(":")[1].rstrip("}"))
                    if n in seen:
                        dups += 1
                    seen.add(n)
            if want <= seen:
                break
            time.sleep(0.2)
        missing = sorted(want - seen)
        print(f"produced {produced}, received {len(seen)} distinct, {dups} duplicates, "
              f"{len(missing)} missing; broker was down {t_up - t_down:.1f}s")
        if missing:
            raise SystemExit(f"FAIL: missing numbers (first 20): {missing[:20]}")
        stop(sub)

        # the retained state per key is the newest one produced
        states = retained(f"{base}/device/+/state")
        for k in range(KEYS):
            newest = max((n for n in range(STATE_EVERY, produced + 1, STATE_EVERY)
                          if (n // STATE_EVERY) % KEYS == k), default=None)
            got = states.get(f"{base}/device/dev{k}/state")
            if newest is not None and got != f'{{"n":{newest}}}':
                raise SystemExit(f"FAIL: retained state dev{k} is {got}, want n={newest}")
        print(f"retained states: newest per key OK ({len(states)} keys)")
        status = retained(f"{base}/status").get(f"{base}/status", "")
        if '"online":false' not in status:
            raise SystemExit(f"FAIL: clean shutdown left status {status!r}")

        # will: SIGKILL the driver; status stays online within the will delay, then offline
        drv = run_driver()
        deadline = time.monotonic() + 10
        while '"online":true' not in retained(f"{base}/status", 1).get(f"{base}/status", ""):
            if time.monotonic() > deadline:
                raise SystemExit("FAIL: driver did not publish its birth")
        # incoming messages reach the loop thread with retained flag and message expiry;
        # one over the 64 KiB cap is dropped
        pub = ["mosquitto_pub", "-V", "mqttv5", "-h", "127.0.0.1", "-p", str(port), "-q", "1",
               "-t", f"{base}/cmd"]
        subprocess.run(pub + ["-m", "hello", "-D", "publish", "message-expiry-interval", "60"],
                       check=True, timeout=10)
        subprocess.run(pub + ["-m", "x" * 70000], check=True, timeout=10)
        subprocess.run(pub + ["-r", "-m", "kept"], check=True, timeout=10)
        time.sleep(1)
        stop(drv, signal.SIGKILL)
        t_kill = time.monotonic()
        rx = [l for l in drv.stdout.read().decode().splitlines() if l.startswith("rx ")]
        # the retained one keeps its flag live: the subscription sets Retain As Published
        want_rx = [f"rx {base}/cmd len=5 retained=0 expiry=60",
                   f"rx {base}/cmd len=4 retained=1 expiry=-1"]
        if rx != want_rx:
            raise SystemExit(f"FAIL: received {rx}, want {want_rx}")
        print("incoming: expiry and size cap OK")
        early = retained(f"{base}/status", 1).get(f"{base}/status", "")
        if '"online":true' not in early and time.monotonic() - t_kill < WILL_DELAY:
            raise SystemExit(f"FAIL: status changed before the will delay: {early!r}")
        deadline = t_kill + WILL_DELAY + 10
        status = ""
        while time.monotonic() < deadline:
            status = retained(f"{base}/status", 1).get(f"{base}/status", "")
            if '"online":false' in status:
                break
        if '"online":false' not in status:
            raise SystemExit(f"FAIL: will not published: status {status!r}")
        print(f"will: online:false {time.monotonic() - t_kill:.1f}s after kill -9 "
              f"(will delay {WILL_DELAY}s)")
        if cpu >= 0.10:
            raise SystemExit(f"FAIL: driver CPU {cpu * 100:.1f}% while broker down")
        print("PASS")
    finally:
        cleanup(tmp)
        drv_log.close()


if __name__ == "__main__":
    sys.exit(main())
