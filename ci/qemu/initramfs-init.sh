#!/bin/busybox sh
# Stage 1 of the guest boot (runs from a tiny initramfs, busybox only): mounts
# the Debian 13 root shared read-only over 9p under a tmpfs overlay (so the
# guest can write anywhere without touching the host copy), the guest kernel's
# modules, the repository and any extra shares at their host paths, then hands
# over to stage 2 (ci/qemu/guest-init.sh, inside the repository) with
# switch_root. Kernel command line: daedalus.repo=PATH daedalus.shares=TAG=PATH[=ro],...
#
# daedalus.init=systemd boots the root's own systemd instead: the modules get a
# writable overlay too (for the daedalus_v4l2.ko of the repository and
# depmod), ci/qemu/systemd-root.sh installs the shipped rootfs-overlay/ files
# and the harness's console unit, and systemd becomes PID 1.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec >/dev/console 2>&1

fail() { echo "daedalus-init: $*"; echo "@@DAEDALUS-INIT-FAILED@@"; sleep 1; reboot -f; }
opts9p=trans=virtio,version=9p2000.L,msize=524288

repo=; shares=; init=harness
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	daedalus.repo=*) repo=${arg#daedalus.repo=} ;;
	daedalus.init=*) init=${arg#daedalus.init=} ;;
	daedalus.shares=*) shares=${arg#daedalus.shares=} ;;
	esac
done
[ -n "$repo" ] || fail "no daedalus.repo= on the command line"
# a kernel with 9p/overlay as modules (Debian's arm64): the initramfs carries
# them, in load order
if [ -f /stage1/order ]; then
	while read -r ko; do insmod "$ko" || fail "cannot load $ko"; done </stage1/order
fi

mkdir -p /lower /rw /newroot
mount -t 9p -o "$opts9p,ro,cache=loose" root /lower || fail "cannot mount the 9p root"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
if ! mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot; then
	# no overlay: read-only root with tmpfs where the guest writes
	echo "daedalus-init: overlay failed, read-only root with tmpfs /tmp /run /var /root"
	mount --bind /lower /newroot
	for d in tmp run var root; do mount -t tmpfs tmpfs "/newroot/$d"; done
fi
if [ "$init" = systemd ]; then
	mkdir -p /mods /rw/mods-upper /rw/mods-work
	mount -t 9p -o "$opts9p,ro,cache=loose" mods /mods || fail "cannot mount the modules"
	mount -t overlay overlay -o lowerdir=/mods,upperdir=/rw/mods-upper,workdir=/rw/mods-work \
		/newroot/lib/modules || fail "cannot overlay the modules"
else
	mount -t 9p -o "$opts9p,ro,cache=loose" mods /newroot/lib/modules || fail "cannot mount the modules"
fi
mkdir -p "/newroot$repo"
mount -t 9p -o "$opts9p,rw" repo "/newroot$repo" || fail "cannot mount the repository at $repo"
IFS=,
for share in $shares; do
	IFS='='
	set -- $share
	IFS=,
	tag=$1 path=$2 mode=${3:-rw}
	mkdir -p "/newroot$path"
	mount -t 9p -o "$opts9p,$mode" "$tag" "/newroot$path" || fail "cannot mount share $tag at $path"
done
unset IFS
if [ "$init" = systemd ]; then
	/bin/busybox sh "/newroot$repo/ci/qemu/systemd-root.sh" /newroot "$repo" || fail "systemd-root.sh failed"
	umount /proc /sys
	umount /dev
	exec switch_root /newroot /lib/systemd/systemd
fi
umount /proc /sys
umount /dev
exec switch_root /newroot /bin/bash "$repo/ci/qemu/guest-init.sh"
