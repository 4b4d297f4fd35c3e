#!/usr/bin/env bash
# Registers the host's static /usr/bin/qemu-aarch64 for arm64 ELF binaries
# (binfmt_misc, flag F: the interpreter is opened now, so chroots need no copy
# of it). Idempotent; another job registering the same entry at the same time
# is fine ("File exists").
set -euo pipefail
bm=/proc/sys/fs/binfmt_misc
entry="$bm/qemu-aarch64"
qemu=/usr/bin/qemu-aarch64
fix="apt-get install -t bookworm-backports qemu-user (its binaries are static; bookworm's are not)"
[ -x "$qemu" ] || { echo "binfmt: $qemu missing: $fix" >&2; exit 1; }
# a dynamic interpreter would look for its libraries inside the arm64 chroot
if readelf -l "$qemu" | grep -q INTERP; then
	echo "binfmt: $qemu is dynamically linked: $fix" >&2
	exit 1
fi
if [ -e "$entry" ]; then
	grep -q '^enabled' "$entry" || echo 1 >"$entry"
	exit 0
fi
[ -w "$bm/register" ] || mount -t binfmt_misc binfmt_misc "$bm"
magic='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
mask='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'
if ! err=$(printf '%s' ":qemu-aarch64:M::$magic:$mask:$qemu:F" 2>&1 >"$bm/register"); then
	[ -e "$entry" ] || { echo "binfmt: registering $qemu failed: $err" >&2; exit 1; }
fi
