#!/usr/bin/python3
"""The alerts page in headless Chromium against mosquitto, cradle-sim, cradle-agent and the
dashboard: two stale phones show as firing backup_stale alerts (a fresh one does not); the state
filter goes into the address; an operator silences one phone with the form, and its alert turns
`silenced` on the page by itself (the live `alert` event); ending the silence from the table
removes it; the rules table shows the four rules from the configuration. No console errors; a
screenshot in $CRADLE_SCREENSHOTS/alerts.png."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_test import ADMIN_PW, SHOTS, Browser, login  # noqa: E402
import dash  # noqa: E402
from harness import Agent, Broker, Sim, check, wait_for  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "agent"))
from common import device, udid, write_scenario  # noqa: E402

DAY = 86400


def rows(b):
    return [(tr.get_attribute("data-id"), [td.text for td in tr.find_elements("css selector",
                                                                              "td")])
            for tr in b.qa("#alerts tbody tr[data-id]")]


def main():
    scn = write_scenario([device(1, backup_ago=5 * DAY), device(2, backup_ago=5 * DAY),
                          device(3)])
    with Broker() as broker, Sim(dash.SIM, scn) as sim, \
            Agent(dash.AGENT, broker, sim, agent_id="st-alerts-ui",
                  extra_conf="site north\nstation cart-1\n"), \
            dash.Dashboard(dash.DASH, broker, extra_conf="alert_interval 1s\n") as d:
        dash.user_add(d, "admin", "admin", ADMIN_PW)
        dash.wait_http(d)
        wait_for(lambda: d.q1("SELECT count(*) FROM alerts") == 2, 40, what="two alerts")
        b = Browser()
        b.base = d.url
        try:
            b.get("/alerts")
            login(b, "admin", ADMIN_PW, expect_path="/alerts")
            b.console_errors()  # the 401 of /me that sent us to the login page
            b.wait(lambda: len(rows(b)) == 2, "two alert rows")
            r = rows(b)
            check(all(x[1][0] == "firing" and x[1][1] == "backup_stale" for x in r),
                  "rows: %r" % r)
            check(b.text("#count") == "2 alerts", "count: %r" % b.text("#count"))
            b.wait(lambda: len(b.qa("#rules tbody tr")) == 4, "the four rules")
            Select(b.q("#f-state")).select_by_value("resolved")
            b.wait(lambda: b.path() == "/alerts?state=resolved" and not rows(b),
                   "the resolved filter, empty, in the address")
            Select(b.q("#f-state")).select_by_value("")
            b.wait(lambda: len(rows(b)) == 2, "the rows again")

            # silence phone 1 with the form: its alert turns silenced by itself
            Select(b.q("#s-scope")).select_by_value("udid")
            b.q("#s-value").send_keys(udid(1))
            b.q("#s-comment").send_keys("in repair")
            Select(b.q("#s-rule")).select_by_value("backup_stale")
            b.q("#s-add").click()
            b.wait(lambda: len(b.qa("#silences tbody tr td button")) == 1, "the silence listed")
            b.wait(lambda: sorted(x[1][0] for x in rows(b)) == ["firing", "silenced"],
                   "phone 1's alert silenced on the page", timeout=20)
            check(d.q1("SELECT created_by FROM silences") == "admin", "created_by")
            b.shot("alerts")
            b.q("#silences tbody tr td button").click()
            b.wait(lambda: not b.qa("#silences tbody tr td button"), "the silence ended")
            b.wait(lambda: [x[1][0] for x in rows(b)] == ["firing", "firing"],
                   "both firing again", timeout=20)
            b.no_console_errors("alerts")
        finally:
            b.quit()
    print("ok: alerts page; screenshot in %s" % SHOTS)


if __name__ == "__main__":
    main()
