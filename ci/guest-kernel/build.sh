#!/usr/bin/env bash
# Builds the QEMU guest kernel (bzImage + modules + headers for out-of-tree
# builds) from Debian's linux-source-6.12, cached under ~/.cache keyed by the
# source package version and the config fragments.
#   usage: ci/guest-kernel/build.sh [release|debug]   -> prints the cache dir
set -euo pipefail
variant="${1:-release}"
here="$(cd "$(dirname "$0")" && pwd)"
src_tar=$(ls /usr/src/linux-source-6.12.tar.xz)
src_ver=$(dpkg-query -W -f='${Version}' linux-source-6.12)
frags=("$here/guest.config")
[ "$variant" = debug ] && frags+=("$here/debug.config")
key=$( (echo "$src_ver"; cat "${frags[@]}" "$0") | sha256sum | cut -c1-16)
cache="${DAEDALUS_CACHE:-$HOME/.cache/daedalus-v4l2}/guest-kernel/$variant-$key"
if [ -e "$cache/done" ]; then echo "$cache"; exit 0; fi
# one build per variant at a time: a second caller waits, then finds it cached
mkdir -p "$(dirname "$cache")"
exec 9>"$(dirname "$cache")/$variant.lock"
if ! flock -n 9; then
	echo "guest-kernel[$variant]: another build is running, waiting for it" >&2
	flock 9
fi
if [ -e "$cache/done" ]; then echo "$cache"; exit 0; fi

log() { echo "guest-kernel[$variant]: $*" >&2; }
rm -rf "$cache.tmp"; mkdir -p "$cache.tmp"
log "unpacking linux-source $src_ver"
tar -xf "$src_tar" -C "$cache.tmp"
mv "$cache.tmp"/linux-source-6.12 "$cache.tmp/src"
cd "$cache.tmp/src"
make -s tinyconfig >&2
./scripts/kconfig/merge_config.sh -m .config "${frags[@]}" >/dev/null
make -s olddefconfig >&2
for f in "${frags[@]}"; do
	# every symbol of the fragment must have survived olddefconfig
	grep -E '^CONFIG_[A-Z0-9_]+=' "$f" | while IFS= read -r line; do
		grep -qx "$line" .config || { log "config lost: $line"; exit 1; }
	done
done
jobs=$(nproc)
log "building bzImage + modules with $jobs jobs (about 13 min on 2 cores, longer for debug)"
start=$(date +%s)
# progress: one line a minute with the number of objects built so far
( while sleep 60; do log "… $(find . -name '*.o' | wc -l) objects, $(( ($(date +%s) - start) / 60 )) min"; done ) &
ticker=$!
trap 'kill $ticker 2>/dev/null || true' EXIT
make -j"$jobs" -s bzImage modules >&2
make -s modules_install INSTALL_MOD_PATH="$cache.tmp/modroot" INSTALL_MOD_STRIP=1 >&2
cp arch/x86/boot/bzImage "$cache.tmp/bzImage"
kill $ticker 2>/dev/null || true
log "built in $(( $(date +%s) - start )) s"
touch "$cache.tmp/done"
mv "$cache.tmp" "$cache"
echo "$cache"
