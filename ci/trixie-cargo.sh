#!/usr/bin/env bash
# Runs cargo inside the Debian 13 (trixie) guest root, so the binaries link
# against the guest's FFmpeg 7.1 and glibc and run in the QEMU guest as built.
#   usage: ci/trixie-cargo.sh <cargo args>      e.g. ci/trixie-cargo.sh build --release
# The repository is bind-mounted at the same path inside, the host's CARGO_HOME
# is shared (the host runs `cargo fetch` first, the chroot builds offline), and
# CARGO_TARGET_DIR is <repo>/target/trixie. Set DAEDALUS_NO_FETCH=1 to skip the
# host-side fetch (e.g. when the lock file is known to be fetched already).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
if [ "$(id -u)" -ne 0 ]; then exec sudo -E "$0" "$@"; fi

root="$("$repo/ci/guest-root/build.sh")"
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
mkdir -p "$cargo_home/registry" "$repo/target/trixie"
cargo_home="$(cd "$cargo_home" && pwd -P)"

if [ "${DAEDALUS_NO_FETCH:-0}" != 1 ]; then
	# Host cargo (newer) fills the shared registry; the lock file is kept
	# resolvable for rustc 1.85 by the workspace's .cargo/config.toml.
	(cd "$repo" && cargo fetch --locked 2>/dev/null || cargo fetch) >&2
fi

# A private mount namespace: the bind mounts vanish with the process, nothing
# leaks into the host's mount table even if the build is killed.
exec unshare --mount --propagation private -- /bin/bash -s -- "$root" "$repo" "$cargo_home" "$@" <<'INNER'
set -euo pipefail
root=$1 repo=$2 cargo_home=$3; shift 3
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o size=4g tmpfs "$root/tmp"
mkdir -p "$root$repo" "$root$cargo_home"
mount --bind "$repo" "$root$repo"
mount --bind "$cargo_home" "$root$cargo_home"
# name resolution is never needed (offline), but some build scripts read it
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
cd_to=$repo
case "$PWD/" in "$repo"/*) cd_to=$PWD ;; esac
exec chroot "$root" /usr/bin/env -i \
	PATH=/usr/local/bin:/usr/bin:/bin HOME=/root TERM="${TERM:-dumb}" \
	CARGO_HOME="$cargo_home" CARGO_NET_OFFLINE=true \
	CARGO_TARGET_DIR="$repo/target/trixie" \
	${CARGO_TERM_COLOR:+CARGO_TERM_COLOR=$CARGO_TERM_COLOR} \
	${RUST_BACKTRACE:+RUST_BACKTRACE=$RUST_BACKTRACE} \
	/bin/sh -c 'cd "$1" && shift && exec cargo "$@"' sh "$cd_to" "$@"
INNER
