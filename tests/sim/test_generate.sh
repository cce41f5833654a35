#!/bin/sh
# --generate 500: all 500 phones are listed by Debian's idevice_id (through the cached
# ListDevices reply), UDIDs are unique and well-formed, the same seed gives the same set and
# generated devices stack on top of a scenario.
# Usage: test_generate.sh CRADLE_SIM SRC_DIR
set -eu
SIM=$1
SRC=$2
. "$SRC/tests/lib/simenv.sh"
W=$(mktemp -d)
trap 'sim_stop; rm -rf "$W"' EXIT INT TERM

sim_start "$SIM" "" --generate 500 --seed 7
timeout 30 idevice_id -l >"$W/a"
[ "$(wc -l <"$W/a")" -eq 500 ] || { echo "FAIL: $(wc -l <"$W/a") devices listed"; exit 1; }
[ "$(sort -u "$W/a" | wc -l)" -eq 500 ] || { echo "FAIL: duplicate UDIDs"; exit 1; }
if grep -vqE '^[0-9A-F]{8}-[0-9A-F]{16}$' "$W/a"; then
	echo "FAIL: malformed UDID: $(grep -vE '^[0-9A-F]{8}-[0-9A-F]{16}$' "$W/a" | head -n 1)"
	exit 1
fi
sim_ctl '{"op":"list"}' >"$W/list"
/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["devices"]
ids = [x["device_id"] for x in d]
assert len(d) == 500 and all(x["attached"] for x in d), "500 attached"
assert len(set(ids)) == 500 and min(ids) > 0, "unique ids > 0"
states = {x["pairing"] for x in d}
assert {"paired", "unpaired", "trust_pending", "denied", "invalid_host"} <= states, states
listed = sorted(l.strip() for l in open(sys.argv[2]))
assert sorted(x["udid"] for x in d) == listed, "control list == idevice_id"
' "$W/list" "$W/a" || { echo "FAIL: control list"; exit 1; }
# a detach is reflected in the next listing (cache invalidated)
first=$(head -n 1 "$W/a")
sim_ctl "{\"op\":\"detach\",\"udid\":\"$first\"}" >/dev/null
timeout 30 idevice_id -l >"$W/a2"
[ "$(wc -l <"$W/a2")" -eq 499 ] && ! grep -q "$first" "$W/a2" || { echo "FAIL: detach not listed"; exit 1; }
sim_stop
[ "$SIM_STATUS" -eq 0 ] || { echo "FAIL: cradle-sim exited $SIM_STATUS"; exit 1; }

sim_start "$SIM" "" --generate 500 --seed 7
timeout 30 idevice_id -l | sort >"$W/b"
sort "$W/a" | cmp -s - "$W/b" || { echo "FAIL: same seed, different devices"; exit 1; }
sim_stop
[ "$SIM_STATUS" -eq 0 ] || { echo "FAIL: cradle-sim exited $SIM_STATUS"; exit 1; }

sim_start "$SIM" "$SRC/tests/sim/data/basic.json" --generate 20 --seed 8
timeout 30 idevice_id -l >"$W/c"
[ "$(wc -l <"$W/c")" -eq 25 ] || { echo "FAIL: scenario + generate: $(wc -l <"$W/c")"; exit 1; }
grep -q '^00008110-001A2B3C4D5E0001$' "$W/c" || { echo "FAIL: scenario device missing"; exit 1; }
if grep -qxFf "$W/c" "$W/a"; then echo "FAIL: seed 8 repeats seed 7 UDIDs"; exit 1; fi
echo ok
