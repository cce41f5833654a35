#!/usr/bin/python3
"""The alerts page's delivery panel in headless Chromium: a dashboard whose only receiver is
unreachable (notify_attempts 1), two notifications queued into its store, both turn dead letters;
the page shows the receiver and "2 dead letters", and lists them. No console errors; a screenshot
in $CRADLE_SCREENSHOTS/alerts-delivery.png."""
import os
import subprocess
import sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_test import ADMIN_PW, SHOTS, Browser, login  # noqa: E402
import dash  # noqa: E402
from harness import Broker, check, fail, free_port, wait_for  # noqa: E402

DRIVER = os.environ.get("NOTIFY_DRIVER", "")
SECRET = "s3cret-for-the-test-0123456789"


def main():
    down = free_port()
    rcv = "receiver1 ops webhook http://127.0.0.1:%d/h secret=%s\n" % (down, SECRET)
    with Broker() as broker, \
            dash.Dashboard(dash.DASH, broker, extra_conf="notify_attempts 1\n" + rcv) as d:
        dash.user_add(d, "admin", "admin", ADMIN_PW)
        dash.wait_http(d)
        conf = os.path.join(d.tmp, "driver.conf")
        with open(conf, "w") as f:
            f.write("db %s\ncommand_key %s/command.key\n%s" % (d.db, d.tmp, rcv))
        r = subprocess.run([DRIVER, conf, "enqueue:2:backup_stale:firing"], capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            fail("notify_driver: %s" % r.stderr[-2000:])
        wait_for(lambda: d.q1("SELECT count(*) FROM notify_queue WHERE dead_ms IS NOT NULL") == 2,
                 20, what="two dead letters")
        b = Browser()
        b.base = d.url
        try:
            b.get("/alerts")
            login(b, "admin", ADMIN_PW, expect_path="/alerts")
            b.console_errors()  # the 401 of /me that sent us to the login page
            b.wait(lambda: "2 dead letters" in b.text("#notify-summary"), "the dead-letter count")
            cells = [td.text for td in b.qa("#notify-receivers tbody tr td")]
            check(cells[:2] == ["ops", "webhook"] and cells[5] == "2", "receiver row %r" % cells)
            check(len(b.qa("#notify-dead-letters li")) == 2, "dead letters listed")
            b.shot("alerts-delivery")
            b.no_console_errors("alerts")
        finally:
            b.quit()
    print("ok: delivery panel; screenshot in %s" % SHOTS)


if __name__ == "__main__":
    main()
