#!/usr/bin/python3
"""cradle-dashboard under a service manager's notify socket (Type=notify, WatchdogSec=): no
systemd runs as PID 1 in the container the suite runs in, so the test binds the AF_UNIX
datagram socket itself (tests/lib/notifysock.py). It asserts:
- READY=1 comes once the database is open and the HTTP listener bound: the port accepts a
  connection as soon as READY arrives, and STATUS names the listener, then the broker
  connected;
- WATCHDOG=1 pings at half of WATCHDOG_USEC, none while the process is stopped (SIGSTOP);
- SIGTERM: STOPPING=1, exit 0;
- a WATCHDOG_PID that is not the dashboard's (a variable inherited from a parent the manager
  watches): READY, but no pings."""
import os
import signal
import socket
import sys
import time

from dash import DASH, Dashboard
from harness import Broker, Proc, fail, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from notifysock import NotifySocket  # noqa: E402

WATCHDOG_USEC = 2000000  # pings every 1 s


def spawn(dash, ns, **kw):
    dash.proc = Proc("dashboard", dash.tmp)
    argv = [dash.bin, "-c", dash.conf]
    if "watchdog_pid" not in kw:
        argv = ns.argv(argv)
    dash.proc.spawn(argv, env=ns.env(os.environ, **kw))


def main():
    with Broker() as broker:
        dash = Dashboard(DASH, broker)
        with NotifySocket() as ns:
            spawn(dash, ns, watchdog_usec=WATCHDOG_USEC)
            try:
                ns.wait_for("READY=1", 30)
                with socket.create_connection(("127.0.0.1", dash.http_port), timeout=2):
                    pass  # bound before READY
                _, status = ns.wait_for("STATUS=", 2)
                if "127.0.0.1:%d" % dash.http_port not in status:
                    fail("the ready status does not name the listener: %r" % status)

                # the status follows ingest: connected to the broker
                wait_for(lambda: any("%s connected" % broker.url() in m
                                     for _, m in ns.lines("STATUS=")), 15,
                         what="STATUS: broker connected")

                t0 = time.monotonic()
                wait_for(lambda: len([x for x in ns.times("WATCHDOG=1") if x > t0]) >= 4, 10,
                         what="4 watchdog pings")
                pings = ns.times("WATCHDOG=1")
                gaps = [b - a for a, b in zip(pings, pings[1:])]
                if max(gaps) >= WATCHDOG_USEC / 1e6:
                    fail("a watchdog gap the manager would kill for: %r" % gaps)
                if sum(gaps) / len(gaps) < 0.7:
                    fail("pings faster than half the interval (1 s): %r" % gaps)

                dash.proc.signal(signal.SIGSTOP)
                time.sleep(0.2)
                t_stop = time.monotonic()
                time.sleep(2)
                during = [x for x in ns.times("WATCHDOG=1") if x > t_stop]
                dash.proc.signal(signal.SIGCONT)
                if during:
                    fail("a stopped dashboard kept pinging: %d pings" % len(during))
                ns.wait_for("WATCHDOG=1", 5, after=time.monotonic())

                t_term = time.monotonic()
                rc = dash.proc.stop(timeout=20)
                if rc != 0:
                    fail("dashboard exited %s on SIGTERM: %s"
                         % (rc, dash.proc.stderr_text()[-3000:]))
                ns.wait_for("STOPPING=1", 1, after=t_term - 0.001)
            except Exception:
                sys.stderr.write(dash.proc.stderr_text()[-6000:])
                raise

        # the watchdog is somebody else's: READY, no pings
        with NotifySocket() as ns:
            spawn(dash, ns, watchdog_usec=WATCHDOG_USEC, watchdog_pid=1)
            ns.wait_for("READY=1", 30)
            time.sleep(1.5)
            if ns.times("WATCHDOG=1"):
                fail("pings for a watchdog meant for another process")
            if dash.proc.stop(timeout=20) != 0:
                fail("dashboard exited badly: " + dash.proc.stderr_text()[-3000:])
        dash.proc = None
        dash.__exit__(None, None, None)
    print("ok: READY after the listener, WATCHDOG at half the interval, none while stopped or "
          "for another pid, STOPPING on SIGTERM")


if __name__ == "__main__":
    main()
