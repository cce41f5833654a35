#!/usr/bin/python3
"""The systemd units and sysusers files of packaging/, checked as installed (label packaging,
dev build only: it installs the build tree into a staging directory).

systemd-analyze verify needs every ExecStart binary to exist, and it looks them up on the host
unless it is given --root. So the test stages an install (`cmake --install` with DESTDIR, prefix
/usr), puts the units where dh_installsystemd does (/lib/systemd/system) and the sysusers files
where dh_installsysusers does (/usr/lib/sysusers.d), copies the host's own units next to them
(the targets ours name: multi-user.target, network-online.target ...) and runs, against that
root:
- `systemd-sysusers --root`: the users exist, as system users, home = state directory, no shell,
  in no group but their own (the agent needs none for usbmuxd: docs/systemd.md);
- `systemd-analyze verify --root`: exit 0 and not a word of output (unknown options, missing
  binaries, bad values all print); the man pages named by Documentation= are checked against the
  staged man pages once the build installs any;
- `systemd-analyze security --offline=true`: overall exposure <= 2.5 for each unit (printed);
- the options the issue names are present, so a score that stays low cannot hide their removal.
No systemd runs as PID 1 in the container the suite runs in: nothing here starts a unit (the
notify protocol is tested against the daemons themselves: tests/agent/sdnotify_test.py).
Root is not needed."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

SRC = os.environ["CRADLE_SRC"]
BUILD = os.environ["CRADLE_BUILD"]
UNITS = {"cradle-agent": "/var/lib/cradle-agent", "cradle-dashboard": "/var/lib/cradle-dashboard"}
MAX_EXPOSURE = 2.5
# the options issue 11 asks for, as they must read in each unit
REQUIRED = [r"Type=notify", r"WatchdogSec=\d+", r"Restart=on-failure", r"User=cradle-",
            r"StateDirectory=cradle-", r"ProtectSystem=strict", r"PrivateTmp=yes",
            r"NoNewPrivileges=yes", r"RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            r"SystemCallFilter=@system-service", r"CapabilityBoundingSet=",
            r"ExecStart=/usr/sbin/cradle-"]


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kw)


def stage(root):
    env = dict(os.environ, DESTDIR=root)
    r = run(["cmake", "--install", BUILD, "--prefix", "/usr"], env=env)
    if r.returncode != 0:
        fail("cmake --install: " + r.stdout + r.stderr)
    unitdir = os.path.join(root, "lib/systemd/system")
    # the host's units (targets, usbmuxd.service if installed) first, ours over them
    shutil.copytree("/lib/systemd/system", unitdir, symlinks=True)
    for f in glob.glob(os.path.join(SRC, "packaging/systemd/*.service")):
        shutil.copy(f, unitdir)
    sysusers = os.path.join(root, "usr/lib/sysusers.d")
    os.makedirs(sysusers, exist_ok=True)
    for f in glob.glob(os.path.join(SRC, "packaging/sysusers.d/*.conf")):
        shutil.copy(f, sysusers)
    os.makedirs(os.path.join(root, "etc"), exist_ok=True)
    return unitdir


def check_users(root):
    r = run(["systemd-sysusers", "--root=" + root])
    if r.returncode != 0:
        fail("systemd-sysusers: " + r.stderr)
    with open(os.path.join(root, "etc/passwd")) as f:
        users = {line.split(":")[0]: line.rstrip("\n").split(":") for line in f}
    with open(os.path.join(root, "etc/group")) as f:
        groups = [line.rstrip("\n").split(":") for line in f]
    for name, home in UNITS.items():
        u = users.get(name)
        if not u:
            fail("sysusers.d creates no user %s: %r" % (name, users))
        if not int(u[2]) < 1000 or u[5] != home or not u[6].endswith("nologin"):
            fail("%s is not a system user with home %s and no shell: %r" % (name, home, u))
        if u[2] != u[3] or not any(g[0] == name and g[2] == u[3] for g in groups):
            fail("%s has no group of its own: %r %r" % (name, u, groups))
        member_of = [g[0] for g in groups if name in g[3].split(",")]
        if member_of:
            fail("%s is a member of %r: the units grant no group" % (name, member_of))


def check_unit(root, unitdir, name):
    path = os.path.join(unitdir, name + ".service")
    with open(path) as f:
        text = f.read()
    for opt in REQUIRED:
        if not re.search(r"^" + opt + r"\s*$" if opt.endswith("=") else r"^" + opt, text,
                         re.M):
            fail("%s.service lacks %s" % (name, opt))
    exe = re.search(r"^ExecStart=(\S+)", text, re.M).group(1)
    if not os.access(os.path.join(root, exe.lstrip("/")), os.X_OK):
        fail("%s.service starts %s, which the install does not provide" % (name, exe))

    mandir = os.path.join(root, "usr/share/man")
    env = dict(os.environ)
    argv = ["systemd-analyze", "verify", "--root=" + root]
    if glob.glob(os.path.join(mandir, "man*", name + ".*")):
        env["MANPATH"] = mandir  # Documentation=man:... must name staged pages
    else:
        print("note: the build installs no man page for %s yet: Documentation= not checked"
              % name)
        argv.append("--man=no")
    r = run(argv + [path], env=env)
    out = (r.stdout + r.stderr).strip()
    if r.returncode != 0 or out:
        fail("systemd-analyze verify %s.service (exit %d):\n%s" % (name, r.returncode, out))

    r = run(["systemd-analyze", "security", "--offline=true", "--no-pager", path])
    m = re.search(r"Overall exposure level for %s\.service: (\d+\.\d+)" % name, r.stdout)
    if not m:
        fail("no exposure level for %s.service:\n%s%s" % (name, r.stdout, r.stderr))
    exposure = float(m.group(1))
    if exposure > MAX_EXPOSURE:
        fail("%s.service exposure %.1f > %.1f:\n%s" % (name, exposure, MAX_EXPOSURE, r.stdout))
    return exposure


def main():
    root = tempfile.mkdtemp(prefix="cradle-units-")
    try:
        unitdir = stage(root)
        check_users(root)
        scores = {n: check_unit(root, unitdir, n) for n in UNITS}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print("ok: verify clean; exposure " +
          ", ".join("%s %.1f" % (n, s) for n, s in sorted(scores.items())))


if __name__ == "__main__":
    main()
