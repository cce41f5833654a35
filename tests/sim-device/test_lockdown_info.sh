#!/bin/sh
# SPDX-License-Identifier: MIT
# ideviceinfo (Debian's libimobiledevice-utils 1.3.0) against cradle-sim's lockdownd: whole
# domains and single keys equal the scenario, a missing key prints nothing and exits 0, a stale
# pairing gives "Invalid HostID (-21)" and 255, and the journal records the session (TLS or
# not) and the keys read.
# usage: test_lockdown_info.sh CRADLE_SIM SOURCE_DIR [--plaintext]
set -eu
SIMBIN=$1
SRC=$2
MODE=${3:-}
HERE=$SRC/tests/sim-device
SCN=$HERE/scenario.json
CHECK="/usr/bin/python3 $HERE/plistcheck.py"
P=00008030-001A2B3C4D5E6F70
. "$SRC/tests/lib/simenv.sh"
trap sim_stop EXIT INT TERM

if [ "$MODE" = --plaintext ]; then
	sim_start "$SIMBIN" "$SCN" --plaintext
	SSL=false
else
	sim_start "$SIMBIN" "$SCN"
	SSL=true
fi
T=$SIM_DIR

# whole domains, root included, as XML
for dom in "" com.apple.mobile.backup com.apple.mobile.battery; do
	if [ -z "$dom" ]; then
		timeout 20 ideviceinfo -u $P -x >"$T/root.xml"
		$CHECK domain "$SCN" $P "" "$T/root.xml"
	else
		timeout 20 ideviceinfo -u $P -q "$dom" -x >"$T/dom.xml"
		$CHECK domain "$SCN" $P "$dom" "$T/dom.xml"
	fi
done

# single keys
v=$(timeout 20 ideviceinfo -u $P -k ProductVersion)
[ "$v" = 16.6.1 ] || { echo "FAIL: ProductVersion '$v'"; exit 1; }
v=$(timeout 20 ideviceinfo -u $P -q com.apple.mobile.backup -k LastCloudBackupDate)
[ "$v" = 752000000 ] || { echo "FAIL: LastCloudBackupDate '$v'"; exit 1; }
v=$(timeout 20 ideviceinfo -u $P -q com.apple.mobile.backup -k CloudBackupEnabled)
[ "$v" = true ] || { echo "FAIL: CloudBackupEnabled '$v'"; exit 1; }
v=$(timeout 20 ideviceinfo -u $P -k UniqueDeviceID)
[ "$v" = $P ] || { echo "FAIL: UniqueDeviceID '$v'"; exit 1; }
# DevicePublicKey is a real PKCS#1 PEM (the client parses it when pairing)
timeout 20 ideviceinfo -u $P -k DevicePublicKey -x >"$T/pk.xml"
/usr/bin/python3 -c 'import plistlib,sys; d=plistlib.load(open(sys.argv[1],"rb")); sys.exit(0 if d.startswith(b"-----BEGIN RSA PUBLIC KEY-----") else 1)' "$T/pk.xml" ||
	{ echo "FAIL: DevicePublicKey is not a PKCS#1 PEM"; exit 1; }

# a missing key: nothing printed, exit status 0 (MissingValue, docs/device-protocols.md)
v=$(timeout 20 ideviceinfo -u $P -q com.apple.mobile.backup -k NoSuchKey)
[ -z "$v" ] || { echo "FAIL: missing key printed '$v'"; exit 1; }

# stale pairing: InvalidHostID
rc=0
timeout 20 ideviceinfo -u 00008030-000000000000AA04 >"$T/o" 2>&1 || rc=$?
[ $rc -eq 255 ] || { echo "FAIL: invalid_host exit $rc"; cat "$T/o"; exit 1; }
grep -q 'Invalid HostID (-21)' "$T/o" || { echo "FAIL: invalid_host message"; cat "$T/o"; exit 1; }

sim_ctl "{\"op\":\"journal\",\"udid\":\"$P\"}" >"$T/j.json"
$CHECK journal "$T/j.json" StartSession ssl=$SSL result=Success label=ideviceinfo
$CHECK journal "$T/j.json" GetValue domain=com.apple.mobile.backup key=LastCloudBackupDate
$CHECK journal "$T/j.json" GetValue domain=com.apple.mobile.battery key=
sim_ctl '{"op":"journal","udid":"00008030-000000000000AA04"}' >"$T/j4.json"
$CHECK journal "$T/j4.json" StartSession result=InvalidHostID
$CHECK nojournal "$T/j4.json" StartSession result=Success
echo "PASS"
