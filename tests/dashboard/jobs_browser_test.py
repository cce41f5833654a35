"""The jobs page in a real browser (headless chromium through chromium-driver, as
browser_test.py, whose Browser and helpers this reuses), against mosquitto, two cradle-sim +
cradle-agent stations at two sites and cradle-dashboard.

The operator's flow of a bulk job: the device table filtered to the phones with iCloud Backup
off, "Create job from this filter" carries the filter to the jobs page, the dry run's numbers
(phones, stations) are shown before the job can start, the job is confirmed, its progress arrives
live (stream "job" events, no reload) at the rollout's pace until it completes, every phone is
then ok, and the device page lists the job with the phone's execution. A viewer gets no way to
create or cancel. No page may log a console error; screenshots of each step go to
$CRADLE_SCREENSHOTS (jobs-*.png).
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, fail, wait_for  # noqa: E402
from browser_test import (ADMIN_PW, VIEWER_PW, Api, browser_on, login, phone,  # noqa: E402
                          two_stations)

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

HOUR = 3600

# iCloud Backup off on 3 + 2 phones (cause icloud_backup_disabled), one healthy phone each
NORTH = [phone(1, n, "North job %02d" % n, cloud=False) for n in range(1, 4)] + \
    [phone(1, 9, "North fine", backup_ago=HOUR)]
SOUTH = [phone(2, n, "South job %02d" % n, cloud=False) for n in range(1, 3)] + \
    [phone(2, 9, "South fine", backup_ago=HOUR)]
TARGET = [p["udid"] for p in NORTH[:3] + SOUTH[:2]]
CAUSE = "icloud_backup_disabled"


def job_flow(b, api):
    # the device table, filtered in the page to the phones with iCloud Backup off
    b.get("/devices")
    b.wait(lambda: len(b.qa("#devices tbody tr[data-udid]")) == len(NORTH) + len(SOUTH),
           "every phone in the device table")
    Select(b.q("#f-cause")).select_by_value(CAUSE)
    b.wait(lambda: sorted(tr.get_attribute("data-udid")
                          for tr in b.qa("#devices tbody tr[data-udid]")) == sorted(TARGET),
           "the table filtered to the %d phones with %s" % (len(TARGET), CAUSE))
    link = b.q("#job-from-filter")
    check(link.is_displayed(), "an admin sees 'Create job from this filter'")
    check("cause=" + CAUSE in link.get_attribute("href"), "the link carries the filter: %s"
          % link.get_attribute("href"))
    b.shot("jobs-1-devices-filter")
    b.no_console_errors("devices (filtered)")
    link.click()

    # the jobs page: the filter carried over, a dry run before anything can start
    b.wait(lambda: b.path().startswith("/jobs?") and b.q("#create").is_displayed(),
           "the jobs page's new-job form")
    chips = [c.text for c in b.qa("#filter-chips .chip")]
    check(chips == ["cause = " + CAUSE], "the form shows the carried filter: %s" % chips)
    check(not b.q("#confirm").is_enabled(), "no start before a dry run")
    check(Select(b.q("#j-command")).first_selected_option.get_attribute("value") ==
          "backup.icloud.enable", "the default command is backup.icloud.enable")
    name = b.q("#j-name")
    name.clear()
    name.send_keys("Enable iCloud Backup (browser test)")
    # a pace the page can be watched at: one phone every 2 s, one at a time per station
    for css, v in (("#j-per-minute", "30"), ("#j-per-agent", "1"), ("#j-timeout", "60")):
        b.q(css).clear()
        b.q(css).send_keys(v)
    b.q("#dry-run").click()
    b.wait(lambda: b.text("#dry-phones") == str(len(TARGET)), "the dry run's phone count")
    check(b.text("#dry-agents") == "2", "the dry run names 2 stations: %s" % b.text("#dry"))
    check(b.text("#dry-docked") == str(len(TARGET)), "all docked: %s" % b.text("#dry"))
    rows = [tr.text for tr in b.qa("#dry .dry-agents tbody tr")]
    check(len(rows) == 2 and any(r.startswith("st-north 3 3") for r in rows) and
          any(r.startswith("st-south 2 2") for r in rows), "per station: %s" % rows)
    check(not api.get("/api/v1/jobs")["jobs"], "a dry run creates no job")
    b.wait(lambda: b.q("#confirm").is_enabled(), "Start job enabled after the dry run")
    b.shot("jobs-2-dry-run")
    # changing the job after the dry run asks for a new one
    b.q("#j-per-agent").send_keys("0")
    b.wait(lambda: not b.q("#confirm").is_enabled(), "a changed job needs a new dry run")
    b.q("#j-per-agent").clear()
    b.q("#j-per-agent").send_keys("1")
    b.q("#dry-run").click()
    b.wait(lambda: b.q("#confirm").is_enabled(), "Start job enabled after the second dry run")
    b.no_console_errors("jobs (dry run)")
    b.q("#confirm").click()

    # the job's page: progress arrives live, without a reload, until it completes
    b.wait(lambda: b.path().startswith("/jobs?id="), "the new job's page")
    job_id = int(b.path().split("=", 1)[1])
    job = api.get("/api/v1/jobs/%d" % job_id)
    check(job["target"] == {"filter": {"cause": CAUSE}}, "the job's target is the table's "
          "filter: %s" % job["target"])
    check(job["rollout"]["per_minute"] == 30 and job["rollout"]["per_agent"] == 1,
          "the rollout as chosen: %s" % job["rollout"])
    check(job["created_by"] == "admin", "created by the admin: %s" % job["created_by"])
    b.wait(lambda: b.q("#detail").is_displayed() and
           b.text("#d-title").upper().startswith("JOB #%d" % job_id), "the job's detail panel")
    check(not b.qa("#notice"), "no notice on the job page: %s" % b.text("#notice"))
    b.d.execute_script("window.cradleNoReload = true")
    seen = set()

    def progressed():
        t = b.text("#d-progress .job-progress") or ""
        seen.add(t)
        return t == "%d / %d" % (len(TARGET), len(TARGET)) and \
            b.text("#d-state") == "completed"
    mid = False
    end = time.monotonic() + 60
    while not progressed():
        if not mid and any(t.split(" / ")[0] not in ("0", str(len(TARGET)))
                           for t in seen if " / " in t):
            b.shot("jobs-3-progress")
            mid = True
        if time.monotonic() > end:
            # an exception, not fail(): the handler below saves a screenshot and the page
            raise AssertionError("the job did not complete on the page: %s, seen %s, "
                                 "console %s" % (b.text("#detail"), sorted(seen),
                                                 b.d.get_log("browser")))
        time.sleep(0.1)
    check(b.d.execute_script("return window.cradleNoReload === true"),
          "the page was not reloaded")
    events = int(b.q("body").get_attribute("data-job-events") or 0)
    check(events >= 2, "progress came as live job events (%d)" % events)
    check(mid, "an intermediate progress was shown on the way: %s" % sorted(seen))
    b.wait(lambda: len(b.qa("#executions tbody tr[data-udid]")) == len(TARGET) and
           all(x.text == "succeeded" for x in b.qa("#executions tbody .badge")),
           "every execution succeeded in the table")
    row = b.q('#jobs tr[data-job="%d"]' % job_id)
    check("completed" in row.text and not row.find_elements(By.CSS_SELECTOR, "button.cancel"),
          "the list row completed, no cancel: %s" % row.text)
    b.shot("jobs-4-completed")
    b.no_console_errors("jobs (job page)")
    wait_for(lambda: all(api.get("/api/v1/devices/" + u)["status"] == "ok" for u in TARGET),
             30, what="every target phone ok")

    # the device page lists the job that touched the phone
    b.get("/devices/" + TARGET[0])
    b.wait(lambda: b.q("#jobs-panel").is_displayed() and
           b.qa('#jobs tbody tr[data-job="%d"]' % job_id), "the job on the device page")
    t = b.q('#jobs tbody tr[data-job="%d"]' % job_id).text
    check("backup.icloud.enable" in t and "succeeded" in t and "completed" in t,
          "the device page's job row: %s" % t)
    b.shot("jobs-5-device")
    b.no_console_errors("device (jobs)")
    b.get("/devices/" + NORTH[3]["udid"])
    b.wait(lambda: "No job has touched this phone" in (b.text("#jobs-panel") or ""),
           "an untouched phone lists no job")
    return job_id


def cancel_flow(b, api):
    # a slow job (1 a minute) is canceled from the list; the list says so live
    b.get("/jobs?new=1&site=South")
    b.wait(lambda: b.q("#create").is_displayed(), "the new-job form")
    Select(b.q("#j-command")).select_by_value("device.refresh")
    b.q("#j-per-minute").clear()
    b.q("#j-per-minute").send_keys("1")
    check(b.q("#j-name").get_attribute("value") == "device.refresh: phones at South",
          "the name follows the command: %s" % b.q("#j-name").get_attribute("value"))
    b.q("#dry-run").click()
    b.wait(lambda: b.text("#dry-phones") == str(len(SOUTH)), "the dry run of site South")
    b.q("#confirm").click()
    b.wait(lambda: b.path().startswith("/jobs?id="), "the second job's page")
    job_id = int(b.path().split("=", 1)[1])
    b.get("/jobs")
    # the list is redrawn by every live `job` event: a button found a moment ago may be gone,
    # so finding and clicking are one step, retried
    def click_cancel():
        try:
            btns = b.qa('#jobs tr[data-job="%d"] button.cancel' % job_id)
            if btns:
                btns[0].click()
            return bool(btns)
        except StaleElementReferenceException:
            return False
    b.wait(click_cancel, "a cancel button on the running job, clicked")
    b.d.switch_to.alert.accept()
    b.wait(lambda: "canceled" in b.q('#jobs tr[data-job="%d"]' % job_id).text,
           "the canceled job in the list")
    job = api.get("/api/v1/jobs/%d" % job_id)
    check(job["state"] == "canceled" and job["canceled_by"] == "admin",
          "canceled by the admin: %s %s" % (job["state"], job["canceled_by"]))
    b.shot("jobs-6-canceled")
    b.no_console_errors("jobs (cancel)")


def viewer_flow(b):
    b.q("#logout").click()
    b.wait(lambda: b.path().startswith("/login"), "the login page after logout")
    b.get("/login?next=%2Fdevices")
    login(b, "viewer", VIEWER_PW, expect_path="/devices")
    b.wait(lambda: b.qa("#devices tbody tr[data-udid]"), "the device table for a viewer")
    check(not b.q("#job-from-filter").is_displayed(), "a viewer gets no job link")
    b.get("/jobs?new=1")
    b.wait(lambda: "operators and admins" in (b.text("#notice") or ""),
           "the jobs page tells a viewer jobs are for operators")
    check(not b.q("#create").is_displayed() and not b.q("#new-job").is_displayed(),
          "a viewer gets no job form")
    b.shot("jobs-7-viewer")
    b.console_errors()  # the 403 of GET /api/v1/jobs is the expected answer


def main():
    tmp = tempfile.mkdtemp(prefix="cradle-jobs-browser-")
    with two_stations(tmp, NORTH, SOUTH) as st, browser_on(st.dsh.url, "jobs-failure") as b:
        dsh = st.dsh
        b.get("/jobs")
        login(b, "admin", ADMIN_PW, expect_path="/jobs")
        b.console_errors()  # the anonymous /me's 401 is expected
        api = Api(dsh.url, b)
        n = len(NORTH) + len(SOUTH)
        try:
            wait_for(lambda: api.get("/api/v1/summary")["total"] == n and
                     all(d["status"] != "unknown" and d["attached"]
                         for d in api.get("/api/v1/devices?limit=50")["devices"]), 60,
                     what="every phone probed and docked")
        except TimeoutError:
            sys.stderr.write("summary %s\n" % api.get("/api/v1/summary"))
            for d in api.get("/api/v1/devices?limit=50")["devices"]:
                sys.stderr.write("%s\n" % d)
            raise
        b.wait(lambda: "No jobs yet" in (b.text("#jobs") or ""), "an empty jobs list")
        b.shot("jobs-0-empty")
        b.no_console_errors("jobs (empty)")
        job_flow(b, api)
        cancel_flow(b, api)
        viewer_flow(b)
    print("ok: jobs browser test; screenshots in %s" % os.environ.get("CRADLE_SCREENSHOTS", "."))


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as e:
        fail(str(e))
