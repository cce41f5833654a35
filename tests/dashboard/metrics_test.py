#!/usr/bin/python3
"""cradle-dashboard's /metrics against real parts: mosquitto, cradle-sim with four phones, a real
cradle-agent (site berlin) writing its textfile, and the dashboard with metrics_listen. Every
scrape is parsed strictly (tests/lib/promparse.py: the 0.0.4 grammar line by line, TYPE before
samples, counters *_total, histograms cumulative with +Inf = _count).

- the phones the agent reports are cradle_dashboard_phones{site="berlin"}, by status;
- N messages in -> messages_received_total +N; malformed ones -> dropped{reason="malformed"};
  a duplicate delivery -> dropped{reason="duplicate"} +1; a seq gap of 2 -> messages_lost 2;
- an HTTP 404 and a 401 on http_listen -> http_requests_total{code=...} +1 each, the latency
  histogram's count moves; the scrapes themselves are not counted there;
- the metrics listener serves /metrics only: other paths 404, POST 405, no API route;
- the broker gone -> cradle_dashboard_broker_connected 0, back -> 1;
- packaging/grafana/cradle.json is valid JSON and every metric it queries is in a real scrape
  of the dashboard or in the agent's file."""
import http.client
import json
import os
import re
import subprocess
import sys
import time

from dash import AGENT, DASH, SIM, SRC, Dashboard
from harness import Agent, Broker, Collector, Sim, fail, free_port, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "agent"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
os.environ.setdefault("CRADLE_AGENT", AGENT)
from common import device, udid, write_scenario  # noqa: E402
from ingest_e2e_test import fake_event, fake_status, pub  # noqa: E402
import promparse  # noqa: E402

AID = "st-metrics"
FAKE = "fake-agent-1"
DAY = 86400


def request(port, method, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, r.getheader("Content-Type"), body


def main():
    scenario = write_scenario([
        device(1),
        device(2),
        device(3, backup_ago=5 * DAY),       # stale
        device(4, pairing="trust_pending"),  # unknown
    ])
    mport = free_port()
    with Broker() as broker, Sim(SIM, scenario) as sim, \
            Dashboard(DASH, broker, extra_conf="metrics_listen 127.0.0.1:%d\n" % mport) as dash:
        prom_file = os.path.join(dash.tmp, "agent.prom")

        def scrape():
            st, ctype, body = request(mport, "GET", "/metrics")
            if st != 200 or not ctype.startswith("text/plain; version=0.0.4"):
                fail("GET /metrics: %d %r" % (st, ctype))
            try:
                return promparse.parse(body)
            except promparse.ParseError as e:
                fail("/metrics does not parse: %s\n%s" % (e, body))

        m0 = scrape()
        if m0.get("cradle_dashboard_build_info", version=m0.find(
                "cradle_dashboard_build_info")[0][0]["version"]) != 1:
            fail("build_info")
        if abs(m0.get("cradle_dashboard_start_time_seconds") - time.time()) > 120:
            fail("start time: %r" % m0.get("cradle_dashboard_start_time_seconds"))
        if m0.get("process_resident_memory_bytes") < 1 << 20 or \
                m0.get("process_open_fds") < 5 or m0.get("process_cpu_seconds_total") <= 0:
            fail("process basics: %r" % [(n, v) for n, _, v in m0.order
                                         if n.startswith("process_")])
        if m0.get("cradle_dashboard_broker_connected") != 1:
            fail("broker_connected should be 1")

        with Agent(AGENT, broker, sim, agent_id=AID,
                   extra_conf="site berlin\nstation cart-1\nmetrics_file %s\n"
                              "metrics_interval 1s\n" % prom_file):
            # -- phones by site and status, as the dashboard judges them
            def berlin():
                m = scrape()
                return {ls["status"]: v for ls, v in
                        m.find("cradle_dashboard_phones", site="berlin")}
            wait_for(lambda: berlin() == {"ok": 2, "stale": 1, "unknown": 1, "missing": 0},
                     30, what="phones{site=berlin}: 2 ok, 1 stale, 1 unknown")
            print("phones by site and status: %r" % berlin())
            wait_for(lambda: scrape().get("cradle_dashboard_agents", presence="online") == 1,
                     10, what="one agent online")

            # -- N messages in -> +N received; malformed -> dropped{malformed}
            time.sleep(1.5)  # the agent's first burst is in; probes every 15 m
            m1 = scrape()
            recv1 = m1.get("cradle_dashboard_messages_received_total")
            mal1 = m1.get("cradle_dashboard_messages_dropped_total", reason="malformed")
            pub(broker, "cradle/v1/agent/%s/device/%s/state" % (AID, udid(9)), "{not json")
            pub(broker, "cradle/v1/agent/%s/event" % AID, '{"schema":"cradle.agent_event.v1"}')
            pub(broker, "cradle/v1/agent/%s/device/%s/event" % (AID, udid(9)), "")
            wait_for(lambda: scrape().get("cradle_dashboard_messages_dropped_total",
                                          reason="malformed") == mal1 + 3, 10,
                     what="dropped{malformed} +3")
            m2 = scrape()
            if m2.get("cradle_dashboard_messages_received_total") - recv1 < 3:
                fail("received_total moved by %r for 3 messages" %
                     (m2.get("cradle_dashboard_messages_received_total") - recv1))

            # -- a duplicate and a gap, from a hand-made agent: +5 received, plus whatever the
            #    real agent published meanwhile (a collector counts it: normally nothing)
            col = Collector(broker.port, topic="cradle/v1/agent/%s/#" % AID)
            t0 = time.monotonic()
            recv2 = scrape().get("cradle_dashboard_messages_received_total")
            dup2 = m2.get("cradle_dashboard_messages_dropped_total", reason="duplicate")
            lost2 = m2.get("cradle_dashboard_messages_lost")
            ev = "cradle/v1/agent/%s/device/%s/event" % (FAKE, udid(7))
            pub(broker, "cradle/v1/agent/%s/status" % FAKE, fake_status(5, 0))
            pub(broker, ev, fake_event(5, 1))
            pub(broker, ev, fake_event(5, 1))             # duplicate delivery
            pub(broker, ev, fake_event(5, 4, "detached"))  # 2 and 3 missing
            pub(broker, ev, fake_event(5, 5, "attached"))
            wait_for(lambda: scrape().get("cradle_dashboard_messages_lost") == lost2 + 2, 10,
                     what="messages_lost +2")
            m3 = scrape()
            if m3.get("cradle_dashboard_messages_dropped_total", reason="duplicate") != dup2 + 1:
                fail("dropped{duplicate} should be +1: %r -> %r" % (dup2, m3.get(
                    "cradle_dashboard_messages_dropped_total", reason="duplicate")))
            t3 = time.monotonic()
            extra = len([m for m in col.all() if not m[2] and t0 - 1 <= m[3] <= t3 + 1])
            col.close()
            got = m3.get("cradle_dashboard_messages_received_total") - recv2
            if not 5 <= got <= 5 + extra:
                fail("received_total moved by %r for 5 messages (and %d of the agent's)" %
                     (got, extra))
            if m3.get("cradle_dashboard_ingest_batches_total") <= \
                    m1.get("cradle_dashboard_ingest_batches_total"):
                fail("batches_total did not move")
            lag_n = m3.get("cradle_dashboard_ingest_lag_seconds_count")
            if lag_n < 1 or not 0 <= m3.get("cradle_dashboard_ingest_last_lag_seconds") < 5:
                fail("ingest lag: count %r last %r" %
                     (lag_n, m3.get("cradle_dashboard_ingest_last_lag_seconds")))
            print("ingest: received, dropped by reason, lost and lag move with the messages")

            # -- HTTP on http_listen: by code, with the latency histogram
            h0 = scrape()
            c404 = h0.get("cradle_dashboard_http_requests_total", code="404") \
                if h0.find("cradle_dashboard_http_requests_total", code="404") else 0
            c401 = h0.get("cradle_dashboard_http_requests_total", code="401") \
                if h0.find("cradle_dashboard_http_requests_total", code="401") else 0
            n0 = h0.get("cradle_dashboard_http_request_duration_seconds_count")
            if request(dash.http_port, "GET", "/no-such-page")[0] != 404:
                fail("expected a 404")
            if request(dash.http_port, "GET", "/api/v1/me")[0] != 401:
                fail("expected a 401")
            h1 = scrape()
            if h1.get("cradle_dashboard_http_requests_total", code="404") != c404 + 1 or \
                    h1.get("cradle_dashboard_http_requests_total", code="401") != c401 + 1:
                fail("requests_total{404,401} should be +1: %r" %
                     h1.find("cradle_dashboard_http_requests_total"))
            if h1.get("cradle_dashboard_http_request_duration_seconds_count") != n0 + 2:
                fail("latency histogram count should be +2 (scrapes are not counted)")
            print("http: requests by code and the latency histogram move")

            # -- the metrics listener serves nothing else
            for path in ("/", "/api/v1/me", "/api/v1/devices", "/metrics/x", "/metricsx"):
                st, _, _ = request(mport, "GET", path)
                if st != 404:
                    fail("metrics listener GET %s: %d, want 404" % (path, st))
            for method in ("POST", "PUT", "DELETE"):
                st, _, _ = request(mport, method, "/metrics")
                if st != 405:
                    fail("metrics listener %s /metrics: %d, want 405" % (method, st))
            print("metrics listener: /metrics only (404 elsewhere, 405 for other methods)")

            # -- the Grafana dashboard's metrics exist in real scrapes
            wait_for(lambda: os.path.exists(prom_file), 10, what="the agent's metrics file")
            with open(prom_file) as f:
                agent_m = promparse.parse(f.read())
            names = scrape().names() | agent_m.names()
            with open(os.path.join(SRC, "packaging", "grafana", "cradle.json")) as f:
                doc = json.load(f)
            exprs = []

            def walk(o):
                if isinstance(o, dict):
                    for k, v in o.items():
                        if k == "expr" and isinstance(v, str):
                            exprs.append(v)
                        else:
                            walk(v)
                elif isinstance(o, list):
                    for v in o:
                        walk(v)
            walk(doc)
            used = {n for e in exprs for n in re.findall(r"\bcradle_[a-z0-9_]+", e)}
            if len(exprs) < 10 or len(used) < 20:
                fail("the Grafana dashboard queries too little: %d exprs, %r" % (len(exprs), used))
            missing = sorted(used - names)
            if missing:
                fail("packaging/grafana/cradle.json queries metrics no scrape has: %r" % missing)
            print("grafana: %d queries over %d metric names, all in real scrapes" %
                  (len(exprs), len(used)))

            # -- the broker gone and back
            broker.stop()
            wait_for(lambda: scrape().get("cradle_dashboard_broker_connected") == 0, 20,
                     what="broker_connected 0")
            broker.start()
            wait_for(lambda: scrape().get("cradle_dashboard_broker_connected") == 1, 60,
                     what="broker_connected 1 again")
            print("broker_connected follows the broker")
        rc = dash.stop()
        if rc != 0:
            fail("SIGTERM: exit status %r" % rc)


if __name__ == "__main__":
    main()
