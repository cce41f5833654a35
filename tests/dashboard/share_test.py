#!/usr/bin/python3
"""cradle-dashboard with mqtt_share_group: events and results come through
$share/<group>/... with a persistent session, so what an agent publishes while the dashboard
restarts is stored after the restart, without gaps or duplicates; retained state still comes
through the normal subscription. Messages are hand-made with mosquitto_pub."""
import time

from dash import DASH, Dashboard
from harness import Broker, fail, wait_for
from ingest_e2e_test import FAKE, fake_event, fake_state, fake_status, pub, udid


def main():
    u = udid(7)
    ev = "cradle/v1/agent/%s/device/%s/event" % (FAKE, u)
    with Broker() as broker, Dashboard(DASH, broker, extra_conf="mqtt_share_group dash\n") as d:
        pub(broker, "cradle/v1/agent/%s/status" % FAKE, fake_status(9, 0), retain=True)
        pub(broker, "cradle/v1/agent/%s/device/%s/state" % (FAKE, u),
            fake_state(9, 1, u, time.time(), True), retain=True)
        pub(broker, ev, fake_event(9, 2))

        def events():
            return d.q1("SELECT count(*) FROM history WHERE agent = ? AND kind = 'event'",
                        (FAKE,))
        wait_for(lambda: events() == 1, 10, what="the first event")
        if d.q1("SELECT attached FROM devices WHERE udid = ?", (u,)) != 1:
            fail("the retained state was not stored")
        d.stop()
        # published while the dashboard is down: kept by the broker for its session
        pub(broker, ev, fake_event(9, 3, "detached"))
        pub(broker, ev, fake_event(9, 4, "attached"))
        d.start()
        wait_for(lambda: events() == 3, 15, what="the events published during the restart")
        a = d.q("SELECT * FROM agents WHERE agent = ?", (FAKE,))[0]
        if a["lost_messages"] != 0 or a["duplicates"] != 0:
            fail("no gap and no duplicate expected: %r" % a)
        if "events and results shared" not in d.stderr():
            fail("the dashboard did not say it subscribes with a share group")
    print("ok")


if __name__ == "__main__":
    main()
