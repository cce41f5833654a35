#!/bin/sh
# bench/dashboard/run --quick (5 000 phones across 100 agent ids) completes on this build: the
# dashboard stores every phone, loses and rejects nothing, and exits 0 on SIGTERM. Speed is not
# asserted here: the figures are measured side by side by the bench itself and a loaded CI
# machine must not turn them into a failure (the run's table says PASS/MISS per target).
# usage: bench_quick_test.sh SOURCE_DIR BUILD_DIR
set -eu
SRC=$1
BUILD=$2
"$SRC/bench/dashboard/run" --quick "$BUILD"
RES=$BUILD/bench/dashboard/latest-quick.txt
grep -q '^| ingest ratio dashboard / mosquitto_sub | [0-9.]* |' "$RES" ||
	{ echo "FAIL: no ingest ratio in the result" >&2; exit 1; }
grep -q 'HTTP 200: total 5000, ingest messages 5200, malformed 0, duplicates 0, lost 0 ' "$RES" ||
	{ echo "FAIL: the summary does not show 5000 phones and a clean ingest" >&2; exit 1; }
echo "ok bench/dashboard --quick"
