#!/usr/bin/python3
"""Retained states survive a broker that lost them (issue 8 item 3): with 45 phones docked, the
broker is restarted on the same port without its persistence file, so it comes back with no
retained message at all. On reconnect the agent republishes every known phone's state (paced,
agent/registry.c), so a fresh subscriber finds all 45 states retained again within seconds
(before: only at the next change or refresh_interval, 1 h), each newer than the one the broker
lost and schema-valid, made a batch of 20 per 100 ms tick rather than all at once. Then the
broker is killed (kill -9) and restores its last autosave: the states are newer again. Prints
how long the states took to come back."""
import calendar
import os
import signal
import time

from common import AGENT, SCHEMAS, SIM, VALIDATE, device, states, udid, write_scenario
from harness import Agent, Broker, Collector, Sim, fail, validate_messages, wait_for
from session_test import stopped

AID = "station-republish-1"
PHONES = 45  # more than one batch of REGISTRY_REPUBLISH_BATCH (20)
BATCH, TICK_MS = 20, 100
STATES = "cradle/v1/agent/%s/device/+/state" % AID


def iso_ms(s):
    """RFC 3339 with milliseconds (the agent's ts) -> Unix ms."""
    return int(calendar.timegm(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 +
               int(s[20:23]))


def latest(msgs):
    """The newest state per UDID among (topic, message, retain, t) tuples."""
    out = {}
    for t, m, r, ts in msgs:
        if m["udid"] not in out or m["seq"] > out[m["udid"]]["seq"]:
            out[m["udid"]] = m
    return out


def back_again(broker, before, t0):
    """Waits for every phone's state on a broker that lost them: seen by a subscriber that
    stays, then retained for a new one, each newer than before[udid]. Returns the retained
    states by UDID and the seconds from t0 (the broker's restart) until all were seen."""
    watch = Collector(broker.port, STATES, client_id="fresh-1")

    def all_newer():
        # a broker that restored an autosave hands out the old states at once: only states
        # newer than before[] are the agent's republishing
        got = latest(watch.json())
        return len(got) == PHONES and all(m["session"] == before[u]["session"] and
                                          m["seq"] > before[u]["seq"] for u, m in got.items())
    wait_for(all_newer, 10, what="all %d states republished, newer than before" % PHONES)
    back_s = time.monotonic() - t0
    watch.close()
    fresh = Collector(broker.port, STATES, client_id="fresh-2")
    got = wait_for(lambda: len([m for m in fresh.json() if m[2]]) >= PHONES and
                   fresh.json(), 5, what="%d retained states" % PHONES)
    fresh.close()
    retained = latest([m for m in got if m[2]])
    if set(retained) != set(udid(n) for n in range(1, PHONES + 1)):
        fail("retained states for %d phones, expected %d" % (len(retained), PHONES))
    for u, m in retained.items():
        if m["session"] != before[u]["session"] or m["seq"] <= before[u]["seq"]:
            fail("phone %s: retained state is not newer than the lost one: %r -> %r" %
                 (u, (before[u]["session"], before[u]["seq"]), (m["session"], m["seq"])))
        if not m["attached"] or m["probe"] != "ok":
            fail("phone %s: republished state is wrong: %r" % (u, m))
    return retained, back_s


def main():
    scenario = write_scenario([device(n) for n in range(1, PHONES + 1)])
    with Broker() as broker, Sim(SIM, scenario) as sim:
        col = Collector(broker.port)
        with Agent(AGENT, broker, sim, agent_id=AID) as agent:
            for n in range(1, PHONES + 1):
                wait_for(lambda: any(s["attached"] and s["probe"] == "ok"
                                     for s in states(col, AID, udid(n))), 30,
                         what="first state of phone %d" % n)
            before = latest(col.json(STATES))
            col.close()

            # a restart that loses everything: no persistence file to restore from
            broker.stop()
            db = os.path.join(broker.tmp, "mosquitto.db")
            if os.path.exists(db):
                os.unlink(db)
            broker.start()
            t0 = time.monotonic()
            empty = Collector(broker.port, STATES, client_id="fresh-0")
            time.sleep(0.2)  # measurement window: what a fresh subscriber finds retained
            lost = len([m for m in empty.all() if m[2]])
            empty.close()

            retained, back_s = back_again(broker, before, t0)
            # paced: a batch per tick, not all at once (ts is when the agent made the message)
            ts = sorted(iso_ms(m["ts"]) for m in retained.values())
            first = len([t for t in ts if t < ts[0] + TICK_MS / 2])
            if first > BATCH or ts[-1] - ts[0] < (PHONES - 1) // BATCH * TICK_MS * 0.8:
                fail("not paced: %d states in the first tick, spread %d ms" %
                     (first, ts[-1] - ts[0]))
            spread = ts[-1] - ts[0]
            validate_messages(VALIDATE, SCHEMAS, list(retained.values()))
            if "republishing the state of %d devices" % PHONES not in agent.proc.stderr_text():
                fail("the agent did not log its republishing pass")

            # a killed broker restores its last autosave, which may be older than what the
            # agent published since: the republished states are newer than both
            broker.proc.kill9()
            broker.proc = None
            broker.start()
            rolled, back2_s = back_again(broker, retained, time.monotonic())
            validate_messages(VALIDATE, SCHEMAS, list(rolled.values()))
            stopped(agent)
    print("ok: broker restarted without persistence (%d states right after), all %d states "
          "retained again %.1f s after the restart (republished over %d ms), newer, "
          "schema-valid; after a kill -9 of the broker, newer again in %.1f s" %
          (lost, PHONES, back_s, spread, back2_s))


if __name__ == "__main__":
    signal.alarm(110)
    main()
