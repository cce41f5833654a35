#!/bin/sh
# Malformed scenarios are refused with exit status 2 and a message naming the JSON path;
# nothing is served (no ready line). Usage: test_scenario_errors.sh CRADLE_SIM
# Shell on purpose: every case is one command line, an exit status and a line of stderr, and a
# table of those reads best as the commands an admin would type; no simulator is left running.
set -eu
SIM=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT INT TERM
fails=0
n=0

# expect NAME 'JSON' 'substring of the error'
expect() {
	n=$((n + 1))
	printf '%s' "$2" >"$T/$1.json"
	rc=0
	timeout 20 "$SIM" --listen 127.0.0.1:0 --scenario "$T/$1.json" >"$T/out" 2>"$T/err" || rc=$?
	if [ "$rc" -ne 2 ]; then
		echo "FAIL $1: exit $rc, expected 2"; fails=$((fails + 1)); return 0
	fi
	if ! grep -qF -- "$3" "$T/err"; then
		echo "FAIL $1: stderr lacks '$3':"; cat "$T/err"; fails=$((fails + 1)); return 0
	fi
	if grep -q ready "$T/out"; then
		echo "FAIL $1: printed a ready line"; fails=$((fails + 1)); return 0
	fi
	echo "ok $1: $(head -n 1 "$T/err")"
}

U='"udid":"00008110001A2B3C4D5E0001"'
expect wrong_type '{"devices":[{"udid":"00008110001A2B3C4D5E0000"},{"udid":"00008110001A2B3C4D5E0002"},{"udid":"00008110001A2B3C4D5E0003"},{'"$U"',"values":{"com.apple.mobile.backup":{"LastCloudBackupDate":"2025-01-01"}}}]}' \
	'scenario: devices[3].values["com.apple.mobile.backup"].LastCloudBackupDate: expected integer'
expect bool_type '{"devices":[{'"$U"',"values":{"com.apple.mobile.battery":{"ExternalConnected":"yes"}}}]}' \
	'devices[0].values["com.apple.mobile.battery"].ExternalConnected: expected boolean'
expect root_type '{"devices":[{'"$U"',"values":{"":{"ProductVersion":17}}}]}' \
	'devices[0].values[""].ProductVersion: expected string'
expect nested '{"devices":[{'"$U"',"values":{"x":{"A":[1,{"bad key":null}]}}}]}' \
	'devices[0].values["x"].A[1]["bad key"]: null is not a plist value'
expect bad_date '{"devices":[{'"$U"',"values":{"x":{"D":{"$date":"yesterday"}}}}]}' \
	'devices[0].values["x"].D: $date: expected an RFC 3339 string'
expect bad_data '{"devices":[{'"$U"',"values":{"x":{"D":{"$data":"!!!"}}}}]}' \
	'devices[0].values["x"].D: $data: expected a base64 string'
expect bad_udid '{"devices":[{"udid":"not-a-udid"}]}' 'devices[0].udid: expected'
expect missing_udid '{"devices":[{'"$U"'},{"pairing":"paired"}]}' 'devices[1].udid: missing'
expect dup_udid '{"devices":[{'"$U"'},{"udid":"00008110-001A2B3C4D5E0001"}]}' 'devices[1].udid: duplicate'
expect bad_pairing '{"devices":[{'"$U"',"pairing":"maybe"}]}' 'devices[0].pairing: expected one of'
expect unknown_key '{"devices":[{'"$U"',"colour":"red"}]}' 'devices[0].colour: unknown key'
expect backup_type '{"devices":[{'"$U"',"backup":{"error_code":"208"}}]}' 'devices[0].backup.error_code: expected integer'
expect syslog_type '{"devices":[{'"$U"',"syslog":["a",2]}]}' 'devices[0].syslog[1]: expected string'
expect timeline_op '{"devices":[{'"$U"',"timeline":[{"at_ms":1,"op":"attach"},{"at_ms":5,"op":"explode"}]}]}' \
	'devices[0].timeline[1].op: expected one of set, attach, detach, pairing'
expect timeline_at '{"devices":[{'"$U"',"timeline":[{"op":"detach"}]}]}' 'devices[0].timeline[0].at_ms: missing'
expect time_scale '{"time_scale":0.5,"devices":[]}' 'time_scale: expected a number from 1 to 3600'
expect time_scale_type '{"time_scale":"fast","devices":[]}' 'time_scale: expected a number'
expect syslog_both '{"devices":[{'"$U"',"timeline":[{"at_ms":1,"op":"syslog","line":"a","message":"b","process":"p"}]}]}' \
	'devices[0].timeline[0]: syslog: expected either line or process and message'
expect syslog_none '{"devices":[{'"$U"',"timeline":[{"at_ms":1,"op":"syslog"}]}]}' \
	'devices[0].timeline[0]: syslog: expected either line or process and message'
expect syslog_noproc '{"devices":[{'"$U"',"timeline":[{"at_ms":1,"op":"syslog","message":"m"}]}]}' \
	'devices[0].timeline[0].process: missing'
expect now_bool '{"devices":[{'"$U"',"timeline":[{"at_ms":1,"op":"set","domain":"com.apple.mobile.backup","key":"CloudBackupEnabled","value":{"$now":0}}]}]}' \
	'devices[0].timeline[0].value: expected boolean'
expect now_range '{"devices":[{'"$U"',"values":{"x":{"T":{"$now":99999999999}}}}]}' \
	'devices[0].values["x"].T: $now: expected seconds'
expect refuse_type '{"devices":[{'"$U"',"refuse_services":["com.apple.mobile.notification_proxy",7]}]}' \
	'devices[0].refuse_services[1]: expected a service name'
expect no_devices '{"phones":[]}' 'phones: unknown key'
expect not_array '{"devices":{}}' 'devices: expected array'
expect bad_json '{"devices":[' 'invalid JSON'
expect not_object '[1,2]' 'expected object'
expect empty_file '' 'invalid JSON'
rc=0
timeout 10 "$SIM" --listen 127.0.0.1:0 --scenario "$T/nope.json" 2>"$T/err" >/dev/null || rc=$?
[ "$rc" -eq 2 ] && grep -q 'nope.json' "$T/err" || { echo "FAIL missing file: rc $rc"; fails=$((fails + 1)); }
rc=0
timeout 10 "$SIM" --listen 127.0.0.1:0 --generate 99999999 2>/dev/null >/dev/null || rc=$?
[ "$rc" -eq 2 ] || { echo "FAIL --generate too large: rc $rc"; fails=$((fails + 1)); }
rc=0
timeout 10 "$SIM" 2>/dev/null >/dev/null || rc=$?
[ "$rc" -eq 2 ] || { echo "FAIL no --listen: rc $rc"; fails=$((fails + 1)); }

echo "$n scenario cases, $fails failures"
[ "$fails" -eq 0 ]
