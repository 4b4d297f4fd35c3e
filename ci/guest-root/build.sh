#!/usr/bin/env bash
# Builds the Debian 13 (trixie) guest root with mmdebstrap, cached under
# ~/.cache/daedalus-v4l2/guest-root/trixie-<key>, key = hash of the package list
# and this script. Prints the root directory. Needs root (real uid 0 files in
# the tree, as the guest sees them over 9p).
#   usage: ci/guest-root/build.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
list="$here/packages.txt"
mirror="${DAEDALUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
key=$(cat "$list" "$0" | sha256sum | cut -c1-16)
base="${DAEDALUS_CACHE:-$HOME/.cache/daedalus-v4l2}/guest-root"
cache="$base/trixie-$key"
if [ -e "$cache/done" ]; then echo "$cache/root"; exit 0; fi

log() { echo "guest-root: $*" >&2; }
pkgs=$(grep -Ev '^\s*(#|$)' "$list" | paste -sd, -)
mkdir -p "$base"
# one builder at a time: the main job and the test run may both ask for it
exec 9>"$base.lock"
flock 9
if [ -e "$cache/done" ]; then echo "$cache/root"; exit 0; fi
rm -rf "$cache.tmp"; mkdir -p "$cache.tmp"
log "mmdebstrap trixie ($(echo "$pkgs" | tr ',' '\n' | wc -l) packages) from $mirror; a few minutes, mostly downloads"
start=$(date +%s)
# --variant=apt: essential + apt, so a later `apt-get install` inside works.
# Docs and man pages are dropped: the root is for running tests, not reading.
mmdebstrap --variant=apt --include="$pkgs" \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--customize-hook='chroot "$1" sh -c "echo daedalus-guest > /etc/hostname"' \
	--customize-hook='chroot "$1" sh -c "getent passwd daedalus >/dev/null || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin daedalus"' \
	--customize-hook='chroot "$1" sh -c "usermod -a -G video daedalus"' \
	trixie "$cache.tmp/root" "$mirror" >&2
# mount points the guest init and ci/trixie-cargo.sh use
mkdir -p "$cache.tmp/root/lib/modules"
log "built in $(( $(date +%s) - start )) s: $(du -sh "$cache.tmp/root" | cut -f1)"
touch "$cache.tmp/done"
mv "$cache.tmp" "$cache"
echo "$cache/root"
