#!/usr/bin/env bash
# Fetches Debian's 6.12 arm64 and arm64-16k kernel headers (plus the common
# headers and the host's kbuild tools) without installing them, unpacks them
# under ~/.cache/daedalus-v4l2/headers/<version>/ and prints one KDIR per
# flavour, so kernel/ can be cross-built for the Pi 5 (16K pages) and 4K-page
# arm64:  make -C kernel KDIR=<printed dir> ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-
#
# Usage: ci/fetch-headers.sh [flavour...]      (default: arm64 arm64-16k)
# Flavour "amd64" fetches Debian's stock x86 headers: a kernel without
# CONFIG_V4L2_MEM2MEM_DEV, which kernel/dkms.conf must refuse.
# DAEDALUS_HEADERS_ABI=6.12.117+deb12 pins the ABI; default: what the
# linux-headers-6.12-arm64 meta-package currently points at.
set -euo pipefail

flavours=("$@")
[ "${#flavours[@]}" -gt 0 ] || flavours=(arm64 arm64-16k)

abi="${DAEDALUS_HEADERS_ABI:-}"
if [ -z "$abi" ]; then
	abi="$(apt-cache depends linux-headers-6.12-arm64:arm64 |
		sed -n 's/.*Depends: linux-headers-\(6\.12\.[^:]*\)-arm64:arm64$/\1/p' | head -n1)"
fi
if [ -z "$abi" ]; then
	echo "fetch-headers: cannot find linux-headers-6.12-arm64:arm64; run ci/setup-host.sh (adds arm64 and bookworm-backports)" >&2
	exit 1
fi

cache="${HOME}/.cache/daedalus-v4l2/headers/${abi}"
mkdir -p "$cache/debs" "$cache/root"
host_arch="$(dpkg --print-architecture)"

pkgs=("linux-headers-${abi}-common" "linux-kbuild-${abi}:${host_arch}")
flavour_arch() { case "$1" in amd64 | cloud-amd64 | rt-amd64) echo amd64 ;; *) echo arm64 ;; esac; }
for f in "${flavours[@]}"; do
	pkgs+=("linux-headers-${abi}-${f}:$(flavour_arch "$f")")
done

for p in "${pkgs[@]}"; do
	name="${p%%:*}"
	stamp="$cache/root/.${name}.unpacked"
	[ -e "$stamp" ] && continue
	echo "fetch-headers: downloading $p" >&2
	# apt-get download drops privileges to _apt; a root-owned cache dir
	# only costs a warning, so silence that one.
	(cd "$cache/debs" && apt-get download -q "$p" 2>&1 | grep -v 'unsandboxed' >&2 || true)
	deb="$(ls "$cache/debs/${name}"_*.deb 2>/dev/null | head -n1)"
	if [ -z "$deb" ]; then
		echo "fetch-headers: download of $p failed" >&2
		exit 1
	fi
	dpkg -x "$deb" "$cache/root"
	touch "$stamp"
done

common="$cache/root/usr/src/linux-headers-${abi}-common"
for f in "${flavours[@]}"; do
	kdir="$cache/root/usr/src/linux-headers-${abi}-${f}"
	# The flavour's Makefile is one line including the common Makefile at
	# its installed /usr/src path; point it at the unpacked copy instead.
	echo "include ${common}/Makefile" >"$kdir/Makefile"
	echo "$kdir"
done
