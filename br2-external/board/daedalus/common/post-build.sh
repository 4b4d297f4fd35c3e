#!/bin/sh
# Fails the build early when the image would lack a piece of the decoder
# stack (a package deselected, rootfs-overlay not configured), instead of
# leaving it to be found on the device.
set -eu

missing=0
for f in \
	usr/bin/daedalus-v4l2d \
	usr/lib/daedalus/libdaedalus_fourier_cpu.so \
	etc/daedalus/daedalus-v4l2d.toml \
	usr/lib/systemd/system/daedalus-v4l2d.service \
	usr/lib/sysusers.d/daedalus.conf \
	usr/lib/udev/rules.d/70-daedalus-v4l2.rules \
	usr/lib/modules-load.d/daedalus-v4l2.conf; do
	if [ ! -e "${TARGET_DIR}/${f}" ]; then
		echo "daedalus post-build: missing /${f}" >&2
		missing=1
	fi
done
if ! find "${TARGET_DIR}/lib/modules" -name 'daedalus_v4l2.ko*' | grep -q .; then
	echo "daedalus post-build: missing daedalus_v4l2.ko under /lib/modules" >&2
	missing=1
fi
exit "${missing}"
