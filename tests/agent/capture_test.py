#!/usr/bin/python3
"""Evidence capture (issue 12) on the daemon, phone by phone:

- a live backupd line reaches the diagnosis without a probe (quoted with its time), and a line
  of another process never does (the privacy rule);
- domain_changed (a control `set`) re-probes at once: the new LastCloudBackupDate is on the
  broker within seconds, far inside probe_interval;
- a phone refusing notification_proxy falls back to the interval, and still streams its lines;
- an unplugged phone keeps its ring (the unplug message repeats the cause); the next docking
  starts a new ring, and the stream reconnects by itself after the re-dock;
- the watch helper runs the whole test without a restart and without a warning that it cannot
  observe domain_changed (a notifier thread that cannot start loses every one, silently)."""
import time

from common import AGENT, SIM, device, udid, write_scenario
from harness import Agent, Broker, Collector, Sim, fail, wait_for

DAY = 86400
A, B, C = udid(1), udid(2), udid(3)


def causes(m):
    return {c["code"]: c["evidence"] for c in m["diagnosis"]["causes"]}


def main():
    devs = [device(1, backup_ago=5 * DAY), device(2, backup_ago=5 * DAY),
            device(3, backup_ago=5 * DAY,
                   refuse_services=["com.apple.mobile.notification_proxy"])]
    scn = write_scenario(devs)
    conf = "evidence_capture true\nprobe_interval 30s\n"
    with Broker() as br:
        col = Collector(br.port)
        with Sim(SIM, scn) as sim, Agent(AGENT, br, sim, agent_id="cap-1",
                                         extra_conf=conf) as ag:
            topic = "cradle/v1/agent/cap-1/device/%s/state"

            def last(u):
                return col.last(topic % u)

            def settled():
                # the first probe published and every relay delivers a live line
                if not all(last(u) for u in (A, B, C)):
                    return False
                return all(sim.ctl({"op": "syslog", "udid": u, "process": "SpringBoard",
                                    "message": "Screen locked; preview from Anna"})
                           .get("delivered", 0) >= 1 for u in (A, B, C))
            wait_for(settled, 30, interval=0.5, what="first states and open relays")

            # a live backupd line: the cause appears without a probe, quoted with its time
            sim.ctl_ok({"op": "syslog", "udid": A, "process": "backupd", "level": "Error",
                        "message": "Backup failed: Not enough iCloud storage (quota)"})
            wait_for(lambda: "icloud_storage_full" in causes(last(A)), 10,
                     what="storage cause from a live line")
            ev = causes(last(A))["icloud_storage_full"]
            if not ev.startswith("backupd 20") or "quota" not in ev:
                fail("evidence not quoted with its time: %r" % ev)
            for t, m, r, ts in col.json(topic % "+"):
                for e in causes(m).values():
                    if "Anna" in e:
                        fail("a SpringBoard line reached the evidence: %r" % e)

            # domain_changed: a finished backup on the broker within seconds
            t0 = time.monotonic()
            r = sim.ctl_ok({"op": "set", "udid": B, "domain": "com.apple.mobile.backup",
                            "key": "LastCloudBackupDate", "value": {"$now": 0}})
            if not r.get("notified"):
                fail("the agent does not observe domain_changed on %s: %s" % (B, r))
            wait_for(lambda: last(B)["diagnosis"]["status"] == "ok", 10,
                     what="fresh backup after domain_changed")
            print("domain_changed -> fresh state on the broker: %.2f s" % (time.monotonic() - t0))

            # refused notification_proxy: the interval (30 s) brings it, not the set
            t0 = time.monotonic()
            sim.ctl_ok({"op": "set", "udid": C, "domain": "com.apple.mobile.backup",
                        "key": "LastCloudBackupDate", "value": {"$now": 0}})
            time.sleep(3)
            if last(C)["diagnosis"]["status"] == "ok":
                fail("%s refuses notification_proxy yet was re-probed at once" % C)
            wait_for(lambda: last(C)["diagnosis"]["status"] == "ok", 40,
                     what="fallback to probe_interval")
            print("refused notification_proxy -> fresh after %.1f s (interval 30 s)"
                  % (time.monotonic() - t0))
            sim.ctl_ok({"op": "syslog", "udid": C, "process": "backupd",
                        "message": "Backup failed: network connection was lost"})
            wait_for(lambda: "network_unavailable" in causes(last(C)), 10,
                     what="lines from a phone without notification_proxy")

            # unplug keeps the ring; the next docking starts a new one
            sim.ctl_ok({"op": "detach", "udid": A})
            wait_for(lambda: last(A)["attached"] is False, 10, what="unplug message")
            if "icloud_storage_full" not in causes(last(A)):
                fail("the unplug message lost the captured cause: %s" % causes(last(A)))
            sim.ctl_ok({"op": "attach", "udid": A})
            wait_for(lambda: last(A)["attached"] is True and
                     "icloud_storage_full" not in causes(last(A)), 20,
                     what="a new ring after the re-dock")
            wait_for(lambda: sim.ctl({"op": "syslog", "udid": A, "process": "backupd",
                                      "message": "Backup failed: MBErrorDomain 17"})
                     .get("delivered", 0) >= 1, 20, interval=1, what="relay reconnected")
            wait_for(lambda: "backup_attempt_failed" in causes(last(A)), 10,
                     what="lines after the reconnect")
            if not ag.proc.alive():
                fail("agent died")
            # the helper ran the whole test (a restart would hide a crash or a sanitizer's
            # abort) and observed domain_changed on every phone that grants the service
            err = ag.proc.stderr_text()
            for bad in ("cradle-agent-watch ended", "cannot observe", "ThreadSanitizer",
                        "AddressSanitizer"):
                if bad in err:
                    fail("agent stderr has %r:\n%s" % (bad, err[-4000:]))
    print("ok")


if __name__ == "__main__":
    main()
