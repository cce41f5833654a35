#!/bin/sh
# SPDX-License-Identifier: MIT
# idevicepair (Debian 1.3.0) against cradle-sim, one phone per pairing state: the exact messages
# and exit statuses the tool prints for each lockdown error, pairing an unpaired phone (real key and
# certificate generation from our DevicePublicKey, SavePairRecord into the simulator), a session
# afterwards, healing a stale pairing by pairing again, and the Pair results in the journal.
# usage: test_pairing.sh CRADLE_SIM SOURCE_DIR
set -eu
SIMBIN=$1
SRC=$2
HERE=$SRC/tests/sim-device
CHECK="/usr/bin/python3 $HERE/plistcheck.py"
P=00008030-001A2B3C4D5E6F70
U=00008030-000000000000AA01
PEND=00008030-000000000000AA02
DENY=00008030-000000000000AA03
STALE=00008030-000000000000AA04
. "$SRC/tests/lib/simenv.sh"
trap sim_stop EXIT INT TERM
sim_start "$SIMBIN" "$HERE/scenario.json"
T=$SIM_DIR

# expect WANT_RC SUBSTRING cmd...
expect() {
	want=$1
	text=$2
	shift 2
	rc=0
	timeout 20 "$@" >"$T/o" 2>&1 || rc=$?
	if [ $rc -ne "$want" ] || ! grep -qF "$text" "$T/o"; then
		echo "FAIL: '$*' exited $rc (want $want), output:"
		cat "$T/o"
		echo "(wanted '$text')"
		exit 1
	fi
	echo "ok: $* -> $rc"
}

expect 0 "SUCCESS: Validated pairing with device $P" idevicepair -u $P validate

expect 1 "Please accept the trust dialog on the screen of device $PEND, then attempt to pair again." \
	idevicepair -u $PEND pair
expect 1 "Please accept the trust dialog on the screen of device $PEND" idevicepair -u $PEND validate
expect 1 "Device $DENY said that the user denied the trust dialog." idevicepair -u $DENY pair
expect 1 "said that the user denied the trust dialog" idevicepair -u $DENY validate
expect 1 "ERROR: Device $STALE is not paired with this host" idevicepair -u $STALE validate

# unpaired: pair succeeds, then validate and a TLS session work with the saved record
expect 0 "SUCCESS: Paired with device $U" idevicepair -u $U pair
expect 0 "SUCCESS: Validated pairing with device $U" idevicepair -u $U validate
v=$(timeout 20 ideviceinfo -u $U -k ProductVersion)
[ "$v" = 17.1 ] || { echo "FAIL: after pairing ProductVersion '$v'"; exit 1; }

# stale: pairing again heals it, as tapping Trust again does on a phone
expect 0 "SUCCESS: Paired with device $STALE" idevicepair -u $STALE pair
expect 0 "SUCCESS: Validated pairing with device $STALE" idevicepair -u $STALE validate

sim_ctl "{\"op\":\"journal\",\"udid\":\"$U\"}" >"$T/j.json"
$CHECK journal "$T/j.json" GetValue domain= key=DevicePublicKey
$CHECK journal "$T/j.json" Pair result=Success
$CHECK journal "$T/j.json" StartSession result=Success ssl=true
sim_ctl "{\"op\":\"journal\",\"udid\":\"$PEND\"}" >"$T/j.json"
$CHECK journal "$T/j.json" Pair result=PairingDialogResponsePending
$CHECK nojournal "$T/j.json" Pair result=Success
sim_ctl "{\"op\":\"journal\",\"udid\":\"$DENY\"}" >"$T/j.json"
$CHECK journal "$T/j.json" Pair result=UserDeniedPairing
sim_ctl "{\"op\":\"list\"}" >"$T/l.json"
/usr/bin/python3 - "$T/l.json" "$U" <<'PYEOF'
import json, sys
d = {x["udid"]: x for x in json.loads(open(sys.argv[1]).readline())["devices"]}
st = d[sys.argv[2]].get("pairing")
if st != "paired":
    print("FAIL: unpaired device is %r after Pair" % st)
    sys.exit(1)
print("ok: unpaired device now reported paired")
PYEOF
echo PASS
