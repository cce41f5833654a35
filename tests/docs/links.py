#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""links: every relative link in the repository's Markdown files points at a file that exists,
and every #anchor at a heading of that file (GitHub's slug rules: lowercase, punctuation other
than '-' and '_' removed, spaces become '-').

usage: links.py SOURCE_DIR    exit 0 when all links resolve, 1 otherwise (each one printed)
"""
import os
import re
import sys

# dist/: scripts/package's output, a copy of the tree being packaged
SKIP_DIRS = {".git", "node_modules", "dist"}


def slug(heading):
    h = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return h.replace(" ", "-")


def markdown_files(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS and not d.startswith("build")]
        for name in filenames:
            if name.endswith(".md"):
                yield os.path.join(dirpath, name)


def anchors(path, cache):
    if path not in cache:
        found = set()
        in_code = False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("```"):
                    in_code = not in_code
                m = None if in_code else re.match(r"^#+\s+(.*)", line)
                if m:
                    found.add(slug(m.group(1)))
        cache[path] = found
    return cache[path]


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    root = os.path.abspath(sys.argv[1])
    cache, bad, n = {}, 0, 0
    for md in sorted(markdown_files(root)):
        with open(md, encoding="utf-8") as f:
            text = re.sub(r"```.*?```", "", f.read(), flags=re.S)
        for link in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", link):
                continue
            n += 1
            path, _, anchor = link.partition("#")
            target = os.path.normpath(os.path.join(os.path.dirname(md), path)) if path else md
            rel = os.path.relpath(md, root)
            if not target.startswith(root + os.sep) and target != root:
                print(f"{rel}: link leaves the repository: {link}")
                bad += 1
            elif not os.path.exists(target):
                print(f"{rel}: no such file: {link}")
                bad += 1
            elif anchor and target.endswith(".md") and anchor not in anchors(target, cache):
                print(f"{rel}: no heading for #{anchor}: {link}")
                bad += 1
    print(f"{n} relative links checked, {bad} broken")
    return 1 if bad or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
