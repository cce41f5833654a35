#!/bin/sh
# cradle-agent configuration errors: a malformed config is refused with FILE:LINE and a
# non-zero exit, before anything starts; --test-config accepts a good one and exits 0.
# Shell on purpose: each case is the command line an admin types and the message they read; no
# process outlives a case, so there is nothing for tests/lib/harness.py to manage.
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

# issue 8 item 11: a secret is never echoed, the scheme decides TLS, a FIFO does not hang
expect_error password-typo "agent_id st-1
mqtt_password=hunter2" "password-typo.conf:2: 'mqtt_password': write 'KEY VALUE'"
grep -q hunter2 "$T/err" && fail "password-typo: the password was echoed"
expect_error not-a-config 'root:$y$j9T$topsecret:19000:0:99999:7:::' "not-a-config.conf:1: not a"
grep -q topsecret "$T/err" && fail "not-a-config: the line was echoed"
expect_error plaintext-with-ca "agent_id st-1
broker_url tcp://127.0.0.1:1883
mqtt_cafile /etc/ssl/certs/ca-certificates.crt" "broker_url is plaintext"
expect_error ftp-url "agent_id st-1
broker_url ftp://127.0.0.1:21" "broker_url: want"
mkfifo "$T/fifo.conf"
if timeout 5 "$AGENT" -c "$T/fifo.conf" --test-config 2>"$T/err"; then
	fail "FIFO accepted"
fi
grep -q "not a regular file" "$T/err" || fail "FIFO: $(cat "$T/err")"
echo "ok: fifo -> $(head -n 1 "$T/err")"

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

# the command line: flags in any order, and usage errors exit 2 with a message
GOOD="$SRC/packaging/conf/cradle-agent.conf.example"
"$AGENT" --test-config -c "$GOOD" >"$T/out" || fail "--test-config before -c refused"
grep -q "configuration ok" "$T/out" || fail "--test-config -c: $(cat "$T/out")"
"$AGENT" --dump-config --agent-id st-order -c "$GOOD" >"$T/out" || fail "--dump-config refused"
grep -q "^agent_id st-order" "$T/out" || fail "--agent-id before -c ignored: $(head -n 3 "$T/out")"
# --once wherever it stands: usbmuxd is absent here, so --once prints nothing and exits 0 (the
# daemon would keep running: the timeout tells them apart)
for order in "-c $T/once.conf --once" "--once -c $T/once.conf"; do
	printf 'agent_id st-1\n' >"$T/once.conf"
	# shellcheck disable=SC2086 # the words of $order are the arguments
	USBMUXD_SOCKET_ADDRESS=127.0.0.1:1 timeout 10 "$AGENT" $order >"$T/out" 2>"$T/err" ||
		fail "'$order' exited $?: $(cat "$T/err")"
	grep -q "usbmuxd is not running" "$T/err" || fail "'$order' did not run --once: $(cat "$T/err")"
	echo "ok: $order"
done
# a bad config is found by --once too, whatever the order
for order in "-c $T/once.conf --once" "--once -c $T/once.conf"; do
	printf 'agent_id st-1\ncolour blue\n' >"$T/once.conf"
	set +e
	# shellcheck disable=SC2086
	"$AGENT" $order >/dev/null 2>"$T/err"
	rc=$?
	set -e
	[ "$rc" -eq 1 ] || fail "'$order' with a bad config: status $rc"
	grep -q "once.conf:2" "$T/err" || fail "'$order': $(cat "$T/err")"
done

expect_usage() { # expected text in stderr, then the arguments
	want=$1
	shift
	set +e
	"$AGENT" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	set -e
	[ "$rc" -eq 2 ] || fail "'$*': status $rc, expected 2 ($(cat "$T/err"))"
	grep -q -- "$want" "$T/err" || fail "'$*': expected '$want' in: $(cat "$T/err")"
	grep -q "^usage:" "$T/err" || fail "'$*': no usage on stderr"
	echo "ok: '$*' -> $(head -n 1 "$T/err")"
}
expect_usage "unknown option '--colour'" -c "$GOOD" --colour blue
expect_usage "unknown option '-x'" -x -c "$GOOD"
expect_usage "option '-c' needs a value" --test-config -c
expect_usage "option '--broker' needs a value" -c "$GOOD" --broker
expect_usage "option '--udid' needs a value" --once --udid
expect_usage "--broker is not an option of --once" --once --broker tcp://h:1
expect_usage "--udid is an option of --once only" -c "$GOOD" --udid X
expect_usage "unexpected argument 'extra'" -c "$GOOD" extra
expect_usage "'send' must be the first argument" -c "$GOOD" send
expect_usage "--concurrency: expected" --once --concurrency 0
"$AGENT" --help | grep -q "^usage:" || fail "--help"

# without -c the daemon reads the installed layout's file (checked, never started here): the
# answer names it, whether this host has it (configuration ok) or not (cannot read)
set +e
"$AGENT" --test-config >"$T/out" 2>"$T/err"
set -e
grep -q "/etc/cradle/cradle-agent.conf" "$T/out" "$T/err" ||
	fail "--test-config without -c: /etc/cradle/cradle-agent.conf not named: $(cat "$T/out" "$T/err")"
echo "ok: --test-config without -c -> $(cat "$T/out" "$T/err" | head -n 1)"
