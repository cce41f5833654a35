#!/bin/bash
# SPDX-License-Identifier: MIT
# sim-include-graph: cradle-sim's modules must form no cycle, and the model (sim.c) must stay
# the one thing the mux half and the device half share (sim/README.md, "Modules").
#
# Two graphs, one node per module (foo.c and foo.h are module foo):
#  - includes: the #include "..." lines of sim/*.c and sim/*.h that name a header in sim/;
#  - symbols: which object of libsim.a uses a function or table another one defines (catches a
#    dependency through an extern declared in a shared header, e.g. the svc_* tables in svc.h).
# Each is checked with tsort(1) for cycles, then for the layering:
#  - the model (sim) reaches nothing but pairrec;
#  - the mux half (mux) reaches no module of the device half;
#  - the device half (devport, lockdown, crypto, svc, svc_*) reaches no module of the mux half
#    or of the drivers around the model (mux, control, timeline, scenario, generate, main).
#
# usage: test_include_graph.sh SIM_SOURCE_DIR LIBSIM_A
set -euo pipefail

if [ $# -ne 2 ] || [ ! -d "$1" ] || [ ! -f "$2" ]; then
	echo "usage: $0 SIM_SOURCE_DIR LIBSIM_A" >&2
	exit 2
fi
src=$1
lib=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# include edges: "from to"
for f in "$src"/*.c "$src"/*.h; do
	m=$(basename "$f")
	m=${m%.*}
	sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"/]*\)\.h".*/\1/p' "$f" |
		while read -r d; do
			if [ "$d" != "$m" ] && [ -f "$src/$d.h" ]; then
				echo "$m $d"
			fi
		done
done | sort -u >"$tmp/includes"

# symbol edges: a global symbol undefined in one object and defined in another
nm -A "$lib" 2>/dev/null |
	sed -n 's/^[^:]*:\([^:]*\)\.c\.o: *[0-9a-f]* *\([A-Za-z]\) \(.*\)$/\1 \2 \3/p' >"$tmp/nm"
awk '$2 ~ /^[TDRBC]$/ { def[$3] = $1 }
     $2 == "U" { use[NR] = $1 " " $3 }
     END { for (i in use) { split(use[i], a, " "); if ((a[2] in def) && def[a[2]] != a[1])
             print a[1], def[a[2]] } }' "$tmp/nm" | sort -u >"$tmp/symbols"

if [ ! -s "$tmp/includes" ] || [ ! -s "$tmp/symbols" ]; then
	echo "FAIL: no edges found in $src or $lib" >&2
	exit 1
fi

# Everything reachable from module $2 in edge file $1, one per line.
reach() {
	local edges=$1 seen=" $2 " todo=$2 next n
	while [ -n "$todo" ]; do
		next=
		for n in $todo; do
			# shellcheck disable=SC2013 # module names are single words
			for d in $(awk -v n="$n" '$1 == n { print $2 }' "$edges"); do
				case "$seen" in *" $d "*) ;; *)
					seen="$seen$d "
					next="$next $d"
					;;
				esac
			done
		done
		todo=$next
	done
	for n in $seen; do
		[ "$n" != "$2" ] && echo "$n"
	done
	return 0
}

# forbid EDGES KIND FROM PATTERN: FROM must reach no module matching the extended regex.
forbid() {
	local bad
	bad=$(reach "$1" "$3" | grep -E "^($4)\$" | tr '\n' ' ' || true)
	if [ -n "$bad" ]; then
		echo "FAIL ($2): $3 depends on $bad" >&2
		fail=1
	fi
}

device_half='devport|lockdown|crypto|svc|svc_[a-z0-9_]+'
mux_side='mux|control|timeline|scenario|generate|main'
for kind in includes symbols; do
	edges=$tmp/$kind
	if ! tsort "$edges" >/dev/null 2>"$tmp/tsort.err"; then
		echo "FAIL ($kind): cycle in sim/" >&2
		cat "$tmp/tsort.err" >&2
		fail=1
	fi
	model=$(reach "$edges" sim | grep -vx pairrec | tr '\n' ' ' || true)
	if [ -n "$model" ]; then
		echo "FAIL ($kind): the model (sim) depends on $model" >&2
		fail=1
	fi
	forbid "$edges" "$kind" mux "$device_half"
	for m in $(cut -d' ' -f1 "$edges" | sort -u | grep -E "^($device_half)\$" || true); do
		forbid "$edges" "$kind" "$m" "$mux_side"
	done
	echo "$kind: $(wc -l <"$edges") edges"
done
if [ "$fail" -ne 0 ]; then
	echo "--- include edges" >&2
	cat "$tmp/includes" >&2
	echo "--- symbol edges" >&2
	cat "$tmp/symbols" >&2
	exit 1
fi
echo "sim-include-graph: no cycle; model, mux half and device half layered"
