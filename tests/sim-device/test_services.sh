#!/bin/sh
# SPDX-License-Identifier: MIT
# Services behind StartService against Debian's tools: idevicesyslog streams the scenario's
# lines; idevicediagnostics answers ioreg and mobilegestalt from the diagnostics.* domains and
# restart detaches the phone, which comes back under a new DeviceID; the journal records it.
# usage: test_services.sh CRADLE_SIM SOURCE_DIR [--plaintext]
set -eu
SIMBIN=$1
SRC=$2
MODE=${3:-}
HERE=$SRC/tests/sim-device
CHECK="/usr/bin/python3 $HERE/plistcheck.py"
P=00008030-001A2B3C4D5E6F70
. "$SRC/tests/lib/simenv.sh"
trap sim_stop EXIT INT TERM
if [ "$MODE" = --plaintext ]; then
	sim_start "$SIMBIN" "$HERE/scenario.json" --plaintext
else
	sim_start "$SIMBIN" "$HERE/scenario.json"
fi
T=$SIM_DIR

# syslog: bounded by timeout (idevicesyslog streams forever)
timeout 4 idevicesyslog -u $P >"$T/syslog" 2>&1 || true
for l in "backupd[123] <Notice>: Starting backup" \
	"backupd[123] <Error>: Backup failed: not enough iCloud storage" \
	"SpringBoard[45] <Notice>: third line"; do
	grep -qF "$l" "$T/syslog" || { echo "FAIL: syslog lacks '$l'"; cat "$T/syslog"; exit 1; }
done
n=$(grep -c 'Nov 25 10:00:0' "$T/syslog" || true)
[ "$n" -eq 3 ] || { echo "FAIL: $n syslog lines, want 3"; cat "$T/syslog"; exit 1; }
echo "ok: syslog"

# diagnostics data
timeout 20 idevicediagnostics -u $P ioreg IOPMPowerSource >"$T/io.xml"
/usr/bin/python3 - "$T/io.xml" <<'PYEOF'
import plistlib, sys
d = plistlib.load(open(sys.argv[1], "rb"))
io = d.get("IORegistry", {})
if io.get("CurrentCapacity") != 80 or io.get("IsCharging") is not False:
    print("FAIL: ioreg %r" % d); sys.exit(1)
print("ok: ioreg")
PYEOF
timeout 20 idevicediagnostics -u $P mobilegestalt SerialNumber ProductType >"$T/mg.xml"
/usr/bin/python3 - "$T/mg.xml" <<'PYEOF'
import plistlib, sys
d = plistlib.load(open(sys.argv[1], "rb")).get("MobileGestalt", {})
if d.get("SerialNumber") != "F4GZ1234ABCD" or d.get("ProductType") != "iPhone12,8":
    print("FAIL: mobilegestalt %r" % d); sys.exit(1)
print("ok: mobilegestalt")
PYEOF

# restart: detach, then back under a new DeviceID (restart_delay_ms 300 in the scenario)
devid() {
	sim_ctl '{"op":"list"}' | /usr/bin/python3 -c '
import json, sys
for d in json.loads(sys.stdin.readline())["devices"]:
    if d["udid"] == sys.argv[1]:
        print("%s %s" % (d["attached"], d["device_id"]))' "$P"
}
before=$(devid)
case $before in "True "*) ;; *) echo "FAIL: not attached before restart: $before"; exit 1;; esac
timeout 20 idevicediagnostics -u $P restart >"$T/r" 2>&1 || { echo "FAIL: restart"; cat "$T/r"; exit 1; }
grep -q "Restarting device." "$T/r" || { echo "FAIL: restart output"; cat "$T/r"; exit 1; }
i=0
while :; do
	now=$(devid)
	case $now in "True "*) [ "$now" != "$before" ] && break;; esac
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "FAIL: not back after restart: '$before' -> '$now'"; exit 1; }
	sleep 0.1
done
echo "ok: restart: '$before' -> '$now'"
v=$(timeout 20 ideviceinfo -u $P -k ProductType)
[ "$v" = iPhone12,8 ] || { echo "FAIL: after restart ProductType '$v'"; exit 1; }

# shutdown: detached for good
timeout 20 idevicediagnostics -u $P shutdown >"$T/r" 2>&1 || { echo "FAIL: shutdown"; cat "$T/r"; exit 1; }
sleep 1
now=$(devid)
case $now in "False "*) ;; *) echo "FAIL: still attached after shutdown: $now"; exit 1;; esac
echo "ok: shutdown: $now"

sim_ctl "{\"op\":\"journal\",\"udid\":\"$P\"}" >"$T/j.json"
$CHECK journal "$T/j.json" Restart wait_for_disconnect=true
$CHECK journal "$T/j.json" Shutdown
$CHECK journal "$T/j.json" StartService service=com.apple.syslog_relay result=Success
$CHECK journal "$T/j.json" StartService service=com.apple.mobile.diagnostics_relay result=Success
echo PASS
