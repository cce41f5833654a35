#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Validate cradle/v1 messages against proto/schema/ (JSON Schema draft 2020-12).

usage: validate.py [--with-topic] [--expect-invalid] [-q] SCHEMA_DIR FILE|DIR|- ...

Every input is one JSON message: a file holding one JSON document, or a file / stdin with one
message per line (JSON Lines). Directories contribute their *.json and *.jsonl files, sorted.
The message's "schema" member ("cradle.device_state.v1") selects SCHEMA_DIR/device_state.v1.json.
date-time formats are checked (RFC 3339) even where jsonschema lacks a checker for them.

--with-topic     each line is "TOPIC PAYLOAD" (mosquitto_sub -v output); the topic must be the
                 cradle/v1 topic of the message's type, agent and udid; an empty payload
                 (mosquitto_sub prints "(null)") is accepted on retained state/status/meta
                 topics: it deletes the retained message
--expect-invalid every message must FAIL validation (negative fixtures)

Exit status: 0 all as expected, 1 some message not as expected (or none found), 2 usage error.
Needs Debian's /usr/bin/python3 (python3-jsonschema); the pyenv python3 on PATH lacks it.
"""
import datetime
import glob
import json
import os
import re
import sys

import jsonschema

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
TOPIC = re.compile(
    r"^cradle/v1/agent/([^/]+)/(?:(status|meta|cmd|result|event)|device/([^/]+)/(state|event))$")
# kind of topic per schema; "event" exists twice, told apart by the device level
TOPIC_KIND = {
    "cradle.agent_status.v1": "status", "cradle.agent_meta.v1": "meta",
    "cradle.device_state.v1": "device/state", "cradle.device_event.v1": "device/event",
    "cradle.command.v1": "cmd", "cradle.command_result.v1": "result",
    "cradle.agent_event.v1": "event",
}
RETAINED_KINDS = ("status", "meta", "device/state")


def is_rfc3339(s):
    if not isinstance(s, str):
        return True  # format only applies to strings
    if not RFC3339.match(s):
        return False
    try:
        # fromisoformat (3.11) takes "Z"; it also rejects month 13, Feb 30, hour 24
        datetime.datetime.fromisoformat(s.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def format_checker():
    fc = jsonschema.FormatChecker()
    fc.checks("date-time")(is_rfc3339)
    return fc


class Validator:
    def __init__(self, schema_dir):
        self.schema_dir = schema_dir
        self.validators = {}
        self.fc = format_checker()

    def for_schema(self, name):
        if name not in self.validators:
            m = re.match(r"^cradle\.([a-z_]+)\.(v[0-9]+)$", name) if isinstance(name, str) else None
            path = os.path.join(self.schema_dir, "%s.%s.json" % m.groups()) if m else None
            if not path or not os.path.exists(path):
                self.validators[name] = None
            else:
                with open(path) as f:
                    schema = json.load(f)
                jsonschema.Draft202012Validator.check_schema(schema)
                self.validators[name] = jsonschema.Draft202012Validator(
                    schema, format_checker=self.fc)
        return self.validators[name]

    def errors(self, msg):
        """List of problems with one decoded message (empty when valid)."""
        if not isinstance(msg, dict):
            return ["not a JSON object"]
        v = self.for_schema(msg.get("schema"))
        if v is None:
            return ["unknown schema %r (no file in %s)" % (msg.get("schema"), self.schema_dir)]
        return ["%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)", e.message)
                for e in sorted(v.iter_errors(msg), key=lambda e: list(map(str, e.path)))]


def topic_errors(topic, msg):
    m = TOPIC.match(topic)
    if not m:
        return ["topic %r is not a cradle/v1 topic" % topic]
    agent, kind = m.group(1), m.group(2) or "device/" + m.group(4)
    if msg is None:
        return [] if kind in RETAINED_KINDS else ["empty payload on a non-retained %s topic" % kind]
    if not isinstance(msg, dict):
        return []
    errs = []
    if TOPIC_KIND.get(msg.get("schema")) != kind:
        errs.append("schema %r on a %s topic" % (msg.get("schema"), kind))
    if msg.get("agent") != agent:
        errs.append("agent %r in a topic of agent %r" % (msg.get("agent"), agent))
    if m.group(3) and msg.get("udid") != m.group(3):
        errs.append("udid %r in a topic of device %r" % (msg.get("udid"), m.group(3)))
    return errs


def messages(path, with_topic):
    """Yields (where, topic, text) for every message in a file or stdin."""
    if path == "-":
        text, name = sys.stdin.read(), "<stdin>"
    else:
        with open(path, encoding="utf-8", errors="replace") as f:
            text, name = f.read(), path
    if not with_topic:
        try:
            json.loads(text)
            yield name, None, text
            return
        except ValueError:
            pass  # not one document: JSON Lines
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        topic = None
        if with_topic:
            topic, _, line = line.partition(" ")
            if line == "(null)":
                line = ""  # mosquitto_sub -v (2.0.11) prints a zero-length payload as "(null)"
        yield "%s:%d" % (name, i), topic, line


def expand(args):
    for a in args:
        if os.path.isdir(a):
            files = sorted(glob.glob(os.path.join(a, "*.json")) + glob.glob(os.path.join(a, "*.jsonl")))
            if not files:
                print("%s: no *.json or *.jsonl files" % a, file=sys.stderr)
            yield from files
        else:
            yield a


def main(argv):
    opts = {"--with-topic": False, "--expect-invalid": False, "-q": False}
    args = []
    for a in argv[1:]:
        if a in opts:
            opts[a] = True
        elif a.startswith("--") or a in ("-h",):
            print(__doc__, file=sys.stderr)
            return 2
        else:
            args.append(a)
    if len(args) < 2 or not os.path.isdir(args[0]):
        print(__doc__, file=sys.stderr)
        return 2
    val = Validator(args[0])
    n = bad = 0
    counts = {}
    for path in expand(args[1:]):
        try:
            items = list(messages(path, opts["--with-topic"]))
        except OSError as e:
            print("%s: %s" % (path, e), file=sys.stderr)
            return 2
        for where, topic, text in items:
            n += 1
            errs = []
            msg = None
            if text.strip() == "" and topic is not None:
                errs = topic_errors(topic, None)
            else:
                try:
                    msg = json.loads(text)
                except ValueError as e:
                    errs = ["not JSON: %s" % e]
                else:
                    errs = val.errors(msg)
                    if topic is not None:
                        errs += topic_errors(topic, msg)
            kind = msg.get("schema") if isinstance(msg, dict) else "(empty)" if msg is None and not errs else "?"
            counts[kind] = counts.get(kind, 0) + 1
            if opts["--expect-invalid"]:
                if not errs:
                    bad += 1
                    print("%s: valid, but expected to be invalid" % where, file=sys.stderr)
                elif not opts["-q"]:
                    print("%s: invalid as expected: %s" % (where, errs[0]))
            elif errs:
                bad += 1
                for e in errs:
                    print("%s: %s" % (where, e), file=sys.stderr)
    if n == 0:
        print("no messages found", file=sys.stderr)
        return 1
    if not opts["-q"]:
        print("%d message(s), %d not as expected; %s" % (
            n, bad, ", ".join("%s=%d" % kv for kv in sorted(counts.items(), key=str))))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
