#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs test-sim-session (the C API session life cycle) against cradle-sim, TLS and plaintext,
# and checks the journal saw two sessions per run.
# usage: test_session.sh CRADLE_SIM TEST_SESSION_BIN SOURCE_DIR
set -eu
SIMBIN=$1
BIN=$2
SRC=$3
HERE=$SRC/tests/sim-device
P=00008030-001A2B3C4D5E6F70
. "$SRC/tests/lib/simenv.sh"
trap sim_stop EXIT INT TERM
for mode in tls plaintext; do
	if [ $mode = tls ]; then
		sim_start "$SIMBIN" "$HERE/scenario.json"
		want=1
	else
		sim_start "$SIMBIN" "$HERE/scenario.json" --plaintext
		want=0
	fi
	timeout 30 "$BIN" $P $want
	sim_ctl "{\"op\":\"journal\",\"udid\":\"$P\"}" >"$SIM_DIR/j.json"
	n=$(grep -o '"op":"StartSession"' "$SIM_DIR/j.json" | wc -l)
	[ "$n" -eq 2 ] || { echo "FAIL: $mode: $n StartSession entries, want 2"; exit 1; }
	/usr/bin/python3 "$HERE/plistcheck.py" journal "$SIM_DIR/j.json" StartService \
		service=com.apple.no.such.service result=InvalidService
	sim_stop
done
echo PASS
