#!/bin/sh
# bench/jobs/run --quick (1 000 phones across 20 agents, broker Receive Maximum 1000) completes on
# this build: the dry run counts every phone, the load generator receives and decodes every
# command, every execution succeeds and the job completes. Speed is not asserted: the bench's table
# says PASS/MISS, and a loaded CI machine must not turn a figure into a failure.
# usage: bench_jobs_quick_test.sh SOURCE_DIR BUILD_DIR
set -eu
SRC=$1
BUILD=$2
"$SRC/bench/jobs/run" --quick --broker-inflight 1000 "$BUILD"
RES=$BUILD/bench/jobs/latest-quick-inflight1000.txt
grep -q '^| dry run | 1000 phones, 20 agents | |$' "$RES" ||
	{ echo "FAIL: the dry run did not count 1000 phones on 20 agents" >&2; exit 1; }
grep -q '^| every execution dispatched (1000 commands received, 0 undecodable) | ' "$RES" ||
	{ echo "FAIL: not every command was received and decoded" >&2; exit 1; }
grep -q '^| every result recorded (job completed, 1000 succeeded) |' "$RES" ||
	{ echo "FAIL: the job did not complete with 1000 succeeded" >&2; exit 1; }
grep -q '^| execution states | succeeded 1000 | all succeeded |$' "$RES" ||
	{ echo "FAIL: executions in other states" >&2; exit 1; }
echo "ok bench/jobs --quick"
