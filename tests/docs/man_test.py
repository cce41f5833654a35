#!/usr/bin/python3
"""The man pages (docs/man/*.scd) say what the programs do, and the programs say their version.

    man_test.py options PAGE.scd -- COMMAND...   the OPTIONS section lists exactly the options
                                                 `COMMAND --help` prints
    man_test.py keys PAGE.scd -- COMMAND...      the KEYS section lists exactly the keys
                                                 COMMAND (a --dump-config with -c FILE) prints,
                                                 the defaults and ranges it states are the
                                                 program's, its EXAMPLE is accepted
    man_test.py coverage MANDIR OPTIONS_PAGES KEYS_PAGES
                                                 every page with an OPTIONS (KEYS) section has a
                                                 row in tests/docs/CMakeLists.txt; every page's
                                                 title line names its file (comma lists of pages)
    man_test.py render PAGE...                   groff formats each generated page without a
                                                 warning (-ww), and so do lintian's man
                                                 --warnings and lexgrog
    man_test.py version CHANGELOG NAME=COMMAND... `COMMAND --version` prints "NAME VERSION",
                                                 VERSION the changelog's top entry; COMMAND may
                                                 carry arguments separated by blanks

How a page marks options and keys (docs/man/README.md): a term line starts at column 0 with a
bold item, `*--flag* _ARG_`, `*-c*, *--config* _FILE_` or `*key*`, and its text follows
indented by a tab. The options of a term line are the words starting with '-' in its bold
parts (`*-d, --dir*` is two); the keys of a KEYS term line are its leading bold words
(`*receiver1*, *receiver2* _receiver_`), followed by `(default *X*; MIN..MAX)` when the key has
one default and a range. From --help every word that starts with '-' or '--' (not inside a
word: cradle-agent is no option) counts.

Exit status 0 when all holds, 1 with every difference listed.
"""

import os
import re
import shutil
import subprocess
import sys

HELP_OPTION = re.compile(r"(?<![\w/.-])(--?[A-Za-z][A-Za-z0-9-]*)")
BOLD = re.compile(r"\*([^*]+)\*")
TERM_KEYS = re.compile(r"^((?:\*[a-z][a-z0-9_\\]*\*(?:, )?)+)")


def fail(msgs):
    for m in msgs:
        print("FAIL: " + m, file=sys.stderr)
    return 1 if msgs else 0


def sections(path):
    """{TOP-LEVEL HEADING: [lines]} of an scdoc source (subsections stay inside)."""
    out, cur = {}, None
    with open(path, encoding="utf-8") as f:
        for line in f.read().split("\n"):
            m = re.match(r"^# (.+?)\s*$", line)
            if m:
                cur = m.group(1)
                out.setdefault(cur, [])
            elif cur:
                out[cur].append(line)
    return out


def term_lines(lines):
    return [l for l in lines if l.startswith("*")]


def run(cmd):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                       encoding="utf-8", errors="replace")
    return p.returncode, p.stdout, p.stderr


def split_command(argv):
    if "--" not in argv:
        sys.exit("usage: see the docstring of man_test.py")
    i = argv.index("--")
    return argv[:i], argv[i + 1:]


def compare(page, what, in_page, in_program, program):
    msgs = []
    for x in sorted(in_program - in_page):
        msgs.append("%s: %s %s is printed by %s but missing from the page" %
                    (page, what, x, program))
    for x in sorted(in_page - in_program):
        msgs.append("%s: %s %s is in the page but not printed by %s" % (page, what, x, program))
    return msgs


def check_options(argv):
    (page,), cmd = split_command(argv)
    secs = sections(page)
    if "OPTIONS" not in secs:
        return fail(["%s: no OPTIONS section" % page])
    in_page = set()
    for line in term_lines(secs["OPTIONS"]):
        for bold in BOLD.findall(line):
            in_page.update(HELP_OPTION.findall(bold))
    rc, out, err = run(cmd + ["--help"])
    if rc != 0:
        return fail(["%s --help: exit status %d: %s" % (cmd[0], rc, err.strip())])
    in_help = set(HELP_OPTION.findall(out))
    if not in_help or not in_page:
        return fail(["%s: no options found (help %d, page %d): the parser is broken" %
                     (page, len(in_help), len(in_page))])
    msgs = compare(os.path.basename(page), "option", in_page, in_help, cmd[0] + " --help")
    if not msgs:
        print("%s: %d options, as in --help" % (os.path.basename(page), len(in_page)))
    return fail(msgs)


# "(default *X*; 1m..365d)", "(...; count 1..10000; interval 1s..30d)": the key's own range
RANGE = re.compile(r";\s*(count\s+)?([0-9]+[A-Za-z]*)\.\.([0-9]+[A-Za-z]*)")
UNITS = {"duration": {"s": 1, "m": 60, "h": 3600, "d": 86400},
         "size": {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}}


def to_number(typ, text):
    """A range bound of the page in the unit the program counts (seconds, bytes, items)."""
    m = re.fullmatch(r"([0-9]+)([A-Za-z]*)", text)
    units = UNITS.get(typ, {})
    if not m or (m.group(2) and m.group(2) not in units):
        raise ValueError("%r is not a %s" % (text, typ))
    return int(m.group(1)) * units.get(m.group(2), 1)


def dump_keys(out):
    """{key: value line} of a --dump-config output."""
    keys = {}
    for line in out.split("\n"):
        m = re.match(r"^([a-z][a-z0-9_]*)(\s|$)", line)
        if m:
            keys[m.group(1)] = line
    return keys


def check_keys(argv):
    """The KEYS section against the dump, then the defaults the page states: a file that sets
    every key to its page default must dump exactly as the program's own defaults do (the
    program's parser reads the page's values, so "72h" and "3d" agree)."""
    (page,), cmd = split_command(argv)
    secs = sections(page)
    if "KEYS" not in secs:
        return fail(["%s: no KEYS section" % page])
    listed, defaults, ranges, msgs = [], {}, {}, []
    for line in term_lines(secs["KEYS"]):
        m = TERM_KEYS.match(line)
        if not m:
            continue
        keys = [k.replace("\\", "") for k in re.findall(r"\*([^*]+)\*", m.group(1))]
        listed += keys
        d = re.search(r"\(default \*([^*]*)\*", line[m.end():])
        r = RANGE.search(line[m.end():])
        t = re.match(r"\s*_([a-z ]+)_", line[m.end():])
        for k in keys:
            if d:
                defaults[k] = d.group(1).replace("\\", "")
            if r and t:
                ranges[k] = (t.group(1), r.group(1), r.group(2), r.group(3))
    for k in sorted(set(k for k in listed if listed.count(k) > 1)):
        msgs.append("%s: key %s is listed more than once" % (page, k))
    rc, out, err = run(cmd)
    if rc != 0:
        return fail(["%s: exit status %d: %s" % (" ".join(cmd), rc, err.strip())])
    dumped = dump_keys(out)
    if not dumped or not listed:
        return fail(["%s: no keys found (dump %d, page %d): the parser is broken" %
                     (page, len(dumped), len(listed))])
    name = os.path.basename(page)
    msgs += compare(name, "key", set(listed), set(dumped), " ".join(cmd[-1:]))
    if msgs:
        return fail(msgs)

    # the defaults: the base file (-c FILE of the command) plus `key <page default>` lines
    base = cmd[cmd.index("-c") + 1]
    with open(base, encoding="utf-8") as f:
        text = f.read()
    in_base = set(dump_keys(text))
    lines = ["%s %s" % (k, v) for k, v in defaults.items() if k not in in_base and k in dumped]
    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "man_test_%d.conf" % os.getpid())
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text + "\n" + "\n".join(lines) + "\n")
        rc, out2, err = run([tmp if a == base else a for a in cmd])
    finally:
        os.unlink(tmp)
    if rc != 0:
        return fail(["%s: the page's defaults do not parse: %s" % (name, err.strip())])
    with_page = dump_keys(out2)
    for k in sorted(defaults):
        if k in dumped and with_page.get(k) != dumped[k]:
            msgs.append("%s: %s: the page's default %r means %r, the program's default is %r" %
                        (name, k, defaults[k], with_page.get(k), dumped[k]))

    # the ranges: one past the page's maximum must be refused with exactly the page's range
    for k in sorted(ranges):
        if k in in_base:
            continue
        typ, count, lo, hi = ranges[k]
        try:
            lo, hi = to_number(typ, lo), to_number(typ, hi)
        except ValueError as e:
            msgs.append("%s: %s: range %s..%s: %s" % (name, k, ranges[k][2], ranges[k][3], e))
            continue
        value = "%d/1h" % (hi + 1) if count else str(hi + 1)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("%s\n%s %s\n" % (text, k, value))
        try:
            rc, _, err = run([tmp if a == base else a for a in cmd])
        finally:
            os.unlink(tmp)
        want = "'%s': value %d out of range [%d, %d]" % (k, hi + 1, lo, hi)
        if rc == 0 or want not in err:
            msgs.append("%s: %s: the page's range %s..%s is not the program's: %s %s gives %s" %
                        (name, k, ranges[k][2], ranges[k][3], k, value,
                         err.strip() or "no error"))

    # the EXAMPLE section's configuration is one the program accepts
    example = "\n".join(secs.get("EXAMPLE", []))
    blocks = re.findall(r"^```\n(.*?)^```", example, flags=re.S | re.M)
    for i, block in enumerate(blocks):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(block.replace("\\\\", "\\"))
        try:
            rc, _, err = run([tmp if a == base else a for a in cmd])
        finally:
            os.unlink(tmp)
        if rc != 0:
            msgs.append("%s: EXAMPLE %d is refused: %s" % (name, i + 1, err.strip()))
    if not msgs:
        print("%s: %d keys, as in the dump; %d defaults and %d ranges as the program's; "
              "%d examples accepted" % (name, len(listed), len(lines), len(ranges), len(blocks)))
    return fail(msgs)


def check_coverage(argv):
    mandir, options, keys = argv
    options = set(filter(None, options.split(",")))
    keys = set(filter(None, keys.split(",")))
    msgs = []
    pages = sorted(f[:-4] for f in os.listdir(mandir) if f.endswith(".scd"))
    if not pages:
        return fail(["%s: no pages" % mandir])
    for page in pages:
        path = os.path.join(mandir, page + ".scd")
        secs = sections(path)
        with open(path, encoding="utf-8") as f:
            title = f.readline()
        name, _, section = page.rpartition(".")
        if not title.startswith("%s(%s)" % (name, section)):
            msgs.append("%s.scd: the title line must start with %s(%s)" % (page, name, section))
        for s in ("NAME", "DESCRIPTION", "SEE ALSO"):
            if s not in secs:
                msgs.append("%s.scd: no %s section" % (page, s))
        if "OPTIONS" in secs and page not in options:
            msgs.append("%s.scd has OPTIONS but no cradle_man_options() row in "
                        "tests/docs/CMakeLists.txt" % page)
        if "KEYS" in secs and page not in keys:
            msgs.append("%s.scd has KEYS but no cradle_man_keys() row in "
                        "tests/docs/CMakeLists.txt" % page)
    for page in sorted((options | keys) - set(pages)):
        msgs.append("tests/docs/CMakeLists.txt has a row for %s but there is no %s/%s.scd" %
                    (page, mandir, page))
    if not msgs:
        print("%d pages, each with its rows" % len(pages))
    return fail(msgs)


def check_render(argv):
    """groff -ww, then what lintian runs on an installed page: man --warnings (groff-message)
    and lexgrog (bad-whatis-entry: the NAME line must parse)."""
    groff, man, lexgrog = shutil.which("groff"), shutil.which("man"), shutil.which("lexgrog")
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "MANWIDTH": "80",
           "MANROFFSEQ": ""}
    msgs = []
    for page in argv:
        if not os.path.isfile(page) or os.path.getsize(page) == 0:
            msgs.append("%s: not generated (build the target man)" % page)
            continue
        checks = []
        if groff:
            checks.append(("groff", [groff, "-man", "-Tutf8", "-ww", "-z", page]))
        if man:
            checks.append(("man", [man, "--warnings", "-E", "UTF-8", "-l", "-Tutf8", "-Z",
                                   page]))
        for what, cmd in checks:
            p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                               timeout=30, encoding="utf-8", errors="replace")
            if p.returncode != 0 or p.stderr.strip():
                msgs.append("%s: %s: exit %d: %s" % (page, what, p.returncode, p.stderr.strip()))
        if lexgrog:
            p = subprocess.run([lexgrog, page], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, timeout=30, encoding="utf-8", errors="replace")
            if p.returncode != 0:
                msgs.append("%s: lexgrog cannot read the NAME section: %s" %
                            (page, (p.stdout + p.stderr).strip()))
    if not groff:
        print("groff not found: only checked that scdoc generated every page", file=sys.stderr)
    if not msgs:
        print("%d pages render cleanly (%s)" % (len(argv), ", ".join(
            t for t, ok in (("groff", groff), ("man", man), ("lexgrog", lexgrog)) if ok)))
    return fail(msgs)


def check_version(argv):
    changelog, rows = argv[0], argv[1:]
    with open(changelog, encoding="utf-8") as f:
        m = re.match(r"^cradle \(([0-9][^)]*)\) ", f.readline())
    if not m:
        return fail(["%s: the first line is not 'cradle (VERSION) ...'" % changelog])
    version, msgs = m.group(1), []
    for row in rows:
        name, _, cmd = row.partition("=")
        rc, out, err = run(cmd.split() + ["--version"])
        want = "%s %s\n" % (name, version)
        if rc != 0 or out != want:
            msgs.append("%s --version: exit %d, printed %r, expected exit 0 and %r" %
                        (cmd, rc, out, want))
    if not msgs:
        print("%d programs print version %s" % (len(rows), version))
    return fail(msgs)


def main():
    modes = {"options": check_options, "keys": check_keys, "coverage": check_coverage,
             "render": check_render, "version": check_version}
    if len(sys.argv) < 3 or sys.argv[1] not in modes:
        sys.exit(__doc__)
    return modes[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
