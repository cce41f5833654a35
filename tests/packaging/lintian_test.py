"""lintian over the .changes of the packaging-build fixture (source and binary packages): no
error and no warning. An override must sit in packaging/debian/*.lintian-overrides with the
comment that justifies it; this test lists the overrides lintian applied, so none hides."""
import glob
import os
import subprocess
import sys

dist = os.environ["CRADLE_DIST"]
changes = glob.glob(os.path.join(dist, "cradle_*.changes"))
if len(changes) != 1:
    print("FAIL: expected one cradle_*.changes in %s, found %s" % (dist, changes))
    sys.exit(1)
r = subprocess.run(["lintian", "--fail-on", "error,warning", "--show-overrides",
                    "--tag-display-limit", "0", changes[0]],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=500)
print(r.stdout)
bad = [l for l in r.stdout.splitlines() if l[:2] in ("E:", "W:")]
overridden = [l for l in r.stdout.splitlines() if l.startswith("O:")]
for l in overridden:
    print("override applied:", l)
if r.returncode != 0 or bad:
    print("FAIL: lintian status %d, %d errors or warnings" % (r.returncode, len(bad)))
    sys.exit(1)
print("ok: lintian %s: no errors, no warnings (%d overrides)" %
      (os.path.basename(changes[0]), len(overridden)))
