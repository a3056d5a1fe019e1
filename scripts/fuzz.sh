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
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${1:-5s}
minimizetime=${2:-${FUZZMINIMIZETIME:-1000x}}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
module=$(go list -m)
summary=()

bare_deadline() {
	grep -q 'context deadline exceeded' "$log" && ! grep -q -e 'Failing input written' -e 'panic:' "$log"
}

# executions prints the fuzzing engine's last report in $log as
# "<execs, with thousands separators> execs in <elapsed>".
executions() {
	sed -n 's/^fuzz: elapsed: \([^,]*\), execs: \([0-9]*\) .*/\2 \1/p' "$log" | tail -n 1 |
		while read -r execs elapsed; do
			echo "$(echo "$execs" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta') execs in $elapsed"
		done
}

# The targets are read from the test files (building and running each package's tests
# only to list them cost a minute of CI).
while read -r pkg dir; do
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$dir"/*_test.go 2>/dev/null | sort); do
		name="${pkg#"$module"/} $target"
		echo "fuzz: $name ($fuzztime, minimising each new input for at most $minimizetime)"
		for attempt in 1 2 3; do
			if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimizetime" "$pkg" >"$log" 2>&1; then
				break
			fi
			if bare_deadline && [ "$attempt" -lt 3 ]; then
				echo "fuzz: $target stopped at the fuzzing engine's deadline with no failing input (golang/go#75804); running it again"
				continue
			fi
			cat "$log"
			if grep -q '\[build failed\]' "$log"; then
				echo "fuzz: $pkg does not build; fix the errors above and run again" >&2
			else
				echo "fuzz: $target failed; a failing input, if one was found, is saved under $dir/testdata/fuzz/$target" >&2
			fi
			exit 1
		done
		ran=$(executions)
		line="fuzz: $name: ${ran:-no execution count reported}"
		echo "$line"
		summary+=("$line")
	done
done < <(go list -f '{{.ImportPath}} {{.Dir}}' ./...)
echo "fuzz: summary"
printf '%s\n' "${summary[@]}"
