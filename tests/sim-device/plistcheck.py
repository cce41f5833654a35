# SPDX-License-Identifier: MIT
"""plistcheck: compare ideviceinfo -x output with a scenario (tests/sim-device helpers).

  plistcheck.py domain SCENARIO UDID DOMAIN XMLFILE
      every key of values[DOMAIN] in the scenario is in the XML dict with an equal value
  plistcheck.py journal JSONFILE OP [KEY=VALUE...]
      the control socket's journal reply has an entry with op OP and these fields (as strings)
  plistcheck.py nojournal JSONFILE OP [KEY=VALUE...]
      ... and has none
Exit status 0 when it holds, 1 with a message otherwise. Debian's /usr/bin/python3, stdlib only.
"""
import json
import plistlib
import sys


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def norm(u):
    return u[:8] + "-" + u[8:] if len(u) == 24 else u


def cmd_domain(scenario, udid, domain, xmlfile):
    with open(scenario) as f:
        sc = json.load(f)
    dev = [d for d in sc["devices"] if norm(d["udid"]) == udid]
    if not dev:
        fail("udid %s not in scenario" % udid)
    want = dev[0].get("values", {}).get(domain, {})
    with open(xmlfile, "rb") as f:
        data = f.read()
    if not data.strip():
        fail("empty output for domain %r" % domain)
    got = plistlib.loads(data)
    if not isinstance(got, dict):
        fail("domain %r: not a dict" % domain)
    if not want:
        fail("scenario has no values for domain %r (test bug)" % domain)
    for k, v in want.items():
        if k not in got:
            fail("domain %r: key %s missing" % (domain, k))
        if got[k] != v or type(got[k]) is not type(v):
            fail("domain %r: key %s = %r, want %r" % (domain, k, got[k], v))
    print("ok: domain %r: %d keys equal" % (domain, len(want)))


def match(entry, op, fields):
    if entry.get("op") != op:
        return False
    for kv in fields:
        k, v = kv.split("=", 1)
        x = entry.get(k)
        if isinstance(x, bool):
            x = "true" if x else "false"
        if str(x) != v:
            return False
    return True


def cmd_journal(path, op, fields, want):
    with open(path) as f:
        reply = json.loads(f.readline())
    if reply.get("ok") is not True:
        fail("journal reply not ok: %r" % reply)
    hits = [e for e in reply.get("journal", []) if match(e, op, fields)]
    if want and not hits:
        fail("journal has no %s %s: %s" % (op, " ".join(fields), json.dumps(reply["journal"])))
    if not want and hits:
        fail("journal unexpectedly has %s %s: %r" % (op, " ".join(fields), hits))
    print("ok: journal %s %s %s" % ("has" if want else "lacks", op, " ".join(fields)))


def main(argv):
    if len(argv) >= 6 and argv[1] == "domain":
        cmd_domain(argv[2], argv[3], argv[4], argv[5])
    elif len(argv) >= 4 and argv[1] in ("journal", "nojournal"):
        cmd_journal(argv[2], argv[3], argv[4:], argv[1] == "journal")
    else:
        fail("usage: see the docstring")


if __name__ == "__main__":
    main(sys.argv)
