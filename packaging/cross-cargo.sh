#!/usr/bin/env bash
# Runs cargo for arm64 (aarch64-unknown-linux-gnu) inside the release's
# cross root (packaging/debroot.sh <release> cross-arm64): that release's own
# rustc 1.85 with its aarch64 std, gcc-aarch64-linux-gnu as linker, and the
# release's arm64 FFmpeg through multiarch (pkg-config and bindgen read
# /usr/lib/aarch64-linux-gnu and /usr/include/aarch64-linux-gnu of the root).
#   usage: packaging/cross-cargo.sh bookworm|trixie <cargo args>
#     e.g. packaging/cross-cargo.sh bookworm build --release --workspace
#   -> target/<release>-arm64/aarch64-unknown-linux-gnu/release/
# As ci/trixie-cargo.sh: the repository is bind-mounted at the same path, the
# host's CARGO_HOME is shared (the host runs `cargo fetch` first, the chroot
# builds offline); DAEDALUS_NO_FETCH=1 skips the fetch.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
release=${1:?usage: cross-cargo.sh bookworm|trixie <cargo args>}
shift
case "$release" in bookworm | trixie) ;; *) echo "cross-cargo: unknown release '$release'" >&2; exit 2 ;; esac
if [ "$(id -u)" -ne 0 ]; then exec sudo -E "$0" "$release" "$@"; fi

root="$("$repo/packaging/debroot.sh" "$release" cross-arm64)"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
# Build scripts that read the root's headers (v4l2r's videodev2.h, FFmpeg's)
# rerun only when a header is newer than their last run, and a package's
# files carry its build date: a new root (another key) starts a clean target.
target="$repo/target/$release-arm64"
if [ -d "$target" ] && [ "$(cat "$target/.cross-root" 2>/dev/null)" != "${root##*/}" ]; then
	echo "cross-cargo: $target was built in another cross root; starting afresh" >&2
	rm -rf "$target"
fi
mkdir -p "$cargo_home/registry" "$target"
echo "${root##*/}" >"$target/.cross-root"
cargo_home="$(cd "$cargo_home" && pwd -P)"

if [ "${DAEDALUS_NO_FETCH:-0}" != 1 ]; then
	(cd "$repo" && { cargo fetch --locked 2>/dev/null || cargo fetch; }) >&2
fi

exec unshare --mount --propagation private -- /bin/bash -s -- "$root" "$repo" "$cargo_home" "$release" "$@" <<'INNER'
set -euo pipefail
root=$1 repo=$2 cargo_home=$3 release=$4; shift 4
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o size=4g tmpfs "$root/tmp"
mkdir -p "$root$repo" "$root$cargo_home"
mount --bind "$repo" "$root$repo"
mount --bind "$cargo_home" "$root$cargo_home"
cd_to=$repo
case "$PWD/" in "$repo"/*) cd_to=$PWD ;; esac
# ffmpeg-sys-next's feature probe compiles and runs a small C program for
# the *host* with FFmpeg's -I paths. Multiarch puts FFmpeg's headers in
# /usr/include/aarch64-linux-gnu, next to arm64 glibc's bits/, which then
# shadow the host's (math.h fails). pkg-config therefore reports an include
# directory holding only FFmpeg's header directories.
mkdir "$root/tmp/ffmpeg-include"
for d in "$root"/usr/include/aarch64-linux-gnu/libav* "$root"/usr/include/aarch64-linux-gnu/libsw*; do
	ln -s "/usr/include/aarch64-linux-gnu/${d##*/}" "$root/tmp/ffmpeg-include/${d##*/}"
done
printf '#!/bin/sh\nexec pkg-config --define-variable=includedir=/tmp/ffmpeg-include "$@"\n' >"$root/tmp/pkg-config-arm64"
chmod +x "$root/tmp/pkg-config-arm64"
# Target-suffixed variables (cc, pkg-config and bindgen read them), so build
# scripts and proc macros, which run on the amd64 side, are not affected.
t=aarch64_unknown_linux_gnu
exec chroot "$root" /usr/bin/env -i \
	PATH=/usr/bin:/bin HOME=/root TERM="${TERM:-dumb}" \
	CARGO_HOME="$cargo_home" CARGO_NET_OFFLINE=true \
	CARGO_TARGET_DIR="$repo/target/$release-arm64" \
	CARGO_BUILD_TARGET=aarch64-unknown-linux-gnu \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
	CC_$t=aarch64-linux-gnu-gcc AR_$t=aarch64-linux-gnu-ar \
	PKG_CONFIG_$t=/tmp/pkg-config-arm64 PKG_CONFIG_ALLOW_CROSS_$t=1 \
	PKG_CONFIG_LIBDIR_$t=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig \
	BINDGEN_EXTRA_CLANG_ARGS_$t=--target=aarch64-linux-gnu \
	${CARGO_TERM_COLOR:+CARGO_TERM_COLOR=$CARGO_TERM_COLOR} \
	${RUST_BACKTRACE:+RUST_BACKTRACE=$RUST_BACKTRACE} \
	/bin/sh -c 'cd "$1" && shift && exec cargo "$@"' sh "$cd_to" "$@"
INNER
