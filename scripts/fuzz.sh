#!/usr/bin/env bash
# Runs every Go fuzz target in the module briefly (default 5s each), seeded
# from its committed corpus under testdata/fuzz.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fuzztime=${1:-5s}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	grep -lq '^func Fuzz' "$dir"/*_test.go 2>/dev/null || continue
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "fuzz: $pkg $target ($fuzztime)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/fuzz.$$.log 2>&1 || {
			cat /tmp/fuzz.$$.log
			rm -f /tmp/fuzz.$$.log
			echo "fuzz: $target found a failing input; it is saved under $dir/testdata/fuzz/$target" >&2
			exit 1
		}
	done
done
rm -f /tmp/fuzz.$$.log
