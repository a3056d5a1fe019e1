#!/usr/bin/env bash
# Runs every Go fuzz target in the module briefly (default 5s each), seeded
# from its committed corpus under testdata/fuzz, and prints how many inputs
# each target ran.
#
# Usage: scripts/fuzz.sh [fuzztime] [minimizetime]
#
# When a worker finds an input that adds coverage, it minimises it before
# fuzzing on, for up to -fuzzminimizetime (Go's default is 60s). The first
# inputs a fresh fuzz cache finds derive from the multi-kilobyte seeds
# (recorder segments, ingest access units), so minimising them took the
# whole of a short run. Minimisation is bounded to minimizetime (default
# 1000x: calls of the fuzz function, per input); it applies to failing inputs
# too, so a failure found here may be larger than a long run would leave it.
#
# Go 1.26's fuzz coordinator can end a run at its own -fuzztime deadline with a
# bare "context deadline exceeded" and no failing input when the machine is
# busy (golang/go#75804, fixed in Go 1.27). Such a run is tried again, up to
# three times; a run that found an input (or panicked) fails at once.
#
# The targets run in two lanes at once, each fuzzing with one worker: a target's
# start (build check, baseline coverage of its corpus) in one lane overlaps the
# other lane's fuzzing, which keeps a 2-core machine busy.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${1:-5s}
minimizetime=${2:-${FUZZMINIMIZETIME:-1000x}}
lanes=2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
module=$(go list -m)

bare_deadline() {
	grep -q 'context deadline exceeded' "$1" && ! grep -q -e 'Failing input written' -e 'panic:' "$1"
}

# executions prints the fuzzing engine's last report in log $1 as
# "<execs, with thousands separators> execs in <elapsed>".
executions() {
	sed -n 's/^fuzz: elapsed: \([^,]*\), execs: \([0-9]*\) .*/\2 \1/p' "$1" | tail -n 1 |
		while read -r execs elapsed; do
			echo "$(echo "$execs" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta') execs in $elapsed"
		done
}

# The targets ("package dir target" lines) are read from the test files (building and
# running each package's tests only to list them cost a minute of CI).
targets=()
while read -r pkg dir; do
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$dir"/*_test.go 2>/dev/null | sort); do
		targets+=("$pkg $dir $target")
	done
done < <(go list -f '{{.ImportPath}} {{.Dir}}' ./...)

# fuzz_for fuzzes target $4 of package $1 (in directory $2) for $3, logging to $5; a run that
# stopped at the engine's own deadline with no failing input is tried again, up to three
# times. On a failure it prints the log and returns 1.
fuzz_for() {
	local pkg=$1 dir=$2 time=$3 target=$4 log=$5 attempt
	for attempt in 1 2 3; do
		if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" -fuzzminimizetime "$minimizetime" -parallel 1 "$pkg" >"$log" 2>&1; then
			return 0
		fi
		if bare_deadline "$log" && [ "$attempt" -lt 3 ]; then
			echo "fuzz: $target stopped at the fuzzing engine's deadline with no failing input (golang/go#75804); running it again"
			continue
		fi
		cat "$log"
		if grep -q '\[build failed\]' "$log"; then
			echo "fuzz: $pkg does not build; fix the errors above and run again" >&2
		else
			echo "fuzz: $target failed; a failing input, if one was found, is saved under $dir/testdata/fuzz/$target" >&2
		fi
		return 1
	done
}

# lane runs every lanes-th target from the n-th; it prints each one's progress, appends its
# summary line to $work/summary.n, and on a failure exits 1.
lane() {
	local n=$1 i pkg dir target name ran factor longer log=$work/log.$1
	for ((i = n; i < ${#targets[@]}; i += lanes)); do
		read -r pkg dir target <<<"${targets[i]}"
		name="${pkg#"$module"/} $target"
		echo "fuzz: $name ($fuzztime, minimising each new input for at most $minimizetime)"
		fuzz_for "$pkg" "$dir" "$fuzztime" "$target" "$log" || return 1
		ran=$(executions "$log")
		# a run that spent all its time on the baseline over its corpus (the committed
		# seeds and what earlier runs found, kept in the Go cache) fuzzed nothing:
		# it runs again, longer
		for factor in 3 9; do
			[ -z "$ran" ] && [[ $fuzztime =~ ^([0-9]+)s$ ]] || break
			longer=$((BASH_REMATCH[1] * factor))s
			echo "fuzz: $target spent its run on its corpus's baseline; running it again for $longer"
			fuzz_for "$pkg" "$dir" "$longer" "$target" "$log" || return 1
			ran=$(executions "$log")
		done
		echo "fuzz: $name: ${ran:-no execution count reported}" | tee -a "$work/summary.$n"
	done
}

pids=()
for ((n = 0; n < lanes; n++)); do
	lane "$n" &
	pids+=($!)
done
failed=0
for pid in "${pids[@]}"; do
	wait "$pid" || failed=1
done
if [ "$failed" -ne 0 ]; then
	echo "fuzz: a target failed; see above" >&2
	exit 1
fi
echo "fuzz: summary (${#targets[@]} targets)"
cat "$work"/summary.* | sort
