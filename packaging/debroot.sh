#!/usr/bin/env bash
# Makes a Debian root with mmdebstrap, cached under
# ~/.cache/daedalus-v4l2/debroot/ (keyed by release, kind, mirror and package
# list), and prints its
# path: a directory for kinds "build" and "cross-arm64" (chrooted into as
# is), a tarball for kind "clean" (unpacked afresh for every test run).
# Downloaded .debs (amd64 and arm64) are kept in
# ~/.cache/daedalus-v4l2/apt-archives/<release>/ and reused by later builds.
#   usage: packaging/debroot.sh bookworm|trixie build|clean|cross-arm64
# kinds:
#   build  dpkg-dev, debhelper, dh-dkms and the release's FFmpeg runtime
#          libraries, so dpkg-shlibdeps computes that release's Depends
#          (packaging/build-debs.sh builds the .debs inside it)
#   clean  --variant=apt and nothing else: the "fresh system" the .debs are
#          installed into by ci/tests/host/test_system.py
#   cross-arm64  a directory root with arm64 as a second (multiarch)
#          architecture: the release's own Rust compiler with its aarch64 std,
#          gcc-aarch64-linux-gnu, clang (bindgen), the arm64 FFmpeg -dev
#          packages, and dpkg-dev/debhelper/dh-dkms. packaging/cross-cargo.sh
#          cross-compiles the workspace in it and build-debs.sh --arch arm64
#          packages in it (dpkg-shlibdeps reads the arm64 libraries' symbols).
#          Nothing arm64 is executed, so no qemu/binfmt is needed.
# Needs root (the root's files are owned by real uids).
set -euo pipefail
release=${1:?usage: debroot.sh bookworm|trixie build|clean|cross-arm64}
kind=${2:?usage: debroot.sh bookworm|trixie build|clean|cross-arm64}
mirror="${DAEDALUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
cache="${DAEDALUS_CACHE:-$HOME/.cache/daedalus-v4l2}"

# The FFmpeg runtime libraries the daemon may link (ffmpeg-next links what
# its features ask for); their sonames differ per release.
# The cross root's Rust: bookworm's rustc-web 1.85 (the plain rustc there is
# 1.63), trixie's rustc 1.85; both with the aarch64 std as an arm64 package.
case "$release" in
bookworm) ffmpeg_libs=libavcodec59,libavformat59,libavutil57,libswscale6,libswresample4,libavfilter8,libavdevice59
	rust=rustc-web,cargo-web,libstd-rust-web-dev:arm64,pkg-config ;;
trixie) ffmpeg_libs=libavcodec61,libavformat61,libavutil59,libswscale8,libswresample5,libavfilter10,libavdevice61
	rust=rustc,cargo,libstd-rust-dev:arm64,pkgconf ;;
*) echo "debroot: unknown release '$release' (bookworm|trixie)" >&2; exit 2 ;;
esac
extra_mirrors=()
case "$kind" in
build) include="dpkg-dev,debhelper,dh-dkms,fakeroot,git,$ffmpeg_libs" ;;
clean) include="" ;;
cross-arm64) include="dpkg-dev,debhelper,dh-dkms,fakeroot,$rust,gcc-aarch64-linux-gnu,libc6-dev:arm64,clang,libclang-dev"
	include="$include,libavcodec-dev:arm64,libavformat-dev:arm64,libavutil-dev:arm64,libswscale-dev:arm64,libswresample-dev:arm64"
	# v4l2r binds the system's linux/videodev2.h and needs 6.x's AV1
	# controls: bookworm's own linux-libc-dev (6.1) lacks them, the host
	# (ci/setup-host.sh) takes it from backports too; both architectures'
	# copies must be the same version (Multi-Arch: same).
	if [ "$release" = bookworm ]; then
		extra_mirrors=("deb $mirror bookworm-backports main")
		include="$include,linux-libc-dev/bookworm-backports,linux-libc-dev:arm64/bookworm-backports"
	fi ;;
*) echo "debroot: unknown kind '$kind' (build|clean|cross-arm64)" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then exec sudo -E "$0" "$@"; fi
# keyed by what goes into the root, not by this script's wording
key=$(echo "v1 $release $kind $mirror $include${extra_mirrors[*]:+ ${extra_mirrors[*]}}" | sha256sum | cut -c1-12)
native=$(dpkg --print-architecture) arches=$native
case "$kind" in
cross-arm64) out="$cache/debroot/$release-$kind-$key" format=directory arches=$native,arm64 ;;
build) out="$cache/debroot/$release-$kind-$key" format=directory ;;
clean) out="$cache/debroot/$release-$kind-$key.tar" format=tar ;;
esac
if [ -e "$out" ]; then echo "$out"; exit 0; fi

mkdir -p "$cache/debroot" "$cache/apt-archives/$release"
exec 9>"$cache/debroot/.lock"
flock 9
if [ -e "$out" ]; then echo "$out"; exit 0; fi
# The package cache is shared with ci/bookworm-root/build.sh, which
# ci/prepare.sh runs at the same time: one mmdebstrap syncs it at a time (a
# cold run failed with "tar: .: file changed as we read it" in sync-in while
# the other's sync-out wrote to it).
exec 8>"$cache/apt-archives/$release.lock"
flock 8
echo "debroot: mmdebstrap $release ($kind) from $mirror; a few minutes, mostly downloads" >&2
start=$(date +%s)
archives="$cache/apt-archives/$release"
# The sync-in/sync-out hooks are mmdebstrap's documented way to reuse a
# package cache across runs.
if grep -qF " $out.tmp/" /proc/mounts; then
	echo "debroot: $out.tmp still has mounts from an interrupted run; unmount them first" >&2
	exit 1
fi
rm -rf "$out.tmp"
mmdebstrap --variant=apt --format="$format" --architectures="$arches" ${include:+--include="$include"} \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
	--setup-hook="sync-in '$archives' /var/cache/apt/archives/" \
	--customize-hook="sync-out /var/cache/apt/archives '$archives'" \
	--customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
	"$release" "$out.tmp" "$mirror" ${extra_mirrors[@]+"${extra_mirrors[@]}"} >&2
mv "$out.tmp" "$out"
echo "debroot: $release-$kind built in $(( $(date +%s) - start )) s ($(du -sh "$out" | cut -f1))" >&2
echo "$out"
