#!/bin/sh
# common/banned.h is in force: building banned_probe.c (a target that links project_warnings,
# like every project target) must fail, and fail on each banned function by name, not on
# something else. usage: style_banned.sh BUILD_DIR TARGET
set -u
out=$(cmake --build "$1" --target "$2" 2>&1)
if [ $? -eq 0 ]; then
	echo "FAIL: $2 compiled: common/banned.h is not force-included"
	exit 1
fi
fails=0
for f in strcpy strcat strncpy strncat sprintf vsprintf strtok gmtime localtime ctime asctime \
	mktemp; do
	if ! printf '%s\n' "$out" | grep -q "sorry_${f}_is_a_banned_function"; then
		echo "FAIL: no compile error for $f"
		fails=$((fails + 1))
	fi
done
if [ $fails -ne 0 ]; then
	printf '%s\n' "$out" | tail -n 40
	exit 1
fi
echo "ok: every banned function is a compile error"
