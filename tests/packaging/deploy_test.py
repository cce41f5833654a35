"""docs/deploy.md, run: every ```sh block of the page, in order, in one bash (set -eux) as root
on this host, so that a command that stops working, or a step the page forgets, fails here.

The first block (build) runs in the source tree; then the test does the page's one prose step,
copying the three .deb files to a scratch directory, where the other blocks run. The page's
commands change the host (packages, /etc/cradle, /etc/mosquitto, /srv/cradle-pki): the test
refuses to start where any of that is already there, and undoes all of it at the end, whatever
happens (the system users stay, as a purge leaves them: docs/packaging.md).

No systemd runs as PID 1 here (a container), and this test says so rather than pretend: the
shell's systemctl and journalctl are functions that ask this process (tests/packaging/unitctl.py),
which does the nearest real thing. `enable` runs the real `systemctl enable` (it only makes the
links, no manager needed); starting a unit runs the unit file's ExecStartPre= as root and its
ExecStart= as its User=/Group= (setpriv) with its Environment=, StateDirectory=, UMask= and a
notify socket of this test's own, and waits for READY=1 as systemd does for Type=notify; `reload`
sends what ExecReload= sends; `status`/`is-active` report that process; journalctl prints what it
wrote to stdout and stderr. The sandboxing options are not applied (packaging-units and
packaging-sandbox check them); the test prints that for every unit it starts.
"""
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from harness import check, fail  # noqa: E402
from notifysock import NotifySocket  # noqa: E402

SRC = os.environ["CRADLE_SRC"]
PKGS = ["cradle-agent", "cradle-dashboard", "cradle-tools"]
# what the page creates on the host, removed at the end (checked absent at the start)
HOST_PATHS = ["/srv/cradle-pki", "/etc/mosquitto/cradle", "/etc/mosquitto/conf.d/cradle.conf",
              "/etc/cradle"]
PORTS = [8883, 8080]  # the broker's TLS listener and the dashboard's (docs/deploy.md)
UNIT_DIRS = ["/etc/systemd/system", "/lib/systemd/system"]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def parse_unit(name):
    """[Service] and [Unit] keys of a unit file; repeated keys accumulate (ExecStartPre=)."""
    for d in UNIT_DIRS:
        path = os.path.join(d, name)
        if os.path.exists(path):
            break
    else:
        return None, None
    keys = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[" or "=" not in line:
                continue
            k, v = line.split("=", 1)
            keys.setdefault(k.strip(), []).append(v.strip())
    return path, keys


def exec_argv(line):
    """An Exec*= line without systemd's prefixes ('-' ignore failure, '+' '!' privileges)."""
    ignore = False
    while line and line[0] in "-+!@:":
        ignore = ignore or line[0] == "-"
        line = line[1:]
    return shlex.split(line), ignore


class Unit:
    def __init__(self, name, scratch):
        self.name = name
        self.path, self.keys = parse_unit(name)
        self.log_path = os.path.join(scratch, name + ".journal")
        self.proc = None
        self.notify = None
        self.ready_after = None

    def one(self, key, default=None):
        return self.keys.get(key, [default])[-1]

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        out = []
        user, group = self.one("User"), self.one("Group")
        for line in self.keys.get("ExecStartPre", []):
            argv, ignore = exec_argv(line)
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            out.append("ExecStartPre %s: exit %d" % (" ".join(argv), r.returncode))
            if r.returncode != 0 and not ignore:
                return 1, "\n".join(out) + "\n" + r.stdout
        env = {"PATH": PATH, "LANG": "C.UTF-8"}
        if user:
            pw = pwd.getpwnam(user)
            env.update(HOME=pw.pw_dir, USER=user, LOGNAME=user, SHELL=pw.pw_shell)
            group = group or user
        for line in self.keys.get("Environment", []):
            for kv in shlex.split(line):
                k, v = kv.split("=", 1)
                env[k] = v
        mode = int(self.one("StateDirectoryMode", "0755"), 8)
        for d in " ".join(self.keys.get("StateDirectory", [])).split():
            path = "/var/lib/" + d
            os.makedirs(path, exist_ok=True)
            os.chmod(path, mode)
            if user:
                shutil.chown(path, user, group)
            out.append("StateDirectory %s: mode %o, %s" % (path, mode, user or "root"))
        umask = int(self.one("UMask", "0022"), 8)
        self.notify = NotifySocket()
        # the daemon writes to it as its own user (systemd's socket is writable by all)
        os.chmod(self.notify.tmp, 0o755)
        os.chmod(self.notify.path, 0o777)
        env["NOTIFY_SOCKET"] = self.notify.path
        argv, _ = exec_argv(self.one("ExecStart"))
        if user:
            argv = ["setpriv", "--reuid", user, "--regid", group, "--init-groups", "--"] + argv
        log = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                     env=env, cwd=self.one("WorkingDirectory", "/"),
                                     preexec_fn=lambda: os.umask(umask), start_new_session=True)
        log.close()
        out.append("no systemd as PID 1: started %s's ExecStart= %s as %s (pid %d), "
                   "Environment= and NOTIFY_SOCKET set; its sandboxing options are not applied "
                   "here" % (self.name, " ".join(argv), user or "root", self.proc.pid))
        if self.one("Type", "simple") == "notify":
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if self.notify.lines("READY=1"):
                    break
                if not self.running():
                    return 1, "\n".join(out) + "\n%s exited %s before READY=1:\n%s" % (
                        self.name, self.proc.returncode, self.journal(40))
                time.sleep(0.05)
            else:
                return 1, "\n".join(out) + "\nno READY=1 from %s in 30 s:\n%s" % (
                    self.name, self.journal(40))
            self.ready_after = time.monotonic() - t0
            out.append("READY=1 after %.2f s" % self.ready_after)
        return 0, "\n".join(out) + "\n"

    def stop(self):
        if self.running():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.notify:
            self.notify.close()
            self.notify = None
        return 0, "stopped %s\n" % self.name

    def reload(self):
        if not self.running():
            return 1, "%s is not running\n" % self.name
        line = self.one("ExecReload")
        if not line:
            return 1, "%s has no ExecReload=\n" % self.name
        argv, _ = exec_argv(line.replace("$MAINPID", str(self.proc.pid)))
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return r.returncode, "ExecReload %s: exit %d\n%s" % (" ".join(argv), r.returncode,
                                                              r.stdout)

    def status(self):
        if not self.running():
            return 3, "%s: inactive (no systemd as PID 1: as started by this test)\n" % self.name
        st = [m for _, m in self.notify.lines("STATUS=")]
        return 0, ("%s - %s\n     Active: active (running), main pid %d (no systemd as PID 1: "
                   "as started by this test)\n     Status: %s\n%s\n" %
                   (self.name, self.one("Description", ""), self.proc.pid,
                    st[-1][7:] if st else "-", self.journal(10)))

    def journal(self, n=None):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:] if n else lines)


class UnitControl:
    """systemctl and journalctl for the page's shell, served on a Unix socket."""

    def __init__(self, scratch):
        self.scratch = scratch
        self.units = {}
        self.enabled = []
        self.path = os.path.join(scratch, "unitctl.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def unit(self, name):
        if not name.endswith(".service"):
            name += ".service"
        if name not in self.units:
            u = Unit(name, self.scratch)
            if not u.path:
                return None
            self.units[name] = u
        return self.units[name]

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                try:
                    status, out = self.handle(json.loads(data.decode()))
                except Exception as e:  # the shell must get an answer, the test the reason
                    status, out = 1, "unitctl: %r\n" % e
                conn.sendall(json.dumps({"status": status, "out": out}).encode())

    def handle(self, argv):
        prog, args = argv[0], [a for a in argv[1:] if a not in ("--no-pager", "--quiet")]
        if prog == "journalctl":
            check(len(args) == 2 and args[0] == "-u", "journalctl -u UNIT: %s" % args)
            u = self.unit(args[1])
            return (0, "(no systemd as PID 1: what %s wrote to stdout and stderr)\n%s\n" %
                    (args[1], u.journal())) if u else (1, "no unit %s\n" % args[1])
        now = "--now" in args
        args = [a for a in args if a != "--now"]
        verb, names = args[0], args[1:]
        status, out = 0, ""
        for name in names:
            u = self.unit(name)
            if u is None:
                return 5, "Unit %s not found.\n" % name
            if verb in ("enable", "disable"):
                r = subprocess.run(["systemctl", verb, u.name], stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
                out += r.stdout
                if r.returncode != 0:
                    return r.returncode, out
                if verb == "enable" and u.name not in self.enabled:
                    self.enabled.append(u.name)
                if not now:
                    continue
                verb_now = "start" if verb == "enable" else "stop"
            else:
                verb_now = verb
            if verb_now == "start" and u.running():
                continue
            if verb_now in ("restart", "stop"):
                u.stop()
            if verb_now in ("start", "restart"):
                s, o = u.start()
            elif verb_now == "stop":
                s, o = 0, "stopped %s\n" % u.name
            elif verb_now == "reload":
                s, o = u.reload()
            elif verb_now in ("status", "is-active"):
                s, o = u.status()
                if verb_now == "is-active":
                    o = "active\n" if s == 0 else "inactive\n"
            else:
                return 1, "unitctl: systemctl %s is not handled by this test\n" % verb_now
            status, out = status or s, out + o
        return status, out

    def close(self):
        for u in self.units.values():
            u.stop()
        for name in self.enabled:
            subprocess.run(["systemctl", "disable", name], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        self.sock.close()


def blocks(path):
    with open(path) as f:
        text = f.read()
    return re.findall(r"^```sh\n(.*?)^```$", text, re.M | re.S)


def port_free(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def snapshot(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def restore(path, data):
    if data is None:
        if os.path.exists(path):
            os.unlink(path)
    else:
        with open(path, "wb") as f:
            f.write(data)


def main():
    if os.geteuid() != 0:
        print("SKIP: packaging-deploy installs packages and configures mosquitto as root: it "
              "needs root (CI runs as root)")
        return 77
    print("note: no systemd as PID 1 here (/run/systemd/system %s): systemctl and journalctl "
          "are this test's stand-ins (see its docstring); nothing is pretended to run that "
          "does not" % ("exists" if os.path.isdir("/run/systemd/system") else "is missing"))
    version = subprocess.run(["dpkg-parsechangelog", "-l",
                              os.path.join(SRC, "packaging/debian/changelog"), "-S", "Version"],
                             stdout=subprocess.PIPE, text=True, check=True).stdout.strip()
    busy = [p for p in PKGS if subprocess.run(["dpkg-query", "-W", "-f=${Status}", p],
                                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                               text=True).stdout.startswith("install")]
    busy += [p for p in HOST_PATHS if os.path.lexists(p)]
    busy += ["port %d" % p for p in PORTS if not port_free(p)]
    if busy:
        fail("this host already has %s: the page's commands would change or clash with it" %
             busy)
    page = blocks(os.path.join(SRC, "docs", "deploy.md"))
    check(len(page) >= 10, "docs/deploy.md has its sh blocks (%d)" % len(page))
    scratch = tempfile.mkdtemp(prefix="cradle-deploy-")
    os.chmod(scratch, 0o755)  # apt reads the .debs as _apt
    mosq_db = "/var/lib/mosquitto/mosquitto.db"
    mosq_log = "/var/log/mosquitto/mosquitto.log"
    saved = {mosq_db: snapshot(mosq_db), mosq_log: snapshot(mosq_log)}
    ctl = UnitControl(scratch)
    unitctl = os.path.join(HERE, "unitctl.py")
    script = ["set -euxo pipefail",
              "systemctl() { /usr/bin/python3 %s systemctl \"$@\"; }" % unitctl,
              "journalctl() { /usr/bin/python3 %s journalctl \"$@\"; }" % unitctl,
              "cd %s" % shlex.quote(SRC)]
    for i, b in enumerate(page):
        script.append(": '--- docs/deploy.md, block %d of %d'" % (i + 1, len(page)))
        script.append(b)
        if i == 0:
            debs = " ".join(shlex.quote(os.path.join(SRC, "dist", "%s_%s_amd64.deb" %
                                                     (p, version))) for p in PKGS)
            script.append(": '--- the test: the page says to copy the three .debs to the host'")
            script.append("cp %s %s/ && cd %s" % (debs, shlex.quote(scratch),
                                                    shlex.quote(scratch)))
    with open(os.path.join(scratch, "deploy.sh"), "w") as f:
        f.write("\n".join(script) + "\n")
    env = dict(os.environ, CRADLE_UNITCTL=ctl.path, DEBIAN_FRONTEND="noninteractive")
    ok = False
    try:
        t0 = time.monotonic()
        r = subprocess.run(["bash", os.path.join(scratch, "deploy.sh")], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, env=env, timeout=1200)
        print(r.stdout[-30000:])
        if r.returncode != 0:
            fail("docs/deploy.md: the shell stopped with status %d (the last block run is "
                 "named above)" % r.returncode)
        # what the page claims, seen from here too
        for name, user in [("mosquitto.service", None), ("cradle-dashboard.service",
                                                          "cradle-dashboard"),
                           ("cradle-agent.service", "cradle-agent")]:
            u = ctl.units.get(name)
            check(u is not None and u.running(), "%s runs at the end" % name)
            check(u.ready_after is not None, "%s said READY=1" % name)
            if user:
                with open("/proc/%d/status" % u.proc.pid) as f:
                    uid = [l.split()[1] for l in f if l.startswith("Uid:")][0]
                check(int(uid) == pwd.getpwnam(user).pw_uid, "%s runs as %s" % (name, user))
        print("ok: docs/deploy.md ran, %d blocks in %.0f s: mosquitto with the drop-in, the "
              "dashboard and the station run as their users, READY=1 each, the station online "
              "on the dashboard" % (len(page), time.monotonic() - t0))
        ok = True
    finally:
        if not ok:
            for u in ctl.units.values():
                print("--- %s (stdout and stderr):\n%s" % (u.name, u.journal(60)))
        ctl.close()
        subprocess.run(["dpkg", "--purge"] + PKGS, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        for p in HOST_PATHS:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            elif os.path.lexists(p):
                os.unlink(p)
        for path, data in saved.items():
            restore(path, data)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
