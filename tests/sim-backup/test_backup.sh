#!/bin/sh
# SPDX-License-Identifier: MIT
# `idevicebackup2 backup DIR` (Debian's libimobiledevice-utils 1.3.0) against cradle-sim's
# mobilebackup2: the first backup is full (exit 0, "Backup Successful.", file_count data files
# of file_size bytes at <sha1[:2]>/<sha1>, Status.plist finished and IsFullBackup true), the
# second is incremental (a quarter of the files rewritten with new contents, IsFullBackup
# false); LastiTunesBackupDate moves to now; the journal records both runs.
# usage: test_backup.sh CRADLE_SIM SOURCE_DIR [--plaintext]
set -eu
SIMBIN=$1
SRC=$2
MODE=${3:-}
HERE=$SRC/tests/sim-backup
CHECK="/usr/bin/python3 $HERE/backupcheck.py"
JOURNAL="/usr/bin/python3 $SRC/tests/sim-device/plistcheck.py"
U=00008030-001A2B3C4D5E0B01 # scenario: file_count 12, file_size 70000, LastiTunesBackupDate 700000000
. "$SRC/tests/lib/simenv.sh"
trap sim_stop EXIT INT TERM
if [ "$MODE" = --plaintext ]; then
	sim_start "$SIMBIN" "$HERE/scenario.json" --plaintext
else
	sim_start "$SIMBIN" "$HERE/scenario.json"
fi
T=$SIM_DIR
mkdir "$T/bk"

last() {
	timeout 20 ideviceinfo -u $U -q com.apple.mobile.backup -k LastiTunesBackupDate
}
[ "$(last)" = 700000000 ] || { echo "FAIL: LastiTunesBackupDate before: '$(last)'"; exit 1; }

# full
rc=0
timeout 40 idevicebackup2 -u $U backup "$T/bk" >"$T/o1" 2>&1 || rc=$?
[ $rc -eq 0 ] || { echo "FAIL: full backup exit $rc"; cat "$T/o1"; exit 1; }
grep -q "^Backup Successful\.$" "$T/o1" || { echo "FAIL: full output"; cat "$T/o1"; exit 1; }
grep -q "^Full backup mode\.$" "$T/o1" || { echo "FAIL: not full mode"; cat "$T/o1"; exit 1; }
grep -q "^Received 15 files from device\.$" "$T/o1" || { echo "FAIL: count"; cat "$T/o1"; exit 1; }
$CHECK tree "$T/bk" $U 12 70000 true
$CHECK sums "$T/bk/$U" "$T/sums1"
v1=$(last)
$CHECK recent "$v1" 700000000
sim_ctl "{\"op\":\"journal\",\"udid\":\"$U\"}" >"$T/j1.json"
$JOURNAL journal "$T/j1.json" backup_started full=true
$JOURNAL journal "$T/j1.json" backup_finished ok=true error_code=0 files=15
$JOURNAL journal "$T/j1.json" StartService service=com.apple.mobilebackup2 result=Success
echo "ok: full backup"

# incremental: 12 / 4 = 3 data files change, plus the 3 metadata files
sleep 1 # LastiTunesBackupDate has one-second resolution
rc=0
timeout 40 idevicebackup2 -u $U backup "$T/bk" >"$T/o2" 2>&1 || rc=$?
[ $rc -eq 0 ] || { echo "FAIL: incremental backup exit $rc"; cat "$T/o2"; exit 1; }
grep -q "^Backup Successful\.$" "$T/o2" || { echo "FAIL: incr output"; cat "$T/o2"; exit 1; }
grep -q "^Received 6 files from device\.$" "$T/o2" || { echo "FAIL: incr count"; cat "$T/o2"; exit 1; }
$CHECK tree "$T/bk" $U 12 70000 false
$CHECK sums "$T/bk/$U" "$T/sums2"
$CHECK changed "$T/sums1" "$T/sums2" 3
$CHECK recent "$(last)" "$v1"
sim_ctl "{\"op\":\"journal\",\"udid\":\"$U\"}" >"$T/j2.json"
$JOURNAL journal "$T/j2.json" backup_started full=false
$JOURNAL journal "$T/j2.json" backup_finished ok=true error_code=0 files=6
$JOURNAL nojournal "$T/j2.json" backup_started full=true
echo "ok: incremental backup"

# `backup --full` sends ForceFullBackup: everything is uploaded again
rc=0
timeout 40 idevicebackup2 -u $U backup --full "$T/bk" >"$T/o3" 2>&1 || rc=$?
[ $rc -eq 0 ] || { echo "FAIL: forced full backup exit $rc"; cat "$T/o3"; exit 1; }
grep -q "^Received 15 files from device\.$" "$T/o3" || { echo "FAIL: forced count"; cat "$T/o3"; exit 1; }
$CHECK tree "$T/bk" $U 12 70000 true
echo PASS
