#!/bin/sh
# cradle-agent configuration errors: a malformed config is refused with FILE:LINE and a
# non-zero exit, before anything starts; --test-config accepts a good one and exits 0.
set -eu
AGENT=$1
SRC=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

expect_error() { # name, file contents, expected text in stderr
	printf '%s\n' "$2" >"$T/$1.conf"
	if "$AGENT" -c "$T/$1.conf" --test-config >"$T/out" 2>"$T/err"; then
		fail "$1: accepted"
	fi
	grep -q -- "$3" "$T/err" || fail "$1: expected '$3' in: $(cat "$T/err")"
	echo "ok: $1 -> $(head -n 1 "$T/err")"
}

expect_error unknown-key "agent_id st-1
colour blue" "unknown-key.conf:2"
expect_error bad-duration "agent_id st-1
stale_after 72 hours" "bad-duration.conf:2"
expect_error bad-agent-id "agent_id ST/1" "bad-agent-id.conf:1"
expect_error missing-agent-id "probe_interval 5m" "agent_id"
expect_error not-a-number "agent_id st-1
probe_concurrency lots" "not-a-number.conf:2"
# a command key that is not one (cut short here) names its line and item
expect_error bad-command-key "agent_id st-1
command_keys 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=, 11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcH" \
	"bad-command-key.conf:2: 'command_keys': item 2 .* is not an Ed25519 public key"

# a file that does not exist: a clear error, not a crash
if "$AGENT" -c "$T/missing.conf" --test-config 2>"$T/err"; then
	fail "missing file accepted"
fi
grep -q "missing.conf" "$T/err" || fail "missing file: $(cat "$T/err")"

# the shipped example is valid
"$AGENT" -c "$SRC/packaging/conf/cradle-agent.conf.example" --test-config >/dev/null ||
	fail "the example config is refused"
# a malformed config stops the daemon too (not only --test-config), with status 1
printf 'agent_id st-1\nbroker_url\n' >"$T/daemon.conf"
set +e
"$AGENT" -c "$T/daemon.conf" 2>"$T/err"
rc=$?
set -e
[ "$rc" -ne 0 ] || fail "daemon started with a bad config"
echo "ok: daemon refuses a bad config with status $rc: $(head -n 1 "$T/err")"
