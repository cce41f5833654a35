#!/usr/bin/python3
"""Every cause code of the diagnosis vocabulary, reached from a scenario through the real
probe path (cradle-agent --once with the daemon's config: TLS lockdown sessions, syslog_relay
evidence), and checked in the device-state JSON. passcode_required comes from a failed local
backup (MBErrorDomain 208) and is covered by the command test."""
import json
import os
import subprocess
import tempfile

from common import AGENT, SIM, device, udid, validate_all, write_scenario  # noqa: F401
from common import SCHEMAS, VALIDATE
from harness import Sim, fail, validate_messages

DAY = 86400
LINE = "Nov 25 10:00:00 iPhone backupd[123] <Error>: %s"

CASES = [
    # (device, expected status, expected causes)
    (device(1, backup_ago=5 * DAY,
            syslog=[LINE % "Backup failed: not enough iCloud storage to back up this iPhone"]),
     "stale", {"icloud_storage_full"}),
    (device(2, backup_ago=5 * DAY,
            syslog=[LINE % "Upload failed: Error Domain=NSURLErrorDomain Code=-1009 "
                           "\"The Internet connection appears to be offline.\""]),
     "stale", {"network_unavailable"}),
    (device(3, cloud=False, backup_ago=5 * DAY), "stale", {"icloud_backup_disabled"}),
    (device(4, backup_ago=5 * DAY,
            syslog=[LINE % "AKAuthenticationError: the Apple ID needs to sign in again"]),
     "stale", {"apple_id_problem"}),
    (device(5, version="15.7"), "ok", {"ios_outdated"}),
    (device(6, external=False, backup_ago=5 * DAY), "stale", {"not_on_power"}),
    (device(7, backup_ago=None), "stale", {"never_backed_up"}),
    (device(8, pairing="trust_pending"), "unknown", {"not_trusted"}),
    (device(9, backup_ago=5 * DAY), "stale", {"unknown"}),
    (device(10, backup_ago=3600), "ok", set()),
]


def main():
    scenario = write_scenario([c[0] for c in CASES])
    tmp = tempfile.mkdtemp(prefix="cradle-causes-")
    conf = os.path.join(tmp, "agent.conf")
    with open(conf, "w") as f:
        f.write("agent_id causes-test\nstate_dir %s\nmin_ios_version 16.0\nstale_after 72h\n"
                % tmp)
    with Sim(SIM, scenario) as sim:
        r = subprocess.run([AGENT, "--once", "-c", conf, "--syslog", "2s"], env=sim.env(),
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            fail("--once exited %d: %s" % (r.returncode, r.stderr))
        out = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    by_udid = {m["udid"]: m for m in out}
    seen = set()
    for dev, status, causes in CASES:
        m = by_udid.get(dev["udid"])
        if not m:
            fail("no state for %s" % dev["udid"])
        got = {c["code"] for c in m["diagnosis"]["causes"]}
        seen |= got
        if m["diagnosis"]["status"] != status or not causes <= got:
            fail("%s: expected %s with %s, got %s with %s" % (
                dev["udid"], status, sorted(causes), m["diagnosis"]["status"], sorted(got)))
        if not causes and got:
            fail("%s: a healthy phone has causes %s" % (dev["udid"], sorted(got)))
        for c in m["diagnosis"]["causes"]:
            if not c["evidence"] or not c["remediation"]:
                fail("%s: cause %s without evidence or remediation" % (dev["udid"], c))
        print("%s: %-7s %s" % (dev["udid"], m["diagnosis"]["status"], ", ".join(sorted(got))))
    validate_messages(VALIDATE, SCHEMAS, out)
    want = {"icloud_storage_full", "network_unavailable", "icloud_backup_disabled",
            "apple_id_problem", "ios_outdated", "not_on_power", "never_backed_up",
            "not_trusted", "unknown"}
    if not want <= seen:
        fail("causes never produced: %s" % sorted(want - seen))
    os.unlink(scenario)
    print("ok")


if __name__ == "__main__":
    main()
