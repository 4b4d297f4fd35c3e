SUMMARY = "RAUC update bundle of daedalus-image for Raspberry Pi 5 A/B systems"
DESCRIPTION = "A signed verity bundle carrying the daedalus-image root filesystem (with \
               its kernel and the matching daedalus_v4l2 module) for the inactive slot."
HOMEPAGE = "https://github.com/daedalus-v4l2/daedalus-v4l2"
BUGTRACKER = "https://github.com/daedalus-v4l2/daedalus-v4l2/issues"
SECTION = "image"
LICENSE = "MIT"

# Nothing to fetch: the bundle is made from daedalus-image in DEPLOY_DIR_IMAGE.
SRC_URI = ""

inherit bundle

RAUC_BUNDLE_COMPATIBLE = "daedalus-rpi5"
RAUC_BUNDLE_VERSION = "${DISTRO_VERSION}"
RAUC_BUNDLE_DESCRIPTION = "daedalus-image ${DISTRO_VERSION}"
RAUC_BUNDLE_FORMAT = "verity"

RAUC_BUNDLE_SLOTS = "rootfs"
RAUC_SLOT_rootfs = "daedalus-image"
RAUC_SLOT_rootfs[fstype] = "ext4"

# Signing key and certificate: set RAUC_KEY_FILE and RAUC_CERT_FILE in
# local.conf (kas/daedalus-rpi5-rauc.yml points them at meta-rauc-raspberrypi's
# development keys, which must never sign a production bundle).
