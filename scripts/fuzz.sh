#!/usr/bin/env bash
# Runs every Go fuzz target in the module briefly (default 5s each), seeded
# from its committed corpus under testdata/fuzz.
#
# Go 1.26's fuzz coordinator can end a run at its own -fuzztime deadline with a
# bare "context deadline exceeded" and no failing input when the machine is
# busy (golang/go#75804, fixed in Go 1.27). Such a run is tried again, up to
# three times; a run that found an input (or panicked) fails at once.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${1:-5s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

bare_deadline() {
	grep -q 'context deadline exceeded' "$log" && ! grep -q -e 'Failing input written' -e 'panic:' "$log"
}

for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	grep -lq '^func Fuzz' "$dir"/*_test.go 2>/dev/null || continue
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "fuzz: $pkg $target ($fuzztime)"
		for attempt in 1 2 3; do
			if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >"$log" 2>&1; then
				break
			fi
			if bare_deadline && [ "$attempt" -lt 3 ]; then
				echo "fuzz: $target stopped at the fuzzing engine's deadline with no failing input (golang/go#75804); running it again"
				continue
			fi
			cat "$log"
			echo "fuzz: $target failed; a failing input, if one was found, is saved under $dir/testdata/fuzz/$target" >&2
			exit 1
		done
	done
done
