# A/B variant: each rootfs slot carries its own kernel and modules (the
# U-Boot script loads /boot/Image from the booted slot), so an update
# replaces kernel and daedalus_v4l2.ko together and they always match.
IMAGE_INSTALL:append = "${@bb.utils.contains('DISTRO_FEATURES', 'rauc', ' rauc kernel-image kernel-modules', '', d)}"
RPI_EXTRA_IMAGE_BOOT_FILES:remove = "${@bb.utils.contains('DISTRO_FEATURES', 'rauc', '${KERNEL_IMAGETYPE}', '', d)}"
IMAGE_FSTYPES:append = "${@bb.utils.contains('DISTRO_FEATURES', 'rauc', ' ext4', '', d)}"
# files/wic/ is where wrynose looks for wks files; scarthgap looks in wic/.
WKS_SEARCH_PATH:prepend = "${DAEDALUS_LAYERDIR}/files/wic:"
WKS_FILE = "${@bb.utils.contains('DISTRO_FEATURES', 'rauc', 'daedalus-dual-rpi5.wks.in', 'sdimage-raspberrypi.wks', d)}"
# Size of each rootfs slot: room for the rootfs to grow between releases.
DAEDALUS_ROOTFS_SLOT_SIZE ?= "1024M"
