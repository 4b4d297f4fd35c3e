SUMMARY = "daedalus-v4l2 decoder stack: kernel module, daemon and V4L2 tools"
DESCRIPTION = "Everything a Raspberry Pi 5 image needs to offer the daedalus-v4l2 \
               software decoder to V4L2 applications."
HOMEPAGE = "https://github.com/daedalus-v4l2/daedalus-v4l2"
BUGTRACKER = "https://github.com/daedalus-v4l2/daedalus-v4l2/issues"
SECTION = "multimedia"
LICENSE = "MIT"

# The module is built for this machine's kernel.
PACKAGE_ARCH = "${MACHINE_ARCH}"

inherit packagegroup

RDEPENDS:${PN} = "daedalus-tools \
                  daedalus-v4l2-module \
                  daedalus-v4l2d"

# v4l2-ctl and v4l2-compliance, to see and check the decoder on the device.
RRECOMMENDS:${PN} = "v4l-utils"
