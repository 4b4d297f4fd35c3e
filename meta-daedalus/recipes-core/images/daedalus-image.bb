SUMMARY = "Raspberry Pi 5 image with the daedalus-v4l2 software V4L2 decoder"
DESCRIPTION = "A console image for video appliances: systemd, the daedalus-v4l2 kernel \
               module, daemon and tools. Flash the .wic.bz2 with bmaptool using the .wic.bmap."
HOMEPAGE = "https://github.com/daedalus-v4l2/daedalus-v4l2"
BUGTRACKER = "https://github.com/daedalus-v4l2/daedalus-v4l2/issues"
SECTION = "image"
LICENSE = "MIT"

IMAGE_INSTALL = "packagegroup-core-boot \
                 packagegroup-daedalus \
                 ${CORE_IMAGE_EXTRA_INSTALL}"

IMAGE_FEATURES += "ssh-server-dropbear"

# An SD-card image (meta-raspberrypi's sdimage-raspberrypi.wks: FAT boot
# partition + ext4 root) and its block map for `bmaptool copy`.
IMAGE_FSTYPES = "wic.bz2 wic.bmap"

inherit core-image
