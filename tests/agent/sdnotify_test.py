#!/usr/bin/python3
"""cradle-agent under a service manager's notify socket (Type=notify, WatchdogSec=): no systemd
runs as PID 1 in the container the suite runs in, so the test is the manager: it binds the
AF_UNIX datagram socket (tests/lib/notifysock.py) and starts the real daemon with
NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID. It asserts:
- READY=1 arrives with the broker down (a station comes up without its broker; READY means the
  state is loaded, the outbox open and the loop turning), STATUS says it is connecting, then
  counts the phone usbmuxd lists, and says "connected" once the broker is up; an unchanged
  status is not sent again;
- WATCHDOG=1 comes again and again at half the interval (never a gap the manager would kill
  for), and stops while the process is stopped (SIGSTOP: a hung loop stops pinging), then
  resumes;
- SIGTERM: STOPPING=1, exit 0;
- without NOTIFY_SOCKET the daemon runs as before (nothing to tell); with its stderr the
  journal's stream (JOURNAL_STREAM) every line starts with its syslog priority "<N>"."""
import os
import re
import signal
import statistics
import sys
import time

from common import AGENT, SIM, device, write_scenario
from harness import Agent, Broker, Proc, Sim, fail, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from notifysock import NotifySocket  # noqa: E402

WATCHDOG_USEC = 2000000  # pings every 1 s


def main():
    scenario = write_scenario([device(1)])
    with Broker() as broker, Sim(SIM, scenario) as sim, NotifySocket() as ns:
        agent = Agent(AGENT, broker, sim, agent_id="station-notify",
                      extra_conf="resync_interval 1s\n")
        broker.stop()  # the station must come up without its broker
        agent.proc = Proc("agent", agent.tmp)
        agent.proc.spawn(ns.argv([agent.bin, "-c", agent.conf]),
                         env=ns.env(sim.env(), watchdog_usec=WATCHDOG_USEC))
        try:
            ns.wait_for("READY=1", 30)
            t, status = ns.wait_for("STATUS=", 5)
            if "connecting" not in status:
                fail("the ready status does not say it is connecting: %r" % status)

            # the phones usbmuxd (the simulator) lists, from the next resync
            wait_for(lambda: any("; 1 phone on usbmuxd" in m for _, m in ns.lines("STATUS=")),
                     10, what="STATUS with the phone count")
            broker.start()
            t, status = wait_for(lambda: next(((t, m) for t, m in ns.lines("STATUS=")
                                               if "connected to" in m), None),
                                 30, what="STATUS connected")
            if "1 phone on usbmuxd" not in status:
                fail("the status lost the phone count: %r" % status)
            n_status = len(ns.lines("STATUS="))

            # the cadence: half the interval, never a gap the manager would kill for
            t0 = time.monotonic()
            wait_for(lambda: len([x for x in ns.times("WATCHDOG=1") if x > t0]) >= 5, 15,
                     what="5 watchdog pings")
            pings = ns.times("WATCHDOG=1")
            gaps = [b - a for a, b in zip(pings, pings[1:])]
            if max(gaps) >= WATCHDOG_USEC / 1e6:
                fail("a watchdog gap the manager would kill for: %r" % gaps)
            med = statistics.median(gaps)
            if not 0.7 <= med <= 1.4:
                fail("pings not at half the interval (1 s): median %.2f s, gaps %r" % (med, gaps))

            # the same status again (every resync) is not sent again
            if len(ns.lines("STATUS=")) != n_status:
                fail("unchanged status sent again: %r" % ns.lines("STATUS=")[n_status - 1:])

            # a stopped process (as a hung loop) stops pinging; it resumes after SIGCONT
            agent.proc.signal(signal.SIGSTOP)
            time.sleep(0.2)  # a datagram already in flight
            t_stop = time.monotonic()
            time.sleep(3)
            during = [x for x in ns.times("WATCHDOG=1") if x > t_stop]
            agent.proc.signal(signal.SIGCONT)
            if during:
                fail("a stopped agent kept pinging: %d pings" % len(during))
            ns.wait_for("WATCHDOG=1", 5, after=time.monotonic())

            t_term = time.monotonic()
            rc = agent.proc.stop()
            agent.proc = None
            if rc != 0:
                fail("agent exited %s on SIGTERM" % rc)
            ns.wait_for("STOPPING=1", 1, after=t_term - 0.001)
            if not ns.lines("READY=1") or len(ns.lines("READY=1")) != 1:
                fail("READY=1 sent %d times" % len(ns.lines("READY=1")))
        except Exception:
            if agent.proc:
                sys.stderr.write(agent.proc.stderr_text()[-6000:])
            raise
        finally:
            agent.__exit__(None, None, None)

        # no manager: no NOTIFY_SOCKET, the agent runs and stops as before. Its stderr is made
        # the journal's stream (JOURNAL_STREAM = the file's device:inode, as systemd sets it):
        # every line carries its syslog priority
        plain = Agent(AGENT, broker, sim, agent_id="station-plain",
                      extra_conf="log_level debug\n")
        plain.proc = Proc("agent", plain.tmp)
        open(plain.proc.err_path, "ab").close()
        st = os.stat(plain.proc.err_path)
        env = {k: v for k, v in sim.env().items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC",
                                                                "WATCHDOG_PID")}
        env["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        plain.proc.spawn([plain.bin, "-c", plain.conf], env=env)
        try:
            wait_for(lambda: "connected to" in plain.proc.stderr_text(), 20,
                     what="agent connected")
            if not plain.proc.alive():
                fail("agent without NOTIFY_SOCKET exited: " + plain.proc.stderr_text()[-2000:])
            rc = plain.proc.stop()
            err = plain.proc.stderr_text()
            plain.proc = None
            if rc != 0:
                fail("agent exited %s: %s" % (rc, err[-2000:]))
            if "service manager" in err:
                fail("agent without a manager complains about notifications: " + err[-2000:])
            lines = [ln for ln in err.splitlines() if ln.startswith("<") or "cradle-agent" in ln]
            bad = [ln for ln in lines if not re.match(r"<[3-7]>cradle-agent", ln)]
            if bad:
                fail("journal lines without their priority: %r" % bad[:5])
            for want in (r"<6>cradle-agent: info: connected to", r"<5>cradle-agent: notice: "
                         r"received Terminated, stopping", r"<7>cradle-agent: debug: "):
                if not re.search("^" + want, err, re.M):
                    fail("no line %r in the journal stream: %s" % (want, err[-2000:]))
        finally:
            plain.__exit__(None, None, None)
    print("ok: READY with the broker down, STATUS, WATCHDOG every ~1 s (median %.2f s), none "
          "while stopped, STOPPING on SIGTERM; <N> priorities on the journal stream" % med)


if __name__ == "__main__":
    main()
