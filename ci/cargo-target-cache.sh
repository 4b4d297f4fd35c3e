#!/usr/bin/env bash
# Keeps the Rust builds (target/: host, Debian 13, arm64 cross and package
# builds) in ~/.cache/daedalus-v4l2/cargo-target between fresh clones, as CI
# has: a fresh clone then rebuilds only what cargo's own fingerprints find
# stale (the workspace crates, whose checkout is newer) instead of every
# dependency four times.
#   ci/cargo-target-cache.sh restore   # fresh clone (no target/): copy the cache in
#   ci/cargo-target-cache.sh save      # after the builds: the cache becomes target/
# DAEDALUS_TARGET_CACHE_GIB (default 8) caps what is saved: a long-lived
# checkout's target/ collects every build ever made and is not worth keeping.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd -P)"
cache="$HOME/.cache/daedalus-v4l2/cargo-target"
cap_gib="${DAEDALUS_TARGET_CACHE_GIB:-8}"

case "${1:-}" in
restore)
	if [ -e "$repo/target" ]; then
		echo "cargo-target-cache: target/ exists, kept"
	elif [ -d "$cache" ]; then
		# a copy, not hard links: cargo rewrites some files in place
		rm -rf "$repo/target.partial"
		cp -a "$cache" "$repo/target.partial"
		mv "$repo/target.partial" "$repo/target"
		echo "cargo-target-cache: restored $(du -sh "$repo/target" | cut -f1) from $cache"
	else
		echo "cargo-target-cache: no cache yet ($cache)"
	fi
	;;
save)
	[ -d "$repo/target" ] || exit 0
	gib="$(du -s --block-size=1G "$repo/target" | cut -f1)"
	if [ "$gib" -gt "$cap_gib" ]; then
		echo "cargo-target-cache: target/ is over ${cap_gib} GiB ($(du -sh "$repo/target" | cut -f1)), not saved"
		exit 0
	fi
	# into a new directory, unchanged files hard-linked to the old cache,
	# then swapped in: an interrupted save leaves the old cache whole
	rm -rf "$cache.new"
	mkdir -p "$(dirname "$cache")"
	link=()
	[ -d "$cache" ] && link=(--link-dest="$cache")
	rsync -aH --delete "${link[@]}" "$repo/target/" "$cache.new/"
	rm -rf "$cache.old"
	[ -d "$cache" ] && mv "$cache" "$cache.old"
	mv "$cache.new" "$cache"
	rm -rf "$cache.old"
	echo "cargo-target-cache: saved $(du -sh "$cache" | cut -f1) to $cache"
	;;
*)
	echo "usage: $0 restore|save" >&2
	exit 2
	;;
esac
