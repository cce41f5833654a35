#!/usr/bin/python3
"""The stall watchdog of local backups, end to end with Debian's idevicebackup2: a phone that
sends DLMessagePurgeDiskSpace (cradle-sim "purge_disk_space", iOS 14+ behaviour) makes 1.3.0
wait forever. With backup_stall_timeout 3s the command fails with cause stalled well before
the 6 h deadline, the tool is gone, the phone saw the host go away, and the last good backup
(made before, while the phone did not ask for the purge) is untouched."""
import json
import os
import signal
import subprocess
import time

from common import AGENT, SIM, device, states, udid, validate_all, write_scenario
from harness import Agent, Broker, Collector, Sim, fail, sign_args, wait_for

AID = "station-stall-1"
STALL = 3  # backup_stall_timeout, seconds


def start_backup(broker, timeout=60):
    argv = [AGENT, "send", "--broker", broker.url(), "--agent", AID, "--udid", udid(1),
            "backup.local.start", "--json", "--timeout", str(timeout)] + sign_args()
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def finish(p):
    out, _ = p.communicate(timeout=90)
    return p.returncode, [json.loads(x) for x in out.splitlines() if x.startswith("{")]


def backup_tools(u, state_dir):
    """pids of idevicebackup2 processes of this agent (its backup store is in state_dir) working
    on phone u; other tests on the machine may back up a phone of the same UDID."""
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"idevicebackup2") for a in argv) and u.encode() in argv and \
                any(state_dir.encode() in a for a in argv):
            pids.append(int(pid))
    return pids


def tree(path):
    """Every file under path with its size and mtime: 'untouched' means equal."""
    out = {}
    for d, _, files in os.walk(path):
        for f in files:
            st = os.lstat(os.path.join(d, f))
            out[os.path.relpath(os.path.join(d, f), path)] = (st.st_size, st.st_mtime_ns)
    return out


def main():
    backup = {"file_count": 6, "file_size": 2000, "delay_ms": 10}
    good = write_scenario([device(1, backup=backup)])
    purge = write_scenario([device(1, backup=dict(backup, purge_disk_space=True))])
    with Broker() as broker, Sim(SIM, good) as sim:
        col = Collector(broker.port)
        conf = "resync_interval 1s\nbackup_stall_timeout %ds\n" % STALL
        with Agent(AGENT, broker, sim, agent_id=AID, extra_conf=conf) as agent:
            store = os.path.join(agent.state_dir, "backups", udid(1))
            wait_for(lambda: any(s["attached"] and s["probe"] == "ok"
                                 for s in states(col, AID, udid(1))), 20, what="phone 1")
            # a good backup first, from the same phone before it asks for the purge
            rc, res = finish(start_backup(broker))
            if rc != 0 or res[-1]["status"] != "succeeded":
                fail("first backup: rc %d %r" % (rc, res))
            current = os.path.realpath(os.path.join(store, "current"))
            before = tree(current)
            if not any(k.endswith("Status.plist") for k in before):
                fail("no Status.plist in the good backup %s" % current)

            # the same phone (same UDID and pair record), now sending DLMessagePurgeDiskSpace
            sim.stop()
            sim.scenario = purge
            sim.start()
            wait_for(lambda: states(col, AID, udid(1))[-1]["attached"] and
                     states(col, AID, udid(1))[-1]["probe"] == "ok", 20,
                     what="phone 1 back with the purge scenario")
            sim.ctl({"op": "journal", "udid": udid(1)})  # start from an empty journal
            t0 = time.monotonic()
            p = start_backup(broker)
            # the tool is seen running (so that "gone" below means something)
            wait_for(lambda: backup_tools(udid(1), agent.state_dir), 20,
                     what="idevicebackup2 running")
            rc, res = finish(p)
            took = time.monotonic() - t0
            last = res[-1] if res else {}
            if rc != 1 or last.get("status") != "failed" or last.get("cause") != "stalled":
                fail("stalled backup: rc %d %r" % (rc, res))
            # STALL of silence, then SIGTERM (the tool ignores it), SIGKILL 2 s later
            if not STALL <= took < STALL + 20:
                fail("stalled after %.1fs, want about %ds" % (took, STALL + 2))
            if backup_tools(udid(1), agent.state_dir):
                fail("idevicebackup2 still running: %r" % backup_tools(udid(1), agent.state_dir))
            j = wait_for(lambda: [e for e in sim.ctl({"op": "journal", "udid": udid(1)})
                                  .get("journal", []) if e.get("op") in
                                  ("purge_disk_space", "backup_finished")] or None, 10,
                         what="the phone's journal")
            ops = [e["op"] for e in j]
            if "purge_disk_space" not in ops:
                fail("the phone never asked for the purge: %r" % j)
            if os.path.realpath(os.path.join(store, "current")) != current or \
                    tree(current) != before or \
                    os.path.exists(os.path.join(store, ".incoming")):
                fail("the stalled backup touched the last good one")
            events = [m for t, m, r, ts in col.json("cradle/v1/agent/%s/device/+/event" % AID)
                      if m["event"] == "backup_failed"]
            if not events:
                fail("no backup_failed device event")
            print("purge: failed stalled after %.1fs, tool gone, last good backup untouched" %
                  took)
            if not agent.proc.alive():
                fail("the agent died")
            n = validate_all(col)
            print("%d messages validated" % n)
        col.close()
    os.unlink(good)
    os.unlink(purge)
    print("ok")


if __name__ == "__main__":
    signal.alarm(230)
    main()
