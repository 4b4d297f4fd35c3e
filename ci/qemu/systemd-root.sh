# Prepares the guest root for booting its own systemd (daedalus.init=systemd).
# Run by the initramfs (busybox sh, not executable on purpose) with the new
# root mounted at $1 (the Debian 13 root under a tmpfs overlay) and the
# repository at $1$2. It installs what the packages would: the SHIPPED files
# of rootfs-overlay/ unchanged (unit, udev rules, sysusers.d, modules-load.d,
# config), the module built in kernel/ and the daemon and client built in
# target/trixie/ (into /usr/bin, as the package); the unit is unchanged. Then
# the harness's console unit, which runs the test command (or a shell) once
# the system is up: ci/qemu/guest-init.sh --systemd.
set -eu
root=$1 repo=$2
overlay=$root$repo/rootfs-overlay
release=$(uname -r)

# the shipped files, where the Debian package installs them
cp -a "$overlay/." "$root/"
# ci/guest-root/build.sh makes the daemon's user for the harness's own boots;
# here systemd-sysusers must create it from the shipped sysusers.d file. (sed,
# not userdel: nothing else touches these files before boot, and userdel
# needs file locks the initramfs cannot count on.)
for f in passwd shadow group gshadow; do
	[ -f "$root/etc/$f" ] || continue
	sed -i -E -e '/^daedalus:/d' -e 's/([:,])daedalus(,|$)/\1/' -e 's/,$//' "$root/etc/$f"
done

# the module where DKMS would put it, found by modprobe (modules-load.d);
# daedalus.module=PATH (a path in the repository share) picks another build
module=$repo/kernel/daedalus_v4l2.ko
for arg in $(cat /proc/cmdline); do
	case "$arg" in daedalus.module=*) module=${arg#daedalus.module=} ;; esac
done
mkdir -p "$root/lib/modules/$release/updates"
cp "$root$module" "$root/lib/modules/$release/updates/daedalus_v4l2.ko"
chroot "$root" /sbin/depmod -a "$release"
# CI only: TCG on a shared host is some 30 times slower than a Pi 5, and a
# dav1d 1080p session open has taken over the module's 2 s stall limit there
echo "options daedalus_v4l2 daemon_timeout_ms=10000" >"$root/etc/modprobe.d/daedalus-ci.conf"

# the binaries of this checkout where the package installs them: the unit
# runs exactly as shipped, and its user (and the test's unprivileged client)
# can read them whatever the permissions of the directory the repository
# lives in (a clone under /root is 0700)
for b in daedalus-v4l2d daedalus-decode; do
	cp "$root$repo/target/trixie/release/$b" "$root/usr/bin/$b"
done

units=$root/etc/systemd/system
mkdir -p "$units/multi-user.target.wants"
# enabled, as the package's postinst leaves it
ln -sf /usr/lib/systemd/system/daedalus-v4l2d.service "$units/multi-user.target.wants/"

# A machine that has booted before: no first-boot set-up, no prompts.
tr -d '-' </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
echo daedalus-guest >"$root/etc/hostname"
# The serial line belongs to the harness (markers, or its shell), not a getty.
ln -sf /dev/null "$units/serial-getty@ttyS0.service"
ln -sf /dev/null "$units/getty@tty1.service"

cat >"$units/daedalus-guest.service" <<EOF
[Unit]
Description=daedalus-v4l2 CI: the test command (or a shell) on the serial console
After=basic.target

[Service]
Type=simple
# it writes to /dev/console itself, like stage 2 of the harness's own init
ExecStart=/bin/bash $repo/ci/qemu/guest-init.sh --systemd
EOF
ln -sf /etc/systemd/system/daedalus-guest.service "$units/multi-user.target.wants/"
