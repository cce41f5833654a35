"""The service manager's side of sd_notify(3), for tests: there is no systemd as PID 1 in the
container the suite runs in, so a test binds the AF_UNIX datagram socket itself, hands it to a
daemon in NOTIFY_SOCKET (with WATCHDOG_USEC, and WATCHDOG_PID = the daemon's own pid, which a
`sh -c 'export WATCHDOG_PID=$$; exec ...'` wrapper knows before the exec) and records every
datagram with its arrival time, as systemd would receive them.

    with NotifySocket() as ns:
        proc.spawn(ns.argv([daemon, "-c", conf]), env=ns.env(os.environ, watchdog_usec=2000000))
        ns.wait_for("READY=1", 20)
"""
import os
import shutil
import socket
import tempfile
import threading
import time


class NotifySocket:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="cradle-notify-")
        self.path = os.path.join(self.tmp, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.lock = threading.Lock()
        self.msgs = []  # (monotonic time, assignment) - one entry per line of a datagram
        self.done = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while not self.done:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.monotonic()
            with self.lock:
                for line in data.decode(errors="replace").split("\n"):
                    if line:
                        self.msgs.append((t, line))

    def env(self, base, watchdog_usec=None, watchdog_pid=None):
        """base plus NOTIFY_SOCKET and, when asked, WATCHDOG_USEC (and a fixed WATCHDOG_PID,
        e.g. a wrong one; argv() sets the right one)."""
        e = dict(base)
        e["NOTIFY_SOCKET"] = self.path
        e.pop("WATCHDOG_USEC", None)
        e.pop("WATCHDOG_PID", None)
        if watchdog_usec is not None:
            e["WATCHDOG_USEC"] = str(watchdog_usec)
        if watchdog_pid is not None:
            e["WATCHDOG_PID"] = str(watchdog_pid)
        return e

    @staticmethod
    def argv(cmd):
        """cmd run so that WATCHDOG_PID is its own pid, as systemd sets it."""
        return ["/bin/sh", "-c", 'export WATCHDOG_PID=$$; exec "$@"', "sh"] + list(cmd)

    def lines(self, prefix=""):
        with self.lock:
            return [(t, m) for t, m in self.msgs if m.startswith(prefix)]

    def times(self, line):
        return [t for t, m in self.lines() if m == line]

    def wait_for(self, prefix, timeout, after=0.0):
        """The first line starting with prefix that arrived after `after`: (time, line)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, m in self.lines(prefix):
                if t > after:
                    return t, m
            time.sleep(0.02)
        raise TimeoutError("no %r on the notify socket within %ss; got %r"
                           % (prefix, timeout, [m for _, m in self.lines()][-20:]))

    def close(self):
        self.done = True
        self.thread.join()
        self.sock.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
