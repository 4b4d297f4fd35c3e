#!/usr/bin/env bash
# Builds the Debian 13 (trixie) arm64 root for the QEMU aarch64 guest with
# mmdebstrap (maintainer scripts run under qemu-user through binfmt_misc),
# cached under ~/.cache/daedalus-v4l2/guest-root/trixie-arm64-<key>, key = hash
# of packages.txt and this script. Prints the root directory. Needs root, like
# ci/guest-root/build.sh (whose x86_64 root this mirrors).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
list="$here/packages.txt"
mirror="${DAEDALUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
key=$(cat "$list" "$0" | sha256sum | cut -c1-16)
base="${DAEDALUS_CACHE:-$HOME/.cache/daedalus-v4l2}/guest-root"
cache="$base/trixie-arm64-$key"
if [ -e "$cache/done" ]; then echo "$cache/root"; exit 0; fi

log() { echo "guest-root-arm64: $*" >&2; }
pkgs=$(grep -Ev '^\s*(#|$)' "$list" | paste -sd, -)
mkdir -p "$base"
exec 9>"$base-arm64.lock"
flock 9
if [ -e "$cache/done" ]; then echo "$cache/root"; exit 0; fi
"$here/binfmt.sh"
rm -rf "$cache.tmp"; mkdir -p "$cache.tmp"
log "mmdebstrap --arch=arm64 trixie ($(echo "$pkgs" | tr ',' '\n' | wc -l) packages) from $mirror; several minutes (emulated maintainer scripts)"
start=$(date +%s)
# check/qemu wants arch-test; the binfmt entry above (flag F) is all the
# chroot needs.
mmdebstrap --arch=arm64 --variant=apt --include="$pkgs" --skip=check/qemu \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--customize-hook='chroot "$1" sh -c "echo daedalus-guest > /etc/hostname"' \
	--customize-hook='chroot "$1" sh -c "getent passwd daedalus >/dev/null || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin daedalus"' \
	--customize-hook='chroot "$1" sh -c "usermod -a -G video daedalus"' \
	trixie "$cache.tmp/root" "$mirror" >&2
mkdir -p "$cache.tmp/root/lib/modules"
log "built in $(( $(date +%s) - start )) s: $(du -sh "$cache.tmp/root" | cut -f1)"
touch "$cache.tmp/done"
mv "$cache.tmp" "$cache"
echo "$cache/root"
