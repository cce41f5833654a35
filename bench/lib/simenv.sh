# SPDX-License-Identifier: MIT
# simenv.sh: start and drive cradle-sim from the benchmarks' POSIX sh scripts.
#
# Why a shell copy stays: the benchmarks are shell by nature (hyperfine, xargs -P, /proc
# sampling of the simulator's pid) and need a simulator whose pid and address they hold across
# many commands. Tests never use this file: they use tests/lib/harness.py (Sim), the one
# harness; keep the two in step (ready line, control socket, clean exit status).
#
#   . "$SRC/bench/lib/simenv.sh"
#   trap sim_stop EXIT INT TERM          # always clean up (kills the simulator, removes SIM_DIR)
#   sim_start "$SIM_BIN" "$SCENARIO" [extra cradle-sim args...]
#   idevice_id -l                        # talks to the simulator through USBMUXD_SOCKET_ADDRESS
#   sim_ctl '{"op":"detach","udid":"..."}'   # prints the reply line; status 1 if "ok" is not true
#   sim_stop
#
# sim_start SIMBIN SCENARIO [ARGS...]
#   Starts SIMBIN --listen 127.0.0.1:0 --control unix:$SIM_DIR/control [--scenario SCENARIO] ARGS
#   (SCENARIO "" = no --scenario), waits at most SIM_START_TIMEOUT seconds (default 20) for the
#   "cradle-sim: ready usbmuxd=..." line and exports:
#     USBMUXD_SOCKET_ADDRESS  127.0.0.1:PORT (the port the simulator picked)
#     SIM_PORT                PORT
#     SIM_PID                 the simulator's pid
#     SIM_CONTROL             path of the control socket
#     SIM_DIR                 a private temp dir (mktemp -d); stdout in $SIM_DIR/out, stderr in
#                             $SIM_DIR/err; put your own scratch files here, sim_stop removes it
#   Returns 1 (after printing the simulator's stderr) if it exits or is not ready in time.
# sim_ctl JSON
#   Sends one request line on the control socket (10 s timeout), prints the reply line.
# sim_stop
#   SIGTERM, then SIGKILL after 5 s; removes SIM_DIR. Idempotent, safe in a trap. Sets
#   SIM_STATUS to the simulator's exit status (0 after a clean SIGTERM; a sanitizer report or
#   crash makes it non-zero, so tests can check `sim_stop; [ "$SIM_STATUS" -eq 0 ]`).
# SIM_PYTHON overrides the Python used by sim_ctl (default /usr/bin/python3).

SIM_PYTHON=${SIM_PYTHON:-/usr/bin/python3}

sim_start() {
	_sim_bin=$1
	_sim_scn=$2
	shift 2
	SIM_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cradle-sim.XXXXXX")
	SIM_CONTROL=$SIM_DIR/control
	export SIM_DIR SIM_CONTROL
	if [ -n "$_sim_scn" ]; then
		set -- --scenario "$_sim_scn" "$@"
	fi
	"$_sim_bin" --listen 127.0.0.1:0 --control "unix:$SIM_CONTROL" "$@" \
		>"$SIM_DIR/out" 2>"$SIM_DIR/err" &
	SIM_PID=$!
	export SIM_PID
	_sim_deadline=$(( $(date +%s) + ${SIM_START_TIMEOUT:-20} ))
	while :; do
		_sim_line=$(grep -m1 '^cradle-sim: ready ' "$SIM_DIR/out" 2>/dev/null || true)
		[ -n "$_sim_line" ] && break
		if ! kill -0 "$SIM_PID" 2>/dev/null; then
			echo "simenv: cradle-sim exited before ready:" >&2
			cat "$SIM_DIR/err" >&2
			return 1
		fi
		if [ "$(date +%s)" -ge "$_sim_deadline" ]; then
			echo "simenv: cradle-sim not ready in time:" >&2
			cat "$SIM_DIR/err" >&2
			return 1
		fi
		sleep 0.05
	done
	# "cradle-sim: ready usbmuxd=127.0.0.1:PORT[,more] control=PATH": take the first TCP address
	_sim_mux=${_sim_line#*usbmuxd=}
	_sim_mux=${_sim_mux%% *}
	_sim_mux=${_sim_mux%%,*}
	USBMUXD_SOCKET_ADDRESS=$_sim_mux
	SIM_PORT=${_sim_mux##*:}
	export USBMUXD_SOCKET_ADDRESS SIM_PORT
	return 0
}

sim_ctl() {
	"$SIM_PYTHON" - "$SIM_CONTROL" "$1" <<'PYEOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rwb")
f.write(sys.argv[2].encode() + b"\n")
f.flush()
line = f.readline().decode()
sys.stdout.write(line if line.endswith("\n") else line + "\n")
try:
    ok = json.loads(line).get("ok") is True
except ValueError:
    ok = False
sys.exit(0 if ok else 1)
PYEOF
}

sim_stop() {
	if [ -n "${SIM_PID:-}" ]; then
		kill "$SIM_PID" 2>/dev/null || true
		_sim_i=0
		while kill -0 "$SIM_PID" 2>/dev/null && [ $_sim_i -lt 100 ]; do
			sleep 0.05
			_sim_i=$((_sim_i + 1))
		done
		kill -9 "$SIM_PID" 2>/dev/null || true
		SIM_STATUS=0
		wait "$SIM_PID" 2>/dev/null || SIM_STATUS=$?
		export SIM_STATUS
		SIM_PID=
	fi
	if [ -n "${SIM_DIR:-}" ]; then
		rm -rf "$SIM_DIR"
		SIM_DIR=
	fi
}
