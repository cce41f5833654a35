#!/bin/sh
# SPDX-License-Identifier: MIT
# `idevicebackup2 cloud on|off` (Debian's 1.3.0) against cradle-sim's EnableCloudBackup: success
# prints the tool's message, exits 0 and flips com.apple.mobile.backup CloudBackupEnabled as
# ideviceinfo then reads it; a scripted error (211 "No Apple ID signed in") prints
# "ErrorCode 211: …", exits with -211 & 0xff = 45 and changes nothing. The journal records each
# request with the state asked for and the code answered.
# usage: test_cloud.sh CRADLE_SIM SOURCE_DIR [--plaintext]
set -eu
SIMBIN=$1
SRC=$2
MODE=${3:-}
HERE=$SRC/tests/sim-backup
JOURNAL="/usr/bin/python3 $SRC/tests/sim-device/plistcheck.py"
U=00008030-001A2B3C4D5E0B01 # CloudBackupEnabled false, cloud succeeds
E=00008030-001A2B3C4D5E0B02 # CloudBackupEnabled true, cloud answers 211
. "$SRC/tests/lib/simenv.sh"
trap sim_stop EXIT INT TERM
if [ "$MODE" = --plaintext ]; then
	sim_start "$SIMBIN" "$HERE/scenario.json" --plaintext
else
	sim_start "$SIMBIN" "$HERE/scenario.json"
fi
T=$SIM_DIR

enabled() {
	timeout 20 ideviceinfo -u "$1" -q com.apple.mobile.backup -k CloudBackupEnabled
}
[ "$(enabled $U)" = false ] || { echo "FAIL: before: '$(enabled $U)'"; exit 1; }

rc=0
timeout 20 idevicebackup2 -u $U cloud on >"$T/on" 2>&1 || rc=$?
[ $rc -eq 0 ] || { echo "FAIL: cloud on exit $rc"; cat "$T/on"; exit 1; }
grep -q "^Cloud backup has been enabled successfully\.$" "$T/on" || { cat "$T/on"; exit 1; }
[ "$(enabled $U)" = true ] || { echo "FAIL: after on: '$(enabled $U)'"; exit 1; }
sim_ctl "{\"op\":\"journal\",\"udid\":\"$U\"}" >"$T/j1.json"
$JOURNAL journal "$T/j1.json" cloud_backup enable=true error_code=0
$JOURNAL journal "$T/j1.json" StartService service=com.apple.mobilebackup2 result=Success
echo "ok: cloud on"

rc=0
timeout 20 idevicebackup2 -u $U cloud off >"$T/off" 2>&1 || rc=$?
[ $rc -eq 0 ] || { echo "FAIL: cloud off exit $rc"; cat "$T/off"; exit 1; }
grep -q "^Cloud backup has been disabled successfully\.$" "$T/off" || { cat "$T/off"; exit 1; }
[ "$(enabled $U)" = false ] || { echo "FAIL: after off: '$(enabled $U)'"; exit 1; }
sim_ctl "{\"op\":\"journal\",\"udid\":\"$U\"}" >"$T/j2.json"
$JOURNAL journal "$T/j2.json" cloud_backup enable=false error_code=0
echo "ok: cloud off"

# scripted error: the value must not change
[ "$(enabled $E)" = true ] || { echo "FAIL: error device before: '$(enabled $E)'"; exit 1; }
rc=0
timeout 20 idevicebackup2 -u $E cloud off >"$T/err" 2>&1 || rc=$?
[ $rc -eq 45 ] || { echo "FAIL: cloud error exit $rc, want 45"; cat "$T/err"; exit 1; }
grep -q "^ErrorCode 211: No Apple ID signed in$" "$T/err" || { cat "$T/err"; exit 1; }
grep -q "^Could not disable cloud backup\.$" "$T/err" || { cat "$T/err"; exit 1; }
[ "$(enabled $E)" = true ] || { echo "FAIL: error device after: '$(enabled $E)'"; exit 1; }
sim_ctl "{\"op\":\"journal\",\"udid\":\"$E\"}" >"$T/j3.json"
$JOURNAL journal "$T/j3.json" cloud_backup enable=false error_code=211
echo PASS
