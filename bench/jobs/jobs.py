#!/usr/bin/python3
# SPDX-License-Identifier: MIT
# Job helpers of bench/jobs/run; the generic ones (wait-http, wait-rows, rss) are
# bench/dashboard/measure.py's. Times are wall clock ms (Unix), as `date +%s%3N`.
#
#   jobs.py create BASE TOKEN N        POST /api/v1/jobs: device.refresh to every phone (filter
#                                      {}), unthrottled; checks the dry run first (N phones);
#                                      prints "ID T_POST_MS"
#   jobs.py wait BASE TOKEN ID N TIMEOUT_S PID
#                                      polls GET /api/v1/jobs/ID every 100 ms until N executions
#                                      succeeded and the job is completed; prints
#                                      "T_MS STATE COUNTS_JSON"; exit 1 on timeout or PID gone
#   jobs.py cpu PID                    utime + stime of PID in seconds (/proc/PID/stat)
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "dashboard"))
import measure  # noqa: E402


def request(con, method, path, token, body=None):
    headers = {"Authorization": "Bearer " + token}
    data = None
    if body is not None:
        data = json.dumps(body)
        headers["Content-Type"] = "application/json"
    con.request(method, path, body=data, headers=headers)
    r = con.getresponse()
    raw = r.read()
    try:
        return r.status, json.loads(raw)
    except ValueError:
        return r.status, raw


def job_body(dry_run):
    return {"name": "bench: refresh every phone", "dry_run": dry_run,
            "command": {"name": "device.refresh", "params": {}},
            "target": {"filter": {}},
            "rollout": {"per_minute": 0, "per_agent": 0},
            "timeout_s": 600}


def create(base, token, n):
    con = measure.connect(base)
    status, dry = request(con, "POST", "/api/v1/jobs", token, job_body(True))
    if status != 200 or dry.get("total") != n:
        sys.exit("jobs: dry run: HTTP %d %s (want %d phones)" % (status, str(dry)[:300], n))
    t = measure.now_ms()
    status, job = request(con, "POST", "/api/v1/jobs", token, job_body(False))
    if status != 201:
        sys.exit("jobs: create: HTTP %d %s" % (status, str(job)[:300]))
    print("%d %.1f %d" % (job["id"], t, len(dry.get("agents", []))))


def wait(base, token, job_id, n, timeout, pid):
    end = time.monotonic() + timeout
    con = measure.connect(base)
    job = {}
    while True:
        status, job = request(con, "GET", "/api/v1/jobs/%d" % job_id, token)
        if status != 200:
            sys.exit("jobs: GET /api/v1/jobs/%d: HTTP %d" % (job_id, status))
        counts = job.get("counts", {})
        if counts.get("succeeded", 0) >= n or job.get("state") in ("aborted", "canceled"):
            print("%.1f %s %s" % (measure.now_ms(), job.get("state"),
                                  json.dumps(counts, separators=(",", ":"))))
            return
        if not measure.alive(pid):
            sys.exit("jobs: the dashboard exited; counts %s" % counts)
        if time.monotonic() > end:
            sys.exit("jobs: after %d s: state %s, counts %s" % (timeout, job.get("state"), counts))
        time.sleep(0.1)


def cpu(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15
    ticks = int(fields[11]) + int(fields[12])
    print("%.2f" % (ticks / os.sysconf("SC_CLK_TCK")))


def main(a):
    cmd = a[0] if a else ""
    if cmd == "create":
        create(a[1], a[2], int(a[3]))
    elif cmd == "wait":
        wait(a[1], a[2], int(a[3]), int(a[4]), int(a[5]), int(a[6]))
    elif cmd == "cpu":
        cpu(int(a[1]))
    else:
        sys.exit("usage: see the head of %s" % sys.argv[0])


if __name__ == "__main__":
    main(sys.argv[1:])
