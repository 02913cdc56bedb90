#!/usr/bin/env bash
# Runs every Go fuzz target (func FuzzXxx) of the module for a short time each:
# FUZZTIME per target (default 10s). New targets are found automatically.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
go=${GO:-go}
found=0
for pkg in $($go list ./...); do
	for target in $($go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		found=1
		echo "fuzz $pkg $target for $fuzztime"
		$go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
	done
done
[ "$found" = 1 ] || echo "no fuzz targets"
