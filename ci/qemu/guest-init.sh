#!/bin/bash
# Stage 2 of the guest boot, PID 1 inside the Debian 13 root (see
# initramfs-init.sh for stage 1). Mounts the kernel file systems, loads the
# modules named by daedalus.modules=a,b, then either runs the command file
# named by daedalus.cmd=PATH (mode "run": prints markers the host runner
# parses, then dmesg, then powers off) or gives a root shell on ttyS0 to a test
# driver (mode "shell", e.g. labgrid's ShellDriver).
#
# With --systemd it is not PID 1 but a service of the root's own systemd
# (daedalus.init=systemd, see ci/qemu/systemd-root.sh): systemd has mounted
# the file systems, run udev and loaded the modules (modules-load.d), so only
# the command or the shell is left to do, once the boot has finished.
set -u
under_systemd=0
[ "${1:-}" = --systemd ] && under_systemd=1
exec </dev/null >/dev/console 2>&1
if [ $under_systemd = 0 ]; then
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	mkdir -p /dev/pts /dev/shm
	mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
	mount -t tmpfs tmpfs /dev/shm
	mount -t tmpfs tmpfs /run
	mount -t tmpfs tmpfs /tmp
	mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	hostname daedalus-guest
	ip link set lo up 2>/dev/null
fi

mode=shell cmd= modules= udev=0 console=ttyS0
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	daedalus.mode=*) mode=${arg#daedalus.mode=} ;;
	daedalus.cmd=*) cmd=${arg#daedalus.cmd=} ;;
	daedalus.modules=*) modules=${arg#daedalus.modules=} ;;
	daedalus.udev=*) udev=${arg#daedalus.udev=} ;;
	daedalus.repo=*) repo=${arg#daedalus.repo=} ;;
	console=*) console=${arg#console=} ;;
	esac
done
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
export DAEDALUS_REPO=${repo:-/} TERM=vt100 LANG=C.UTF-8

if [ $under_systemd = 1 ]; then
	# every start-up job done (this unit's own start is one of them, finished
	# as soon as it was forked): "running", or "degraded" if a unit failed
	echo "daedalus-init: systemd: $(systemctl is-system-running --wait)"
else
	if [ "$udev" = 1 ]; then
		# device nodes get their group and mode (video, 0660) as on a real system
		/usr/lib/systemd/systemd-udevd --daemon && udevadm trigger --action=add && udevadm settle -t 30
	fi
	IFS=, read -r -a mods <<<"$modules"
	for m in "${mods[@]}"; do
		modprobe "$m" || echo "daedalus-init: modprobe $m failed"
	done
fi

# The kernel's own messages would interleave with the command's output.
echo 4 >/proc/sys/kernel/printk
echo "@@DAEDALUS-GUEST-UP $(uname -r)@@"

if [ "$mode" = run ]; then
	cd "${repo:-/}" || cd /
	echo "@@DAEDALUS-CMD-BEGIN@@"
	bash "$cmd"
	rc=$?
	echo "@@DAEDALUS-CMD-END rc=$rc@@"
	if [ -w /sys/kernel/debug/kmemleak ]; then
		# two scans: an object is only reported once it looked orphaned twice
		echo scan >/sys/kernel/debug/kmemleak; sleep 6; echo scan >/sys/kernel/debug/kmemleak
		echo "@@DAEDALUS-KMEMLEAK-BEGIN@@"; cat /sys/kernel/debug/kmemleak; echo "@@DAEDALUS-KMEMLEAK-END@@"
	fi
	echo "@@DAEDALUS-DMESG-BEGIN@@"; dmesg; echo "@@DAEDALUS-DMESG-END@@"
	sync
	echo "@@DAEDALUS-POWEROFF@@"
	if [ $under_systemd = 1 ]; then
		# at once, like the harness's init: nothing in the tmpfs overlay to save
		systemctl reboot --force --force
	else
		# the aarch64 root has no systemd, so no reboot(8): busybox's
		if command -v reboot >/dev/null; then reboot -f; else busybox reboot -f; fi
	fi
fi

# shell mode: a login-free root shell on the serial line, restarted if it exits.
# No readline (line editing echoes escape sequences a test driver must not
# parse), a fixed prompt the driver's regex matches, a wide line.
# the serial line: ttyS0 (x86_64), ttyAMA0 (aarch64 virt), from console=
tty=/dev/${console%%,*}
stty -F "$tty" cols 1000 rows 50 2>/dev/null
cd "${repo:-/}" || cd /
export PS1='daedalus-guest# '
while :; do
	setsid -c /bin/bash --noprofile --norc --noediting -i <"$tty" >"$tty" 2>&1
	echo "daedalus-init: shell exited, restarting it"
done
