#!/usr/bin/env bash
# Builds the Debian 12 (bookworm) side root the guest chroots into for
# GStreamer 1.22 and FFmpeg 5.1 (packages.txt), cached under
# ~/.cache/daedalus-v4l2/guest-root/bookworm-<key>/root, key = hash of the
# package list and this script. Downloaded .debs are shared with
# packaging/debroot.sh (~/.cache/daedalus-v4l2/apt-archives/bookworm/).
# Prints the root directory. Needs root (real uid 0 files in the tree).
#   usage: ci/bookworm-root/build.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
list="$here/packages.txt"
mirror="${DAEDALUS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
key=$(cat "$list" "$0" | sha256sum | cut -c1-16)
cache_dir="${DAEDALUS_CACHE:-$HOME/.cache/daedalus-v4l2}"
base="$cache_dir/guest-root"
cache="$base/bookworm-$key"
if [ -e "$cache/done" ]; then echo "$cache/root"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then exec sudo -E "$0" "$@"; fi

log() { echo "bookworm-root: $*" >&2; }
pkgs=$(grep -Ev '^\s*(#|$)' "$list" | paste -sd, -)
archives="$cache_dir/apt-archives/bookworm"
mkdir -p "$base" "$archives"
exec 9>"$base/bookworm.lock"
flock 9
if [ -e "$cache/done" ]; then echo "$cache/root"; exit 0; fi
# the package cache is packaging/debroot.sh's too, which may run now (ci/prepare.sh)
exec 8>"$cache_dir/apt-archives/bookworm.lock"
flock 8
rm -rf "$cache.tmp"; mkdir -p "$cache.tmp"
log "mmdebstrap bookworm ($(echo "$pkgs" | tr ',' '\n' | wc -l) packages) from $mirror; a few minutes cold"
start=$(date +%s)
# --variant=essential: nothing the chroot does needs apt; docs, man pages and
# locales dropped. The guest mounts this tree read-only under an overlay.
mmdebstrap --variant=essential --include="$pkgs" \
	--dpkgopt='path-exclude=/usr/share/man/*' \
	--dpkgopt='path-exclude=/usr/share/doc/*' \
	--dpkgopt='path-include=/usr/share/doc/*/copyright' \
	--dpkgopt='path-exclude=/usr/share/locale/*' \
	--setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
	--setup-hook="sync-in '$archives' /var/cache/apt/archives/" \
	--customize-hook="sync-out /var/cache/apt/archives '$archives'" \
	--customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
	bookworm "$cache.tmp/root" "$mirror" >&2
log "built in $(( $(date +%s) - start )) s: $(du -sh "$cache.tmp/root" | cut -f1)"
touch "$cache.tmp/done"
mv "$cache.tmp" "$cache"
echo "$cache/root"
