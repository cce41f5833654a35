#!/usr/bin/python3
"""The daemons under the confinement their units give them (label packaging, root).

No systemd runs as PID 1 in the container the suite runs in, so no unit can be started. The
risky part of the units is whether the programs still work inside them; this test gets as close
as it can without systemd: test-sandbox-exec (sandbox_exec.c) gives a daemon a private mount
namespace with everything read-only but /dev, /proc, /sys and /tmp (where the tests keep state
and configuration: ProtectSystem=strict), no capabilities and no way to gain any
(CapabilityBoundingSet=, NoNewPrivileges=), and the units' seccomp filter built from
`systemd-analyze syscall-filter`: @system-service allowed, @privileged and @resources failing with
EPERM (SystemCallErrorNumber=EPERM), sockets only AF_UNIX, AF_INET, AF_INET6
(RestrictAddressFamilies=), and anything else killing the process (SIGSYS), so it shows.

First the sandbox itself is checked (a write outside the writable paths fails, a netlink socket
and a system call outside @system-service kill, setuid fails with EPERM), then whole tests of the
suite run with the daemon wrapped in it:
- tests/agent/commands_test.py: the agent with its probe and action helpers and idevicebackup2
  (backups into the state directory), commands, the broker;
- tests/dashboard/api_test.py: the dashboard (SQLite, HTTP, ingest, commands) with real agents;
- tests/dashboard/notify_test.py: the dashboard's webhooks and e-mail (libcurl, STARTTLS).
They must pass as they do unconfined. Root is needed (a mount namespace): without it the test
says so and exits 77."""
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ["CRADLE_SRC"]
SANDBOX = os.environ["CRADLE_SANDBOX"]
AGENT = os.environ["CRADLE_AGENT"]
DASH = os.environ["CRADLE_DASHBOARD"]
SIM = os.environ["CRADLE_SIM"]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def group(name, seen=None):
    """The system calls of a systemd-analyze group, nested groups resolved."""
    seen = set() if seen is None else seen
    out = subprocess.run(["systemd-analyze", "syscall-filter", name], capture_output=True,
                         text=True, check=True).stdout.splitlines()
    calls = set()
    for line in out[1:]:
        w = line.strip()
        if not w or w.startswith("#"):
            continue
        if w.startswith("@"):
            if w not in seen:
                seen.add(w)
                calls |= group(w, seen)
        else:
            calls.add(w)
    return calls


def sandboxed(tmp, allow, deny, argv, **kw):
    return subprocess.run([SANDBOX, "--allow", allow, "--deny", deny, "--rw", tmp, "--"] + argv,
                          capture_output=True, text=True, timeout=30, **kw)


def check_sandbox(tmp, allow, deny):
    r = sandboxed(tmp, allow, deny, ["/bin/sh", "-c", "touch %s/ok && touch /var/tmp/cradle-x"
                                     % tmp])
    if not os.path.exists(os.path.join(tmp, "ok")) or r.returncode == 0 or \
            "Read-only" not in r.stderr:
        fail("the sandbox does not keep the file system read-only: %r" % (r,))
    py = "/usr/bin/python3"
    r = sandboxed(tmp, allow, deny, [py, "-c", "import socket; socket.socket(socket.AF_NETLINK,"
                                     " socket.SOCK_RAW)"])
    if r.returncode != -31:
        fail("a netlink socket was not refused (SIGSYS): %r" % (r,))
    r = sandboxed(tmp, allow, deny, [py, "-c", "import os; os.setuid(65534)"])
    if r.returncode == 0 or "Operation not permitted" not in r.stderr:
        fail("setuid (@privileged) did not fail with EPERM: %r" % (r,))
    # ptrace (@debug): neither allowed nor denied by the units
    r = sandboxed(tmp, allow, deny, [py, "-c", "import ctypes; ctypes.CDLL(None).ptrace(0, 0, 0,"
                                     " 0)"])
    if r.returncode != -31:
        fail("a call outside @system-service did not kill: %r" % (r,))


def wrapper(tmp, name, real, allow, deny):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec %s --allow %s --deny %s --rw /tmp -- %s \"$@\"\n"
                % (SANDBOX, allow, deny, real))
    os.chmod(path, 0o755)
    return path


def run_test(script, env):
    r = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tests", script)], env=env,
                       capture_output=True, text=True, timeout=400)
    if r.returncode != 0:
        fail("%s in the sandbox (exit %d):\n%s\n%s" % (script, r.returncode, r.stdout[-3000:],
                                                     r.stderr[-6000:]))
    print("ok: %s in the sandbox" % script)


def main():
    if os.geteuid() != 0:
        print("SKIP: the sandbox needs root (a mount namespace); CI runs as root",
              file=sys.stderr)
        sys.exit(77)
    denied = group("@privileged") | group("@resources")
    allowed = group("@system-service") - denied
    tmp = tempfile.mkdtemp(prefix="cradle-sandbox-")
    try:
        allow, deny = os.path.join(tmp, "allow"), os.path.join(tmp, "deny")
        with open(allow, "w") as f:
            f.write("\n".join(sorted(allowed)) + "\n")
        with open(deny, "w") as f:
            f.write("\n".join(sorted(denied)) + "\n")
        check_sandbox(tmp, allow, deny)
        env = dict(os.environ, CRADLE_SRC=SRC, CRADLE_SIM=SIM)
        run_test("agent/commands_test.py",
                 dict(env, CRADLE_AGENT=wrapper(tmp, "agent", AGENT, allow, deny)))
        run_test("dashboard/api_test.py",
                 dict(env, CRADLE_AGENT=AGENT, CRADLE_DASHBOARD=wrapper(tmp, "dash", DASH, allow,
                                                                         deny),
                      CRADLE_OPENAPI=os.path.join(SRC, "dashboard", "openapi.json")))
        # webhooks and e-mail (libcurl) from the daemon
        run_test("dashboard/notify_test.py",
                 dict(env, CRADLE_DASHBOARD=wrapper(tmp, "dash", DASH, allow, deny)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
