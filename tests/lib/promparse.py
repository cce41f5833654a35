"""A strict parser of the Prometheus text exposition format (version 0.0.4), for the metrics
tests: every line must match the grammar, or the parse fails with the line.

    m = parse(text)
    m.get("cradle_dashboard_messages_dropped_total", reason="malformed")   # one sample
    m.sum("cradle_dashboard_phones", site="berlin")                      # over the rest

Checked beyond the line grammar: a `# TYPE` for every family before its samples, at most one
HELP and one TYPE per family, the samples of a family together, no series twice, a counter's
name ending in `_total`, a histogram's samples only `_bucket` (with `le`), `_sum` and `_count`,
its buckets ascending in `le`, cumulative, ending with `+Inf`, equal to `_count`; the text ends
with a newline."""
import math
import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r"[a-zA-Z_][a-zA-Z0-9_]*"
LVALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?Inf|NaN"
HELP_RE = re.compile(r"^# HELP (%s) ((?:[^\\\n]|\\[\\n])*)$" % NAME)
TYPE_RE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|untyped)$" % NAME)
SAMPLE_RE = re.compile(r"^(%s)(\{(?:%s=%s(?:,%s=%s)*,?)?\})? (%s)(?: -?[0-9]+)?$"
                       % (NAME, LABEL, LVALUE, LABEL, LVALUE, NUMBER))
PAIR_RE = re.compile(r"(%s)=(%s)" % (LABEL, LVALUE))


class ParseError(Exception):
    pass


def _unescape(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), v[1:-1])


def _number(s):
    if s.endswith("Inf"):
        return -math.inf if s.startswith("-") else math.inf
    return float(s)


class Metrics:
    def __init__(self):
        self.types = {}      # family -> type
        self.samples = {}    # (name, frozenset(labels)) -> value
        self.order = []      # (name, labels dict, value)

    def names(self):
        return {n for n, _, _ in self.order}

    def families(self):
        return set(self.types)

    def find(self, name, **labels):
        return [(ls, v) for n, ls, v in self.order
                if n == name and all(ls.get(k) == w for k, w in labels.items())]

    def get(self, name, **labels):
        """The value of the one sample of name whose labels are exactly labels."""
        key = (name, frozenset(labels.items()))
        if key not in self.samples:
            raise KeyError("no sample %s%r" % (name, labels))
        return self.samples[key]

    def sum(self, name, **labels):
        return sum(v for _, v in self.find(name, **labels))


def _family_of(name, types):
    if name in types:
        return name
    for suf in ("_bucket", "_sum", "_count"):
        if name.endswith(suf) and types.get(name[:-len(suf)]) in ("histogram", "summary"):
            return name[:-len(suf)]
    return None


def parse(text):
    if not text.endswith("\n"):
        raise ParseError("the text does not end with a newline")
    m = Metrics()
    helps = set()
    done = set()       # families whose samples are over
    current = None
    hist = {}          # (family, labels without le) -> [(le, count)]
    for no, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (no, line)
        if line.startswith("#"):
            h, t = HELP_RE.match(line), TYPE_RE.match(line)
            if h:
                if h.group(1) in helps:
                    raise ParseError("second HELP, " + where)
                helps.add(h.group(1))
            elif t:
                fam, typ = t.group(1), t.group(2)
                if fam in m.types:
                    raise ParseError("second TYPE, " + where)
                if typ == "counter" and not fam.endswith("_total"):
                    raise ParseError("a counter not named *_total, " + where)
                m.types[fam] = typ
                if current:
                    done.add(current)
                current = fam
            elif line.startswith("# HELP") or line.startswith("# TYPE"):
                raise ParseError("bad HELP/TYPE line, " + where)
            continue
        if line == "":
            raise ParseError("empty line, " + where)
        s = SAMPLE_RE.match(line)
        if not s:
            raise ParseError("not a sample, " + where)
        name, value = s.group(1), _number(s.group(3))
        labels = {}
        for k, v in PAIR_RE.findall(s.group(2) or ""):
            if k in labels:
                raise ParseError("label twice, " + where)
            labels[k] = _unescape(v)
        fam = _family_of(name, m.types)
        if fam is None:
            raise ParseError("sample without a TYPE before it, " + where)
        if fam != current or fam in done:
            raise ParseError("samples of %s not together, %s" % (fam, where))
        typ = m.types[fam]
        if typ == "histogram":
            if name == fam:
                raise ParseError("a histogram sample without suffix, " + where)
            key = (fam, frozenset((k, v) for k, v in labels.items() if k != "le"))
            if name.endswith("_bucket"):
                if "le" not in labels:
                    raise ParseError("a bucket without le, " + where)
                hist.setdefault(key, []).append((_number(labels["le"]), value))
            elif name.endswith("_count"):
                b = hist.get(key, [])
                if not b or b[-1][0] != math.inf or b[-1][1] != value:
                    raise ParseError("_count is not the +Inf bucket, " + where)
        elif name != fam:
            raise ParseError("sample name differs from its %s family, %s" % (typ, where))
        key = (name, frozenset(labels.items()))
        if key in m.samples:
            raise ParseError("series twice, " + where)
        m.samples[key] = value
        m.order.append((name, labels, value))
    for (fam, _), b in hist.items():
        les = [le for le, _ in b]
        counts = [c for _, c in b]
        if les != sorted(les) or len(set(les)) != len(les) or les[-1] != math.inf:
            raise ParseError("%s: buckets not ascending up to +Inf: %r" % (fam, les))
        if counts != sorted(counts):
            raise ParseError("%s: buckets not cumulative: %r" % (fam, counts))
    return m
