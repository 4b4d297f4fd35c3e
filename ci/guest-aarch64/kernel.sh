#!/usr/bin/env bash
# Debian's 16K-page arm64 kernel (the Pi 5's page size) for the QEMU aarch64
# guest: linux-image-<abi>-arm64-16k-unsigned of the SAME ABI version as the
# headers ci/fetch-headers.sh unpacks, so a module built against those loads
# (vermagic). Fetched with apt-get download + dpkg -x, cached under
# ~/.cache/daedalus-v4l2/arm64-kernel/<abi>-arm64-16k/ (vmlinuz, config,
# modroot/lib/modules/<release>/, kdir = the headers). Prints that directory.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
flavour=arm64-16k
kdir="$("$repo/ci/fetch-headers.sh" "$flavour" | tail -n1)"
abi="${kdir##*/linux-headers-}"
abi="${abi%-"$flavour"}"
release="$abi-$flavour"
base="${DAEDALUS_CACHE:-$HOME/.cache/daedalus-v4l2}/arm64-kernel"
cache="$base/$release"
if [ -e "$cache/done" ]; then echo "$cache"; exit 0; fi
mkdir -p "$base"
exec 9>"$base.lock"
flock 9
if [ -e "$cache/done" ]; then echo "$cache"; exit 0; fi
rm -rf "$cache.tmp"; mkdir -p "$cache.tmp/debs" "$cache.tmp/pkg"
pkg="linux-image-$release-unsigned:arm64"
echo "arm64-kernel: downloading $pkg" >&2
(cd "$cache.tmp/debs" && apt-get download -q "$pkg" 2>&1 | grep -v unsandboxed >&2 || true)
deb="$(ls "$cache.tmp/debs"/linux-image-*.deb 2>/dev/null | head -n1)"
[ -n "$deb" ] || { echo "arm64-kernel: download of $pkg failed" >&2; exit 1; }
dpkg -x "$deb" "$cache.tmp/pkg"
# bookworm's package installs to /lib, trixie's to /usr/lib
mods="$(find "$cache.tmp/pkg" -maxdepth 4 -type d -path "*/lib/modules/$release" | head -n1)"
[ -n "$mods" ] || { echo "arm64-kernel: no lib/modules/$release in $deb" >&2; exit 1; }
mkdir -p "$cache.tmp/modroot/lib/modules"
mv "$mods" "$cache.tmp/modroot/lib/modules/"
# the package ships no modules.dep (its postinst runs depmod)
depmod -b "$cache.tmp/modroot" "$release"
mv "$cache.tmp/pkg/boot/vmlinuz-$release" "$cache.tmp/vmlinuz"
mv "$cache.tmp/pkg/boot/config-$release" "$cache.tmp/config"
echo "$kdir" >"$cache.tmp/kdir"
rm -rf "$cache.tmp/pkg" "$cache.tmp/debs"
touch "$cache.tmp/done"
mv "$cache.tmp" "$cache"
echo "$cache"
