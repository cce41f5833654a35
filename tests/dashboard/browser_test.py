"""The web UI in a real browser: Debian's chromium (headless) driven through chromium-driver by
python3-selenium, against a real stack — mosquitto, two cradle-sim + cradle-agent stations at
two sites, and cradle-dashboard.

Checks what an operator does: an anonymous visit lands on the login page; after logging in the
overview, the device table (filter, sort, search, CSV link) and the device page show what the
API returns; a phone unplugged in the simulator changes its row without a reload; a command
sent with a button reaches the phone and its result arrives on the page live; a viewer sees no
command buttons; logout ends the session; the live stream's end (a role changed, the session
logged out elsewhere) reloads the page or sends it to the login page. No page may log a console error. A screenshot of
every page goes to $CRADLE_SCREENSHOTS (the build directory's screenshots/), for a human to look
at.
"""
import contextlib
import csv
import io
import json
import os
import sys
import tempfile
import types
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Agent, Broker, Sim, check, fail, wait_for  # noqa: E402
import dash  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

SIM = os.environ["CRADLE_SIM"]
AGENT = os.environ["CRADLE_AGENT"]
SHOTS = os.environ.get("CRADLE_SCREENSHOTS") or os.path.join(os.getcwd(), "screenshots")
CHROMEDRIVER = os.environ.get("CRADLE_CHROMEDRIVER", "/usr/bin/chromedriver")
ADMIN_PW = "correct horse battery staple"
VIEWER_PW = "viewer password 1"
HOUR = 3600
DAY = 86400


def udid(site, n):
    return "00008110-00%02dB0A1C2D3%04X" % (site, n)


def phone(site, n, name, backup_ago=HOUR, cloud=True, pairing="paired", external=True,
          version="17.5.1"):
    backup = {"CloudBackupEnabled": cloud, "WillEncrypt": False, "RequiresEncryption": 0,
              "Version": "2.0"}
    if backup_ago is not None:
        backup["LastCloudBackupDate"] = {"$ago": backup_ago}
    return {
        "udid": udid(site, n),
        "pairing": pairing,
        "attached": True,
        "values": {
            "": {"ProductType": "iPhone14,5", "ProductVersion": version, "BuildVersion": "21F90",
                 "DeviceName": name, "SerialNumber": "F2LUI%d%05d" % (site, n),
                 "PasswordProtected": True},
            "com.apple.mobile.backup": backup,
            "com.apple.mobile.battery": {"BatteryCurrentCapacity": 80, "BatteryIsCharging": False,
                                         "ExternalConnected": external, "FullyCharged": False},
            "com.apple.disk_usage": {"TotalDiskCapacity": 128000000000,
                                     "TotalDataCapacity": 110000000000,
                                     "AmountDataAvailable": 40000000000},
        },
    }


# Two stations, phones in every status the judge knows from the agent's side.
NORTH = [
    phone(1, 1, "North ward 01"),
    phone(1, 2, "North ward 02", backup_ago=10 * HOUR),
    phone(1, 3, "North ward 03", backup_ago=5 * DAY),
    phone(1, 4, "North ward 04", backup_ago=10 * DAY, cloud=False),
    phone(1, 5, "North ward 05", backup_ago=None),
    phone(1, 6, "North ward 06", pairing="unpaired"),
]
SOUTH = [
    phone(2, 1, "South ward 01", backup_ago=2 * HOUR),
    phone(2, 2, "South ward 02", backup_ago=4 * DAY, version="16.7.8"),
    phone(2, 3, "South ward 03", external=False),
    # a name is whatever the phone's owner typed: it must show as text, never run as HTML
    phone(2, 4, 'South ward 04 <img src=x onerror="window.__xss=1">', backup_ago=20 * HOUR),
]
ALL = NORTH + SOUTH


def scenario(tmp, name, devices):
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump({"devices": devices}, f)
    return path


class Browser:
    """Headless chromium through chromium-driver; console messages kept per page."""

    def __init__(self):
        opts = webdriver.ChromeOptions()
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1440,1000", "--disable-extensions", "--no-first-run",
                  "--password-store=basic"):
            opts.add_argument(a)
        opts.binary_location = "/usr/bin/chromium"
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.d = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.d.set_page_load_timeout(30)
        self.base = None

    def quit(self):
        self.d.quit()

    def get(self, path):
        self.d.get(self.base + path)

    def path(self):
        return self.d.current_url[len(self.base):]

    def q(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def qa(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def text(self, css):
        try:
            return self.q(css).text
        except Exception:
            return None

    def wait(self, fn, what, timeout=15):
        def attempt():
            try:
                return fn()
            except StaleElementReferenceException:
                return None
        return wait_for(attempt, timeout, interval=0.1, what=what)

    def console_errors(self):
        """SEVERE console entries since the last call (reading the log drains it)."""
        return [e for e in self.d.get_log("browser") if e.get("level") == "SEVERE"]

    def no_console_errors(self, page):
        errs = self.console_errors()
        check(not errs, "%s logged console errors: %s" % (page, json.dumps(errs, indent=1)))

    def shot(self, name):
        os.makedirs(SHOTS, exist_ok=True)
        path = os.path.join(SHOTS, name + ".png")
        # The whole page, not only the window: grow the window to the document's height.
        h = self.d.execute_script("return document.documentElement.scrollHeight")
        w = self.d.get_window_size()["width"]
        self.d.set_window_size(w, max(600, min(int(h) + 140, 4000)))
        self.d.save_screenshot(path)
        self.d.set_window_size(w, 1000)
        return path

    def cookie_header(self):
        return "; ".join("%s=%s" % (c["name"], c["value"]) for c in self.d.get_cookies())


class Api:
    """The JSON API with the browser's session cookie: what the pages must show."""

    def __init__(self, base, browser):
        self.base = base
        self.browser = browser

    def raw(self, path, accept="application/json"):
        req = urllib.request.Request(self.base + path, headers={
            "Cookie": self.browser.cookie_header(), "Accept": accept})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def get(self, path):
        status, _, body = self.raw(path)
        check(status == 200, "GET %s: %s %r" % (path, status, body[:300]))
        return json.loads(body)


def login(b, user, password, expect_path="/"):
    b.wait(lambda: b.path().startswith("/login"), "the login page")
    b.q("#user").clear()
    b.q("#user").send_keys(user)
    b.q("#password").send_keys(password)
    b.q("#login-submit").click()
    b.wait(lambda: b.path() == expect_path, "%s after logging in as %s (at %s)" %
           (expect_path, user, b.path()))


def table_udids(b):
    return [tr.get_attribute("data-udid") for tr in b.qa("#devices tbody tr[data-udid]")]


def check_overview(b, api):
    b.get("/")
    s = api.get("/api/v1/summary")

    def shown():
        got = {k: b.text('[data-k="%s"]' % k) for k in ("total", "ok", "stale", "unknown",
                                                          "missing")}
        want = {"total": str(s["total"])}
        want.update({k: str(s["by_status"][k]) for k in ("ok", "stale", "unknown", "missing")})
        return got == want and got
    b.wait(shown, "the overview's numbers equal /api/v1/summary %s" % s["by_status"])
    ag = s["agents"]
    b.wait(lambda: b.text('[data-k="agents"]') ==
           "%d / %d" % (ag["online"], ag["online"] + ag["offline"]), "agents online")
    agents = api.get("/api/v1/agents")["agents"]
    b.wait(lambda: sorted(tr.get_attribute("data-agent") for tr in b.qa("#agents tbody tr")) ==
           sorted(a["agent"] for a in agents), "one agents row per agent")
    sites = sorted(r["site"] for r in s["by_site"])
    b.wait(lambda: sorted(tr.find_elements(By.TAG_NAME, "td")[0].text
                          for tr in b.qa("#by-site tbody tr")) == sites, "one row per site")
    # Chart.js drew both charts (a canvas it owns has a chart instance)
    b.wait(lambda: b.d.execute_script(
        "return !!(window.Chart && Chart.getChart('age-chart') && Chart.getChart('stale-chart'))"),
        "the overview's charts")
    causes = [c["code"] for c in s["top_causes"]]
    b.wait(lambda: [e.text for e in b.qa("#top-causes .chip")] == causes, "top causes")
    b.shot("overview")
    b.no_console_errors("overview")


def check_devices(b, api):
    b.get("/devices")
    want = api.get("/api/v1/devices?sort=-age&limit=50")
    b.wait(lambda: table_udids(b) == [d["udid"] for d in want["devices"]],
           "the device table in the API's order (sort -age)")
    check(b.text("#count") == "%d phones" % want["total"], "count: %s" % b.text("#count"))
    b.shot("devices")

    # filter by status: the table and the CSV link follow
    Select(b.q("#f-status")).select_by_value("stale")
    stale = api.get("/api/v1/devices?status=stale&sort=-age&limit=50")
    check(stale["total"] > 1, "the scenario has stale phones: %d" % stale["total"])
    b.wait(lambda: table_udids(b) == [d["udid"] for d in stale["devices"]],
           "the table filtered by status=stale")
    check("status=stale" in b.path(), "the filter is in the page's URL: %s" % b.path())
    for tr in b.qa("#devices tbody tr"):
        check(tr.find_element(By.CSS_SELECTOR, ".badge").text == "stale", "only stale rows")

    # sort by backup age, the other way round
    b.q('th[data-sort="age"]').click()
    asc = api.get("/api/v1/devices?status=stale&sort=age&limit=50")
    b.wait(lambda: table_udids(b) == [d["udid"] for d in asc["devices"]],
           "the table sorted by age ascending")
    check(table_udids(b) == list(reversed([d["udid"] for d in stale["devices"]])) or
          len(set(d["age_s"] for d in stale["devices"])) < len(stale["devices"]),
          "ascending is the reverse of descending")

    # the CSV link exports the current filter
    href = b.q("#csv").get_attribute("href")
    check("format=csv" in href and "status=stale" in href and "sort=age" in href,
          "CSV link of the filter: %s" % href)
    status, headers, body = api.raw(href[len(api.base):], accept="text/csv")
    check(status == 200 and headers.get("Content-Type", "").startswith("text/csv"),
          "CSV export: %s %s" % (status, headers.get("Content-Type")))
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    check(sorted(r["udid"] for r in rows) == sorted(d["udid"] for d in stale["devices"]),
          "the CSV holds the filtered phones: %r" % [r.get("udid") for r in rows])

    # site filter, then search by serial within everything
    b.q("#f-clear").click()
    b.wait(lambda: len(table_udids(b)) == want["total"], "Clear shows every phone again")
    Select(b.q("#f-site")).select_by_value("South")
    south = api.get("/api/v1/devices?site=South&sort=age&limit=50")
    b.wait(lambda: table_udids(b) == [d["udid"] for d in south["devices"]],
           "the table filtered by site")
    check(sorted(table_udids(b)) == sorted(p["udid"] for p in SOUTH), "site South's phones")
    b.q("#f-clear").click()
    serial = ALL[2]["values"][""]["SerialNumber"]
    b.q("#f-q").send_keys(serial)
    b.wait(lambda: table_udids(b) == [ALL[2]["udid"]], "search by serial finds one phone")
    b.q("#f-clear").click()
    b.wait(lambda: len(table_udids(b)) == want["total"], "Clear again")

    # station, cause and iOS filters, each against the API's answer to the same filter
    for sel, value, param in (("#f-agent", "st-north", "agent=st-north"),
                              ("#f-cause", "icloud_backup_disabled",
                               "cause=icloud_backup_disabled")):
        Select(b.q(sel)).select_by_value(value)
        got = api.get("/api/v1/devices?%s&sort=age&limit=50" % param)
        check(got["total"] > 0, "the scenario has phones for %s" % param)
        b.wait(lambda: table_udids(b) == [d["udid"] for d in got["devices"]],
               "the table filtered by " + param)
        b.q("#f-clear").click()
    b.q("#f-ios").send_keys("17\n")
    old_ios = api.get("/api/v1/devices?ios_below=17&sort=age&limit=50")
    check([d["udid"] for d in old_ios["devices"]] == [SOUTH[1]["udid"]],
          "one phone below iOS 17: %s" % old_ios)
    b.wait(lambda: table_udids(b) == [SOUTH[1]["udid"]], "the table filtered by iOS below 17")
    b.q("#f-clear").click()

    # paging: 4 rows a page
    b.get("/devices?limit=4")
    page1 = api.get("/api/v1/devices?sort=-age&limit=4")
    b.wait(lambda: table_udids(b) == [d["udid"] for d in page1["devices"]], "page 1 of 4 rows")
    check(b.text("#range") == "1–4 of %d" % want["total"], "range: %s" % b.text("#range"))
    check(not b.q("#prev").is_enabled(), "no previous page on the first")
    b.q("#next").click()
    page2 = api.get("/api/v1/devices?sort=-age&limit=4&offset=4")
    b.wait(lambda: table_udids(b) == [d["udid"] for d in page2["devices"]], "page 2")
    check(b.text("#range") == "5–8 of %d" % want["total"], "range: %s" % b.text("#range"))
    b.no_console_errors("devices")


def check_live_row(b, sims, api):
    """A phone unplugged at the station: its row changes in place, without a reload."""
    b.get("/devices?sort=name")
    target = SOUTH[3]["udid"]
    b.wait(lambda: target in table_udids(b), "the row of the phone to unplug")
    b.d.execute_script("window.__noReload = 1")
    row = 'tr[data-udid="%s"] td.docked' % target
    b.wait(lambda: b.text(row) == "yes", "the phone shows as docked")
    sims["South"].ctl_ok({"op": "detach", "udid": target})
    b.wait(lambda: b.text(row) == "no", "the row says not docked, live", timeout=30)
    check(b.d.execute_script("return window.__noReload") == 1, "the page did not reload")
    name = b.q('tr[data-udid="%s"] td:nth-child(2)' % target)
    check(name.text == SOUTH[3]["values"][""]["DeviceName"], "the name as text: %r" % name.text)
    check(not b.qa("#devices img") and b.d.execute_script("return window.__xss") is None,
          "a phone's name is not HTML")
    check(api.get("/api/v1/devices/" + target)["attached"] is False, "the API agrees")
    b.no_console_errors("devices (live)")
    # its device page: no command can reach it now, and the buttons say why
    b.get("/devices/" + target)
    b.wait(lambda: len(b.qa("#actions button")) == 4, "the command buttons")
    for btn in b.qa("#actions button"):
        check(not btn.is_enabled() and "not docked" in btn.get_attribute("title"),
              "%s disabled with the reason: %r" % (btn.text, btn.get_attribute("title")))
    check("not docked" in b.text("#d-where"), "the page says where it was: %s" %
          b.text("#d-where"))
    b.no_console_errors("device (unplugged)")


def check_device(b, api):
    target = NORTH[3]  # stale, iCloud Backup off: causes with evidence
    u = target["udid"]
    d = api.get("/api/v1/devices/" + u)
    b.get("/devices/" + u)
    b.wait(lambda: b.text("#d-name") == d["name"], "the device page's title")
    check(b.text("#d-status") == d["status"], "status badge %s" % b.text("#d-status"))
    check(u in b.text("#facts") and d["serial"] in b.text("#facts"), "UDID and serial shown")
    codes = [c["code"] for c in d["cause_details"]]
    check("icloud_backup_disabled" in codes, "API causes: %s" % codes)
    b.wait(lambda: [e.get_attribute("data-cause") for e in b.qa("#causes .cause")] == codes,
           "one block per cause, in the API's order")
    for c in d["cause_details"]:
        block = b.q('#causes .cause[data-cause="%s"]' % c["code"]).text
        for part in (c["evidence"], c["remediation"], c["complexity"]):
            check(part and part in block, "cause %s shows %r: %r" % (c["code"], part, block))
    hist = "/api/v1/devices/%s/history?limit=50" % u
    b.wait(lambda: [e.text for e in b.qa("#history tbody .badge")] ==
           [e["kind"] for e in api.get(hist)["history"]] and b.qa("#history tbody .badge"),
           "the history timeline, one row per entry of the API's, in its order")
    kinds = set(e["kind"] for e in api.get(hist)["history"])
    check("state" in kinds, "states in the history: %s" % kinds)
    b.no_console_errors("device")

    # a command from the button; its result streams in
    btn = b.q('#actions button[data-cmd="device.refresh"]')
    check(btn.is_enabled(), "device.refresh is enabled for an admin on a docked phone")
    b.d.execute_script("window.__noReload = 1")
    btn.click()
    b.wait(lambda: len(b.qa("#commands tbody tr[data-cmd-id]")) == 1, "the command's row")
    cmd_id = b.q("#commands tbody tr[data-cmd-id]").get_attribute("data-cmd-id")
    status = '#commands tr[data-cmd-id="%s"] .badge' % cmd_id
    b.wait(lambda: b.text(status) == "succeeded", "the result arriving live (status %s)" %
           b.text(status), timeout=60)
    check(b.d.execute_script("return window.__noReload") == 1, "no reload: it came over SSE")
    c = api.get("/api/v1/commands/" + cmd_id)
    check(c["status"] == "succeeded" and c["sent_by"] == "admin" and c["udid"] == u,
          "the API has the command: %s" % c)
    row = b.text('#commands tr[data-cmd-id="%s"]' % cmd_id)
    check("admin" in row and "device.refresh" in row, "who sent it: %r" % row)
    b.wait(lambda: "command" in [e.text for e in b.qa("#history tbody .badge")],
           "the command in the phone's history")
    b.shot("device")
    b.no_console_errors("device (command)")


def check_restart(b, api, dsh, sims):
    """The dashboard restarted while a page is open: the page reconnects by itself and shows
    what changed while the service was down (the session is stored, it survives)."""
    b.get("/devices?sort=name")
    target = NORTH[0]["udid"]
    row = 'tr[data-udid="%s"] td.docked' % target
    b.wait(lambda: b.text(row) == "yes" and b.text("#live") == "live", "docked, live")
    b.d.execute_script("window.__noReload = 1")
    dsh.stop()
    b.wait(lambda: b.text("#live") == "reconnecting", "the page notices the service is gone")
    sims["North"].ctl_ok({"op": "detach", "udid": target})
    dsh.start()
    dash.wait_http(dsh)
    b.wait(lambda: b.text("#live") == "live", "the page reconnected", timeout=30)
    b.wait(lambda: b.text(row) == "no", "the change made during the restart", timeout=30)
    check(b.d.execute_script("return window.__noReload") == 1, "the page did not reload")
    b.console_errors()  # connections refused while the service was down are expected
    b.get("/devices")
    b.wait(lambda: len(table_udids(b)) == len(ALL), "the table after the restart")
    b.no_console_errors("devices (after the restart)")


def check_kiosk(b, api):
    b.d.set_window_size(1920, 1080)
    b.get("/kiosk")
    s = api.get("/api/v1/summary")
    b.wait(lambda: all(b.text("#k-" + k) == str(s["by_status"][k])
                       for k in ("ok", "stale", "unknown", "missing")), "the kiosk's numbers")
    b.wait(lambda: len(b.qa("#k-stations .k-row")) >= len(s["by_site"]), "kiosk share rows")
    b.d.save_screenshot(os.path.join(SHOTS, "kiosk.png"))
    b.no_console_errors("kiosk")
    b.d.set_window_size(1440, 1000)


def check_overview_live(b, api, agent):
    """A station stopping: the overview says so without a reload."""
    b.get("/")
    b.wait(lambda: b.text('[data-k="agents"]') == "2 / 2", "both agents online")
    b.d.execute_script("window.__noReload = 1")
    agent.stop()
    b.wait(lambda: b.text('[data-k="agents"]') == "1 / 2", "one agent offline, live",
           timeout=30)
    b.wait(lambda: b.text('#agents tr[data-agent="st-south"] .badge') == "offline",
           "st-south's row says offline")
    check(b.d.execute_script("return window.__noReload") == 1, "no reload: it came over SSE")
    check(api.get("/api/v1/agents/st-south")["online"] is False, "the API agrees")
    b.shot("overview-agent-offline")
    b.no_console_errors("overview (live)")


def check_viewer(b, api):
    b.get("/")
    b.wait(lambda: b.qa("#logout"), "the header's logout button")
    b.q("#logout").click()
    b.wait(lambda: b.path().startswith("/login"), "the login page after logout")
    status, _, _ = api.raw("/api/v1/me")
    check(status == 401, "the session ended with the logout: /me says %s" % status)
    b.get("/login?next=" + urllib.request.quote("/devices/" + NORTH[0]["udid"]))
    login(b, "viewer", VIEWER_PW, expect_path="/devices/" + NORTH[0]["udid"])
    b.wait(lambda: "Viewers cannot send commands" in (b.text("#actions") or ""),
           "no command buttons for a viewer")
    check(not b.qa("#actions button"), "a viewer gets no buttons")
    b.wait(lambda: b.text("#who") == "viewer · viewer", "the header names the viewer")
    b.no_console_errors("device (viewer)")


def check_credential_cut(b, api, dsh):
    """The live stream ends when the login does: a role changed on the command line reloads
    the page under the new role; a logout elsewhere sends the page to the login page, both
    without a click and without a reconnect loop."""
    b.get("/")
    b.wait(lambda: b.text("#live") == "live", "the stream is live")
    b.wait(lambda: b.text("#who") == "viewer · viewer", "the header names the viewer")
    b.d.execute_script("window.__noReload = 1")
    r = dsh.cli(["user", "role", "viewer", "--role", "operator"])
    check(r.returncode == 0, "user role: %s" % r.stderr)
    b.wait(lambda: b.text("#who") == "viewer · operator", "the page reloaded as operator",
           timeout=20)
    check(b.d.execute_script("return window.__noReload") is None, "the page was reloaded")
    check(b.path() == "/", "still the overview: %s" % b.path())
    b.wait(lambda: b.text("#live") == "live", "the stream is live again")
    b.no_console_errors("overview (role changed)")
    # the same session logged out by another client (its cookie and CSRF token)
    csrf = api.get("/api/v1/me")["csrf"]
    req = urllib.request.Request(b.base + "/api/v1/logout", method="POST", headers={
        "Cookie": b.cookie_header(), "X-CSRF-Token": csrf})
    with urllib.request.urlopen(req, timeout=10) as resp:
        check(resp.status == 204, "logout from outside: %d" % resp.status)
    b.wait(lambda: b.path() == "/login?next=%2F", "the login page after the session ended",
           timeout=10)
    b.console_errors()  # the login page's own /me is a 401
    print("ok: browser: a role change reloads the page, a logout elsewhere goes to /login")


@contextlib.contextmanager
def two_stations(tmp, north_devices, south_devices):
    """The browser tests' stack: mosquitto, the North and South simulators each watched by an
    agent (st-north at North / Cart 1, st-south at South / Ward 3, trusting the dashboard's
    command key) and a dashboard with the users admin and viewer."""
    with Broker() as broker, \
            Sim(SIM, scenario(tmp, "north", north_devices)) as north, \
            Sim(SIM, scenario(tmp, "south", south_devices)) as south, \
            dash.Dashboard(dash.DASH, broker) as dsh:
        dash.user_add(dsh, "admin", "admin", ADMIN_PW)
        dash.user_add(dsh, "viewer", "viewer", VIEWER_PW)
        dash.wait_http(dsh)
        conf = "command_keys %s\npublish_device_name true\nprobe_interval 10m\n" % \
            dash.key_public(dsh)
        with Agent(AGENT, broker, north, agent_id="st-north",
                   extra_conf=conf + "site North\nstation Cart 1\n") as north_agent, \
                Agent(AGENT, broker, south, agent_id="st-south",
                      extra_conf=conf + "site South\nstation Ward 3\n") as south_agent:
            yield types.SimpleNamespace(broker=broker, north=north, south=south, dsh=dsh,
                                        north_agent=north_agent, south_agent=south_agent)


@contextlib.contextmanager
def browser_on(base, failure_shot):
    """A Browser on base; on a failure, a screenshot named failure_shot and the page's text on
    stderr before the error goes on."""
    b = Browser()
    b.base = base
    try:
        yield b
    except Exception:
        try:
            b.shot(failure_shot)
            sys.stderr.write("page at failure: %s\n%s\n" % (
                b.d.current_url, b.d.find_element(By.TAG_NAME, "body").text[:3000]))
        except Exception:
            pass
        raise
    finally:
        b.quit()


def main():
    tmp = tempfile.mkdtemp(prefix="cradle-browser-")
    with two_stations(tmp, NORTH, SOUTH) as st, browser_on(st.dsh.url, "failure") as b:
        dsh, north, south, south_agent = st.dsh, st.north, st.south, st.south_agent
        # anonymous: every page sends to the login page, which comes back after
        b.get("/devices")
        b.wait(lambda: b.path() == "/login?next=%2Fdevices", "redirect to login")
        b.shot("login")
        # a wrong password is refused on the page, which stays the login page
        b.q("#user").send_keys("admin")
        b.q("#password").send_keys("not the password")
        b.q("#login-submit").click()
        b.wait(lambda: b.text("#login-error") == "Wrong user name or password.",
               "the login page's error for a wrong password")
        check(b.path() == "/login?next=%2Fdevices", "still the login page")
        b.console_errors()  # the two 401s (anonymous /me, wrong password) are expected
        b.q("#password").clear()
        login(b, "admin", ADMIN_PW, expect_path="/devices")
        api = Api(dsh.url, b)
        wait_for(lambda: api.get("/api/v1/summary")["total"] == len(ALL) and
                 api.get("/api/v1/agents")["agents"] and
                 all(a["online"] for a in api.get("/api/v1/agents")["agents"]), 60,
                 what="the dashboard to know every phone and both agents")
        wait_for(lambda: all(d["status"] != "unknown" or d["udid"] == NORTH[5]["udid"]
                             for d in api.get("/api/v1/devices?limit=50")["devices"]),
                 60, what="every phone probed")
        b.no_console_errors("devices (first)")
        check_overview(b, api)
        check_devices(b, api)
        check_device(b, api)
        check_live_row(b, {"North": north, "South": south}, api)
        check_restart(b, api, dsh, {"North": north, "South": south})
        check_kiosk(b, api)
        check_viewer(b, api)
        check_overview_live(b, api, south_agent)
        check_credential_cut(b, api, dsh)
    print("ok: browser test; screenshots in %s" % SHOTS)


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as e:
        fail(str(e))
