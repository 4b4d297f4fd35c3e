#!/bin/sh
# Mounts the Debian 12 side root (read-only 9p share at ROOT) writable at
# MOUNT: a tmpfs overlay, the guest's /dev, /proc, /sys and /tmp, and each
# BIND directory at its own path. Does nothing if MOUNT is mounted already.
#   bookworm-mount.sh ROOT MOUNT [BIND...]     (see ci/tests/guest/userlands.py)
set -eu
root=$1 mnt=$2
shift 2
mountpoint -q "$mnt" && exit 0
arch=$(uname -m)
[ -x "$root/usr/bin/gst-launch-1.0" ] || { echo "no bookworm root at $root"; exit 1; }
[ "$arch" = x86_64 ] || { echo "the bookworm root is x86_64, this guest is $arch"; exit 1; }
mkdir -p "$mnt" "$mnt.rw"
mount -t tmpfs tmpfs "$mnt.rw"
mkdir -p "$mnt.rw/upper" "$mnt.rw/work"
mount -t overlay overlay -o "lowerdir=$root,upperdir=$mnt.rw/upper,workdir=$mnt.rw/work" "$mnt"
for d in dev proc sys tmp; do mount --rbind "/$d" "$mnt/$d"; done
for d in "$@"; do
	mkdir -p "$mnt$d"
	mount --bind "$d" "$mnt$d"
done
