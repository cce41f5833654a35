#!/usr/bin/python3
"""A session is never reused (issue 8 item 9): the agent runs six times on one state_dir, and
between runs agent.state is left alone, deleted, damaged (garbage), emptied (zero length) and
replaced by an old copy. Every run's birth carries a session no earlier run had, sessions grow
while the file is intact, and no event_id (the consumers' 24 h dedupe key "<session>-<seq>")
ever names two different events. Every message validates against its schema."""
import os
import shutil

from common import AGENT, SIM, device, events, udid, validate_all, write_scenario
from harness import Agent, Broker, Collector, Sim, fail, wait_for

AID = "station-session-1"


def stopped(agent):
    """SIGTERM: a clean exit (0; under ASan also no leak or error)."""
    proc = agent.proc
    rc = agent.stop()
    if rc != 0:
        fail("agent exited %r:\n%s" % (rc, proc.stderr_text()[-3000:]))


def births(col):
    return [m for t, m, r, ts in col.json("cradle/v1/agent/%s/status" % AID)
            if m.get("online") is True]


def main():
    scenario = write_scenario([device(1)])
    with Broker() as broker, Sim(SIM, scenario) as sim:
        col = Collector(broker.port)
        with Agent(AGENT, broker, sim, agent_id=AID) as agent:
            path = os.path.join(agent.state_dir, "agent.state")
            saved = os.path.join(agent.tmp, "agent.state.old")
            damage = [
                ("new", lambda: None),
                ("intact", lambda: None),
                ("deleted", lambda: os.unlink(path)),
                ("garbage", lambda: open(path, "wb").write(b"session \xff\x00zz\nnext_seq -1\n")),
                ("zero length", lambda: open(path, "wb").close()),
                ("an old copy", lambda: shutil.copy(saved, path)),
            ]
            sessions = []
            for n, (what, spoil) in enumerate(damage):
                if n > 0:
                    stopped(agent)
                    if n == 1:
                        shutil.copy(path, saved)  # the first run's file, for "an old copy"
                    spoil()
                    agent.start()
                # a birth of a session not seen before, then the phone's attached event in it
                b = wait_for(lambda: [m for m in births(col) if m["session"] not in sessions],
                             15, what="birth of run %d (%s)" % (n + 1, what))[-1]
                s = b["session"]
                wait_for(lambda: [e for e in events(col, AID, udid(1))
                                  if e["session"] == s and e["event"] == "attached"],
                         15, what="attached event in session %d" % s)
                if sessions and what == "intact" and s <= sessions[-1]:
                    fail("session did not grow with the file intact: %d after %r" %
                         (s, sessions))
                print("run %d, state file %s: session %d" % (n + 1, what, s))
                sessions.append(s)
            stopped(agent)
        col.close()

        if len(set(sessions)) != len(sessions):
            fail("a session was reused: %r" % sessions)
        # the same event_id must always mean the same message (redelivery), never another event
        by_id = {}
        for t, m, r, ts in col.json("cradle/v1/agent/%s/#" % AID):
            if "event_id" not in m:
                continue
            key = (m["event"], m.get("udid"), m["seq"], m["ts"])
            by_id.setdefault(m["event_id"], set()).add(key)
        reused = {k: v for k, v in by_id.items() if len(v) > 1}
        if reused:
            fail("event ids name different events: %r" % reused)
        if len(by_id) < len(damage):
            fail("too few events to compare: %d" % len(by_id))
        n = validate_all(col)
        print("ok: %d sessions all different, %d event ids unique, %d messages valid" %
              (len(sessions), len(by_id), n))


if __name__ == "__main__":
    main()
