"""The packages' life on a real host, with dpkg, as root: install the three .debs of the
packaging-build fixture, check what they put where (files, conffiles and their modes, users,
state directories, --version, the installed agent finding its helpers in /usr/libexec/cradle),
write a configuration and state as an admin and the daemons would, upgrade to a newer version,
check that configuration, state, outbox and backups survived, remove (everything kept), purge
(everything of the packages gone, the system users kept: docs/packaging.md).

The newer version is the same build repacked with dpkg-deb and a bumped Version (and a changed
dashboard conffile), so what is tested is the upgrade path of the maintainer scripts, not a
second compile.

No systemd runs as PID 1 here (a container): /run/systemd/system does not exist, so the units'
maintainer-script snippets (deb-systemd-invoke start/restart/stop) skip the service manager, as
they do in any chroot. This test says so and does not pretend otherwise; what it checks of the
units is that they are installed where systemd looks for them. The host is left as it was: the
packages are purged whatever happens (the system users stay, by design).
"""
import grp
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Sim, check, fail  # noqa: E402

SRC = os.environ["CRADLE_SRC"]
DIST = os.environ["CRADLE_DIST"]
PKGS = ["cradle-agent", "cradle-dashboard", "cradle-tools"]
# where the packages may put files (docs/packaging.md)
ALLOWED = ("/etc/cradle/", "/lib/systemd/system/", "/usr/lib/sysusers.d/", "/usr/sbin/",
           "/usr/bin/", "/usr/libexec/cradle/", "/usr/share/doc/", "/usr/share/man/",
           "/usr/share/cradle/")


def run(argv, ok=True, **kw):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=kw.pop("timeout", 300), **kw)
    if ok and r.returncode != 0:
        fail("%s: exit %d:\n%s" % (" ".join(argv), r.returncode, r.stdout[-4000:]))
    return r


def installed_version(pkg):
    r = run(["dpkg-query", "-W", "-f=${Status} ${Version}", pkg], ok=False)
    return r.stdout.strip() if r.returncode == 0 else ""


def purge_all():
    run(["dpkg", "--purge"] + PKGS, ok=False)


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def mode_owner(path):
    st = os.lstat(path)
    return (stat.S_IMODE(st.st_mode), pwd.getpwuid(st.st_uid).pw_name,
            grp.getgrgid(st.st_gid).gr_name)


def debs(version):
    return [os.path.join(DIST, "%s_%s_amd64.deb" % (p, version)) for p in PKGS]


def repack(version, newer, tmp):
    """The fixture's .debs as version `newer`: same files, bumped Version, and one line added
    to the dashboard's conffile (so dpkg meets a conffile the package changed)."""
    out = []
    for deb in debs(version):
        tree = os.path.join(tmp, os.path.basename(deb) + ".d")
        run(["dpkg-deb", "-R", deb, tree])
        ctl = os.path.join(tree, "DEBIAN", "control")
        with open(ctl) as f:
            text = f.read()
        check("Version: %s\n" % version in text, "%s: Version %s in its control" % (deb, version))
        with open(ctl, "w") as f:
            f.write(text.replace("Version: %s\n" % version, "Version: %s\n" % newer))
        conf = os.path.join(tree, "etc", "cradle", "cradle-dashboard.conf")
        if os.path.exists(conf):
            with open(conf, "a") as f:
                f.write("# (changed in %s)\n" % newer)
            # DEBIAN/md5sums lists it: keep it true
            sums = os.path.join(tree, "DEBIAN", "md5sums")
            lines = []
            with open(sums) as f:
                for line in f:
                    if line.rstrip().endswith(" etc/cradle/cradle-dashboard.conf"):
                        line = "%s  etc/cradle/cradle-dashboard.conf\n" % hashlib.md5(
                            open(conf, "rb").read()).hexdigest()
                    lines.append(line)
            with open(sums, "w") as f:
                f.writelines(lines)
        newdeb = os.path.join(tmp, os.path.basename(deb).replace(version, newer))
        run(["dpkg-deb", "--root-owner-group", "-b", tree, newdeb])
        out.append(newdeb)
    return out


def check_installed(version):
    for p in PKGS:
        check(installed_version(p) == "install ok installed %s" % version,
              "%s %s installed (dpkg: '%s')" % (p, version, installed_version(p)))
    # every file in an allowed place
    for p in PKGS:
        for path in run(["dpkg", "-L", p]).stdout.split():
            if os.path.isdir(path):  # directories (/lib is a link to usr/lib: usrmerge)
                continue
            check(path.startswith(ALLOWED), "%s: %s is outside the layout" % (p, path))
    for path in ["/usr/sbin/cradle-agent", "/usr/libexec/cradle/cradle-agent-probe",
                 "/usr/libexec/cradle/cradle-agent-action", "/usr/libexec/cradle/cradle-agent-watch",
                 "/usr/sbin/cradle-dashboard", "/usr/bin/cradle-sim", "/usr/bin/cradle-send",
                 "/lib/systemd/system/cradle-agent.service",
                 "/lib/systemd/system/cradle-dashboard.service",
                 "/usr/lib/sysusers.d/cradle-agent.conf",
                 "/usr/lib/sysusers.d/cradle-dashboard.conf"]:
        check(os.path.exists(path), "%s installed" % path)
    for p in ["cradle-agent", "cradle-dashboard"]:
        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", p]).stdout.split()
        check("/etc/cradle/%s.conf" % p in conffiles,
              "%s: /etc/cradle/%s.conf is a conffile (%s)" % (p, p, conffiles))
        check(mode_owner("/etc/cradle/%s.conf" % p) == (0o640, "root", p),
              "/etc/cradle/%s.conf is 0640 root:%s, not world-readable: %s" %
              (p, p, mode_owner("/etc/cradle/%s.conf" % p)))
        u = pwd.getpwnam(p)
        check(u.pw_uid < 1000 and u.pw_dir == "/var/lib/" + p and
              u.pw_shell in ("/usr/sbin/nologin", "/sbin/nologin"),
              "system user %s: uid %d, home %s, shell %s" % (p, u.pw_uid, u.pw_dir, u.pw_shell))
        check(mode_owner("/var/lib/" + p) == (0o700, p, p),
              "/var/lib/%s is 0700 %s:%s: %s" % (p, p, p, mode_owner("/var/lib/" + p)))
    print("ok: %s installed: files in the layout, conffiles 0640, users, state directories" %
          version)


def check_versions(version):
    """--version of every installed program is the changelog's version."""
    for prog in ["/usr/sbin/cradle-agent", "/usr/sbin/cradle-dashboard", "/usr/bin/cradle-sim",
                 "/usr/bin/cradle-send", "/usr/libexec/cradle/cradle-agent-probe",
                 "/usr/libexec/cradle/cradle-agent-action",
                 "/usr/libexec/cradle/cradle-agent-watch"]:
        out = run([prog, "--version"]).stdout.strip()
        want = "%s %s" % (os.path.basename(prog), version)
        check(out == want, "%s --version: '%s', expected '%s'" % (prog, out, want))
    print("ok: --version of the installed programs is %s" % version)


def check_running(tmp):
    """The installed programs work as their users: the default configs pass --test-config, the
    agent's config is not readable by others, and `cradle-agent --once` as cradle-agent probes the
    phones of the installed cradle-sim through the helpers in /usr/libexec/cradle."""
    for p in ["cradle-agent", "cradle-dashboard"]:
        r = run(["runuser", "-u", p, "--", "/usr/sbin/" + p, "--test-config"])
        check("/etc/cradle/%s.conf: configuration ok" % p in r.stdout, "%s: %s" % (p, r.stdout))
        r = run(["runuser", "-u", "nobody", "--", "/usr/sbin/" + p, "--test-config"], ok=False)
        check(r.returncode == 1 and "Permission denied" in r.stdout,
              "nobody must not read /etc/cradle/%s.conf: %s" % (p, r.stdout))
    scenario = os.path.join(SRC, "sim", "scenarios", "demo.json")
    with Sim("/usr/bin/cradle-sim", scenario) as sim:
        r = run(["runuser", "-u", "cradle-agent", "--", "env",
                 "USBMUXD_SOCKET_ADDRESS=" + sim.addr, "/usr/sbin/cradle-agent", "--once",
                 "--timeout", "20s"], cwd="/", timeout=120)
        lines = [l for l in r.stdout.splitlines() if l.startswith("{")]
        check(len(lines) >= 20 and '"udid"' in lines[0],
              "cradle-agent --once probed the simulated phones: %s" % r.stdout[-2000:])
    print("ok: installed programs run as their users; --once probed %d phones through "
          "/usr/libexec/cradle/cradle-agent-probe" % len(lines))


def write_admin_and_state():
    """What an admin and the running daemons leave behind; returns {path: sha256}."""
    with open("/etc/cradle/cradle-agent.conf") as f:
        text = f.read()
    check("\nagent_id station-001\n" in text, "the shipped agent config sets agent_id")
    with open("/etc/cradle/cradle-agent.conf", "w") as f:
        f.write(text.replace("\nagent_id station-001\n", "\nagent_id station-upgrade-test\n"))
    with open("/etc/cradle/cradle-dashboard.conf", "a") as f:
        f.write("history_days 30\n")
    files = {
        # agent/README.md: state_dir holds outbox.log, agent.state, cmdtable, cmdtable.guard,
        # and backup_dir defaults to state_dir/backups
        "/var/lib/cradle-agent/outbox.log": b"CRADLEOB unsent records of the test\n",
        "/var/lib/cradle-agent/agent.state": b"session 7\nnext_seq 42\n",
        "/var/lib/cradle-agent/cmdtable": b"cmd table of the test\n",
        "/var/lib/cradle-agent/cmdtable.guard": b"guard\n",
        "/var/lib/cradle-agent/backups/00008110-001C0FFEE0000001/Manifest.db": b"backup\n",
        "/var/lib/cradle-dashboard/cradle.db": b"SQLite format 3\0 of the test\n",
        "/var/lib/cradle-dashboard/command.key": b"key of the test\n",
    }
    for path, data in files.items():
        p = path.split("/")[3]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        shutil.chown(path, p, p)
        shutil.chown(os.path.dirname(path), p, p)
    keep = {path: sha(path) for path in files}
    for p in ["cradle-agent", "cradle-dashboard"]:
        keep["/etc/cradle/%s.conf" % p] = sha("/etc/cradle/%s.conf" % p)
    return keep


def check_kept(keep, what):
    for path, digest in keep.items():
        check(os.path.exists(path), "%s: %s is gone" % (what, path))
        check(sha(path) == digest, "%s: %s changed" % (what, path))
    for p in ["cradle-agent", "cradle-dashboard"]:
        check(mode_owner("/var/lib/" + p)[1] == p, "%s: /var/lib/%s still %s's" % (what, p, p))
    print("ok: %s kept configuration, state, outbox and backups (%d files)" % (what, len(keep)))


def main():
    if os.geteuid() != 0:
        print("SKIP: packaging-lifecycle installs packages with dpkg: it needs root "
              "(CI runs as root)")
        return 77
    print("note: no systemd as PID 1 here (/run/systemd/system %s): the units' maintainer "
          "snippets skip starting, restarting and stopping; the daemons are run directly below" %
          ("exists" if os.path.isdir("/run/systemd/system") else "does not exist"))
    version = run(["dpkg-parsechangelog", "-l", os.path.join(SRC, "packaging/debian/changelog"),
                   "-S", "Version"]).stdout.strip()
    for d in debs(version):
        check(os.path.exists(d), "fixture output %s" % d)
    for p in PKGS:
        if installed_version(p):
            fail("%s is already installed (%s): this test would replace and purge it; purge it "
                 "first" % (p, installed_version(p)))
    newer = version + "+upgradetest1"
    tmp = tempfile.mkdtemp(prefix="cradle-pkg-")
    try:
        run(["dpkg", "-i"] + debs(version))
        check_installed(version)
        check_versions(version)
        check_running(tmp)

        keep = write_admin_and_state()
        new_debs = repack(version, newer, tmp)
        # the admin edited the dashboard's conffile and the new version changed it: the
        # admin's stays (confold, as apt with Dpkg::Options), the package's lands beside it
        r = run(["dpkg", "-i", "--force-confold"] + new_debs)
        print(r.stdout)
        check_installed(newer)
        check_kept(keep, "the upgrade %s -> %s" % (version, newer))
        check(os.path.exists("/etc/cradle/cradle-dashboard.conf.dpkg-dist"),
              "the new dashboard conffile is beside the admin's (.dpkg-dist)")

        run(["dpkg", "--remove"] + PKGS)
        for p in ["cradle-agent", "cradle-dashboard"]:
            check(installed_version(p).startswith("deinstall ok config-files"),
                  "%s removed, its config kept: %s" % (p, installed_version(p)))
        # cradle-tools has no conffile: nothing of it is left to purge
        check(installed_version("cradle-tools") == "", "cradle-tools removed")
        check(not os.path.exists("/usr/sbin/cradle-agent"), "remove: the programs are gone")
        check_kept(keep, "remove")

        run(["dpkg", "--purge"] + PKGS)
        for p in PKGS:
            check(installed_version(p) == "", "%s purged: %s" % (p, installed_version(p)))
        leftovers = [p for p in ["/etc/cradle", "/var/lib/cradle-agent", "/var/lib/cradle-dashboard",
                                 "/usr/libexec/cradle", "/usr/sbin/cradle-agent",
                                 "/usr/sbin/cradle-dashboard", "/usr/bin/cradle-sim",
                                 "/lib/systemd/system/cradle-agent.service"]
                     if os.path.lexists(p)]
        check(not leftovers, "purge left %s" % leftovers)
        # docs/packaging.md: the system users stay after a purge (Debian's practice)
        for p in ["cradle-agent", "cradle-dashboard"]:
            pwd.getpwnam(p)
        print("ok: purge removed configs (and .dpkg-dist), state directories and programs; the "
              "system users stay")
    finally:
        purge_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
