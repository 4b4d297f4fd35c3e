#!/usr/bin/env bash
# Builds the two Debian packages from what the rest of the repository built:
#   daedalus-v4l2-dkms  (all)    module source from kernel/ + kernel/dkms.conf
#   daedalus-v4l2d      (arch)   daemon, tools, plugin + rootfs-overlay/ files
# dpkg-buildpackage runs inside a Debian root of the target release
# (packaging/debroot.sh, cached), so ${shlibs:Depends} names that release's
# FFmpeg library packages. arm64 packages on an amd64 host are cross-built:
# `dpkg-buildpackage -a arm64` in the release's cross root (debroot.sh
# <release> cross-arm64), where the arm64 FFmpeg libraries are installed
# through multiarch, so dpkg-shlibdeps reads their arm64 symbols files.
#
# usage: packaging/build-debs.sh [--release bookworm|trixie] [--arch ARCH]
#                                [--bin-dir DIR] [--out DIR]
#   --release  Debian release the binaries were built for; default bookworm
#   --arch     amd64 or arm64; default the machine's own (on a Pi: arm64)
#   --bin-dir  where daedalus-v4l2d, daedalus-decode, daedalus-bench and
#              libdaedalus_fourier_cpu.so are; default by release and arch:
#                bookworm amd64 -> target/release         (host: cargo build --release)
#                trixie   amd64 -> target/trixie/release  (ci/trixie-cargo.sh build --release)
#                <release> arm64 on amd64 -> target/<release>-arm64/aarch64-unknown-linux-gnu/release
#                               (packaging/cross-cargo.sh <release> build --release)
#              (on an arm64 machine the native paths of the amd64 rows apply)
#   --out      default out/debs/<release>-<arch>; prints the .deb paths
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
release=bookworm arch=$(dpkg --print-architecture) bin_dir="" out=""
while [ $# -gt 0 ]; do
	case "$1" in
	--release) release=$2; shift 2 ;;
	--arch) arch=$2; shift 2 ;;
	--bin-dir) bin_dir=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "build-debs: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done
die() { echo "build-debs: $*" >&2; exit 1; }
log() { echo "build-debs: $*" >&2; }

case "$release" in
bookworm) deb_rev=1~deb12 default_bin=target/release ;;
trixie) deb_rev=1~deb13 default_bin=target/trixie/release ;;
*) die "unknown release '$release' (bookworm|trixie)" ;;
esac
case "$arch" in
amd64) elf_machine="Advanced Micro Devices X86-64" ;;
arm64) elf_machine="AArch64" ;;
*) die "unknown arch '$arch' (amd64|arm64)" ;;
esac
native=$(dpkg --print-architecture)
root_kind=build build_hint="cargo build --release --workspace"
# cross: the "cross" profile and nocheck tell debhelper not to expect to run
# arm64 binaries; CC only names the host type dpkg-architecture checks
cross_opts="" cross_cc=""
[ "$release" = trixie ] && build_hint="ci/trixie-cargo.sh build --release --workspace"
if [ "$arch" != "$native" ]; then
	[ "$arch/$native" = arm64/amd64 ] || die "cross-building $arch packages on $native is not supported (only arm64 on amd64)"
	root_kind=cross-arm64
	default_bin=target/$release-arm64/aarch64-unknown-linux-gnu/release
	build_hint="packaging/cross-cargo.sh $release build --release --workspace"
	cross_opts="-Pcross,nocheck" cross_cc=aarch64-linux-gnu-gcc
fi

bin_dir="$(cd "$repo" && realpath -m "${bin_dir:-$default_bin}")"
out="$(cd "$repo" && realpath -m "${out:-out/debs/$release-$arch}")"
[ "$(id -u)" -eq 0 ] || die "needs root (chroot into the build root); run with sudo"

# --- inputs: every one must exist, and be for the right machine ---------------
missing=()
for f in daedalus-v4l2d daedalus-decode daedalus-bench libdaedalus_fourier_cpu.so; do
	if [ ! -f "$bin_dir/$f" ]; then
		missing+=("$f")
	elif ! readelf -h "$bin_dir/$f" 2>/dev/null | grep -q "Machine: *$elf_machine"; then
		die "$bin_dir/$f is not an $arch ELF file"
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	die "missing in $bin_dir: ${missing[*]} (build them first: $build_hint)"
fi
[ -f "$repo/kernel/dkms.conf" ] || die "kernel/dkms.conf is missing: nothing for the -dkms package"

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$repo/Cargo.toml")
[ -n "$version" ] || die "no [workspace.package] version in Cargo.toml"
commit=$(git -C "$repo" rev-parse --short=10 HEAD)
epoch=$(git -C "$repo" log -1 --format=%ct HEAD)
# A build from anything but the release tag v<version> is a snapshot, sorted
# below the release: 0.1.0~git20261124.1a2b3c4d5e-1~deb12.
if [ "$(git -C "$repo" describe --tags --exact-match HEAD 2>/dev/null)" != "v$version" ]; then
	version="$version~git$(date -u -d "@$epoch" +%Y%m%d%H%M).$commit"
fi
full_version="$version-$deb_rev"

# --- stage a build tree: debian/ + bin/ + kernel/ + rootfs-overlay/ -----------
work="$out/build"
tree="$work/daedalus-v4l2-$version"
rm -rf "$work"
mkdir -p "$tree/bin" "$tree/kernel" "$tree/rootfs-overlay"
cp -a "$repo/packaging/debian" "$tree/debian"
cp -a "$bin_dir"/{daedalus-v4l2d,daedalus-decode,daedalus-bench,libdaedalus_fourier_cpu.so} "$tree/bin/"
# only what git tracks: never a stray .ko/.o from a local module build
(cd "$repo" && git ls-files -z kernel rootfs-overlay | xargs -0 cp --parents -t "$tree")
ov="$tree/rootfs-overlay"
cp "$ov/usr/lib/systemd/system/daedalus-v4l2d.service" "$tree/debian/daedalus-v4l2d.service"
cp "$ov/usr/lib/sysusers.d/daedalus.conf" "$tree/debian/daedalus-v4l2d.daedalus.sysusers"
cat >"$tree/debian/changelog" <<CHANGELOG
daedalus-v4l2 ($full_version) $release; urgency=medium

  * Build of commit $commit.

 -- daedalus-v4l2 developers <daedalus-v4l2@users.noreply.github.com>  $(date -u -R -d "@$epoch")
CHANGELOG

# --- build inside the release's root ------------------------------------------
# -d: nothing is compiled here, so the implied build-essential is not in the
# root; the tools debian/rules does use (debhelper, dh-dkms) are. With
# --host-arch arm64 on amd64, dh_strip and dpkg-shlibdeps use the
# aarch64-linux-gnu- binutils of the cross root.
root="$("$repo/packaging/debroot.sh" "$release" "$root_kind")"
log "dpkg-buildpackage $full_version for $release/$arch in $root"
unshare --mount --propagation private -- /bin/bash -s -- "$root" "$work" "$epoch" "$arch" "$cross_opts" "$cross_cc" <<'INNER' >&2
set -euo pipefail
root=$1 work=$2 epoch=$3 arch=$4 cross_opts=$5 cross_cc=$6
mount -t proc proc "$root/proc"
mount -t tmpfs tmpfs "$root/tmp"
mkdir -p "$root/build"
mount --bind "$work" "$root/build"
tree=$(cd "$work" && ls -d daedalus-v4l2-*/)
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/tmp LC_ALL=C.UTF-8 \
	SOURCE_DATE_EPOCH="$epoch" DEB_BUILD_OPTIONS="noautodbgsym${cross_opts:+ nocheck}" \
	${cross_cc:+CC=$cross_cc} \
	/bin/sh -c 'cd "/build/$1" && dpkg-buildpackage -b -us -uc -d --host-arch "$2" $3' sh "$tree" "$arch" "$cross_opts"
INNER
debs=("$work"/*.deb)
[ -e "${debs[0]}" ] || die "dpkg-buildpackage made no .deb"
for d in "${debs[@]}"; do
	mv "$d" "$out/"
	echo "$out/$(basename "$d")"
done
