#!/usr/bin/python3
"""The man pages (docs/man/*.scd) say what the programs do, and the programs say their version.

    man_test.py options PAGE.scd -- COMMAND...   the OPTIONS section lists exactly the options
                                                 `COMMAND --help` prints
    man_test.py keys PAGE.scd -- COMMAND...      the KEYS section lists exactly the keys
                                                 COMMAND (a --dump-config) prints
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
indented by a tab. The options of a term line are its bold words that start with '-'; the key
of a KEYS term line are its leading bold words (`*receiver1*, *receiver2* _receiver_`). From --help every word that starts with '-' or
'--' (not inside a word: cradle-agent is no option) counts.

Exit status 0 when all holds, 1 with every difference listed.
"""

import os
import re
import shutil
import subprocess
import sys

HELP_OPTION = re.compile(r"(?<![\w/.-])(--?[A-Za-z][A-Za-z0-9-]*)")
TERM_OPTION = re.compile(r"\*(--?[A-Za-z][A-Za-z0-9-]*)\*")
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
        in_page.update(TERM_OPTION.findall(line))
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


def check_keys(argv):
    (page,), cmd = split_command(argv)
    secs = sections(page)
    if "KEYS" not in secs:
        return fail(["%s: no KEYS section" % page])
    listed, msgs = [], []
    for line in term_lines(secs["KEYS"]):
        m = TERM_KEYS.match(line)
        if m:
            listed += [k.replace("\\", "") for k in re.findall(r"\*([^*]+)\*", m.group(1))]
    for k in sorted(set(k for k in listed if listed.count(k) > 1)):
        msgs.append("%s: key %s is listed more than once" % (page, k))
    rc, out, err = run(cmd)
    if rc != 0:
        return fail(["%s: exit status %d: %s" % (" ".join(cmd), rc, err.strip())])
    dumped = set()
    for line in out.split("\n"):
        m = re.match(r"^([a-z][a-z0-9_]*)(\s|$)", line)
        if m:
            dumped.add(m.group(1))
    if not dumped or not listed:
        return fail(["%s: no keys found (dump %d, page %d): the parser is broken" %
                     (page, len(dumped), len(listed))])
    msgs += compare(os.path.basename(page), "key", set(listed), dumped, " ".join(cmd[-1:]))
    if not msgs:
        print("%s: %d keys, as in the dump" % (os.path.basename(page), len(listed)))
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
