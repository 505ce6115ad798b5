#!/usr/bin/env bash
# Refreshes the vendored uPlot (the live dashboard's charts) from the npm
# registry at an exact version, with its licence:
#
#   scripts/refresh-uplot.sh [VERSION]      # default: the version in VERSION
#
# Writes loadgen/assets/uplot/{uPlot.iife.min.js,uPlot.min.css,LICENSE,VERSION}
# and prints the tarball's SHA-256. Nothing else needs npm: the files are
# committed and embedded in the loadgen binary.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=loadgen/assets/uplot
version=${1:-$(cat "$dest/VERSION")}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$version" >/dev/null && tar xzf "uplot-$version.tgz")
cp "$work/package/dist/uPlot.iife.min.js" "$work/package/dist/uPlot.min.css" "$work/package/LICENSE" "$dest/"
echo "$version" >"$dest/VERSION"
sha256sum "$work/uplot-$version.tgz"
