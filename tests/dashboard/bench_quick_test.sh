#!/bin/sh
# bench/dashboard/run --quick (5 000 phones across 100 agent ids) completes on this build: the
# dashboard stores every phone, loses and rejects nothing, exits 0 on SIGTERM, and meets the
# targets with a wide margin at this size (ingest >= 0.5x mosquitto_sub, list p95 <= 100 ms).
# usage: bench_quick_test.sh SOURCE_DIR BUILD_DIR
set -eu
SRC=$1
BUILD=$2
"$SRC/bench/dashboard/run" --quick "$BUILD"
RES=$BUILD/bench/dashboard/latest-quick.txt
grep -q '^| ingest ratio dashboard / mosquitto_sub | [0-9.]* | >= 0.5: PASS |$' "$RES" ||
	{ echo "FAIL: ingest ratio below 0.5" >&2; exit 1; }
grep -q 'p95 [0-9.]* ms, max [0-9.]* ms | <= 100 ms: PASS |$' "$RES" ||
	{ echo "FAIL: device list p95 above 100 ms" >&2; exit 1; }
grep -q 'HTTP 200: total 5000, ingest messages 5200, malformed 0, duplicates 0, lost 0 ' "$RES" ||
	{ echo "FAIL: the summary does not show 5000 phones and a clean ingest" >&2; exit 1; }
echo "ok bench/dashboard --quick"
