#!/usr/bin/env bash
# Installs what the project needs, at the versions pinned in scripts/versions.env and
# test/e2e/package-lock.json.
#
#   scripts/deps.sh run    what `make run` needs: Go only (a check)
#   scripts/deps.sh test   what `make test` needs: ffmpeg, GStreamer, Chromium, fonts, Node.js
#                          (only when missing), the npm packages of test/e2e, and the Go tools
#                          listed in GO_TOOLS in versions.env (into .tools/bin)
#   scripts/deps.sh run-cluster  what `make run-cluster` needs: Go, and nats-server (CLUSTER_TOOLS)
#
# Idempotent: when everything is present at the pinned versions it changes nothing, runs no
# apt-get update and makes no network call. Prints one line per thing it installs.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/versions.env
source "$ROOT/scripts/versions.env"

export DEBIAN_FRONTEND=noninteractive

say() { printf 'deps: %s\n' "$*"; }
warn() { printf 'deps: WARNING: %s\n' "$*" >&2; }
die() {
	printf 'deps: error: %s\n' "$*" >&2
	exit 1
}

# AS_ROOT is the prefix that runs a command as root: nothing when root, else sudo.
AS_ROOT=()
need_root() {
	if [[ $EUID -eq 0 ]]; then
		AS_ROOT=()
	elif command -v sudo >/dev/null 2>&1; then
		AS_ROOT=(sudo env DEBIAN_FRONTEND=noninteractive)
	else
		die "installing Debian packages needs root: run scripts/deps.sh as root, or install sudo"
	fi
}

# run_logged runs a command with its output in a log file, shown only when it fails.
run_logged() {
	local what=$1
	shift
	local log
	log=$(mktemp "${TMPDIR:-/tmp}/deps.XXXXXX")
	if ! "$@" >"$log" 2>&1; then
		tail -n 40 "$log" >&2
		die "$what failed (full log: $log)"
	fi
	rm -f "$log"
}

APT_UPDATED=0
apt_update_once() {
	if [[ $APT_UPDATED -eq 0 ]]; then
		need_root
		say "apt-get update"
		run_logged "apt-get update" "${AS_ROOT[@]}" apt-get update
		APT_UPDATED=1
	fi
}

# in_archive NAME VERSION tells whether the apt sources offer that version of a package.
in_archive() {
	apt-cache madison "$1" 2>/dev/null | awk -F'|' -v want="$2" '
		{ gsub(/ /, "", $2); if ($2 == want) found = 1 }
		END { exit !found }'
}

# install_debian NAME=VERSION... installs every package that is missing or older than its pin.
# A package newer than its pin is kept, with a warning.
install_debian() {
	local -a names=()
	local -A pin=() have=()
	local spec name version status
	for spec in "$@"; do
		name=${spec%%=*}
		pin[$name]=${spec#*=}
		names+=("$name")
	done

	while read -r name version status; do
		[[ $status == ii ]] && have[$name]=$version
	done < <(dpkg-query -W -f='${Package} ${Version} ${db:Status-Abbrev}\n' "${names[@]}" 2>/dev/null || true)

	local -a wanted=()
	for name in "${names[@]}"; do
		version=${have[$name]:-}
		if [[ -z $version ]] || dpkg --compare-versions "$version" lt "${pin[$name]}"; then
			wanted+=("$name")
		elif [[ $version != "${pin[$name]}" ]]; then
			warn "$name is at $version, newer than the pinned ${pin[$name]}: keeping it (update scripts/versions.env)"
		fi
	done
	[[ ${#wanted[@]} -gt 0 ]] || return 0

	apt_update_once
	local -a specs=() drifted=()
	local candidate
	for name in "${wanted[@]}"; do
		if in_archive "$name" "${pin[$name]}"; then
			specs+=("$name=${pin[$name]}")
			say "installing $name ${pin[$name]}"
		else
			candidate=$(apt-cache policy "$name" 2>/dev/null | awk '/Candidate:/ {print $2}')
			if [[ -z $candidate || $candidate == "(none)" ]]; then
				die "$name is not in the Debian archive: check the apt sources (/etc/apt/sources.list.d)"
			fi
			specs+=("$name=$candidate")
			drifted+=("$name")
			say "installing $name $candidate"
		fi
	done
	run_logged "apt-get install ${specs[*]}" "${AS_ROOT[@]}" apt-get install -y --no-install-recommends "${specs[@]}"

	for name in "${drifted[@]}"; do
		version=$(dpkg-query -W -f='${Version}' "$name" 2>/dev/null || echo unknown)
		warn "$name: the pinned version ${pin[$name]} is no longer in the Debian archive; installed $version instead (update scripts/versions.env)"
	done
}

# lines prints the non-empty, non-comment lines of a list variable.
lines() {
	local line
	while read -r line; do
		[[ -n $line && $line != \#* ]] && printf '%s\n' "$line"
	done <<<"$1"
}

ensure_go() {
	command -v go >/dev/null 2>&1 || die "Go is not installed: install the version go.mod names (https://go.dev/doc/install)"
}

ensure_debian_test_packages() {
	local -a specs
	mapfile -t specs < <(lines "$DEBIAN_TEST_PACKAGES")
	command -v node >/dev/null 2>&1 || specs+=("$DEBIAN_NODE_PACKAGE")
	command -v npm >/dev/null 2>&1 || specs+=("$DEBIAN_NPM_PACKAGE")
	install_debian "${specs[@]}"
}

# ensure_npm_packages installs test/e2e's npm packages with `npm ci` when package-lock.json
# changed since the last install (a stamp in node_modules holds its hash).
ensure_npm_packages() {
	local dir=$ROOT/test/e2e
	local stamp=$dir/node_modules/.deps-stamp
	local want
	want=$(cat "$dir/package.json" "$dir/package-lock.json" | sha256sum)
	want=${want%% *}
	if [[ -f $stamp && $(<"$stamp") == "$want" && -d $dir/node_modules/playwright-core ]]; then
		return 0
	fi

	local major
	major=$(node -p 'process.versions.node.split(".")[0]')
	if [[ $major -lt $NODE_MIN_MAJOR ]]; then
		warn "node $(node --version) is older than the v$NODE_MIN_MAJOR that playwright-core wants; the browser tests may fail"
	fi
	say "installing npm packages of test/e2e (npm ci)"
	run_logged "npm ci in test/e2e" npm --prefix "$dir" ci --no-audit --no-fund
	printf '%s\n' "$want" >"$stamp"
}

# go_tool NAME MODULE/PATH@VERSION installs a Go program into .tools/bin, unless that version
# is already there. NAME must be the binary's name.
go_tool() {
	local name=$1 spec=$2
	local bin=$ROOT/.tools/bin/$name
	local stamp=$ROOT/.tools/bin/.$name.version
	if [[ -x $bin && -f $stamp && $(<"$stamp") == "$spec" ]]; then
		return 0
	fi
	[[ $spec == *@v* || $spec == *@[0-9a-f]* ]] || die "Go tool $name: '$spec' has no exact @version"
	say "installing $name ($spec) into .tools/bin"
	mkdir -p "$ROOT/.tools/bin"
	run_logged "go install $spec" env GOBIN="$ROOT/.tools/bin" go install "$spec"
	[[ -x $bin ]] || die "go install $spec made no .tools/bin/$name: fix its NAME in scripts/versions.env"
	printf '%s\n' "$spec" >"$stamp"
}

ensure_go_tools() { # list of NAME=MODULE/PATH@VERSION lines
	local entry
	while read -r entry; do
		[[ -n $entry ]] || continue
		go_tool "${entry%%=*}" "${entry#*=}"
	done < <(lines "$1")
}

case "${1:-}" in
run)
	ensure_go
	;;
test)
	ensure_go
	ensure_debian_test_packages
	ensure_npm_packages
	ensure_go_tools "$GO_TOOLS"
	;;
run-cluster)
	ensure_go
	ensure_go_tools "$CLUSTER_TOOLS"
	;;
*)
	echo "usage: scripts/deps.sh run|run-cluster|test" >&2
	exit 2
	;;
esac
