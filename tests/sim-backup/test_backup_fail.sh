#!/bin/sh
# SPDX-License-Identifier: MIT
# Failing local backups against cradle-sim's mobilebackup2 with Debian's idevicebackup2 1.3.0:
#  - MBErrorDomain 208 "Device locked" (iOS 16.1+ waits for the passcode) after delay_ms:
#    "ErrorCode 208: Device locked", "Backup Failed (Error Code 208).", exit status 48
#    (-208 & 0xff), LastiTunesBackupDate untouched, journal backup_finished ok=false 208;
#  - purge_disk_space: the phone sends DLMessagePurgeDiskSpace first and waits for an answer
#    that 1.3.0 never gives (it ignores unknown DL messages), so the backup hangs: the tool is
#    still running after 5 s (killed here), nothing was uploaded, and once the host is gone the
#    journal says backup_finished ok=false error_code=-1. The simulator keeps serving.
# usage: test_backup_fail.sh CRADLE_SIM SOURCE_DIR
set -eu
SIMBIN=$1
SRC=$2
HERE=$SRC/tests/sim-backup
CHECK="/usr/bin/python3 $HERE/backupcheck.py"
JOURNAL="/usr/bin/python3 $SRC/tests/sim-device/plistcheck.py"
L=00008030-001A2B3C4D5E0B02 # backup error_code 208, delay_ms 300
P=00008030-001A2B3C4D5E0B03 # purge_disk_space
. "$SRC/tests/lib/simenv.sh"
trap sim_stop EXIT INT TERM
sim_start "$SIMBIN" "$HERE/scenario.json"
T=$SIM_DIR
mkdir "$T/bk"

rc=0
timeout 30 idevicebackup2 -u $L backup "$T/bk" >"$T/o1" 2>&1 || rc=$?
[ $rc -eq 48 ] || { echo "FAIL: 208 exit $rc, want 48"; cat "$T/o1"; exit 1; }
grep -q "^ErrorCode 208: Device locked$" "$T/o1" || { cat "$T/o1"; exit 1; }
grep -q "^Backup Failed (Error Code 208)\.$" "$T/o1" || { cat "$T/o1"; exit 1; }
v=$(timeout 20 ideviceinfo -u $L -q com.apple.mobile.backup -k LastiTunesBackupDate)
[ -z "$v" ] || { echo "FAIL: LastiTunesBackupDate set after a failure: $v"; exit 1; }
[ ! -e "$T/bk/$L/Status.plist" ] || { echo "FAIL: Status.plist after a failure"; exit 1; }
sim_ctl "{\"op\":\"journal\",\"udid\":\"$L\"}" >"$T/j1.json"
$JOURNAL journal "$T/j1.json" backup_started full=true
$JOURNAL journal "$T/j1.json" backup_finished ok=false error_code=208 files=0
echo "ok: 208 -> exit 48"

# purge: bounded by timeout -s KILL (the tool catches SIGTERM and would wait another 30 s)
rc=0
timeout -s KILL 5 idevicebackup2 -u $P backup "$T/bk" >"$T/o2" 2>&1 || rc=$?
[ $rc -eq 137 ] || { echo "FAIL: purge: exit $rc, want 137 (still hanging)"; cat "$T/o2"; exit 1; }
[ ! -e "$T/bk/$P/Status.plist" ] || { echo "FAIL: purge: Status.plist uploaded"; exit 1; }
i=0
while :; do
	sim_ctl "{\"op\":\"journal\",\"udid\":\"$P\"}" >>"$T/j2.json"
	grep -q '"backup_finished"' "$T/j2.json" && break
	i=$((i + 1))
	[ $i -lt 50 ] || { echo "FAIL: no backup_finished after the host died"; cat "$T/j2.json"; exit 1; }
	sleep 0.1
done
# several replies may have been appended: merge them into one for backupcheck
/usr/bin/python3 -c '
import json, sys
j = [e for l in open(sys.argv[1]) for e in json.loads(l)["journal"]]
print(json.dumps({"ok": True, "journal": j}))' "$T/j2.json" >"$T/j2m.json"
$JOURNAL journal "$T/j2m.json" backup_started full=true
$JOURNAL journal "$T/j2m.json" purge_disk_space
$JOURNAL journal "$T/j2m.json" backup_finished ok=false error_code=-1 files=0
v=$(timeout 20 ideviceinfo -u $P -k ProductType)
[ "$v" = iPhone14,5 ] || { echo "FAIL: simulator unusable after the hang: '$v'"; exit 1; }
echo "ok: PurgeDiskSpace hangs 1.3.0 (bounded)"
echo PASS
