#!/bin/sh
# Golden messages through a real mosquitto on loopback, read back with `mosquitto_sub -v`, checked
# with validate.py --with-topic: proves the topic map, retained delivery, the empty-payload delete
# and the validator's input format against the real tools other tests use.
# Shell on purpose: what is under test is the command-line tools' own text format (mosquitto_pub,
# mosquitto_sub -v), so the test uses them exactly as a shell user would. Its waits are deadline
# polls (bounded loops on a condition), never a bare sleep.
# usage: broker_roundtrip.sh SOURCE_DIR
set -eu
SRC=$1
PY=/usr/bin/python3
TMP=$(mktemp -d)
BROKER=
SUB=
cleanup() {
	[ -n "$SUB" ] && kill "$SUB" 2>/dev/null || true
	[ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null || true
	wait 2>/dev/null || true
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

PORT=$($PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$PORT" > "$TMP/m.conf"
mosquitto -c "$TMP/m.conf" > "$TMP/m.log" 2>&1 &
BROKER=$!
i=0
until $PY -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 50 ] || { echo "broker did not start"; cat "$TMP/m.log"; exit 1; }
	sleep 0.1
done

# topic<TAB>retain<TAB>compact payload for every golden example of this contract
$PY - "$SRC/proto/examples" > "$TMP/plan" <<'PYEOF'
import glob, json, os, sys
kinds = {"cradle.agent_status.v1": "status", "cradle.agent_meta.v1": "meta",
         "cradle.device_state.v1": "state", "cradle.device_event.v1": "event"}
seen = set()
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    m = json.load(open(path))
    kind = kinds.get(m.get("schema"))
    if not kind:
        continue
    base = "cradle/v1/agent/%s" % m["agent"]
    topic = base + ("/device/%s/%s" % (m["udid"], kind) if kind in ("state", "event") else "/" + kind)
    retain = kind != "event"
    if retain and topic in seen:
        continue  # one retained value per topic: the broker keeps only the last
    seen.add(topic)
    print("%s\t%d\t%s" % (topic, retain, json.dumps(m, separators=(",", ":"), ensure_ascii=False)))
PYEOF
RETAINED=$(awk -F'\t' '$2 == 1' "$TMP/plan" | wc -l)
EVENTS=$(awk -F'\t' '$2 == 0' "$TMP/plan" | wc -l)
TOTAL=$((RETAINED + EVENTS + 1))

pub() { # topic retain payload
	if [ "$2" = 1 ]; then
		mosquitto_pub -V mqttv5 -h 127.0.0.1 -p "$PORT" -q 1 -r -t "$1" -m "$3"
	else
		mosquitto_pub -V mqttv5 -h 127.0.0.1 -p "$PORT" -q 1 -t "$1" -m "$3"
	fi
}

# no pipelines into loops: dash runs the EXIT trap in the pipeline's subshell
awk -F'\t' '$2 == 1' "$TMP/plan" > "$TMP/retained"
awk -F'\t' '$2 == 0' "$TMP/plan" > "$TMP/events"
TAB=$(printf '\t')
while IFS="$TAB" read -r topic retain payload; do
	pub "$topic" "$retain" "$payload"
done < "$TMP/retained"
mosquitto_sub -V mqttv5 -h 127.0.0.1 -p "$PORT" -q 1 -v -t 'cradle/v1/#' -C "$TOTAL" -W 20 \
	> "$TMP/out.txt" 2> "$TMP/sub.err" &
SUB=$!
# the retained messages arrive first: once they are all there the subscription is live
i=0
until [ "$(wc -l < "$TMP/out.txt")" -ge "$RETAINED" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "retained messages not delivered"; cat "$TMP/sub.err"; exit 1; }
	sleep 0.1
done
while IFS="$TAB" read -r topic retain payload; do
	pub "$topic" "$retain" "$payload"
done < "$TMP/events"
# delete one device: an empty retained payload
DEL=$(awk -F'\t' '$2 == 1 && $1 ~ /\/state$/ {print $1; exit}' "$TMP/plan")
mosquitto_pub -V mqttv5 -h 127.0.0.1 -p "$PORT" -q 1 -r -t "$DEL" -n
wait "$SUB" || { echo "subscriber failed"; cat "$TMP/sub.err"; exit 1; }
SUB=

[ "$(wc -l < "$TMP/out.txt")" -eq "$TOTAL" ] || { echo "expected $TOTAL lines"; cat "$TMP/out.txt"; exit 1; }
# mosquitto_sub -v shows a zero-length payload as "(null)"
grep -qx "$DEL (null)" "$TMP/out.txt" || { echo "no delete line for $DEL"; exit 1; }
$PY "$SRC/tests/proto/validate.py" --with-topic "$SRC/proto/schema" "$TMP/out.txt"

# the deleted device is gone from the broker's retained store
mosquitto_sub -V mqttv5 -h 127.0.0.1 -p "$PORT" -v -t "$DEL" -W 1 > "$TMP/after.txt" 2>/dev/null || true
[ ! -s "$TMP/after.txt" ] || { echo "retained state survived the delete"; cat "$TMP/after.txt"; exit 1; }
echo "ok: $RETAINED retained + $EVENTS events + 1 delete through mosquitto"
