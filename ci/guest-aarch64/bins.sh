#!/usr/bin/env bash
# The daemon and tools for the aarch64 guest, taken from the arm64 Debian 13
# package packaging/build-debs.sh made (no second cross-build here): unpacks
# the daedalus-v4l2d .deb and puts its binaries in out/aarch64/bin, the
# `daedalus_bin` of ci/targets/qemu-aarch64.yaml. Prints that directory.
#   usage: ci/guest-aarch64/bins.sh [path/to/daedalus-v4l2d_*_arm64.deb]
#   default: the newest out/debs/trixie-arm64/daedalus-v4l2d_*_arm64.deb
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd -P)"
deb="${1:-$(ls -t "$repo"/out/debs/trixie-arm64/daedalus-v4l2d_*_arm64.deb 2>/dev/null | head -n1)}"
if [ -z "$deb" ] || [ ! -f "$deb" ]; then
	echo "aarch64-bins: no arm64 trixie daedalus-v4l2d .deb; build it with packaging/build-debs.sh --release trixie --arch arm64" >&2
	exit 1
fi
out="$repo/out/aarch64"
rm -rf "$out/deb" "$out/bin.tmp"
mkdir -p "$out/bin.tmp"
dpkg -x "$deb" "$out/deb"
cp -a "$out/deb/usr/bin/." "$out/bin.tmp/"
for b in daedalus-v4l2d daedalus-decode; do
	[ -x "$out/bin.tmp/$b" ] || { echo "aarch64-bins: $deb has no usr/bin/$b" >&2; exit 1; }
done
rm -rf "${out:?}/bin"
mv "$out/bin.tmp" "$out/bin"
echo "aarch64-bins: $(ls "$out/bin" | tr '\n' ' ')from $deb" >&2
echo "$out/bin"
