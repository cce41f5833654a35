#!/bin/sh
# Runs test_events (libimobiledevice C API) against a fresh cradle-sim.
# Usage: test_events.sh CRADLE_SIM TEST_EVENTS SRC_DIR
set -eu
SIM=$1
BIN=$2
SRC=$3
. "$SRC/tests/lib/simenv.sh"
trap sim_stop EXIT INT TERM
sim_start "$SIM" "$SRC/tests/sim/data/basic.json"
# basic.json: 5 attached devices
timeout 40 "$BIN" "$SIM_CONTROL" 5 00008110-001A2B3C4D5E0001
sim_stop
[ "$SIM_STATUS" -eq 0 ] || { echo "FAIL: cradle-sim exited $SIM_STATUS"; exit 1; }
