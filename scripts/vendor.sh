#!/usr/bin/env bash
# Vendors the browser libraries the web console serves as they are, with no build step: the
# copies under web/console/static/vendor/ are committed, so the SFU embeds them and the console
# needs no network.
#
#   scripts/vendor.sh          fetch each pinned package with npm, check its integrity against
#                              the pin below, and copy its files into web/console/static/vendor/
#   scripts/vendor.sh check    check, with no network, that the committed copies are what the
#                              last fetch wrote (the SHA256SUMS beside them)
#
# Leaflet (BSD-2-Clause): the map page's map. Only leaflet.js, leaflet.css, their images and
# the licence are copied. To move to another version, change LEAFLET_VERSION and
# LEAFLET_INTEGRITY (`npm view leaflet@VERSION dist.integrity`) and run this script.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LEAFLET_VERSION=1.9.4
LEAFLET_INTEGRITY=sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA==
LEAFLET_DIR=$ROOT/web/console/static/vendor/leaflet
# What of the package the console serves, relative to the package's root.
LEAFLET_FILES=(
	dist/leaflet.js
	dist/leaflet.css
	dist/images/layers.png
	dist/images/layers-2x.png
	dist/images/marker-icon.png
	dist/images/marker-icon-2x.png
	dist/images/marker-shadow.png
	LICENSE
)

say() { printf 'vendor: %s\n' "$*"; }
die() {
	printf 'vendor: error: %s\n' "$*" >&2
	exit 1
}

# check verifies the committed copies against their SHA256SUMS.
check() {
	[[ -f $LEAFLET_DIR/SHA256SUMS ]] || die "$LEAFLET_DIR/SHA256SUMS is missing: run scripts/vendor.sh"
	grep -qx "# leaflet@$LEAFLET_VERSION $LEAFLET_INTEGRITY" "$LEAFLET_DIR/SHA256SUMS" ||
		die "the vendored Leaflet is not leaflet@$LEAFLET_VERSION: run scripts/vendor.sh"
	(cd "$LEAFLET_DIR" && grep -v '^#' SHA256SUMS | sha256sum --quiet -c -) ||
		die "the vendored Leaflet files differ from what scripts/vendor.sh wrote: run it again"
	say "leaflet@$LEAFLET_VERSION is vendored unchanged"
}

# fetch_leaflet downloads the package tarball with npm, checks it against the pinned
# integrity (npm's own check compares it only with what the registry says), and copies it.
fetch_leaflet() {
	command -v npm >/dev/null 2>&1 || die "npm is not installed: run scripts/deps.sh test"
	local tmp
	tmp=$(mktemp -d "${TMPDIR:-/tmp}/vendor.XXXXXX")
	trap 'rm -rf "$tmp"' RETURN
	say "fetching leaflet@$LEAFLET_VERSION"
	npm pack "leaflet@$LEAFLET_VERSION" --pack-destination "$tmp" --cache "$tmp/cache" \
		--ignore-scripts --no-audit --no-fund --silent >"$tmp/name" ||
		die "npm pack leaflet@$LEAFLET_VERSION failed: check the network and the npm registry setting"
	local tarball
	tarball=$tmp/$(tail -n 1 "$tmp/name")
	[[ -f $tarball ]] || die "npm pack made no tarball (it printed: $(cat "$tmp/name"))"
	local got
	got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
	[[ $got == "$LEAFLET_INTEGRITY" ]] ||
		die "leaflet@$LEAFLET_VERSION has integrity $got, not the pinned $LEAFLET_INTEGRITY: refusing it"
	mkdir -p "$tmp/x"
	tar -xzf "$tarball" -C "$tmp/x"
	grep -q "\"version\": \"$LEAFLET_VERSION\"" "$tmp/x/package/package.json" ||
		die "the tarball is not leaflet $LEAFLET_VERSION"

	rm -rf "$LEAFLET_DIR"
	mkdir -p "$LEAFLET_DIR/images"
	local f dst
	for f in "${LEAFLET_FILES[@]}"; do
		[[ -f $tmp/x/package/$f ]] || die "leaflet@$LEAFLET_VERSION has no $f"
		dst=${f#dist/}
		cp "$tmp/x/package/$f" "$LEAFLET_DIR/$dst"
	done
	{
		printf '# leaflet@%s %s\n' "$LEAFLET_VERSION" "$LEAFLET_INTEGRITY"
		printf '# written by scripts/vendor.sh; check with: scripts/vendor.sh check\n'
		(cd "$LEAFLET_DIR" && find . -type f ! -name SHA256SUMS | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum)
	} >"$tmp/SHA256SUMS"
	mv "$tmp/SHA256SUMS" "$LEAFLET_DIR/SHA256SUMS"
	say "copied leaflet@$LEAFLET_VERSION into ${LEAFLET_DIR#"$ROOT"/}"
}

case "${1:-fetch}" in
fetch) fetch_leaflet ;;
check) check ;;
*)
	echo "usage: scripts/vendor.sh [fetch|check]" >&2
	exit 2
	;;
esac
