#!/bin/sh
# Writes images/start-qemu.sh, which boots the image in QEMU (TCG; add
# -enable-kvm -cpu host on an arm64 host with KVM). Extra arguments are
# passed to QEMU, e.g. a 9p share of the repository for the test suite:
#   -virtfs local,path=/work/main,mount_tag=repo,security_model=none
set -eu

cat > "${BINARIES_DIR}/start-qemu.sh" <<'SCRIPT'
#!/bin/sh
IMAGES_DIR="$(dirname "$0")"
exec qemu-system-aarch64 -M virt -cpu cortex-a53 -smp 2 -m 1024 -nographic \
	-kernel "${IMAGES_DIR}/Image" \
	-append "rootwait root=/dev/vda console=ttyAMA0" \
	-drive "file=${IMAGES_DIR}/rootfs.ext4,if=none,format=raw,id=hd0" \
	-device virtio-blk-device,drive=hd0 \
	-netdev user,id=eth0 -device virtio-net-device,netdev=eth0 \
	"$@"
SCRIPT
chmod 0755 "${BINARIES_DIR}/start-qemu.sh"
