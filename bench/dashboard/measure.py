#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Measuring helpers of bench/dashboard/run (the script holds the processes, this the clocks).
#
# Times are wall clock ms (Unix), the same clock as `date +%s%3N` in the script.
#
#   measure.py wait-rows DB N TIMEOUT_S [PID]   polls the SQLite file read-only every 50 ms until
#                                               table devices holds N rows; prints the ms; exit 1
#                                               on timeout or when PID (the dashboard) is gone
#   measure.py http URL TOKEN                   one GET with the bearer token: status line, body
#   measure.py latency BASE TOKEN K PATH...     K GETs of each PATH on one keep-alive connection
#                                               after 5 warm-ups; prints "PATH p50 p95 max total"
#                                               (ms; total = the list's "total")
#   measure.py rss PID                          "VmRSS VmHWM" in KiB from /proc/PID/status
#   measure.py wait-http BASE TOKEN TIMEOUT_S   until GET /api/v1/summary answers 200
import http.client
import json
import os
import sqlite3
import sys
import time
import urllib.parse


def now_ms():
    return time.time() * 1000.0


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purpose
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def count_rows(db):
    if not os.path.exists(db):
        return 0
    try:
        con = sqlite3.connect("file:%s?mode=ro" % urllib.parse.quote(db), uri=True, timeout=1)
        try:
            return con.execute("SELECT count(*) FROM devices").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0  # not created yet, or busy: poll again


def wait_rows(db, n, timeout, pid=None):
    end = time.monotonic() + timeout
    last = 0
    while True:
        last = count_rows(db)
        if last >= n:
            print("%.1f" % now_ms())
            return
        if pid and not alive(pid):
            sys.exit("measure: the dashboard exited with %d of %d phones stored" % (last, n))
        if time.monotonic() > end:
            sys.exit("measure: %d of %d phones stored after %d s" % (last, n, timeout))
        time.sleep(0.05)


def connect(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def get(con, path, token):
    con.request("GET", path, headers={"Authorization": "Bearer " + token})
    r = con.getresponse()
    return r.status, r.read()


def http_once(url, token):
    u = urllib.parse.urlsplit(url)
    con = connect(url)
    status, body = get(con, u.path + ("?" + u.query if u.query else ""), token)
    print(status)
    print(body.decode(errors="replace"))


def wait_http(base, token, timeout):
    end = time.monotonic() + timeout
    while True:
        try:
            status, _ = get(connect(base), "/api/v1/summary", token)
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > end:
            sys.exit("measure: %s/api/v1/summary did not answer 200 in %d s" % (base, timeout))
        time.sleep(0.1)


def pct(sorted_ms, p):
    i = min(len(sorted_ms) - 1, max(0, int(round(p / 100.0 * len(sorted_ms) + 0.5)) - 1))
    return sorted_ms[i]


def latency(base, token, k, paths):
    con = connect(base)
    for path in paths:
        total = None
        for _ in range(5):
            status, body = get(con, path, token)
            if status != 200:
                sys.exit("measure: GET %s: %d %s" % (path, status, body[:200]))
        total = json.loads(body).get("total")
        times = []
        for _ in range(k):
            t0 = now_ms()
            status, body = get(con, path, token)
            times.append(now_ms() - t0)
            if status != 200:
                sys.exit("measure: GET %s: %d" % (path, status))
        times.sort()
        print("%s %.1f %.1f %.1f %s" % (path, pct(times, 50), pct(times, 95), times[-1], total))


def rss(pid):
    vals = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                vals[k] = v.split()[0]
    print(vals.get("VmRSS", "0"), vals.get("VmHWM", "0"))


def main(a):
    cmd = a[0] if a else ""
    if cmd == "wait-rows":
        wait_rows(a[1], int(a[2]), int(a[3]), int(a[4]) if len(a) > 4 else None)
    elif cmd == "http":
        http_once(a[1], a[2])
    elif cmd == "wait-http":
        wait_http(a[1], a[2], int(a[3]))
    elif cmd == "latency":
        latency(a[1], a[2], int(a[3]), a[4:])
    elif cmd == "rss":
        rss(int(a[1]))
    else:
        sys.exit("usage: see the head of %s" % sys.argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
