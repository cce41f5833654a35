#!/usr/bin/python3
"""cradle-agent's metrics_file (node_exporter textfile format) against real parts: mosquitto,
cradle-sim with four phones (three attached), the agent writing every second. Every read is
parsed strictly (tests/lib/promparse.py).

- the file's directory missing at start: the agent runs on, logs the failure once (rate limit),
  and once the directory exists writes the file, mode 0644, with the failed writes counted;
- (as root) the directory a full tmpfs: the failure logged and counted, the last complete file
  left in place, and written again once there is room;
- phones attached follows the simulator (attach, detach); probes by outcome, their duration
  histogram counting every probe;
- a command: command_results_total{status} accepted +1, succeeded +1;
- the broker down: broker_connected 0 and the outbox holding what the agent published meanwhile
  (records and bytes); back up: 1, the outbox drained, messages_acked_total moved;
- a reader looping over the file while the agent rewrites it never sees a partial file;
- at exit (SIGTERM) the file is written once more: broker_connected 0."""
import os
import stat
import subprocess
import sys
import threading
import time
import uuid

from common import AGENT, SIM, device, udid, write_scenario
from harness import Agent, Broker, Sim, fail, sign_args, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import promparse  # noqa: E402

AID = "st-agent-metrics"


def read(path):
    with open(path) as f:
        text = f.read()
    try:
        return promparse.parse(text)
    except promparse.ParseError as e:
        fail("%s does not parse: %s\n%s" % (path, e, text))


def send(broker, u, name):
    argv = [AGENT, "send", "--broker", broker.url(), "--agent", AID, "--udid", u, name,
            "--json", "--timeout", "60", "--cmd-id", str(uuid.uuid4())] + sign_args()
    return subprocess.run(argv, capture_output=True, text=True, timeout=90)


def full_disk(agent, tdir, path):
    failures = read(path).get("cradle_agent_metrics_write_failures_total")
    filler = os.path.join(tdir, "filler")
    try:
        with open(filler, "wb") as f:
            while True:
                f.write(b"x" * 512)
                f.flush()
    except OSError:
        pass
    wait_for(lambda: agent.proc.stderr_text().count("metrics: cannot write") == 2, 10,
             what="the full disk logged")
    if "No space left" not in agent.proc.stderr_text():
        fail("the log does not say the disk is full")
    time.sleep(2.2)
    if agent.proc.stderr_text().count("metrics: cannot write") != 2:
        fail("a full disk should be logged once, not every second")
    read(path)  # the last complete file is still there and parses
    os.unlink(filler)
    wait_for(lambda: agent.proc.stderr_text().count("written again") == 2, 10,
             what="written again after the disk has room")
    got = read(path).get("cradle_agent_metrics_write_failures_total")
    if got < failures + 2:
        fail("full disk: failures %r -> %r, want at least +2" % (failures, got))
    print("full disk: logged once, %d failures counted, the old file intact, then written"
          % (got - failures))


def main():
    mounted = []
    try:
        run(mounted)
    finally:
        for d in mounted:
            subprocess.run(["umount", "-l", d])


def run(mounted):
    scenario = write_scenario([device(1), device(2), device(3), device(4, attached=False)])
    with Broker() as broker, Sim(SIM, scenario) as sim:
        agent = Agent(AGENT, broker, sim, agent_id=AID, extra_conf="metrics_interval 1s\n")
        tdir = os.path.join(agent.tmp, "textfile")
        path = os.path.join(tdir, "cradle-agent.prom")
        with open(agent.conf, "a") as f:
            f.write("metrics_file %s\n" % path)
        with agent:
            # -- the directory missing: logged once, counted, the agent goes on
            wait_for(lambda: "metrics: cannot write" in agent.proc.stderr_text(), 10,
                     what="the failed write logged")
            time.sleep(2.5)
            if not agent.proc.alive():
                fail("the agent stopped over a missing metrics directory")
            n_logged = agent.proc.stderr_text().count("metrics: cannot write")
            if n_logged != 1:
                fail("the failure should be logged once (rate limit), got %d" % n_logged)
            os.mkdir(tdir)
            if os.geteuid() == 0:  # a small file system of its own, to fill later
                subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", tdir],
                               check=True)
                mounted.append(tdir)
            wait_for(lambda: os.path.exists(path), 5, what="the metrics file")
            m = read(path)
            if m.get("cradle_agent_metrics_write_failures_total") < 3:
                fail("failed writes not counted: %r" %
                     m.get("cradle_agent_metrics_write_failures_total"))
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode != 0o644:
                fail("mode %o, want 644" % mode)
            if "metrics: '%s' written again" % path not in agent.proc.stderr_text():
                fail("the recovery is not logged")
            print("missing directory: logged once, %d failures counted, then written (0644)" %
                  m.get("cradle_agent_metrics_write_failures_total"))

            # -- a full disk: logged, counted, the last file intact, then written again
            if mounted:
                full_disk(agent, tdir, path)
            else:
                print("full disk: SKIPPED, needs root to mount a tmpfs")

            # -- phones attached, probes
            wait_for(lambda: read(path).get("cradle_agent_phones_attached") == 3 and
                     read(path).get("cradle_agent_probes_total", outcome="ok") >= 3, 20,
                     what="3 phones attached, 3 probes ok")
            m = read(path)
            probes = m.sum("cradle_agent_probes_total")
            if m.get("cradle_agent_probe_duration_seconds_count") != probes:
                fail("probe histogram count %r != probes %r" %
                     (m.get("cradle_agent_probe_duration_seconds_count"), probes))
            if not 0 < m.get("cradle_agent_probe_duration_seconds_sum") < 30 * probes:
                fail("probe durations: %r" % m.get("cradle_agent_probe_duration_seconds_sum"))
            if m.get("cradle_agent_broker_connected") != 1:
                fail("broker_connected should be 1")
            if m.find("cradle_agent_build_info")[0][1] != 1:
                fail("build_info")
            if m.get("cradle_agent_process_resident_memory_bytes") < 1 << 20 or \
                    m.get("cradle_agent_process_open_fds") < 5 or \
                    m.get("cradle_agent_helpers_cpu_seconds_total") <= 0:
                fail("process basics: %r" % [(n, v) for n, _, v in m.order
                                             if "process" in n or "helpers" in n])

            # -- a reader loops over the file while phones come and go
            stop = threading.Event()
            seen = {"reads": 0, "inodes": set(), "bad": None}

            def reader():
                while not stop.is_set():
                    try:
                        st = os.stat(path)
                        with open(path) as f:
                            text = f.read()
                    except FileNotFoundError:
                        seen["bad"] = "the file vanished during a rewrite"
                        return
                    try:
                        promparse.parse(text)
                    except promparse.ParseError as e:
                        seen["bad"] = "%s\n%s" % (e, text)
                        return
                    if "cradle_agent_metrics_write_failures_total " not in text:
                        seen["bad"] = "the file is cut short:\n" + text
                        return
                    seen["reads"] += 1
                    seen["inodes"].add(st.st_ino)
                    time.sleep(0.001)
            t = threading.Thread(target=reader)
            t.start()
            sim.ctl_ok({"op": "attach", "udid": udid(4)})
            wait_for(lambda: read(path).get("cradle_agent_phones_attached") == 4, 15,
                     what="4 attached")
            sim.ctl_ok({"op": "detach", "udid": udid(1)})
            wait_for(lambda: read(path).get("cradle_agent_phones_attached") == 3, 15,
                     what="3 attached after a detach")
            if read(path).get("cradle_agent_phones_known") != 4:
                fail("phones_known should be 4")
            time.sleep(2)
            stop.set()
            t.join()
            if seen["bad"]:
                fail("a reader saw a bad file: %s" % seen["bad"])
            if seen["reads"] < 50 or len(seen["inodes"]) < 3:
                fail("the reader loop saw too little: %d reads, %d versions" %
                     (seen["reads"], len(seen["inodes"])))
            print("reader: %d complete reads over %d rewrites, never a partial file" %
                  (seen["reads"], len(seen["inodes"])))

            # -- a command: accepted, then succeeded
            m0 = read(path)
            r = send(broker, udid(2), "backup.icloud.enable")
            if r.returncode != 0:
                fail("backup.icloud.enable: %d %s %s" % (r.returncode, r.stdout, r.stderr))

            def moved():
                m = read(path)
                return all(m.get("cradle_agent_command_results_total", status=s) ==
                           m0.get("cradle_agent_command_results_total", status=s) + 1
                           for s in ("accepted", "succeeded"))
            wait_for(moved, 10, what="command_results_total accepted +1, succeeded +1")
            print("command: results by status moved")

            # -- the broker down: connected 0, the outbox holds what is published meanwhile
            acked0 = read(path).get("cradle_agent_messages_acked_total")
            broker.stop()
            wait_for(lambda: read(path).get("cradle_agent_broker_connected") == 0, 15,
                     what="broker_connected 0")
            sim.ctl_ok({"op": "detach", "udid": udid(3)})
            wait_for(lambda: read(path).get("cradle_agent_outbox_records") >= 2, 15,
                     what="the detach's state and event in the outbox")
            if read(path).get("cradle_agent_outbox_bytes") < 100:
                fail("outbox bytes: %r" % read(path).get("cradle_agent_outbox_bytes"))
            broker.start()
            wait_for(lambda: read(path).get("cradle_agent_broker_connected") == 1 and
                     read(path).get("cradle_agent_outbox_records") == 0, 60,
                     what="connected again, outbox drained")
            if read(path).get("cradle_agent_messages_acked_total") < acked0 + 2:
                fail("messages_acked_total did not move")
            print("broker down: connected 0, outbox records and bytes; back: drained")

            # -- at exit the last numbers
            rc = agent.stop()
            if rc != 0:
                fail("SIGTERM: exit status %r" % rc)
            m = read(path)
            if m.get("cradle_agent_broker_connected") != 0:
                fail("the file written at exit should say disconnected")
            print("exit: written once more, broker_connected 0")
            for d in mounted:  # before the agent's directory is removed
                subprocess.run(["umount", d], check=True)
            mounted.clear()


if __name__ == "__main__":
    main()
